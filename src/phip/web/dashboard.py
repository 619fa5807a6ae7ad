"""The operations dashboard (运维看板): server-rendered pages in Simplified Chinese behind a login.

Pages: province overview, upload statistics (filters, sorting, XLSX/CSV export), institution
detail, findings browser, onboarding status, the institution register (:mod:`.register_pages`).
Operators read and change everything; a regional reader (区域卫健委) reads its own city or
county only and changes nothing (:mod:`.scope`).
Everything is read through the quality and reports services; templates autoescape, so names are always text, never markup. Charts use
the vendored ECharts (static/vendor/echarts), fed by JSON embedded with ``tojson``.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from phip import audit
from phip.config import get_settings
from phip.federation.lag import outbox_lag
from phip.federation.province import city_activity
from phip.orgs.keys import city_platforms
from phip.throttle import FailureLimiter
from phip.quality import rejections
from phip.quality import service as quality
from phip.quality.rules import load_rules
from phip.reports import export, onboarding, overview
from phip.reports.period import Period, PeriodError, month_of, parse_period
from phip.reports.uploads import LEVEL_ALIASES, LEVELS, SORT_KEYS, upload_report
from phip.standard.catalog import load_standard
from phip.standard.validate import platform_now

from phip import accounts as auth

from . import onboarding_files, portal, register_pages, supervision
from .pages import COOKIE, HERE, LOGIN_CSRF, Forbidden, LoginRequired, landing, page, safe_next, set_session, signed_in
from .scope import READERS, WRITERS, Viewer, viewer_of

PREFIX = "/ops"
#: what the login page says after a refused login, by the code the redirect carries: never
#: text from the address, which anyone could write into a link (系统已迁移，请前往…)
LOGIN_ERRORS = {"EXPIRED": "页面已过期，请重新登录", "LOGIN_FAILED": "用户名或密码错误",
                "LOGIN_LOCKED": "登录失败次数过多，请{minutes}分钟后再试"}


class _BadFilter(ValueError):
    """A report filter that cannot be read; its text is the Chinese message."""


def _page(name: str, status_code: int = 200, **ctx: Any) -> HTMLResponse:
    return page(name, status_code, prefix=PREFIX, **ctx)


def _safe_next(url: str | None) -> str:
    return url if url and safe_next(url) == url else ""


def build_router(engine: Engine, reads: Engine | None = None) -> APIRouter:
    """``reads``: where the statistics are read (a replica, ``runtime.read_engine``); sign-in,
    sessions, audit and every change use ``engine``."""
    reads = reads or engine
    router = APIRouter(include_in_schema=False)
    std = load_standard()
    rules = load_rules()

    def view(request: Request) -> Viewer:
        # clinicians, residents, auditors have pages of their own
        return viewer_of(engine, signed_in(engine, request, *READERS))

    def writer(request: Request) -> auth.SessionInfo:
        return signed_in(engine, request, *WRITERS)  # a regional reader gets the 403 page

    def reader(request: Request, me: auth.SessionInfo) -> audit.Actor:
        return audit.Actor(me.username, me.role, address=request.client.host if request.client else None)

    def period_of(text: str | None) -> Period:
        """The month so far when none is asked; one that cannot be read is a PeriodError."""
        return parse_period(text) if text else month_of(platform_now().date())

    # --- login ------------------------------------------------------------------------

    @router.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str | None = None, error: str | None = None,
                   minutes: int = Query(15, ge=1, le=60)) -> HTMLResponse:
        token = secrets.token_urlsafe(24)
        said = LOGIN_ERRORS.get(error or "")
        resp = _page("login.html", csrf=token, next=_safe_next(next), error=said.format(minutes=minutes) if said else None)
        resp.set_cookie(LOGIN_CSRF, token, httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/login")
        return resp

    #: Five wrong passwords per account, twenty per address, in 15 minutes (等保 2.0 asks for
    #: login failure handling: a lockout after repeated failures).
    by_account, by_address = FailureLimiter(5, 900.0), FailureLimiter(20, 900.0)

    @router.post("/login")
    def login_submit(request: Request, username: Annotated[str, Form()] = "", password: Annotated[str, Form()] = "",
                     csrf_token: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "") -> Response:
        if not auth.csrf_ok(request.cookies.get(LOGIN_CSRF, ""), csrf_token):
            return RedirectResponse("/login?error=EXPIRED", status_code=303)
        account, address = f"user:{username.strip()}", f"addr:{request.client.host if request.client else '-'}"
        if wait := max(by_account.wait(account), by_address.wait(address)):  # before the password is checked
            minutes = min(60, math.ceil(wait / 60))
            return RedirectResponse(f"/login?error=LOGIN_LOCKED&minutes={minutes}&next={quote(_safe_next(next))}",
                                    status_code=303)
        try:
            token, info = auth.login(engine, username.strip(), password)
        except auth.AuthError as exc:
            by_account.failed(account)
            by_address.failed(address)
            return RedirectResponse(f"/login?error={exc.code}&next={quote(_safe_next(next))}", status_code=303)
        by_account.succeeded(account)
        if info.role == "resident":  # residents log in with their ID number at /me/login
            auth.logout(engine, token)
            return RedirectResponse("/me/login", status_code=303)
        resp = RedirectResponse(landing(next, info.role), status_code=303)
        set_session(resp, request, token)
        resp.delete_cookie(LOGIN_CSRF, path="/login")
        return resp

    @router.post("/logout")
    def logout(request: Request, csrf_token: Annotated[str, Form()] = "") -> Response:
        info = auth.session(engine, request.cookies.get(COOKIE))
        if info is not None and not auth.csrf_ok(info.csrf_token, csrf_token):
            # the session goes on: say so, on a page whose header carries a fresh 退出 form
            # (it used to drop the cookie and send the login page, the session still valid)
            return _page("error.html", 403, me=info, message="退出未完成：页面已过期，请点击右上角“退出”再试一次",
                         role_label=auth.ROLES.get(info.role))
        if info is not None:
            auth.logout(engine, request.cookies.get(COOKIE))
        resp = RedirectResponse("/me/login" if info is not None and info.role == "resident" else "/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/")
        return resp

    # --- pages ------------------------------------------------------------------------

    @router.get(f"{PREFIX}/", response_class=HTMLResponse)
    def overview_page(request: Request) -> HTMLResponse:
        v = view(request)
        today = platform_now().date()
        statuses = onboarding.onboarding_status(reads, "hospital", within=v.within)
        by_region: dict[str, dict[str, int]] = {}
        for s in statuses:
            r = by_region.setdefault(s.region_name, {"total": 0, "connected": 0, "uploading": 0, "analysed": 0})
            r["total"] += 1
            r["connected"] += s.network == "connected"
            r["uploading"] += s.uploading
            r["analysed"] += bool(s.analysed)
        trend = overview.daily_uploads(reads, today - timedelta(days=29), today, within=v.within)
        # a city platform: its lag behind the province; a province: what each city platform sends
        lag = outbox_lag(engine) if get_settings().upstream_url else None
        return _page("overview.html", me=v.me, area=v.area, active="overview", summary=onboarding.summary(statuses),
                     by_region=by_region, totals=overview.totals(reads, today, within=v.within), today=today,
                     trend={"days": [d.isoformat() for d, _ in trend], "values": [n for _, n in trend]},
                     pending=[s for s in statuses if not s.uploading][:20], lag=lag,
                     funnel=overview.onboarding_funnel(statuses), rates=overview.rates_by_city(reads, today, v.within),
                     rate_bands=overview.RATE_BANDS,
                     cities=[] if v.regional else city_activity(engine))

    def _filters(period: str | None, level: str, sort: str | None) -> tuple[Period, str, str | None]:
        """A report's period, level and sort key as typed, or _BadFilter saying which is wrong
        (they fell back to this month and the first level, and the page showed figures nobody
        had asked for under the filter the reader had typed)."""
        try:
            p = period_of(period)
        except PeriodError as exc:
            raise _BadFilter(exc.message) from None
        lvl = LEVEL_ALIASES.get(level, level)
        if lvl not in LEVELS:
            raise _BadFilter(f"统计口径“{level[:40]}”无效，可选 {'、'.join(LEVELS)}")
        if sort and sort not in SORT_KEYS:
            raise _BadFilter(f"排序列“{sort[:40]}”无效，可选 {'、'.join(sorted(SORT_KEYS))}")
        return p, lvl, sort or None

    def _report(v: Viewer, p: Period, lvl: str, region: str | None, key: str | None, order: str, extras: bool = True):
        region = None if v.regional else region  # a regional reader's region is forced by ``within``
        return upload_report(reads, p, lvl, region_code=region or None, sort=key, descending=order != "asc", extras=extras,
                             within=v.within)

    def _bad_filter(v: Viewer, exc: _BadFilter) -> HTMLResponse:
        return _page("error.html", 400, me=v.me, area=v.area, message=f"{exc}。统计期的写法如 2026-11、"
                     "2026-10..2026-11 或 2026-11-01..2026-11-15；不给即本月。")

    @router.get(f"{PREFIX}/uploads", response_class=HTMLResponse)
    def uploads_page(request: Request, period: str | None = None, level: str = "institution", region: str | None = None,
                     sort: str | None = None, order: str = "desc") -> HTMLResponse:
        v = view(request)
        try:
            p, lvl, key = _filters(period, level, sort)
        except _BadFilter as exc:
            return _bad_filter(v, exc)
        rep = _report(v, p, lvl, region, key, order)
        region_options = [] if v.regional else overview_regions(engine)  # the reader's own area only
        query = {"period": str(rep.period), "level": rep.level, "region": "" if v.regional else region or ""}
        return _page("uploads.html", me=v.me, area=v.area, active="uploads", report=rep, columns=rep.columns, sort=key,
                     order=order, query=query, region_options=region_options, title=export.title(rep))

    exports = {
        "xlsx": (export.to_xlsx, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        "csv": (lambda rep: export.to_csv(rep).encode("utf-8"), "text/csv; charset=utf-8"),
    }

    @router.get(PREFIX + "/uploads.{fmt}")
    def uploads_file(request: Request, fmt: Literal["xlsx", "csv"], period: str | None = None, level: str = "institution",
                     region: str | None = None, sort: str | None = None, order: str = "desc", extras: bool = False) -> Response:
        v = view(request)
        try:
            p, lvl, key = _filters(period, level, sort)
        except _BadFilter as exc:
            return _bad_filter(v, exc)
        rep = _report(v, p, lvl, region, key, order, extras)
        render_file, media_type = exports[fmt]
        name = f"upload-{rep.level}-{rep.period.start}-{rep.period.end}.{fmt}"
        return Response(render_file(rep), media_type=media_type,
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @router.get(PREFIX + "/institutions/{code}", response_class=HTMLResponse)
    def institution_page(request: Request, code: str, days: int = 30) -> HTMLResponse:
        v = view(request)
        me = v.me
        inst = overview.institution(engine, code, within=v.within)
        if inst is None:
            return _missing(v, code)
        today = platform_now().date()
        days = max(1, min(days, 366))
        start = today - timedelta(days=days - 1)
        volumes = overview.daily_uploads(reads, start, today, code)
        status = next((s for s in onboarding.onboarding_status(engine, within=v.within) if s.code == code), None)
        top = quality.top_findings(engine, code, role=me.role)
        audit.log_reads(engine, reader(request, me), "quality.findings.read",
                        audit.persons_of_records(engine, ((code, t.get("dataset") or "", t.get("record_key")) for t in top)),
                        target=f"institution:{code}", detail={"shown": len(top)})
        return _page("institution.html", me=me, active="uploads", inst=inst, status=status, days=days,
                     routes=bool(city_platforms(engine)),
                     datasets=overview.datasets_of(reads, code, start, today),
                     scores=quality.dataset_scores(engine, code, start, today), dimensions=rules.dimensions,
                     top=top,
                     rejections=rejections.groups(engine, org_code=code, include_resolved=True),
                     trend={"days": [d.isoformat() for d, _ in volumes], "values": [n for _, n in volumes]})

    @router.get(PREFIX + "/institutions/{code}/rejections", response_class=HTMLResponse)
    def rejections_index(request: Request, code: str) -> HTMLResponse:
        return rejections_page(request, code, None)

    @router.get(PREFIX + "/institutions/{code}/rejections/{dataset}", response_class=HTMLResponse)
    def rejections_page(request: Request, code: str, dataset: str | None, state: str = "open",
                        page: Annotated[int, Query(ge=1, le=100000)] = 1) -> HTMLResponse:
        """An institution's rejections (拒收记录): counts per data set, and one data set's
        rejections page by page with masked examples; open ones by default, ``state=all`` too
        the ones a corrected record has cleared."""
        v = view(request)
        me = v.me
        inst = overview.institution(engine, code, within=v.within)
        if inst is None:
            return _missing(v, code)
        ds = None
        if dataset is not None:
            try:
                ds = std.dataset(dataset)
            except KeyError:
                return _page("error.html", 404, me=me, message=f"数据集“{dataset}”不存在")
        everything = state == "all"
        groups = rejections.groups(engine, org_code=code, include_resolved=True)
        items, total = ([], 0) if ds is None else rejections.find(
            engine, code, ds.code, include_resolved=everything, page=page, size=50, role=me.role)
        if ds is not None:  # rejected records were never stored: no person to name, the page is the target
            audit.log_event(engine, reader(request, me), "quality.rejections.read", target=f"rejections:{code}/{ds.code}",
                            detail={"page": page, "shown": len(items), "state": state})
        return _page("rejections.html", me=me, active="uploads", inst=inst, groups=groups, dataset=ds, items=items,
                     total=total, page=page, pages=max(1, (total + 49) // 50), state="all" if everything else "open")

    @router.get(f"{PREFIX}/findings", response_class=HTMLResponse)
    def findings_page(request: Request, org: str | None = None, dataset: str | None = None, dimension: str | None = None,
                      code: str | None = None, page: Annotated[int, Query(ge=1, le=100000)] = 1) -> HTMLResponse:
        v = view(request)
        me = v.me
        items, total = quality.find(engine, org_code=org or None, dataset=dataset or None, dimension=dimension or None,
                                    code=code or None, page=page, size=50, role=me.role, within=v.within)
        audit.log_reads(engine, reader(request, me), "quality.findings.read",
                        audit.persons_of_records(engine, ((i.org_code, i.dataset, i.record_key) for i in items)),
                        target="findings", detail={"org": org, "dataset": dataset, "dimension": dimension, "code": code,
                                                   "page": page, "shown": len(items)})
        orgs = [(s.code, s.name) for s in onboarding.onboarding_status(engine, "hospital", within=v.within)]
        return _page("findings.html", me=me, active="findings", items=items, total=total, page=page,
                     pages=max(1, (total + 49) // 50), orgs=orgs, datasets=std.datasets, dimensions=quality.dimension_names(),
                     codes=sorted(quality.code_names().items()), query={"org": org or "", "dataset": dataset or "",
                                                       "dimension": dimension or "", "code": code or ""})

    @router.get(f"{PREFIX}/onboarding", response_class=HTMLResponse)
    def onboarding_page(request: Request) -> HTMLResponse:
        v = view(request)
        statuses = onboarding.onboarding_status(engine, within=v.within)
        groups = [(label, [s for s in statuses if s.kind == kind]) for kind, label in onboarding.KIND_LABELS.items()]
        # staff contact phones of the reply form are shown to operators (they call them), masked
        # for a regional reader (it reads, it does not run the docking); patients' never
        return _page("onboarding.html", me=v.me, area=v.area, active="onboarding", groups=[g for g in groups if g[1]],
                     methods=onboarding.METHODS, can_write=not v.regional, routes=bool(city_platforms(engine)))

    @router.post(PREFIX + "/onboarding/{code}/network")
    def set_network(request: Request, code: str, status: Annotated[str, Form()] = "",
                    csrf_token: Annotated[str, Form()] = "") -> Response:
        me = writer(request)
        if not auth.csrf_ok(me.csrf_token, csrf_token):
            return _page("error.html", 403, me=me, message="表单已过期或来源不明（CSRF校验失败），请刷新页面后重试")
        if status not in onboarding.NETWORK:  # it redirected as if saved
            choices = "、".join(f"{k}（{label}）" for k, label in onboarding.NETWORK.items())
            return _page("error.html", 400, me=me, message=f"网络状态“{status[:40]}”无效，可选 {choices}；未保存")
        if not onboarding.set_network(engine, code, status):
            return _missing(viewer_of(engine, me), code)
        return RedirectResponse(f"{PREFIX}/onboarding", status_code=303)

    def _missing(v: Viewer, code: str) -> HTMLResponse:
        # the same answer for an unknown code and another region's: nothing of it is shown
        where = "或不在本辖区（" + v.area + "）" if v.regional else ""
        return _page("error.html", 404, me=v.me, message=f"医疗机构“{code}”不存在{where}")

    router.include_router(onboarding_files.build_router(engine, PREFIX, view))
    router.include_router(supervision.build_router(engine, view, _page))  # /ops/supervision/
    router.include_router(register_pages.build_router(engine, view, writer, _page, _missing))  # /ops/register
    return router


def overview_regions(engine: Engine) -> list[tuple[str, str]]:
    from phip.orgs.service import list_institutions

    return sorted({(r.region_code, r.region_name) for r in list_institutions(engine)})


def install(app: FastAPI, engine: Engine, reads: Engine | None = None) -> dict[str, Callable[[Request, int, str], Response]]:
    """Add the dashboard to the service: routes, static files, and the login redirect. Returns
    the error page of each path prefix a person reads, for the API's error handler to register
    (the web layer does not import the API)."""
    app.include_router(build_router(engine, reads))
    areas = portal.install(app, engine)  # issue 21: /share/, /me/, /audit/
    app.mount("/static/web", StaticFiles(directory=HERE / "static"), name="web-static")

    def error_page(request: Request, status: int, message: str) -> Response:
        """A person reads these: errors as a page, not JSON. Someone not logged in is sent to
        the login first (a parameter error is checked before the page asks for the session)."""
        path = request.url.path
        try:
            anonymous = (path.startswith((PREFIX, *areas)) and not path.startswith("/me/login")
                         and auth.session(engine, request.cookies.get(COOKIE)) is None)
        except Exception:  # noqa: BLE001 - the database is what failed: say so, do not fail again
            anonymous = False
        if anonymous:
            target = path + (f"?{request.url.query}" if request.url.query and "%00" not in request.url.query else "")
            return RedirectResponse(f"{LoginRequired(target).login_url}?next={quote(target)}", status_code=303)
        brand = next((title for prefix, title in portal.TITLES.items() if path == prefix or path.startswith(prefix + "/")), None)
        return _page("error.html", status, me=None, message=message, brand=brand)


    @app.exception_handler(LoginRequired)
    async def _to_login(request: Request, exc: LoginRequired) -> Response:  # noqa: ARG001
        return RedirectResponse(f"{exc.login_url}?next={quote(exc.next_url)}", status_code=303)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:  # noqa: ARG001
        return _page("error.html", 403, me=None, message=exc.message)

    @app.get(PREFIX, include_in_schema=False)
    def _root() -> Response:
        return RedirectResponse(f"{PREFIX}/", status_code=307)

    return {PREFIX: error_page, "/login": error_page, **{a: error_page for a in areas}}
