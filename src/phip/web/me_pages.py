"""The resident's pages (居民本人, ``/me/``): first-use password through a one-time code, login
by ID number, the resident's own timeline and documents, consents (grant with scope and
expiry, revoke, a one-time code to give at a visit) and the access log of their own record —
who (masked), institution, department, when, what, under which authorization.

Forms before login carry a double-submit token (cookie + field); after login the session's
CSRF token. The ID number travels in POST bodies only, never in an address."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Engine, select

from phip import accounts, share
from phip.accounts.residents import request_setup_code, resident_login, set_password
from phip.accounts.tables import User
from phip.audit import for_person
from phip.privacy import mask_name
from phip.share.grants import KINDS
from phip.share.policy import ShareError, golden_id
from phip.share.tables import ShareAuthorization
from phip.store.models import Institution

from .pages import LOGIN_CSRF, RowId, check_csrf, client, landing, login_token, page, set_session, signed_in

PREFIX = "/me"
NAV = [(f"{PREFIX}/", "我的健康档案", "timeline"), (f"{PREFIX}/consents", "授权管理", "consents"),
       (f"{PREFIX}/access-log", "谁看过我的档案", "log")]
AREA = {"area_title": "居民健康档案", "nav": NAV, "role_label": "居民"}
#: what an audit action means to a resident
ACTIONS = {
    "share.find": "查找到您", "share.timeline": "查看就诊时间轴", "share.document": "查看病历文档",
    "share.refused": "调阅被拒绝（无授权）", "share.break_glass": "紧急调阅", "share.code_redeem": "使用授权码",
    "share.code_wrong": "授权码输入错误", "share.code_issue": "生成授权码", "share.consent_grant": "授权同意",
    "share.consent_revoke": "撤销授权", "account.code_sent": "发送验证码", "account.code_wrong": "验证码输入错误",
    "account.password_set": "设置密码", "fhir.read": "通过FHIR接口查看病历", "fhir.search": "通过FHIR接口检索病历",
    "share.cda": "调阅共享文档（CDA）", "share.cda_query": "查询共享文档目录",
}
ROLE_LABELS = {"clinician": "医生", "resident": "本人", "operator": "运维人员", "regional": "区域卫健委", "auditor": "审计员",
               "institution": "医疗机构系统", "system": "系统"}
DOCUMENT_TITLES = {ds: k.title for ds, k in share.load_catalog().documents.items()}


def access_log(engine: Engine, me: accounts.SessionInfo) -> list[dict[str, Any]]:
    """The audit events of the resident's record, for display: readers' names masked, institutions named."""
    with engine.connect() as conn:
        pid = golden_id(conn, me.person_id or "")
    events = for_person(engine, pid)
    users = {e["username"] for e in events}
    grants = {int(e["authorization"]) for e in events if (e["authorization"] or "").isdigit()}
    with engine.connect() as conn:
        names = dict(conn.execute(select(User.username, User.display_name).where(User.username.in_(users))).all())
        orgs = dict(conn.execute(select(Institution.code, Institution.name)).all())
        kinds = dict(conn.execute(select(ShareAuthorization.id, ShareAuthorization.kind)
                                  .where(ShareAuthorization.id.in_(grants))).all()) if grants else {}
    out = []
    for e in events:
        grant = e["authorization"]
        what = ACTIONS.get(e["action"], e["action"])
        target = e["target"] or ""
        if e["action"] == "share.document" and ":" in target:
            what += f"（{DOCUMENT_TITLES.get(target.split(':')[0], target.split(':')[0])}）"
        who = "本人" if e["username"] == me.username else mask_name(names.get(e["username"], "")) or "—"
        out.append({"at": f"{e['at']:%Y-%m-%d %H:%M:%S}", "who": who, "role": ROLE_LABELS.get(e["role"], e["role"]),
                    "org": orgs.get(e["org_code"], e["org_code"] or ""), "department": e["department"] or "",
                    "what": what, "flagged": e["flagged"],
                    "authorization": (f"{KINDS.get(kinds.get(int(grant)), '授权')} #{grant}" if grant and grant.isdigit()
                                      and int(grant) in kinds else ("本人" if grant == "0" else ""))})
    return out


def build_router(engine: Engine) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    guard = accounts.LoginGuard()

    def resident(request: Request) -> accounts.SessionInfo:
        return signed_in(engine, request, "resident")

    def render(name: str, me: accounts.SessionInfo | None, status_code: int = 200, **ctx: Any) -> HTMLResponse:
        return page(name, status_code, me=me, **AREA, **ctx)

    def anonymous(name: str, request: Request, status_code: int = 200, **ctx: Any) -> HTMLResponse:
        """A form shown before login, with its double-submit token."""
        token = request.cookies.get(LOGIN_CSRF) or login_token()
        resp = render(name, None, status_code, csrf=token, **ctx)
        resp.set_cookie(LOGIN_CSRF, token, httponly=True, samesite="strict", secure=request.url.scheme == "https",
                        path=PREFIX)
        return resp

    def pre_login_ok(request: Request, token: str) -> bool:
        return accounts.csrf_ok(request.cookies.get(LOGIN_CSRF, ""), token)

    expired = "页面已过期，请重新提交"

    # --- login and first use ----------------------------------------------------------

    @router.get(f"{PREFIX}/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str | None = None, done: int = 0) -> HTMLResponse:
        return anonymous("me_login.html", request, next=landing(next, "resident"),
                         notice="密码已设置，请登录" if done else None)

    @router.post(f"{PREFIX}/login")
    def login_submit(request: Request, id_no: Annotated[str, Form(max_length=18)] = "",
                     password: Annotated[str, Form(max_length=200)] = "", csrf_token: Annotated[str, Form()] = "",
                     next: Annotated[str, Form()] = "") -> Response:
        if not pre_login_ok(request, csrf_token):
            return anonymous("me_login.html", request, 403, error=expired, next=landing(next, "resident"))
        try:
            token, _ = resident_login(engine, id_no, password, guard=guard, address=client(request))
        except accounts.AuthError as exc:
            return anonymous("me_login.html", request, exc.status, error=exc.message, next=landing(next, "resident"))
        resp = RedirectResponse(landing(next, "resident"), status_code=303)
        set_session(resp, request, token)
        return resp

    @router.get(f"{PREFIX}/setup", response_class=HTMLResponse)
    def setup_form(request: Request) -> HTMLResponse:
        return anonymous("me_setup.html", request, step=1)

    @router.post(f"{PREFIX}/setup/code", response_class=HTMLResponse)
    def setup_code(request: Request, id_no: Annotated[str, Form(max_length=18)] = "",
                   csrf_token: Annotated[str, Form()] = "") -> HTMLResponse:
        if not pre_login_ok(request, csrf_token):
            return anonymous("me_setup.html", request, 403, step=1, error=expired)
        try:
            said = request_setup_code(engine, id_no, address=client(request))
        except accounts.AuthError as exc:
            return anonymous("me_setup.html", request, exc.status, step=1, error=exc.message)
        return anonymous("me_setup.html", request, step=2, id_no=id_no, notice=said)

    @router.post(f"{PREFIX}/setup", response_class=HTMLResponse)
    def setup(request: Request, id_no: Annotated[str, Form(max_length=18)] = "", code: Annotated[str, Form(max_length=12)] = "",
              password: Annotated[str, Form(max_length=200)] = "", password2: Annotated[str, Form(max_length=200)] = "",
              csrf_token: Annotated[str, Form()] = "") -> Response:
        if not pre_login_ok(request, csrf_token):
            return anonymous("me_setup.html", request, 403, step=2, id_no=id_no, error=expired)
        if password != password2:
            return anonymous("me_setup.html", request, 400, step=2, id_no=id_no, error="两次输入的密码不一致")
        try:
            set_password(engine, id_no, code, password, address=client(request))
        except accounts.AuthError as exc:
            return anonymous("me_setup.html", request, exc.status, step=2, id_no=id_no, error=exc.message)
        return RedirectResponse(f"{PREFIX}/login?done=1", status_code=303)

    # --- the resident's own record ---------------------------------------------------------

    @router.get(f"{PREFIX}/", response_class=HTMLResponse)
    def timeline_page(request: Request) -> HTMLResponse:
        me = resident(request)
        found = share.timeline(engine, me, me.person_id or "", address=client(request))
        return render("share_patient.html", me, patient=None, documents=found["documents"], marks={}, refusal=None,
                      doc_prefix=f"{PREFIX}/documents/", active="timeline")

    @router.get(PREFIX + "/documents/{document_id}", response_class=HTMLResponse)
    def document_page(request: Request, document_id: str) -> HTMLResponse:
        me = resident(request)
        try:
            doc = share.document(engine, me, me.person_id or "", document_id, address=client(request))
        except ShareError as exc:
            return render("error.html", me, exc.status, message=exc.message)
        return render("document.html", me, patient=None, doc=doc, until=None, items=set(), back=f"{PREFIX}/",
                      active="timeline")

    def consents(me: accounts.SessionInfo, status_code: int = 200, **ctx: Any) -> HTMLResponse:
        with engine.connect() as conn:
            orgs = conn.execute(select(Institution.code, Institution.name).where(Institution.kind == "hospital")
                                .order_by(Institution.region_code, Institution.name)).all()
        return render("me_consents.html", me, status_code, grants=share.authorizations(engine, me), orgs=orgs,
                      categories=share.load_catalog().category_labels(), active="consents", **ctx)

    @router.get(f"{PREFIX}/consents", response_class=HTMLResponse)
    def consents_page(request: Request) -> HTMLResponse:
        return consents(resident(request))

    @router.post(f"{PREFIX}/consents", response_class=HTMLResponse)
    def grant(request: Request, csrf_token: Annotated[str, Form()] = "", reader_scope: Annotated[str, Form()] = "all",
              reader_orgs: Annotated[list[str] | None, Form()] = None, source_scope: Annotated[str, Form()] = "all",
              source_orgs: Annotated[list[str] | None, Form()] = None, category_scope: Annotated[str, Form()] = "all",
              categories: Annotated[list[str] | None, Form()] = None, days: Annotated[str, Form(max_length=5)] = "") -> Response:
        me = resident(request)
        check_csrf(me, csrf_token)
        try:
            n = int(days)
        except ValueError:
            return consents(me, 400, error="授权有效期应为天数（整数）")
        try:
            share.grant_consent(engine, me, reader_orgs=None if reader_scope == "all" else (reader_orgs or []), days=n,
                                source_orgs=None if source_scope == "all" else (source_orgs or []),
                                categories=None if category_scope == "all" else (categories or []), address=client(request))
        except ShareError as exc:
            return consents(me, exc.status, error=exc.message)
        return RedirectResponse(f"{PREFIX}/consents", status_code=303)

    @router.post(PREFIX + "/consents/{authorization_id}/revoke")
    def revoke(request: Request, authorization_id: RowId, csrf_token: Annotated[str, Form()] = "") -> Response:
        me = resident(request)
        check_csrf(me, csrf_token)
        try:
            share.revoke(engine, me, authorization_id, address=client(request))
        except ShareError as exc:
            return consents(me, exc.status, error=exc.message)
        return RedirectResponse(f"{PREFIX}/consents", status_code=303)

    @router.post(f"{PREFIX}/codes", response_class=HTMLResponse)
    def issue_code(request: Request, csrf_token: Annotated[str, Form()] = "") -> HTMLResponse:
        me = resident(request)
        check_csrf(me, csrf_token)
        return consents(me, issued=share.issue_code(engine, me, address=client(request)))

    @router.get(f"{PREFIX}/access-log", response_class=HTMLResponse)
    def log_page(request: Request) -> HTMLResponse:
        me = resident(request)
        return render("me_log.html", me, events=access_log(engine, me), active="log")

    return router
