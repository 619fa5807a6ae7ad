"""``phip federation …``: the city platform's forwarder to the province and its status (省市一体化)."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from phip.config import get_settings
from phip.errors import CommandError

from .forwarder import Forwarder, outbox_status, purge, queue_history, resend
from .lag import outbox_lag

app = typer.Typer(help="省市一体化：向省平台转发 (forward to the province)", no_args_is_help=True)
console = Console()


def _fail(message: str, code: str) -> NoReturn:
    raise CommandError(code, message)  # said by phip.cli.main


@app.command("forward")
def forward(
    once: bool = typer.Option(False, "--once", help="发完待发记录（或连续失败 --max-failures 次）即退出"),
    max_failures: int = typer.Option(5, "--max-failures", help="与 --once 同用：连续失败几次后退出"),
) -> None:
    """把待发记录按顺序发往省平台，失败时指数退避重试 (forward the outbox to the province)."""
    from phip import runtime

    settings = get_settings()
    if not settings.upstream_url:
        _fail("未配置省平台地址（PHIP_UPSTREAM_URL），本平台不向上级转发", "NO_UPSTREAM")
    if not settings.upstream_key:
        _fail("未配置本市级平台在省平台的接口密钥（PHIP_UPSTREAM_KEY）", "NO_UPSTREAM_KEY")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    forwarder = Forwarder(runtime.engine(), settings.upstream_url, settings.upstream_key)
    try:
        result = forwarder.run(once=once, max_failures=max_failures if once else None)
    except KeyboardInterrupt:
        console.print("已停止（已发送的记录均已标记，未标记的下次重发）")
        return
    finally:
        forwarder.close()
    console.print(f"已发送 {result.sent} 条，省平台拒收 {result.refused} 条，请求 {result.requests} 次，失败 {result.failures} 次")
    if result.gave_up:
        _fail(f"向省平台转发失败：{result.last_error}", "UPSTREAM_FAILED")


@app.command("status")
def status(refusals: int = typer.Option(20, "--refusals", help="列出最近几条被省平台拒收的记录")) -> None:
    """待发积压、最早未发记录、最近错误和省平台拒收的记录 (backlog, oldest unsent, last error)."""
    from phip import runtime

    settings = get_settings()
    s = outbox_status(runtime.engine(), refusals)
    console.print(f"上级平台：{escape(settings.upstream_url) or '未配置（独立运行）'}  本市区划：{settings.region_code or '-'}")
    console.print(f"待发 {s.backlog} 条；最早未发：{f'{s.oldest_unsent:%Y-%m-%d %H:%M:%S}' if s.oldest_unsent else '无'}；"
                  f"已发 {s.sent} 条；省平台拒收 {s.refused} 条")
    lag = outbox_lag(runtime.engine())
    console.print(f"近1小时发送 {s.sent_last_hour} 条，近1分钟 {s.sent_last_minute} 条；"
                  f"状态：{lag.state}（阈值 {lag.threshold:.0f} 秒，PHIP_OUTBOX_LAG_ALERT）")
    if s.last_error:
        console.print(f"最近错误（{s.last_error_at:%Y-%m-%d %H:%M:%S}）：{escape(s.last_error)}")
    if s.refusals:
        table = Table(title="省平台拒收的记录")
        for col in ("医疗机构代码", "数据集", "记录标识", "原因", "时间"):
            table.add_column(col)
        for r in s.refusals:
            reasons = "；".join(f"[{f['code']}] {f['message']}" for f in r["findings"] or [])
            table.add_row(r["org_code"], r["dataset"], escape(r["record_key"]), escape(reasons), f"{r['sent_at']:%Y-%m-%d %H:%M}")
        console.print(table)


@app.command("resend")
def resend_cmd(
    since: str | None = typer.Option(None, "--since", help="入队时间起（含），如 2026-11-01"),
    until: str | None = typer.Option(None, "--until", help="入队时间止（不含），如 2026-12-01"),
    dataset: str | None = typer.Option(None, "--dataset", help="只重发一个数据集"),
    org: str | None = typer.Option(None, "--org", help="只重发一个医疗机构（代码）"),
) -> None:
    """把已发送（或被拒收）的记录重新排队，省平台已有的版本不会重复保存 (re-send a range)."""
    from phip import runtime
    from phip.standard.validate import parse_datetime

    def when(value: str | None, name: str):  # noqa: ANN202
        if value is None:
            return None
        try:
            return parse_datetime(value)
        except ValueError:
            _fail(f"{name} 参数“{value}”不是有效的日期时间", "BAD_DATE")

    n = resend(runtime.engine(), since=when(since, "--since"), until=when(until, "--until"), dataset=dataset, org_code=org)
    console.print(f"已重新排队 {n} 条，运行 phip federation forward 发送")


@app.command("queue-history")
def queue_history_cmd(dataset: str | None = typer.Option(None, "--dataset", help="只排队一个数据集")) -> None:
    """接入省平台前已保存的记录（当前版本）排队发送，分块进行，不占大量内存 (queue the history)."""
    from phip import runtime
    from phip.standard.catalog import load_standard

    if dataset is not None:
        try:
            dataset = load_standard().dataset(dataset).code
        except KeyError:
            _fail(f"数据集“{dataset}”不存在；phip standard list 列出全部数据集", "UNKNOWN_DATASET")
    n = queue_history(runtime.engine(), dataset=dataset)
    console.print(f"已排队 {n} 条历史记录，运行 phip federation forward 发送")


_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


#: the longest age a purge takes: a century (more overflowed the calendar, a traceback)
MAX_AGE = timedelta(days=36_500)


def parse_age(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, or a number of days, at most :data:`MAX_AGE`; ValueError otherwise."""
    match = re.fullmatch(r"\s*(\d{1,9})\s*([dhm]?)\s*", text.lower())
    if not match:
        raise ValueError(text)
    age = timedelta(**{_UNITS[match[2] or "d"]: int(match[1])})
    if age > MAX_AGE:
        raise ValueError(text)
    return age


@app.command("purge")
def purge_cmd(older_than: str = typer.Option(..., "--older-than", help="删除发送成功超过该时长的记录，如 30d、12h")) -> None:
    """删除省平台已接收且超过时长的待发箱记录，每 5000 条一个事务；未发送和被拒收的记录保留 (purge sent rows)."""
    from phip import runtime

    try:
        age = parse_age(older_than)
    except ValueError:
        _fail(f"--older-than 参数“{older_than}”无效，应为不超过100年的天数或如 30d、12h、90m 的时长", "BAD_AGE")
    n = purge(runtime.engine(), age)
    console.print(f"已删除 {n} 条省平台已接收且发送已超过 {older_than.strip()} 的记录；"
                  "未发送和被拒收的记录均保留。已删除的记录不能再用 resend 重发，需要时用 queue-history 重新排队当前版本")
