"""HTTP service. Issue 2 ships the read-only standard endpoints, health and the home page;
the push API (issue 3) and dashboards (issue 5) add routers here."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from sqlalchemy import func, select, text

from phip import runtime
from phip.standard.catalog import CATEGORY_LABELS, load_standard
from phip.standard.export import dataset_schema, render_html
from phip.standard.validate import platform_now
from phip.store.models import EventDaily, IngestDaily
from phip.web.render import render


def create_app() -> FastAPI:
    app = FastAPI(title="PHIP 全民健康信息平台", version="0.1.0", docs_url=None, redoc_url=None)
    std = load_standard()

    @app.get("/healthz", response_class=PlainTextResponse)
    def healthz() -> str:
        with runtime.engine().connect() as conn:
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
            raise HTTPException(404, detail={"code": "UNKNOWN_DATASET", "message": f"数据集“{dataset}”不存在"}) from None
        return JSONResponse(dataset_schema(std, ds), media_type="application/schema+json")

    @app.get("/standard", response_class=HTMLResponse)
    def standard_page() -> str:
        return render_html(std)

    @app.get("/", response_class=HTMLResponse)
    def home() -> str:
        from phip.orgs.service import list_institutions

        engine = runtime.engine()
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
