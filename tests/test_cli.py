"""The `phip` command as an operator runs it: real processes, a real SQLite file, and a
SIGKILL in the middle of an import."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from openpyxl import Workbook

from phip.standard.catalog import load_standard
from tests.cli_support import ORG, PHIP, run

pytestmark = pytest.mark.slow  # every test here runs phip in its own process


def receipt_numbers(out: str) -> list[int]:
    """total, accepted, updated, unchanged, rejected, warnings from the receipt table."""
    row = next(line for line in out.splitlines() if line.startswith("│") and line.replace("│", "").split()[0].isdigit())
    return [int(x) for x in row.replace("│", " ").split()]


def test_standard_commands(tmp_path):
    out = run(["standard", "list"], tmp_path).stdout
    ext = len(load_standard().datasets) - 72
    assert f"72个数据集，另有扩展数据集{ext}个" in out and "患者基本信息" in out and "临检中心信息" in out
    assert "高血压患者随访服务记录" in out
    out = run(["standard", "show", "outpatient_visit"], tmp_path).stdout
    assert "DE02.01.030.00" in out and "身份证件号码" in out and "业务主键" in out
    bad = run(["standard", "show", "nope"], tmp_path, check=False)
    assert bad.returncode == 2 and "UNKNOWN_DATASET" in bad.stderr
    for fmt in ("jsonschema", "html", "xlsx"):
        run(["standard", "export", "--format", fmt, "--out", str(tmp_path / "out")], tmp_path)
    assert len(list((tmp_path / "out").glob("*.schema.json"))) == len(load_standard().datasets) > 72
    assert (tmp_path / "out" / "phip-standard.html").exists() and (tmp_path / "out" / "phip-standard.xlsx").exists()


def test_orgs_list_groups_by_region(tmp_path):
    import csv

    from phip.orgs.service import SEED

    with SEED.open(encoding="utf-8") as f:
        registered = sum(1 for _ in csv.DictReader(f))  # the notice's 66 and the internet hospitals
    out = run(["orgs", "list"], tmp_path).stdout
    # the notice's 66, the 14 中省直 hospitals and the 4 primary-care centres (not the internet hospitals)
    assert "84家" in out and "*" in out and "长春市" in out and "延边朝鲜族自治州" in out and "222400" in out
    assert ORG in out and "待实现" in out and "完成" not in out.replace("待完成", "")
    assert "示例值" in out  # the demo values are starred and said to be made up


def test_orgs_list_follows_upload_and_analysis(tmp_path):
    """数据上传 turns 实现 with the first accepted record, 数据分析 完成 with a finished quality run."""
    path = tmp_path / "visits.json"
    run(["generate", "--org", ORG, "--dataset", "outpatient_visit", "--visits", "5", "--out", str(path)], tmp_path)
    run(["ingest", str(path), "--org", ORG, "--dataset", "outpatient_visit"], tmp_path)
    row = next(line for line in run(["orgs", "list"], tmp_path).stdout.splitlines() if ORG in line)
    assert "实现" in row.replace("待实现", "") and "待完成" in row
    run(["quality", "run", "--org", ORG], tmp_path)
    row = next(line for line in run(["orgs", "list"], tmp_path).stdout.splitlines() if ORG in line)
    assert "待完成" not in row and "完成" in row


def _records(tmp_path, n_days=1, visits=20, error_rate=0.0):
    path = tmp_path / "visits.json"
    run(["generate", "--org", ORG, "--dataset", "outpatient_visit", "--days", str(n_days), "--visits", str(visits),
         "--error-rate", str(error_rate), "--out", str(path)], tmp_path)
    return json.loads(path.read_text(encoding="utf-8"))


def test_ingest_every_format(tmp_path):
    records = _records(tmp_path, visits=12)
    fields = sorted({k for r in records for k in r})
    files = {}
    files["a.json"] = json.dumps(records[:3], ensure_ascii=False)
    files["b.ndjson"] = "\n".join(json.dumps(r, ensure_ascii=False) for r in records[3:6]) + "\n{broken json\n"
    (tmp_path / "c.csv").write_bytes(b"")
    with open(tmp_path / "c.csv", "w", newline="", encoding="gb18030") as f:  # GBK, as Excel writes it
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(records[6:9])
    wb = Workbook()
    ws = wb.active
    from phip.standard.catalog import load_standard

    labels = {fl.name: fl.label for fl in load_standard().dataset("outpatient_visit").fields}
    ws.append([labels[f] for f in fields])  # Chinese labels as headers
    for r in records[9:12]:
        ws.append([r.get(f) for f in fields])
    wb.save(tmp_path / "d.xlsx")
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    expected = {"a.json": (3, 0), "b.ndjson": (3, 1), "c.csv": (3, 0), "d.xlsx": (3, 0)}
    for name, (accepted, rejected) in expected.items():
        out = run(["ingest", str(tmp_path / name), "--org", ORG, "--dataset", "3"], tmp_path).stdout
        numbers = receipt_numbers(out)
        assert numbers[1] == accepted and numbers[4] == rejected, (name, out)
    # replay of the CSV: all unchanged
    out = run(["ingest", str(tmp_path / "c.csv"), "--org", ORG, "--dataset", "outpatient_visit"], tmp_path).stdout
    assert receipt_numbers(out)[:4] == [3, 0, 0, 3] and "没有记录" not in out
    # a file of no records (a header alone, an empty NDJSON) is no error, but it is said
    (tmp_path / "header.csv").write_bytes((tmp_path / "c.csv").read_bytes().splitlines()[0] + b"\n")
    (tmp_path / "empty.ndjson").write_text("", encoding="utf-8")
    for name in ("header.csv", "empty.ndjson"):
        out = run(["ingest", str(tmp_path / name), "--org", ORG, "--dataset", "3"], tmp_path).stdout
        assert f"注意：{name} 中没有记录" in "".join(out.split("\n")), out


def test_ingest_reports_rejections_and_bad_input(tmp_path):
    records = _records(tmp_path, visits=40, error_rate=0.3)
    for record in records[:3]:  # no event time: rejected (the other planted errors are warnings)
        record["visit_time"] = "昨天上午"
    path = tmp_path / "bad.ndjson"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records), encoding="utf-8")
    out = run(["ingest", str(path), "--org", "长春中医药大学附院", "--dataset", "outpatient_visit", "--show", "2"],
              tmp_path).stdout
    rejected = receipt_numbers(out)[4]
    assert rejected > 2 and "前 2 条拒收记录" in out and out.count("第") >= 2
    assert f"全部 {rejected} 条拒收记录及原因已随批次保存" in out
    nope = run(["ingest", str(path), "--org", "不存在的医院", "--dataset", "3"], tmp_path, check=False)
    assert nope.returncode == 2 and "UNKNOWN_ORG" in nope.stderr
    (tmp_path / "x.txt").write_text("hello")
    bad = run(["ingest", str(tmp_path / "x.txt"), "--org", ORG, "--dataset", "3"], tmp_path, check=False)
    assert bad.returncode == 2 and "BAD_FORMAT" in bad.stderr
    (tmp_path / "y.json").write_text("{not json")
    bad = run(["ingest", str(tmp_path / "y.json"), "--org", ORG, "--dataset", "3"], tmp_path, check=False)
    assert bad.returncode == 2 and "BAD_JSON" in bad.stderr
    from .workbook_support import hostile_workbooks

    books = hostile_workbooks(tmp_path, ["visit_no", "patient_id"], [["V1", "P1"], ["V2", "P2"], ["V3", "P3"]])
    bad = run(["ingest", str(books["laughs"]), "--org", ORG, "--dataset", "3"], tmp_path, check=False)
    assert bad.returncode == 2 and "BAD_XLSX" in bad.stderr and "Traceback" not in bad.stderr + bad.stdout


def _store(data_dir: Path):
    with sqlite3.connect(data_dir / "phip.db") as conn:
        rows = conn.execute("SELECT record_key, content_hash, version FROM records ORDER BY record_key").fetchall()
        days = conn.execute("SELECT day, records FROM event_daily ORDER BY day").fetchall()
    return rows, days


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["ndjson", "csv", "json"])
def test_sigkill_mid_import_then_resume_loses_and_duplicates_nothing(tmp_path, fmt):
    """Each format streams its own way (lines, GBK CSV rows, a JSON array's items): a kill
    mid-import keeps whole batches only, and the re-run stores exactly the rest."""
    source = tmp_path / "src"
    records = _records(source, n_days=3, visits=1000)  # 3,000: the kill lands after 600, with 12 batches to go
    path = tmp_path / f"big.{fmt}"
    if fmt == "ndjson":
        path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records), encoding="utf-8")
    elif fmt == "json":
        path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    else:
        with open(path, "w", newline="", encoding="gb18030") as f:
            w = csv.DictWriter(f, fieldnames=sorted({k for r in records for k in r}), restval="")
            w.writeheader()
            w.writerows(records)
    clean_dir, killed_dir = tmp_path / "clean", tmp_path / "killed"
    run(["ingest", str(path), "--org", ORG, "--dataset", "3", "--batch-size", "200"], clean_dir)
    run(["db", "upgrade"], killed_dir)
    env = {**os.environ, "PHIP_DATA_DIR": str(killed_dir)}
    proc = subprocess.Popen([*PHIP, "ingest", str(path), "--org", ORG, "--dataset", "3", "--batch-size", "200"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    stored = 0
    while time.time() < deadline:
        try:
            with sqlite3.connect(killed_dir / "phip.db", timeout=1) as conn:
                stored = conn.execute("SELECT count(*) FROM records").fetchone()[0]
        except sqlite3.OperationalError:
            stored = 0
        if stored >= 600:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial, _ = _store(killed_dir)
    assert 0 < len(partial) < len(records), "the kill must land mid-import"
    assert len(partial) % 200 == 0, "only whole batches may be stored"
    out = run(["ingest", str(path), "--org", ORG, "--dataset", "3", "--batch-size", "200"], killed_dir).stdout
    assert receipt_numbers(out)[3] == len(partial)  # what was committed before the kill is unchanged
    assert _store(killed_dir) == _store(clean_dir)
    assert len(_store(killed_dir)[0]) == len(records)


def _kill_when_stored(proc: subprocess.Popen, db: Path, at_least: int) -> None:
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            with sqlite3.connect(db, timeout=1) as conn:
                if conn.execute("SELECT count(*) FROM records").fetchone()[0] >= at_least:
                    break
        except sqlite3.OperationalError:
            pass
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_sigkill_mid_document_import_then_resume_loses_and_duplicates_nothing(tmp_path):
    """phip documents import of 2,500 visit documents (C0002, a batch per 1,000 records),
    killed once a batch is stored: whole batches only, and the rerun of the same files stores
    exactly the rest, the store equal to one clean run's."""
    from phip.documents import load_templates, render
    from phip.orgs.service import seed_institutions
    from phip.runtime import build_pipeline
    from phip.store.db import make_engine, upgrade

    from .documents_support import generate, stored_documents

    template = load_templates().by_code["C0002"]
    scratch = make_engine(f"sqlite:///{tmp_path / 'scratch.db'}")  # the records the documents are rendered from
    upgrade(scratch)
    seed_institutions(scratch)
    pipeline = build_pipeline(scratch)
    for org, recs in generate(template, [(ORG, "长春中医药大学附院")], visits=2500, admissions=0):
        assert pipeline.ingest(org, template.dataset.code, recs).rejected == 0
    documents = tmp_path / "cda"
    documents.mkdir()
    files = []
    for n, rows in enumerate(stored_documents(scratch, template).values()):
        files.append(documents / f"{n:05}.xml")
        files[-1].write_bytes(render(template, rows))
    scratch.dispose()
    assert len(files) == 2500
    args = ["documents", "import", "--org", ORG, *map(str, files)]
    clean_dir, killed_dir = tmp_path / "clean", tmp_path / "killed"
    run(args, clean_dir)
    run(["db", "upgrade"], killed_dir)
    proc = subprocess.Popen([*PHIP, *args], env={**os.environ, "PHIP_DATA_DIR": str(killed_dir)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_when_stored(proc, killed_dir / "phip.db", 1000)
    partial, _ = _store(killed_dir)
    assert 0 < len(partial) < len(files), "the kill must land mid-import"
    assert len(partial) % 1000 == 0, "only whole batches may be stored"
    out = run(args, killed_dir).stdout
    assert "文档 2500 份，拒收 0 份；记录接收 2500 条" in out
    assert _store(killed_dir) == _store(clean_dir) and len(_store(killed_dir)[0]) == len(files)


def test_api_keys_are_shown_once_and_revocable(tmp_path):
    out = run(["orgs", "key", "create", "长春市中心医院", "--label", "HIS接口"], tmp_path).stdout
    key = out.strip().splitlines()[-1]
    assert key.startswith("phip_") and len(key) > 40
    listed = run(["orgs", "key", "list"], tmp_path).stdout
    assert key[:12] in listed and key not in listed and "有效" in listed
    run(["orgs", "key", "revoke", key[:12]], tmp_path)
    assert "已吊销" in run(["orgs", "key", "list"], tmp_path).stdout
    again = run(["orgs", "key", "revoke", key[:12]], tmp_path, check=False)
    assert again.returncode == 2 and "UNKNOWN_KEY" in again.stderr


USAGE_CASES = [  # (arguments, code, what the Chinese message must say)
    (["demo", "--days", "99999999"], "CLI_BAD_VALUE", "--days 的值无效：“99999999”应不大于 3650"),  # was a traceback
    (["generate", "--org", ORG, "--dataset", "3", "--visits", "-3"], "CLI_BAD_VALUE", "--visits 的值无效：“-3”应不小于 1"),
    (["ingest", "{dir}/nope.json", "--org", ORG, "--dataset", "3"], "CLI_BAD_VALUE", "FILE 的值无效：文件“{dir}/nope.json”不存在"),
    (["ingest", "{dir}", "--org", ORG, "--dataset", "3"], "CLI_BAD_VALUE", "FILE 的值无效：“{dir}”是目录，应为文件"),
    (["ingest", "{dir}/a.csv", "--dataset", "3"], "CLI_MISSING", "缺少必填选项 --org"),
    (["ingest", "--org", ORG, "--dataset", "3"], "CLI_MISSING", "缺少必填参数 FILE"),
    (["ingest", "{dir}/a.csv", "--org", ORG, "--dataset", "3", "--batch-size", "0"], "CLI_BAD_VALUE", "--batch-size 的值无效：“0”应不小于 1"),
    (["ingest", "{dir}/a.csv", "--org", ORG, "--dataset", "3", "--batch-size", "1e9"], "CLI_BAD_VALUE", "--batch-size 的值无效：“1e9”应为整数"),
    (["ingest", "{dir}/a.csv", "--org", ORG, "--datset", "3"], "CLI_NO_SUCH_OPTION", "没有选项 --datset（是否想用：--batch-size, --dataset）"),
    (["ingest", "{dir}/a.csv", "{dir}/b.csv", "--org", ORG, "--dataset", "3"], "CLI_USAGE", "多余的参数：{dir}/b.csv"),
    (["ingest", "{dir}/a.csv", "--dataset", "3", "--org"], "CLI_USAGE", "选项 --org 后面需要给出值"),
    (["nosuch"], "CLI_USAGE", "没有命令“nosuch”"),
]


@pytest.mark.parametrize(("args", "code", "said"), USAGE_CASES, ids=[c[1] + ":" + " ".join(c[0][:2]) for c in USAGE_CASES])
def test_usage_errors_are_said_in_chinese_and_write_nothing(tmp_path, monkeypatch, capsys, args, code, said):
    """What Typer rejects before PHIP runs gets the same treatment as PHIP's own errors: a
    stable code, a Chinese message naming the parameter, exit code 2, and no store created."""
    from phip.cli import main

    monkeypatch.setenv("PHIP_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("PHIP_DATABASE_URL", raising=False)
    (tmp_path / "a.csv").write_text("x\n1\n")
    with pytest.raises(SystemExit) as exit_:
        main([a.format(dir=tmp_path) for a in args])
    stderr = "".join(capsys.readouterr().err.split("\n"))  # Rich wraps at 80 columns
    assert exit_.value.code == 2
    assert f"错误 [{code}] {said.format(dir=tmp_path)}" in stderr, stderr
    assert "查看用法" in stderr and "Error" not in stderr
    assert not (tmp_path / "phip.db").exists()


def test_the_installed_command_is_the_one_that_says_it_in_chinese(tmp_path):
    """`phip` (the console script) and `python -m phip.cli` both go through phip.cli.main;
    a command group given alone shows its help, as Typer does."""
    script = Path(sys.executable).with_name("phip")
    command = [str(script)] if script.exists() else PHIP
    env = {**os.environ, "PHIP_DATA_DIR": str(tmp_path), "COLUMNS": "200"}
    out = subprocess.run([*command, "ingest", str(tmp_path / "nope.csv"), "--org", ORG, "--dataset", "3"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "[CLI_BAD_VALUE]" in out.stderr and "不存在" in out.stderr
    group = subprocess.run([*command, "standard"], env=env, capture_output=True, text=True, timeout=120)
    assert group.returncode == 2 and "export" in group.stdout and "list" in group.stdout


def test_accounts_of_every_role(tmp_path):
    pw = "correct horse battery\n"
    run(["accounts", "create", "dr_li", "--role", "clinician", "--org", ORG, "--dept", "内科", "--password-stdin"],
        tmp_path, input=pw)
    run(["accounts", "create", "aud", "--role", "auditor", "--password-stdin"], tmp_path, input=pw)
    no_org = run(["accounts", "create", "dr_x", "--role", "clinician", "--password-stdin"], tmp_path, check=False, input=pw)
    assert no_org.returncode == 2 and "ORG_REQUIRED" in no_org.stderr
    bad_org = run(["accounts", "create", "dr_y", "--role", "clinician", "--org", "X1", "--password-stdin"], tmp_path,
                  check=False, input=pw)
    assert bad_org.returncode == 2 and "UNKNOWN_ORG" in bad_org.stderr
    nobody = run(["accounts", "create", "r1", "--role", "resident", "--id-no", "220102196203140422", "--password-stdin"],
                 tmp_path, check=False, input=pw)
    assert nobody.returncode == 2 and "RESIDENT_NOT_FOUND" in nobody.stderr
    with sqlite3.connect(tmp_path / "phip.db") as db:
        assert db.execute("SELECT role, org_code, department FROM users WHERE username = 'dr_li'").fetchone() == \
            ("clinician", ORG, "内科")
        assert db.execute("SELECT count(*) FROM audit_events WHERE action = 'account.create'").fetchone() == (2,)


def test_demo_run_has_every_role_and_says_no_identifier_in_full(tmp_path):
    """The demo's accounts exist, and neither its output nor the audit trail's display fields
    carry a full ID number or phone of the demo residents."""
    from phip.demo import DEMO_RESIDENTS
    from phip.standard.checks import id_check_char

    proc = run(["demo", "--days", "1", "--visits", "2"], tmp_path)
    ids = [f"220102{born:%Y%m%d}{seq}" for _, _, born, seq, _ in DEMO_RESIDENTS]
    secrets = [i + id_check_char(i) for i in ids] + [phone for *_, phone in DEMO_RESIDENTS]
    with sqlite3.connect(tmp_path / "phip.db") as db:
        roles = {r for (r,) in db.execute("SELECT role FROM users")}
        shown = " ".join(str(v) for row in db.execute(
            "SELECT username, role, org_code, department, address, action, person_id, target, detail FROM audit_events")
            for v in row)
        flagged = db.execute("SELECT count(*) FROM audit_events WHERE flagged").fetchone()[0]
    assert roles >= {"operator", "clinician", "resident", "auditor", "regional"} and flagged >= 2
    for secret in secrets:
        assert secret not in proc.stdout + proc.stderr and secret not in shown


REFUSED_CASES = [  # (arguments, code, what the Chinese message must say): each was a traceback or a silent rc 0
    (["orgs", "export", "--out", "{dir}"], "IS_A_DIRECTORY", "“{dir}”是目录，应为文件"),
    (["supervision", "report", "--out", "{dir}"], "IS_A_DIRECTORY", "是目录"),
    (["documents", "validate", "{dir}/nope.xml"], "FILE_NOT_FOUND", "“{dir}/nope.xml”不存在"),
    (["empi", "reviews", "--limit", "99999999999999999999999"], "CLI_BAD_VALUE", "--limit"),
    (["audit", "list", "--limit", "-1"], "CLI_BAD_VALUE", "--limit"),
    (["empi", "undo", "99999999999999999999999", "--operator", "ops"], "CLI_BAD_VALUE", "EVENT_ID"),
    (["empi", "train", "--max-pairs", "-1"], "CLI_BAD_VALUE", "--max-pairs"),
    (["empi", "reviews", "--status", "bogus"], "BAD_STATUS", "审核状态“bogus”无效"),
    (["serve", "--port", "99999999999999999999999"], "CLI_BAD_VALUE", "--port"),
    (["serve", "--host", "bogus\u202e"], "BAD_HOST", "监听地址"),
    (["simulate", "push", "--org", ORG, "--url", "http://127.0.0.1:9", "--key", "k"], "PLATFORM_UNREACHABLE", "无法连接平台"),
    (["simulate", "push", "--org", ORG, "--url", "", "--key", "k"], "BAD_URL", "平台地址"),
    (["simulate", "push", "--org", ORG, "--key", "\U0001f600"], "BAD_KEY", "接口密钥"),
    (["federation", "queue-history", "--dataset", ""], "UNKNOWN_DATASET", "数据集“”不存在"),
    (["orgs", "close", "大学附院"], "NAME_NOT_WHOLE", "完整名称"),
    (["supervision", "run", "--org", "NOPE"], "UNKNOWN_ORG", "“NOPE”未登记"),
    (["reports", "upload", "--period", "2026-11", "--region", "bogus"], "UNKNOWN_REGION", "地区“bogus”"),
    (["collect", "status", "nosuch"], "UNKNOWN_SOURCE", "没有数据源“nosuch”"),
]


def test_refusals_after_typer_are_said_not_raised(tmp_path):
    """Values Typer accepts but PHIP cannot use (a directory for a file, a number past the
    database's integers, an unreachable platform, a name given in part to a command that
    changes an institution) end with a code, a Chinese message and exit 2, never a traceback
    or a silent success; the store is left as it was (found by exploratory testing)."""
    from sqlalchemy import select

    from phip.store.db import make_engine
    from phip.store.models import Institution

    run(["orgs", "list"], tmp_path)  # the store, with the register
    for args, code, said in REFUSED_CASES:
        out = run([a.format(dir=tmp_path) for a in args], tmp_path, check=False)
        stderr = "".join(out.stderr.split("\n"))
        assert out.returncode == 2 and f"[{code}]" in stderr and said.format(dir=tmp_path) in stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr, (args, out.stderr)
    engine = make_engine(f"sqlite:///{tmp_path / 'phip.db'}")
    with engine.connect() as conn:
        assert conn.execute(select(Institution.status).where(Institution.code == ORG)).scalar_one() == "active"
    engine.dispose()
