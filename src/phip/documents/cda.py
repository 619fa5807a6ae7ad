"""The CDA vocabulary both directions share: namespaces, header element paths, and a field's
value as an HL7 v3 data type (``xsi:type`` ST, CD, INT, REAL, TS, BL) and back.

Paths are steps below an element, ``name`` or ``name[@attr='value']``: the renderer creates
what is missing along them, the reader finds the first match. Values are written exactly as
the stored record spells them, so a record read back normalises to the same payload."""

from __future__ import annotations

import re
from datetime import date, datetime
from functools import cache
from typing import Any

from lxml import etree

V3 = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
NSMAP = {None: V3, "xsi": XSI}
XSI_TYPE = f"{{{XSI}}}type"
_STEP = re.compile(r"^([A-Za-z]+)(?:\[@([A-Za-z]+)='([^']*)'\])?$")
#: HL7 v3 data type of each field type of the standard
XSI_TYPES = {"string": "ST", "text": "ST", "code": "CD", "int": "INT", "decimal": "REAL", "date": "TS",
             "datetime": "TS", "bool": "BL"}


def q(name: str) -> str:
    """The qualified name of a CDA element."""
    return f"{{{V3}}}{name}"


@cache
def steps(path: str) -> tuple[tuple[str, str | None, str | None], ...]:
    """``a/b[@root='x']`` as ((qualified a, None, None), (qualified b, 'root', 'x'))."""
    out = []
    for part in path.split("/"):
        m = _STEP.match(part)
        if not m:
            raise ValueError(f"bad header path step {part!r}")
        out.append((q(m.group(1)), m.group(2), m.group(3)))
    return tuple(out)


def ensure(parent: etree._Element, path: str) -> etree._Element:
    """The element at ``path`` below ``parent``, created (with its attribute) where missing."""
    node = parent
    for tag, attr, value in steps(path):
        found = None
        for child in node.iterchildren(tag):
            if attr is None or child.get(attr) in (value, None):  # a bare element takes the attribute
                found = child
                break
        if found is None:
            found = etree.SubElement(node, tag)
        if attr is not None:
            found.set(attr, value or "")
        node = found
    return node


def find(parent: etree._Element, path: str) -> etree._Element | None:
    """The first element at ``path`` below ``parent``, or None."""
    nodes = [parent]
    for tag, attr, value in steps(path):
        nodes = [c for n in nodes for c in n.iterchildren(tag) if attr is None or c.get(attr) == value]
        if not nodes:
            return None
    return nodes[0]


def ts(value: Any, kind: str) -> str:
    """A stored date or date-time ("2026-11-21", "2026-11-21T08:58:00") as HL7 TS."""
    text = value.isoformat() if isinstance(value, date | datetime) else str(value)
    digits = text.replace("-", "").replace(":", "").replace("T", "").replace(" ", "")
    return digits[:8] if kind == "date" else digits[:14]


_TS = re.compile(r"^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(\d{2})?)?$")


def from_date(text: str) -> str:
    """HL7 TS (a date) as YYYY-MM-DD; ValueError unless a real date."""
    if len(text) == 8 and text.isascii() and text.isdigit() and text[0] != "0":  # the usual spelling, no regex
        date(int(text[:4]), int(text[4:6]), int(text[6:]))
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    y, mo, d, _, _, _ = _ts_parts(text)
    return date(int(y), int(mo), int(d)).isoformat()


def from_datetime(text: str) -> str:
    """HL7 TS as YYYY-MM-DD HH:MM:SS (a date alone at midnight); ValueError unless real."""
    if len(text) == 14 and text.isascii() and text.isdigit() and text[0] != "0":  # sliced, not strftime'd
        datetime(int(text[:4]), int(text[4:6]), int(text[6:8]), int(text[8:10]), int(text[10:12]), int(text[12:]))
        return f"{text[:4]}-{text[4:6]}-{text[6:8]} {text[8:10]}:{text[10:12]}:{text[12:]}"
    y, mo, d, h, mi, s = _ts_parts(text)
    return datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0)).strftime("%Y-%m-%d %H:%M:%S")


def _ts_parts(text: str) -> tuple[str, ...]:
    m = _TS.match(text or "")
    if not m:
        raise ValueError(text)
    return m.groups()


def number(value: Any) -> str:
    """An int or decimal as the stored JSON number spells it."""
    return str(value)


def from_real(text: str) -> float:
    """HL7 REAL as a float; ValueError for NaN and infinities."""
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(text)
    return value


def from_bool(text: str) -> bool:
    if text not in ("true", "false"):
        raise ValueError(text)
    return text == "true"
