"""Property-based API testing from the OpenAPI schema: no generated request may cause a server error."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from phip.api.app import create_app
from phip.orgs.keys import create_key
from phip.orgs.service import seed_institutions
from phip.store.db import make_engine, upgrade

_state: dict = {}


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx, value):  # noqa: ANN001 - schemathesis' serializer protocol
    """Generated NDJSON bodies are strings (or anything else the generator invents): send as text."""
    return value.encode() if isinstance(value, str) else str(value).encode()


def _app():
    import tempfile

    engine = make_engine(f"sqlite:///{tempfile.mkdtemp()}/schemathesis.db")
    upgrade(engine)
    seed_institutions(engine)
    _state["key"] = create_key(engine, "12220104412001376B")[1]
    from phip.api.limits import RateLimiter

    return create_app(engine, limiter=RateLimiter(per_minute=0))


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error(case):
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {_state['key']}"}
    case.call_and_validate(checks=[not_a_server_error])


def test_schema_lists_the_push_endpoint():
    assert "/api/v1/datasets/{dataset}/records" in schema.raw_schema["paths"]
    pytest.importorskip("schemathesis")
