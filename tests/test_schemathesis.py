"""Property-based API testing from the OpenAPI schema: no generated request may cause a server error."""

from __future__ import annotations

import os

import pytest
import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from phip.accounts import create_user
from phip.accounts.sessions import login
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
    # a clinician of the key's institution: the share, document and FHIR reads answer past
    # authentication (their parameters are parsed) instead of refusing every request
    create_user(engine, "doc_fuzz", "correct horse battery", "clinician", "张医生", org_code="12220104412001376B",
                department="内科")
    # and an operator's session (cookie and CSRF token): the EMPI operator API answers past login
    create_user(engine, "ops_fuzz", "correct horse battery", "operator", "值班员")
    _state["session"], info = login(engine, "ops_fuzz", "correct horse battery")
    _state["csrf"] = info.csrf_token
    from phip.api.limits import RateLimiter

    return create_app(engine, limiter=RateLimiter(per_minute=0))


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())
#: one test per operation, named by it: schema.parametrize() gives all of them one node id,
#: and pytest -n (make test) schedules and reports by node id, so it ran only one of them.
#: Valid and invalid requests both, as schemathesis' default generation modes are.
#: examples per operation; PHIP_SCHEMATHESIS_EXAMPLES=500 for a deeper hunt than the suite's
EXAMPLES = int(os.environ.get("PHIP_SCHEMATHESIS_EXAMPLES", "40"))
OPERATIONS = {op.label: op for op in (r.ok() for r in schema.get_all_operations())}


@pytest.mark.parametrize("label", list(OPERATIONS))
def test_no_server_error(label):
    operation = OPERATIONS[label]

    @given(case=st.one_of(*(operation.as_strategy(generation_mode=mode) for mode in GenerationMode)))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    def no_server_error(case):  # noqa: ANN001
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {_state['key']}", "X-Clinician-Id": "doc_fuzz",
                        "X-CSRF-Token": _state["csrf"]}
        case.cookies = {**(case.cookies or {}), "phip_session": _state["session"]}
        case.call_and_validate(checks=[not_a_server_error])

    no_server_error()


def test_schema_lists_the_push_endpoint():
    assert "/api/v1/datasets/{dataset}/records" in schema.raw_schema["paths"]
    pytest.importorskip("schemathesis")
