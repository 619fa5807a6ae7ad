"""The package dependency rules (docs/architecture.md, "Packages and dependency rules") hold:
import-linter checks the contracts written in pyproject.toml ([tool.importlinter]) against
the real import graph of src/phip, so a new back-arrow or import cycle fails the suite."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(src: Path, config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}  # the tree under test, not an installed phip
    return subprocess.run([str(LINT), "--config", str(config), "--no-cache"], cwd=config.parent, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_import_contracts_are_kept():
    out = _lint(ROOT / "src", ROOT / "pyproject.toml")
    assert out.returncode == 0, out.stdout + out.stderr
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert {c["type"] for c in contracts} == {"layers", "acyclic_siblings"}
    assert f"Contracts: {len(contracts)} kept, 0 broken." in out.stdout


def test_a_back_arrow_breaks_the_contracts(tmp_path: Path):
    """The same check on a copy of the package where the store imports a domain, and a domain
    imports its entry point: both are reported, so the first test can fail."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "phip", src / "phip", ignore=shutil.ignore_patterns("__pycache__", "static"))
    (src / "phip" / "store" / "back_arrow.py").write_text("import phip.empi.reads\n")
    (src / "phip" / "empi" / "back_arrow.py").write_text("import phip.api.empi\n")
    config = tmp_path / "pyproject.toml"
    shutil.copy(ROOT / "pyproject.toml", config)
    out = _lint(src, config)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "phip.store.back_arrow -> phip.empi.reads" in out.stdout
    assert "phip.empi.back_arrow -> phip.api.empi" in out.stdout
    assert "0 kept, 2 broken" in out.stdout  # the cycle empi -> api -> empi breaks the second one


def test_writes_begin_on_the_engine_and_reads_never_commit():
    """The SQLite store begins a write IMMEDIATE only through ``engine.begin()`` (phip.store.db):
    a transaction begun on a connection (``conn.begin()``) or committed as it goes
    (``conn.commit()``) would begin deferred and could fail "database is locked" mid-write."""
    import re

    begin = re.compile(r"\.begin\(\)")
    on_engine = re.compile(r"\bengine\.begin\(\)")
    found = []
    for path in sorted((ROOT / "src" / "phip").rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if ".commit()" in code or len(begin.findall(code)) > len(on_engine.findall(code)):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, found


def test_test_modules_share_helpers_through_support_modules():
    """A test module imports helpers from ``tests/*_support.py``, never from another test
    module: importing one ran its module code and bound its fixtures into the importer, and a
    helper's home moved whenever the test it lived beside did."""
    import ast

    found = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").rpartition(".")[2].startswith("test_"):
                found.append(f"tests/{path.name}:{node.lineno}: from {'.' * node.level}{node.module} import …")
            elif isinstance(node, ast.Import):
                found += [f"tests/{path.name}:{node.lineno}: import {a.name}" for a in node.names
                          if a.name.rpartition(".")[2].startswith("test_")]
    assert not found, found
