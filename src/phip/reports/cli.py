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


def _region(text: str | None) -> str | None:
    """A region's code (GB/T 2260, as in orgs/data/regions.csv) from its code or name (长春市);
    an unknown one is refused rather than answered with an empty report."""
    from phip.orgs.codes import region_by_name

    if text is None:
        return None
    found = region_by_name(text)
    if found is None or found.level == "province":
        _fail(f"地区“{text}”不在区划表中；应为市或区县的区划代码（如 220100）或名称（如 长春市）", "UNKNOWN_REGION")
    return found.code


@app.command("upload")
def upload(
    period: str = typer.Option(..., "--period", help="统计期：2021-03、2021-03..2021-04 或 2021-03-01..2021-04-30"),
    level: str = typer.Option("institution", "--level", help="city（各市）| county（区县）| provincial（省属医疗机构）| institution（医疗机构）"),
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
    report = upload_report(runtime.read_engine(), p, level, region_code=_region(region), sort=sort, extras=extras)
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


@app.command("chronic")
def chronic(
    period: str = typer.Option(..., "--period", help="统计期：2026-03、2026-01..2026-06 或 2026-01-01..2026-06-30"),
    level: str = typer.Option("institution", "--level", help="region（按地区）| institution（按基层医疗卫生机构）"),
    region: str | None = typer.Option(None, "--region", help="只统计一个地区（区划代码）"),
    out: Path | None = typer.Option(None, "--out", help="导出 .xlsx 文件；不给则在终端显示"),
) -> None:
    """慢病管理报告：高血压、2型糖尿病管理人数、随访人次、规范管理率 (chronic-disease management)."""
    from phip import runtime
    from phip.reports.chronic import DISEASES, FIGURES, cells, chronic_report, to_xlsx
    from phip.reports.period import parse_period

    if level not in ("region", "institution"):
        _fail(f"统计口径“{level}”无效，可选 region、institution", "BAD_LEVEL")
    if out is not None and out.suffix.lower() != ".xlsx":
        _fail("导出文件应为 .xlsx", "BAD_FORMAT")
    report = chronic_report(runtime.engine(), parse_period(period), level, region_code=_region(region))  # type: ignore[arg-type]
    if out is not None:
        to_xlsx(report, out)
        console.print(f"已导出 {report.title}：{len(report.rows)} 行 → {out}")
        return
    table = Table(title=report.title)
    table.add_column("地区" if level == "region" else "机构名称")
    for name, _, _ in DISEASES.values():
        for _, label in FIGURES:
            table.add_column(f"{name}{label}", justify="right")
    for row in [*report.rows, report.total]:
        table.add_row(row.name, *["—" if v is None else f"{v * 100:.2f}%" if isinstance(v, float) else str(v)
                                  for v in cells(row)])
    console.print(table)
    for note in report.notes:
        console.print(note)


@app.command("recount")
def recount_cmd(measure: str = typer.Argument(..., help="计数口径，如 lab_reports、discharges")) -> None:
    """按已存记录重算一个计数口径（新增口径后补齐历史；请在无数据接收时运行）(rebuild a measure)."""
    from phip import runtime
    from phip.reports.measures import load_measures, recount

    if measure not in load_measures():
        _fail(f"计数口径“{measure}”不存在，可选 {'、'.join(load_measures())}", "BAD_MEASURE")
    console.print(f"已重算 {measure}：{recount(runtime.engine(), measure):,} 条记录计入")
@app.command("recognition")
def recognition(
    period: str = typer.Option(..., "--period", help="统计期：2021-03、2021-03..2021-04 或 2021-03-01..2021-04-30"),
    level: str = typer.Option("institution", "--level", help="region（按地区）| institution（按医疗机构）"),
    region: str | None = typer.Option(None, "--region", help="只统计一个地区（区划代码）"),
    out: Path | None = typer.Option(None, "--out", help="导出文件（.xlsx）；不给则在终端显示"),
) -> None:
    """检查检验结果互认情况：互认、重复检查检验、节约费用 (the mutual-recognition report)."""
    from phip import runtime
    from phip.reports import export
    from phip.reports.period import parse_period
    from phip.reports.recognition import COLUMNS, recognition_report

    if level not in ("region", "institution"):
        _fail(f"统计口径“{level}”无效，可选 region、institution", "BAD_LEVEL")
    if out is not None and out.suffix.lower() != ".xlsx":
        _fail("导出文件应为 .xlsx", "BAD_FORMAT")
    report = recognition_report(runtime.engine(), parse_period(period), level, region_code=_region(region))  # type: ignore[arg-type]
    if out is not None:
        export.recognition_xlsx(report, out)
        console.print(f"已导出 {report.title}：{len(report.rows)} 行 → {out}")
        return
    table = Table(title=report.title)
    table.add_column("地区" if level == "region" else "医疗机构")
    for _, label in COLUMNS:
        table.add_column(label, justify="right")
    for row in [*report.rows, report.total]:
        cells = [row.value(k) for k, _ in COLUMNS]
        table.add_row(row.name, *("—" if v is None else f"{v * 100:.1f}%" if k == "rate" else f"{v:,.2f}" if isinstance(v, float)
                                  else str(v) for (k, _), v in zip(COLUMNS, cells, strict=True)))
    console.print(table)
    for note in report.notes:
        console.print(note)


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
def onboarding_cmd(
    kind: str | None = typer.Option(None, "--kind", help="hospital | business_system | external_system"),
    out: Path | None = typer.Option(None, "--out", help="导出周报表样 XLSX（说明句 + 对接情况表）"),
    scope: str = typer.Option("all", "--scope", help="all（全部医院）| provincial（中省直医院）"),
) -> None:
    """对接进度表（吉林表样：网络联通 / 数据上传 / 数据分析）及周报说明句 (onboarding status)."""
    from phip import runtime
    from phip.reports.onboarding import KIND_LABELS, METHODS
    from phip.reports.onboarding_sheet import SCOPES, summary_sentence, to_xlsx, weekly_rows
    from phip.standard.validate import platform_now

    if scope not in SCOPES:
        _fail(f"范围“{scope}”无效，可选 all、provincial", "BAD_SCOPE")
    engine = runtime.engine()
    if out is not None:
        if out.suffix.lower() != ".xlsx":
            _fail("导出文件应为 .xlsx", "BAD_FORMAT")
        out.write_bytes(to_xlsx(engine, scope))
        console.print(f"已导出对接情况表 → {out}")
        return
    rows = weekly_rows(engine, scope)
    console.print(summary_sentence(rows, platform_now().date(), scope))
    for k, label in KIND_LABELS.items():
        group = [s for s in rows if s.kind == k and (kind is None or s.kind == kind)]
        if not group:
            continue
        table = Table(title=label)
        for col in ("序号", "名称", "网络联通", "数据上传", "数据分析", "联通依据", "对接方式", "负责人", "对接开始时间"):
            table.add_column(col)
        for i, s in enumerate(group, 1):
            lab = s.labels
            method = METHODS.get(s.docking_method or "", "未确定") + ("（示例值）" if "docking_method" in s.placeholder else "")
            table.add_row(str(i), s.name, lab["network"], lab["upload"], lab["analysis"], s.network_basis, method,
                          s.contact_name or "", str(s.docking_start or ""))
        console.print(table)


@app.command("network")
def network(org: str = typer.Argument(..., help="机构代码或名称"), status: str = typer.Argument(..., help="connected | pending"),
            by: str | None = typer.Option(None, "--by", help="操作人（记入变更记录）")) -> None:
    """设置网络联通状态：近期无推送或采集时使用 (set network status where no data proves it)."""
    import getpass

    from phip import runtime
    from phip.orgs.service import find_institution
    from phip.reports.onboarding import NETWORK, set_network

    if status not in NETWORK:
        _fail("网络状态应为 connected（已联通）或 pending（待联通）", "BAD_STATUS")
    inst = find_institution(runtime.engine(), org)
    if inst is None:
        _fail(f"机构“{org}”未登记或名称不唯一", "UNKNOWN_ORG")
    set_network(runtime.engine(), inst.code, status, by or f"cli:{getpass.getuser()}")
    console.print(f"{inst.name}：网络{NETWORK[status]}（人工设置；近{_days()}天内有推送或采集时以数据为准）")


def _days() -> int:
    from phip.config import get_settings

    return get_settings().onboarding_window


@app.command("import-reply")
def import_reply_cmd(file: Path = typer.Argument(..., exists=True, dir_okay=False, help="对接工作回执（附件3）XLSX 或 CSV")) -> None:
    """导入对接工作回执（附件3）：地区联系人和各医疗机构的负责人、对接方式、开始时间 (import a reply form)."""
    from phip.reports.reply_form import import_reply

    result = _import_sheet(import_reply, file)
    console.print(f"{result.region_name}：已保存联系人 {result.contacts} 名，更新 {result.institutions} 家医疗机构的对接回执")


@app.command("reply-template")
def reply_template_cmd(out: Path = typer.Option(..., "--out", "-o", help="输出的 .xlsx 文件")) -> None:
    """生成空白对接工作回执（附件3）XLSX (the blank reply form)."""
    from phip.reports.reply_form import blank_form

    out.write_bytes(blank_form())
    console.print(f"已生成空白对接工作回执 → {out}")


@app.command("seed-systems")
def seed_systems_cmd() -> None:
    """登记示例登记表中尚未登记的机构和系统 (register the demo register's missing rows)."""
    from phip import runtime
    from phip.reports.onboarding import seed_systems

    console.print(f"新登记 {seed_systems(runtime.engine())} 个机构或系统")
