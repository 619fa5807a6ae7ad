"""Mapping files speak Chinese: the YAML path and what is expected; inline code tables with integer
keys; a coded column mapped without a code table never passes silently — a warning in the
probe's draft, a finding at collection."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from phip.synth import his_synth
from phip.collect.mapping import MappingError, load_mapping
from phip.collect.probe import inspect_source, propose, propose_codes, skeleton
from phip.collect.runner import Collector
from phip.runtime import build_pipeline
from phip.collect.source import open_source
from phip.standard.catalog import load_standard
from phip.store import models as m
from tests.collect_support import EXAMPLE, demo_mapping, source_url, stored


@pytest.mark.parametrize(("edit", "path", "expected"), [
    (("datasets:\n", "datasets:\n\ndropped:\n"), "datasets", "应为列表"),
    (("      name: BRXM\n", "      name: 3\n"), "datasets[1]（patient_info）.fields.name", "应为列名（文本）或对象"),
    (("  schedule: 15m", "  schedul: 15m"), "source.schedul", "不认识此项"),
    (("  batch_size: 5000", "  batch_size: 0"), "source.batch_size", "应不小于 1"),
    (("cursor: {column: XGSJ, kind: time, overlap: 10m}", "cursor: {column: XGSJ, kind: clock}"),
     "datasets[1]（patient_info）.cursor.kind", "应为以下之一"),
    (("      sex_code: {column: XB, codes: sex_cn}", "      sex_code: {column: XB, codes: [男, 女]}"),
     "datasets[1]（patient_info）.fields.sex_code.codes", "应为"),
])
def test_mapping_errors_name_the_yaml_path_in_chinese(edit, path, expected):
    text = EXAMPLE.read_text(encoding="utf-8")
    assert edit[0] in text
    text = text.replace(*edit, 1)
    if edit[1].startswith("datasets:\n\ndropped"):  # every job removed: an empty list
        text = text[: text.index("datasets:")] + "datasets:\n"
    with pytest.raises(MappingError) as exc:
        load_mapping(text)
    assert exc.value.code == "MAPPING_INVALID"
    assert path in exc.value.message and expected in exc.value.message, exc.value.message
    assert "Input should" not in exc.value.message and "Value error" not in exc.value.message


def test_inline_code_tables_take_integer_and_text_keys(tmp_path, engine):
    url = source_url("sqlite", "intkeys", tmp_path)
    data = his_synth.build(url, seed=2, days=1, visits=6, admissions=1)
    demo_mapping(url, tmp_path)  # points HIS_DEMO_URL at the source
    text = EXAMPLE.read_text(encoding="utf-8")
    # the visit's sex column holds 1/2: an integer-keyed table swapping them proves it is applied
    old = "      sex_code: XB\n      birth_date: CSRQ"
    assert old in text
    text = text.replace(old, "      sex_code: {column: XB, codes: {1: \"2\", 2: 1}}\n      birth_date: CSRQ", 1)
    mapping = load_mapping(text)
    assert mapping.job("outpatient_visit").fields["sex_code"].codes == {"1": "2", "2": "1"}
    (result,) = Collector(engine, build_pipeline(engine)).run(mapping, ["outpatient_visit"])
    assert result.status == "ok" and result.accepted == len(data.truth["outpatient_visit"])
    swapped = {"1": "2", "2": "1"}
    got = stored(engine, "outpatient_visit")
    assert {k: v["sex_code"] for k, v in got.items()} == {
        k: swapped[v["sex_code"]] for k, v in data.truth["outpatient_visit"].items()}


def test_coded_column_without_code_table_is_a_finding_not_silence(tmp_path, engine):
    url = source_url("sqlite", "nocodes", tmp_path)
    data = his_synth.build(url, seed=4, days=1, visits=8, admissions=1)
    demo_mapping(url, tmp_path)  # points HIS_DEMO_URL at the source
    text = EXAMPLE.read_text(encoding="utf-8")
    assert "sex_code: {column: XB, codes: sex_cn}" in text
    text = text.replace("sex_code: {column: XB, codes: sex_cn}", "sex_code: XB", 1)
    (path := tmp_path / "nocodes.yaml").write_text(text, encoding="utf-8")
    mapping = load_mapping(path)  # loading cannot know the values: it passes
    (result,) = Collector(engine, build_pipeline(engine)).run(mapping, ["patient_info"])
    assert result.status == "ok"
    patients = {r["BRID"] for r in data.rows["BR_JBXX"]}
    with engine.connect() as conn:
        rows = conn.execute(select(m.BatchFinding.record_key, m.BatchFinding.findings).where(
            m.BatchFinding.dataset == "patient_info")).all()
    flagged = {key for key, findings in rows if any(f["code"] == "NOT_IN_DOMAIN" and f["field"] == "sex_code"
                                                    for f in findings)}
    assert flagged == patients  # 男/女 reach validation as they are: every patient carries the finding
    for payload in stored(engine, "patient_info").values():
        assert payload.get("sex_code") not in ("男", "女")  # never stored as if it were a standard code


def test_probe_proposes_code_tables_and_warns_on_what_it_cannot_read():
    std = load_standard()
    ds = std.dataset("patient_info")
    sex = ds.field("sex_code")
    codes, notes, _ = propose_codes(sex, ["0", "1"], std)
    assert codes == {"1": "1", "0": "2"} and notes[0].startswith("猜测") and "未知的性别" in notes[0]
    codes, notes, _ = propose_codes(sex, ["男", "女"], std)
    assert codes == {"男": "1", "女": "2"}
    codes, notes, _ = propose_codes(sex, ["1", "2"], std)
    assert codes is None and notes == []
    codes, notes, _ = propose_codes(sex, ["A", "B"], std)
    assert codes is None and any(n.startswith("TODO") and "A、B" in n and "NOT_IN_DOMAIN" in n for n in notes)
    freq = std.dataset("western_prescription").field("frequency_code")
    codes, _, _ = propose_codes(freq, ["QD", "bid", "一日三次", "必要时"], std)
    assert codes == {"QD": "01", "bid": "02", "一日三次": "03", "必要时": "13"}
    route = std.dataset("western_prescription").field("route_code")
    codes, _, _ = propose_codes(route, ["口服", "静滴", "肌内注射"], std)
    assert codes == {"静滴": "404"}  # 口服 and 肌内注射 are the domain's own names: validation reads them


def test_draft_with_a_data_set_missing_required_fields_still_loads(tmp_path):
    url = source_url("sqlite", "incomplete", tmp_path)
    his_synth.build(url, seed=1, days=1, visits=4, admissions=1)
    engine = open_source(demo_mapping(url, tmp_path))
    try:
        tables = inspect_source(engine)
    finally:
        engine.dispose()
    header = next(t for t in tables if t.name == "MZ_CFXX")
    header.columns = [c for c in header.columns if c.name != "KFSJ"]  # no prescription time anywhere
    proposals = {p.dataset.code: p for p in propose(tables)}
    rx = proposals["western_prescription"]
    assert not rx.complete and [f.name for f in rx.missing_required] == ["prescription_time"]
    draft = skeleton("incomplete", his_synth.DEMO_ORG[0], url, list(proposals.values()), "sqlite")
    assert "# TODO 必填 prescription_time" in draft and "  # - dataset: western_prescription" in draft
    mapping = load_mapping(draft)
    assert "western_prescription" not in {j.dataset for j in mapping.datasets}
    assert "patient_info" in {j.dataset for j in mapping.datasets}
