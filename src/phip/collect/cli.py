"""``phip collect probe|run|status`` and ``phip worker``: thin commands over the collect services.

A source is named by its mapping file (a path) or by its name in the sources directory
(``PHIP_COLLECT_DIR``, default ``<data dir>/collect``). URLs are only ever printed masked.
Errors end with a Chinese message, a stable code and exit code 2.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from phip.errors import CommandError

if TYPE_CHECKING:  # the mapping module loads sqlglot (0.13 s): only commands that read a mapping pay it
    from .mapping import Job, Mapping

app = typer.Typer(help="数据采集 (pull collection from hospital databases through read-only accounts)", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

STATUS_LABELS = {"ok": "成功", "failed": "失败", "running": "运行中", "interrupted": "中断", "skipped": "未执行"}
MODE_LABELS = {"incremental": "增量", "full": "全量", "backfill": "历史补采", "checksum": "变更检测"}


def _fail(message: str, code: str) -> NoReturn:
    raise CommandError(code, message)  # said by phip.cli.main


def _mapping(ref: str) -> Mapping:
    from .mapping import find_mapping

    return find_mapping(ref)  # a MappingError is said by phip.cli.main


class _Bars:
    """Rich progress: one bar per data set."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def start(self, job: Job, total: int | None) -> None:
        if job.key not in self.tasks:
            self.tasks[job.key] = self.progress.add_task(f"{job.key}", total=total)
        else:
            self.progress.update(self.tasks[job.key], total=total)

    def advance(self, job: Job, rows: int) -> None:
        self.progress.advance(self.tasks[job.key], rows)


@app.command("probe")
def probe(
    source: str = typer.Argument(..., help="映射文件、数据源名称，或数据库连接串（可含 ${变量}）"),
    out: Path | None = typer.Option(None, "--out", "-o", help="映射草稿输出文件（默认 <名称>.skeleton.yaml）"),
    org: str = typer.Option("<医疗机构代码>", "--org", help="写入草稿的医疗机构代码"),
    name: str | None = typer.Option(None, "--name", help="写入草稿的数据源名称"),
    count: bool = typer.Option(True, "--count/--no-count", help="统计每张表的行数"),
) -> None:
    """探查数据源：列出表、列（含注释）、类型、行数，并生成映射草稿 (list tables and write a mapping skeleton)."""
    from .mapping import Mapping, MappingError, SourceSpec
    from .probe import dry_run, inspect_source, propose, skeleton
    from .source import describe_error, mask_url, open_source, source_url

    if "://" in source:
        mapping = Mapping.model_construct(source=SourceSpec.model_construct(
            name=name or "new_source", org=org, url=source, connect_timeout=10, dialect=None))
        raw_url = source
    else:
        mapping = _mapping(source)
        raw_url = mapping.source.url
        org = mapping.source.org if org.startswith("<") else org
    label = name or mapping.source.name
    url = source_url(mapping)
    engine = open_source(mapping)
    try:
        with console.status(f"正在探查 {mask_url(url)} …"):
            tables = inspect_source(engine, count=count)
    except Exception as exc:  # noqa: BLE001 - any driver failure: say so without the password
        engine.dispose()
        _fail(f"无法探查数据源（{mask_url(url)}）：{describe_error(exc, url)}", "SOURCE_DOWN")
    for t in tables:
        table = Table(title=f"{t.name}  {t.comment or ''}  {'' if t.rows is None else f'{t.rows}行'}", title_justify="left")
        for col in ("列名", "类型", "可空", "注释"):
            table.add_column(col)
        for c in t.columns:
            table.add_row(c.name, c.type, "是" if c.nullable else "", c.comment or "")
        console.print(table)
    proposals = propose(tables)
    target = out or Path(f"{label}.skeleton.yaml")
    # The URL written is the one given, placeholders intact; a literal password is masked.
    written = mask_url(raw_url) if "${" not in raw_url else raw_url
    draft = skeleton(label, org, written, proposals, engine.dialect.name)
    trials: dict[str, str] = {}
    try:
        with console.status("正在试运行映射草稿（每个数据集取少量行映射并校验，不入库）…"):
            trials = dry_run(engine, draft)
        draft = skeleton(label, org, written, proposals, engine.dialect.name, trials)
    except MappingError as exc:
        err.print(f"[yellow]注意[/] 草稿未能加载（[{exc.code}] {exc.message}），请按 TODO 补全", highlight=False)
    except Exception as exc:  # noqa: BLE001 - the draft is still written; the trial is a help
        err.print(f"[yellow]注意[/] 试运行失败：{describe_error(exc, url)}", highlight=False)
    finally:
        engine.dispose()
    target.write_text(draft, encoding="utf-8")
    summary = Table(title="映射建议（详见草稿中每个字段的置信度与理由）")
    for col in ("数据集", "主表", "关联表", "必填字段", "平均置信度", "状态", "试运行"):
        summary.add_column(col)
    for p in proposals:
        required = [f for f in p.dataset.fields if f.required and f.name not in ("org_code", "org_name")]
        mean = sum(m.confidence for m in p.matches) / max(len(p.matches), 1)
        summary.add_row(f"{p.dataset.number:02d} {p.dataset.code}", p.table.name, "、".join(j.table.name for j in p.joins),
                        f"{len(required) - len(p.missing_required)}/{len(required)}", f"{mean:.2f}",
                        "可运行" if p.complete else "缺必填，已注释", trials.get(p.dataset.code, ""))
    console.print(summary)
    for p in proposals:
        for m in p.matches:
            for note in m.notes:
                if note.startswith(("猜测", "TODO")):
                    console.print(f"[yellow]{p.dataset.code}.{m.field.name}[/]：{note}", highlight=False)
        for w in p.warnings:
            console.print(f"[yellow]{p.dataset.code}[/]：{w}", highlight=False)
    console.print(f"共 {len(tables)} 张表；为 {len(proposals)} 个数据集建议了映射"
                  f"（可直接运行 {sum(p.complete for p in proposals)} 个）→ {target}", highlight=False)


@app.command("run")
def run(
    source: str = typer.Argument(..., help="映射文件或数据源名称"),
    dataset: list[str] = typer.Option(None, "--dataset", "-d", help="只采集这些数据集（可重复）"),
    full: bool = typer.Option(False, "--full", help="忽略游标，全量重采（已有数据按内容去重，不会重复）"),
    backfill: bool = typer.Option(False, "--backfill", help="历史补采：全量读取并按历史数据对待（质控按业务日期分析，接入前的数据不判迟报）"),
    analyse_now: bool = typer.Option(False, "--analyse", help="采集后立即对本次收到数据的业务日做质控分析（默认留给夜间分析）"),
) -> None:
    """按映射采集数据源并送入统一入库流程 (extract, map and ingest).

    A job's first run, and every job with --backfill, loads the source's history as history
    (mode 历史补采): the quality analysis covers the event days it brought in."""
    from phip import runtime

    from .runner import Collector
    from .source import mask_url

    mapping = _mapping(source)
    collector = Collector(runtime.engine(), runtime.pipeline())
    console.print(f"数据源 {mapping.name}（{mask_url(mapping.source.url)}）→ 机构 {mapping.source.org}"
                  + ("，历史补采" if backfill else "，全量" if full else "，增量"), highlight=False)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("行"),
                  TimeElapsedColumn(), console=console) as progress:
        # a SourceBusy, MappingError or IngestError is said by phip.cli.main
        results = collector.run(mapping, dataset or None, full=full, backfill=backfill, progress=_Bars(progress),
                                count=True)
    table = Table(title="采集结果")
    for col in ("数据集", "方式", "状态", "读取", "新增", "更新", "未变化", "拒收", "含警告", "游标/校验块", "错误"):
        table.add_column(col)
    for r in results:
        where = f"{r.chunks_changed}/{r.chunks} 块有变化" if r.chunks is not None else (r.cursor or "")
        table.add_row(r.job, MODE_LABELS.get(r.mode, r.mode), STATUS_LABELS.get(r.status, r.status), str(r.rows_read),
                      str(r.accepted), str(r.updated), str(r.unchanged), str(r.rejected), str(r.warnings), where,
                      r.error or "")
    console.print(table)
    _history(results, mapping.source.org, analyse_now)
    if any(r.rejected for r in results):
        console.print("拒收记录及原因已保存（同一条源记录重复采集只记一次），医疗机构可通过 GET /api/v1/feedback 获取，"
                      "运维人员可用 phip quality rejections 查看。", highlight=False)
    if any(r.status != "ok" for r in results):
        raise typer.Exit(2)


def _history(results: list, org_code: str, analyse_now: bool) -> None:  # noqa: ANN001
    """Say which event days a back-fill brought in and, with --analyse, analyse them now."""
    from phip.store.dayranges import merge, to_ranges

    ranges = merge([r for res in results for r in to_ranges(res.event_days)], gap_days=7)
    if not ranges:
        return
    if any(r.mode == "backfill" for r in results):
        shown = "、".join(f"{a} ~ {b}" for a, b in ranges[:5]) + ("等" if len(ranges) > 5 else "")
        console.print(f"历史补采的数据业务日期：{shown}。质控分析按这些业务日期进行（夜间分析或 phip quality run），"
                      "机构接入日期之前的业务不判为迟报。", highlight=False)
    if analyse_now:
        from phip import runtime
        from phip.quality.run import analyse

        for a, b in ranges:
            result = analyse(runtime.engine(), org_code, a, b)
            console.print(f"质控分析 {a} ~ {b}：{result.records} 条记录，{result.findings} 个问题", highlight=False)


@app.command("status")
def status(source: str | None = typer.Argument(None, help="数据源名称（默认全部）")) -> None:
    """各数据源、数据集的游标、最近一次采集、读取/入库/拒收条数和最近错误 (status)."""
    from phip import runtime

    from .state import status as collect_status

    rows = collect_status(runtime.engine(), source)
    if source is not None and not rows:
        _fail(f"没有数据源“{source}”的采集记录（数据源名称为映射文件的 source.name；不带参数列出全部）", "UNKNOWN_SOURCE")
    table = Table(title="数据采集状态")
    for col in ("数据源", "数据集", "方式", "游标", "最近采集", "状态", "读取", "新增", "更新", "拒收", "错误", "下次采集"):
        table.add_column(col)
    for r in rows:
        run = r.run
        started = f"{run.started_at:%Y-%m-%d %H:%M:%S}" if run else ""
        state = STATUS_LABELS.get(run.status, run.status) if run else ""
        if run is not None and run.status == "running" and r.lease_holder is None:
            state = "中断"
        mode = MODE_LABELS.get(run.mode or "", run.mode or "") if run else ""
        if run is not None and run.chunks is not None:
            mode += f"（{run.chunks_changed}/{run.chunks} 块有变化）"
        table.add_row(r.source, r.job, mode, r.cursor or "", started, state, str(run.rows_read if run else 0),
                      str(run.accepted if run else 0), str(run.updated if run else 0), str(run.rejected if run else 0),
                      (run.error or "") if run else "", f"{r.next_run_at:%Y-%m-%d %H:%M}" if r.next_run_at else "")
    console.print(table)
    if not rows:
        console.print("尚无采集记录：用 phip collect run <数据源> 开始采集")


def worker(
    once: bool = typer.Option(False, "--once", help="只检查一轮（调试、cron）"),
    poll: float = typer.Option(30.0, "--poll", min=0.1, help="两轮检查的间隔秒数"),
) -> None:
    """后台进程：按各数据源的 schedule 定时采集，并在每天 PHIP_QUALITY_AT（默认02:30）后做质控分析；多个进程可同时运行 (scheduled collection and nightly quality analysis)."""
    from phip import runtime

    from .mapping import sources_dir
    from .scheduler import PassReport, Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    w = Worker(runtime.engine(), runtime.pipeline())  # a bad PHIP_QUALITY_AT: ScheduleError, said by main
    console.print(f"采集进程 {w.holder} 启动，数据源目录 {sources_dir()}", highlight=False)

    def report(p: PassReport) -> None:
        for name, results in p.ran.items():
            bad = [r for r in results if r.status != "ok"]
            console.print(f"{name}：读取 {sum(r.rows_read for r in results)} 行，新增 {sum(r.accepted for r in results)}，"
                          f"拒收 {sum(r.rejected for r in results)}" + (f"，失败：{bad[0].error}" if bad else ""), highlight=False)
        for name in p.busy:
            console.print(f"{name}：正由其他采集进程处理，跳过", highlight=False)
        for name, message in p.broken.items():
            console.print(f"[red]{name}：{message}[/]", highlight=False)
        for result in p.quality:
            console.print(f"质控分析 {result.org_code}（{result.day_from} ~ {result.day_to}）：{result.records} 条记录，"
                          f"{result.findings} 个问题", highlight=False)

    w.loop(poll=poll, once=once, on_pass=report)
