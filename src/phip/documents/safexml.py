"""Parsing XML from outside (a hospital's CDA) so that it can do nothing but be read.

libxml2 behind lxml is told to load no DTD, resolve no entity, touch no network and keep its
own size limits (``huge_tree=False``); before it runs, a body with a DOCTYPE or an entity
declaration is refused outright (external entities and entity expansion both need one), as
is anything not UTF-8. libxml2 keeps its own limits while parsing (depth 256, 10 MB text) and
the body is at most 2 MB; once parsed, depth, element count and the length of every attribute
and text are checked by XPath in C, so a hostile document costs at most the bytes it sent. Processing instructions are refused: a CDA has no use for them, and a
stylesheet instruction asks the reader's viewer to fetch something."""

from __future__ import annotations

import re
import threading

from lxml import etree

from phip.input_messages import first_reason

from .problems import refuse

MAX_BYTES = 2 * 1024 * 1024  # a WS/T 500 document is a few tens of KB; a 4,000-character note fits many times
MAX_DEPTH = 32  # CDA bodies nest about 12 deep
MAX_ELEMENTS = 50_000
MAX_TEXT = 20_000  # characters in one attribute or one text node
_DECL = re.compile(rb"^<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")
_FORBIDDEN = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def hardened_parser() -> etree.XMLParser:
    """libxml2 with nothing to fetch and nothing to expand."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_comments=True, remove_blank_text=True)


_LOCAL = threading.local()  # a parser per thread: the API reads documents in its thread pool
#: limits checked by libxml2's XPath engine in C, once the 2 MB document is parsed
_DEEPER = etree.XPath("boolean(/*" + "/*" * MAX_DEPTH + ")")
_PI = etree.XPath("//processing-instruction()")
# on the raw bytes, at C speed: a run of MAX_TEXT bytes with no quote (an attribute value) or
# no tag (a text); element starts bounded by the count of "<" that open no end tag. Two
# patterns, each with a literal first byte that re finds by a fast scan (one alternation: 3.6x slower)
_LONG_ATTRIBUTE = re.compile(rb'"[^"]{%d}' % MAX_TEXT)
_LONG_TEXT = re.compile(rb'>[^<]{%d}' % MAX_TEXT)
_XML_DECL = re.compile(rb"^(?:\xef\xbb\xbf)?\s*<\?xml\s[^>]*\?>")


def check_bytes(body: bytes) -> None:
    """Refusals decided on the raw bytes: empty, too large, not UTF-8, a DOCTYPE or ENTITY."""
    if not body.strip():
        raise refuse("EMPTY_DOCUMENT", "请求体为空，应为一份CDA共享文档（XML）")
    if len(body) > MAX_BYTES:
        raise refuse("DOCUMENT_TOO_LARGE", f"文档超过{MAX_BYTES // 1024 // 1024} MB上限")
    if body[:2] in (b"\xff\xfe", b"\xfe\xff") or body[:4] in (b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00"):
        raise refuse("BAD_ENCODING", "文档应为UTF-8编码（收到UTF-16/UTF-32字节顺序标记）")
    text = body[3:] if body.startswith(b"\xef\xbb\xbf") else body
    declared = _DECL.match(text.lstrip())
    if declared and declared.group(1).lower() not in (b"utf-8", b"utf8"):
        raise refuse("BAD_ENCODING", f"文档声明为{declared.group(1).decode('ascii')}编码，平台只接收UTF-8")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise refuse("BAD_ENCODING", f"文档不是有效的UTF-8编码（第{exc.start + 1}字节）") from None
    if b"!" in body and _FORBIDDEN.search(body):  # no "!", no "<!": the scan for one byte is C's memchr
        raise refuse("DOCTYPE_FORBIDDEN", "文档不得包含DOCTYPE或实体声明（ENTITY）")


#: libxml2's reasons in Chinese (its English went into the message whole); the first match wins
_XML_REASONS = (
    ("Opening and ending tag mismatch", "开始标签与结束标签不匹配"),
    ("Premature end of data", "文档不完整（提前结束）"),
    ("EndTag: '</' not found", "文档不完整（缺少结束标签）"),
    ("Extra content at the end of the document", "根元素结束后还有多余的内容"),
    ("Start tag expected", "应以元素开始标签开头"),
    ("Document is empty", "文档为空"),
    ("StartTag: invalid element name", "元素名称无效"),
    ("not defined", "使用了未声明的实体或命名空间前缀"),
    ("xmlParseCharRef: invalid xmlChar value", "字符引用（&#…;）不是有效的XML字符"),
    ("invalid xmlChar value", "字符引用（&#…;）不是有效的XML字符"),
    ("Char 0x", "含XML不允许的字符"),
    ("PCDATA invalid Char value", "含XML不允许的字符"),
    ("AttValue", "属性值缺少引号或未闭合"),
    ("attributes construct error", "属性写法错误"),
    ("Attribute", "属性重复或写法错误"),
    ("Couldn't find end of Start Tag", "开始标签没有闭合"),
    ("EntityRef", "“&”之后应为实体名称和分号（文本中的“&”应写成 &amp;）"),
    ("xmlns", "命名空间声明无效"),
    ("Comment not terminated", "注释没有闭合"),
    ("CData section not finished", "CDATA 段没有闭合"),
    ("Unescaped '<' not allowed", "属性值中不能出现未转义的“<”"),
)


def parse(body: bytes) -> etree._Element:
    """The root element of a hostile-safe parse of ``body``; DocumentRefused otherwise."""
    check_bytes(body)
    try:
        parser = getattr(_LOCAL, "parser", None) or hardened_parser()
        _LOCAL.parser = parser
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as exc:
        if "depth" in str(exc.msg).lower():  # libxml2 stops at 256 levels on its own
            raise refuse("TOO_DEEP", f"元素嵌套超过{MAX_DEPTH}层") from None
        where = f"第{exc.lineno}行" if getattr(exc, "lineno", None) else ""
        if where and getattr(exc, "offset", None):
            where += f"第{exc.offset}列"
        raise refuse("MALFORMED_XML", f"不是格式正确的XML：{where}{'：' if where else ''}{first_reason(_XML_REASONS, str(exc.msg))}") from None
    if root is None:
        raise refuse("MALFORMED_XML", "不是格式正确的XML：没有根元素")
    _check_tree(body, root)
    return root


def _check_tree(body: bytes, root: etree._Element) -> None:
    """The limits of a parsed document. Each byte-level bound is skipped only when the body is
    too short to break it (fewer bytes than the limit), so the answer is the full check's."""
    if _may_hold_pi(body):
        pis = _PI(root) + [n for n in root.itersiblings(preceding=True) if isinstance(n, etree._ProcessingInstruction)] + \
            [n for n in root.itersiblings() if isinstance(n, etree._ProcessingInstruction)]
        if pis:
            raise refuse("PI_FORBIDDEN", f"文档不得包含处理指令（<?{pis[0].target} …?>）")
    if _DEEPER(root):
        raise refuse("TOO_DEEP", f"元素嵌套超过{MAX_DEPTH}层")
    if len(body) > MAX_ELEMENTS and body.count(b"<") - body.count(b"</") > MAX_ELEMENTS:
        raise refuse("TOO_MANY_ELEMENTS", f"元素超过{MAX_ELEMENTS}个")
    if len(body) > MAX_TEXT and ((_may_run(body, b'"') and _LONG_ATTRIBUTE.search(body))
                                 or (_may_run(body, b"<") and _LONG_TEXT.search(body))):
        raise refuse("ATTRIBUTE_TOO_LONG", f"属性值或文本超过{MAX_TEXT}字节")


def _may_run(body: bytes, byte: bytes) -> bool:
    """Whether ``body`` may hold MAX_TEXT bytes in a row without ``byte``: such a run contains a
    whole block of MAX_TEXT / 2 bytes aligned on that size, so when every such block holds the
    byte (a memchr each) the regex, a Python-level scan of every byte, cannot match."""
    step = MAX_TEXT // 2
    return any(body.find(byte, i, i + step) < 0 for i in range(0, len(body) - step + 1, step))


def _may_hold_pi(body: bytes) -> bool:
    """Whether a "?" follows the XML declaration: every processing instruction needs one, and
    a CDA rarely has any (Chinese text uses the full-width ？), so the tree is searched rarely."""
    decl = _XML_DECL.match(body)
    return body.find(b"?", decl.end() if decl else 0) >= 0
