"""The mapping file of a source (采集映射): one YAML per hospital database.

It says where the database is (a SQLAlchemy URL whose secrets are ``${NAME}`` placeholders
resolved from the environment or a secrets file), when to pull (``schedule``), and for each
data set of the standard: the SELECT (or a table), how columns become fields (column, concat,
constant, date format, trim, local-code map) and the incremental cursor. Keeping it as data
means a new hospital is a new file, not new code. The format is documented with a complete
worked example in docs/collect-mapping.md; ``examples/his_demo.yaml`` is that example.

Loading checks everything that can be checked without the source: data sets and fields exist
in the standard, every required field is mapped, code maps exist, and every query passes the
read-only guard — so a bad mapping fails before any connection is opened.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from phip.config import get_settings
from phip.input_messages import first_reason
from phip.standard.catalog import Standard, load_standard

from .guard import DIALECTS, MappingProblem, ReadOnlyViolation, check_query

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
#: Fields the pipeline fills from the sending institution; a mapping need not map them.
PIPELINE_FILLED = frozenset({"org_code", "org_name"})


class MappingError(MappingProblem):
    """A mapping file that cannot be used; ``code`` is stable, ``message`` Chinese."""


def parse_duration(value: str | int | float) -> timedelta:
    """``90`` (seconds), ``"30s"``, ``"10m"``, ``"2h"``, ``"1d"``."""
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"时长“{value}”格式不正确，应为数字加单位 s/m/h/d，如 10m")
    number, unit = int(match.group(1)), match.group(2) or "s"
    return timedelta(seconds=number * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit])


class SourceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    org: str = Field(min_length=1, max_length=32, description="医疗机构代码（统一社会信用代码）")
    url: str = Field(min_length=1, description="SQLAlchemy URL; secrets as ${NAME}")
    dialect: str | None = None
    schedule: str | None = None  # "15m" = every 15 minutes; None = manual runs only
    # 5,000: each batch carries fixed costs (some twenty statements, two commits, their plans);
    # at 1,000 rows they were a quarter of PostgreSQL's time per row (500,000 pulled visits:
    # 16,300 rows/s at 1,000, 19,100 at 5,000, 19,500 at 10,000 for 35 MiB more).
    batch_size: int = Field(5000, ge=1, le=50000)
    retries: int = Field(3, ge=0, le=20)
    backoff: str = "2s"
    connect_timeout: int = Field(10, ge=1, le=600)
    # Old MySQL HIS databases declare their text columns latin1 but store GBK bytes in them
    # (written by GBK clients through a latin1 connection). ``legacy_encoding: gbk`` reads
    # those bytes as they lie and decodes them as GBK; without it they arrive as mojibake.
    legacy_encoding: Literal["gbk", "gb2312", "gb18030", "big5"] | None = None

    @field_validator("schedule", "backoff")
    @classmethod
    def _duration(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration(v)
        return v

    @property
    def interval(self) -> timedelta | None:
        return parse_duration(self.schedule) if self.schedule else None

    @property
    def backoff_delta(self) -> timedelta:
        return parse_duration(self.backoff)

    @property
    def backend(self) -> str | None:
        """SQLAlchemy backend name, from ``dialect`` or the URL scheme when it is not a placeholder."""
        if self.dialect:
            return self.dialect
        scheme = self.url.split(":", 1)[0].split("+", 1)[0]
        return scheme if scheme in DIALECTS else None


class CursorSpec(BaseModel):
    """The incremental cursor (增量游标): an update-time column or an increasing id."""

    model_config = ConfigDict(extra="forbid")
    column: str = Field(pattern=IDENTIFIER.pattern)
    kind: Literal["time", "id"] = "time"
    overlap: str | int = "10m"  # time: a duration re-read on every run; id: a number of ids

    @model_validator(mode="after")
    def _overlap(self) -> CursorSpec:
        if self.kind == "time":
            parse_duration(self.overlap)
        elif not isinstance(self.overlap, int) or self.overlap < 0:
            raise ValueError("id 类游标的 overlap 应为非负整数（回读的编号个数）")
        return self

    @property
    def overlap_value(self) -> timedelta | int:
        return parse_duration(self.overlap) if self.kind == "time" else int(self.overlap)


class ChangeDetection(BaseModel):
    """Change detection for a table without an update time (变更检测): the source computes a
    row count and a checksum of the mapped columns per key range (chunk), the platform compares
    them with those of its last read and re-reads only the chunks that differ."""

    model_config = ConfigDict(extra="forbid")
    method: Literal["checksum"] = "checksum"
    key: str | list[str]  # unique, NOT NULL, indexed key column(s): the chunks are ranges of it
    # rows per chunk when chunks are drawn: a changed row costs its chunk's rows re-read, a
    # chunk costs a row of state and a bound in the checksum query (docs/performance.md)
    chunk_size: int = Field(200, ge=10, le=100000)
    chunks_per_query: int = Field(1000, ge=1, le=5000)  # chunks checksummed by one query

    @field_validator("key")
    @classmethod
    def _key(cls, v: str | list[str]) -> str | list[str]:
        for col in [v] if isinstance(v, str) else v:
            if not IDENTIFIER.match(col):
                raise ValueError(f"变更检测的键列名“{col}”不合法")
        if isinstance(v, list) and not v:
            raise ValueError("变更检测须指定键列 key")
        return v

    @property
    def keys(self) -> list[str]:
        return [self.key] if isinstance(self.key, str) else list(self.key)


class FieldMap(BaseModel):
    """How one standard field is made from a row: exactly one of column / concat / const."""

    model_config = ConfigDict(extra="forbid")
    column: str | None = None
    concat: list[str] | None = None
    sep: str = ""
    const: Any = None
    format: str | None = None  # strptime format for a date/datetime held as text, e.g. "%Y%m%d"
    codes: str | dict[str, str] | None = None  # name in the top-level codes section, or inline
    trim: bool = True
    default: Any = None

    @field_validator("codes", mode="before")
    @classmethod
    def _inline_codes_as_text(cls, v: Any) -> Any:
        # YAML reads {1: "1", 0: "2"} with integer keys (and 1: 1 with integer values): a local
        # code is compared as text, so both spellings are the same table.
        return _code_table(v) if isinstance(v, dict) else v

    @model_validator(mode="after")
    def _one_source(self) -> FieldMap:
        given = [k for k in ("column", "concat", "const") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("每个字段须且只须指定 column、concat、const 之一")
        return self

    def columns(self) -> list[str]:
        return [self.column] if self.column else list(self.concat or [])


class Job(BaseModel):
    """One data set pulled by one query."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    dataset: str
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    query: str | None = None
    from_: str | None = Field(None, alias="from", pattern=IDENTIFIER.pattern)
    cursor: CursorSpec | None = None
    change_detection: ChangeDetection | None = None  # tables without an update time
    batch_size: int | None = Field(None, ge=1, le=50000)
    fields: dict[str, str | FieldMap]

    @model_validator(mode="after")
    def _source(self) -> Job:
        if (self.query is None) == (self.from_ is None):
            raise ValueError("须且只须指定 query（SELECT语句）或 from（表名）之一")
        if self.cursor is not None and self.change_detection is not None:
            raise ValueError("cursor（增量游标）与 change_detection（变更检测）只能选其一")
        self.fields = {k: FieldMap(column=v) if isinstance(v, str) else v for k, v in self.fields.items()}
        return self

    @property
    def key(self) -> str:
        return self.name or self.dataset

    @property
    def sql(self) -> str:
        return self.query.strip().rstrip(";") if self.query else f"SELECT * FROM {self.from_}"


class Mapping(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: SourceSpec
    codes: dict[str, dict[str, str]] = Field(default_factory=dict)
    datasets: list[Job] = Field(min_length=1)
    path: Path | None = Field(None, exclude=True)

    @field_validator("codes", mode="before")
    @classmethod
    def _codes_as_text(cls, v: Any) -> Any:
        # YAML reads 1: 男 as an int key; local codes are text.
        if isinstance(v, dict):
            return {name: _code_table(table) if isinstance(table, dict) else ({} if table is None else table)
                    for name, table in v.items()}
        return v

    @property
    def name(self) -> str:
        return self.source.name

    def job(self, ref: str) -> Job:
        for job in self.datasets:
            if ref in (job.key, job.dataset):
                return job
        raise MappingError("UNKNOWN_JOB", f"数据源{self.name}的映射中没有数据集“{ref}”")

    def code_map(self, ref: str | dict[str, str]) -> dict[str, str]:
        if isinstance(ref, dict):
            return {str(k): str(v) for k, v in ref.items()}
        return self.codes[ref]


def _code_table(table: dict[Any, Any]) -> dict[str, str]:
    """A local-code table with text keys and values (an empty value maps the code to nothing)."""
    return {str(k): "" if v is None else str(v) for k, v in table.items()}


# pydantic error type → what was expected, in Chinese ({ctx} keys are pydantic's context).
_EXPECTED = {
    "missing": "缺少此项（必填）",
    "extra_forbidden": "不认识此项：请检查拼写，或删除它",
    "string_type": "应为文本",
    "int_type": "应为整数",
    "int_parsing": "应为整数",
    "int_from_float": "应为整数",
    "bool_type": "应为 true 或 false",
    "bool_parsing": "应为 true 或 false",
    "list_type": "应为列表（每项一行，以“- ”开头）",
    "dict_type": "应为对象（“键: 值”若干行，或 {键: 值, …}）",
    "model_type": "应为对象（“键: 值”若干行，或 {键: 值, …}）",
    "model_attributes_type": "应为对象（“键: 值”若干行，或 {键: 值, …}）",
    "string_pattern_mismatch": "格式不符，应匹配 {pattern}",
    "string_too_short": "不能为空",
    "string_too_long": "过长，最多 {max_length} 个字符",
    "too_short": "至少需要 {min_length} 项",
    "greater_than_equal": "应不小于 {ge}",
    "less_than_equal": "应不大于 {le}",
    "greater_than": "应大于 {gt}",
    "less_than": "应小于 {lt}",
    "literal_error": "应为以下之一：{expected}",
    "enum": "应为以下之一：{expected}",
}
#: What a mapping's list or section holds, for the hint after an empty or mistyped one.
_HINTS = {
    ("datasets",): "每个数据集一段“- dataset: 数据集代码”；phip collect probe 的草稿中被注释掉的数据集须补全必填字段后再取消注释",
    ("source",): "source 下应有 name、org、url 等项",
    ("codes",): "codes 下每个对照表一项：表名: {本地代码: 标准代码}",
}


def _union_tag(part: Any) -> bool:
    """A location element naming a member of a union (``str``, ``function-after[…, FieldMap]``)."""
    return isinstance(part, str) and (part in ("str", "int", "dict[str,str]", "[key]", "FieldMap")
                                      or part.startswith(("function-", "list[", "dict[")))


def _yaml_path(loc: tuple[Any, ...], data: Any) -> str:
    """``datasets[1]（patient_info）.fields.sex_code.codes`` from pydantic's location."""
    out: list[str] = []
    node = data
    for part in loc:
        if isinstance(part, int):
            label = f"[{part + 1}]" if isinstance(node, list) else f".{part}"
            node = node[part] if isinstance(node, list) and part < len(node) else (
                node.get(part) if isinstance(node, dict) else None)
            if out and out[-1] == "datasets" and isinstance(node, dict) and node.get("dataset"):
                label += f"（{node['dataset']}）"
            out.append(label)
        else:
            out.append(("." if out else "") + str(part))
            node = node.get(part) if isinstance(node, dict) else None
    return "".join(out)


def explain_validation(exc: ValidationError, data: Any, limit: int = 5) -> str:
    """pydantic's errors as Chinese lines: the YAML path, what is wrong, what is expected.

    A field given as text or as an object is a union: pydantic reports both branches, of which
    only the one matching what was written is meant; the other is dropped.
    """
    lines: list[str] = []
    seen: set[str] = set()
    for error in exc.errors():
        loc = tuple(error["loc"])
        branch_str = any(p == "str" for p in loc)
        value = error.get("input")
        if branch_str and isinstance(value, dict):
            continue  # an object was written: the text branch is not what was meant
        clean = tuple(p for p in loc if not _union_tag(p))
        if "[key]" in loc:
            clean = clean[:-1] + (f"{clean[-1]}（键）",) if clean else clean
        path = _yaml_path(clean, data) or "（顶层）"
        if path in seen:
            continue
        seen.add(path)
        kind = error["type"]
        if kind == "value_error":
            expected = str(error.get("ctx", {}).get("error", error["msg"]))
        elif kind in ("string_type", "model_type") and len(clean) >= 2 and clean[-2] == "fields":
            expected = "应为列名（文本）或对象 {column: 列名, …}"
        else:
            ctx = {k: str(v).replace("' or '", "'、'") for k, v in (error.get("ctx") or {}).items()}
            expected = _EXPECTED.get(kind, error["msg"]).format(**ctx)
        shown = "" if kind == "missing" or value is None or isinstance(value, dict | list) else f"（现为“{str(value)[:60]}”）"
        if value is None and kind in ("list_type", "dict_type", "model_type", "string_type"):
            shown = "（现为空）"
        hint = _HINTS.get(clean, "")
        lines.append(f"{path}：{expected}{shown}" + (f"。{hint}" if hint else ""))
        if len(lines) >= limit:
            break
    more = len(exc.errors()) - len(seen)
    return "；".join(lines) + (f"（另有{more}处）" if more > 0 and len(lines) >= limit else "")


def check_mapping(mapping: Mapping, standard: Standard | None = None) -> Mapping:
    """The checks that need the standard and the guard (see the module docstring)."""
    std = standard or load_standard()
    keys = [j.key for j in mapping.datasets]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise MappingError("DUPLICATE_JOB", f"数据集映射重名：{', '.join(dup)}（同一数据集多段查询时请用 name 区分）")
    for job in mapping.datasets:
        try:
            ds = std.dataset(job.dataset)
        except KeyError:
            raise MappingError("UNKNOWN_DATASET", f"数据集“{job.dataset}”不存在，请查阅省平台数据采集标准") from None
        where = f"数据集{job.key}"
        names = {f.name for f in ds.fields}
        unknown = [f for f in job.fields if f not in names]
        if unknown:
            raise MappingError("UNKNOWN_FIELD", f"{where}映射了标准中没有的字段：{', '.join(unknown)}")
        missing = [f"{f.name}（{f.label}）" for f in ds.fields if f.required and f.name not in job.fields
                   and f.name not in PIPELINE_FILLED]
        if missing:
            raise MappingError("REQUIRED_UNMAPPED", f"{where}的必填字段未映射：{'、'.join(missing)}")
        for name, fm in job.fields.items():
            assert isinstance(fm, FieldMap)
            for col in fm.columns():
                if not IDENTIFIER.match(col):
                    raise MappingError("BAD_COLUMN", f"{where}字段{name}的列名“{col}”不合法")
            if isinstance(fm.codes, str) and fm.codes not in mapping.codes:
                raise MappingError("UNKNOWN_CODES", f"{where}字段{name}引用的代码对照表“{fm.codes}”未在 codes 中定义")
            if fm.codes is not None and ds.field(name).type != "code":
                raise MappingError("CODES_ON_NON_CODE", f"{where}字段{name}不是代码字段，不能配置代码对照")
        backend = mapping.source.backend
        if job.change_detection is not None and backend is not None and backend not in ("mysql", "mariadb", "postgresql"):
            raise MappingError("CHECKSUM_DIALECT", f"{where}：变更检测（change_detection）目前支持 MySQL/MariaDB 与 "
                                                   f"PostgreSQL 数据源，不支持 {backend}")
        try:
            check_query(job.sql, mapping.source.backend, f"{where}的查询")
        except ReadOnlyViolation as exc:
            raise MappingError(exc.code, exc.message) from None
    return mapping


#: PyYAML's reasons in Chinese (its English was the message); the first match wins
_YAML_REASONS = (("constructor for the tag", "含不允许的YAML标签（如 !!python/…），映射文件只能是普通的键值"),
                 ("'\\t'", "含制表符（Tab），YAML 缩进只能用空格"),
                 ("mapping values are not allowed", "冒号位置不对（键值中的冒号之后应有空格，或值应加引号）"),
                 ("undefined alias", "引用了未定义的锚点（*别名）"),
                 ("end of stream", "文件意外结束（引号或括号没有闭合）"),
                 ("expected ',' or ']'", "方括号没有闭合或元素之间缺少逗号"),
                 ("expected ',' or '}'", "花括号没有闭合或元素之间缺少逗号"),
                 ("expected <block end>", "缩进不一致"),
                 ("while scanning a quoted scalar", "引号没有闭合"))


def _yaml_problem(exc: Exception) -> str:
    text = f"{getattr(exc, 'problem', '') or ''} {getattr(exc, 'context', '') or ''} {exc}"
    reason = first_reason(_YAML_REASONS, text)
    mark = getattr(exc, "problem_mark", None)
    return f"第{mark.line + 1}行第{mark.column + 1}列：{reason}" if mark is not None else reason


def load_mapping(source: str | Path, standard: Standard | None = None) -> Mapping:
    """Load and check a mapping file (a path) or YAML text."""
    path = Path(source) if not isinstance(source, str) or "\n" not in source else None
    try:
        text = path.read_text(encoding="utf-8") if path is not None else str(source)
    except OSError as exc:
        raise MappingError("MAPPING_NOT_FOUND", f"无法读取映射文件{path}：{exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MappingError("MAPPING_YAML", f"映射文件不是有效的YAML：{_yaml_problem(exc)}") from None
    if not isinstance(data, dict):
        raise MappingError("MAPPING_YAML", "映射文件应为包含 source、datasets 的YAML对象")
    try:
        mapping = Mapping.model_validate(data)
    except ValidationError as exc:
        raise MappingError("MAPPING_INVALID", f"映射文件有误：{explain_validation(exc, data)}") from None
    mapping.path = path
    return check_mapping(mapping, standard)


# --- secrets --------------------------------------------------------------------------------


def _secrets_file() -> Path:
    return get_settings().secrets_file


def read_secrets(path: Path | None = None) -> dict[str, str]:
    """``NAME=value`` lines (``#`` comments, optional quotes); a missing file is empty."""
    path = path or _secrets_file()
    values: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return values
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, value = line.split("=", 1)
        values[name.strip()] = value.strip().strip("'\"")
    return values


def resolve_url(spec: SourceSpec) -> str:
    """The URL with every ``${NAME}`` replaced (environment first, then the secrets file)."""
    names = _PLACEHOLDER.findall(spec.url)
    if not names:
        return spec.url
    secrets = None
    values = {}
    for name in names:
        if name in os.environ:
            values[name] = os.environ[name]
            continue
        if secrets is None:
            secrets = read_secrets()
        if name not in secrets:
            raise MappingError(
                "SECRET_MISSING", f"数据源{spec.name}的连接串引用的变量{name}未在环境变量或密钥文件（{_secrets_file()}）中设置"
            )
        values[name] = secrets[name]
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], spec.url)


def sources_dir() -> Path:
    return get_settings().collect_dir


def find_mapping(ref: str, standard: Standard | None = None) -> Mapping:
    """A source by path, or by name among ``*.yaml`` in the sources directory."""
    path = Path(ref)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return load_mapping(path, standard)
    directory = sources_dir()
    for candidate in sorted(directory.glob("*.y*ml")):
        if candidate.stem == ref:
            return load_mapping(candidate, standard)
    for candidate in sorted(directory.glob("*.y*ml")):
        mapping = load_mapping(candidate, standard)
        if mapping.name == ref:
            return mapping
    raise MappingError("UNKNOWN_SOURCE", f"数据源“{ref}”不存在：既不是映射文件路径，也不在采集目录{directory}中")


def all_mappings(standard: Standard | None = None) -> tuple[list[Mapping], list[tuple[Path, MappingError]]]:
    """Every mapping in the sources directory, and the files that failed to load."""
    good, bad = [], []
    for path in sorted(sources_dir().glob("*.y*ml")):
        try:
            good.append(load_mapping(path, standard))
        except MappingError as exc:
            bad.append((path, exc))
    return good, bad
