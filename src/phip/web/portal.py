"""The sharing pages in the web app: the clinician's (/share/), the resident's (/me/) and the
auditor's (/audit/). Each router checks its role on every route (``pages.signed_in``)."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import Engine

from . import audit_pages, me_pages, share_pages

PREFIXES = (share_pages.PREFIX, me_pages.PREFIX, audit_pages.PREFIX)
#: each area's title, for its error pages' header (a resident's error is not the 运维看板's)
TITLES = {m.PREFIX: m.AREA["area_title"] for m in (share_pages, me_pages, audit_pages)}


def install(app: FastAPI, engine: Engine) -> tuple[str, ...]:
    """Add the three areas' routes; returns their path prefixes (their errors are pages)."""
    for module in (share_pages, me_pages, audit_pages):
        app.include_router(module.build_router(engine))
    return PREFIXES
