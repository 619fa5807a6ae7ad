"""A synthetic Chinese hospital information system (HIS) for tests and benchmarks.

It looks like the databases hospitals actually hand over with a read-only account: table and
column names are pinyin initials (``MZ_GHXX`` 门诊挂号信息, ``BRXM`` 病人姓名, ``SFZH``
身份证号, ``XB`` 性别) with Chinese comments, sex held as '男'/'女' in one table and '1'/'2'
in others, local codes ('普通'/'专家' registration types, 'QD'/'BID' frequencies, '口服'/'静滴'
routes, '职工医保' payment), some dates held as text in their own formats ('19850312',
'2026年11月20日 08时30分', '20261120083000'), names padded with spaces, headers and items in
separate tables (prescriptions, lab requests and results) so that mappings need joins.

Values come from :mod:`phip.synth` (Faker zh_CN names, valid ID numbers, departments,
diagnoses, drugs, lab items). Alongside the rows it returns the *truth*: the standard record
each row must become, built from the same synthetic people and encounters — not from the
rows — so a test can check a pull field by field. Two rows are planted bad (an impossible
birth date, a local registration type missing from the code map) with the finding
validation must report; both are kept, without the bad value (``HisData.bad``).

The same tables are built in MariaDB/MySQL, PostgreSQL (lower-case names, as PostgreSQL
folds unquoted identifiers) and SQLite.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    text,
)

from phip.standard.validate import platform_now
from . import vocab
from .generator import Encounter, Generator, Patient

DEMO_ORG = ("122201024120041126", "长春市中医院")

S = String
#: table → (comment, columns as (name, type, comment)); indexes on keys and update times.
SCHEMA: dict[str, tuple[str, list[tuple[str, Any, str]]]] = {
    "BR_JBXX": ("病人基本信息", [
        ("BRID", S(20), "病人ID"), ("BRXM", S(40), "病人姓名"), ("XB", S(4), "性别（男/女）"),
        ("CSRQ", S(8), "出生日期（YYYYMMDD文本）"), ("ZJLX", S(10), "证件类型"), ("SFZH", S(18), "身份证号"),
        ("LXDH", S(20), "联系电话"), ("MZ", S(10), "民族"), ("SF", S(20), "省份"), ("CS", S(20), "城市"),
        ("QX", S(20), "区县"), ("JTDZ", S(100), "家庭地址"), ("JDSJ", DateTime, "建档时间"), ("XGSJ", DateTime, "修改时间"),
    ]),
    "MZ_GHXX": ("门诊挂号信息", [
        ("GHXH", S(20), "挂号序号"), ("JZXH", S(20), "就诊序号"), ("BRID", S(20), "病人ID"), ("BRXM", S(40), "病人姓名"),
        ("XB", S(1), "性别"), ("JZLB", S(1), "就诊类别（1门诊2急诊）"), ("GHLB", S(10), "挂号类别"),
        ("KSDM", S(10), "科室代码"), ("KSMC", S(40), "科室名称"), ("YSGH", S(10), "医生工号"), ("YSXM", S(40), "医生姓名"),
        ("GHSJ", S(19), "挂号时间（文本）"), ("GHF", Numeric(10, 2), "挂号费"), ("ZLF", Numeric(10, 2), "诊疗费"),
        ("ZJE", Numeric(10, 2), "总金额"), ("THBZ", S(1), "退号标志"), ("XGSJ", DateTime, "修改时间"),
    ]),
    "MZ_JZJL": ("门诊就诊记录", [
        ("JZXH", S(20), "就诊序号"), ("GHXH", S(20), "挂号序号"), ("BRID", S(20), "病人ID"), ("BRXM", S(40), "病人姓名"),
        ("XB", S(1), "性别"), ("CSRQ", Date, "出生日期"), ("SFZH", S(18), "身份证号"), ("JZLB", S(1), "就诊类别"),
        ("KSDM", S(10), "就诊科室代码"), ("KSMC", S(40), "就诊科室名称"), ("YSGH", S(10), "接诊医生工号"),
        ("YSXM", S(40), "接诊医生姓名"), ("JZSJ", DateTime, "就诊时间"), ("JSSJ", DateTime, "结束时间"),
        ("ZS", S(200), "主诉"), ("ZFY", Numeric(12, 2), "总费用"), ("XGSJ", DateTime, "修改时间"),
    ]),
    "MZ_ZDXX": ("门诊诊断信息", [
        ("JZXH", S(20), "就诊序号"), ("ZDXH", Integer, "诊断序号（1为主诊断）"), ("ZDDM", S(20), "诊断代码（ICD-10）"),
        ("ZDMC", S(100), "诊断名称"), ("ZDSJ", DateTime, "诊断时间"),
    ]),
    "MZ_CFXX": ("门诊处方信息", [
        ("CFH", S(20), "处方号"), ("JZXH", S(20), "就诊序号"), ("BRID", S(20), "病人ID"), ("BRXM", S(40), "病人姓名"),
        ("XB", S(1), "性别"), ("KSDM", S(10), "开方科室代码"), ("KSMC", S(40), "开方科室名称"), ("YSGH", S(10), "开方医生工号"),
        ("YSXM", S(40), "开方医生姓名"), ("KFSJ", S(14), "开方时间（YYYYMMDDHHMMSS文本）"), ("ZDDM", S(20), "诊断代码"),
        ("ZDMC", S(100), "诊断名称"), ("XGSJ", DateTime, "修改时间"),
    ]),
    "MZ_CFMX": ("门诊处方明细", [
        ("CFH", S(20), "处方号"), ("CFMXXH", Integer, "明细序号"), ("YPDM", S(20), "药品代码"), ("YPMC", S(100), "药品名称"),
        ("YPGG", S(50), "药品规格"), ("PC", S(10), "频次"), ("YF", S(10), "用法"), ("MCJL", Numeric(10, 3), "每次剂量"),
        ("JLDW", S(10), "剂量单位"), ("SL", Numeric(10, 2), "数量"), ("DW", S(10), "单位"), ("DJ", Numeric(10, 2), "单价"),
        ("JE", Numeric(12, 2), "金额"),
    ]),
    "MZ_FYMX": ("门诊费用明细", [
        ("MXID", BigInteger, "明细ID（自增）"), ("JZXH", S(20), "就诊序号"), ("BRID", S(20), "病人ID"), ("BRXM", S(40), "病人姓名"),
        ("FYLB", S(10), "费用类别"), ("SFXMDM", S(20), "收费项目代码"), ("SFXMMC", S(100), "收费项目名称"),
        ("DJ", Numeric(10, 2), "单价"), ("SL", Numeric(10, 2), "数量"), ("JE", Numeric(12, 2), "金额"),
        ("KSDM", S(10), "开单科室代码"), ("KSMC", S(40), "开单科室名称"), ("SFSJ", DateTime, "收费时间"),
    ]),
    "JY_SQD": ("检验申请单", [
        ("SQDH", S(20), "申请单号"), ("JZXH", S(20), "就诊序号"), ("JZLB", S(1), "就诊类别"), ("BRID", S(20), "病人ID"),
        ("BRXM", S(40), "病人姓名"), ("XB", S(1), "性别"), ("SQKSDM", S(10), "申请科室代码"), ("SQKSMC", S(40), "申请科室名称"),
        ("BBLX", S(10), "标本类型"), ("CJSJ", DateTime, "采集时间"), ("BGSJ", DateTime, "报告时间"), ("XGSJ", DateTime, "修改时间"),
    ]),
    "JY_JGMX": ("检验结果明细", [
        ("SQDH", S(20), "申请单号"), ("XMXH", Integer, "项目序号"), ("XMDM", S(20), "项目代码"), ("XMMC", S(60), "项目名称"),
        ("JG", S(40), "结果"), ("DW", S(20), "单位"), ("CKFW", S(40), "参考范围"), ("YCBZ", S(4), "异常标志（↑↓）"),
    ]),
    "JC_BG": ("检查报告", [
        ("BGDH", S(20), "报告单号"), ("JZXH", S(20), "就诊序号"), ("JZLB", S(1), "就诊类别"), ("BRID", S(20), "病人ID"),
        ("BRXM", S(40), "病人姓名"), ("XB", S(1), "性别"), ("SQKSDM", S(10), "申请科室代码"), ("SQKSMC", S(40), "申请科室名称"),
        ("JCLX", S(4), "检查类型"), ("JCXMDM", S(20), "检查项目代码"), ("JCXMMC", S(60), "检查项目名称"),
        ("JCSJ", DateTime, "检查时间"), ("JCSJ_SD", Text, "检查所见"), ("JCZD", Text, "检查结论"),
        ("BGYSGH", S(10), "报告医生工号"), ("BGYSXM", S(40), "报告医生姓名"), ("BGSJ", DateTime, "报告时间"),
        ("XGSJ", DateTime, "修改时间"),
    ]),
    "ZY_RYDJ": ("住院入院登记", [
        ("ZYXH", S(20), "住院序号"), ("ZYH", S(18), "住院号"), ("ZYCS", Integer, "住院次数"), ("BRID", S(20), "病人ID"),
        ("BRXM", S(40), "病人姓名"), ("XB", S(1), "性别"), ("CSRQ", Date, "出生日期"), ("NL", Integer, "年龄"),
        ("SFZH", S(18), "身份证号"), ("FYLB", S(10), "费用类别（医保类型）"), ("RYTJ", S(10), "入院途径"),
        ("RYSJ", S(30), "入院时间（YYYY年MM月DD日 HH时MI分文本）"), ("RYKSDM", S(10), "入院科室代码"),
        ("RYKSMC", S(40), "入院科室名称"), ("DQKSDM", S(10), "当前科室代码"), ("DQKSMC", S(40), "当前科室名称"),
        ("RYZDDM", S(20), "入院诊断代码"), ("RYZDMC", S(100), "入院诊断名称"), ("RYBQ", S(10), "入院病情"),
        ("XGSJ", DateTime, "修改时间"),
    ]),
    "ZY_CYJL": ("住院出院记录", [
        ("ZYXH", S(20), "住院序号"), ("CYSJ", DateTime, "出院时间"), ("CYKSDM", S(10), "出院科室代码"),
        ("CYKSMC", S(40), "出院科室名称"), ("SJZYTS", Integer, "实际住院天数"), ("CYZDDM", S(20), "出院主诊断代码"),
        ("CYZDMC", S(100), "出院主诊断名称"), ("LYFS", S(20), "离院方式"), ("ZYYSXM", S(40), "住院医师姓名"),
        ("ZFY", Numeric(12, 2), "住院总费用"), ("XGSJ", DateTime, "修改时间"),
    ]),
    "ZY_YZ": ("住院医嘱", [
        ("YZH", S(20), "医嘱号"), ("ZYXH", S(20), "住院序号"), ("KSDM", S(10), "科室代码"), ("KSMC", S(40), "科室名称"),
        ("YZLB", S(4), "医嘱类别（长期/临时）"), ("YZLX", S(10), "医嘱类型"), ("YZNR", S(200), "医嘱内容"),
        ("KZSJ", DateTime, "开嘱时间"), ("KZYSGH", S(10), "开嘱医生工号"), ("KZYSXM", S(40), "开嘱医生姓名"),
        ("KSSJ", DateTime, "开始时间"), ("YZZT", S(10), "医嘱状态"), ("XGSJ", DateTime, "修改时间"),
    ]),
}
KEYS = {
    "BR_JBXX": ["BRID"], "MZ_GHXX": ["GHXH"], "MZ_JZJL": ["JZXH"], "MZ_ZDXX": ["JZXH", "ZDXH"], "MZ_CFXX": ["CFH"],
    "MZ_CFMX": ["CFH", "CFMXXH"], "MZ_FYMX": ["MXID"], "JY_SQD": ["SQDH"], "JY_JGMX": ["SQDH", "XMXH"], "JC_BG": ["BGDH"],
    "ZY_RYDJ": ["ZYXH"], "ZY_CYJL": ["ZYXH"], "ZY_YZ": ["YZH"],
}

SEX_CN = {"1": "男", "2": "女"}
REG_TYPES = [("普通", "1"), ("普通", "1"), ("专家", "2"), ("便民", "5")]
FREQUENCIES = [("QD", "01"), ("BID", "02"), ("TID", "03"), ("QN", "05"), ("PRN", "13")]
ROUTES = [("口服", "1"), ("口服", "1"), ("静滴", "404"), ("肌注", "403")]
PAYMENTS = [("职工医保", "01"), ("居民医保", "02"), ("新农合", "03"), ("自费", "07")]
ETHNIC = {"01": "汉族", "02": "蒙古族", "03": "回族", "10": "朝鲜族", "11": "满族"}
FEES = [("挂号费", "21", "GH001", "普通挂号费", 5.0), ("诊查费", "22", "ZC001", "门诊诊查费", 10.0),
        ("西药费", "13", "XY001", "西药", 25.5), ("化验费", "06", "HY001", "血常规", 20.0),
        ("检查费", "07", "JC001", "彩超检查", 120.0), ("治疗费", "09", "ZL001", "静脉输液", 8.0)]
SPECIMENS = [("血", "01"), ("血清", "02"), ("尿", "04")]
ADMISSION_ROUTES = [("门诊", "2"), ("门诊", "2"), ("急诊", "1"), ("转入", "3")]
DISPOSITIONS = [("医嘱离院", "1"), ("医嘱离院", "1"), ("医嘱转院", "2"), ("非医嘱离院", "4")]
CONDITIONS = [("有", "1"), ("临床未确定", "2"), ("情况不明", "3")]
ORDER_CATEGORIES = [("长期", "1"), ("临时", "2")]
ORDER_TYPES = [("药品", "01", "阿莫西林胶囊 0.5g 口服 tid"), ("检查", "02", "胸部CT平扫"), ("检验", "03", "血常规"),
               ("护理", "07", "一级护理"), ("处置", "05", "静脉输液")]
ORDER_STATES = [("新开", "1"), ("执行中", "3"), ("已停止", "4"), ("已完成", "6")]
FINDINGS = ["双肺纹理清晰，未见明显实质性病变。", "肝脏形态大小正常，包膜光滑，实质回声均匀。",
            "心影大小形态正常，主动脉弓未见异常。", "胃黏膜光滑，未见溃疡及新生物。"]
IMPRESSIONS = ["未见明显异常。", "考虑炎症，建议复查。", "符合慢性胃炎表现。", "肝胆胰脾未见明显异常。"]
#: The two planted rows, and the finding validation must report for each (a warning: the
#: record is stored without the value, docs/standard.md).
PLANTED = {"patient_info": "BAD_DATE", "outpatient_registration": "NOT_IN_DOMAIN"}


def his_metadata(lower: bool = False) -> MetaData:
    """The HIS tables; ``lower`` for PostgreSQL, where unquoted names fold to lower case."""
    md = MetaData()
    for name, (comment, cols) in SCHEMA.items():
        tname = name.lower() if lower else name
        columns = [Column(c.lower() if lower else c, t, comment=cc) for c, t, cc in cols]
        table = Table(tname, md, *columns, comment=comment)
        key = [k.lower() if lower else k for k in KEYS[name]]
        Index(f"pk_{tname}", *[table.c[k] for k in key], unique=True)
        if "XGSJ" in {c for c, _, _ in cols}:
            Index(f"ix_{tname}_xgsj", table.c["xgsj" if lower else "XGSJ"])
    return md


@dataclass
class HisData:
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {t: [] for t in SCHEMA})
    truth: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    bad: dict[str, dict[str, str]] = field(default_factory=dict)

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.rows[table].append(row)

    def expect(self, dataset: str, key: str, record: dict[str, Any]) -> None:
        self.truth.setdefault(dataset, {})[key] = {k: v for k, v in record.items() if v is not None and v != ""}


def _t(value: datetime) -> str:
    return value.replace(microsecond=0).isoformat(sep=" ")


class HisSynth:
    """Builds HIS rows day by day; deterministic for a seed."""

    def __init__(self, seed: int = 1, org: tuple[str, str] = DEMO_ORG, now: datetime | None = None,
                 max_patients: int = 20000):
        self.gen = Generator(seed=seed)
        self.rng = random.Random(seed + 1)
        self.org = org
        self.now = (now or platform_now()).replace(microsecond=0)
        self.patients: list[Patient] = []
        self.max_patients = max_patients
        self._fee_id = 0
        self._serial: dict[str, int] = {}
        self._planted: set[str] = set()
        self._zycs: dict[str, int] = {}

    def _no(self, prefix: str) -> str:
        self._serial[prefix] = self._serial.get(prefix, 0) + 1
        return f"{prefix}{self._serial[prefix]:08d}"

    def _touched(self, at: datetime) -> datetime:
        """Update time: a little after the event, never in the future."""
        return min(at + timedelta(minutes=self.rng.randrange(1, 120)), self.now - timedelta(minutes=1))

    def generate(self, days: int = 2, visits: int = 30, admissions: int = 4, plant: bool = True,
                 tables: Iterable[str] | None = None) -> HisData:
        """``days`` days ending yesterday; ``tables`` limits what is produced (benchmarks)."""
        data = HisData()
        wanted = set(tables) if tables else set(SCHEMA)
        for back in range(days, 0, -1):
            self.day(data, self.now.date() - timedelta(days=back), visits, admissions, wanted, plant)
        return data

    def day(self, data: HisData, day: date, visits: int, admissions: int, wanted: set[str], plant: bool = True) -> None:
        for _ in range(visits):
            self._outpatient(data, self._patient(data, day, wanted, plant), day, wanted, plant)
        for _ in range(admissions):
            self._inpatient(data, self._patient(data, day, wanted, plant), day, wanted)

    # -- people ------------------------------------------------------------------------------

    def _patient(self, data: HisData, day: date, wanted: set[str], plant: bool) -> Patient:
        if self.patients and (len(self.patients) >= self.max_patients or self.rng.random() > 0.35):
            return self.rng.choice(self.patients)
        p = self.gen.patient(self.org[0])
        self.patients.append(p)
        if "BR_JBXX" not in wanted:
            return p
        created = datetime.combine(day, time(7, 0)) + timedelta(minutes=self.rng.randrange(0, 60))
        updated = self._touched(created)
        ethnic = self.rng.choice(list(ETHNIC))
        province, city, district = (p.fields[k] for k in ("current_province", "current_city", "current_county"))
        street = p.address[len(province + city + district):]
        bad = plant and "patient_info" not in self._planted
        row = {
            "BRID": p.patient_id, "BRXM": p.name, "XB": SEX_CN[p.sex_code],
            "CSRQ": "19850230" if bad else f"{p.birth_date:%Y%m%d}", "ZJLX": "身份证", "SFZH": p.id_no,
            "LXDH": p.phone, "MZ": ETHNIC[ethnic], "SF": province, "CS": city, "QX": district, "JTDZ": street,
            "JDSJ": created, "XGSJ": updated,
        }
        data.add("BR_JBXX", row)
        if bad:
            self._planted.add("patient_info")
            data.bad.setdefault("patient_info", {})[p.patient_id] = PLANTED["patient_info"]
        data.expect("patient_info", p.patient_id, {
            "patient_id": p.patient_id, "name": p.name, "sex_code": p.sex_code,
            "birth_date": None if bad else p.birth_date.isoformat(),
            "id_type_code": "01", "id_no": p.id_no, "phone": p.phone, "ethnicity_code": ethnic,
            "current_address": f"{province}{city}{district}{street}", "create_time": _t(created), "update_time": _t(updated),
        })
        return p

    # -- outpatient ----------------------------------------------------------------------------

    def _outpatient(self, data: HisData, p: Patient, day: date, wanted: set[str], plant: bool) -> None:
        rng = self.rng
        e: Encounter = self.gen.encounter(p, "out", day, self.now)
        f = e.fields
        visit_no = e.visit_no
        emergency = f["visit_type_code"] == "2"
        reg_no = "GH" + visit_no[2:]
        reg_time = e.start - timedelta(minutes=rng.randrange(5, 60))
        reg_local, reg_code = ("急诊", "4") if emergency else rng.choice(REG_TYPES)
        bad_reg = plant and "outpatient_registration" not in self._planted and not emergency
        if bad_reg:
            reg_local = "夜间"  # not in the mapping's code table: a NOT_IN_DOMAIN finding
        reg_fee, exam_fee = (5.0, 10.0) if reg_code != "2" else (15.0, 20.0)
        total = round(reg_fee + exam_fee + rng.randrange(0, 40000) / 100, 2)
        doctor_id, doctor_name = f["doctor_id"], f["doctor_name"]
        if "MZ_GHXX" in wanted:
            updated = self._touched(reg_time)
            data.add("MZ_GHXX", {
                "GHXH": reg_no, "JZXH": visit_no, "BRID": p.patient_id, "BRXM": f" {p.name}  ", "XB": p.sex_code,
                "JZLB": f["visit_type_code"], "GHLB": reg_local, "KSDM": f["dept_code"], "KSMC": f["dept_name"],
                "YSGH": doctor_id, "YSXM": doctor_name, "GHSJ": _t(reg_time), "GHF": reg_fee, "ZLF": exam_fee,
                "ZJE": reg_fee + exam_fee, "THBZ": "0", "XGSJ": updated,
            })
            if bad_reg:
                self._planted.add("outpatient_registration")
                data.bad.setdefault("outpatient_registration", {})[reg_no] = PLANTED["outpatient_registration"]
            data.expect("outpatient_registration", reg_no, {
                "registration_no": reg_no, "visit_no": visit_no, "patient_id": p.patient_id, "name": p.name,
                "sex_code": p.sex_code, "visit_type_code": f["visit_type_code"],
                "registration_type_code": None if bad_reg else reg_code,
                "dept_code": f["dept_code"], "dept_name": f["dept_name"], "doctor_id": doctor_id,
                "doctor_name": doctor_name, "registration_time": _t(reg_time), "registration_fee": reg_fee,
                "consultation_fee": exam_fee, "total_fee": reg_fee + exam_fee, "cancel_flag": False,
                "update_time": _t(updated),
            })
        dx_code, dx_name = f["diagnosis_code"], f["diagnosis_name"]
        if "MZ_JZJL" in wanted:
            data.add("MZ_JZJL", {
                "JZXH": visit_no, "GHXH": reg_no, "BRID": p.patient_id, "BRXM": p.name, "XB": p.sex_code,
                "CSRQ": p.birth_date, "SFZH": p.id_no, "JZLB": f["visit_type_code"], "KSDM": f["dept_code"],
                "KSMC": f["dept_name"], "YSGH": doctor_id, "YSXM": doctor_name, "JZSJ": e.start, "JSSJ": e.end,
                "ZS": f["chief_complaint"], "ZFY": total, "XGSJ": self._touched(e.end),
            })
            data.add("MZ_ZDXX", {"JZXH": visit_no, "ZDXH": 1, "ZDDM": dx_code, "ZDMC": dx_name, "ZDSJ": e.start})
            if rng.random() < 0.3:  # a secondary diagnosis the mapping must not pick
                other = rng.choice(vocab.DIAGNOSES)
                data.add("MZ_ZDXX", {"JZXH": visit_no, "ZDXH": 2, "ZDDM": other[0], "ZDMC": other[1], "ZDSJ": e.start})
            data.expect("outpatient_visit", visit_no, {
                "visit_no": visit_no, "registration_no": reg_no, "patient_id": p.patient_id, "name": p.name,
                "sex_code": p.sex_code, "birth_date": p.birth_date.isoformat(), "id_type_code": "01", "id_no": p.id_no,
                "visit_type_code": f["visit_type_code"], "dept_code": f["dept_code"], "dept_name": f["dept_name"],
                "doctor_id": doctor_id, "doctor_name": doctor_name, "visit_time": _t(e.start),
                "visit_end_time": _t(e.end), "chief_complaint": f["chief_complaint"], "diagnosis_code": dx_code,
                "diagnosis_name": dx_name, "total_fee": total,
            })
        common = {"patient_id": p.patient_id, "name": p.name, "sex_code": p.sex_code, "visit_no": visit_no,
                  "visit_type_code": f["visit_type_code"], "dept_code": f["dept_code"], "dept_name": f["dept_name"]}
        if "MZ_CFXX" in wanted and rng.random() < 0.6:
            self._prescription(data, p, e, common)
        if "MZ_FYMX" in wanted:
            for _ in range(rng.randint(2, 4)):
                self._fee(data, p, e, common)
        if "JY_SQD" in wanted and rng.random() < 0.3:
            self._lab(data, p, e, common)
        if "JC_BG" in wanted and rng.random() < 0.15:
            self._exam(data, p, e, common)

    def _prescription(self, data: HisData, p: Patient, e: Encounter, common: dict[str, Any]) -> None:
        rng = self.rng
        f = e.fields
        no = self._no("CF")
        at = e.start + timedelta(minutes=rng.randrange(1, 10))
        data.add("MZ_CFXX", {
            "CFH": no, "JZXH": e.visit_no, "BRID": p.patient_id, "BRXM": p.name, "XB": p.sex_code, "KSDM": f["dept_code"],
            "KSMC": f["dept_name"], "YSGH": f["doctor_id"], "YSXM": f["doctor_name"], "KFSJ": f"{at:%Y%m%d%H%M%S}",
            "ZDDM": f["diagnosis_code"], "ZDMC": f["diagnosis_name"], "XGSJ": self._touched(at),
        })
        for item in range(1, rng.randint(1, 3) + 1):
            index = rng.randrange(len(vocab.DRUGS))
            drug, spec, unit, _form = vocab.DRUGS[index]
            freq_local, freq = rng.choice(FREQUENCIES)
            route_local, route = rng.choice(ROUTES)
            qty = float(rng.randint(1, 3))
            price = round(rng.uniform(5, 80), 2)
            dose = round(rng.choice((0.25, 0.5, 1.0, 20.0, 100.0)), 3)
            code = f"YP{index + 1:05d}"
            data.add("MZ_CFMX", {
                "CFH": no, "CFMXXH": item, "YPDM": code, "YPMC": drug, "YPGG": spec, "PC": freq_local, "YF": route_local,
                "MCJL": dose, "JLDW": unit, "SL": qty, "DW": "盒", "DJ": price, "JE": round(price * qty, 2),
            })
            data.expect("western_prescription", f"{no}|{item}", {
                **common, "prescription_no": no, "item_no": item, "doctor_id": f["doctor_id"],
                "doctor_name": f["doctor_name"], "prescription_time": _t(at), "diagnosis_code": f["diagnosis_code"],
                "diagnosis_name": f["diagnosis_name"], "drug_local_code": code, "drug_name": drug, "drug_spec": spec,
                "dose_per_time": dose, "dose_unit": unit, "frequency_code": freq, "route_code": route,
                "quantity": qty, "quantity_unit": "盒", "unit_price": price, "amount": round(price * qty, 2),
            })

    def _fee(self, data: HisData, p: Patient, e: Encounter, common: dict[str, Any]) -> None:
        rng = self.rng
        local, category, item_code, item_name, price = rng.choice(FEES)
        qty = float(rng.randint(1, 3))
        self._fee_id += 1
        at = e.start + timedelta(minutes=rng.randrange(0, 20))
        data.add("MZ_FYMX", {
            "MXID": self._fee_id, "JZXH": e.visit_no, "BRID": p.patient_id, "BRXM": p.name, "FYLB": local,
            "SFXMDM": item_code, "SFXMMC": item_name, "DJ": price, "SL": qty, "JE": round(price * qty, 2),
            "KSDM": e.fields["dept_code"], "KSMC": e.fields["dept_name"], "SFSJ": at,
        })
        record = {k: v for k, v in common.items() if k != "sex_code"}
        data.expect("fee_detail", f"1|{self._fee_id}", {
            **record, "visit_type_code": "1", "fee_detail_no": str(self._fee_id), "fee_category_code": category,
            "charge_item_local_code": item_code, "charge_item_name": item_name, "unit_price": price, "quantity": qty,
            "amount": round(price * qty, 2), "charge_time": _t(at),
        })

    def _lab(self, data: HisData, p: Patient, e: Encounter, common: dict[str, Any]) -> None:
        rng = self.rng
        no = self._no("JY")
        collected = e.start + timedelta(minutes=rng.randrange(5, 30))
        reported = collected + timedelta(minutes=rng.randrange(30, 180))
        reported = min(reported, self.now - timedelta(minutes=2))
        collected = min(collected, reported)
        specimen_local, specimen = rng.choice(SPECIMENS)
        data.add("JY_SQD", {
            "SQDH": no, "JZXH": e.visit_no, "JZLB": e.fields["visit_type_code"], "BRID": p.patient_id, "BRXM": p.name,
            "XB": p.sex_code, "SQKSDM": e.fields["dept_code"], "SQKSMC": e.fields["dept_name"], "BBLX": specimen_local,
            "CJSJ": collected, "BGSJ": reported, "XGSJ": self._touched(reported),
        })
        for item, (code, name, unit, lo, hi) in enumerate(rng.sample(vocab.LAB_ITEMS, rng.randint(2, 4)), 1):
            value = round(rng.uniform(lo * 0.7, hi * 1.3 if hi else 1), 2)
            flag_local, flag = ("↑", "H") if value > hi else (("↓", "L") if value < lo else ("", None))
            data.add("JY_JGMX", {"SQDH": no, "XMXH": item, "XMDM": code, "XMMC": name, "JG": str(value), "DW": unit,
                                 "CKFW": f"{lo}-{hi}", "YCBZ": flag_local})
            data.expect("lab_report", f"{no}|{item}", {
                **common, "report_no": no, "item_no": item, "specimen_type_code": specimen, "collect_time": _t(collected),
                "item_local_code": code, "item_name": name, "result_value": str(value), "result_unit": unit,
                "reference_range": f"{lo}-{hi}", "abnormal_flag_code": flag, "report_time": _t(reported),
            })

    def _exam(self, data: HisData, p: Patient, e: Encounter, common: dict[str, Any]) -> None:
        rng = self.rng
        no = self._no("JC")
        modality, item = rng.choice(vocab.EXAM_ITEMS)
        at = e.start + timedelta(minutes=rng.randrange(10, 60))
        reported = min(at + timedelta(minutes=rng.randrange(20, 120)), self.now - timedelta(minutes=2))
        at = min(at, reported)
        doctor_id, doctor_name = rng.choice(self.gen._doctors)
        seen, impression = rng.choice(FINDINGS), rng.choice(IMPRESSIONS)
        data.add("JC_BG", {
            "BGDH": no, "JZXH": e.visit_no, "JZLB": e.fields["visit_type_code"], "BRID": p.patient_id, "BRXM": p.name,
            "XB": p.sex_code, "SQKSDM": e.fields["dept_code"], "SQKSMC": e.fields["dept_name"], "JCLX": modality,
            "JCXMDM": f"{modality}{len(item):03d}", "JCXMMC": item, "JCSJ": at, "JCSJ_SD": seen, "JCZD": impression,
            "BGYSGH": doctor_id, "BGYSXM": doctor_name, "BGSJ": reported, "XGSJ": self._touched(reported),
        })
        data.expect("exam_report", no, {
            **common, "report_no": no, "exam_modality_code": modality, "exam_item_local_code": f"{modality}{len(item):03d}",
            "exam_item_name": item, "exam_time": _t(at), "objective_findings": seen, "subjective_impression": impression,
            "report_doctor_id": doctor_id, "report_doctor_name": doctor_name, "report_time": _t(reported),
        })

    # -- inpatient -----------------------------------------------------------------------------

    def _inpatient(self, data: HisData, p: Patient, day: date, wanted: set[str]) -> None:
        if "ZY_RYDJ" not in wanted:
            return
        rng = self.rng
        # Admitted some days before: most stays of the period are discharged (front page exists).
        e = self.gen.encounter(p, "in", day - timedelta(days=rng.randint(2, 12)), self.now)
        f = e.fields
        times = self._zycs[p.patient_id] = self._zycs.get(p.patient_id, 0) + 1
        inpatient_no = p.fields["inpatient_no"]
        pay_local, pay = rng.choice(PAYMENTS)
        route_local, route = rng.choice(ADMISSION_ROUTES)
        cond_local, cond = rng.choice(CONDITIONS)
        age = (e.start.date() - p.birth_date).days // 365
        admitted = e.start.replace(second=0)
        updated = self._touched(admitted)
        data.add("ZY_RYDJ", {
            "ZYXH": e.visit_no, "ZYH": inpatient_no, "ZYCS": times, "BRID": p.patient_id, "BRXM": p.name, "XB": p.sex_code,
            "CSRQ": p.birth_date, "NL": age, "SFZH": p.id_no, "FYLB": pay_local, "RYTJ": route_local,
            "RYSJ": f"{admitted:%Y年%m月%d日 %H时%M分}", "RYKSDM": f["dept_code"], "RYKSMC": f["dept_name"],
            "DQKSDM": f["dept_code"], "DQKSMC": f["dept_name"], "RYZDDM": f["diagnosis_code"], "RYZDMC": f["diagnosis_name"],
            "RYBQ": cond_local, "XGSJ": updated,
        })
        person = {"patient_id": p.patient_id, "name": p.name, "sex_code": p.sex_code}
        data.expect("inpatient_visit", e.visit_no, {
            **person, "visit_no": e.visit_no, "inpatient_no": inpatient_no, "inpatient_times": times,
            "birth_date": p.birth_date.isoformat(), "age_years": age, "id_no": p.id_no, "payment_method_code": pay,
            "admission_route_code": route, "admission_time": _t(admitted), "admission_dept_local_code": f["dept_code"],
            "admission_dept_name": f["dept_name"], "dept_code": f["dept_code"], "dept_name": f["dept_name"],
            "admission_diagnosis_code": f["diagnosis_code"], "admission_diagnosis_name": f["diagnosis_name"],
            "update_time": _t(updated),
        })
        orders = 0
        for _ in range(rng.randint(2, 4)):
            orders += 1
            no = self._no("YZ")
            cat_local, cat = rng.choice(ORDER_CATEGORIES)
            type_local, type_code, content = rng.choice(ORDER_TYPES)
            state_local, state = rng.choice(ORDER_STATES)
            at = min(admitted + timedelta(minutes=rng.randrange(10, 600)), self.now - timedelta(minutes=5))
            start = at + timedelta(minutes=rng.randrange(0, 60))
            data.add("ZY_YZ", {
                "YZH": no, "ZYXH": e.visit_no, "KSDM": f["dept_code"], "KSMC": f["dept_name"], "YZLB": cat_local,
                "YZLX": type_local, "YZNR": content, "KZSJ": at, "KZYSGH": f["doctor_id"], "KZYSXM": f["doctor_name"],
                "KSSJ": start, "YZZT": state_local, "XGSJ": self._touched(at),
            })
            data.expect("inpatient_order", no, {
                **person, "order_no": no, "visit_no": e.visit_no, "dept_code": f["dept_code"], "dept_name": f["dept_name"],
                "order_category_code": cat, "order_item_type_code": type_code, "order_content": content,
                "order_time": _t(at), "doctor_id": f["doctor_id"], "doctor_name": f["doctor_name"],
                "plan_start_time": _t(start), "order_status_code": state,
            })
        if e.end >= self.now - timedelta(hours=1):
            return  # still in hospital: no discharge record, no front page yet
        dispo_local, dispo = rng.choice(DISPOSITIONS)
        days = max((e.end.date() - admitted.date()).days, 1)
        total = round(rng.uniform(3000, 60000), 2)
        dx_code, dx_name = rng.choice(vocab.DIAGNOSES)
        resident = rng.choice(self.gen._doctors)[1]
        discharged = e.end.replace(microsecond=0)
        data.add("ZY_CYJL", {
            "ZYXH": e.visit_no, "CYSJ": discharged, "CYKSDM": f["dept_code"], "CYKSMC": f["dept_name"], "SJZYTS": days,
            "CYZDDM": dx_code, "CYZDMC": dx_name, "LYFS": dispo_local, "ZYYSXM": resident, "ZFY": total,
            "XGSJ": self._touched(discharged),
        })
        data.expect("front_page", e.visit_no, {
            **person, "visit_no": e.visit_no, "inpatient_no": inpatient_no, "inpatient_times": times,
            "payment_method_code": pay, "birth_date": p.birth_date.isoformat(), "age_years": age, "id_type_code": "01",
            "id_no": p.id_no, "current_address": p.address, "phone": p.phone, "admission_route_code": route,
            "admission_time": _t(admitted), "admission_dept_local_code": f["dept_code"], "admission_dept_name": f["dept_name"],
            "discharge_time": _t(discharged), "dept_code": f["dept_code"], "dept_name": f["dept_name"], "actual_days": days,
            "diagnosis_code": dx_code, "diagnosis_name": dx_name, "main_admission_condition_code": cond,
            "doctor_name": resident, "discharge_disposition_code": dispo, "total_fee": total,
        })


# --- building the database ---------------------------------------------------------------------


def reset_database(admin_url: str) -> str:
    """Create (or empty) the HIS database named in ``admin_url`` and return its URL.

    MariaDB/MySQL: DROP + CREATE DATABASE. PostgreSQL: create the database if missing, then
    drop and recreate its public schema. SQLite: delete the file.
    """
    from pathlib import Path

    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    from phip.store.db import create_database

    url = make_url(admin_url)
    backend = url.get_backend_name()
    if backend in ("mysql", "mariadb"):
        server = create_engine(url.set(database="mysql"), isolation_level="AUTOCOMMIT")
        with server.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{url.database}`"))
            conn.execute(text(f"CREATE DATABASE `{url.database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"))
        server.dispose()
    elif backend == "postgresql":
        create_database(admin_url)
        engine = create_engine(admin_url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    elif backend == "sqlite":
        path = Path(url.database or "")
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
    return admin_url


def create_schema(engine: Engine) -> MetaData:
    md = his_metadata(lower=engine.dialect.name == "postgresql")
    md.create_all(engine)
    return md


def load(engine: Engine, data: HisData, chunk: int = 5000) -> dict[str, int]:
    """Insert the rows (tables must exist); returns rows per table."""
    lower = engine.dialect.name == "postgresql"
    md = his_metadata(lower=lower)
    counts = {}
    with engine.begin() as conn:
        for name, rows in data.rows.items():
            if not rows:
                continue
            table = md.tables[name.lower() if lower else name]
            if lower:
                rows = [{k.lower(): v for k, v in r.items()} for r in rows]
            for start in range(0, len(rows), chunk):
                conn.execute(table.insert(), rows[start : start + chunk])
            counts[name] = len(rows)
    return counts


def build(admin_url: str, *, seed: int = 1, days: int = 2, visits: int = 30, admissions: int = 4,
          now: datetime | None = None, tables: Iterable[str] | None = None) -> HisData:
    """Reset the database at ``admin_url`` and fill it with a synthetic HIS; returns the data.
    ``tables`` limits the rows produced (all tables are created)."""
    from sqlalchemy import create_engine

    reset_database(admin_url)
    engine = create_engine(admin_url)
    try:
        create_schema(engine)
        data = HisSynth(seed=seed, now=now).generate(days=days, visits=visits, admissions=admissions, tables=tables)
        load(engine, data)
    finally:
        engine.dispose()
    return data


# --- a visit table without an update time (change detection, phip.collect.checksum) ----------

#: The outpatient visits of an old HIS module that keeps no create/update time: the case of
#: ``change_detection: checksum``. Built in the database itself (MariaDB's sequence engine,
#: PostgreSQL's generate_series), so a million rows take seconds.
UNSTAMPED_TABLE = "MZ_JZJL_LS"
UNSTAMPED_MAPPING = f"""\
  - dataset: outpatient_visit
    name: visits_unstamped
    from: {UNSTAMPED_TABLE}
    change_detection: {{key: JZXH, chunk_size: CHUNK}}
    fields:
      visit_no: JZXH
      patient_id: BRID
      name: BRXM
      sex_code: XB
      visit_type_code: JZLB
      dept_code: KSDM
      dept_name: KSMC
      visit_time: JZSJ
      diagnosis_code: ZDDM
      diagnosis_name: ZDMC
"""


def build_unstamped(admin_url: str, rows: int) -> str:
    """A fresh database holding ``MZ_JZJL_LS``: ``rows`` visits keyed 1..rows (``JZXH``), no
    update-time column; returns the URL."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    url = reset_database(admin_url)
    backend = make_url(url).get_backend_name()
    patient = "MOD(n, 50000)"
    cols = ("JZXH BIGINT PRIMARY KEY, BRID VARCHAR(20) NOT NULL, BRXM VARCHAR(50), XB CHAR(1), JZLB CHAR(1), "
            "KSDM VARCHAR(10), KSMC VARCHAR(50), JZSJ {ts}, ZDDM VARCHAR(20), ZDMC VARCHAR(100)")
    if backend in ("mysql", "mariadb"):
        create = f"CREATE TABLE {UNSTAMPED_TABLE} ({cols.format(ts='DATETIME')}) DEFAULT CHARSET=utf8mb4"
        fill = (f"INSERT INTO {UNSTAMPED_TABLE} SELECT n, CONCAT('P', LPAD({patient}, 6, '0')), CONCAT('患者', {patient}), "
                f"1 + MOD(n, 2), '1', 'NK01', '内科', TIMESTAMP('2026-01-01') + INTERVAL MOD(n, 300) DAY "
                f"+ INTERVAL MOD(n, 600) MINUTE, 'J06.900', '急性上呼吸道感染' FROM (SELECT seq AS n FROM seq_1_to_{rows}) s")
    elif backend == "postgresql":
        create = f"CREATE TABLE {UNSTAMPED_TABLE} ({cols.format(ts='TIMESTAMP')})"
        fill = (f"INSERT INTO {UNSTAMPED_TABLE} SELECT n, 'P' || LPAD(({patient})::text, 6, '0'), '患者' || {patient}, "
                f"(1 + MOD(n, 2))::text, '1', 'NK01', '内科', TIMESTAMP '2026-01-01' + MOD(n, 300) * INTERVAL '1 day' "
                f"+ MOD(n, 600) * INTERVAL '1 minute', 'J06.900', '急性上呼吸道感染' FROM generate_series(1, {rows}) AS g(n)")
    else:
        raise ValueError(f"build_unstamped: MariaDB/MySQL or PostgreSQL only, not {backend}")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(create))
            if rows:
                conn.execute(text(fill))
    finally:
        engine.dispose()
    return url


def unstamped_mapping(url: str, chunk_size: int = 1000, batch_size: int = 5000) -> str:
    """The mapping (YAML text) of the demo institution pulling ``MZ_JZJL_LS`` by checksums."""
    return (f"source:\n  name: his_unstamped\n  org: \"{DEMO_ORG[0]}\"\n  url: \"{url}\"\n  batch_size: {batch_size}\n"
            f"datasets:\n{UNSTAMPED_MAPPING.replace('CHUNK', str(chunk_size))}")
