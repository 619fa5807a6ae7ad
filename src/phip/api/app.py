"""HTTP service. Issue 2 ships the read-only standard endpoints, health and the home page;
the push API (issue 3) and dashboards (issue 5) add routers here."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from sqlalchemy import Engine, func, select, text

from phip import runtime
from phip.api import errors, push
from phip.api.errors import ApiError
from phip.ingest.pipeline import Pipeline
from phip.standard.catalog import CATEGORY_LABELS, load_standard
from phip.standard.export import dataset_schema, render_html
from phip.standard.validate import platform_now
from phip.store.models import EventDaily, IngestDaily
from phip.web.render import render


def create_app(engine: Engine | None = None) -> FastAPI:
    """Build the service; ``engine`` defaults to the configured store (tests pass their own)."""
    app = FastAPI(title="PHIP 全民健康信息平台", version="0.1.0", docs_url=None, redoc_url=None)
    std = load_standard()
    if engine is None:
        engine, pipeline = runtime.engine(), runtime.pipeline()
    else:
        pipeline = Pipeline(engine, std)
    errors.install(app)
    app.include_router(push.build_router(engine, pipeline))

    @app.get("/healthz", response_class=PlainTextResponse)
    def healthz() -> str:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return "ok"

    @app.get("/api/v1/standard")
    def standard_index() -> dict:
        return {
            "version": std.version,
            "datasets": [
                {"number": d.number, "code": d.code, "name": d.name, "name_en": d.name_en,
                 "category": d.category, "fields": len(d.fields), "natural_key": list(d.natural_key)}
                for d in std.datasets
            ],
        }

    @app.get("/api/v1/standard/{dataset}/schema")
    def standard_schema(dataset: str) -> JSONResponse:
        try:
            ds = std.dataset(dataset)
        except KeyError:
            raise ApiError(404, "UNKNOWN_DATASET", f"数据集“{dataset}”不存在") from None
        return JSONResponse(dataset_schema(std, ds), media_type="application/schema+json")

    @app.get("/standard", response_class=HTMLResponse)
    def standard_page() -> str:
        return render_html(std)

    @app.get("/", response_class=HTMLResponse)
    def home() -> str:
        from phip.orgs.service import list_institutions

        today = platform_now().date()
        with engine.connect() as conn:
            received = dict(conn.execute(
                select(IngestDaily.day, func.sum(IngestDaily.accepted + IngestDaily.updated))
                .where(IngestDaily.day >= today - timedelta(days=13)).group_by(IngestDaily.day)
            ).all())
            visits = conn.execute(
                select(func.coalesce(func.sum(EventDaily.records), 0)).where(EventDaily.dataset == "outpatient_visit")
            ).scalar_one()
        orgs = list_institutions(engine)
        return render("home.html", orgs=orgs, received=sorted(received.items()), visits=visits,
                      datasets=std.datasets, categories=CATEGORY_LABELS, version=std.version)

    return app
