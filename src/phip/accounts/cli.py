"""``phip accounts …`` (also ``phip users``): accounts of every role (passwords hashed with argon2id)."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

app = typer.Typer(help="账户 (accounts: operator, regional, clinician, resident, auditor)", no_args_is_help=True)
console = Console()


@app.command("create")
def create(
    username: str = typer.Argument(...),
    role: str = typer.Option("operator", "--role", help="operator（运维人员）| regional（区域卫健委，只读）| clinician（医生）| resident（居民）| auditor（审计员）"),
    display_name: str | None = typer.Option(None, "--name", help="显示名称"),
    org: str | None = typer.Option(None, "--org", help="医生：所属医疗机构代码"),
    department: str | None = typer.Option(None, "--dept", help="医生：科室名称"),
    id_no: str | None = typer.Option(None, "--id-no", help="居民：身份证号（须已在主索引中）"),
    region: str | None = typer.Option(None, "--region", help="区域卫健委：所辖市或区县的行政区划代码（如 220100、220104）"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="从标准输入读取密码（脚本用）"),
) -> None:
    """新建账户；密码交互输入或 --password-stdin (create an account)."""
    from phip import runtime
    from phip.accounts.residents import person_of_id_no
    from phip.accounts.sessions import AuthError, check_region, create_user
    from phip.audit import local_operator

    engine = runtime.engine()
    person_id = None
    check_region(engine, role, region)  # before the password prompt: a wrong code fails at once
    if role == "resident":
        if not id_no:
            raise AuthError("PERSON_REQUIRED", "居民账户须提供 --id-no（身份证号）", "id_no")
        with engine.connect() as conn:
            person_id = person_of_id_no(conn, id_no)
        if person_id is None:
            raise AuthError("RESIDENT_NOT_FOUND", "主索引中没有该身份证号的居民", "id_no", 404)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("密码", hide_input=True, confirmation_prompt=True)
    create_user(engine, username, password, role, display_name, org_code=org, department=department,
                person_id=person_id, region_code=region, by=local_operator())  # an AuthError: phip.cli.main says it
    console.print(f"已创建用户 {username}（{role}）")
