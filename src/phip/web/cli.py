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
    from phip.web.auth import AuthError, create_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("密码", hide_input=True, confirmation_prompt=True)
    try:
        create_user(runtime.engine(), username, password, role, display_name)
    except AuthError as exc:
        Console(stderr=True).print(f"[bold red]错误[/] [{exc.code}] {exc.message}", highlight=False)
        raise typer.Exit(2) from None
    console.print(f"已创建用户 {username}（{role}）")
