"""Mutual recognition of lab and exam results (检查检验结果互认): windows per item category as
data, which results are still recognisable, and repeats at other institutions."""

from .catalog import Catalog, Category, Item, load_catalog
from .repeats import Repeat, find_repeats
from .results import Result, by_report, recognizable, report_of

__all__ = ["Catalog", "Category", "Item", "Repeat", "Result", "by_report", "find_repeats", "load_catalog", "recognizable",
           "report_of"]
