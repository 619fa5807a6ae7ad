"""``phip orgs add|update|close|reopen|import|export|history``: the institution register from
the command line (``phip orgs list`` and ``phip orgs key`` sit in :mod:`phip.cli`)."""

from __future__ import annotations

import getpass
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from phip.errors import CommandError

from . import codes

app = typer.Typer(help="医疗机构 (institutions)", no_args_is_help=True)
console = Console()

_BY = typer.Option(None, "--by", help="操作人（记入变更记录；默认当前系统用户）")
_FIELDS = {
    "name": typer.Option(None, "--name", help="机构名称"),
    "kind": typer.Option(None, "--kind", help="hospital（医疗机构）| business_system（业务系统）| external_system（外部系统）"),
    "region_code": typer.Option(None, "--region", help="市（州）级区划代码，如 220100；梅河口 220581；长白山 229900（非国标）"),
    "county_code": typer.Option(None, "--county", help="县级区划代码（GB/T 2260），如 220122"),
    "level": typer.Option(None, "--level", help="医院等级，如 三级甲等 或代码 31"),
    "category": typer.Option(None, "--category", help="机构类别，如 综合医院 或代码 A100（WS 218）"),
    "affiliation": typer.Option(None, "--affiliation", help="隶属关系：中央、省属、市属、县属…（GB/T 12404）"),
    "ownership": typer.Option(None, "--ownership", help="公立 | 民营"),
    "docking_method": typer.Option(None, "--method", help="对接方式：接口对接 | 数据采集"),
}


def _who(by: str | None) -> str:
    return by or f"cli:{getpass.getuser()}"


def _code(ref: str, *, partial: bool = True) -> str:
    """The code of the institution ``ref`` names; a command that changes it (``partial=False``)
    takes its code or whole name only, never a part that happens to be unique."""
    from phip import runtime
    from phip.orgs.service import find_institution

    inst = find_institution(runtime.engine(), ref, partial=partial)
    if inst is None:
        if not partial and find_institution(runtime.engine(), ref) is not None:
            raise CommandError("NAME_NOT_WHOLE", f"“{ref}”只是机构名称的一部分；修改、关停或重新启用须给出机构代码或完整名称")
        raise CommandError("UNKNOWN_ORG", f"医疗机构“{ref}”未登记或名称不唯一；用 phip orgs list 查看")
    return inst.code


def _say(change) -> None:  # noqa: ANN001 - register.Change
    from .register import FIELD_LABELS

    if not change.fields:
        console.print(f"{change.code}：没有变化")
        return
    for field, old, new in change.fields:
        console.print(f"  {FIELD_LABELS.get(field, field)}：{old if old is not None else '（空）'} → {new if new is not None else '（空）'}")


@app.command("add")
def add(
    code: str = typer.Argument(..., help="机构代码（统一社会信用代码；系统为平台代码）"),
    name: str = typer.Option(..., "--name", help="机构名称"),
    region_code: str = typer.Option(..., "--region", help=_FIELDS["region_code"].help),
    kind: str = typer.Option("hospital", "--kind", help=_FIELDS["kind"].help),
    county_code: str | None = _FIELDS["county_code"],
    level: str | None = _FIELDS["level"],
    category: str | None = _FIELDS["category"],
    affiliation: str | None = _FIELDS["affiliation"],
    ownership: str | None = _FIELDS["ownership"],
    docking_method: str | None = _FIELDS["docking_method"],
    by: str | None = _BY,
) -> None:
    """登记新机构 (register an institution)."""
    from phip import runtime

    from .register import add_institution

    values = {k: v for k, v in locals().items() if k not in ("by", "runtime", "add_institution") and v is not None}
    change = add_institution(runtime.engine(), values, _who(by))
    console.print(f"已登记 {change.code} {name}")


@app.command("update")
def update(
    org: str = typer.Argument(..., help="机构代码或名称"),
    name: str | None = _FIELDS["name"],
    region_code: str | None = _FIELDS["region_code"],
    county_code: str | None = _FIELDS["county_code"],
    level: str | None = _FIELDS["level"],
    category: str | None = _FIELDS["category"],
    affiliation: str | None = _FIELDS["affiliation"],
    ownership: str | None = _FIELDS["ownership"],
    docking_method: str | None = _FIELDS["docking_method"],
    placeholder: str | None = typer.Option(None, "--placeholder", help="仍为示例值的字段（分号分隔；给空串表示全部已核实）"),
    by: str | None = _BY,
) -> None:
    """修改机构登记信息；修改过的字段不再标为示例值 (change an institution)."""
    from phip import runtime

    from .register import update_institution

    values = {k: v for k, v in locals().items() if k not in ("org", "by", "runtime", "update_institution") and v is not None}
    if not values:
        raise CommandError("NOTHING_TO_CHANGE", "没有给出要修改的字段，如 --level 三级甲等")
    code = _code(org, partial=False)
    _say(update_institution(runtime.engine(), code, values, _who(by)))


@app.command("close")
def close(org: str = typer.Argument(..., help="机构代码或名称"), by: str | None = _BY) -> None:
    """关停机构：不再计入统计，数据保留 (close an institution)."""
    from phip import runtime

    from .register import set_status

    set_status(runtime.engine(), _code(org, partial=False), "closed", _who(by))
    console.print(f"{org}：已关停")


@app.command("reopen")
def reopen(org: str = typer.Argument(..., help="机构代码或名称"), by: str | None = _BY) -> None:
    """重新启用已关停的机构 (re-open an institution)."""
    from phip import runtime

    from .register import set_status

    set_status(runtime.engine(), _code(org, partial=False), "active", _who(by))
    console.print(f"{org}：已重新启用")


@app.command("import")
def import_cmd(file: Path = typer.Argument(..., exists=True, dir_okay=False, help="机构登记表 XLSX 或 CSV"),
               by: str | None = _BY) -> None:
    """导入机构登记表：新代码登记，已登记的修改所给的列；有错则全部不导入 (import a register)."""
    from phip import runtime
    from phip.standard.sheet import SheetError

    from .register_sheet import import_register

    try:
        result = import_register(runtime.engine(), file, _who(by))
    except SheetError as exc:
        raise CommandError(exc.code, exc.message + "；未导入任何数据", exc.field) from None
    console.print(f"新登记 {result.added} 家，修改 {result.updated} 家，无变化 {result.unchanged} 家")


@app.command("export")
def export_cmd(out: Path = typer.Option(..., "--out", "-o", help="输出的 .xlsx 文件")) -> None:
    """导出机构登记表（可修改后再导入）(export the register)."""
    from phip import runtime

    from .register_sheet import export_register

    out.write_bytes(export_register(runtime.engine()))
    console.print(f"已导出机构登记表 → {out}")


@app.command("history")
def history_cmd(org: str | None = typer.Argument(None, help="机构代码或名称（默认全部）"),
                limit: int = typer.Option(50, "--limit", min=1, max=10000)) -> None:
    """机构变更记录：谁、何时、原值、新值 (change history)."""
    from phip import runtime

    from .register import ACTIONS, FIELD_LABELS, history

    table = Table(title="机构变更记录")
    for col in ("时间", "操作人", "机构代码", "操作", "字段", "原值", "新值"):
        table.add_column(col)
    for c in history(runtime.engine(), _code(org) if org else None, limit):
        table.add_row(f"{c.changed_at:%Y-%m-%d %H:%M}", c.changed_by, c.org_code, ACTIONS.get(c.action, c.action),
                      FIELD_LABELS.get(c.field, c.field), c.old_value or "", c.new_value or "")
    console.print(table)


@app.command("codes")
def codes_cmd(table: str = typer.Argument("regions", help="regions | grades | categories | affiliations")) -> None:
    """列出代码表：区划、医院等级、机构类别、隶属关系 (list a code table)."""
    if table == "regions":
        t = Table(title="吉林省行政区划代码（GB/T 2260）")
        for col in ("代码", "名称", "级别", "上级", "国标", "说明"):
            t.add_column(col)
        for r in codes.regions().values():
            t.add_row(r.code, r.name, r.level, r.parent, "是" if r.gb2260 else "否（平台自设）", r.note)
    elif table in ("grades", "categories", "affiliations"):
        t = Table(title={"grades": "医院等级", "categories": "机构类别（WS 218）", "affiliations": "隶属关系（GB/T 12404）"}[table])
        t.add_column("代码")
        t.add_column("名称")
        for code, label in getattr(codes, table)().items():
            t.add_row(code, label)
    else:
        raise CommandError("BAD_TABLE", f"代码表“{table}”无效，可选 regions、grades、categories、affiliations")
    console.print(t)
