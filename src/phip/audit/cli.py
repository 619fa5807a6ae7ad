"""``phip audit …``: verify the trail and list its events (审计日志)."""

from __future__ import annotations

from datetime import datetime

import orjson
import typer
from rich.console import Console
from rich.table import Table

from phip.errors import CommandError
from phip.privacy import mask_text

from .errors import AuditError

app = typer.Typer(help="审计日志 (the tamper-evident audit trail)", no_args_is_help=True)
console = Console()


def _engine():  # noqa: ANN202
    from phip import runtime

    return runtime.engine()


def describe(verdict) -> str:  # noqa: ANN001
    """A verified trail's summary line; raise :class:`AuditError` naming its first problem."""
    if not verdict.ok:
        raise AuditError(verdict.code, f"{verdict.message}（此前 {verdict.checked} 条校验无误）", None)
    head = verdict.head
    return (f"审计日志完整：已校验 {verdict.checked} 条，链头第 {head.seq} 条与锚点一致" if head
            else "审计日志为空，锚点亦无记录")


@app.command()
def verify() -> None:
    """校验审计日志的防篡改链与锚点 (verify the chain and the anchor); exit code 1 when broken."""
    from .verify import verify as run

    console.print(describe(run(_engine())))


def _when(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise CommandError("BAD_DATE", f"“{value}”不是日期时间（YYYY-MM-DD 或 YYYY-MM-DD HH:MM）", name) from None


@app.command("list")
def list_(person: str | None = typer.Option(None, "--person", help="居民 ID"),
          user: str | None = typer.Option(None, "--user", help="操作人账号"),
          org: str | None = typer.Option(None, "--org", help="操作人所属机构代码"),
          action: str | None = typer.Option(None, "--action", help="操作代码前缀，如 share. 或 empi."),
          flagged: bool | None = typer.Option(None, "--flagged/--not-flagged", help="只看需审核（紧急调阅等）的记录"),
          since: str | None = typer.Option(None, "--since"), until: str | None = typer.Option(None, "--until"),
          limit: int = typer.Option(50, "--limit", min=1, max=10000)) -> None:
    """列出审计记录，最新在前 (list events, newest first; identifiers masked)."""
    from .queries import search

    rows = search(_engine(), person_id=person, username=user, org_code=org, action_prefix=action, flagged=flagged,
                  since=_when(since, "since"), until=_when(until, "until"), limit=limit)
    table = Table(title=f"审计记录 {len(rows)} 条")
    for col in ("序号", "时间", "操作人", "角色", "机构", "地址", "操作", "居民", "授权", "对象", "详情", "待审"):
        table.add_column(col)
    for r in rows:
        detail = orjson.dumps(r["detail"]).decode() if r["detail"] is not None else ""
        table.add_row(str(r["seq"]), r["at"].isoformat(sep=" ", timespec="seconds"), mask_text(r["username"]), r["role"],
                      r["org_code"] or "", r["address"] or "", r["action"], r["person_id"] or "",
                      r["authorization"] or "", r["target"] or "", mask_text(detail), "是" if r["flagged"] else "")
    console.print(table)
