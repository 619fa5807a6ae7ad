"""Files of the onboarding page (对接进度): the weekly table as XLSX (seed 000's layout with
its summary sentence) and the blank reply form (对接工作回执, attachment 3)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import Engine

from phip.reports import onboarding_sheet, reply_form
from phip.standard.validate import platform_now

from .pages import XLSX, attachment
from .scope import Viewer


def build_router(engine: Engine, prefix: str, view: Callable[[Request], Viewer]) -> APIRouter:
    """``view`` is the dashboard's login check (it redirects to the login page) and tells which
    institutions the reader may see."""
    router = APIRouter(include_in_schema=False)

    @router.get(prefix + "/onboarding.xlsx")
    def onboarding_xlsx(request: Request, scope: str = "all") -> Response:
        v = view(request)
        scope = scope if scope in onboarding_sheet.SCOPES else "all"
        today = platform_now().date()
        return Response(onboarding_sheet.to_xlsx(engine, scope, today, within=v.within, area=v.area), media_type=XLSX,
                        headers=attachment(f"对接情况-{today:%Y%m%d}.xlsx"))

    @router.get(prefix + "/onboarding/reply-form.xlsx")
    def reply_template(request: Request) -> Response:
        view(request)
        return Response(reply_form.blank_form(), media_type=XLSX, headers=attachment("对接工作回执.xlsx"))

    return router
