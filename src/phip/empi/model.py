"""The Fellegi–Sunter model (概率匹配模型): comparisons, training with Splink, scoring in real time.

One definition of every comparison level serves both engines: its SQL condition goes to
Splink (DuckDB here, Spark in a province, translated by sqlglot), its Python predicate scores
an incoming record in the pipeline. The m/u probabilities come from Splink's EM training on
the platform's own persons and are stored as Splink's JSON model (``empi_models``); a model
trained on the synthetic register ships in ``data/model.json`` so a fresh platform links from
the first record. A test checks that Python and Splink give the same weight to the same pairs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from .similarity import jaro_winkler, levenshtein, within_one_edit

DEFAULT_MODEL = Path(__file__).parent / "data" / "model.json"
#: match probability at or above which a record links automatically (自动关联)
LINK_THRESHOLD = 0.95
#: match probability at or above which (and below LINK_THRESHOLD) a pair goes to review (人工审核)
REVIEW_THRESHOLD = 0.30

Row = dict[str, Any]
Predicate = Callable[[Row, Row], bool]


@dataclass(frozen=True)
class Level:
    label: str
    sql: str
    test: Predicate
    #: m fixed by domain knowledge instead of EM (EM takes twins for matches: they agree on
    #: surname, birth date, phone and address; two valid ID numbers or two sexes tell them apart)
    fixed_m: float | None = None


@dataclass(frozen=True)
class Comparison:
    name: str  # Splink output_column_name
    label: str  # Chinese, for the review screen
    columns: tuple[str, ...]
    levels: tuple[Level, ...]  # first level is the null level; the last is "else"


def _null(*cols: str) -> Level:
    sql = " OR ".join(f'"{c}_l" IS NULL OR "{c}_r" IS NULL' for c in cols)
    return Level("缺失", sql, lambda l, r: any(l.get(c) is None or r.get(c) is None for c in cols))


def _exact(col: str, label: str = "完全一致") -> Level:
    return Level(label, f'"{col}_l" = "{col}_r"', lambda l, r: l[col] == r[col])


def _jw(col: str, threshold: float, label: str) -> Level:
    return Level(label, f'jaro_winkler_similarity("{col}_l", "{col}_r") >= {threshold}',
                 lambda l, r: jaro_winkler(l[col], r[col]) >= threshold)


def _lev(col: str, distance: int, label: str) -> Level:
    return Level(label, f'levenshtein("{col}_l", "{col}_r") <= {distance}',
                 lambda l, r: levenshtein(l[col], r[col]) <= distance)


_ELSE = Level("不一致", "ELSE", lambda l, r: True)


def _dob_near(l: Row, r: Row) -> bool:
    a, b = l["dob"], r["dob"]
    return levenshtein(a, b) <= 1 or (a[:4] == b[:4] and a[4:6] == b[6:8] and a[6:8] == b[4:6])


def _same_surname_similar_given(l: Row, r: Row) -> bool:
    # NULL-safe like SQL: a missing part never compares equal
    if None in (l["surname_py"], r["surname_py"], l["given_py"], r["given_py"]):
        return False
    return l["surname_py"] == r["surname_py"] and jaro_winkler(l["given_py"], r["given_py"]) >= 0.88


def _given_reordered(l: Row, r: Row) -> bool:
    a, b = l["given_key"], r["given_key"]
    if None in (l["surname_py"], r["surname_py"], a, b) or l["surname_py"] != r["surname_py"]:
        return False
    return a[::-1] == b or (abs(len(a) - len(b)) == 1 and (b in a or a in b))


def _one_given_char(l: Row, r: Row) -> bool:
    a, b = l["given_key"], r["given_key"]
    if None in (l["surname_py"], r["surname_py"], a, b) or l["surname_py"] != r["surname_py"]:
        return False
    return a[0] == b[0] or a[-1] == b[-1]


def _id_typo(l: Row, r: Row) -> bool:
    return not (l["id_valid"] and r["id_valid"]) and within_one_edit(l["id_no"], r["id_no"])


COMPARISONS: tuple[Comparison, ...] = (
    Comparison("name", "姓名", ("name_key", "name_py", "surname_py", "given_py", "given_key"), (
        _null("name_key"),
        _exact("name_key", "汉字一致"),
        _exact("name_py", "拼音一致（同音字/繁体）"),
        Level("同姓，名拼音相似", 'surname_py_l = surname_py_r AND jaro_winkler_similarity("given_py_l", "given_py_r") >= 0.88',
              _same_surname_similar_given),
        Level("同姓，名字颠倒或缺一字",
              'surname_py_l = surname_py_r AND (reverse("given_key_l") = "given_key_r" OR '
              '(abs(length("given_key_l") - length("given_key_r")) = 1 AND '
              '(contains("given_key_l", "given_key_r") OR contains("given_key_r", "given_key_l"))))', _given_reordered),
        Level("名相同，姓不同", 'given_py_l = given_py_r', lambda l, r: l["given_py"] is not None and l["given_py"] == r["given_py"]),
        Level("同姓，名有一字相同（错字）",
              'surname_py_l = surname_py_r AND (substr("given_key_l", 1, 1) = substr("given_key_r", 1, 1) OR '
              'right("given_key_l", 1) = right("given_key_r", 1))', _one_given_char),
        _ELSE,
    )),
    Comparison("dob", "出生日期", ("dob",), (
        _null("dob"),
        _exact("dob"),
        Level("一位之差或月日颠倒",
              'levenshtein("dob_l", "dob_r") <= 1 OR (substr("dob_l", 1, 4) = substr("dob_r", 1, 4) AND '
              'substr("dob_l", 5, 2) = substr("dob_r", 7, 2) AND substr("dob_l", 7, 2) = substr("dob_r", 5, 2))', _dob_near),
        Level("同年", 'substr("dob_l", 1, 4) = substr("dob_r", 1, 4)', lambda l, r: l["dob"][:4] == r["dob"][:4]),
        _ELSE,
    )),
    Comparison("sex", "性别", ("sex",), (_null("sex"), _exact("sex"), Level("不一致", "ELSE", lambda l, r: True, fixed_m=0.01))),
    Comparison("id_no", "身份证号码", ("id_no",), (
        _null("id_no"),
        _exact("id_no"),
        # one typo or one adjacent swap; GB 11643's check character catches both, so one side is invalid
        Level("疑似录入错误（一位错或相邻两位颠倒）",
              'NOT ("id_valid_l" AND "id_valid_r") AND damerau_levenshtein("id_no_l", "id_no_r") <= 1', _id_typo),
        Level("两个不同的有效号码", '"id_valid_l" AND "id_valid_r"', lambda l, r: bool(l["id_valid"] and r["id_valid"]),
              fixed_m=1e-30),
        Level("不一致", "ELSE", lambda l, r: True, fixed_m=1e-4),
    )),
    Comparison("phone", "电话号码", ("phone",), (
        _null("phone"), _exact("phone"), _lev("phone", 2, "相差不超过2位（录错/颠倒）"), _ELSE,
    )),
    Comparison("address", "地址", ("address_key",), (
        _null("address_key"), _exact("address_key"),
        _jw("address_key", 0.90, "高度相似"), _jw("address_key", 0.70, "相似"), _ELSE,
    )),
)


def splink_settings() -> Any:
    """Splink settings (untrained) for deduplicating persons."""
    from splink import SettingsCreator

    comparisons = []
    for comp in COMPARISONS:
        levels: list[dict[str, Any]] = []
        for i, level in enumerate(comp.levels):
            if i == 0:
                levels.append({"sql_condition": level.sql, "label_for_charts": level.label, "is_null_level": True})
            elif level.fixed_m is not None:
                levels.append({"sql_condition": level.sql, "label_for_charts": level.label,
                               "m_probability": level.fixed_m, "fix_m_probability": True})
            else:
                levels.append({"sql_condition": level.sql, "label_for_charts": level.label})
        comparisons.append({"output_column_name": comp.name, "comparison_levels": levels,
                            "comparison_description": comp.label})
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="person_id",
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=prediction_blocking_rules(),
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
        additional_columns_to_retain=[],
    )


def prediction_blocking_rules() -> list[Any]:
    """The same keys as features.block_keys, plus the ID number (exact or not)."""
    from splink import block_on

    return [
        block_on("surname_py", "dob"),
        block_on("given_py", "dob"),
        block_on("name_py", "birth_year"),
        block_on("phone"),
        block_on("id_no"),
    ]


@dataclass
class Evidence:
    comparison: str
    label: str
    level: str
    left: Any
    right: Any
    weight: float  # log2 Bayes factor of the level (match weight contribution)

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.comparison, "label": self.label, "level": self.level, "left": self.left,
                "right": self.right, "weight": round(self.weight, 2)}


class Model:
    """A trained model: prior and per-level Bayes factors, read from Splink's JSON."""

    def __init__(self, settings: dict[str, Any], link_threshold: float = LINK_THRESHOLD,
                 review_threshold: float = REVIEW_THRESHOLD):
        self.settings = settings
        self.link_threshold = link_threshold
        self.review_threshold = review_threshold
        prior = settings["probability_two_random_records_match"]
        self.prior_weight = math.log2(prior / (1 - prior))
        stored = {c["output_column_name"]: c["comparison_levels"] for c in settings["comparisons"]}
        self.weights: list[list[float]] = []
        for comp in COMPARISONS:
            levels = stored.get(comp.name)
            if levels is None or len(levels) != len(comp.levels):
                raise ValueError(f"stored model does not match comparison {comp.name}")
            row = []
            for level in levels:
                if level.get("is_null_level"):
                    row.append(0.0)
                    continue
                m, u = level.get("m_probability"), level.get("u_probability")
                row.append(math.log2(m / u) if m and u else 0.0)
            self.weights.append(row)

    @classmethod
    def from_json(cls, text: str, **kw: float) -> Model:
        return cls(json.loads(text), **kw)

    def level_of(self, index: int, left: Row, right: Row) -> int:
        for i, level in enumerate(COMPARISONS[index].levels):
            if level.test(left, right):
                return i
        raise AssertionError("else level always matches")

    def score(self, left: Row, right: Row) -> tuple[float, float]:
        """(match weight, match probability) of a pair of matching rows."""
        total = self.prior_weight
        for i in range(len(COMPARISONS)):
            total += self.weights[i][self.level_of(i, left, right)]
        return total, probability(total)

    def evidence(self, left: Row, right: Row) -> list[Evidence]:
        """Field-by-field evidence for the review screen."""
        out = []
        for i, comp in enumerate(COMPARISONS):
            level = self.level_of(i, left, right)
            col = comp.columns[0]
            out.append(Evidence(comp.name, comp.label, comp.levels[level].label, left.get(col), right.get(col),
                                self.weights[i][level]))
        return out


def probability(weight: float) -> float:
    return 1.0 / (1.0 + 2.0 ** (-weight)) if weight > -60 else 0.0


@cache
def default_model() -> Model:
    return Model.from_json(DEFAULT_MODEL.read_text(encoding="utf-8"))
