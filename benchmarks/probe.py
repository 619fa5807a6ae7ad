"""How much of the mapping does ``phip collect probe`` get right?

Builds four HIS schemas in MariaDB — the project's own synthetic HIS (``his_synth``, pinyin
initials + Chinese comments) and the three styles of ``phip.synth.his_styles`` (东软/卫宁-like
pinyin, cryptic F001 names with comments only, English names like the teaching HIS) — runs the
probe on each, and compares its proposal with the mapping a person writes (the truth), over the
standard's REQUIRED fields of patient_info, outpatient_registration, outpatient_visit and
western_prescription. A coded field counts only with the right code table. It also loads each
draft and dry-runs it (a few rows through the mapper and the validator).

    python benchmarks/probe.py [--server mysql+pymysql://root@127.0.0.1:3306] [--suffix _x]
"""

from __future__ import annotations

import argparse
import os
import time

from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine

from phip.synth import his_styles, his_synth
from phip.collect.mapping import load_mapping
from phip.collect.probe import dry_run, inspect_source, propose, skeleton


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=os.environ.get("PHIP_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306"))
    parser.add_argument("--suffix", default=os.environ.get("PHIP_TEST_DB_SUFFIX", ""))
    parser.add_argument("--verbose", "-v", action="store_true", help="list every wrong field")
    args = parser.parse_args()
    console = Console(width=200)
    table = Table(title="phip collect probe：必填字段映射正确率（MariaDB）")
    for col in ("schema", "风格", *his_styles.MEASURED, "合计", "草稿可加载", "试运行问题行", "探查耗时"):
        table.add_column(col)
    grand = [0, 0]
    for style in ("synth", *his_styles.STYLES):
        url = f"{args.server}/phip_probe_{style}{args.suffix}?charset=utf8mb4"
        if style == "synth":
            his_synth.build(url, seed=5, days=2, visits=60, admissions=2)
            truth = his_styles.synth_truth()
        else:
            truth = his_styles.build(url, style).truth
        engine = create_engine(url)
        try:
            started = time.perf_counter()
            proposals = propose(inspect_source(engine))
            took = time.perf_counter() - started
            draft = skeleton(style, his_synth.DEMO_ORG[0], url, proposals, engine.dialect.name)
            try:
                load_mapping(draft)
                loads = "是"
                trials = dry_run(engine, draft)
                bad = sum(int(t.split("行有问题")[0].rsplit("，", 1)[-1]) for t in trials.values() if "行有问题" in t)
                trial = f"{bad}（{len(trials)}个数据集）"
            except Exception as exc:  # noqa: BLE001 - a draft that does not load is a result
                loads, trial = f"否：{exc}"[:60], ""
        finally:
            engine.dispose()
        result = his_styles.evaluate(truth, proposals)
        good = sum(r[0] for r in result.values())
        total = sum(r[1] for r in result.values())
        grand[0] += good
        grand[1] += total
        table.add_row(style, STYLE_LABELS[style],
                      *[f"{result[d][0]}/{result[d][1]}" for d in his_styles.MEASURED],
                      f"{good}/{total} = {good / total:.1%}", loads, trial, f"{took:.1f} s")
        if args.verbose:
            for d in his_styles.MEASURED:
                for w in result[d][2]:
                    console.print(f"  {style} {d}: {w}", highlight=False)
    table.add_row("合计", "", *[""] * len(his_styles.MEASURED), f"{grand[0]}/{grand[1]} = {grand[0] / grand[1]:.1%}", "", "", "")
    console.print(table)


STYLE_LABELS = {"synth": "拼音首字母+中文列注释（项目自带）", "pinyin": "东软/卫宁式拼音首字母+列注释",
                "cryptic": "F001式列名，仅中文注释，外键", "english": "英文列名，仅表注释（教学HIS式）",
                "camel": "驼峰英文列名（留出集：同义词定稿后才写）"}

if __name__ == "__main__":
    main()
