"""``phip reports …``: upload statistics, reported figures, onboarding status and reply forms."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.table import Table

from phip.errors import CommandError

app = typer.Typer(help="统计报表与对接进度 (reports and onboarding)", no_args_is_help=True)
console = Console()


def _fail(message: str, code: str) -> NoReturn:
    raise CommandError(code, message)  # said by phip.cli.main


@app.command("upload")
def upload(
    period: str = typer.Option(..., "--period", help="统计期：2021-03、2021-03..2021-04 或 2021-03-01..2021-04-30"),
    level: str = typer.Option("institution", "--level", help="city（各市）| county（区县）| institution（医疗机构）"),
    region: str | None = typer.Option(None, "--region", help="只统计一个地区（区划代码）"),
    sort: str | None = typer.Option(None, "--sort", help="排序列，如 volume、outpatient_rate"),
    extras: bool = typer.Option(False, "--extras", help="在简报表样之后加列：拒收、检验结果项目数"),
    out: Path | None = typer.Option(None, "--out", help="导出文件（.xlsx 或 .csv）；不给则在终端显示"),
) -> None:
    """数据上传统计表（江苏简报表样）(the upload statistics report)."""
    from phip import runtime
    from phip.reports import export
    from phip.reports.period import parse_period
    from phip.reports.uploads import LEVELS, SORT_KEYS, LevelError, level_of, upload_report

    try:
        level = level_of(level)
    except LevelError:
        _fail(f"统计口径“{level}”无效，可选 {'、'.join(LEVELS)}", "BAD_LEVEL")
    if sort and sort not in SORT_KEYS:
        _fail(f"排序列“{sort}”无效，可选 {'、'.join(sorted(SORT_KEYS))}", "BAD_SORT")
    p = parse_period(period)  # a PeriodError is said by phip.cli.main
    report = upload_report(runtime.engine(), p, level, region_code=region, sort=sort, extras=extras)
    if out is not None:
        if out.suffix.lower() == ".xlsx":
            export.to_xlsx(report, out)
        elif out.suffix.lower() == ".csv":
            export.to_csv(report, out)
        else:
            _fail("导出文件应为 .xlsx 或 .csv", "BAD_FORMAT")
        console.print(f"已导出 {export.title(report)}：{len(report.rows)} 行 → {out}")
        return
    table = Table(title=export.title(report))
    for h in export.header_labels(report):
        table.add_column(h, justify="right")
    for row in [*report.rows, report.total]:
        values = export.cells(report, row)
        table.add_row(row.name, *[f"{v * 100:.2f}%" if isinstance(v, float) else str(v) for v in values])
    console.print(table)


@app.command("recount")
def recount_cmd(measure: str = typer.Argument(..., help="计数口径，如 lab_reports、discharges")) -> None:
    """按已存记录重算一个计数口径（新增口径后补齐历史；请在无数据接收时运行）(rebuild a measure)."""
    from phip import runtime
    from phip.reports.measures import load_measures, recount

    if measure not in load_measures():
        _fail(f"计数口径“{measure}”不存在，可选 {'、'.join(load_measures())}", "BAD_MEASURE")
    console.print(f"已重算 {measure}：{recount(runtime.engine(), measure):,} 条记录计入")


def _import_sheet(load, file: Path):  # noqa: ANN001, ANN202
    """Run a sheet import (all rows or none); a bad sheet exits with its code and message."""
    from phip import runtime
    from phip.reports.sheet import SheetError

    try:
        return load(runtime.engine(), file)
    except SheetError as exc:
        _fail(exc.message + "；未导入任何数据", exc.code)


@app.command("import-reported")
def import_reported_cmd(file: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV 或 XLSX：机构、统计期、门急诊人次、出院人次")) -> None:
    """导入机构向统计直报系统报告的门急诊、出院人次（上传率的分母）(import reported figures)."""
    from phip.reports.reported import import_reported

    result = _import_sheet(import_reported, file)
    console.print(f"已导入 {result.rows} 行（{result.institutions} 家机构），其中未报告的单元格 {result.not_reported} 个")


@app.command("onboarding")
def onboarding_cmd(kind: str | None = typer.Option(None, "--kind", help="hospital | business_system | external_system")) -> None:
    """对接进度表（吉林表样：网络联通 / 数据上传 / 数据分析）(onboarding status)."""
    from phip import runtime
    from phip.reports.onboarding import KIND_LABELS, METHODS, onboarding_status

    rows = onboarding_status(runtime.engine(), kind)
    for k, label in KIND_LABELS.items():
        group = [s for s in rows if s.kind == k]
        if not group:
            continue
        table = Table(title=label)
        for col in ("序号", "名称", "网络联通", "数据上传", "数据分析", "对接方式", "负责人", "对接开始时间"):
            table.add_column(col)
        for i, s in enumerate(group, 1):
            lab = s.labels
            table.add_row(str(i), s.name, lab["network"], lab["upload"], lab["analysis"], METHODS.get(s.docking_method or "", "未确定"),
                          s.contact_name or "", str(s.docking_start or ""))
        console.print(table)


@app.command("network")
def network(org: str = typer.Argument(..., help="机构代码或名称"), status: str = typer.Argument(..., help="connected | pending")) -> None:
    """设置网络联通状态 (set network status; operators)."""
    from phip import runtime
    from phip.orgs.service import find_institution
    from phip.reports.onboarding import NETWORK, set_network

    if status not in NETWORK:
        _fail("网络状态应为 connected（已联通）或 pending（待联通）", "BAD_STATUS")
    inst = find_institution(runtime.engine(), org)
    if inst is None:
        _fail(f"机构“{org}”未登记或名称不唯一", "UNKNOWN_ORG")
    set_network(runtime.engine(), inst.code, status)
    console.print(f"{inst.name}：网络{NETWORK[status]}")


@app.command("import-reply")
def import_reply_cmd(file: Path = typer.Argument(..., exists=True, dir_okay=False, help="对接工作回执（附件3）CSV 或 XLSX")) -> None:
    """导入对接工作回执：负责人、职务、手机号、对接方式、对接开始时间 (import reply forms)."""
    from phip.reports.onboarding import import_reply

    n = _import_sheet(import_reply, file)
    console.print(f"已更新 {n} 家机构的对接回执")


@app.command("seed-systems")
def seed_systems_cmd() -> None:
    """登记吉林对接进度表中的业务系统和外部系统 (register business/external systems)."""
    from phip import runtime
    from phip.reports.onboarding import seed_systems

    console.print(f"新登记 {seed_systems(runtime.engine())} 个系统")
