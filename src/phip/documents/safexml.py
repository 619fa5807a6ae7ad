"""Parsing XML from outside (a hospital's CDA) so that it can do nothing but be read.

libxml2 behind lxml is told to load no DTD, resolve no entity, touch no network and keep its
own size limits (``huge_tree=False``); before it runs, a body with a DOCTYPE or an entity
declaration is refused outright (external entities and entity expansion both need one), as
is anything not UTF-8. While it runs, a pull parser counts depth, elements and the length of
every attribute and text, and stops at the first excess, so a hostile document costs at most
the bytes it sent. Processing instructions are refused: a CDA has no use for them, and a
stylesheet instruction asks the reader's viewer to fetch something."""

from __future__ import annotations

import re

from lxml import etree

from .problems import refuse

MAX_BYTES = 2 * 1024 * 1024  # a WS/T 500 document is a few tens of KB; a 4,000-character note fits many times
MAX_DEPTH = 32  # CDA bodies nest about 12 deep
MAX_ELEMENTS = 50_000
MAX_TEXT = 20_000  # characters in one attribute or one text node
CHUNK = 64 * 1024
_DECL = re.compile(rb"^<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")
_FORBIDDEN = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def _parser() -> etree.XMLPullParser:
    return etree.XMLPullParser(events=("start", "end", "pi"), resolve_entities=False, no_network=True, load_dtd=False,
                               dtd_validation=False, huge_tree=False, remove_comments=True, remove_blank_text=True)


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
    if _FORBIDDEN.search(body):
        raise refuse("DOCTYPE_FORBIDDEN", "文档不得包含DOCTYPE或实体声明（ENTITY）")


def parse(body: bytes) -> etree._Element:
    """The root element of a hostile-safe parse of ``body``; DocumentRefused otherwise."""
    check_bytes(body)
    parser = _parser()
    depth = elements = 0
    try:
        for start in range(0, len(body), CHUNK):
            parser.feed(body[start:start + CHUNK])
            for event, el in parser.read_events():
                if event == "start":
                    depth += 1
                    elements += 1
                    if depth > MAX_DEPTH:
                        raise refuse("TOO_DEEP", f"元素嵌套超过{MAX_DEPTH}层")
                    if elements > MAX_ELEMENTS:
                        raise refuse("TOO_MANY_ELEMENTS", f"元素超过{MAX_ELEMENTS}个")
                    if any(len(v) > MAX_TEXT for v in el.attrib.values()):
                        raise refuse("ATTRIBUTE_TOO_LONG", f"属性值超过{MAX_TEXT}个字符")
                elif event == "end":
                    depth -= 1
                    if len(el.text or "") > MAX_TEXT or len(el.tail or "") > MAX_TEXT:
                        raise refuse("ATTRIBUTE_TOO_LONG", f"文本超过{MAX_TEXT}个字符")
                else:
                    raise refuse("PI_FORBIDDEN", f"文档不得包含处理指令（<?{el.target} …?>）")
        root = parser.close()
    except etree.XMLSyntaxError as exc:
        line = f"第{exc.lineno}行：" if getattr(exc, "lineno", None) else ""
        raise refuse("MALFORMED_XML", f"不是格式正确的XML：{line}{exc.msg}") from None
    if root is None:
        raise refuse("MALFORMED_XML", "不是格式正确的XML：没有根元素")
    return root
