"""What the province hands to hospitals (下发省平台数据采集标准): JSON Schema per data set, one
Chinese HTML specification, one Excel workbook. All three are generated from the same data
files, so they can never disagree with what the platform validates."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import orjson

from phip.config import get_settings

from .catalog import CATEGORY_LABELS, TYPE_LABELS, DataSet, FieldSpec, Standard
from .workbook import save_workbook


def schema_id(standard: Standard, ds: DataSet, base_url: str | None = None) -> str:
    """``$id`` of a data set's schema: under the province's publishing address when one is set
    (``PHIP_STANDARD_BASE_URL``), else a URN, which names without pretending to be fetchable."""
    base = get_settings().standard_base_url if base_url is None else base_url.rstrip("/")
    if base:
        return f"{base}/{standard.version}/{ds.code}.schema.json"
    return f"urn:phip:standard:{standard.version}:{ds.code}"


def cover_lines(standard: Standard) -> list[tuple[str, str]]:
    """The cover (封面) every export starts with."""
    return [("标准名称", f"{standard.province}{standard.title}"), ("发布单位", standard.issuer),
            ("版本", standard.version), ("发布日期", standard.published),
            ("内容", f"数据集{len(standard.datasets)}个，值域代码表{len(standard.domains)}个")]


def _date_pattern(f: FieldSpec) -> dict[str, Any]:
    if f.type == "date":
        return {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
    return {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}$"}


def field_schema(standard: Standard, f: FieldSpec) -> dict[str, Any]:
    prop: dict[str, Any] = {"title": f.label}
    if f.type in ("string", "text"):
        prop.update(type="string", maxLength=f.length)
        if f.pattern:
            prop["pattern"] = f.pattern
    elif f.type == "code":
        domain = standard.domain(f.domain or "")
        prop.update(type="string", maxLength=f.length)
        if domain.kind == "code_system":
            prop["pattern"] = domain.pattern
        else:
            prop["enum"] = [c.code for c in domain.codes]
            prop["x-code-names"] = domain.code_map
        prop["x-value-domain"] = f"{domain.name}（{domain.standard}）"
    elif f.type == "int":
        prop["type"] = "integer"
    elif f.type == "decimal":
        prop["type"] = "number"
    elif f.type == "bool":
        prop["type"] = "boolean"
    else:
        prop.update(_date_pattern(f))
    if f.type in ("int", "decimal"):
        if f.min is not None:
            prop["minimum"] = f.min
        if f.max is not None:
            prop["maximum"] = f.max
    description = [f.description or ""]
    if f.de:
        description.append(f"数据元标识符 {f.de}")
    if f.check == "id_no":
        description.append("居民身份证号码按GB 11643校验，15位号码自动升级为18位")
    if f.check == "uscc":
        description.append("统一社会信用代码按GB 32100校验")
    prop["description"] = "；".join(d for d in description if d)
    if f.de:
        prop["x-data-element"] = f.de
    return prop


def dataset_schema(standard: Standard, ds: DataSet, base_url: str | None = None) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": schema_id(standard, ds, base_url),
        "title": f"{ds.number:02d} {ds.name}",
        "description": f"{ds.description} 业务主键：{', '.join(ds.natural_key)}；业务发生时间：{ds.event_time}。",
        "type": "object",
        "properties": {f.name: field_schema(standard, f) for f in ds.fields},
        "required": [f.name for f in ds.fields if f.required],
        "additionalProperties": True,
        "x-dataset-number": ds.number,
        "x-natural-key": list(ds.natural_key),
        "x-event-time": ds.event_time,
        "x-basis": list(ds.basis),
    }


def export_jsonschema(standard: Standard, out: Path, base_url: str | None = None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in standard.datasets:
        path = out / f"{ds.code}.schema.json"
        path.write_bytes(orjson.dumps(dataset_schema(standard, ds, base_url), option=orjson.OPT_INDENT_2))
        paths.append(path)
    return paths


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def render_html(standard: Standard) -> str:
    """One self-contained Chinese HTML page (no external assets)."""
    parts = [
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>",
        f"<title>{_e(standard.province + standard.title)}（{_e(standard.version)}）</title>",
        "<style>body{font-family:'Noto Sans CJK SC','Microsoft YaHei',sans-serif;margin:2em;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0 2em;width:100%}th,td{border:1px solid #ccc;padding:4px 6px;font-size:13px;text-align:left}"
        "th{background:#eef3f8}h2{border-bottom:2px solid #1f5fa8;padding-bottom:4px}code{background:#f4f4f4;padding:0 3px}</style>",
        "</head><body>",
        f"<h1>{_e(standard.province + standard.title)}</h1><table class='cover'>",
        *[f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in cover_lines(standard)[1:]],
        "</table>",
        "<p>本标准依据WS 445《电子病历基本数据集》、WS 363/364《卫生信息数据元目录》《卫生信息数据元值域代码》、"
        "WS/T 500《电子病历共享文档规范》、WS/T 483《健康档案共享文档规范》制定。日期格式为 <code>YYYY-MM-DD</code>，"
        "日期时间格式为 <code>YYYY-MM-DD HH:MM:SS</code>；代码类字段取值见“值域代码表”。</p>",
        "<h2 id='toc'>数据集目录</h2><table><tr><th>序号</th><th>数据集编码</th><th>数据集名称</th><th>分类</th><th>字段数</th><th>业务主键</th></tr>",
    ]
    for ds in standard.datasets:
        parts.append(
            f"<tr><td>{ds.number}</td><td><a href='#{ds.code}'>{_e(ds.code)}</a></td><td>{_e(ds.name)}</td>"
            f"<td>{_e(CATEGORY_LABELS[ds.category])}</td><td>{len(ds.fields)}</td><td>{_e(', '.join(ds.natural_key))}</td></tr>"
        )
    parts.append("</table>")
    for ds in standard.datasets:
        parts.append(f"<h2 id='{ds.code}'>{ds.number:02d} {_e(ds.name)}（{_e(ds.code)}）</h2>")
        parts.append(f"<p>{_e(ds.description)}<br>依据：{_e('；'.join(ds.basis))}<br>业务主键：{_e(', '.join(ds.natural_key))}；"
                     f"业务发生时间：{_e(ds.event_time)}</p>")
        parts.append("<table><tr><th>序号</th><th>字段名</th><th>中文名称</th><th>数据元标识符</th><th>类型</th><th>长度</th><th>必填</th><th>值域/校验</th></tr>")
        for i, f in enumerate(ds.fields, 1):
            rule = ""
            if f.domain:
                d = standard.domain(f.domain)
                rule = f"<a href='#domain-{d.id}'>{_e(d.name)}</a>（{_e(d.standard)}）"
            elif f.check:
                rule = {"id_no": "GB 11643 校验", "uscc": "GB 32100 校验", "phone": "电话号码格式"}[f.check]
            length = f.length or ""
            if f.type == "decimal" and f.scale is not None:
                length = f"{f.length},{f.scale}"
            parts.append(
                f"<tr><td>{i}</td><td><code>{_e(f.name)}</code></td><td>{_e(f.label)}</td><td>{_e(f.de)}</td>"
                f"<td>{TYPE_LABELS[f.type]}</td><td>{_e(length)}</td><td>{'是' if f.required else ''}</td><td>{rule}</td></tr>"
            )
        parts.append("</table>")
    parts.append("<h2>值域代码表</h2>")
    for d in standard.domains.values():
        parts.append(f"<h3 id='domain-{d.id}'>{_e(d.name)}（{_e(d.standard)}）</h3>")
        if d.kind == "code_system":
            parts.append(f"<p>外部编码体系，按格式校验：<code>{_e(d.pattern)}</code>，示例 <code>{_e(d.example)}</code></p>")
            continue
        parts.append("<table><tr><th>代码</th><th>名称</th></tr>")
        parts += [f"<tr><td>{_e(c.code)}</td><td>{_e(c.name)}</td></tr>" for c in d.codes]
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)


def export_html(standard: Standard, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "phip-standard.html"
    path.write_text(render_html(standard), encoding="utf-8")
    return path


_SHEET_FORBIDDEN = str.maketrans({"[": "（", "]": "）", ":": "：", "*": "＊", "?": "？", "/": "／", "\\": "＼"})


def sheet_title(text: str, taken: set[str]) -> str:
    """A Chinese sheet name Excel accepts (31 characters, none of []:*?/\\), unique in the book."""
    base = text.translate(_SHEET_FORBIDDEN)[:31]
    title, n = base, 2
    while title in taken:
        suffix = f"（{n}）"
        title, n = base[: 31 - len(suffix)] + suffix, n + 1
    taken.add(title)
    return title


def export_xlsx(standard: Standard, out: Path) -> Path:
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill

    out.mkdir(parents=True, exist_ok=True)
    wb = Workbook()
    cover = wb.active
    cover.title = "封面"
    cover.append([f"{standard.province}{standard.title}"])
    cover["A1"].font = Font(bold=True, size=16)
    cover.append([])
    for label, value in cover_lines(standard)[1:]:
        cover.append([label, value])
    cover.column_dimensions["A"].width, cover.column_dimensions["B"].width = 12, 60
    toc = wb.create_sheet("数据集目录")
    header_font, header_fill = Font(bold=True), PatternFill("solid", fgColor="DDE8F5")
    titles: set[str] = {"封面", "数据集目录"}

    def header(ws: Any, names: list[str]) -> None:
        ws.append(names)
        for cell in ws[1]:
            cell.font, cell.fill = header_font, header_fill
        ws.freeze_panes = "A2"

    header(toc, ["序号", "数据集编码", "数据集名称", "英文名称", "分类", "字段数", "业务主键", "业务发生时间", "依据"])
    for ds in standard.datasets:
        toc.append([ds.number, ds.code, ds.name, ds.name_en, CATEGORY_LABELS[ds.category], len(ds.fields),
                    ", ".join(ds.natural_key), ds.event_time, "；".join(ds.basis)])
        ws = wb.create_sheet(sheet_title(f"{ds.number:02d} {ds.name}", titles))
        link = toc.cell(row=toc.max_row, column=3)
        link.hyperlink, link.style = f"#'{ws.title}'!A1", "Hyperlink"
        header(ws, ["序号", "字段名", "中文名称", "数据元标识符", "类型", "长度", "小数位", "必填", "值域", "校验"])
        for i, f in enumerate(ds.fields, 1):
            ws.append([i, f.name, f.label, f.de or "", TYPE_LABELS[f.type], f.length, f.scale, "是" if f.required else "否",
                       f.domain or "", f.check or (f.pattern or "")])
    for d in standard.domains.values():
        ws = wb.create_sheet(sheet_title(f"值域 {d.name}", titles))
        ws.append([f"{d.name}（{d.standard}）"])
        if d.kind == "code_system":
            ws.append(["格式", d.pattern])
            ws.append(["示例", d.example])
            continue
        ws.append(["代码", "名称"])
        for c in d.codes:
            ws.append([c.code, c.name])
    path = out / "phip-standard.xlsx"
    save_workbook(wb, path)
    return path
