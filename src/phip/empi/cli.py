"""``phip empi …``: thin commands over phip.empi services (患者主索引)."""

from __future__ import annotations

from datetime import date

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from phip.errors import CommandError
from phip.store.sql import MAX_ROW_ID

from . import edits, reads
from .errors import EmpiError

app = typer.Typer(help="患者主索引 EMPI (master patient index)", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

STAGE_LABELS = {"read": "读取居民", "predict": "Splink 评分", "cluster": "聚类", "write": "写回变更"}


def _engine():  # noqa: ANN202
    from phip import runtime

    return runtime.engine()


@app.command()
def relink(dry_run: bool = typer.Option(False, "--dry-run", help="只计算，不写回")) -> None:
    """用存储的模型对全部居民批量重新关联 (batch relink with Splink on DuckDB, or Spark: PHIP_EMPI_BACKEND)."""
    from .relink import STAGES
    from .relink import relink as run

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=console) as progress:
        tasks = {s: progress.add_task(STAGE_LABELS[s], total=1) for s in STAGES}

        def tick(stage: str, done: int, total: int) -> None:
            progress.update(tasks[stage], completed=done, total=total)

        summary = run(_engine(), progress=tick, dry_run=dry_run)
    table = Table(title=f"批量重新关联 {summary.run_id}（{summary.backend}）" + ("（试运行，未写回）" if dry_run else ""))
    table.add_column("项目")
    table.add_column("数量", justify="right")
    for label, value in (
        ("参与关联的居民", summary.persons), ("候选对（≥审核阈值）", summary.candidate_pairs),
        ("自动关联对（≥关联阈值）", summary.linked_pairs), ("合并的人群", summary.clusters_merged),
        ("被合并的居民", summary.persons_merged), ("随居民迁移的记录", summary.records_moved),
        ("迁移的标识", summary.identifiers_moved), ("新增审核项", summary.reviews_added),
        ("随合并了结的审核项", summary.reviews_resolved), ("改指存续居民的审核项", summary.reviews_rewritten),
        ("因证件号码不同或审核结论而拒绝的连接", summary.blocked_by_id),
    ):
        table.add_row(label, f"{value:,}")
    table.add_row("用时（秒）", " / ".join(f"{k} {v}" for k, v in summary.seconds.items()))
    console.print(table)


@app.command()
def train(
    synthetic: int = typer.Option(0, "--synthetic", help="改用 N 行合成登记数据训练（平台数据不足时）"),
    max_pairs: float = typer.Option(5e6, "--max-pairs", min=1000, max=1e9, help="估计 u 概率的随机对数"),
) -> None:
    """用平台自己的居民数据 EM 训练模型并启用 (train the model on the store and make it active)."""
    from .training import train_on_store

    try:
        model_id = train_on_store(_engine(), max_pairs=max_pairs, synthetic=synthetic)
    except ValueError as exc:
        err.print(f"[bold red]错误[/] [TOO_FEW_PERSONS] {exc}")
        raise typer.Exit(2) from None
    console.print(f"模型 {model_id} 已训练并启用")


REVIEW_KINDS = {"possible_match": "疑似同一人", "id_conflict": "证件号码冲突"}
REVIEW_STATUSES = {"pending": "待审核", "linked": "已关联", "rejected": "已否决（不是同一人）", "merged": "已随合并处理"}


def _shown(value: object) -> str:
    """A value for a table cell: missing is a dash, never the word None."""
    return "—" if value is None or value == "" else str(value)


@app.command()
def reviews(status: str = typer.Option("pending", help="pending | linked | rejected | merged"),
            limit: int = typer.Option(20, min=1, max=10000)) -> None:
    """审核队列 (the review queue): per field both values (masked), the comparison level and the weight."""
    if status not in REVIEW_STATUSES:
        raise CommandError("BAD_STATUS", f"审核状态“{status}”无效，可选 {'、'.join(REVIEW_STATUSES)}")
    engine = _engine()
    items = reads.reviews(engine, status, limit)
    total = reads.review_count(engine, status)
    for item in items:
        table = Table(title=f"审核项 {item['id']}（{REVIEW_KINDS.get(item['kind'], item['kind'])}，"
                            f"匹配概率 {item['probability'] or 0:.3f}，匹配权重 {item['weight'] or 0:+.2f}）")
        for col in ("字段", "比较结果", "本记录", "已有居民", "权重"):
            table.add_column(col)
        for ev in item["evidence"] or []:
            table.add_row(ev["label"], ev["level"], _shown(ev["left"]), _shown(ev["right"]), f"{ev['weight']:+.2f}")
        console.print(table)
    label = REVIEW_STATUSES.get(status, status)
    if not items:
        console.print(f"没有{label}的审核项")
    else:
        console.print(f"{label}审核项共 {total:,} 项，显示前 {len(items):,} 项")


@app.command()
def decide(review_id: int, decision: str = typer.Argument(..., help="link | reject"),
           operator: str = typer.Option(..., "--operator", help="操作人"), note: str | None = typer.Option(None)) -> None:
    """处理审核项 (link the pair or reject it)."""
    result = edits.decide(_engine(), review_id, decision, operator, note)
    event = f"，操作记录 {result['event_id']}" if result["event_id"] is not None else "，两者已是同一居民，无需合并"
    console.print(f"审核项 {review_id}：{REVIEW_STATUSES.get(result['status'], result['status'])}{event}")


@app.command()
def merge(survivor: str, retired: str, operator: str = typer.Option(..., "--operator"),
          reason: str | None = typer.Option(None)) -> None:
    """合并两位居民 (merge RETIRED into SURVIVOR)."""
    event_id = edits.merge(_engine(), survivor, retired, operator, reason)
    console.print(f"已合并，操作记录 {event_id}（phip empi undo {event_id} 可撤销）")


@app.command()
def undo(event_id: int = typer.Argument(..., min=1, max=MAX_ROW_ID, help="操作记录号"), operator: str = typer.Option(..., "--operator"), reason: str | None = typer.Option(None)) -> None:
    """撤销一次合并/关联/拆分 (undo a merge, link, relink merge or split)."""
    console.print(f"已撤销，操作记录 {edits.undo(_engine(), event_id, operator, reason)}")


@app.command()
def verify(identities: bool = typer.Option(False, "--identities",
                                           help="另查每位居民名下记录是否载有两个不同的有效身份证号码/健康卡号")) -> None:
    """校验审计日志与操作记录 (verify the audit trail, and every EMPI event against it); exit
    code 1 when broken. ``--identities`` also audits the identity guard over every active person
    (reads the guarded fields of all records: minutes on a province), e.g. after upgrading a store
    the twin defect may have touched; each person found can be repaired with undo or split."""
    from phip.audit.cli import describe

    from .trail import verify as check_events

    engine = _engine()
    verdict = check_events(engine)
    console.print(describe(verdict.trail))  # the trail itself: an AuditError is said by phip.cli.main
    if not verdict.ok:
        err.print(f"[bold red]错误[/] [{verdict.code}] {verdict.message}", highlight=False)
        raise typer.Exit(1)
    console.print(f"操作记录与审计日志一致：已核对 {verdict.checked} 条")
    if identities:
        from .identity_guard import violations

        with engine.connect() as conn:
            found = violations(conn)
        labels = {"id_no": "身份证号码", "health_card": "健康卡号"}
        for pid, kinds in sorted(found.items()):
            err.print(f"[bold red]ID_NO_DIFFERENT[/] 居民 {pid} 名下的记录载有两个不同的"
                      f"{'、'.join(labels.get(k, k) for k in kinds)}（phip empi show {pid} 查看，撤销或拆分修复）", highlight=False)
        if found:
            raise typer.Exit(1)
        console.print("没有居民名下载有两个不同的有效身份证号码或健康卡号")


@app.command()
def show(person_id: str) -> None:
    """居民最优记录与全部标识 (golden record and identifiers)."""
    engine = _engine()
    record = reads.golden_record(engine, person_id)  # an EmpiError is said by phip.cli.main
    ids = reads.identifiers(engine, person_id)
    table = Table(title=f"居民 {record['person_id']}（{record['records']} 条记录）")
    for col in ("字段", "值", "来源机构", "数据集", "时间"):
        table.add_column(col)
    for name, item in record["fields"].items():
        src = item["source"] or {}
        table.add_row(name, str(item["value"] or ""), src.get("org") or "", src.get("dataset") or "", src.get("at") or "")
    console.print(table)
    for i in ids["identifiers"]:
        console.print(f"  {i['label']}：{i['value']}" + (f"（{i['scope']}）" if i["scope"] else ""))


@app.command()
def find(name: str | None = typer.Option(None), birth_date: str | None = typer.Option(None, "--birth-date"),
         id_no: str | None = typer.Option(None, "--id-no"), phone: str | None = typer.Option(None)) -> None:
    """按人口学信息查找居民 (PDQ-like search)."""
    try:
        born = date.fromisoformat(birth_date) if birth_date else None
    except ValueError:
        raise EmpiError("BAD_DATE", f"出生日期“{birth_date}”应为 YYYY-MM-DD") from None
    hits = reads.find(_engine(), id_no=id_no, name=name, birth_date=born, phone=phone)
    table = Table(title=f"找到 {len(hits)} 位居民")
    for col in ("居民", "姓名", "性别", "出生日期", "身份证号", "电话", "匹配概率"):
        table.add_column(col)
    for h in hits:
        table.add_row(h["person_id"], h["name"] or "", h["sex"] or "", h["birth_date"] or "", h["id_no"] or "",
                      h["phone"] or "", f"{h['match_probability']:.4f}")
    console.print(table)


@app.command()
def xref(org: str = typer.Option(..., "--org", help="患者所属机构代码"),
         patient_id: str = typer.Option(..., "--patient-id", help="院内患者ID")) -> None:
    """交叉索引查询 (PIX): the person of an institution's patient id and its local ids in every institution."""
    result = reads.xref(_engine(), org=org, patient_id=patient_id)
    table = Table(title=f"居民 {result['person_id']}：{len(result['local_ids'])} 个院内患者ID")
    for col in ("机构代码", "机构名称", "院内患者ID"):
        table.add_column(col)
    for item in result["local_ids"]:
        table.add_row(item["org"], _shown(item["org_name"]), item["patient_id"])
    console.print(table)
    for i in result["identifiers"]:
        console.print(f"  {i['label']}：{i['value']}" + (f"（{i['scope']}）" if i["scope"] else ""))
