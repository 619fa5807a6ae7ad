"""Findings (问题) on a record: the codes hospitals program against, their severities and
Chinese messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .checks import replace_nul

Severity = Literal["error", "warning"]

#: Every finding code the validator emits, with its severity and Chinese message template.
#: Hospitals program against these codes, so they never change meaning once published.
MESSAGES: dict[str, tuple[Severity, str]] = {
    "UNREADABLE": ("error", "{reason}"),
    "RECORD_ARCHIVED": ("error", "该记录（业务月份{month}）所在月份已归档，不再接收修改；如确需更正，请联系省平台先恢复该月数据"),
    "NOT_AN_OBJECT": ("error", "记录必须是JSON对象（键值对），实际为{kind}"),
    "REQUIRED": ("warning", "【{label}】为必填项，不能为空"),
    "BAD_VALUE_TYPE": ("warning", "【{label}】应为文本或数值，不能是数组、对象或 true/false"),
    "NUL_CHARACTER": ("error", "【{label}】含有空字符（U+0000），无法保存，请删除后重传"),
    "NUMBER_PRECISION_LOST": ("warning", "【{label}】以数值形式提供且超过15位有效数字（如Excel中的身份证号码），"
                                       "精度已丢失；请将该列设为文本格式后重新导出"),
    "TOO_LONG": ("warning", "【{label}】长度{actual}超过标准规定的最大长度{length}"),
    "NOT_IN_DOMAIN": ("warning", "【{label}】的值“{value}”不在值域【{domain}】内"),
    "BAD_CODE_FORMAT": ("warning", "【{label}】的值“{value}”不符合{domain}的编码格式（示例：{example}）"),
    "BAD_PATTERN": ("warning", "【{label}】的值“{value}”格式不正确"),
    "BAD_INT": ("warning", "【{label}】应为整数，实际为“{value}”"),
    "BAD_DECIMAL": ("warning", "【{label}】应为数值，实际为“{value}”"),
    "BAD_DATE": ("warning", "【{label}】不是有效日期（应为YYYY-MM-DD），实际为“{value}”"),
    "BAD_DATETIME": ("warning", "【{label}】不是有效日期时间（应为YYYY-MM-DD HH:MM:SS），实际为“{value}”"),
    "BAD_BOOL": ("warning", "【{label}】应为是/否（true/false、1/0），实际为“{value}”"),
    "OUT_OF_RANGE": ("warning", "【{label}】的值{value}超出允许范围（{bounds}）"),
    "DATE_IN_FUTURE": ("warning", "【{label}】“{value}”晚于当前时间"),
    "DATE_BEFORE_1900": ("warning", "【{label}】“{value}”早于1900年"),
    "TIME_ORDER": ("warning", "【{label}】“{value}”早于【{other_label}】“{other_value}”，时间先后顺序错误"),
    "ID_NO_FORMAT": ("warning", "【{label}】{detail}"),
    "ID_NO_REGION": ("warning", "【{label}】{detail}"),
    "ID_NO_BIRTH": ("warning", "【{label}】{detail}"),
    "ID_NO_CHECKSUM": ("warning", "【{label}】{detail}"),
    "ID_NO_UPGRADED": ("warning", "【{label}】为15位旧号码，已按GB 11643升级为18位"),
    "ID_NO_SEX_MISMATCH": ("warning", "【{label}】第17位所示性别与【性别代码】不一致"),
    "ID_NO_BIRTH_MISMATCH": ("warning", "【{label}】中的出生日期与【出生日期】不一致"),
    "USCC_FORMAT": ("warning", "【{label}】“{value}”不是18位统一社会信用代码（GB 32100）"),
    "USCC_CHECKSUM": ("warning", "【{label}】“{value}”统一社会信用代码校验位错误（GB 32100）"),
    "PHONE_FORMAT": ("warning", "【{label}】不是有效的手机号码或固定电话号码{hint}"),
    "UNKNOWN_FIELD": ("warning", "字段“{name}”不在数据集【{dataset}】的标准中，已忽略"),
    "UNKNOWN_FIELDS_MORE": ("warning", "另有{count}个字段不在数据集【{dataset}】的标准中，已忽略（如“{name}”）"),
    "EMPI_ID_CONFLICT": ("warning", "【{label}】与平台已登记同一证件号码的居民{what}不一致，已转人工核对，本记录暂未关联到该居民"),
    "ORG_MISMATCH": ("error", "【医疗机构代码】“{value}”与上传机构“{org}”不一致，机构只能上传本机构数据"),
    "ORG_OUTSIDE_REGION": ("error", "【医疗机构代码】“{value}”不属于本市级平台所辖地区（{region}），市级平台只能上传本地区医疗机构的数据"),
    "ORG_UNREGISTERED": ("error", "【医疗机构代码】“{value}”未在省平台登记，请先登记该医疗机构"),
}

#: Unknown fields named one by one per record; the rest are counted in one finding. A hospital
#: system that sends whole rows of its own (three hundred internal columns) would otherwise


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem of a record: its code, the field, and the message the sender reads."""

    severity: Severity
    code: str
    field: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"severity": self.severity, "code": self.code, "field": self.field, "message": self.message}


#: characters of a value a message quotes: a cell that swallowed a file (a quote left open)
#: was quoted whole, 99,718 characters in every feedback answer
QUOTED_CHARS = 200


def _quoted(value: Any) -> Any:
    text = value if isinstance(value, str) else None
    if text is None or len(text) <= QUOTED_CHARS:
        return value
    return f"{text[:QUOTED_CHARS]}…（共{len(text)}字）"


def finding(code: str, field_name: str | None, severity: Severity | None = None, **params: Any) -> Finding:
    default, template = MESSAGES[code]
    message = template.format(**{k: _quoted(v) for k, v in params.items()})
    if "\x00" in message:  # a value echoed from the input (see checks.replace_nul)
        message = replace_nul(message)
    return Finding(severity or default, code, field_name, message)


@dataclass(slots=True)
class Outcome:
    """A record validated: its canonical form (None when rejected) and its findings."""

    record: dict[str, Any] | None
    findings: list[Finding] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.record is not None


class BadValue(Exception):
    """Raised by a converter; carries the finding code and template parameters."""

    def __init__(self, code: str, **params: Any):
        self.code = code
        self.params = params
