"""Probe a source (探查数据源): list its tables and propose a mapping skeleton.

Chinese HIS databases name things by the pinyin initials of a Chinese phrase — ``MZ_GHXX``
门诊挂号信息, ``BRXM`` 病人姓名, ``SFZH`` 身份证号 — and the phrase is usually a synonym of
the standard's label (患者姓名, 身份证件号码). So each field of the standard is expanded into
label variants (synonyms from ``data/matching.yaml``), each variant into its pinyin initials,
and a column is scored against the field by

* its name equal to the field name (``PATIENT_ID``) — 100,
* its comment equal to a label variant (注释“病人姓名”) — 90,
* its name equal to the initials of a variant (``BRXM``) — 80, or a known alias — 75,
* its comment ending a variant or its initials ending a variant's initials (``KSDM`` for
  就诊科室代码 ``JZKSDM``) — 55,

minus a veto when the types cannot agree (a date field on a numeric column). Each data set
gets the table whose columns cover most of its required fields. The skeleton is a mapping
file with the proposals and their reasons as comments, and TODO lines for what is missing.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from pypinyin import Style, lazy_pinyin
from sqlalchemy import Engine, inspect, text

from phip.datafiles import load_yaml
from phip.standard.catalog import DataSet, FieldSpec, Standard, load_standard

from .guard import check_query
from .mapping import PIPELINE_FILLED

MATCHING = Path(__file__).parent / "data" / "matching.yaml"
_PAREN = re.compile(r"[（(][^）)]*[）)]")
_NON_WORD = re.compile(r"[^0-9A-Za-z\u4e00-\u9fff]")


@dataclass
class ColumnInfo:
    name: str
    type: str
    comment: str | None
    nullable: bool = True


@dataclass
class TableInfo:
    name: str
    comment: str | None
    rows: int | None
    columns: list[ColumnInfo] = field(default_factory=list)


@dataclass
class Match:
    field: FieldSpec
    column: ColumnInfo
    score: int
    reason: str


@dataclass
class Proposal:
    dataset: DataSet
    table: TableInfo
    matches: list[Match]
    missing_required: list[FieldSpec]
    cursor: tuple[str, str] | None  # (column, kind)
    score: float


def inspect_source(engine: Engine, count: bool = True) -> list[TableInfo]:
    """Tables, columns (type, comment) and row counts; every statement is a guarded SELECT."""
    insp = inspect(engine)
    quote = engine.dialect.identifier_preparer.quote
    tables = []
    for name in sorted(insp.get_table_names()):
        try:
            comment = insp.get_table_comment(name).get("text")
        except NotImplementedError:
            comment = None
        columns = [ColumnInfo(c["name"], str(c["type"]), c.get("comment"), bool(c.get("nullable", True)))
                   for c in insp.get_columns(name)]
        rows = None
        if count:
            sql = f"SELECT COUNT(*) FROM {quote(name)}"
            check_query(sql, engine.dialect.name, f"表{name}的计数查询")
            with engine.connect() as conn:
                rows = int(conn.execute(text(sql)).scalar() or 0)
        tables.append(TableInfo(name, comment, rows, columns))
    return tables


# --- matching -----------------------------------------------------------------------------------


@cache
def _rules() -> dict[str, Any]:
    return load_yaml(MATCHING)


def initials(text: str) -> str:
    """Pinyin initials of the Chinese characters, other letters and digits kept: 病人姓名 → BRXM."""
    return "".join(p[0] for p in lazy_pinyin(_NON_WORD.sub("", text), style=Style.FIRST_LETTER) if p).upper()


@cache
def label_variants(label: str) -> frozenset[str]:
    """The label and its synonym rewrites (without parenthesised notes)."""
    base = _PAREN.sub("", label).replace("(急)", "")
    variants = {base, label.replace("(急)", "")}
    synonyms: dict[str, list[str]] = _rules()["synonyms"]
    for _ in range(3):  # a few rounds let synonyms combine (患者…流水号 → 病人…序号)
        new = set()
        for variant, (frag, repl) in itertools.product(list(variants), synonyms.items()):
            if frag in variant:
                new.update(variant.replace(frag, r) for r in repl)
        variants |= {v for v in new if len(v) >= 2}
        if len(variants) > 400:
            break
    return frozenset(variants)


@cache
def _variant_initials(label: str) -> frozenset[str]:
    return frozenset(initials(v) for v in label_variants(label))


def _norm(name: str) -> str:
    return _NON_WORD.sub("", name).upper().replace("_", "")


def _type_ok(spec: FieldSpec, column_type: str) -> bool:
    t = column_type.upper()
    numeric = any(k in t for k in ("INT", "NUMERIC", "DECIMAL", "FLOAT", "DOUBLE", "REAL", "NUMBER"))
    temporal = any(k in t for k in ("DATE", "TIME"))
    if spec.type in ("date", "datetime"):
        return not numeric or "NUMBER" in t  # Oracle NUMBER(8) dates exist
    if spec.type in ("int", "decimal"):
        return not temporal
    return True


def score(spec: FieldSpec, column: ColumnInfo) -> tuple[int, str]:
    """How well ``column`` fits ``spec`` (0 = not at all) and why, in Chinese."""
    if not _type_ok(spec, column.type):
        return 0, ""
    name = _norm(column.name)
    if name == _norm(spec.name):
        return 100, "列名与字段名相同"
    variants = label_variants(spec.label)
    comment = _PAREN.sub("", column.comment or "").strip()
    if comment and comment in variants:
        return 90, f"列注释“{column.comment}”与标准名称“{spec.label}”相符"
    codes = _variant_initials(spec.label)
    if name in codes:
        return 80, f"列名是“{spec.label}”（或其同义词）的拼音首字母"
    if _rules()["aliases"].get(name) == spec.name:
        return 75, "常见HIS缩写"
    if comment and len(comment) >= 2 and any(v.endswith(comment) for v in variants):
        return 55, f"列注释“{column.comment}”与“{spec.label}”部分相符"
    if len(name) >= 3 and any(c.endswith(name) and c != name for c in codes):
        return 55, f"列名与“{spec.label}”的拼音首字母部分相符"
    return 0, ""


def match_table(dataset: DataSet, table: TableInfo) -> tuple[list[Match], list[FieldSpec]]:
    """Best one-to-one assignment of columns to fields (greedy by score)."""
    candidates = []
    for spec in dataset.fields:
        if spec.name in PIPELINE_FILLED:
            continue
        for column in table.columns:
            s, reason = score(spec, column)
            if s:
                candidates.append(Match(spec, column, s, reason))
    candidates.sort(key=lambda m: (-m.score, m.field.name))
    used_fields: set[str] = set()
    used_columns: set[str] = set()
    chosen = []
    for m in candidates:
        if m.field.name in used_fields or m.column.name in used_columns:
            continue
        chosen.append(m)
        used_fields.add(m.field.name)
        used_columns.add(m.column.name)
    order = {f.name: i for i, f in enumerate(dataset.fields)}
    chosen.sort(key=lambda m: order[m.field.name])
    missing = [f for f in dataset.fields if f.required and f.name not in used_fields and f.name not in PIPELINE_FILLED]
    return chosen, missing


def guess_cursor(table: TableInfo) -> tuple[str, str] | None:
    rules = _rules()
    for column in table.columns:
        by_name = _norm(column.name) in {_norm(c) for c in rules["cursor_columns"]}
        by_comment = any(k in (column.comment or "") for k in rules["cursor_comments"])
        if (by_name or by_comment) and any(k in column.type.upper() for k in ("DATE", "TIME")):
            return column.name, "time"
    for column in table.columns:
        if "自增" in (column.comment or "") and "INT" in column.type.upper():
            return column.name, "id"
    return None


def propose(tables: list[TableInfo], standard: Standard | None = None, min_share: float = 0.5) -> list[Proposal]:
    """For each data set the best-fitting table, when it covers ``min_share`` of the required fields."""
    std = standard or load_standard()
    out = []
    for dataset in std.datasets:
        required = [f for f in dataset.fields if f.required and f.name not in PIPELINE_FILLED]
        best: Proposal | None = None
        for table in tables:
            matches, missing = match_table(dataset, table)
            covered = len(required) - len(missing)
            if covered < 3 or covered < min_share * len(required):
                continue
            value = covered + 0.25 * (len(matches) - covered) + sum(m.score for m in matches) / 1000
            if best is None or value > best.score:
                best = Proposal(dataset, table, matches, missing, guess_cursor(table), value)
        if best is not None:
            out.append(best)
    return out


def skeleton(name: str, org: str, url: str, proposals: list[Proposal]) -> str:
    """A mapping file (YAML with comments) to review and complete."""
    lines = [
        f"# 采集映射草稿：由 phip collect probe 于 {datetime.now():%Y-%m-%d %H:%M} 生成。",
        "# 每个字段的匹配理由写在行尾注释里；TODO 行是未找到对应列的必填字段。核对、补全后再运行 phip collect run。",
        "source:",
        f"  name: {name}",
        f'  org: "{org}"',
        f'  url: "{url}"                 # 密码用 ${{变量}} 引用环境变量或密钥文件，切勿写入本文件',
        "  schedule: 15m",
        "",
        "codes: {}                        # 本地代码 → 标准代码对照表，按需补充",
        "",
        "datasets:",
    ]
    for p in proposals:
        ds, table = p.dataset, p.table
        required = [f for f in ds.fields if f.required and f.name not in PIPELINE_FILLED]
        rows = f"，{table.rows}行" if table.rows is not None else ""
        lines.append(f"  # {ds.number:02d} {ds.name}：建议表 {table.name}（{table.comment or '无注释'}{rows}），"
                     f"匹配必填字段 {len(required) - len(p.missing_required)}/{len(required)}")
        lines.append(f"  - dataset: {ds.code}")
        lines.append(f"    from: {table.name}")
        if p.cursor:
            lines.append(f"    cursor: {{column: {p.cursor[0]}, kind: {p.cursor[1]}}}")
        else:
            lines.append("    # TODO 未找到更新时间列或自增ID列：不配置 cursor 时每次全量读取")
        lines.append("    fields:")
        for m in p.matches:
            note = f"{m.column.comment or ''} {m.column.type}".strip()
            lines.append(f"      {m.field.name + ':':<28} {m.column.name:<10} # {m.field.label} ← {note}；{m.reason}（{m.score}）")
        for f in p.missing_required:
            lines.append(f"      # TODO 必填 {f.name}（{f.label}）：未找到对应列")
        lines.append("")
    return "\n".join(lines) + "\n"
