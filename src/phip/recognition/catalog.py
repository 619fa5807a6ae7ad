"""The recognition catalogue (互认项目目录): item categories and their windows, from data.

``classify`` turns one stored lab or exam record into the item it reports (a standard item
code for labs; modality plus body site or exam name for exams), so results of different
hospitals, coded locally, compare as one item. A broken data file fails at load, naming the
category.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from phip.datafiles import load_yaml
from phip.errors import PhipError

CATALOG_FILE = Path(__file__).parent / "data" / "windows.yaml"
DATASETS = ("lab_report", "exam_report")


class CatalogError(PhipError, ValueError):
    """The recognition data file is inconsistent (a bug in the data)."""

    code = "BAD_RECOGNITION_DATA"

    def __init__(self, message: str):
        super().__init__(None, message)


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    dataset: str
    window_days: int


@dataclass(frozen=True)
class Item:
    """One recognisable item: ``code`` is the same for the same item at every institution."""

    category: Category
    code: str
    name: str

    @property
    def window_days(self) -> int:
        return self.category.window_days


def _norm(value: Any) -> str:
    return "".join(str(value).split()).upper() if value is not None else ""


@dataclass(frozen=True)
class Catalog:
    categories: dict[str, Category]
    lab_items: dict[str, Item]  # normalised local code or name -> item
    modalities: dict[str, Category]  # exam modality code -> category
    fees: dict[str, tuple[str, ...]]  # item code (labs) or category code (exams) -> normalised charge codes/names
    eqa_required: bool

    @property
    def longest_window(self) -> int:
        return max((c.window_days for c in self.categories.values()), default=0)

    def lab_item(self, code: Any, name: Any = None) -> Item | None:
        """The item of a lab result or an EQA row (by local code, else by name)."""
        return self.lab_items.get(_norm(code)) or self.lab_items.get(_norm(name))

    def classify(self, dataset: str, payload: dict[str, Any]) -> Item | None:
        """The recognisable item a stored record reports, or None (not in the catalogue)."""
        if dataset == "lab_report":
            return self.lab_item(payload.get("item_local_code"), payload.get("item_name"))
        if dataset == "exam_report":
            modality = str(payload.get("exam_modality_code") or "").upper()
            category = self.modalities.get(modality)
            if category is None:
                return None
            what = payload.get("exam_site") or payload.get("exam_item_name") or category.name
            return Item(category, f"{modality}:{_norm(what)}", f"{category.name}（{what}）")
        return None

    def fee_names(self, item: Item) -> tuple[str, ...]:
        """Charge item codes or names (normalised) that price ``item`` in fee_detail."""
        key = item.code if item.category.dataset == "lab_report" else item.category.code
        return self.fees.get(key, ())


@cache
def load_catalog(path: Path = CATALOG_FILE) -> Catalog:
    raw = load_yaml(path)
    categories: dict[str, Category] = {}
    lab_items: dict[str, Item] = {}
    modalities: dict[str, Category] = {}
    fees: dict[str, tuple[str, ...]] = {}
    for code, spec in raw["categories"].items():
        if spec.get("dataset") not in DATASETS:
            raise CatalogError(f"category {code}: dataset must be one of {DATASETS}")
        days = spec.get("window_days")
        if not isinstance(days, int) or days < 1:
            raise CatalogError(f"category {code}: window_days must be a positive whole number of days")
        cat = categories[code] = Category(code, spec["name"], spec["dataset"], days)
        if cat.dataset == "lab_report":
            for item_code, item in (spec.get("items") or {}).items():
                entry = Item(cat, item_code, item["name"])
                for key in (item_code, item["name"], *item.get("aliases", ())):
                    if lab_items.setdefault(_norm(key), entry) is not entry:
                        raise CatalogError(f"category {code}: {key} names two items")
                fees[item_code] = tuple(_norm(f) for f in (item_code, item["name"], *item.get("fees", ())))
        else:
            for m in spec.get("modalities") or ():
                if modalities.setdefault(m.upper(), cat) is not cat:
                    raise CatalogError(f"category {code}: modality {m} is in two categories")
            fees[code] = tuple(_norm(f) for f in spec.get("fees", ()))
    return Catalog(categories, lab_items, modalities, fees, bool(raw.get("settings", {}).get("eqa_required", False)))


def normalise(value: Any) -> str:
    """How codes and names are compared: spaces removed, upper case."""
    return _norm(value)
