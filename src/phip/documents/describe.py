"""The templates as a reader sees them (docs/interop.md, ``phip documents mapping``): per
document type its header slots and sections, and per field the data element, the observation
code and the value domain with its OID, generated from the same data the renderer reads, so
the page cannot drift from the code."""

from __future__ import annotations

from phip.standard.catalog import load_standard

from .templates import Entry, Templates, load_templates


def _flag(value: object) -> str:
    return "是" if value is True else "否"


def _row(e: Entry, where: str, local_field: str, code: str | None = None) -> str:
    std = load_standard()
    domain = f"{e.field.domain} {std.domains[e.field.domain].name} ({e.domain_oid})" if e.field.domain else ""
    code = code or (e.code if e.code_system != local_field else f"{e.code} (本地)")
    need = "必填" if e.required else "可选"
    return f"| {where} | `{e.name}` {e.field.label} | {e.field.de or ''} | {code} | {domain} | {need} |"


def mapping_markdown(templates: Templates | None = None) -> str:
    """Markdown: one table per document type."""
    templates = templates or load_templates()
    local_field = templates.common["code_systems"]["local_field"].replace("{local}", templates.common["local_root"])
    out: list[str] = []
    for t in templates.by_code.values():
        verified = "，".join(f"{k} {_flag(v)}" for k, v in t.verified.items())
        out += [f"### {t.code} {t.name}（{t.standard}）", "",
                f"templateId `{t.template_id}`；数据集 `{t.dataset.code}` {t.dataset.name}；文档编号字段 `{t.key_field}`"
                + (f"（按 `{t.group}` 汇集多条记录，每条一个 organizer）" if t.group else "") + f"；已核实：{verified}", "",
                "| 位置 | 字段 | 数据元 (WS 363) | 观察代码 / 文档头路径 | 值域 (OID) | 基数 |", "|---|---|---|---|---|---|"]
        out += [_row(e, "文档头", local_field, f"`{e.slot.path}`") for e in t.header if e.slot]
        for s in t.sections:
            where = f"{s.title} {s.code}" + ("（重复）" if s.repeat else "") + ("" if s.verified else " ‡")
            out += [_row(e, where, local_field) for e in s.entries]
        out.append("")
    return "\n".join(out)
