"""``phip documents …``: shared documents (共享文档, CDA) from the command line: the types the
platform supports, export one patient's document (as an authorized clinician: the same
sharing policy and audit as the API), check a file against its template, import files."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from phip.errors import CommandError

from .problems import DocumentRefused

app = typer.Typer(help="共享文档 CDA (WS/T 500 电子病历 / WS/T 483 健康档案)", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


@app.command("types")
def types() -> None:
    """列出支持的共享文档类型及其模板 (document types and templates)."""
    from .templates import load_templates

    table = Table(title="共享文档类型")
    for col in ("类型", "名称", "标准", "templateId", "数据集", "文档编号字段", "已核实"):
        table.add_column(col)
    for t in load_templates().by_code.values():
        checked = "、".join(k for k, v in t.verified.items() if v is True) or "否"
        table.add_row(t.code, t.name, t.standard, t.template_id, t.dataset.code, t.key_field, checked)
    console.print(table)


@app.command("mapping")
def mapping() -> None:
    """输出各文档类型的字段映射（Markdown，docs/interop.md 所用）."""
    from .describe import mapping_markdown

    print(mapping_markdown())


@app.command("export")
def export(
    person: str = typer.Option(..., "--person", help="主索引居民ID (EMPI person id)"),
    doc_type: str = typer.Option(..., "--type", help="文档类型，如 C0002、C0004"),
    key: str = typer.Option(..., "--key", help="文档编号：就诊流水号、处方编号、报告单号等"),
    clinician: str = typer.Option(..., "--as", help="调阅医生的平台账户（须持有患者授权）"),
    org: str | None = typer.Option(None, "--org", help="文档所属机构（编号重复时必填）"),
    out: Path = typer.Option(..., "--out", help="输出文件 (.xml)"),
) -> None:
    """导出患者的一份共享文档（须有患者授权，调阅记入审计）."""
    from phip import runtime
    from phip.accounts import user_info

    from .exchange import export as run

    engine = runtime.engine()
    who = user_info(engine, clinician)
    if who is None:
        raise CommandError("UNKNOWN_USER", f"账户“{clinician}”不存在或已停用")
    xml = run(engine, who, doc_type, person, key, org, address="cli")
    out.write_bytes(xml)
    console.print(f"已导出 {out}（{len(xml)} 字节）")


@app.command("validate")
def validate(files: list[Path] = typer.Argument(..., help="CDA 文件")) -> None:
    """按模板校验 CDA 文件（不入库）."""
    from .inbound import read

    bad = 0
    for path in files:
        try:
            mapped = read(path.read_bytes())
        except DocumentRefused as exc:
            bad += 1
            err.print(f"[red]✗[/] {path}：{exc.message}", highlight=False)
            for p in exc.problems:
                err.print(f"    [{p.code}] {p.message}  {p.path}", highlight=False)
            continue
        console.print(f"✓ {path}：{mapped.template.code} {mapped.template.name}，{len(mapped.records)} 条记录", highlight=False)
    if bad:
        raise typer.Exit(2)


@app.command("import")
def import_(
    org: str = typer.Option(..., "--org", help="发送机构代码"),
    files: list[Path] = typer.Argument(..., help="CDA 文件"),
) -> None:
    """校验并导入 CDA 文件（经统一入库流程，拒收的文档不入库）."""
    from phip import runtime

    from .exchange import receive_many

    got = receive_many(runtime.pipeline(), org, (p.read_bytes() for p in files), source_ref="CDA file")
    accepted = sum(r.accepted + r.updated + r.unchanged for r in got.receipts)
    rejected = sum(r.rejected for r in got.receipts)
    for index, exc in got.refused:
        err.print(f"[red]✗[/] {files[index]}：[{exc.code}] {exc.message}", highlight=False)
    console.print(f"文档 {got.documents} 份，拒收 {len(got.refused)} 份；记录接收 {accepted} 条，拒收 {rejected} 条")
    if got.refused or rejected:
        raise typer.Exit(2)
