"""``phip users …``: dashboard accounts (passwords hashed with argon2id)."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

app = typer.Typer(help="看板用户 (dashboard users)", no_args_is_help=True)
console = Console()


@app.command("create")
def create(
    username: str = typer.Argument(...),
    role: str = typer.Option("operator", "--role", help="operator（运维人员）"),
    display_name: str | None = typer.Option(None, "--name", help="显示名称"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="从标准输入读取密码（脚本用）"),
) -> None:
    """新建用户；密码交互输入或 --password-stdin (create a user)."""
    from phip import runtime
    from phip.web.auth import create_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("密码", hide_input=True, confirmation_prompt=True)
    create_user(runtime.engine(), username, password, role, display_name)  # an AuthError: phip.cli.main says it
    console.print(f"已创建用户 {username}（{role}）")
