"""The clinician's sharing pages (共享调阅, ``/share/``): find a patient, see only record counts
without an authorization, enter the patient's one-time code or break the glass, then the
timeline across institutions and each document, lab and exam results marked 可互认.

Every read goes through phip.share, which checks the authorization on every request and
writes the audit event; these pages only render. A search is a POST, so an ID number never
appears in an address or an access log."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Engine, select

from phip import share
from phip.accounts import SessionInfo
from phip.empi.store import load_persons
from phip.privacy import mask_id, mask_name
from phip.recognition import by_report, recognizable, report_of
from phip.share.patients import SEX, counts_by_year
from phip.share.policy import ShareError, golden_id, person_ids
from phip.store.models import Institution, Record

from .pages import check_csrf, client, page, signed_in

PREFIX = "/share"
NAV = [(f"{PREFIX}/", "查找患者", "find")]
AREA = {"area_title": "共享调阅", "nav": NAV, "role_label": "医生"}


def _patient(engine: Engine, person_id: str) -> dict[str, Any]:
    """The masked header of a patient's pages (姓名、性别、出生日期、身份证号, masked)."""
    with engine.connect() as conn:
        pid = golden_id(conn, person_id)
        p = load_persons(conn, [pid])[pid]
        counts = counts_by_year(conn, person_ids(conn, pid))
    return {"person_id": pid, "name": mask_name(p["name"]), "sex_label": SEX.get(p["sex"] or "", ""),
            "birth_date": p["birth_date"], "id_no": mask_id(p["id_no"]) if p["id_no"] else None, "counts": counts}


def _org(engine: Engine, code: str | None) -> str:
    with engine.connect() as conn:
        return conn.execute(select(Institution.name).where(Institution.code == code)).scalar() or (code or "")


def recognised_entries(engine: Engine, person_id: str, entries: list[dict[str, Any]]) -> dict[str, str]:
    """Timeline entries (lab and exam reports) holding a result still recognisable: id -> valid until."""
    ids = [int(e["id"]) for e in entries if e["dataset"] in ("lab_report", "exam_report")]
    if not ids:
        return {}
    with engine.connect() as conn:
        keys = dict(conn.execute(select(Record.id, Record.record_key).where(Record.id.in_(ids))).all())
        all_ids = person_ids(conn, person_id)
    reports = by_report(recognizable(engine, all_ids))
    out = {}
    for e in entries:
        key = keys.get(int(e["id"])) if e["dataset"] in ("lab_report", "exam_report") else None
        found = reports.get((e["org_code"], e["dataset"], report_of(e["dataset"], key))) if key else None
        if found:
            out[e["id"]] = f"{max(r.expires_at for r in found):%Y-%m-%d}"
    return out


def recognised_items(engine: Engine, person_id: str, doc: dict[str, Any]) -> tuple[str | None, set[str]]:
    """For one document: until when it is recognisable (None: not) and which lab items (item_no)."""
    if doc["dataset"] not in ("lab_report", "exam_report"):
        return None, set()
    report = next((f["value"] for f in doc["fields"] if f["name"] == "report_no"), None)
    with engine.connect() as conn:
        all_ids = person_ids(conn, golden_id(conn, person_id))
    found = by_report(recognizable(engine, all_ids)).get((doc["org_code"], doc["dataset"], str(report)))
    if not found:
        return None, set()
    items = {r.record_key.rsplit("|", 1)[1] for r in found if doc["dataset"] == "lab_report"}
    return f"{max(r.expires_at for r in found):%Y-%m-%d}", items


def build_router(engine: Engine) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    reasons = share.load_catalog().reasons

    def clinician(request: Request) -> SessionInfo:
        return signed_in(engine, request, "clinician")

    def render(name: str, me: SessionInfo, status_code: int = 200, **ctx: Any) -> HTMLResponse:
        return page(name, status_code, me=me, org_name=_org(engine, me.org_code), **AREA, **ctx)

    def refused(me: SessionInfo, person_id: str, exc: ShareError, status: int | None = None) -> HTMLResponse:
        if exc.status == 404:
            return render("share_find.html", me, 404, error=exc.message, results=None, query={})
        return render("share_patient.html", me, status or exc.status, patient=_patient(engine, person_id),
                      refusal=exc.message, refusal_code=exc.code, reasons=reasons, active="find")

    @router.get(f"{PREFIX}/", response_class=HTMLResponse)
    def find_page(request: Request) -> HTMLResponse:
        return render("share_find.html", clinician(request), results=None, query={}, active="find")

    @router.post(f"{PREFIX}/find", response_class=HTMLResponse)
    def find(request: Request, csrf_token: Annotated[str, Form()] = "", id_no: Annotated[str, Form(max_length=18)] = "",
             health_card: Annotated[str, Form(max_length=32)] = "", name: Annotated[str, Form(max_length=50)] = "",
             birth_date: Annotated[str, Form(max_length=10)] = "", sex: Annotated[str, Form(max_length=1)] = "") -> HTMLResponse:
        me = clinician(request)
        check_csrf(me, csrf_token)
        query = {"health_card": health_card, "name": name, "birth_date": birth_date, "sex": sex}  # the ID number is not echoed
        try:
            born = date.fromisoformat(birth_date) if birth_date else None
        except ValueError:
            return render("share_find.html", me, 400, error="出生日期格式应为 2020-01-31", results=None, query=query, active="find")
        try:
            results = share.find(engine, me, id_no=id_no or None, health_card=health_card or None, name=name or None,
                                 birth_date=born, sex=sex or None, address=client(request))
        except ShareError as exc:
            return render("share_find.html", me, exc.status, error=exc.message, results=None, query=query, active="find")
        return render("share_find.html", me, results=results, query=query, active="find")

    @router.get(PREFIX + "/patients/{person_id}", response_class=HTMLResponse)
    def patient_page(request: Request, person_id: str) -> HTMLResponse:
        me = clinician(request)
        try:
            found = share.timeline(engine, me, person_id, address=client(request))
        except ShareError as exc:
            # the patient's page without authorization is where one asks for it: a page (200)
            # saying so with the refusal's code, the counts by year and the ways to be authorized
            return refused(me, person_id, exc, 200 if exc.code == "NO_AUTHORIZATION" else None)
        marks = recognised_entries(engine, found["person_id"], found["documents"])
        return render("share_patient.html", me, patient=_patient(engine, person_id), documents=found["documents"],
                      marks=marks, refusal=None, reasons=reasons, active="find")

    @router.post(PREFIX + "/patients/{person_id}/code")
    def redeem(request: Request, person_id: str, csrf_token: Annotated[str, Form()] = "",
               code: Annotated[str, Form(max_length=12)] = "") -> Response:
        me = clinician(request)
        check_csrf(me, csrf_token)
        try:
            share.redeem_code(engine, me, person_id, code, address=client(request))
        except ShareError as exc:
            return refused(me, person_id, exc)
        return RedirectResponse(f"{PREFIX}/patients/{person_id}", status_code=303)

    @router.post(PREFIX + "/patients/{person_id}/break-glass")
    def break_glass(request: Request, person_id: str, csrf_token: Annotated[str, Form()] = "",
                    reason_code: Annotated[str, Form(max_length=20)] = "",
                    reason_text: Annotated[str, Form(max_length=500)] = "") -> Response:
        me = clinician(request)
        check_csrf(me, csrf_token)
        try:
            share.break_glass(engine, me, person_id, reason_code, reason_text, address=client(request))
        except ShareError as exc:
            return refused(me, person_id, exc)
        return RedirectResponse(f"{PREFIX}/patients/{person_id}", status_code=303)

    @router.get(PREFIX + "/patients/{person_id}/documents/{document_id}", response_class=HTMLResponse)
    def document_page(request: Request, person_id: str, document_id: str) -> HTMLResponse:
        me = clinician(request)
        try:
            doc = share.document(engine, me, person_id, document_id, address=client(request))
        except ShareError as exc:
            return refused(me, person_id, exc)
        until, items = recognised_items(engine, person_id, doc)
        return render("document.html", me, patient=_patient(engine, person_id), doc=doc, until=until, items=items,
                      back=f"{PREFIX}/patients/{person_id}", active="find")

    return router
