"""The data-collection standard (数据采集标准) loaded from data files.

The 72 data sets of the docking notice (attachment 2) and the extension data sets (resident
health records, ``notice: false``) live as one YAML file each under ``data/datasets`` and the value domains
(值域代码表) as CSV files under ``data/domains``. Nothing here knows about storage or HTTP:
this module only turns the files into typed, immutable objects and checks that the files
are coherent (every coded field bound to a known domain, keys and person fields naming real
fields), so a broken edit of the standard fails at load time, not at the first upload.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from functools import cache, cached_property, wraps
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from phip.datafiles import load_yaml
from phip.errors import PhipError

DATA_DIR = Path(__file__).parent / "data"

FieldType = Literal["string", "text", "code", "int", "decimal", "date", "datetime", "bool"]
Check = Literal["id_no", "uscc", "phone"]
Category = Literal[
    "patient", "outpatient", "prescription", "fee", "inpatient", "emr", "lab_exam", "surgery",
    "obstetrics", "nursing", "consent", "resource", "quality", "statistics", "supply", "public_health",
    "internet_hospital",  # the supervision extension (互联网医院监管), data sets 81-87
]
CATEGORY_LABELS: dict[str, str] = {
    "patient": "患者信息", "outpatient": "门急诊", "prescription": "处方", "fee": "费用",
    "inpatient": "住院", "emr": "电子病历", "lab_exam": "检验检查", "surgery": "手术麻醉",
    "obstetrics": "产科", "nursing": "护理", "consent": "知情同意", "resource": "机构资源",
    "quality": "数据质控", "statistics": "统计", "supply": "物资库存",
    "public_health": "基本公共卫生", "internet_hospital": "互联网医院监管",
}
#: Person roles a data set may declare; the EMPI reads these to identify the person.
PersonRole = Literal[
    "patient_id", "id_type", "id_no", "name", "sex", "birth_date", "phone", "health_card_no",
    "insurance_no", "address", "household_address",
]
TYPE_LABELS = {
    "string": "字符", "text": "长文本", "code": "代码", "int": "整数", "decimal": "数值",
    "date": "日期", "datetime": "日期时间", "bool": "布尔",
}
DE_PATTERN = re.compile(r"^DE\d{2}\.\d{2}\.\d{3}\.\d{2}$")


class StandardError(PhipError, ValueError):
    """The standard's data files are inconsistent (a bug in the data, not in a record)."""

    code = "BAD_STANDARD"

    def __init__(self, message: str):
        super().__init__(None, message)


class Code(BaseModel):
    model_config = ConfigDict(frozen=True)
    code: str
    name: str


class ValueDomain(BaseModel):
    """A code table (值域) or, for huge external code systems such as ICD-10, a format check."""

    model_config = ConfigDict(frozen=True)
    id: str
    name: str
    standard: str
    oid: str | None = None
    note: str | None = None
    kind: Literal["table", "code_system"] = "table"
    pattern: str | None = None
    example: str | None = None
    codes: tuple[Code, ...] = ()

    @property
    def code_map(self) -> dict[str, str]:
        return {c.code: c.name for c in self.codes}


class FieldSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str
    de: str | None = None
    type: FieldType
    length: int | None = None
    scale: int | None = None
    required: bool = False
    domain: str | None = None
    check: Check | None = None
    pattern: str | None = None
    min: float | None = None
    max: float | None = None
    allow_future: bool = False  # expiry dates, appointments and plans may lie ahead
    gen: str | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _coherent(self) -> FieldSpec:
        if self.type == "code" and not self.domain:
            raise ValueError(f"coded field {self.name} has no value domain")
        if self.domain and self.type != "code":
            raise ValueError(f"field {self.name} names a domain but is typed {self.type}")
        if self.de and not DE_PATTERN.match(self.de):
            raise ValueError(f"field {self.name}: {self.de} is not a WS 363 data element id")
        if self.type in ("string", "text", "code") and not self.length:
            raise ValueError(f"field {self.name} ({self.type}) needs a length")
        return self


class DataSet(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    number: int = Field(ge=1, le=999)
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    name_en: str
    category: Category
    #: One of the data sets of the docking notice (attachment 2); False for the extensions.
    notice: bool = True
    basis: tuple[str, ...] = ()
    description: str = ""
    natural_key: tuple[str, ...]
    event_time: str
    person: dict[PersonRole, str] = Field(default_factory=dict)
    time_order: tuple[tuple[str, str], ...] = ()
    fields: tuple[FieldSpec, ...]

    @model_validator(mode="after")
    def _references(self) -> DataSet:
        names = [f.name for f in self.fields]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate fields {sorted(dup)}")
        known = set(names)
        refs = [*self.natural_key, self.event_time, *self.person.values()]
        refs += [n for pair in self.time_order for n in pair]
        missing = [r for r in refs if r not in known]
        if missing:
            raise ValueError(f"names unknown fields {missing}")
        if "org_code" not in known:
            raise ValueError("every data set carries org_code (the sending institution)")
        for k in self.natural_key:
            if not self.field(k).required:
                raise ValueError(f"natural key field {k} must be required")
        if self.field(self.event_time).type not in ("date", "datetime"):
            raise ValueError(f"event time {self.event_time} is not a date or datetime")
        return self

    def field(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def label(self) -> str:
        return f"{self.number:02d} {self.name}"


class Standard(BaseModel):
    """The whole published standard: data sets in docking-notice order and value domains."""

    model_config = ConfigDict(frozen=True)
    version: str
    datasets: tuple[DataSet, ...]
    title: str = "全民健康信息平台医疗机构数据采集标准"
    issuer: str = ""
    province: str = ""
    published: str = ""  # YYYY-MM-DD, the date of issue printed on the cover
    domains: dict[str, ValueDomain]

    @property
    def notice_datasets(self) -> tuple[DataSet, ...]:
        """The data sets of the docking notice (attachment 2), without the extensions."""
        return tuple(d for d in self.datasets if d.notice)

    def dataset(self, ref: str | int) -> DataSet:
        """Find a data set by code (``outpatient_visit``), number (``3``) or Chinese name."""
        text = str(ref).strip()
        try:
            return self.dataset_index[text]
        except KeyError:
            raise KeyError(text) from None

    @cached_property
    def dataset_index(self) -> dict[str, DataSet]:
        """Every spelling :meth:`dataset` takes, the first data set holding it winning. The
        pipeline looks a data set up twice a batch: a scan of the ~80 formatting their numbers
        cost 60 µs a time (the demo's 11,000 batches of three days: 1.4 s)."""
        index: dict[str, DataSet] = {}
        for ds in reversed(self.datasets):
            index.update(dict.fromkeys((ds.code, ds.name, str(ds.number), f"{ds.number:02d}"), ds))
        return index

    def domain(self, id: str) -> ValueDomain:
        return self.domains[id]


def _load_domains(folder: Path) -> dict[str, ValueDomain]:
    index = load_yaml(folder / "index.yaml")
    domains: dict[str, ValueDomain] = {}
    for id, meta in index.items():
        codes: tuple[Code, ...] = ()
        path = folder / f"{id}.csv"
        if meta.get("kind", "table") == "table":
            if not path.exists():
                raise StandardError(f"value domain {id}: {path.name} is missing")
            with path.open(encoding="utf-8", newline="") as f:
                codes = tuple(Code(code=r["code"].strip(), name=r["name"].strip()) for r in csv.DictReader(f))
            if len({c.code for c in codes}) != len(codes):
                raise StandardError(f"value domain {id} has duplicate codes")
        domains[id] = ValueDomain(id=id, codes=codes, **meta)
    orphans = {p.stem for p in folder.glob("*.csv")} - set(domains)
    if orphans:
        raise StandardError(f"code tables not declared in index.yaml: {sorted(orphans)}")
    return domains


@cache
def load_standard(data_dir: Path = DATA_DIR) -> Standard:
    """Load and cross-check the standard once per process."""
    domains = _load_domains(data_dir / "domains")
    datasets = []
    for path in sorted((data_dir / "datasets").glob("*.yaml")):
        raw = load_yaml(path)
        try:
            ds = DataSet.model_validate(raw)
        except ValueError as exc:
            raise StandardError(f"{path.name}: {exc}") from exc
        for f in ds.fields:
            if f.domain and f.domain not in domains:
                raise StandardError(f"{path.name}: field {f.name} names unknown domain {f.domain}")
        datasets.append(ds)
    datasets.sort(key=lambda d: d.number)
    nos = [d.number for d in datasets]
    codes = [d.code for d in datasets]
    if len(set(nos)) != len(nos) or len(set(codes)) != len(codes):
        raise StandardError("data set numbers and codes must be unique")
    notice = [d.number for d in datasets if d.notice]
    if notice != list(range(1, len(notice) + 1)) or any(not d.notice and d.number <= len(notice) for d in datasets):
        raise StandardError("the notice's data sets are numbered 1…n as in attachment 2; extensions come after them")
    meta = load_yaml(data_dir / "standard.yaml")
    return Standard(version=str(meta["version"]), datasets=tuple(datasets), domains=domains,
                    **{k: str(meta[k]) for k in ("title", "issuer", "province", "published") if meta.get(k)})


_T = TypeVar("_T")


def per_dataset(build: Callable[[DataSet], _T]) -> Callable[[DataSet], _T]:
    """Memoise a function of a data set by the data set's identity. Such functions run for every
    record of every batch, and a frozen pydantic model hashes all its fields on each lookup.
    The data set is kept beside its value, so a reused id never answers for another one."""
    memo: dict[int, tuple[DataSet, _T]] = {}

    @wraps(build)
    def cached(dataset: DataSet) -> _T:
        entry = memo.get(id(dataset))
        if entry is None or entry[0] is not dataset:
            entry = memo[id(dataset)] = (dataset, build(dataset))
        return entry[1]

    return cached
