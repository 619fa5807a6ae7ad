"""Probe a source (探查数据源): list its tables and draft the mapping a person would write.

Hospital databases name things in at least three ways, all met in practice: pinyin initials
with Chinese comments (``MZ_GHXX`` 门诊挂号信息, ``BRXM`` 病人姓名), cryptic names whose only
meaning is the comment (``HIS_T001.F002`` 姓名), and English names with no comment at all
(``pms_patient.gender``, ``date_of_birth``). So a column is scored against a field of the
standard by, in order of trust:

* its name equal to the field name (``PATIENT_ID``) — 100;
* its name among the field's ``names`` in ``data/matching.yaml`` (English and abbreviations:
  gender, sex, date_of_birth) — 95; its comment among them (性别) — 92;
* its comment equal to a synonym variant of the standard's label (注释“病人姓名”) — 90;
* its name the pinyin of a Chinese name (``XB``, ``XINGBIE``) — 85, the pinyin initials of a
  label variant (``BRXM``) — 80, a known alias — 75;
* an English name of known ``words`` read as Chinese (registerType → 挂号类别) — 84 to 58;
* its comment the specific end of a label variant (开方医生代码 for 处方开立医师工号) — 86, or
  ending with a name or a variant (开方科室编码 → 科室编码) — 60/55;

then nudged by what the values look like (ID numbers, phones, ICD codes, dates held as text)
and vetoed when types cannot agree. For each data set the probe picks a base table (its rows
become the records: the natural key must be there, its name or comment should say so), then
follows declared foreign keys and naming conventions (``patient_id`` → ``pms_patient.id``,
the same key column in both tables, a unique ``registration_id`` back to the registration)
to fetch the required fields the base lacks, proposes a code table where local codes are not
the standard's (sex 1/0 → 1/2, 普通号 → 1, QD → 01), picks an incremental cursor, and runs
each drafted query on a few rows through the real mapper and validator. The draft is a mapping
file that loads and runs; every guess carries its confidence and reason as a YAML comment;
data sets lacking required fields are written commented out with TODO lines.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from pypinyin import Style, lazy_pinyin
from sqlalchemy import Engine, column, inspect, literal_column, select, table, text

from phip.datafiles import load_yaml
from phip.standard.catalog import DataSet, FieldSpec, Standard, ValueDomain, load_standard
from phip.standard.validate import domain_lookup

from .guard import check_query
from .mapping import IDENTIFIER, PIPELINE_FILLED

log = logging.getLogger(__name__)
MATCHING = Path(__file__).parent / "data" / "matching.yaml"
_PAREN = re.compile(r"[（(][^）)]*[）)]")
_NON_WORD = re.compile(r"[^0-9A-Za-z\u4e00-\u9fff]")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SAMPLE_ROWS = 200
DISTINCT_LIMIT = 40
DISTINCT_SCAN = 20000
SHAPES = {
    "id_no": re.compile(r"^(\d{17}[\dXx]|\d{15})$"),
    "phone": re.compile(r"^(\+?86)?1[3-9]\d{9}$"),
    "icd": re.compile(r"^[A-Z]\d{2}(\.[0-9A-Z]{1,4})?[+*]?$"),
    "date": re.compile(r"^(\d{4}-\d{1,2}-\d{1,2}|\d{4}/\d{1,2}/\d{1,2}|(19|20)\d{2}[01]\d[0-3]\d|\d{4}年\d{1,2}月\d{1,2}日)$"),
    "datetime": re.compile(r"^(\d{4}[-/]\d{1,2}[-/]\d{1,2}[ T]\d{1,2}:\d{2}(:\d{2})?(\.\d+)?|(19|20)\d{12}|"
                           r"\d{4}年\d{1,2}月\d{1,2}日 ?\d{1,2}[时:]\d{1,2}分?(\d{1,2}秒)?)$"),
}
#: strptime formats proposed for dates held as text that validation does not read by itself.
TEXT_FORMATS = ["%Y年%m月%d日 %H时%M分", "%Y年%m月%d日 %H时%M分%S秒", "%Y年%m月%d日%H时%M分", "%Y年%m月%d日"]


@dataclass
class ColumnInfo:
    name: str
    type: str
    comment: str | None
    nullable: bool = True
    samples: list[Any] = field(default_factory=list)  # up to SAMPLE_ROWS values, NULLs left out
    distinct: list[str] | None = None  # every distinct value when there are few (code columns)
    adjust: dict[Any, tuple[int, str]] = field(default_factory=dict, repr=False)  # value checks per field kind


@dataclass
class ForeignKey:
    column: str
    ref_table: str
    ref_column: str


@dataclass
class TableInfo:
    name: str
    comment: str | None
    rows: int | None
    columns: list[ColumnInfo] = field(default_factory=list)
    primary_key: list[str] = field(default_factory=list)
    unique: list[list[str]] = field(default_factory=list)  # unique indexes and constraints
    foreign_keys: list[ForeignKey] = field(default_factory=list)

    def col(self, name: str) -> ColumnInfo | None:
        return next((c for c in self.columns if c.name.upper() == name.upper()), None)

    def is_key(self, name: str) -> bool:
        """A single-column primary key or unique index."""
        keys = [self.primary_key, *self.unique]
        return any(len(k) == 1 and k[0].upper() == name.upper() for k in keys)


@dataclass
class Match:
    field: FieldSpec
    column: ColumnInfo
    score: int
    reason: str
    table: TableInfo | None = None
    alias: str = "t0"
    codes: dict[str, str] | None = None
    notes: list[str] = field(default_factory=list)
    format: str | None = None
    output: str = ""  # the column name in the drafted query's result

    @property
    def confidence(self) -> float:
        return round(max(min(self.score, 100), 0) / 100, 2)

    @property
    def source(self) -> str:
        return f"{self.table.name}.{self.column.name}" if self.table else self.column.name


@dataclass
class Join:
    alias: str
    table: TableInfo
    on: list[tuple[str, str, str]]  # (from alias, from column, to column)
    kind: str  # declared | convention | same-name | one-to-one | first-item
    prefix: str = ""  # `dept` for a join through dept_id: dms_dept.name reads as dept_name
    where: str | None = None  # first-item joins: the sequence column kept at 1
    depth: int = 1
    first_of: str | None = None  # first-event joins: MIN(this time column) per key of the base


@dataclass
class Proposal:
    dataset: DataSet
    table: TableInfo
    matches: list[Match]
    missing_required: list[FieldSpec]
    cursor: tuple[str, str] | None  # (column, kind)
    score: float
    joins: list[Join] = field(default_factory=list)
    consts: dict[str, tuple[str, str]] = field(default_factory=dict)  # field → (value, reason)
    warnings: list[str] = field(default_factory=list)
    cursor_note: str = ""
    cursor_alias: str = "t0"
    cursor_output: str = ""  # the cursor's column name in the drafted query's result  # what the dry run on a few rows found

    @property
    def complete(self) -> bool:
        return not self.missing_required

    def sources(self) -> dict[str, str]:
        """field → ``TABLE.COLUMN`` or ``const:VALUE`` (what the benchmark compares with the truth)."""
        out = {m.field.name: m.source for m in self.matches}
        out.update({f: f"const:{v}" for f, (v, _) in self.consts.items()})
        return out


# --- reading the source -------------------------------------------------------------------------


def _guarded(engine: Engine, stmt: Any, what: str) -> list[Any]:
    sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))
    check_query(sql, engine.dialect.name, what)
    with engine.connect() as conn:
        return list(conn.execute(text(sql)))


def inspect_source(engine: Engine, count: bool = True, sample: bool = True) -> list[TableInfo]:
    """Tables, columns (type, comment), keys, foreign keys, row counts and sample values;
    every statement sent is a guarded SELECT."""
    insp = inspect(engine)
    tables = []
    for name in sorted(insp.get_table_names()):
        try:
            comment = insp.get_table_comment(name).get("text")
        except NotImplementedError:
            comment = None
        columns = [ColumnInfo(c["name"], str(c["type"]), c.get("comment"), bool(c.get("nullable", True)))
                   for c in insp.get_columns(name)]
        info = TableInfo(name, comment, None, columns)
        info.primary_key = list(insp.get_pk_constraint(name).get("constrained_columns") or [])
        info.unique = [list(i["column_names"]) for i in insp.get_indexes(name) if i.get("unique")]
        try:
            info.unique += [list(u["column_names"]) for u in insp.get_unique_constraints(name)]
        except NotImplementedError:
            pass
        for fk in insp.get_foreign_keys(name):
            if len(fk["constrained_columns"]) == 1 and fk.get("referred_table"):
                info.foreign_keys.append(ForeignKey(fk["constrained_columns"][0], fk["referred_table"],
                                                    fk["referred_columns"][0]))
        if count:
            stmt = select(literal_column("COUNT(*)")).select_from(table(name))
            info.rows = int(_guarded(engine, stmt, f"表{name}的计数查询")[0][0] or 0)
        if sample and columns:
            try:
                _sample(engine, info)
            except Exception:  # noqa: BLE001 - a type the driver cannot fetch: names and comments still work
                log.warning("probe: no sample of table %s", name, exc_info=True)
        tables.append(info)
    return tables


def _sample(engine: Engine, info: TableInfo) -> None:
    cols = [column(c.name) for c in info.columns]
    rows = _guarded(engine, select(*cols).select_from(table(info.name)).limit(SAMPLE_ROWS), f"表{info.name}的抽样查询")
    for i, c in enumerate(info.columns):
        c.samples = [r[i] for r in rows if r[i] is not None and r[i] != ""]
        seen = {str(v).strip() for v in c.samples}
        # few distinct values in the sample: perhaps a code column; read all its values
        if c.samples and len(seen) <= 12 and len(rows) >= 2 and all(len(v) <= 20 for v in seen):
            # bounded: the first DISTINCT_SCAN rows, never a full scan of a hospital's big table
            head = select(column(c.name)).select_from(table(info.name)).limit(DISTINCT_SCAN).subquery("head")
            try:
                got = _guarded(engine, select(head.c[c.name]).distinct().limit(DISTINCT_LIMIT + 1),
                               f"表{info.name}列{c.name}的取值查询")
            except Exception:  # noqa: BLE001 - e.g. DISTINCT on a LOB column: the sample's values will do
                got = [(v,) for v in c.samples]
            values = sorted({str(r[0]).strip() for r in got if r[0] is not None and str(r[0]).strip() != ""})
            c.distinct = values if len(values) <= DISTINCT_LIMIT else None


# --- matching -----------------------------------------------------------------------------------


@cache
def _rules() -> dict[str, Any]:
    return load_yaml(MATCHING)


def initials(text: str) -> str:
    """Pinyin initials of the Chinese characters, other letters and digits kept: 病人姓名 → BRXM."""
    return "".join(p[0] for p in lazy_pinyin(_NON_WORD.sub("", text), style=Style.FIRST_LETTER) if p).upper()


def full_pinyin(text: str) -> str:
    return "".join(lazy_pinyin(_NON_WORD.sub("", text))).upper()


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


@cache
def field_names(dataset: str, field_name: str) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(normalised Latin names, Chinese names, pinyin of the Chinese names) of a field."""
    names = _rules().get("names", {})
    entries = list(names.get(field_name, [])) + list(names.get(f"{dataset}.{field_name}", []))
    latin = {_norm(e) for e in entries if not _CJK.search(e)}
    chinese = {e for e in entries if _CJK.search(e)}
    pinyin = {initials(e) for e in chinese if len(initials(e)) >= 2} | {full_pinyin(e) for e in chinese}
    return frozenset(latin), frozenset(chinese), frozenset(pinyin)


@cache
def _type_ok(field_type: str, column_type: str) -> bool:
    t = column_type.upper()
    numeric = any(k in t for k in ("INT", "NUMERIC", "DECIMAL", "FLOAT", "DOUBLE", "REAL", "NUMBER"))
    temporal = any(k in t for k in ("DATE", "TIME"))
    if field_type in ("date", "datetime"):
        return not numeric or "NUMBER" in t  # Oracle NUMBER(8) dates exist
    if field_type in ("int", "decimal"):
        return not temporal
    return not temporal or field_type in ("string", "text")


def _shape(values: list[Any], name: str) -> float:
    """Share of the sample values that look like ``name`` (SHAPES)."""
    texts = [str(v).strip() for v in values if not isinstance(v, bytes | bytearray)]
    if not texts:
        return 0.0
    pattern = SHAPES[name]
    return sum(1 for t in texts if pattern.match(t)) / len(texts)


def score(spec: FieldSpec, column: ColumnInfo, dataset: str = "", name: str | None = None) -> tuple[int, str]:
    """How well ``column`` fits ``spec`` (0 = not at all) and why, in Chinese. ``name`` is the
    column's name as read through a join (``dept_name`` for ``dms_dept.name``)."""
    if not _type_ok(spec.type, column.type):
        return 0, ""
    own = dataset if f"{dataset}.{spec.name}" in _rules().get("names", {}) else ""
    base, why = _name_score(spec.name, spec.label, column.comment or "", own, name or column.name)
    if not base:
        return 0, ""
    key = (spec.check, spec.domain, spec.type)
    cached = column.adjust.get(key)
    if cached is None:
        cached = column.adjust[key] = _value_adjust(spec, column)
    adjust, note = cached
    if base + adjust <= 30:
        return 0, ""
    return base + adjust, why + (f"；{note}" if note else "")


@cache
def _name_score(field_name: str, spec_label: str, raw_comment: str, dataset: str, raw_name: str) -> tuple[int, str]:
    """The name and comment part of :func:`score` (cached: fields recur across data sets)."""
    name = _norm(raw_name)
    if name == _norm(field_name):
        return 100, "列名与字段名相同"
    latin, chinese, pinyin = field_names(dataset, field_name)
    comment = _PAREN.sub("", raw_comment).strip()
    if name in latin:
        return 95, f"列名{raw_name}是“{spec_label}”的常用写法"
    if comment and comment in chinese:
        return 92, f"列注释“{raw_comment}”即“{spec_label}”"
    variants = label_variants(spec_label)
    if comment and comment in variants:
        return 90, f"列注释“{raw_comment}”与标准名称“{spec_label}”相符"
    if not comment:
        for phrase in translations(raw_name):
            if phrase in chinese:
                return 84, f"列名{raw_name}意为“{phrase}”，即“{spec_label}”"
            if phrase in variants:
                return 82, f"列名{raw_name}意为“{phrase}”，与标准名称“{spec_label}”相符"
    if name in pinyin:
        return 85, f"列名{raw_name}是“{spec_label}”同义词的拼音"
    if name in _variant_initials(spec_label):
        return 80, f"列名是“{spec_label}”（或其同义词）的拼音首字母"
    if _rules()["aliases"].get(name) == field_name:
        return 75, "常见HIS缩写"
    if comment and len(comment) >= 4 and any(v.endswith(comment) for v in variants):
        return 86, f"列注释“{raw_comment}”与“{spec_label}”（或其同义词）的后半相符"
    if comment and len(comment) >= 3 and any(comment.endswith(c) for c in chinese if len(c) >= 2):
        return 60, f"列注释“{raw_comment}”以“{spec_label}”的同义词结尾"
    if comment and len(comment) >= 2 and any(v.endswith(comment) for v in variants):
        return 55, f"列注释“{raw_comment}”与“{spec_label}”部分相符"
    if len(name) >= 3 and any(c.endswith(name) and c != name for c in _variant_initials(spec_label)):
        return 55, f"列名与“{spec_label}”的拼音首字母部分相符"
    if not comment:
        for phrase in translations(raw_name):
            if len(phrase) >= 4 and any(v.endswith(phrase) for v in variants):
                return 78, f"列名{raw_name}意为“{phrase}”，与“{spec_label}”的后半相符"
            if len(phrase) >= 3 and any(phrase.endswith(c) for c in chinese if len(c) >= 2):
                return 58, f"列名{raw_name}意为“{phrase}”，以“{spec_label}”的同义词结尾"
    return 0, ""


_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def words(name: str) -> list[str]:
    """``registerType`` → [register, type]; ``MAIN_DIAG_CODE`` → [main, diag, code]."""
    return [w.lower() for part in re.split(r"[_\W]+", name) for w in _WORD.findall(part)]


@cache
def translations(name: str) -> tuple[str, ...]:
    """Chinese readings of an English name, when every word is known (``words`` in
    matching.yaml): with and without a last word that only says code/name (频次代码, 频次)."""
    vocab = {str(k).lower(): v for k, v in _rules().get("words", {}).items()}
    parts = words(name)
    # one word is for the name lists (names:); an unknown word makes the reading a guess too far
    if len(parts) < 2 or _CJK.search(name) or any(p not in vocab for p in parts):
        return ()
    chinese = [str(vocab[p] or "") for p in parts]
    out = ["".join(chinese)]
    if len(parts) > 2 and parts[-1] in ("name", "nm"):
        out.append("".join(chinese[:-1]))  # usageName → 用法 (a name column of a coded thing)
    return tuple(dict.fromkeys(o for o in out if len(o) >= 2))


def _value_adjust(spec: FieldSpec, column: ColumnInfo) -> tuple[int, str]:
    """What the sample values add to (or take from) a name match."""
    values = column.samples
    if not values:
        return 0, ""
    if spec.check == "id_no":
        share = _shape(values, "id_no")
        return (5, "取值形如身份证号") if share >= 0.8 else ((-40, "取值不像身份证号") if share < 0.2 else (0, ""))
    if spec.check == "phone":
        share = _shape(values, "phone")
        return (5, "取值形如手机号") if share >= 0.5 else ((-30, "取值不像电话号码") if share < 0.1 else (0, ""))
    if spec.domain == "icd10":
        share = _shape(values, "icd")
        return (5, "取值形如ICD-10编码") if share >= 0.8 else ((-30, "取值不像ICD-10编码") if share < 0.2 else (0, ""))
    if spec.type in ("date", "datetime") and all(isinstance(v, str) for v in values):
        share = max(_shape(values, "date"), _shape(values, "datetime"))
        return (0, "文本日期") if share >= 0.8 else (-60, "取值不是日期")
    return 0, ""


# --- value domains: proposing code tables ---------------------------------------------------------


def resolve_value(domain: ValueDomain, value: str) -> str | None:
    """The standard code a local value stands for, from the data (values:) or the domain's names."""
    local = {str(k).upper(): str(v) for k, v in _rules().get("values", {}).get(domain.id, {}).items()}
    key = value.strip()
    if key.upper() in local:
        return local[key.upper()]
    hits = set()
    for c in domain.codes:
        name = c.name
        plain = _PAREN.sub("", name)
        abbrev = [a.upper() for a in re.findall(r"[（(]([^）)]*)[）)]", name)]
        if key in (name, plain) or key.upper() in abbrev:
            return c.code
        if len(key) >= 2 and (key in plain or (len(plain) >= 2 and plain in key)):
            hits.add(c.code)
    return hits.pop() if len(hits) == 1 else None


def propose_codes(spec: FieldSpec, values: list[str], standard: Standard) -> tuple[dict[str, str] | None, list[str], int]:
    """(code table or None, notes, score adjustment) for a coded field read from a column whose
    distinct values are ``values``."""
    domain = standard.domain(spec.domain or "")
    if domain.kind != "table" or not values:
        return None, [], 0
    spell = domain_lookup(domain)
    inside = [v for v in values if v in spell or v.upper() in spell]
    if len(inside) == len(values):
        for rule in _rules().get("suspicious", {}).get(domain.id, []):
            if sorted(values) == sorted(str(v) for v in rule["values"]):
                return {str(k): str(v) for k, v in rule["codes"].items()}, [f"猜测：{rule['note']}"], -15
        return None, [], 0
    table: dict[str, str] = {}
    unresolved = []
    for v in values:
        if v in spell or v.upper() in spell:
            continue
        code = resolve_value(domain, v)
        if code is None:
            unresolved.append(v)
        else:
            table[v] = code
    notes = []
    if table:
        notes.append(f"本地代码按值域“{domain.name}”的名称猜测对照，请核对")
    if unresolved:
        notes.append(f"TODO 以下本地代码未能对照到值域“{domain.name}”：{'、'.join(unresolved[:10])}；"
                     "不补全时这些记录在采集时报 NOT_IN_DOMAIN")
    share = len(table) / max(len(values) - len(inside), 1)
    return table or None, notes, (-5 if share == 1 else -25)


# --- joins ----------------------------------------------------------------------------------------

_ID_SUFFIX = re.compile(r"^(?P<x>[A-Za-z][A-Za-z0-9]*?)_?(id|ID|Id)$")
_TABLE_PREFIX = re.compile(r"^(?:[A-Za-z]{1,4}_)")


def _edges(tables: list[TableInfo]) -> dict[str, list[tuple[str, str, TableInfo, str, str, str]]]:
    """table → [(kind, from column, target, to column, prefix, where)] a row of the table can be
    joined through without multiplying it (many-to-one or one-to-one), plus first-item joins."""
    by_name = {t.name.upper(): t for t in tables}
    out: dict[str, list[tuple[str, str, TableInfo, str, str, str]]] = {t.name: [] for t in tables}
    for t in tables:
        seen: set[tuple[str, str]] = set()

        def add(kind: str, col: str, target: TableInfo, to: str, prefix: str = "", where: str = "") -> None:
            if target.name == t.name or (col.upper(), target.name) in seen:
                return
            seen.add((col.upper(), target.name))
            out[t.name].append((kind, col, target, to, prefix, where))

        declared = {fk.column.upper() for fk in t.foreign_keys}
        for fk in t.foreign_keys:
            target = by_name.get(fk.ref_table.upper())
            if target:
                add("declared", fk.column, target, fk.ref_column, _prefix(fk.column))
        for c in t.columns:
            m = _ID_SUFFIX.match(c.name)
            if m and len(m.group("x")) >= 3 and "_" in c.name or (m and c.name.endswith("Id")):
                word = m.group("x").lower()
                named = [o for o in tables if o.name != t.name and o.col("id") is not None
                         and word in _TABLE_PREFIX.sub("", o.name).lower().replace("_", "")]
                # drug_id → dms_drug (the table named so) before dms_non_drug_item_record; else
                # dms_medicine_item_record.prescription_id → dms_medicine_prescription_record, not
                # the herbal one: most words shared with the referencing table; then the shortest
                mine = set(words(t.name))

                def rank(o: TableInfo) -> tuple[bool, bool, int, int]:
                    own = words(_TABLE_PREFIX.sub("", o.name))
                    return (own != [word], own[-1:] != [word], -len(mine & set(words(o.name))), len(o.name))

                named.sort(key=rank)
                if named:
                    add("convention", c.name, named[0], named[0].col("id").name, word)  # type: ignore[union-attr]
            if c.name.upper() in declared or t.is_key(c.name):
                continue
            for o in tables:
                other = o.col(c.name)
                if o.name != t.name and other is not None and o.is_key(c.name) and _numeric(other) == _numeric(c):
                    add("same-name", c.name, o, other.name)
    # the other direction: a unique reference back (one-to-one) or a first item (header + items)
    for t in tables:
        for kind, col, target, to, _prefix_, _ in list(out[t.name]):
            if kind == "first-item":
                continue
            if t.is_key(col):
                out[target.name].append(("one-to-one", to, t, col, "", ""))
                continue
            for key in [t.primary_key, *t.unique]:
                if len(key) == 2 and col.upper() in (k.upper() for k in key):
                    seq = next(k for k in key if k.upper() != col.upper())
                    seq_col = t.col(seq)
                    if seq_col is not None and "INT" in seq_col.type.upper():
                        out[target.name].append(("first-item", to, t, col, "", seq))
    return out


JOIN_KINDS = {"declared": "外键", "convention": "命名约定（xxx_id → 表xxx.id）", "same-name": "同名键列",
              "one-to-one": "唯一反向引用", "first-item": "明细表中序号为1的一行",
              "first-event": "引用本表的记录中最早的时间（猜测）"}


def _numeric(c: ColumnInfo) -> bool:
    return any(k in c.type.upper() for k in ("INT", "NUMERIC", "DECIMAL", "NUMBER"))


#: Column names that say nothing of their entity: read through a join on ``dept_id`` as
#: ``dept_name``, ``dept_code`` (and not as the patient's ``name``).
GENERIC = {"NAME", "CODE", "ID", "NO", "TYPE", "TITLE", "FORMAT", "PRICE", "UNIT", "STATUS", "REMARK", "MEMO",
           "DESCRIPTION", "LEVEL", "CATEGORY", "SPEC", "MC", "DM", "BM"}


def _prefix(col: str) -> str:
    m = _ID_SUFFIX.match(col)
    return m.group("x").lower() if m and "_" in col else ""


def _reach(base: TableInfo, edges: dict[str, list[tuple[str, str, TableInfo, str, str, str]]],
           depth: int = 3) -> list[Join]:
    """Tables reachable from the base, each by its shortest path (breadth first)."""
    joins: list[Join] = []
    seen = {base.name}
    frontier: list[tuple[str, TableInfo, int]] = [("t0", base, 0)]
    while frontier:
        alias, t, d = frontier.pop(0)
        if d >= depth:
            continue
        for kind, col, target, to, prefix, where in edges[t.name]:
            if target.name in seen:
                continue
            seen.add(target.name)
            j = Join(f"t{len(joins) + 1}", target, [(alias, col, to)], kind, prefix, where or None, d + 1)
            joins.append(j)
            frontier.append((j.alias, target, d + 1))
    return joins


# --- proposing ------------------------------------------------------------------------------------


def _keyword_hit(dataset: DataSet, t: TableInfo, section: str = "tables") -> bool:
    keywords = _rules().get(section, {}).get(dataset.code, [])
    name = _norm(t.name)
    said = (t.comment or "") + "".join(translations(_TABLE_PREFIX.sub("", t.name)))
    return any((w in said) if _CJK.search(w) else (_norm(w) in name) for w in keywords)


def _candidates(dataset: DataSet, t: TableInfo, specs: list[FieldSpec], names: dict[str, str] | None = None,
                penalty: int = 0) -> list[Match]:
    out = []
    for spec in specs:
        for c in t.columns:
            s, reason = score(spec, c, dataset.code, (names or {}).get(c.name))
            if s:
                out.append(Match(spec, c, s - penalty, reason, t))
    return out


def _assign(candidates: list[Match], used_fields: set[str], used_columns: set[tuple[str, str]]) -> list[Match]:
    """Greedy one-to-one assignment, best score first, required fields before optional ones."""
    candidates.sort(key=lambda m: (-m.score, not m.field.required, m.field.name))
    chosen = []
    for m in candidates:
        key = (m.alias, m.column.name)
        if m.field.name in used_fields or key in used_columns:
            continue
        chosen.append(m)
        used_fields.add(m.field.name)
        used_columns.add(key)
    return chosen


def match_table(dataset: DataSet, table_: TableInfo) -> tuple[list[Match], list[FieldSpec]]:
    """Best one-to-one assignment of one table's columns to the data set's fields."""
    specs = [f for f in dataset.fields if f.name not in PIPELINE_FILLED]
    chosen = _assign(_candidates(dataset, table_, specs), set(), set())
    _key_from_primary_key(dataset, table_, chosen)
    order = {f.name: i for i, f in enumerate(dataset.fields)}
    chosen.sort(key=lambda m: order[m.field.name])
    got = {m.field.name for m in chosen}
    missing = [f for f in specs if f.required and f.name not in got]
    return chosen, missing


def _key_from_primary_key(dataset: DataSet, t: TableInfo, chosen: list[Match]) -> None:
    """A surrogate primary key (``id``) names the record: it becomes the natural key field
    the table has no column for (registration_no ← dms_registration.id)."""
    if len(t.primary_key) != 1 and not t.col("id"):
        return
    pk = t.col(t.primary_key[0]) if len(t.primary_key) == 1 else t.col("id")
    if pk is None or any(m.column.name == pk.name and m.alias == "t0" for m in chosen):
        return
    got = {m.field.name for m in chosen}
    for key in reversed(dataset.natural_key):
        if key not in got:
            chosen.append(Match(dataset.field(key), pk, 70, f"表{t.name}的主键，作为{dataset.field(key).label}", t))
            return


def guess_cursor(t: TableInfo) -> tuple[tuple[str, str] | None, str]:
    """(column, kind) and why: an update time, else a creation time (new rows only), else an
    increasing integer key."""
    rules = _rules()
    update_names = {_norm(c) for c in rules["cursor_columns"]} | field_names("", "update_time")[0]
    create_names = field_names("", "create_time")[0]

    def temporal(c: ColumnInfo) -> bool:
        return any(k in c.type.upper() for k in ("DATE", "TIME"))

    for c in t.columns:
        by_comment = any(k in (c.comment or "") for k in rules["cursor_comments"])
        if (_norm(c.name) in update_names or by_comment) and temporal(c):
            return (c.name, "time"), "更新时间列"
    for c in t.columns:
        if (_norm(c.name) in create_names or any(k in (c.comment or "") for k in ("创建时间", "建档时间"))) and temporal(c):
            return (c.name, "time"), "表中没有更新时间列，用创建时间：只能采到新增的行，源端修改的行要靠定期 --full 重采"
    for c in t.columns:
        integer = "INT" in c.type.upper()
        if integer and ("自增" in (c.comment or "") or (t.primary_key == [c.name]) or c.name.lower() == "id"):
            return (c.name, "id"), "表中没有时间列，用递增的主键：只能采到新增的行，源端修改的行要靠定期 --full 重采"
    return None, ""


def _build(dataset: DataSet, base: TableInfo, edges: dict[str, Any], standard: Standard,
           patient_tables: set[str], by_name: dict[str, TableInfo]) -> Proposal:
    specs = [f for f in dataset.fields if f.name not in PIPELINE_FILLED]
    chosen, _ = match_table(dataset, base)
    used_fields = {m.field.name for m in chosen}
    used_columns = {("t0", m.column.name) for m in chosen}
    joins: list[Join] = []
    missing = [f for f in specs if f.required and f.name not in used_fields]
    if missing:
        reach = _reach(base, edges)
        cands = []
        for j in reach:
            names = {}
            if j.prefix and j.table.name not in patient_tables:
                names = {c.name: f"{j.prefix}_{c.name}" for c in j.table.columns if _norm(c.name) in GENERIC}
            for m in _candidates(dataset, j.table, missing, names, penalty=4 * j.depth + (6 if j.kind == "first-item" else 0)):
                m.alias = j.alias
                m.reason += f"（经{JOIN_KINDS[j.kind]}关联表{j.table.name}）"
                cands.append(m)
        extra = _assign(cands, used_fields, used_columns)
        by_alias = {j.alias: j for j in reach}
        tables = {"t0": base, **{j.alias: j.table for j in reach}}
        for m in extra:  # the very key a table was joined on is the parent's column: no join for it
            j = by_alias[m.alias]
            parent, frm, to = j.on[0]
            if m.column.name == to and tables[parent].col(frm) is not None:
                m.alias, m.table, m.column = parent, tables[parent], tables[parent].col(frm)  # type: ignore[assignment]
                m.reason += "（即关联键，取本表列）"
        needed = {m.alias for m in extra if m.alias != "t0"}
        for alias in sorted(needed, key=lambda a: int(a[1:])):  # the path of each used table, parents first
            path = []
            j = by_alias[alias]
            while j is not None:
                path.append(j)
                j = by_alias.get(j.on[0][0])
            for p in reversed(path):
                if p not in joins:
                    joins.append(p)
        joins.sort(key=lambda j: int(j.alias[1:]))
        chosen += extra
    proposal = Proposal(dataset, base, chosen, [], None, 0.0, joins)
    _fallbacks(proposal, specs, base)
    if _first_event(proposal, specs, edges, by_name):
        _fallbacks(proposal, specs, base)
    _consts(proposal)
    _codes_and_formats(proposal, standard)
    proposal.cursor, proposal.cursor_note = guess_cursor(base)
    if proposal.cursor is None or proposal.cursor[1] == "id":
        # items without a time of their own: the header's update time (a changed item
        # usually touches its header); written as a guess
        for j in proposal.joins:
            cursor, _ = guess_cursor(j.table)
            if j.depth == 1 and j.kind in ("declared", "convention", "same-name") and cursor and cursor[1] == "time":
                proposal.cursor_alias = j.alias
                proposal.cursor = cursor
                proposal.cursor_note = (f"猜测：主表没有更新时间，用关联表{j.table.name}的{cursor[0]}；"
                                        "只改明细不改主表的修改采不到，须定期 --full 重采")
                break
    got = {m.field.name for m in proposal.matches} | set(proposal.consts)
    proposal.missing_required = [f for f in specs if f.required and f.name not in got]
    order = {f.name: i for i, f in enumerate(dataset.fields)}
    proposal.matches.sort(key=lambda m: order[m.field.name])
    return proposal


def _fallbacks(p: Proposal, specs: list[FieldSpec], base: TableInfo) -> None:
    got = {m.field.name: m for m in p.matches}
    for spec in specs:
        if not spec.required or spec.name in got:
            continue
        for other in _rules().get("fallbacks", {}).get(spec.name, []):
            if other in got:
                m = got[other]
                p.matches.append(Match(spec, m.column, 45, f"猜测：沿用{m.field.label}的列{m.column.name}", m.table, m.alias))
                break
            pseudo = FieldSpec(name=other, label=other, type=spec.type, length=spec.length)
            places = [("t0", base)] + [(j.alias, j.table) for j in p.joins if j.depth == 1 and j.kind != "first-item"]
            found = None
            for alias, t in places:
                best = max(((score(pseudo, c, p.dataset.code)[0], c) for c in t.columns), key=lambda x: x[0],
                           default=(0, None))
                if best[0] >= 80 and best[1] is not None:
                    found = (alias, t, best[1])
                    break
            if found:
                alias, t, c = found
                p.matches.append(Match(spec, c, 45, f"猜测：没有{spec.label}列，用{t.name}.{c.name}代替", t, alias))
                break
        got = {m.field.name: m for m in p.matches}


def _first_event(p: Proposal, specs: list[FieldSpec], edges: dict[str, Any], by_name: dict[str, TableInfo]) -> bool:
    """A master table with no time at all (a patient table without 建档时间, as in the NEU-HIS
    teaching system): its creation time is guessed as the first time the master appears in a
    table that references it (the first registration), through an aggregate join."""
    got = {m.field.name for m in p.matches}
    wanted = [f for f in specs if f.required and f.type == "datetime" and f.name not in got
              and f.name in ("create_time", "update_time")]
    if not wanted or "create_time" not in {f.name for f in specs}:
        return False
    create = p.dataset.field("create_time")
    best: tuple[int, TableInfo, str, str, ColumnInfo] | None = None
    for name, out in edges.items():
        for kind, col, target, to, _prefix_, _ in out:
            if target.name != p.table.name or kind not in ("declared", "convention", "same-name"):
                continue
            child = by_name[name]
            for c in child.columns:
                pseudo_score = score(create, c, p.dataset.code)[0]
                time_like = any(k in c.type.upper() for k in ("DATE", "TIME"))
                if time_like and pseudo_score >= 80 and (best is None or pseudo_score > best[0]):
                    best = (pseudo_score, child, col, to, c)
    if best is None:
        return False
    _, child, fk, key, time_col = best
    alias = f"t{max((int(j.alias[1:]) for j in p.joins), default=0) + 1}"
    out_name = f"first_{time_col.name}"
    p.joins.append(Join(alias, child, [("t0", key, fk)], "first-event", first_of=time_col.name))
    column_ = ColumnInfo(out_name, time_col.type, time_col.comment, True, time_col.samples)
    p.matches.append(Match(create, column_, 40, f"猜测：表{p.table.name}没有建档时间，取它在{child.name}中"
                           f"最早的{time_col.name}（首次就诊时间）", child, alias))
    return True


def _consts(p: Proposal) -> None:
    got = {m.field.name: m for m in p.matches}
    names = {f.name for f in p.dataset.fields}
    if "id_type_code" in names and "id_type_code" not in got and "id_no" in got:
        if _shape(got["id_no"].column.samples, "id_no") >= 0.8:
            p.consts["id_type_code"] = ("01", "猜测：证件号码列的取值都形如居民身份证号，证件类别固定为01")
    required = {f.name for f in p.dataset.fields if f.required}
    if "visit_type_code" in required and "visit_type_code" not in got:
        p.consts["visit_type_code"] = ("1", "猜测：未找到门诊/急诊区分列，全部按门诊（1）上报；有急诊时须改为列映射")


def _codes_and_formats(p: Proposal, standard: Standard) -> None:
    for m in p.matches:
        spec = m.field
        if spec.type == "code" and m.column.distinct:
            codes, notes, adjust = propose_codes(spec, m.column.distinct, standard)
            m.codes, m.score = codes, m.score + adjust
            m.notes += notes
        elif spec.type == "code" and m.column.samples and spec.domain:
            domain = standard.domain(spec.domain)
            if domain.kind == "table":
                spell = domain_lookup(domain)
                outside = sorted({str(v).strip() for v in m.column.samples} - set(spell))[:5]
                if outside:
                    m.notes.append(f"TODO 抽样中有值域外的取值（{'、'.join(outside)}），需配置代码对照，否则采集时报 NOT_IN_DOMAIN")
        if spec.type in ("date", "datetime") and m.column.samples and all(isinstance(v, str) for v in m.column.samples):
            for fmt in TEXT_FORMATS:
                try:
                    for v in m.column.samples[:20]:
                        datetime.strptime(v.strip(), fmt)
                except ValueError:
                    continue
                m.format = fmt
                m.notes.append(f"文本日期，按格式 {fmt} 读取")
                break
    for m in p.matches:
        if m.field.check == "id_no" and m.column.samples:
            share = _shape(m.column.samples, "id_no")
            if share < 0.8:
                p.warnings.append(f"{m.field.label}列{m.column.name}抽样中只有{share:.0%}形如身份证号")


def propose(tables: list[TableInfo], standard: Standard | None = None, min_share: float = 0.5) -> list[Proposal]:
    """For each data set the best base table (with joins), when the natural key is there and
    ``min_share`` of the required fields are found (the data set's own words in the table's
    name or comment count for a lot; without them 80 % directly in the table are needed)."""
    std = standard or load_standard()
    edges = _edges(tables)
    by_name = {t.name: t for t in tables}
    patient_tables: set[str] = set()
    out = []
    order = sorted(std.datasets, key=lambda d: d.code != "patient_info")  # the patient table first
    for dataset in order:
        required = [f for f in dataset.fields if f.required and f.name not in PIPELINE_FILLED]
        if not required:
            continue
        best: Proposal | None = None
        for t in tables:
            direct, missing_direct = match_table(dataset, t)
            got = {m.field.name for m in direct}
            if any(k not in got for k in dataset.natural_key):
                continue
            if _keyword_hit(dataset, t, "not_tables"):
                continue  # 草药处方明细 is not a western prescription, however well it matches
            hit = _keyword_hit(dataset, t)
            direct_share = 1 - len(missing_direct) / len(required)
            if len(required) - len(missing_direct) < 2 or (not hit and direct_share < 0.8):
                continue
            p = _build(dataset, t, edges, std, patient_tables, by_name)
            covered = len(required) - len(p.missing_required)
            if covered < min_share * len(required):
                continue
            joined = sum(1 for m in p.matches if m.alias != "t0" and m.field.required)
            p.score = covered - 0.2 * joined + (2 if hit else 0) + sum(m.score for m in p.matches) / 10000
            if best is None or p.score > best.score:
                best = p
        if best is not None:
            out.append(best)
            if dataset.code == "patient_info":
                patient_tables.add(best.table.name)
    number = {d.code: d.number for d in std.datasets}
    out.sort(key=lambda p: number[p.dataset.code])
    return out


# --- the draft --------------------------------------------------------------------------------------


def _ident(name: str, dialect: str | None) -> str:
    """An identifier as written in the drafted SQL: quoted only when it must be."""
    from sqlalchemy.dialects import registry

    if dialect == "postgresql" and name != name.lower():
        return f'"{name}"'
    try:
        reserved = registry.load(dialect or "sqlite")().identifier_preparer.reserved_words  # type: ignore[operator]
    except Exception:  # noqa: BLE001 - an unknown dialect: quote nothing but odd names
        reserved = set()
    if _PLAIN.match(name) and name.lower() not in reserved:
        return name
    return f"`{name}`" if dialect in ("mysql", "mariadb") else f'"{name}"'


def draft_query(p: Proposal, dialect: str | None = None) -> str | None:
    """The SELECT of a proposal with joins (None when the base table alone serves). Every
    column of the base table is selected (``t0.*``), so a correction may map any of them
    without touching the SQL; joined columns are named after what they are (``dept_name``)."""
    p.cursor_output = p.cursor[0] if p.cursor else ""
    if not p.joins:
        for m in p.matches:
            m.output = m.column.name
        return None
    q = lambda n: _ident(n, dialect)  # noqa: E731
    outputs: list[tuple[str, str, str]] = []  # joined (alias, column, output name)
    taken = {c.name.upper() for c in p.table.columns}

    def output(alias: str, col: str, wanted: str) -> str:
        if alias == "t0":
            return col
        for existing in outputs:
            if existing[0] == alias and existing[1] == col:
                return existing[2]
        name = wanted if _PLAIN.match(wanted) and IDENTIFIER.match(wanted) else f"c{len(outputs) + 1}"
        if name.upper() in taken or name.lower() in {"select", "from", "where", "order", "group", "usage"}:
            name = f"{alias}_{name}"
        taken.add(name.upper())
        outputs.append((alias, col, name))
        return name

    by_alias = {j.alias: j for j in p.joins}
    for m in p.matches:
        j = by_alias.get(m.alias)
        wanted = m.column.name
        if j is not None and j.prefix and _norm(wanted) in GENERIC:
            wanted = f"{j.prefix}_{wanted}"
        m.output = output(m.alias, m.column.name, wanted)
    if p.cursor:
        p.cursor_output = output(p.cursor_alias, p.cursor[0], p.cursor[0])
    select_list = ",\n       ".join(["t0.*"] + [f"{a}.{q(c)}" + ("" if n == c else f" AS {n}") for a, c, n in outputs])
    lines = [f"SELECT {select_list}", f"  FROM {q(p.table.name)} t0"]
    for j in p.joins:
        on = " AND ".join(f"{j.alias}.{q(to)} = {a}.{q(frm)}" for a, frm, to in j.on)
        if j.where:
            on += f" AND {j.alias}.{q(j.where)} = 1"
        if j.first_of:
            key = j.on[0][2]
            first = f"first_{j.first_of}"
            lines.append(f"  LEFT JOIN (SELECT {q(key)}, MIN({q(j.first_of)}) AS {first} FROM {q(j.table.name)}"
                         f" GROUP BY {q(key)}) {j.alias} ON {on}")
            continue
        lines.append(f"  LEFT JOIN {q(j.table.name)} {j.alias} ON {on}")
    return "\n".join(lines)


def _yaml_scalar(value: str) -> str:
    return value if re.match(r"^[A-Za-z_\u4e00-\u9fff][A-Za-z0-9_\u4e00-\u9fff]*$", value) and value.lower() not in (
        "yes", "no", "on", "off", "true", "false", "null", "y", "n") else json.dumps(value, ensure_ascii=False)


def _field_line(m: Match) -> str:
    extra = {}
    if m.format:
        extra["format"] = json.dumps(m.format, ensure_ascii=False)
    if m.codes:
        extra["codes"] = "{" + ", ".join(f"{_yaml_scalar(k)}: {json.dumps(v)}" for k, v in m.codes.items()) + "}"
    value = m.output if not extra else "{" + ", ".join([f"column: {m.output}"] + [f"{k}: {v}" for k, v in extra.items()]) + "}"
    note = f"{m.column.comment or ''} {m.column.type}".strip()
    why = "；".join([m.reason, *m.notes])
    return f"{m.field.name + ':':<26} {value:<12} # 置信度{m.confidence:.2f} {m.field.label} ← {m.source}（{note}）；{why}"


def job_lines(p: Proposal, dialect: str | None = None) -> list[str]:
    """The YAML lines of one job (uncommented)."""
    ds = p.dataset
    query = draft_query(p, dialect)
    lines = [f"- dataset: {ds.code}"]
    if query is None:
        lines.append(f"  from: {p.table.name}")
    else:
        lines.append("  query: |")
        lines += [f"    {line}" for line in query.splitlines()]
        for j in p.joins:
            how = JOIN_KINDS[j.kind]
            lines.append(f"  # 关联 {j.alias} = {j.table.name}（{j.table.comment or '无注释'}）：{how}，请核对")
    if p.cursor:
        overlap = "10m" if p.cursor[1] == "time" else "100"
        lines.append(f"  cursor: {{column: {p.cursor_output or p.cursor[0]}, kind: {p.cursor[1]}, overlap: {overlap}}}"
                     f"  # {p.cursor_note}")
    else:
        lines.append("  # TODO 未找到更新时间列或自增ID列：不配置 cursor 时每次全量读取")
    lines.append("  fields:")
    for m in p.matches:
        lines.append(f"    {_field_line(m)}")
    for name, (value, why) in p.consts.items():
        lines.append(f"    {name + ':':<26} {{const: \"{value}\"}}  # 置信度0.40 {ds.field(name).label}；{why}")
    for f in p.missing_required:
        lines.append(f"    # TODO 必填 {f.name}（{f.label}）：未找到对应列")
    return lines


def skeleton(name: str, org: str, url: str, proposals: list[Proposal], dialect: str | None = None,
             trials: dict[str, str] | None = None) -> str:
    """A mapping file (YAML with comments) to review and complete. Data sets missing required
    fields are written commented out (the file loads and runs the complete ones)."""
    active = [p for p in proposals if p.complete]
    lines = [
        f"# 采集映射草稿：由 phip collect probe 于 {datetime.now():%Y-%m-%d %H:%M} 生成。",
        "# 每个字段行尾注释写明置信度（0～1）和匹配理由；“猜测”“TODO”开头的须人工核对。",
        f"# 可直接运行的数据集 {len(active)} 个；缺必填字段的 {len(proposals) - len(active)} 个已整段注释，补全 TODO 后取消注释。",
        "source:",
        f"  name: {name}",
        f'  org: "{org}"',
        f'  url: "{url}"                 # 密码用 ${{变量}} 引用环境变量或密钥文件，切勿写入本文件',
        "  schedule: 15m",
        "",
        "datasets:",
    ]
    if not active:
        lines[-1] = "datasets:   # TODO 没有找到必填字段齐全的数据集：补全下面被注释的数据集后取消注释"
    for p in proposals:
        ds, t = p.dataset, p.table
        required = [f for f in ds.fields if f.required and f.name not in PIPELINE_FILLED]
        rows = f"，{t.rows}行" if t.rows is not None else ""
        lines.append(f"  # {ds.number:02d} {ds.name}：主表 {t.name}（{t.comment or '无注释'}{rows}），"
                     f"找到必填字段 {len(required) - len(p.missing_required)}/{len(required)}")
        for w in p.warnings:
            lines.append(f"  # 注意：{w}")
        if trials and trials.get(p.dataset.code):
            lines.append(f"  # 试运行：{trials[p.dataset.code]}")
        prefix = "  " if p.complete else "  # "
        lines += [prefix + line for line in job_lines(p, dialect)]
        lines.append("")
    return "\n".join(lines) + "\n"


def dry_run(engine: Engine, mapping_text: str, rows: int = 50, standard: Standard | None = None) -> dict[str, str]:
    """Load the draft and pull a few rows of each job through the mapper and the validator,
    without storing anything: per data set, a line saying what would be found."""
    from phip.standard.validate import validator_for

    from .mapping import load_mapping
    from .transform import RowMapper

    std = standard or load_standard()
    mapping = load_mapping(mapping_text, std)
    out: dict[str, str] = {}
    for job in mapping.datasets:
        ds = std.dataset(job.dataset)
        sql = f"SELECT * FROM ({job.sql}) src"
        try:
            stmt = select(literal_column("*")).select_from(text(f"({job.sql}) src")).limit(rows)
            compiled = str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))
            check_query(compiled, engine.dialect.name, f"数据集{job.key}的试运行")
            with engine.connect() as conn:
                result = conn.execute(text(compiled))
                columns = list(result.keys())
                data = result.fetchall()
        except Exception as exc:  # noqa: BLE001 - a draft query that fails is reported, not raised
            out[job.dataset] = f"查询失败（{type(exc).__name__}: {str(exc).splitlines()[0][:200]}）：{sql[:80]}…"
            continue
        mapper = RowMapper(mapping, job, ds, columns)
        validator = validator_for(std, ds)
        codes: Counter[str] = Counter()
        bad = 0
        for i, row in enumerate(data, 1):
            record = mapper(row, i)
            if not isinstance(record, dict):
                codes["UNREADABLE"] += 1
                bad += 1
                continue
            outcome = validator.validate({"org_code": mapping.source.org or "", "org_name": "试运行", **record})
            found = {f"{f.code}:{f.field}" for f in outcome.findings if f.field not in PIPELINE_FILLED}
            codes.update(found)
            bad += bool(found)
        summary = "、".join(f"{k}×{v}" for k, v in codes.most_common(6))
        out[job.dataset] = f"前{len(data)}行映射并校验，{bad}行有问题" + (f"（{summary}）" if summary else "")
    return out


__all__ = ["ColumnInfo", "Join", "Match", "Proposal", "TableInfo", "draft_query", "dry_run", "guess_cursor", "initials",
           "inspect_source", "match_table", "propose", "propose_codes", "score", "skeleton", "translations"]
