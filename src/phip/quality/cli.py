"""``phip quality …``: run the analysis and look at findings (thin layer over the services)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from phip import audit
from phip.errors import CommandError

app = typer.Typer(help="数据质控 (quality control)", no_args_is_help=True)
console = Console()


def _fail(message: str, code: str) -> NoReturn:
    raise CommandError(code, message)  # said by phip.cli.main


def _institution(engine, ref: str):  # noqa: ANN001, ANN202 - an Engine; an InstitutionRow
    """The institution an --org names (code, name or a unique part of it); UNKNOWN_ORG else."""
    from phip.orgs.service import find_institution

    inst = find_institution(engine, ref)
    if inst is None:
        _fail(f"医疗机构“{ref}”未登记或名称不唯一", "UNKNOWN_ORG")
    return inst


def _org_code(engine, ref: str) -> str:  # noqa: ANN001 - an Engine
    return _institution(engine, ref).code


def _day(text: str | None, default: date) -> date:
    if not text:
        return default
    try:
        day = date.fromisoformat(text)
    except ValueError:
        _fail(f"日期“{text}”无效，应为 YYYY-MM-DD", "BAD_DATE")
    if not 1900 <= day.year <= 2999:  # as the report periods; 9999-12-31 overflowed the window's end
        _fail(f"日期“{text}”的年份超出范围（1900–2999）", "BAD_DATE")
    return day


@app.command("run")
def run(
    org: list[str] = typer.Option(None, "--org", help="医疗机构代码或名称（可多次给出；默认全部已上传数据的机构）"),
    dataset: str | None = typer.Option(None, "--dataset", help="只分析一个数据集"),
    day_from: str | None = typer.Option(None, "--from", help="业务发生日起（默认：近7天，加上次分析以来收到数据的业务日）"),
    day_to: str | None = typer.Option(None, "--to", help="业务发生日止（默认今天）"),
) -> None:
    """对机构已存储的数据进行质控分析 (analyse stored records; findings and scores).

    Without --from/--to: the last seven event days plus every event day that received records
    since the institution's last analysis (a back-fill is analysed on the days it happened)."""
    from phip import runtime
    from phip.orgs.service import list_institutions
    from phip.quality.run import analyse
    from phip.quality.window import analyse_windows
    from phip.standard.catalog import load_standard
    from phip.standard.validate import platform_now

    engine = runtime.engine()
    today = platform_now().date()
    explicit = bool(day_from or day_to)
    start, end = _day(day_from, today - timedelta(days=7)), _day(day_to, today)
    if end < start:
        _fail("结束日期早于开始日期", "BAD_PERIOD")
    if dataset:
        try:
            dataset = load_standard().dataset(dataset).code
        except KeyError:
            _fail(f"数据集“{dataset}”不存在", "UNKNOWN_DATASET")
    if org:
        codes = [_org_code(engine, ref) for ref in org]
    else:
        codes = [r.code for r in list_institutions(engine) if r.first_upload_at]
    table = Table(title=f"质控分析 {start} ~ {end}" if explicit else "质控分析（近7天及新收到数据的业务日）")
    for col in ("机构", "业务日", "记录数", "问题数", "主要问题"):
        table.add_column(col)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("分析机构", total=len(codes))
        for code in codes:
            results = ([analyse(engine, code, start, end, dataset=dataset)] if explicit
                       else analyse_windows(engine, code, today, dataset=dataset))
            for result in results:
                top = sorted(result.by_code.items(), key=lambda kv: -kv[1])[:3]
                table.add_row(code, f"{result.day_from} ~ {result.day_to}", str(result.records), str(result.findings),
                              "，".join(f"{c} {n}" for c, n in top))
            progress.advance(task)
    console.print(table)


@app.command("findings")
def findings(
    org: str = typer.Option(..., "--org", help="医疗机构代码或名称"),
    dimension: str | None = typer.Option(None, "--dimension"),
    limit: int = typer.Option(20, "--limit", min=1, max=1000),
) -> None:
    """列出机构的质控问题（证件号、电话已脱敏）(list findings, masked)."""
    from phip import runtime
    from phip.quality.service import find

    engine = runtime.engine()
    inst = _institution(engine, org)
    items, total = find(engine, org_code=inst.code, dimension=dimension, size=limit)
    audit.log_reads(engine, audit.local_operator(), "export.download",
                    audit.persons_of_records(engine, ((f.org_code, f.dataset, f.record_key) for f in items)),
                    target="cli:quality findings", detail={"org": inst.code, "rows": len(items)})
    table = Table(title=f"{inst.name} 质控问题（共{total}条，显示{len(items)}条）")
    for col in ("业务日", "数据集", "记录", "代码", "问题", "示例"):
        table.add_column(col)
    for f in items:
        table.add_row(str(f.day), f.dataset_name, f.record_key or "", f.code, f.message,
                      " ".join(f"{k} {v}" for k, v in f.example.items()))
    console.print(table)


@app.command("rejections")
def rejections(
    org: str | None = typer.Option(None, "--org", help="医疗机构代码或名称（默认全部）"),
    dataset: str | None = typer.Option(None, "--dataset", help="数据集编码、序号或名称（默认全部）"),
    all_: bool = typer.Option(False, "--all", help="同时列出已纠正（修正后的记录已接收）的拒收记录"),
    limit: int = typer.Option(5, "--limit", min=1, max=1000, help="每个机构×数据集显示的示例条数"),
    as_json: bool = typer.Option(False, "--json", help="以JSON输出（证件号、电话同样脱敏）"),
) -> None:
    """列出拒收记录：按机构和数据集计数，附脱敏示例 (rejections per institution and data set, masked)."""
    import orjson

    from phip import runtime
    from phip.quality import rejections as service
    from phip.standard.catalog import load_standard

    engine = runtime.engine()
    org_code = _org_code(engine, org) if org else None
    if dataset:
        try:
            dataset = load_standard().dataset(dataset).code
        except KeyError:
            _fail(f"数据集“{dataset}”不存在；用 phip standard list 查看全部数据集", "UNKNOWN_DATASET")
    found = service.groups(engine, org_code=org_code, dataset=dataset, include_resolved=all_)
    shown = [(g, service.find(engine, g.org_code, g.dataset, include_resolved=all_, size=limit)[0]) for g in found]
    audit.log_event(engine, audit.local_operator(), "export.download", target="cli:quality rejections",
                    detail={"org": org_code, "dataset": dataset, "rows": sum(len(v) for _, v in shown)})
    if as_json:
        print(orjson.dumps({"groups": [
            {"org_code": g.org_code, "org_name": g.org_name, "dataset": g.dataset, "dataset_name": g.dataset_name,
             "open": g.open, "resolved": g.resolved, "times_seen": g.times_seen,
             "last_seen": g.last_seen.isoformat(sep=" ") if g.last_seen else None,
             "examples": [service.as_json(v) for v in views]} for g, views in shown]},
            option=orjson.OPT_INDENT_2).decode())
        return
    if not shown:
        console.print("没有拒收记录" if all_ else "没有未纠正的拒收记录")
        return
    for g, views in shown:
        counts = f"未纠正 {g.open} 条" + (f"，已纠正 {g.resolved} 条" if all_ else "") + f"，未纠正的累计被拒收 {g.times_seen} 次"
        table = Table(title=f"{g.org_name}（{g.org_code}）· {g.dataset_name}：{counts}", title_justify="left")
        for col in ("记录", "首次拒收", "最近拒收", "次数", "原因", "示例（已脱敏）", *(["状态"] if all_ else [])):
            table.add_column(col, overflow="fold")
        for v in views:
            table.add_row(v.record_key or "（无法识别）", f"{v.first_seen:%Y-%m-%d %H:%M}", f"{v.last_seen:%Y-%m-%d %H:%M}",
                          str(v.times_seen), v.reasons, "；".join(f"{k} {val}" for k, val in v.example.items()),
                          *([f"已纠正 {v.resolved_at:%Y-%m-%d %H:%M}" if v.resolved_at else "未纠正"] if all_ else []))
        console.print(table)
        more = (g.open + (g.resolved if all_ else 0)) - len(views)
        if more > 0:
            console.print(f"  另有 {more} 条未显示（--limit 调整示例条数）", highlight=False)


supervision_app = typer.Typer(help="互联网医院监管 (internet-hospital supervision)", no_args_is_help=True)


@supervision_app.command("run")
def supervision_run(
    org: list[str] = typer.Option(None, "--org", help="互联网医院代码（可多次给出；默认全部上传了互联网医院数据的机构）"),
    day_from: str | None = typer.Option(None, "--from", help="业务发生日起（默认近7天）"),
    day_to: str | None = typer.Option(None, "--to", help="业务发生日止（默认今天）"),
) -> None:
    """按监管规则分析互联网医院数据 (run the supervision rules; findings go to the feedback API)."""
    from phip import runtime
    from phip.quality.rules import load_supervision_rules
    from phip.quality.run import analyse
    from phip.quality.supervision_report import internet_hospitals
    from phip.standard.validate import platform_now

    engine = runtime.engine()
    today = platform_now().date()
    end = _day(day_to, today)
    start = _day(day_from, end - timedelta(days=6))
    codes = [_org_code(engine, ref) for ref in org] if org else [c for c, _ in internet_hospitals(engine)]
    for code in codes:
        result = analyse(engine, code, start, end, rules=load_supervision_rules(), mark=False)
        console.print(f"{code}: {result.records} 条记录，{result.findings} 条监管发现 "
                      + "，".join(f"{k} {v}" for k, v in sorted(result.by_code.items())), highlight=False)


@supervision_app.command("report")
def supervision_report(
    month: str | None = typer.Option(None, "--month", help="月份 YYYY-MM（默认本月）"),
    org: str | None = typer.Option(None, "--org", help="只含一家互联网医院"),
    out: str = typer.Option("supervision-report.xlsx", "--out", help="输出的 XLSX 文件"),
) -> None:
    """导出互联网医院监管月报 (the monthly supervision report as XLSX)."""
    from pathlib import Path

    from phip import runtime
    from phip.quality.supervision_report import monthly_xlsx, summary
    from phip.reports.period import PeriodError, month_of, parse_period
    from phip.standard.validate import platform_now

    try:
        period = parse_period(month) if month else month_of(platform_now().date())
    except PeriodError as exc:
        _fail(exc.message, exc.code)
    engine = runtime.engine()
    org = _org_code(engine, org) if org is not None else None
    Path(out).write_bytes(monthly_xlsx(engine, period.start, period.end, org))
    s = summary(engine, period.start, period.end, org)
    table = Table("互联网医院", "预约", "问诊", "处方", "审核率(%)", "违规")
    for h in [*s.hospitals, s.total]:
        table.add_row(h.name, str(h.appointments), str(h.consultations), str(h.prescriptions),
                      "—" if h.reviewed_share is None else str(h.reviewed_share), str(h.violations))
    console.print(table)
    console.print(f"已写入 {out}", highlight=False)
