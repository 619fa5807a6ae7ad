"""Three more HIS schemas, in the naming styles of real Chinese hospital systems, for the probe.

``his_synth`` is one style (pinyin-initial names with Chinese comments, the common case). A
probe that only knew it would fail on the next hospital, so these three are written from
public descriptions of other products, each with a few hundred synthetic rows (Faker zh_CN
through :mod:`phip.synth`) and the mapping a person would write (the *truth*), field by field:

* ``pinyin`` — 东软/卫宁-style: ``BR_DA`` 病人档案, ``MZ_GHXX``, ``MZ_JZXX``, ``MZ_CFZB`` +
  ``MZ_CFMX``; pinyin-initial columns (``BRBH``, ``BRXM``, ``XB``, ``CSRQ``, ``SFZH``, ``GHLSH``)
  with Chinese column comments; the visit and the prescription carry no patient name (a join);
  registration types as 普通号/专家号/急诊号, frequencies QD/BID, routes 口服/静滴.
* ``cryptic`` — a system whose columns are ``F001``, ``F002`` … in tables ``HIS_T001`` …: only
  the Chinese comments say what they hold; joins are declared foreign keys; sex as M/F, birth
  date as text ``YYYYMMDD``, visit type as 门诊/急诊, document type as 身份证, integer keys.
* ``english`` — like the teaching HIS (东软 NEU-HIS, MySQL, 17 of its tables): ``pms_patient``,
  ``dms_registration``, ``dms_case_history``, ``dms_medicine_prescription_record`` + ``..._item_record``
  beside the herbal ones, ``sms_dept``, ``sms_staff``, ``sms_skd``, ``dms_drug``, ``bms_*``; English column names (``gender``, ``date_of_birth``,
  ``identification_no``), Chinese TABLE comments only, sex coded 1/0, no update time on the
  patient table, no declared foreign keys (``patient_id`` → ``pms_patient.id`` by convention),
  frequencies as 一日三次.

In every style about one ID number in eight carries a wrong check digit, as real data does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    create_engine,
)

from phip.standard.validate import platform_now
from . import vocab
from .generator import Generator

from . import his_synth

S = String
#: The data sets whose required fields the probe is measured on.
MEASURED = ("patient_info", "outpatient_registration", "outpatient_visit", "western_prescription")
_REG_TYPES = [("1", "普通号"), ("1", "普通号"), ("2", "专家号")]
_FREQS = [("01", "QD", "qd", "一日一次"), ("02", "BID", "bid", "一日两次"), ("03", "TID", "tid", "一日三次"),
          ("13", "PRN", "prn", "必要时")]
_ROUTES = [("1", "口服", "口服", "口服"), ("1", "口服", "口服", "口服"), ("404", "静滴", "静脉滴注", "静脉滴注"),
           ("403", "肌注", "肌内注射", "肌肉注射")]


@dataclass
class Truth:
    """The mapping a person would write: per data set, per required field, the accepted sources
    (``TABLE.COLUMN`` or ``const:VALUE``) and, for coded fields, the local → standard table."""

    sources: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    codes: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    #: per data set, the table whose rows become its records (row count = records)
    grain: dict[str, str] = field(default_factory=dict)

    def add(self, dataset: str, grain: str, spec: dict[str, str | tuple[str, ...]],
            codes: dict[str, dict[str, str]] | None = None) -> None:
        self.grain[dataset] = grain
        self.sources[dataset] = {f: {s} if isinstance(s, str) else set(s) for f, s in spec.items()}
        self.codes[dataset] = codes or {}


@dataclass
class StyleData:
    style: str
    metadata: MetaData
    rows: dict[str, list[dict[str, Any]]]
    truth: Truth

    def count(self, dataset: str) -> int:
        return len(self.rows[self.truth.grain[dataset]])


# --- the shared world: patients, visits, prescriptions --------------------------------------


@dataclass
class _Visit:
    no: int
    patient: int
    emergency: bool
    reg_type: tuple[str, str]
    reg_time: datetime
    time: datetime
    fields: dict[str, Any]
    fee: float
    rx: list[dict[str, Any]] = field(default_factory=list)


def _world(seed: int, patients: int, visits: int, now: datetime) -> tuple[list[dict[str, Any]], list[_Visit]]:
    gen = Generator(seed=seed)
    rng = random.Random(seed + 7)
    people = []
    for i in range(patients):
        p = gen.patient(his_synth.DEMO_ORG[0])
        id_no = p.id_no
        if i % 8 == 3:  # a wrong check digit, as in real data
            id_no = id_no[:-1] + ("0" if id_no[-1] != "0" else "1")
        created = now - timedelta(days=30, minutes=rng.randrange(0, 20000))
        people.append({"p": p, "id_no": id_no, "created": created.replace(microsecond=0)})
    out = []
    for n in range(1, visits + 1):
        who = rng.randrange(len(people))
        day = (now - timedelta(days=rng.randint(1, 20))).date()
        e = gen.encounter(people[who]["p"], "out", day, now)
        emergency = e.fields["visit_type_code"] == "2"
        reg = ("4", "急诊号") if emergency else rng.choice(_REG_TYPES)
        start = e.start.replace(microsecond=0)
        v = _Visit(n, who, emergency, reg, start - timedelta(minutes=rng.randrange(5, 60)), start, e.fields,
                   round(rng.uniform(5, 60), 2))
        if rng.random() < 0.6:
            for item in range(1, rng.randint(1, 3) + 1):
                index = rng.randrange(len(vocab.DRUGS))
                drug, spec, unit, _ = vocab.DRUGS[index]
                v.rx.append({"item": item, "drug": drug, "spec": spec, "unit": unit, "code": f"YP{index + 1:05d}",
                             "freq": rng.choice(_FREQS), "route": rng.choice(_ROUTES), "qty": float(rng.randint(1, 3)),
                             "price": round(rng.uniform(3, 90), 2)})
        out.append(v)
    return people, out


# --- (a) pinyin initials with Chinese column comments ------------------------------------------


def _pinyin(seed: int, patients: int, visits: int, now: datetime) -> StyleData:
    md = MetaData()
    t = Table("BR_DA", md, Column("BRBH", S(20), comment="病人编号"), Column("BRXM", S(40), comment="病人姓名"),
              Column("XB", S(1), comment="性别"), Column("CSRQ", Date, comment="出生日期"),
              Column("ZJLX", S(2), comment="证件类型"), Column("SFZH", S(18), comment="身份证号"),
              Column("LXDH", S(20), comment="联系电话"), Column("JTZZ", S(200), comment="家庭住址"),
              Column("JDRQ", DateTime, comment="建档日期"), Column("GXSJ", DateTime, comment="更新时间"), comment="病人档案")
    Index("pk_BR_DA", t.c.BRBH, unique=True)
    t = Table("MZ_GHXX", md, Column("GHLSH", S(20), comment="挂号流水号"), Column("JZLSH", S(20), comment="就诊流水号"),
              Column("BRBH", S(20), comment="病人编号"), Column("BRXM", S(40), comment="病人姓名"),
              Column("XB", S(1), comment="性别"), Column("JZLX", S(1), comment="就诊类型（1门诊 2急诊）"),
              Column("GHLX", S(10), comment="挂号类型"), Column("KSBM", S(10), comment="科室编码"),
              Column("KSMC", S(40), comment="科室名称"), Column("YSBM", S(10), comment="医生编码"),
              Column("YSXM", S(40), comment="医生姓名"), Column("GHRQ", DateTime, comment="挂号日期"),
              Column("GHF", Numeric(10, 2), comment="挂号费"), Column("ZJE", Numeric(10, 2), comment="总金额"),
              Column("THBZ", S(1), comment="退号标志"), Column("GXSJ", DateTime, comment="更新时间"), comment="门诊挂号信息")
    Index("pk_MZ_GHXX", t.c.GHLSH, unique=True)
    t = Table("MZ_JZXX", md, Column("JZLSH", S(20), comment="就诊流水号"), Column("GHLSH", S(20), comment="挂号流水号"),
              Column("BRBH", S(20), comment="病人编号"), Column("JZLX", S(1), comment="就诊类型"),
              Column("KSBM", S(10), comment="就诊科室编码"), Column("KSMC", S(40), comment="就诊科室名称"),
              Column("YSBM", S(10), comment="接诊医生编码"), Column("YSXM", S(40), comment="接诊医生姓名"),
              Column("JZRQ", DateTime, comment="就诊日期"), Column("ZS", S(200), comment="主诉"),
              Column("ZDBM", S(20), comment="诊断编码"), Column("ZDMC", S(100), comment="诊断名称"),
              Column("GXSJ", DateTime, comment="更新时间"), comment="门诊就诊信息")
    Index("pk_MZ_JZXX", t.c.JZLSH, unique=True)
    t = Table("MZ_CFZB", md, Column("CFBH", S(20), comment="处方编号"), Column("JZLSH", S(20), comment="就诊流水号"),
              Column("BRBH", S(20), comment="病人编号"), Column("KSBM", S(10), comment="开方科室编码"),
              Column("KSMC", S(40), comment="开方科室名称"), Column("YSBM", S(10), comment="开方医生编码"),
              Column("YSXM", S(40), comment="开方医生姓名"), Column("KFRQ", DateTime, comment="开方日期"),
              Column("ZDBM", S(20), comment="诊断编码"), Column("ZDMC", S(100), comment="诊断名称"),
              Column("GXSJ", DateTime, comment="更新时间"), comment="门诊处方主表")
    Index("pk_MZ_CFZB", t.c.CFBH, unique=True)
    t = Table("MZ_CFMX", md, Column("CFBH", S(20), comment="处方编号"), Column("MXXH", Integer, comment="明细序号"),
              Column("YPBM", S(20), comment="药品编码"), Column("YPMC", S(100), comment="药品名称"),
              Column("YPGG", S(50), comment="药品规格"), Column("SYPC", S(10), comment="使用频次"),
              Column("YYTJ", S(10), comment="用药途径"), Column("SL", Numeric(10, 2), comment="数量"),
              Column("DW", S(10), comment="单位"), Column("DJ", Numeric(10, 2), comment="单价"),
              Column("JE", Numeric(12, 2), comment="金额"), comment="门诊处方明细")
    Index("pk_MZ_CFMX", t.c.CFBH, t.c.MXXH, unique=True)

    people, visits = _world(seed, patients, visits, now)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in md.tables}
    for i, h in enumerate(people):
        p = h["p"]
        rows["BR_DA"].append({"BRBH": f"BR{i + 1:06d}", "BRXM": p.name, "XB": p.sex_code, "CSRQ": p.birth_date, "ZJLX": "01",
                              "SFZH": h["id_no"], "LXDH": p.phone, "JTZZ": p.address, "JDRQ": h["created"],
                              "GXSJ": h["created"] + timedelta(hours=1)})
    for v in visits:
        f, p = v.fields, people[v.patient]["p"]
        reg, visit, brbh = f"GH{v.no:07d}", f"JZ{v.no:07d}", f"BR{v.patient + 1:06d}"
        kind = "2" if v.emergency else "1"
        rows["MZ_GHXX"].append({"GHLSH": reg, "JZLSH": visit, "BRBH": brbh, "BRXM": p.name, "XB": p.sex_code, "JZLX": kind,
                                "GHLX": v.reg_type[1], "KSBM": f["dept_code"], "KSMC": f["dept_name"], "YSBM": f["doctor_id"],
                                "YSXM": f["doctor_name"], "GHRQ": v.reg_time, "GHF": 5, "ZJE": v.fee, "THBZ": "0",
                                "GXSJ": v.reg_time + timedelta(minutes=1)})
        rows["MZ_JZXX"].append({"JZLSH": visit, "GHLSH": reg, "BRBH": brbh, "JZLX": kind, "KSBM": f["dept_code"],
                                "KSMC": f["dept_name"], "YSBM": f["doctor_id"], "YSXM": f["doctor_name"], "JZRQ": v.time,
                                "ZS": f["chief_complaint"], "ZDBM": f["diagnosis_code"], "ZDMC": f["diagnosis_name"],
                                "GXSJ": v.time + timedelta(minutes=30)})
        if v.rx:
            no = f"CF{v.no:07d}"
            rows["MZ_CFZB"].append({"CFBH": no, "JZLSH": visit, "BRBH": brbh, "KSBM": f["dept_code"], "KSMC": f["dept_name"],
                                    "YSBM": f["doctor_id"], "YSXM": f["doctor_name"], "KFRQ": v.time + timedelta(minutes=5),
                                    "ZDBM": f["diagnosis_code"], "ZDMC": f["diagnosis_name"],
                                    "GXSJ": v.time + timedelta(minutes=6)})
            for it in v.rx:
                rows["MZ_CFMX"].append({"CFBH": no, "MXXH": it["item"], "YPBM": it["code"], "YPMC": it["drug"], "YPGG": it["spec"],
                                        "SYPC": it["freq"][1], "YYTJ": it["route"][1], "SL": it["qty"], "DW": it["unit"],
                                        "DJ": it["price"], "JE": round(it["qty"] * it["price"], 2)})
    truth = Truth()
    truth.add("patient_info", "BR_DA", {
        "patient_id": "BR_DA.BRBH", "name": "BR_DA.BRXM", "sex_code": "BR_DA.XB", "birth_date": "BR_DA.CSRQ",
        "id_type_code": ("BR_DA.ZJLX", "const:01"), "id_no": "BR_DA.SFZH", "create_time": "BR_DA.JDRQ",
        "update_time": "BR_DA.GXSJ"})
    person = {"patient_id": ("MZ_GHXX.BRBH", "MZ_JZXX.BRBH", "MZ_CFZB.BRBH", "BR_DA.BRBH"),
              "name": ("MZ_GHXX.BRXM", "BR_DA.BRXM"), "sex_code": ("MZ_GHXX.XB", "BR_DA.XB")}
    truth.add("outpatient_registration", "MZ_GHXX", {
        **person, "registration_no": "MZ_GHXX.GHLSH", "visit_no": "MZ_GHXX.JZLSH", "visit_type_code": "MZ_GHXX.JZLX",
        "registration_type_code": "MZ_GHXX.GHLX", "dept_code": "MZ_GHXX.KSBM", "dept_name": "MZ_GHXX.KSMC",
        "registration_time": "MZ_GHXX.GHRQ", "total_fee": "MZ_GHXX.ZJE"},
        {"registration_type_code": {"普通号": "1", "专家号": "2", "急诊号": "4"}})
    truth.add("outpatient_visit", "MZ_JZXX", {
        **person, "visit_no": "MZ_JZXX.JZLSH", "visit_type_code": "MZ_JZXX.JZLX", "dept_code": "MZ_JZXX.KSBM",
        "dept_name": "MZ_JZXX.KSMC", "visit_time": "MZ_JZXX.JZRQ", "diagnosis_code": "MZ_JZXX.ZDBM",
        "diagnosis_name": "MZ_JZXX.ZDMC"})
    truth.add("western_prescription", "MZ_CFMX", {
        **person, "prescription_no": ("MZ_CFMX.CFBH", "MZ_CFZB.CFBH"), "item_no": "MZ_CFMX.MXXH",
        "visit_no": ("MZ_CFZB.JZLSH", "MZ_JZXX.JZLSH"), "visit_type_code": "MZ_JZXX.JZLX", "dept_code": "MZ_CFZB.KSBM",
        "dept_name": "MZ_CFZB.KSMC", "doctor_id": "MZ_CFZB.YSBM", "doctor_name": "MZ_CFZB.YSXM",
        "prescription_time": "MZ_CFZB.KFRQ", "diagnosis_code": "MZ_CFZB.ZDBM", "diagnosis_name": "MZ_CFZB.ZDMC",
        "drug_local_code": "MZ_CFMX.YPBM", "drug_name": "MZ_CFMX.YPMC", "frequency_code": "MZ_CFMX.SYPC",
        "route_code": "MZ_CFMX.YYTJ", "quantity": "MZ_CFMX.SL"},
        {"frequency_code": {"QD": "01", "BID": "02", "TID": "03", "PRN": "13"},
         "route_code": {"口服": "1", "静滴": "404", "肌注": "403"}})
    return StyleData("pinyin", md, rows, truth)


# --- (b) cryptic names, Chinese comments only, declared foreign keys ----------------------------


def _cryptic(seed: int, patients: int, visits: int, now: datetime) -> StyleData:
    md = MetaData()

    def cols(*spec: tuple[Any, str], pk: bool = True) -> list[Column]:
        """F001, F002 … with the comment; a (type, "TABLE.COLUMN") kind declares a foreign key."""
        out = []
        for i, (kind, comment) in enumerate(spec, 1):
            if isinstance(kind, tuple):
                out.append(Column(f"F{i:03d}", kind[0], ForeignKey(kind[1]), comment=comment))
            else:
                out.append(Column(f"F{i:03d}", kind, primary_key=pk and i == 1, autoincrement=False, comment=comment))
        return out

    Table("HIS_T001", md, *cols((Integer, "患者ID"), (S(40), "姓名"), (S(1), "性别"), (S(8), "出生日期"),
                                (S(18), "证件号码"), (S(10), "证件类型"), (S(20), "手机号"), (DateTime, "创建时间"),
                                (DateTime, "修改时间")), comment="患者主索引")
    Table("HIS_T010", md, *cols((Integer, "挂号ID"), ((Integer, "HIS_T001.F001"), "患者ID"), (S(1), "挂号类别"),
                                (S(10), "科室代码"), (S(40), "科室名称"), (S(10), "医生代码"), (S(40), "医生姓名"),
                                (DateTime, "挂号时间"), (Numeric(10, 2), "挂号金额"), (S(4), "就诊类别"),
                                (S(20), "就诊流水号"), (DateTime, "修改时间")), comment="门诊挂号")
    Table("HIS_T011", md, *cols((S(20), "就诊流水号"), ((Integer, "HIS_T010.F001"), "挂号ID"),
                                ((Integer, "HIS_T001.F001"), "患者ID"), (S(10), "就诊科室代码"), (S(40), "就诊科室名称"),
                                (S(10), "接诊医生代码"), (DateTime, "就诊时间"), (S(20), "主诊断编码"),
                                (S(100), "主诊断名称"), (S(4), "就诊类别"), (DateTime, "修改时间")), comment="门诊就诊")
    Table("HIS_T020", md, *cols((S(20), "处方号"), ((S(20), "HIS_T011.F001"), "就诊流水号"),
                                ((Integer, "HIS_T001.F001"), "患者ID"), (DateTime, "开方时间"), (S(10), "开方医生代码"),
                                (S(40), "开方医生姓名"), (S(10), "开方科室代码"), (S(40), "开方科室名称"),
                                (S(20), "诊断编码"), (S(100), "诊断名称"), (DateTime, "修改时间")), comment="处方")
    t = Table("HIS_T021", md, *cols(((S(20), "HIS_T020.F001"), "处方号"), (Integer, "序号"), (S(20), "药品代码"),
                                    (S(100), "药品名称"), (S(10), "频次"), (S(20), "给药途径"), (Numeric(10, 2), "数量"),
                                    (Numeric(10, 2), "单价"), (Numeric(12, 2), "金额"), pk=False), comment="处方明细")
    Index("uk_HIS_T021", t.c.F001, t.c.F002, unique=True)

    people, visits = _world(seed, patients, visits, now)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in md.tables}
    for i, h in enumerate(people):
        p = h["p"]
        rows["HIS_T001"].append({"F001": i + 1, "F002": p.name, "F003": "M" if p.sex_code == "1" else "F",
                                 "F004": f"{p.birth_date:%Y%m%d}", "F005": h["id_no"], "F006": "身份证", "F007": p.phone,
                                 "F008": h["created"], "F009": h["created"] + timedelta(hours=2)})
    for v in visits:
        f = v.fields
        kind = "急诊" if v.emergency else "门诊"
        visit = f"V{v.no:07d}"
        rows["HIS_T010"].append({"F001": v.no, "F002": v.patient + 1, "F003": v.reg_type[0], "F004": f["dept_code"],
                                 "F005": f["dept_name"], "F006": f["doctor_id"], "F007": f["doctor_name"], "F008": v.reg_time,
                                 "F009": v.fee, "F010": kind, "F011": visit, "F012": v.reg_time + timedelta(minutes=2)})
        rows["HIS_T011"].append({"F001": visit, "F002": v.no, "F003": v.patient + 1, "F004": f["dept_code"],
                                 "F005": f["dept_name"], "F006": f["doctor_id"], "F007": v.time, "F008": f["diagnosis_code"],
                                 "F009": f["diagnosis_name"], "F010": kind, "F011": v.time + timedelta(minutes=20)})
        if v.rx:
            no = f"R{v.no:07d}"
            rows["HIS_T020"].append({"F001": no, "F002": visit, "F003": v.patient + 1, "F004": v.time + timedelta(minutes=3),
                                     "F005": f["doctor_id"], "F006": f["doctor_name"], "F007": f["dept_code"],
                                     "F008": f["dept_name"], "F009": f["diagnosis_code"], "F010": f["diagnosis_name"],
                                     "F011": v.time + timedelta(minutes=4)})
            for it in v.rx:
                rows["HIS_T021"].append({"F001": no, "F002": it["item"], "F003": it["code"], "F004": it["drug"],
                                         "F005": it["freq"][2], "F006": it["route"][2], "F007": it["qty"], "F008": it["price"],
                                         "F009": round(it["qty"] * it["price"], 2)})
    truth = Truth()
    sex = {"M": "1", "F": "2"}
    truth.add("patient_info", "HIS_T001", {
        "patient_id": "HIS_T001.F001", "name": "HIS_T001.F002", "sex_code": "HIS_T001.F003", "birth_date": "HIS_T001.F004",
        "id_type_code": ("HIS_T001.F006", "const:01"), "id_no": "HIS_T001.F005", "create_time": "HIS_T001.F008",
        "update_time": "HIS_T001.F009"}, {"sex_code": sex, "id_type_code": {"身份证": "01"}})
    person = {"patient_id": ("HIS_T010.F002", "HIS_T011.F003", "HIS_T020.F003", "HIS_T001.F001"),
              "name": "HIS_T001.F002", "sex_code": "HIS_T001.F003"}
    truth.add("outpatient_registration", "HIS_T010", {
        **person, "registration_no": "HIS_T010.F001", "visit_no": "HIS_T010.F011", "visit_type_code": "HIS_T010.F010",
        "registration_type_code": "HIS_T010.F003", "dept_code": "HIS_T010.F004", "dept_name": "HIS_T010.F005",
        "registration_time": "HIS_T010.F008", "total_fee": "HIS_T010.F009"},
        {"sex_code": sex, "visit_type_code": {"门诊": "1", "急诊": "2"}})
    truth.add("outpatient_visit", "HIS_T011", {
        **person, "visit_no": "HIS_T011.F001", "visit_type_code": "HIS_T011.F010", "dept_code": "HIS_T011.F004",
        "dept_name": "HIS_T011.F005", "visit_time": "HIS_T011.F007", "diagnosis_code": "HIS_T011.F008",
        "diagnosis_name": "HIS_T011.F009"}, {"sex_code": sex, "visit_type_code": {"门诊": "1", "急诊": "2"}})
    truth.add("western_prescription", "HIS_T021", {
        **person, "prescription_no": ("HIS_T021.F001", "HIS_T020.F001"), "item_no": "HIS_T021.F002",
        "visit_no": ("HIS_T020.F002", "HIS_T011.F001"), "visit_type_code": "HIS_T011.F010",
        "dept_code": "HIS_T020.F007", "dept_name": "HIS_T020.F008", "doctor_id": "HIS_T020.F005",
        "doctor_name": "HIS_T020.F006", "prescription_time": "HIS_T020.F004", "diagnosis_code": "HIS_T020.F009",
        "diagnosis_name": "HIS_T020.F010", "drug_local_code": "HIS_T021.F003", "drug_name": "HIS_T021.F004",
        "frequency_code": "HIS_T021.F005", "route_code": "HIS_T021.F006", "quantity": "HIS_T021.F007"},
        {"sex_code": sex, "visit_type_code": {"门诊": "1", "急诊": "2"},
         "frequency_code": {"qd": "01", "bid": "02", "tid": "03", "prn": "13"},
         "route_code": {"口服": "1", "静脉滴注": "404", "肌内注射": "403"}})
    return StyleData("cryptic", md, rows, truth)


# --- (c) English names, table comments only (the teaching HIS) ---------------------------------


def _english(seed: int, patients: int, visits: int, now: datetime) -> StyleData:
    """After the public description of the NEU-HIS teaching system: dms_ (clinic), pms_
    (patients), sms_ (system: departments, staff, schedules), bms_ (billing) tables; herbal
    prescriptions beside the western ones (a trap for the probe); no column comments."""
    md = MetaData()
    pk = {"primary_key": True, "autoincrement": False}
    Table("sms_dept", md, Column("id", Integer, **pk), Column("code", S(20)), Column("name", S(40)),
          Column("type", Integer), Column("status", Integer), comment="科室")
    Table("sms_staff", md, Column("id", Integer, **pk), Column("code", S(20)), Column("name", S(40)),
          Column("dept_id", Integer), Column("title", S(20)), Column("status", Integer), comment="员工/医生")
    Table("sms_skd", md, Column("id", Integer, **pk), Column("staff_id", Integer), Column("dept_id", Integer),
          Column("skd_date", Date), Column("noon", S(4)), Column("remain", Integer), comment="排班")
    Table("sms_role", md, Column("id", Integer, **pk), Column("name", S(40)), Column("status", Integer), comment="角色")
    Table("dms_drug", md, Column("id", Integer, **pk), Column("code", S(20)), Column("name", S(100)),
          Column("format", S(50)), Column("price", Numeric(10, 2)), Column("unit", S(10)), Column("stock", Integer),
          comment="药品")
    Table("dms_non_drug", md, Column("id", Integer, **pk), Column("code", S(20)), Column("name", S(100)),
          Column("price", Numeric(10, 2)), Column("type", Integer), comment="非药品收费项目（检查检验处置）")
    Table("pms_patient", md, Column("id", Integer, **pk), Column("name", S(40)), Column("gender", Integer),
          Column("date_of_birth", Date), Column("identification_no", S(18)), Column("medical_record_no", S(20)),
          Column("phone_no", S(20)), Column("home_address", S(200)), Column("create_time", DateTime), comment="患者信息")
    Table("dms_registration", md, Column("id", Integer, **pk), Column("patient_id", Integer), Column("dept_id", Integer),
          Column("skd_id", Integer), Column("registration_level", S(10)), Column("visit_category", Integer),
          Column("amount", Numeric(10, 2)), Column("status", Integer), Column("bind_status", Integer),
          Column("attendance_date", Date), Column("create_time", DateTime), Column("update_time", DateTime),
          comment="挂号信息")
    t = Table("dms_case_history", md, Column("id", Integer, **pk), Column("registration_id", Integer),
              Column("patient_id", Integer), Column("staff_id", Integer), Column("chief_complaint", S(200)),
              Column("disease_icd", S(20)), Column("disease_name", S(100)), Column("status", Integer),
              Column("create_time", DateTime), comment="门诊病历（就诊记录）")
    Index("uk_case_registration", t.c.registration_id, unique=True)
    Table("dms_case_model", md, Column("id", Integer, **pk), Column("name", S(40)), Column("chief_complaint", S(200)),
          Column("staff_id", Integer), comment="病历模板")
    Table("dms_medicine_prescription_record", md, Column("id", Integer, **pk), Column("registration_id", Integer),
          Column("name", S(40)), Column("type", Integer), Column("amount", Numeric(12, 2)), Column("status", Integer),
          Column("refund_status", Integer), Column("create_time", DateTime), comment="成药处方")
    Table("dms_medicine_item_record", md, Column("id", Integer, **pk), Column("prescription_id", Integer),
          Column("drug_id", Integer), Column("medicine_usage", S(20)), Column("medicine_frequency", S(20)),
          Column("days", Integer), Column("num", Numeric(10, 2)), Column("status", Integer), comment="成药处方明细")
    Table("dms_herbal_prescription_record", md, Column("id", Integer, **pk), Column("registration_id", Integer),
          Column("name", S(40)), Column("type", Integer), Column("pair_num", Integer), Column("frequency", S(20)),
          Column("amount", Numeric(12, 2)), Column("status", Integer), Column("create_time", DateTime), comment="草药处方")
    Table("dms_herbal_item_record", md, Column("id", Integer, **pk), Column("prescription_id", Integer),
          Column("drug_id", Integer), Column("medicine_usage", S(20)), Column("num", Numeric(10, 2)),
          Column("footnote", S(40)), Column("status", Integer), comment="草药处方明细")
    Table("dms_non_drug_item_record", md, Column("id", Integer, **pk), Column("registration_id", Integer),
          Column("no_drug_id", Integer), Column("name", S(100)), Column("status", Integer), Column("result", S(200)),
          Column("create_time", DateTime), comment="检查检验处置申请")
    Table("bms_bills_record", md, Column("id", Integer, **pk), Column("registration_id", Integer),
          Column("bill_no", S(20)), Column("amount", Numeric(12, 2)), Column("status", Integer),
          Column("create_time", DateTime), comment="账单记录")
    Table("bms_invoice_record", md, Column("id", Integer, **pk), Column("invoice_no", S(20)), Column("bill_id", Integer),
          Column("amount", Numeric(12, 2)), Column("create_time", DateTime), comment="发票记录")
    Table("bms_operator_settle_record", md, Column("id", Integer, **pk), Column("operator_id", Integer),
          Column("start_datetime", DateTime), Column("end_datetime", DateTime), Column("amount", Numeric(12, 2)),
          comment="操作员日结")

    people, visits = _world(seed, patients, visits, now)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in md.tables}
    depts: dict[str, int] = {}
    staff: dict[str, int] = {}
    skd: dict[tuple[str, Any], int] = {}
    drugs: dict[str, int] = {}
    for i, h in enumerate(people):
        p = h["p"]
        rows["pms_patient"].append({"id": i + 1, "name": p.name, "gender": 1 if p.sex_code == "1" else 0,
                                    "date_of_birth": p.birth_date, "identification_no": h["id_no"],
                                    "medical_record_no": f"MR{i + 1:06d}", "phone_no": p.phone, "home_address": p.address,
                                    "create_time": h["created"]})
    rows["sms_role"] = [{"id": 1, "name": "门诊医生", "status": 1}, {"id": 2, "name": "收费员", "status": 1}]
    rows["dms_case_model"] = [{"id": 1, "name": "上感模板", "chief_complaint": "咳嗽3天", "staff_id": 1}]
    rows["dms_non_drug"] = [{"id": 1, "code": "JC001", "name": "血常规", "price": 20, "type": 1}]
    rx_id = herbal_id = item_id = 0
    for v in visits:
        f = v.fields
        if f["dept_code"] not in depts:
            depts[f["dept_code"]] = len(depts) + 1
            rows["sms_dept"].append({"id": depts[f["dept_code"]], "code": f["dept_code"], "name": f["dept_name"],
                                     "type": 1, "status": 1})
        if f["doctor_id"] not in staff:
            staff[f["doctor_id"]] = len(staff) + 1
            rows["sms_staff"].append({"id": staff[f["doctor_id"]], "code": f["doctor_id"], "name": f["doctor_name"],
                                      "dept_id": depts[f["dept_code"]], "title": "主治医师", "status": 1})
        slot = (f["doctor_id"], v.time.date())
        if slot not in skd:
            skd[slot] = len(skd) + 1
            rows["sms_skd"].append({"id": skd[slot], "staff_id": staff[f["doctor_id"]], "dept_id": depts[f["dept_code"]],
                                    "skd_date": v.time.date(), "noon": "上午", "remain": 20})
        rows["dms_registration"].append({
            "id": v.no, "patient_id": v.patient + 1, "dept_id": depts[f["dept_code"]], "skd_id": skd[slot],
            "registration_level": v.reg_type[1], "visit_category": 2 if v.emergency else 1, "amount": v.fee, "status": 1,
            "bind_status": 0, "attendance_date": v.time.date(), "create_time": v.reg_time,
            "update_time": v.reg_time + timedelta(minutes=2)})
        rows["dms_case_history"].append({"id": 1000 + v.no, "registration_id": v.no, "patient_id": v.patient + 1,
                                         "staff_id": staff[f["doctor_id"]], "chief_complaint": f["chief_complaint"],
                                         "disease_icd": f["diagnosis_code"], "disease_name": f["diagnosis_name"], "status": 2,
                                         "create_time": v.time})
        rows["bms_bills_record"].append({"id": v.no, "registration_id": v.no, "bill_no": f"B{v.no:07d}", "amount": v.fee,
                                         "status": 1, "create_time": v.reg_time})
        if v.no % 7 == 0:  # herbal prescriptions and tests: tables the probe must not take for western ones
            herbal_id += 1
            rows["dms_herbal_prescription_record"].append({
                "id": herbal_id, "registration_id": v.no, "name": "中药处方", "type": 1, "pair_num": 7, "frequency": "一日两次",
                "amount": 80, "status": 1, "create_time": v.time + timedelta(minutes=8)})
            rows["dms_herbal_item_record"].append({"id": herbal_id, "prescription_id": herbal_id, "drug_id": 1,
                                                   "medicine_usage": "水煎服", "num": 10, "footnote": "先煎", "status": 1})
            rows["dms_non_drug_item_record"].append({"id": herbal_id, "registration_id": v.no, "no_drug_id": 1,
                                                     "name": "血常规", "status": 1, "result": "", "create_time": v.time})
        if v.rx:
            rx_id += 1
            rows["dms_medicine_prescription_record"].append({
                "id": rx_id, "registration_id": v.no, "name": "处方", "type": 1,
                "amount": round(sum(it["qty"] * it["price"] for it in v.rx), 2), "status": 1, "refund_status": 0,
                "create_time": v.time + timedelta(minutes=4)})
            for it in v.rx:
                if it["code"] not in drugs:
                    drugs[it["code"]] = len(drugs) + 1
                    rows["dms_drug"].append({"id": drugs[it["code"]], "code": it["code"], "name": it["drug"],
                                             "format": it["spec"], "price": it["price"], "unit": it["unit"], "stock": 100})
                item_id += 1
                rows["dms_medicine_item_record"].append({
                    "id": item_id, "prescription_id": rx_id, "drug_id": drugs[it["code"]], "medicine_usage": it["route"][3],
                    "medicine_frequency": it["freq"][3], "days": 3, "num": it["qty"], "status": 1})
    truth = Truth()
    sex = {"1": "1", "0": "2"}
    truth.add("patient_info", "pms_patient", {
        "patient_id": "pms_patient.id", "name": "pms_patient.name", "sex_code": "pms_patient.gender",
        "birth_date": "pms_patient.date_of_birth", "id_type_code": "const:01", "id_no": "pms_patient.identification_no",
        "create_time": "pms_patient.create_time", "update_time": "pms_patient.create_time"}, {"sex_code": sex})
    person = {"patient_id": ("dms_registration.patient_id", "dms_case_history.patient_id", "pms_patient.id"),
              "name": "pms_patient.name", "sex_code": "pms_patient.gender"}
    dept = {"dept_code": "sms_dept.code", "dept_name": "sms_dept.name"}
    truth.add("outpatient_registration", "dms_registration", {
        **person, **dept, "registration_no": "dms_registration.id", "visit_no": "dms_registration.id",
        "visit_type_code": "dms_registration.visit_category", "registration_type_code": "dms_registration.registration_level",
        "registration_time": "dms_registration.create_time", "total_fee": "dms_registration.amount"},
        {"sex_code": sex, "registration_type_code": {"普通号": "1", "专家号": "2", "急诊号": "4"}})
    truth.add("outpatient_visit", "dms_case_history", {
        **person, **dept, "visit_no": ("dms_case_history.registration_id", "dms_registration.id"),
        "visit_type_code": "dms_registration.visit_category", "visit_time": "dms_case_history.create_time",
        "diagnosis_code": "dms_case_history.disease_icd", "diagnosis_name": "dms_case_history.disease_name"},
        {"sex_code": sex})
    truth.add("western_prescription", "dms_medicine_item_record", {
        **person, **dept, "prescription_no": ("dms_medicine_item_record.prescription_id", "dms_medicine_prescription_record.id"),
        "item_no": "dms_medicine_item_record.id",
        "visit_no": ("dms_medicine_prescription_record.registration_id", "dms_registration.id",
                     "dms_case_history.registration_id"),
        "visit_type_code": "dms_registration.visit_category", "doctor_id": "sms_staff.code", "doctor_name": "sms_staff.name",
        "prescription_time": "dms_medicine_prescription_record.create_time",
        "diagnosis_code": "dms_case_history.disease_icd", "diagnosis_name": "dms_case_history.disease_name",
        "drug_local_code": "dms_drug.code", "drug_name": "dms_drug.name",
        "frequency_code": "dms_medicine_item_record.medicine_frequency", "route_code": "dms_medicine_item_record.medicine_usage",
        "quantity": "dms_medicine_item_record.num"},
        {"sex_code": sex, "frequency_code": {"一日一次": "01", "一日两次": "02", "一日三次": "03", "必要时": "13"},
         "route_code": {"口服": "1", "静脉滴注": "404", "肌肉注射": "403"}})
    return StyleData("english", md, rows, truth)


# --- (d) camelCase, a hold-out written after the synonyms were fixed ----------------------------


def _camel(seed: int, patients: int, visits: int, now: datetime) -> StyleData:
    """A Java-style system (camelCase columns, ``t_`` tables, table comments only), written
    after the probe's synonyms were fixed and measured before any change to them: how the
    probe does on a naming it was not tuned for."""
    md = MetaData()
    Table("t_patient", md, Column("patientId", S(20), primary_key=True), Column("patientName", S(40)),
          Column("sex", S(2)), Column("birthDay", Date), Column("idCardNo", S(18)), Column("mobile", S(20)),
          Column("createdAt", DateTime), Column("updatedAt", DateTime), comment="病人表")
    Table("t_register", md, Column("registerId", S(20), primary_key=True), Column("clinicNo", S(20)),
          Column("patientId", S(20)), Column("patientName", S(40)), Column("sex", S(2)),
          Column("registerType", S(10)), Column("clinicType", S(1)), Column("deptCode", S(10)),
          Column("deptName", S(40)), Column("doctorCode", S(10)), Column("doctorName", S(40)),
          Column("registerTime", DateTime), Column("fee", Numeric(10, 2)), Column("updatedAt", DateTime), comment="挂号表")
    Table("t_outpatient_record", md, Column("clinicNo", S(20), primary_key=True), Column("registerId", S(20)),
          Column("patientId", S(20)), Column("clinicType", S(1)), Column("deptCode", S(10)), Column("deptName", S(40)),
          Column("doctorCode", S(10)), Column("doctorName", S(40)), Column("visitTime", DateTime),
          Column("mainDiagCode", S(20)), Column("mainDiagName", S(100)), Column("updatedAt", DateTime), comment="门诊记录")
    Table("t_recipe", md, Column("recipeNo", S(20), primary_key=True), Column("clinicNo", S(20)),
          Column("patientId", S(20)), Column("deptCode", S(10)), Column("deptName", S(40)), Column("doctorCode", S(10)),
          Column("doctorName", S(40)), Column("recipeTime", DateTime), Column("diagCode", S(20)),
          Column("diagName", S(100)), Column("updatedAt", DateTime), comment="处方")
    t = Table("t_recipe_detail", md, Column("recipeNo", S(20)), Column("lineNo", Integer), Column("drugCode", S(20)),
              Column("drugName", S(100)), Column("spec", S(50)), Column("freqCode", S(10)), Column("usageName", S(20)),
              Column("qty", Numeric(10, 2)), Column("price", Numeric(10, 2)), comment="处方明细")
    Index("uk_recipe_detail", t.c.recipeNo, t.c.lineNo, unique=True)

    people, visits = _world(seed, patients, visits, now)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in md.tables}
    for i, h in enumerate(people):
        p = h["p"]
        rows["t_patient"].append({"patientId": f"P{i + 1:06d}", "patientName": p.name, "sex": his_synth.SEX_CN[p.sex_code],
                                  "birthDay": p.birth_date, "idCardNo": h["id_no"], "mobile": p.phone,
                                  "createdAt": h["created"], "updatedAt": h["created"] + timedelta(hours=3)})
    for v in visits:
        f, p = v.fields, people[v.patient]["p"]
        reg, clinic, pid = f"R{v.no:07d}", f"C{v.no:07d}", f"P{v.patient + 1:06d}"
        kind = "2" if v.emergency else "1"
        local_type = {"1": "普通", "2": "专家", "4": "急诊"}[v.reg_type[0]]
        rows["t_register"].append({"registerId": reg, "clinicNo": clinic, "patientId": pid, "patientName": p.name,
                                   "sex": his_synth.SEX_CN[p.sex_code], "registerType": local_type, "clinicType": kind,
                                   "deptCode": f["dept_code"], "deptName": f["dept_name"], "doctorCode": f["doctor_id"],
                                   "doctorName": f["doctor_name"], "registerTime": v.reg_time, "fee": v.fee,
                                   "updatedAt": v.reg_time + timedelta(minutes=1)})
        rows["t_outpatient_record"].append({"clinicNo": clinic, "registerId": reg, "patientId": pid, "clinicType": kind,
                                            "deptCode": f["dept_code"], "deptName": f["dept_name"],
                                            "doctorCode": f["doctor_id"], "doctorName": f["doctor_name"], "visitTime": v.time,
                                            "mainDiagCode": f["diagnosis_code"], "mainDiagName": f["diagnosis_name"],
                                            "updatedAt": v.time + timedelta(minutes=30)})
        if v.rx:
            no = f"RX{v.no:07d}"
            rows["t_recipe"].append({"recipeNo": no, "clinicNo": clinic, "patientId": pid, "deptCode": f["dept_code"],
                                     "deptName": f["dept_name"], "doctorCode": f["doctor_id"], "doctorName": f["doctor_name"],
                                     "recipeTime": v.time + timedelta(minutes=5), "diagCode": f["diagnosis_code"],
                                     "diagName": f["diagnosis_name"], "updatedAt": v.time + timedelta(minutes=6)})
            for it in v.rx:
                rows["t_recipe_detail"].append({"recipeNo": no, "lineNo": it["item"], "drugCode": it["code"],
                                                "drugName": it["drug"], "spec": it["spec"], "freqCode": it["freq"][2],
                                                "usageName": it["route"][1], "qty": it["qty"], "price": it["price"]})
    truth = Truth()
    sex = {"男": "1", "女": "2"}
    truth.add("patient_info", "t_patient", {
        "patient_id": "t_patient.patientId", "name": "t_patient.patientName", "sex_code": "t_patient.sex",
        "birth_date": "t_patient.birthDay", "id_type_code": "const:01", "id_no": "t_patient.idCardNo",
        "create_time": "t_patient.createdAt", "update_time": "t_patient.updatedAt"}, {"sex_code": sex})
    person = {"patient_id": ("t_register.patientId", "t_outpatient_record.patientId", "t_recipe.patientId",
                             "t_patient.patientId"),
              "name": ("t_register.patientName", "t_patient.patientName"), "sex_code": ("t_register.sex", "t_patient.sex")}
    truth.add("outpatient_registration", "t_register", {
        **person, "registration_no": "t_register.registerId", "visit_no": "t_register.clinicNo",
        "visit_type_code": "t_register.clinicType", "registration_type_code": "t_register.registerType",
        "dept_code": "t_register.deptCode", "dept_name": "t_register.deptName", "registration_time": "t_register.registerTime",
        "total_fee": "t_register.fee"}, {"sex_code": sex, "registration_type_code": {"普通": "1", "专家": "2", "急诊": "4"}})
    truth.add("outpatient_visit", "t_outpatient_record", {
        **person, "visit_no": "t_outpatient_record.clinicNo", "visit_type_code": "t_outpatient_record.clinicType",
        "dept_code": "t_outpatient_record.deptCode", "dept_name": "t_outpatient_record.deptName",
        "visit_time": "t_outpatient_record.visitTime", "diagnosis_code": "t_outpatient_record.mainDiagCode",
        "diagnosis_name": "t_outpatient_record.mainDiagName"}, {"sex_code": sex})
    truth.add("western_prescription", "t_recipe_detail", {
        **person, "prescription_no": ("t_recipe_detail.recipeNo", "t_recipe.recipeNo"), "item_no": "t_recipe_detail.lineNo",
        "visit_no": ("t_recipe.clinicNo", "t_outpatient_record.clinicNo"), "visit_type_code": "t_outpatient_record.clinicType",
        "dept_code": "t_recipe.deptCode", "dept_name": "t_recipe.deptName", "doctor_id": "t_recipe.doctorCode",
        "doctor_name": "t_recipe.doctorName", "prescription_time": "t_recipe.recipeTime", "diagnosis_code": "t_recipe.diagCode",
        "diagnosis_name": "t_recipe.diagName", "drug_local_code": "t_recipe_detail.drugCode",
        "drug_name": "t_recipe_detail.drugName", "frequency_code": "t_recipe_detail.freqCode",
        "route_code": "t_recipe_detail.usageName", "quantity": "t_recipe_detail.qty"},
        {"sex_code": sex, "frequency_code": {"qd": "01", "bid": "02", "tid": "03", "prn": "13"},
         "route_code": {"口服": "1", "静滴": "404", "肌注": "403"}})
    return StyleData("camel", md, rows, truth)


STYLES = {"pinyin": _pinyin, "cryptic": _cryptic, "english": _english, "camel": _camel}


def synth_truth() -> Truth:
    """The worked example's mapping (examples/his_demo.yaml) for his_synth, as a truth."""
    truth = Truth()
    truth.add("patient_info", "BR_JBXX", {
        "patient_id": "BR_JBXX.BRID", "name": "BR_JBXX.BRXM", "sex_code": "BR_JBXX.XB", "birth_date": "BR_JBXX.CSRQ",
        "id_type_code": ("BR_JBXX.ZJLX", "const:01"), "id_no": "BR_JBXX.SFZH", "create_time": "BR_JBXX.JDSJ",
        "update_time": "BR_JBXX.XGSJ"}, {"sex_code": {"男": "1", "女": "2"}, "id_type_code": {"身份证": "01"}})
    truth.add("outpatient_registration", "MZ_GHXX", {
        "registration_no": "MZ_GHXX.GHXH", "visit_no": "MZ_GHXX.JZXH", "patient_id": "MZ_GHXX.BRID",
        "name": ("MZ_GHXX.BRXM", "BR_JBXX.BRXM"), "sex_code": "MZ_GHXX.XB", "visit_type_code": "MZ_GHXX.JZLB",
        "registration_type_code": "MZ_GHXX.GHLB", "dept_code": "MZ_GHXX.KSDM", "dept_name": "MZ_GHXX.KSMC",
        "registration_time": "MZ_GHXX.GHSJ", "total_fee": "MZ_GHXX.ZJE"},
        {"registration_type_code": {"普通": "1", "专家": "2", "便民": "5", "急诊": "4"}})
    truth.add("outpatient_visit", "MZ_JZJL", {
        "visit_no": "MZ_JZJL.JZXH", "patient_id": "MZ_JZJL.BRID", "name": "MZ_JZJL.BRXM", "sex_code": "MZ_JZJL.XB",
        "visit_type_code": "MZ_JZJL.JZLB", "dept_code": "MZ_JZJL.KSDM", "dept_name": "MZ_JZJL.KSMC",
        "visit_time": "MZ_JZJL.JZSJ", "diagnosis_code": "MZ_ZDXX.ZDDM", "diagnosis_name": "MZ_ZDXX.ZDMC"})
    truth.add("western_prescription", "MZ_CFMX", {
        "prescription_no": ("MZ_CFXX.CFH", "MZ_CFMX.CFH"), "item_no": "MZ_CFMX.CFMXXH",
        "visit_no": ("MZ_CFXX.JZXH", "MZ_JZJL.JZXH"), "visit_type_code": "MZ_JZJL.JZLB",
        "patient_id": ("MZ_CFXX.BRID", "MZ_JZJL.BRID", "BR_JBXX.BRID"), "name": ("MZ_CFXX.BRXM", "MZ_JZJL.BRXM"),
        "sex_code": ("MZ_CFXX.XB", "MZ_JZJL.XB"), "dept_code": "MZ_CFXX.KSDM", "dept_name": "MZ_CFXX.KSMC",
        "doctor_id": "MZ_CFXX.YSGH", "doctor_name": "MZ_CFXX.YSXM", "prescription_time": "MZ_CFXX.KFSJ",
        "diagnosis_code": "MZ_CFXX.ZDDM", "diagnosis_name": "MZ_CFXX.ZDMC", "drug_local_code": "MZ_CFMX.YPDM",
        "drug_name": "MZ_CFMX.YPMC", "frequency_code": "MZ_CFMX.PC", "route_code": "MZ_CFMX.YF", "quantity": "MZ_CFMX.SL"},
        {"frequency_code": {"QD": "01", "BID": "02", "TID": "03", "QN": "05", "PRN": "13"},
         "route_code": {"口服": "1", "静滴": "404", "肌注": "403"}})
    return truth


def generate(style: str, seed: int = 1, patients: int = 120, visits: int = 260, now: datetime | None = None) -> StyleData:
    """The schema, rows and truth of one style (a few hundred rows by default)."""
    now = (now or platform_now()).replace(microsecond=0)
    return STYLES[style](seed, patients, visits, now)


def build(admin_url: str, style: str, **kw: Any) -> StyleData:
    """Reset the database at ``admin_url`` (see his_synth.reset_database) and fill it with ``style``."""
    data = generate(style, **kw)
    his_synth.reset_database(admin_url)
    engine: Engine = create_engine(admin_url)
    try:
        data.metadata.create_all(engine)
        with engine.begin() as conn:
            for name in data.metadata.sorted_tables:  # parents first: foreign keys hold
                rows = data.rows[name.name]
                if rows:
                    conn.execute(name.insert(), rows)
    finally:
        engine.dispose()
    return data




def evaluate(truth: Truth, proposals: list[Any]) -> dict[str, tuple[int, int, list[str]]]:
    """Per measured data set: (required fields mapped correctly, required fields, what is wrong).

    A field is correct when the probe's source (``TABLE.COLUMN`` or ``const:VALUE``) is one the
    truth accepts and, for a coded field, its code table turns every local code the truth
    lists into the truth's standard code (and leaves standard codes alone where the truth has
    no table)."""
    by_ds = {p.dataset.code: p for p in proposals}
    out: dict[str, tuple[int, int, list[str]]] = {}
    for dataset, fields in truth.sources.items():
        p = by_ds.get(dataset)
        wrong: list[str] = []
        good = 0
        if p is None:
            out[dataset] = (0, len(fields), ["未提出映射"])
            continue
        sources = p.sources()
        matches = {m.field.name: m for m in p.matches}
        for name, accepted in fields.items():
            got = sources.get(name)
            if got is None:
                wrong.append(f"{name}: 未映射")
                continue
            if got.upper() not in {a.upper() for a in accepted}:
                wrong.append(f"{name}: {got}（应为 {'/'.join(sorted(accepted))}）")
                continue
            expected = truth.codes.get(dataset, {}).get(name)
            m = matches.get(name)
            table = (m.codes or {}) if m is not None else {}
            if expected and any(table.get(k, k).lstrip("0") != v.lstrip("0") for k, v in expected.items()):
                wrong.append(f"{name}: 代码对照 {table or '无'}（应为 {expected}）")
                continue
            if not expected and any(k != v for k, v in table.items()):
                wrong.append(f"{name}: 多余的代码对照 {table}")
                continue
            good += 1
        out[dataset] = (good, len(fields), wrong)
    return out
