"""``phip`` command line: thin Typer commands over the same services the API uses.

Errors a user can fix end with a Chinese message and exit code 2; nothing is half-written
because every write goes through the pipeline's per-batch transactions.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from phip.audit.cli import app as audit_app
from phip.quality.cli import app as quality_app
from phip.quality.cli import supervision_app
from phip.reports.cli import app as reports_app
from phip.empi import cli as empi_cli
from phip.federation.cli import app as federation_app
from phip.documents.cli import app as documents_app
from phip.errors import CommandError, PhipError
from phip.standard.catalog import CATEGORY_LABELS, TYPE_LABELS, load_standard
from phip.accounts.cli import app as users_app
from phip.orgs.cli import app as orgs_app

app = typer.Typer(help="PHIP 全民健康信息平台 (provincial population health information platform)", no_args_is_help=True)
standard_app = typer.Typer(help="数据采集标准 (the collection standard)", no_args_is_help=True)
db_app = typer.Typer(help="数据库 (database schema)", no_args_is_help=True)
app.add_typer(standard_app, name="standard")
app.add_typer(orgs_app, name="orgs")
app.add_typer(db_app, name="db")
app.add_typer(quality_app, name="quality")
app.add_typer(supervision_app, name="supervision")
app.add_typer(reports_app, name="reports")
app.add_typer(users_app, name="users")
app.add_typer(users_app, name="accounts")
app.add_typer(empi_cli.app, name="empi")
app.add_typer(audit_app, name="audit")
app.add_typer(federation_app, name="federation")
app.add_typer(documents_app, name="documents")
console = Console()
err = Console(stderr=True)


def fail(message: str, code: str = "ERROR") -> NoReturn:
    raise CommandError(code, message)  # said by main (exit_codes)


def exit_codes() -> dict[type[PhipError], int]:
    """The exit code of every error class a command lets escape to :func:`main`, which prints
    it as ``错误 [code] message`` (the nearest class in the MRO wins; a class not listed is a
    bug and keeps its traceback). Built on first use: importing every area would slow each
    command's start, and a class that was raised is already imported."""
    from phip.audit import AuditError
    from phip.collect.guard import MappingProblem
    from phip.collect.state import SourceBusy
    from phip.empi.errors import EmpiError
    from phip.ingest.errors import IngestError
    from phip.ingest.readers import FileFormatError
    from phip.orgs.register import RegisterError
    from phip.quality.schedule import ScheduleError
    from phip.reports.period import PeriodError
    from phip.accounts import AuthError
    from phip.share import ShareError
    from phip.synth.simulate import PushFailed
    from phip.documents import DocumentRefused
    from phip.store.archive import ArchiveError

    return {
        CommandError: 2,  # fail() in every command
        FileFormatError: 2, IngestError: 2,  # phip ingest
        MappingProblem: 2, SourceBusy: 2, ScheduleError: 2,  # phip collect, phip worker
        EmpiError: 2, PeriodError: 2, AuthError: 2,  # phip empi, phip reports, phip accounts
        ShareError: 2,  # phip demo (sharing)
        AuditError: 1,  # phip audit verify: a broken or missing link (as phip empi verify)
        RegisterError: 2,  # phip orgs add|update|close|reopen
        PushFailed: 2,  # phip simulate push
        DocumentRefused: 2,  # phip documents validate|import
        ArchiveError: 2,  # phip db archive|restore
    }


def exit_code(exc: PhipError) -> int | None:
    table = exit_codes()
    return next((table[cls] for cls in type(exc).__mro__ if cls in table), None)


def _dataset(ref: str):  # noqa: ANN202
    try:
        return load_standard().dataset(ref)
    except KeyError:
        fail(f"数据集“{ref}”不存在；用 phip standard list 查看全部数据集", "UNKNOWN_DATASET")


# --- standard ---------------------------------------------------------------------------------


@standard_app.command("list")
def standard_list() -> None:
    """列出全部数据集 (list the data sets)."""
    std = load_standard()
    extensions = len(std.datasets) - len(std.notice_datasets)
    table = Table(title=f"省平台数据采集标准 {std.version}（{len(std.notice_datasets)}个数据集"
                        + (f"，另有扩展数据集{extensions}个）" if extensions else "）"))
    for col in ("序号", "编码", "数据集名称", "英文名称", "分类", "字段数"):
        table.add_column(col)
    for ds in std.datasets:
        table.add_row(str(ds.number), ds.code, ds.name, ds.name_en, CATEGORY_LABELS[ds.category], str(len(ds.fields)))
    console.print(table)


@standard_app.command("show")
def standard_show(dataset: str = typer.Argument(..., help="数据集编码、序号或中文名称")) -> None:
    """显示数据集的全部字段 (show every field of a data set)."""
    std = load_standard()
    ds = _dataset(dataset)
    console.print(f"[bold]{ds.number:02d} {ds.name}[/]（{ds.code}，{ds.name_en}）")
    console.print(f"{ds.description}\n依据：{'；'.join(ds.basis)}")
    console.print(f"业务主键：{', '.join(ds.natural_key)}    业务发生时间：{ds.event_time}")
    if ds.person:
        console.print("患者标识字段：" + "，".join(f"{k}={v}" for k, v in ds.person.items()))
    table = Table()
    for col in ("序号", "字段名", "中文名称", "数据元标识符", "类型", "长度", "必填", "值域/校验"):
        table.add_column(col)
    for i, f in enumerate(ds.fields, 1):
        rule = f"{std.domain(f.domain).name}（{f.domain}）" if f.domain else (f.check or "")
        table.add_row(str(i), f.name, f.label, f.de or "", TYPE_LABELS[f.type], str(f.length or ""),
                      "是" if f.required else "", rule)
    console.print(table)


@standard_app.command("export")
def standard_export(
    format: str = typer.Option(..., "--format", "-f", help="jsonschema | html | xlsx"),
    out: Path = typer.Option(..., "--out", "-o", help="输出目录"),
) -> None:
    """导出下发医疗机构的标准文件 (export the standard for hospitals)."""
    from phip.standard import export

    std = load_standard()
    if format == "jsonschema":
        paths = export.export_jsonschema(std, out)
        console.print(f"已导出 {len(paths)} 个 JSON Schema 文件到 {out}")
    elif format == "html":
        console.print(f"已导出 {export.export_html(std, out)}")
    elif format == "xlsx":
        console.print(f"已导出 {export.export_xlsx(std, out)}")
    else:
        fail(f"不支持的导出格式“{format}”，可选 jsonschema、html、xlsx", "BAD_FORMAT")


# --- institutions -------------------------------------------------------------------------------


#: ``phip orgs list --status``: each word (English or Chinese) and what it keeps.
ORG_STATUS_FILTERS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "active": ("在用", lambda s: s.status == "active"),
    "closed": ("关停", lambda s: s.status != "active"),
    "connected": ("网络已联通", lambda s: s.network == "connected"),
    "pending": ("网络待联通", lambda s: s.network != "connected"),
    "uploading": ("数据上传已实现", lambda s: s.uploading),
    "not-uploading": ("数据上传待实现", lambda s: not s.uploading),
    "analysed": ("数据分析已完成", lambda s: bool(s.analysed)),
    "not-analysed": ("数据分析待完成", lambda s: not s.analysed),
}
_ORG_STATUS_WORDS = {**{k: k for k in ORG_STATUS_FILTERS}, "在用": "active", "关停": "closed", "已联通": "connected",
                     "待联通": "pending", "已上传": "uploading", "实现": "uploading", "未上传": "not-uploading",
                     "待实现": "not-uploading", "已分析": "analysed", "完成": "analysed", "未分析": "not-analysed",
                     "待完成": "not-analysed"}


@orgs_app.command("list")
def orgs_list(
    region: str | None = typer.Option(None, "--region", help="地区：区划代码前缀（如 2201、220100）或地区名称（如 长春）"),
    name: str | None = typer.Option(None, "--name", help="机构名称包含的文字"),
    status: list[str] = typer.Option(None, "--status", help="状态（可多次给出，须同时满足）："
                                     + "、".join(f"{k}（{v[0]}）" for k, v in ORG_STATUS_FILTERS.items())),
    as_json: bool = typer.Option(False, "--json", help="以JSON输出"),
) -> None:
    """按地区列出医疗机构及对接进度，可按地区、名称、状态筛选 (institutions by region, filtered)."""
    import orjson

    from phip import runtime
    from phip.orgs.service import METHOD_LABELS
    from phip.reports.onboarding import onboarding_status
    from rich.markup import escape

    checks = []
    for word in status or []:
        key = _ORG_STATUS_WORDS.get(word.strip().lower()) or _ORG_STATUS_WORDS.get(word.strip())
        if key is None:
            fail(f"状态“{word}”无效，可选：" + "、".join(f"{k}（{v[0]}）" for k, v in ORG_STATUS_FILTERS.items()),
                 "BAD_STATUS")
        checks.append(ORG_STATUS_FILTERS[key][1])
    rows = onboarding_status(runtime.engine(), "hospital")
    if region:
        ref = region.strip()
        if ref.isdigit():  # a code prefix: 22 the province, 2201 or 220100 长春市
            rows = [r for r in rows if (r.region_code or "").startswith(ref)]
        else:
            rows = [r for r in rows if ref in r.region_name]
    if name:
        rows = [r for r in rows if name.strip().lower() in r.name.lower()]
    rows = [r for r in rows if all(check(r) for check in checks)]
    if as_json:
        print(orjson.dumps([{
            "code": r.code, "name": r.name, "region_code": r.region_code, "region_name": r.region_name,
            "level": r.level, "docking_method": r.docking_method, "status": r.status, "network": r.network,
            "uploading": r.uploading, "analysed": bool(r.analysed),
            "first_upload_at": r.first_upload_at.isoformat(sep=" ") if r.first_upload_at else None,
            "placeholder": sorted(r.placeholder),
        } for r in rows], option=orjson.OPT_INDENT_2).decode())
        return
    filtered = any((region, name, status))
    table = Table(title=f"对接医疗机构（{'筛选出' if filtered else ''}{len(rows)}家）")
    # The code is what an operator copies into the next command: never cut; the names wrap
    # instead, and each region is a heading row rather than two columns of every row.
    table.add_column("医疗机构", overflow="fold", ratio=1)
    table.add_column("机构代码", no_wrap=True, min_width=max((len(r.code) for r in rows), default=8))
    narrow = console.width < 110  # an 80-column terminal: 三级/甲等 on two lines leaves the name room
    for col in ("等级", "对接方式"):
        table.add_column(col, overflow="fold", max_width=4 if narrow else None)
    for col in ("网络", "上传", "分析"):
        table.add_column(col, no_wrap=True)
    previous = None
    for r in rows:
        if r.region_name != previous:
            if previous is not None:
                table.add_section()
            table.add_row(f"[bold]{escape(r.region_name)}（{r.region_code}）[/]", "", "", "", "", "", "")
            previous = r.region_name
        labels = r.labels
        table.add_row(escape(r.name), r.code, _demo_mark(r, "level", r.level or ""),
                      _demo_mark(r, "docking_method", METHOD_LABELS.get(r.docking_method, "")), labels["network"],
                      labels["upload"], labels["analysis"])
    if not rows:
        console.print("没有符合条件的医疗机构")
        return
    console.print(table)
    if any(r.placeholder & {"code", "level", "docking_method"} for r in rows):
        console.print("* 示例值：来源文件未给出，待机构回执或登记核实（机构代码亦然，见 --json 的 placeholder）")


def _demo_mark(row: Any, field: str, text: str) -> str:
    """A demo placeholder value is starred in the table, never shown as fact."""
    return f"{text}*" if text and field in row.placeholder else text


keys_app = typer.Typer(help="接口密钥 (API keys of an institution)", no_args_is_help=True)
orgs_app.add_typer(keys_app, name="key")


@keys_app.command("create")
def key_create(
    org: str = typer.Argument(..., help="医疗机构代码或名称"), label: str | None = typer.Option(None, "--label"),
    region: str | None = typer.Option(None, "--region", help="市级平台密钥：可上传该地区（区划代码，如220100）各医疗机构的数据"),
) -> None:
    """生成接口密钥（只显示一次）(create a key; it is shown once)."""
    from phip import runtime
    from phip.orgs.keys import create_key

    org_code = _resolve_org(org).code
    if region is not None and not (len(region) == 6 and region.isdigit()):
        fail(f"区划代码“{region}”无效，应为6位数字（如220100）", "BAD_REGION")
    key_id, key = create_key(runtime.engine(), org_code, label, region)
    console.print(f"已为 {org_code} 生成接口密钥（编号 {key_id}），请立即妥善保存，平台不保存明文、无法再次显示：")
    print(key)


@keys_app.command("list")
def key_list(org: str | None = typer.Argument(None, help="医疗机构代码或名称（默认全部）")) -> None:
    """列出接口密钥 (list keys; never the key itself)."""
    from phip import runtime
    from phip.orgs.keys import list_keys

    table = Table(title="接口密钥")
    for col in ("编号", "医疗机构代码", "前缀", "备注", "创建时间", "状态"):
        table.add_column(col)
    for k in list_keys(runtime.engine(), _resolve_org(org).code if org else None):
        table.add_row(str(k.id), k.org_code, k.prefix + "…", k.label or "", f"{k.created_at:%Y-%m-%d %H:%M}",
                      f"已吊销 {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "有效")
    console.print(table)


@keys_app.command("revoke")
def key_revoke(ref: str = typer.Argument(..., help="密钥编号或前缀")) -> None:
    """吊销接口密钥，立即生效 (revoke a key, effective at once)."""
    from phip import runtime
    from phip.orgs.keys import revoke_key

    if revoke_key(runtime.engine(), ref) == 0:
        fail(f"没有可吊销的密钥“{ref}”（不存在或已吊销）", "UNKNOWN_KEY")
    console.print(f"密钥 {ref} 已吊销")


# --- database -----------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """升级数据库结构到最新版本 (apply migrations)."""
    from phip import runtime

    runtime.engine()
    console.print("数据库已是最新版本")


@db_app.command("partitions")
def db_partitions(
    from_month: str = typer.Option(None, "--from", help="从该月起建分区（YYYY-MM），如补传历史数据之前"),
    to_month: str = typer.Option(None, "--to", help="建到该月（YYYY-MM），默认与 --from 相同"),
) -> None:
    """按月分区（PostgreSQL）：列出各表的月分区及行数、大小；给出 --from 时先建缺少的月份 (monthly partitions)."""
    from phip import runtime
    from phip.store import partitions

    engine = runtime.engine()
    if engine.dialect.name != "postgresql":
        console.print("SQLite 存储不分区（单表布局），无需此操作")
        return
    if from_month:
        start, end = _month(from_month, "--from"), _month(to_month or from_month, "--to")
        if end < start:
            fail("--to 不能早于 --from", "BAD_MONTH_RANGE")
        months, m = [], start
        while m <= end:
            months.append(m)
            m = partitions.add_months(m, 1)
        with engine.begin() as conn:
            created = partitions.ensure_months(conn, months)
        console.print(f"新建分区 {len(created)} 个" + (f"：{', '.join(created)}" if created else "（均已存在）"))
    with engine.connect() as conn:
        rows = partitions.listing(conn)
    table = Table("表", "分区", "约行数", "大小 MB")
    for r in rows:
        table.add_row(str(r["table"]), str(r["partition"]), f"{r['rows']:,}", f"{int(r['bytes']) / 2**20:,.1f}")
    console.print(table)


@db_app.command("archive")
def db_archive(
    month: str = typer.Option(..., "--month", help="归档的月份（YYYY-MM），须早于上月"),
    to: Path = typer.Option(..., "--to", help="Parquet 文件写入的目录"),
) -> None:
    """按月归档（PostgreSQL）：该月的记录、历史版本和问题写成 Parquet 文件并从库中移出；统计报表不受影响 (archive a month)."""
    from phip import runtime
    from phip.standard.validate import platform_now
    from phip.store.archive import archive_month

    now = platform_now()
    parts = archive_month(runtime.engine(), _month(month, "--month"), to, now.date(), now)
    for p in parts:
        console.print(f"{p.table}：{p.rows:,} 行 → {p.path}（SHA-256 {p.sha256[:16]}…）", highlight=False)
    console.print(f"{month} 已归档；恢复：phip db restore --month {month}")


@db_app.command("restore")
def db_restore(month: str = typer.Option(..., "--month", help="恢复的月份（YYYY-MM）")) -> None:
    """恢复已归档的月份：校验归档文件后把数据放回库中 (restore an archived month)."""
    from phip import runtime
    from phip.store.archive import restore_month

    parts = restore_month(runtime.engine(), _month(month, "--month"))
    console.print(f"{month} 已恢复：" + "，".join(f"{p.table} {p.rows:,} 行" for p in parts), highlight=False)


def _month(value: str, option: str):  # noqa: ANN202 - a date
    from datetime import datetime as dt

    try:
        month = dt.strptime(value, "%Y-%m").date()
    except ValueError:
        fail(f"{option} 应为年月，如 2024-01（收到“{value}”）", "BAD_MONTH")
    if not 1900 <= month.year <= 2999:  # as the report periods; 9999-12's next month was a traceback
        fail(f"{option} 的年份超出范围（1900–2999）（收到“{value}”）", "BAD_MONTH")
    return month


#: bounds of the synthetic-data commands (generate, demo, simulate push): ten years of days, a
#: big hospital's visits; beyond them dates overflowed the calendar (a traceback)
MAX_DAYS, MAX_VISITS = 3650, 100_000


# --- ingest -------------------------------------------------------------------------------------


def _resolve_org(ref: str):  # noqa: ANN202 - InstitutionRow, imported lazily to keep start-up light
    from phip import runtime
    from phip.orgs.service import find_institution

    inst = find_institution(runtime.engine(), ref)
    if inst is None:
        fail(f"医疗机构“{ref}”未登记或名称不唯一；用 phip orgs list 查看", "UNKNOWN_ORG")
    return inst


@app.command()
def ingest(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="JSON / NDJSON / CSV / XLSX 文件"),
    org: str = typer.Option(..., "--org", help="医疗机构代码或名称"),
    dataset: str = typer.Option(..., "--dataset", help="数据集编码或序号"),
    format: str | None = typer.Option(None, "--format", help="json | ndjson | csv | xlsx（默认按扩展名）"),
    batch_size: int = typer.Option(1000, "--batch-size", min=1, max=10000),
    show: int = typer.Option(10, "--show", help="显示前几条拒收记录"),
) -> None:
    """导入数据文件 (load a file through the ingest pipeline)."""
    from phip import runtime
    from phip.ingest.files import ingest_file

    ds = _dataset(dataset)
    org_code = _resolve_org(org).code
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("条"),
                  TimeElapsedColumn(), console=console, transient=False) as progress:
        task = progress.add_task(f"导入 {file.name} → {ds.name}", total=None)
        # a FileFormatError or IngestError goes on to main, which says it (exit_codes)
        receipt = ingest_file(runtime.pipeline(), file, org_code, ds.code, fmt=format, batch_size=batch_size,
                              on_batch=lambda r: progress.advance(task, r.total), keep_rejections=max(show, 0))
        progress.update(task, total=progress.tasks[0].completed)
    _print_receipt(receipt, show)
    if receipt.total == 0:  # a day without records is possible; a wrong file is likelier: say it
        console.print(f"注意：{file.name} 中没有记录（文件为空或只有表头），未导入任何数据", highlight=False)


def _print_receipt(receipt, show: int) -> None:  # noqa: ANN001
    table = Table(title="回执 (receipt)")
    for col in ("总数", "新增", "更新", "未变化", "拒收", "含警告"):
        table.add_column(col, justify="right")
    table.add_row(*(str(x) for x in (receipt.total, receipt.accepted, receipt.updated, receipt.unchanged,
                                      receipt.rejected, receipt.warnings)))
    console.print(table)
    if receipt.rejections:
        console.print(f"[bold]前 {min(show, len(receipt.rejections))} 条拒收记录：[/]")
        for r in receipt.rejections[:show]:
            reasons = "；".join(f"[{f.code}] {f.message}" for f in r.findings if f.severity == "error")
            console.print(f"  第{r.index + 1}条 {r.record_key or ''}：{reasons}", highlight=False)
    if receipt.rejected > min(show, len(receipt.rejections)):
        console.print(f"全部 {receipt.rejected} 条拒收记录及原因已随批次保存，医疗机构可通过接口 /api/v1/feedback 获取，"
                      "运维人员可用 phip quality rejections 查看（同一条源记录只记一次）。", highlight=False)


# --- synthetic data and demo --------------------------------------------------------------------


@app.command()
def generate(
    out: Path = typer.Option(..., "--out", help="输出文件（.ndjson / .json / .csv）"),
    dataset: str = typer.Option("outpatient_visit", "--dataset"),
    org: str = typer.Option(..., "--org", help="医疗机构代码或名称"),
    days: int = typer.Option(1, "--days", min=1, max=MAX_DAYS),
    visits: int = typer.Option(100, "--visits", min=1, max=MAX_VISITS, help="每天门诊人次"),
    seed: int = typer.Option(1, "--seed"),
    error_rate: float = typer.Option(0.0, "--error-rate", min=0.0, max=1.0, help="植入错误的比例"),
) -> None:
    """生成合成数据文件 (write a synthetic data file for one data set)."""
    from phip.synth.files import generate_file

    ds = _dataset(dataset)
    inst = _resolve_org(org)
    written, planted = generate_file(out, ds, (inst.code, inst.name), days=days, visits=visits, seed=seed,
                                     error_rate=error_rate)
    console.print(f"已生成 {written} 条 {ds.name} 记录 → {out}（植入错误 {planted} 条）")


@app.command()
def demo(
    # 30 days so every 30-day chart has a shape; 5 visits a day: `make run` loads in ~3.5 min on 2 cores
    days: int = typer.Option(30, "--days", min=1, max=MAX_DAYS, help="生成最近几天的数据"),
    visits: int = typer.Option(5, "--visits", min=1, max=MAX_VISITS, help="每家机构每天门诊人次"),
    seed: int = typer.Option(2026, "--seed"),
    if_empty: bool = typer.Option(False, "--if-empty", help="库中已有数据时跳过"),
) -> None:
    """载入演示省份：66家机构最近几天的合成数据 (load the demo province)."""
    from phip import runtime
    from phip.demo import DEMO_PASSWORD, load_demo, load_sharing_demo, store_is_empty

    engine = runtime.engine()
    if if_empty and not store_is_empty(engine):
        console.print("演示数据已存在，跳过（去掉 --if-empty 可追加）")
        return
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("载入演示数据（机构×天）", total=None)
        totals = load_demo(runtime.pipeline(), days=days, visits=visits, seed=seed,
                           on_step=lambda done, total: progress.update(task, completed=done, total=total))
    console.print(f"演示数据载入完成：新增 {totals.accepted} 条，更新 {totals.updated} 条，拒收 {totals.rejected} 条")
    if load_sharing_demo(runtime.pipeline()):
        console.print(f"演示账户（密码均为 {DEMO_PASSWORD}）：ops 运维人员、auditor 审计员、"
                      "cc_wjw 长春市卫健委（只读）、doctor1 / doctor2 医生、"
                      "居民 王秀英 / 李建国 用身份证号登录（见 README“如何以各角色登录”）")


simulate_app = typer.Typer(help="模拟医疗机构 (play a hospital)", no_args_is_help=True)
app.add_typer(simulate_app, name="simulate")


@simulate_app.command("push")
def simulate_push(
    org: str = typer.Option(..., "--org", help="医疗机构代码或名称"),
    days: int = typer.Option(1, "--days", min=1, max=MAX_DAYS),
    visits: int = typer.Option(50, "--visits", min=1, max=MAX_VISITS, help="每天门诊人次"),
    url: str = typer.Option("http://127.0.0.1:8000", "--url", help="平台地址"),
    key: str | None = typer.Option(None, "--key", envvar="PHIP_API_KEY", help="接口密钥（默认在本地平台新建一个）"),
    seed: int = typer.Option(7, "--seed"),
) -> None:
    """模拟医院通过接口上传最近N天的全部数据集 (generate N days and push them over HTTP)."""
    from phip import runtime
    from phip.orgs.keys import create_key
    from phip.synth.simulate import push_batches, simulated_batches

    inst = _resolve_org(org)
    if key is None:
        key = create_key(runtime.engine(), inst.code, "simulate push")[1]
    batches = simulated_batches((inst.code, inst.name), days=days, visits=visits, seed=seed)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task(f"上传 {inst.name}", total=sum(len(records) for _, records in batches))
        # a refused batch (PushFailed) goes on to main, which says it (exit_codes)
        totals = push_batches(url, key, batches, on_pushed=lambda n: progress.advance(task, n))
    console.print("上传完成：" + "，".join(f"{k} {v}" for k, v in totals.items()))


#: an IPv4/IPv6 address or a host name (letters, digits, dots, hyphens): what uvicorn can bind
_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}|[0-9A-Fa-f:.]{2,45}")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    workers: int = typer.Option(1, "--workers", min=1, max=64),
) -> None:
    """启动平台服务 (run the HTTP service)."""
    if not _HOST.fullmatch(host) or any(len(label) > 63 for label in host.split(".")):
        fail(f"监听地址“{host}”无效，应为 IP 地址或主机名，如 127.0.0.1、0.0.0.0", "BAD_HOST")
    from phip.api.app import serve as run_service

    console.print(f"PHIP 已启动：http://{host}:{port}/")
    run_service(host, port, workers)


from phip.collect.cli import app as collect_app, worker as collect_worker  # noqa: E402  (issue 4: pull collection)

app.add_typer(collect_app, name="collect"); app.command("worker")(collect_worker)  # noqa: E702


def main(args: list[str] | None = None) -> None:
    """The ``phip`` command: Typer's app, with its usage errors said in Chinese
    (:mod:`phip.usage_errors`) and the exit codes Typer gives (2 for a usage error)."""
    import sys

    from phip.runtime import tune_gc
    from phip.usage_errors import UsageError, explain, help_hint

    tune_gc()  # every phip command is a batch process (see phip.gc_tuning.tune_gc)
    args = sys.argv[1:] if args is None else list(args)
    try:
        code = app(args=args, prog_name="phip", standalone_mode=False)
    except UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `phip standard`: its help, as Typer shows it
            app(args=[*args, "--help"], prog_name="phip", standalone_mode=False)
            sys.exit(2)
        code_, message = explain(exc)
        err.print(f"[bold red]错误[/] [{code_}] {message}", highlight=False)
        err.print(help_hint(exc), highlight=False)
        sys.exit(2)
    except typer.Abort:
        err.print("已取消")
        sys.exit(1)
    except PhipError as exc:
        status = exit_code(exc)
        if status is None:
            raise
        err.print(f"[bold red]错误[/] [{exc.code}] {exc.message}", highlight=False)
        sys.exit(status)
    except OSError as exc:  # a path given that is not there, a directory, not ours; a full disk
        code_, message, status = file_error(exc)
        err.print(f"[bold red]错误[/] [{code_}] {message}", highlight=False)
        sys.exit(status)
    sys.exit(code if isinstance(code, int) else 0)


#: errno → (code, what is wrong with the path, exit status: 2 for a path the operator gave)
_FILE_ERRORS = {errno.ENOENT: ("FILE_NOT_FOUND", "不存在", 2), errno.EISDIR: ("IS_A_DIRECTORY", "是目录，应为文件", 2),
                errno.ENOTDIR: ("NOT_A_DIRECTORY", "的上级路径不是目录", 2),
                errno.EACCES: ("PERMISSION_DENIED", "没有读写权限", 2), errno.EPERM: ("PERMISSION_DENIED", "没有读写权限", 2),
                errno.EROFS: ("READ_ONLY", "位于只读文件系统", 2), errno.ENOSPC: ("DISK_FULL", "所在磁盘空间不足", 1)}


def file_error(exc: OSError) -> tuple[str, str, int]:
    """An OSError a command let escape, said in Chinese with a stable code (no traceback)."""
    code_, what, status = _FILE_ERRORS.get(exc.errno or 0, ("IO_ERROR", f"读写失败（{exc.strerror or type(exc).__name__}）", 1))
    where = f"“{exc.filename}”" if exc.filename is not None else "文件"
    return code_, f"{where}{what}", status


if __name__ == "__main__":
    main()



