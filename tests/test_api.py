"""The HTTP surface shipped with the foundation: health, the standard, the home page."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from phip.standard.catalog import load_standard


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
    assert len(index["datasets"]) == len(load_standard().datasets) > 72  # the notice's 72 and the extensions
    schema = client.get("/api/v1/standard/outpatient_visit/schema")
    assert schema.status_code == 200 and schema.json()["properties"]["sex_code"]["title"] == "性别代码"
    missing = client.get("/api/v1/standard/nope/schema")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "UNKNOWN_DATASET"
    home = client.get("/")  # no figures of the platform without a login (issue 19)
    assert home.status_code == 200 and "运维看板登录" in home.text and "梅河口市中心医院" not in home.text
    assert all(f'href="{p}' in home.text for p in ("/me/login", "/login?next=/share/", "/login?next=/audit/",
                                                   "/fhir/R4/metadata"))
    from phip import runtime
    from phip.accounts import create_user
    from tests.web_support import PASSWORD, login

    create_user(runtime.engine(), "ops", PASSWORD)
    login(client)
    home = client.get("/")
    assert home.status_code == 200 and "医疗机构对接进度" in home.text and "梅河口市中心医院" in home.text
    assert "数据集目录" in client.get("/standard").text
