"""HTTP service. Issue 2 ships the read-only standard endpoints, health and the home page;
the push API (issue 3) and dashboards (issue 5) add routers here."""

from __future__ import annotations

import secrets
import time
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine, text

from phip import runtime
from phip.api import access_log, csrf, errors, fhir, memory, push, share
from phip.api.errors import ApiError
from phip.api.examples import SCHEMA, STANDARD_INDEX, responses
from phip.api import documents as documents_api
from phip.api import empi as empi_api
from phip.api.limits import LATENCY, REGISTRY, REQUESTS, RateLimiter
from phip.config import get_settings
from phip.reports import onboarding, overview
from phip.standard.catalog import CATEGORY_LABELS, load_standard
from phip.standard.export import dataset_schema, render_html
from phip.standard.validate import platform_now
from phip import accounts as auth
from phip.web import dashboard
from phip.web.render import render

SWAGGER_DIR = Path(dashboard.__file__).parent / "static" / "vendor" / "swagger-ui"
_METRICS_REFUSED = ("METRICS_AUTH_REQUIRED", "读取监控指标需要登录运维看板，或在请求头 Authorization: Bearer <令牌> "
                    "中提供 PHIP_METRICS_TOKEN 设置的令牌")


def create_app(engine: Engine | None = None, limiter: RateLimiter | None = None, reads: Engine | None = None) -> FastAPI:
    """Build the service; ``engine`` defaults to the configured store (tests pass their own),
    ``reads`` to its replica (``PHIP_READ_DATABASE_URL``) or the store itself."""
    runtime.tune_gc()
    memory.limit_arenas()
    app = FastAPI(title="PHIP 全民健康信息平台", version="0.1.0", docs_url=None, redoc_url=None)
    std = load_standard()
    if engine is None:
        engine, pipeline, reads = runtime.engine(), runtime.pipeline(), runtime.read_engine()
    else:
        pipeline, reads = runtime.build_pipeline(engine, std), reads or engine
    errors.install(app)
    access_log.install()
    app.add_middleware(errors.RejectNul)
    app.add_middleware(csrf.SameOrigin)
    limiter = limiter or RateLimiter()  # one budget per institution across push and xref
    push_router = push.build_router(engine, pipeline, limiter)
    app.state.batch_slots = push_router.batch_slots  # type: ignore[attr-defined]
    app.include_router(push_router)
    for prefix, page in dashboard.install(app, engine, reads).items():  # issue 5: operations dashboard (/login, /ops/…)
        errors.register_html_pages(prefix, page)
    app.include_router(empi_api.build_xref_router(engine, limiter))  # hospital key, before the operator routes
    app.include_router(empi_api.build_router(engine))
    app.include_router(share.build_router(engine, limiter))  # issue 21: /api/v1/share
    app.include_router(fhir.build_router(engine, limiter))  # issue 25: /fhir/R4
    errors.register_error_shape(fhir.PREFIX.rsplit("/", 1)[0], fhir.outcome_response)
    app.include_router(documents_api.build_router(engine, pipeline, limiter))  # issue 25: CDA in and out

    @app.middleware("http")
    async def _measure(request: Request, call_next):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        LATENCY.labels(path).observe(time.perf_counter() - start)
        REQUESTS.labels(request.method, path, str(response.status_code)).inc()
        return response

    # Swagger UI 5 vendored in the package (reads the OpenAPI 3.1 FastAPI serves; no CDN on a closed network)
    app.mount("/static/swagger", StaticFiles(directory=SWAGGER_DIR), name="swagger")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="PHIP 接口文档",
                                   swagger_js_url="/static/swagger/swagger-ui-bundle.js",
                                   swagger_css_url="/static/swagger/swagger-ui.css",
                                   swagger_favicon_url="/static/swagger/favicon-32x32.png")

    def signed_in(request: Request) -> auth.SessionInfo | None:
        return auth.session(engine, request.cookies.get(dashboard.COOKIE))

    def operator(request: Request) -> auth.SessionInfo | None:
        """The operator's session, or None: a clinician's or resident's session opens no figures."""
        info = signed_in(request)
        return info if info is not None and info.role == "operator" else None

    @app.get("/metrics", response_class=PlainTextResponse, include_in_schema=False)
    def metrics(request: Request) -> PlainTextResponse:
        """Prometheus figures: for a scraper with ``PHIP_METRICS_TOKEN`` or a logged-in operator."""
        token, given = get_settings().metrics_token, request.headers.get("authorization", "")
        scraper = bool(token) and given.lower().startswith("bearer ") and secrets.compare_digest(
            given[7:].strip().encode(), token.encode())  # type: ignore[union-attr]
        if not scraper:
            info = signed_in(request)
            if info is None:
                raise ApiError(401, *_METRICS_REFUSED, headers={"WWW-Authenticate": "Bearer"})
            if info.role != "operator":  # a clinician's or resident's session opens no figures
                raise ApiError(403, "ROLE_FORBIDDEN", "监控指标仅限运维人员读取")
        return PlainTextResponse(generate_latest(REGISTRY).decode(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", response_class=PlainTextResponse, summary="健康检查", tags=["运维 operations"],
             responses={**responses("ok", 503, media="text/plain")})
    def healthz() -> str:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return "ok"

    @app.get("/api/v1/standard", summary="数据采集标准：数据集列表", tags=["数据采集标准 standard"],
             responses=responses(STANDARD_INDEX))
    def standard_index() -> dict:
        return {
            "version": std.version,
            "datasets": [
                {"number": d.number, "code": d.code, "name": d.name, "name_en": d.name_en,
                 "category": d.category, "fields": len(d.fields), "natural_key": list(d.natural_key)}
                for d in std.datasets
            ],
        }

    @app.get("/api/v1/standard/{dataset}/schema", summary="数据集的 JSON Schema（上传前自校验）",
             tags=["数据采集标准 standard"], responses=responses(SCHEMA, 404, media="application/schema+json",
                                                           overrides={404: ("UNKNOWN_DATASET", "数据集“outpatient”不存在", None)}))
    def standard_schema(dataset: str) -> JSONResponse:
        try:
            ds = std.dataset(dataset)
        except KeyError:
            raise ApiError(404, "UNKNOWN_DATASET", f"数据集“{dataset}”不存在") from None
        return JSONResponse(dataset_schema(std, ds), media_type="application/schema+json")

    @app.get("/standard", response_class=HTMLResponse, include_in_schema=False)
    def standard_page() -> str:
        return render_html(std)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home(request: Request) -> Response:
        """The platform's figures for a logged-in operator; anyone else gets a landing page with
        the standard and the way to the login, and no figure of the platform."""
        if operator(request) is None:
            return HTMLResponse(render("landing.html", datasets=std.datasets, version=std.version))
        today = platform_now().date()
        received = [(day, n) for day, n in overview.daily_uploads(engine, today - timedelta(days=13), today) if n]
        return HTMLResponse(render("home.html", orgs=onboarding.onboarding_status(engine, "hospital"), received=received,
                                   visits=overview.dataset_records(engine, "outpatient_visit"), datasets=std.datasets,
                                   categories=CATEGORY_LABELS, version=std.version))

    return app


def serve(host: str, port: int, workers: int) -> None:
    """Run the service in uvicorn (``phip serve``). The store is migrated here, once, before
    any worker starts; each worker's health check waits ``PHIP_WORKER_START_SECONDS``."""
    import uvicorn

    runtime.engine()
    uvicorn.run("phip.api.app:create_app", factory=True, host=host, port=port, workers=workers, log_level="info",
                timeout_worker_healthcheck=get_settings().worker_start_seconds)
