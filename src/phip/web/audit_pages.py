"""The auditor's pages (审计, ``/audit/``): break-the-glass reads and other flagged events to
review (合规 / 违规 with a note), and a search of the trail by patient, user and institution.

The queries and the review are phip.audit's; a patient is searched by ID number (a POST,
resolved through the EMPI) or by the EMPI person id. Displayed values are the trail's own,
which masks identifiers when it writes them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Engine, select

from phip import accounts, audit
from phip.accounts.residents import person_of_id_no
from phip.store.models import Institution

from .me_pages import ACTIONS
from .pages import RowId, check_csrf, client, page, signed_in

PREFIX = "/audit"
NAV = [(f"{PREFIX}/", "待审核的紧急调阅", "queue"), (f"{PREFIX}/search", "审计日志查询", "search")]
AREA = {"area_title": "审计", "nav": NAV, "role_label": "审计员"}


def _rows(engine: Engine, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        orgs = dict(conn.execute(select(Institution.code, Institution.name)).all())
    return [{**e, "at_text": f"{e['at']:%Y-%m-%d %H:%M:%S}", "org": orgs.get(e["org_code"], e["org_code"] or ""),
             "what": ACTIONS.get(e["action"], e["action"])} for e in events]


def build_router(engine: Engine) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def auditor(request: Request) -> accounts.SessionInfo:
        return signed_in(engine, request, "auditor")

    def render(name: str, me: accounts.SessionInfo, status_code: int = 200, **ctx: Any) -> HTMLResponse:
        return page(name, status_code, me=me, **AREA, **ctx)

    def queue(me: accounts.SessionInfo, status_code: int = 200, **ctx: Any) -> HTMLResponse:
        return render("audit_queue.html", me, status_code, events=_rows(engine, audit.pending_reviews(engine)),
                      verdicts=audit.VERDICTS, active="queue", **ctx)

    @router.get(f"{PREFIX}/", response_class=HTMLResponse)
    def queue_page(request: Request) -> HTMLResponse:
        return queue(auditor(request))

    @router.post(PREFIX + "/review/{seq}")
    def review(request: Request, seq: RowId, csrf_token: Annotated[str, Form()] = "",
               verdict: Annotated[str, Form(max_length=20)] = "", note: Annotated[str, Form(max_length=500)] = "") -> Response:
        me = auditor(request)
        check_csrf(me, csrf_token)
        actor = audit.Actor(me.username, me.role, me.org_code, me.department, client(request))
        try:
            audit.review(engine, actor, seq, verdict, note.strip() or None)
        except audit.AuditError as exc:
            return queue(me, 400, error=exc.message)
        return RedirectResponse(f"{PREFIX}/", status_code=303)

    def search_page(me: accounts.SessionInfo, status_code: int = 200, events: list | None = None,
                    query: dict[str, Any] | None = None, error: str | None = None) -> HTMLResponse:
        with engine.connect() as conn:
            orgs = conn.execute(select(Institution.code, Institution.name).order_by(Institution.name)).all()
        return render("audit_search.html", me, status_code, events=events, query=query or {}, orgs=orgs, error=error,
                      active="search")

    @router.get(f"{PREFIX}/search", response_class=HTMLResponse)
    def search_form(request: Request) -> HTMLResponse:
        return search_page(auditor(request))

    @router.post(f"{PREFIX}/search", response_class=HTMLResponse)
    def search(request: Request, csrf_token: Annotated[str, Form()] = "", id_no: Annotated[str, Form(max_length=18)] = "",
               person_id: Annotated[str, Form(max_length=32)] = "", username: Annotated[str, Form(max_length=50)] = "",
               org_code: Annotated[str, Form(max_length=32)] = "", flagged: Annotated[str, Form()] = "") -> HTMLResponse:
        me = auditor(request)
        check_csrf(me, csrf_token)
        query = {"person_id": person_id, "username": username, "org_code": org_code, "flagged": flagged}
        pid = person_id.strip() or None
        if id_no.strip():
            try:
                with engine.connect() as conn:
                    pid = person_of_id_no(conn, id_no)
            except accounts.AuthError as exc:
                return search_page(me, 400, query=query, error=exc.message)
            if pid is None:
                return search_page(me, events=[], query=query)
        events = audit.search(engine, person_id=pid, username=username.strip() or None, org_code=org_code or None,
                              flagged=True if flagged else None, limit=200)
        return search_page(me, events=_rows(engine, events), query=query)

    return router
