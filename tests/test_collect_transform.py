"""Driver values as records carry them (phip.collect.transform.plain)."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal

from phip.collect.transform import plain


def test_driver_values_become_record_values():
    assert plain(Decimal("220102193406283534")) == 220102193406283534  # an ID number kept as DECIMAL(18,0)
    assert plain(Decimal("12.50")) == 12.5 and plain(Decimal("3")) == 3
    assert plain(datetime(2026, 11, 21, 9, 30)) == "2026-11-21 09:30:00"
    assert plain(date(2026, 11, 21)) == "2026-11-21" and plain(time(9, 30)) == "09:30:00"


def test_binary_text_columns_are_read_as_utf8_or_gbk():
    """Old HIS tables keep names in binary columns; a GBK name is read as GBK, not as U+FFFD."""
    assert plain("张三".encode()) == "张三"
    assert plain("张三".encode("gb18030")) == "张三"
    assert plain(memoryview("心血管内科".encode("gb18030"))) == "心血管内科"
    assert plain(b"\xff\xfe\x80") == "\ufffd\ufffd\ufffd"  # neither: shown as unreadable, never dropped
