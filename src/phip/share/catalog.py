"""What sharing keeps as data (``data/sharing.yaml``): categories of data sets, the
break-the-glass reasons, and how each document kind is titled, grouped and itemised."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

DATA = Path(__file__).parent / "data" / "sharing.yaml"


@dataclass(frozen=True)
class DocumentKind:
    dataset: str
    title: str
    diagnosis: str | None = None
    summary: str | None = None
    group: str | None = None
    items: tuple[str, ...] = ()


@dataclass(frozen=True)
class Catalog:
    categories: dict[str, tuple[str, tuple[str, ...]]]  # code -> (label, data sets)
    reasons: dict[str, str]
    documents: dict[str, DocumentKind]

    @property
    def category_of(self) -> dict[str, str]:
        return {ds: code for code, (_, sets) in self.categories.items() for ds in sets}

    def category_labels(self) -> dict[str, str]:
        return {code: label for code, (label, _) in self.categories.items()}


@cache
def load_catalog(path: Path = DATA) -> Catalog:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    categories = {code: (c["label"], tuple(c["datasets"])) for code, c in raw["categories"].items()}
    documents = {ds: DocumentKind(ds, d["title"], d.get("diagnosis"), d.get("summary"), d.get("group"),
                                  tuple(d.get("items", ()))) for ds, d in raw["documents"].items()}
    return Catalog(categories, dict(raw["break_glass_reasons"]), documents)
