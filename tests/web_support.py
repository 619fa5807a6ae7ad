"""An operator's login on a TestClient, and the password and script the page tests use."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

PASSWORD = "correct horse battery"
SCRIPT = '<script>alert("x")</script>'


def login(client: TestClient, password: str = PASSWORD):  # noqa: ANN201
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)[1]
    return client.post("/login", data={"username": "ops", "password": password, "csrf_token": token, "next": "/ops/uploads"},
                       follow_redirects=False)
