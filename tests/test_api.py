"""The HTTP surface shipped with the foundation: health, the standard, the home page."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


@pytest.fixture()
def client(tmp_path, monkeypatch):
    monkeypatch.setenv("PHIP_DATA_DIR", str(tmp_path))
    from phip import runtime

    runtime.engine.cache_clear()
    runtime.pipeline.cache_clear()
    from phip.api.app import create_app

    with TestClient(create_app()) as c:
        yield c
    runtime.engine.cache_clear()
    runtime.pipeline.cache_clear()


def test_health_standard_and_home(client):
    assert client.get("/healthz").text == "ok"
    index = client.get("/api/v1/standard").json()
    assert len(index["datasets"]) >= 72  # the 72 of the docking notice and the extensions
    schema = client.get("/api/v1/standard/outpatient_visit/schema")
    assert schema.status_code == 200 and schema.json()["properties"]["sex_code"]["title"] == "性别代码"
    missing = client.get("/api/v1/standard/nope/schema")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "UNKNOWN_DATASET"
    home = client.get("/")
    assert home.status_code == 200 and "医疗机构对接进度" in home.text and "梅河口市中心医院" in home.text
    assert "数据集目录" in client.get("/standard").text
