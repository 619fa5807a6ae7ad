"""Why a received document is refused: stable codes (hospital systems program against them),
a Chinese message, and the XPath-like path of each problem. A refused document stores nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lxml import etree

from phip.errors import PhipError

from .cda import V3

#: every refusal code, with what it means (docs/interop.md lists the same)
CODES: dict[str, str] = {
    "EMPTY_DOCUMENT": "请求体为空",
    "DOCUMENT_TOO_LARGE": "文档超过大小上限",
    "BAD_ENCODING": "文档不是UTF-8编码或声明了其他编码",
    "DOCTYPE_FORBIDDEN": "文档含DOCTYPE或实体声明（外部实体、实体扩展攻击）",
    "PI_FORBIDDEN": "文档含处理指令",
    "TOO_DEEP": "元素嵌套层数超过上限",
    "TOO_MANY_ELEMENTS": "元素个数超过上限",
    "ATTRIBUTE_TOO_LONG": "属性值或文本超过长度上限",
    "MALFORMED_XML": "不是格式正确的XML",
    "WRONG_NAMESPACE": "根元素不在 urn:hl7-org:v3 命名空间",
    "WRONG_ROOT": "根元素不是 ClinicalDocument",
    "HEADER_MISSING": "缺少文档头必备部分",
    "BAD_HEADER": "文档头的值不符合规范",
    "UNKNOWN_TEMPLATE": "templateId 不是平台支持的共享文档模板",
    "WRONG_DOCUMENT_CODE": "文档类型代码与模板不一致",
    "SECTION_MISSING": "缺少必备章节",
    "ENTRY_MISSING": "缺少必填条目",
    "ENTRY_REPEATED": "不可重复的条目出现多次",
    "SECTION_REPEATED": "不可重复的章节出现多次",
    "WRONG_CODE_SYSTEM": "编码的代码系统OID与值域不符",
    "CODE_OUT_OF_DOMAIN": "代码不在值域内",
    "BAD_DATE": "日期或日期时间无效",
    "BAD_VALUE": "值的类型或格式无效",
}


@dataclass(frozen=True, slots=True)
class Problem:
    code: str
    message: str
    path: str

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "path": self.path}


class DocumentRefused(PhipError):
    """A document refused before anything was stored: the first problem's code, every problem."""

    def __init__(self, problems: list[Problem]):
        first = problems[0]
        super().__init__(first.code, f"共享文档未通过校验（{len(problems)}处问题），未保存：{first.message}", first.path)
        self.problems = problems


def refuse(code: str, message: str, path: str = "/") -> DocumentRefused:
    return DocumentRefused([Problem(code, message, path)])


def where(el: etree._Element) -> str:
    """An XPath-like path of an element (``/ClinicalDocument/component/structuredBody/component[2]/section``):
    local names, a position only where siblings share the name, a prefix for a foreign namespace."""
    parts = []
    node: etree._Element | None = el
    while node is not None:
        qn = etree.QName(node)
        name = qn.localname if qn.namespace == V3 else f"{{{qn.namespace}}}{qn.localname}" if qn.namespace else qn.localname
        parent = node.getparent()
        if parent is not None:
            same = [c for c in parent.iterchildren(node.tag)]
            if len(same) > 1:
                name += f"[{same.index(node) + 1}]"
        parts.append(name)
        node = parent
    return "/" + "/".join(reversed(parts))
