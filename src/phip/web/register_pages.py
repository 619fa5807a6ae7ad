"""The institution register page (机构登记, /ops/register): what an operator of the provincial
centre uses instead of ``phip orgs add|update|close|reopen|import|export|history``.

The list with its filters, an institution's page with its change history, the add and change
forms, close and re-open, the XLSX import (all rows or none) and export. The register's rules
live in :mod:`phip.orgs.register`; this module only turns form fields into its calls and its
refusals (:class:`~phip.orgs.register.RegisterError`) back into the form, status 422, nothing
written. A regional reader reads its own region's institutions and changes nothing.
Built by the dashboard's router with its login (``view``, ``writer``), page renderer and 404.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel
from sqlalchemy import Engine

from phip import accounts as auth
from phip.orgs import codes
from phip.orgs.register import (
    ACTIONS, FIELD_LABELS, KINDS, METHOD_LABELS, OWNERSHIPS, STATUS_LABELS, RegisterError, add_institution, check,
    history, institution, placeholders, registered, set_status, shown, update_institution,
)
from phip.orgs.register_sheet import ImportResult, export_register, import_register
from phip.standard.sheet import SheetError
from phip.standard.validate import platform_now

from .pages import XLSX, attachment
from .scope import Viewer, area_name, viewer_of

PREFIX = "/ops/register"
MAX_UPLOAD = 10 * 1024 * 1024  # a register of every institution of the province is far smaller
#: What the change form sets; the code and the kind are given once, when an institution is added.
EDITABLE = ("name", "region_code", "county_code", "level", "category", "affiliation", "ownership", "docking_method")
ADDED = ("code", "kind", *EDITABLE)
STATES = {"close": "closed", "reopen": "active"}
CSRF_REFUSED = "表单已过期或来源不明（CSRF校验失败），请刷新页面后重试"


class RegisterForm(BaseModel):
    """The add and change forms as typed: every field a string, blank when not filled;
    ``confirm`` lists the placeholder fields the operator ticked as checked (核实无误)."""

    csrf_token: str = ""
    code: str = ""
    kind: str = "hospital"
    name: str = ""
    region_code: str = ""
    county_code: str = ""
    level: str = ""
    category: str = ""
    affiliation: str = ""
    ownership: str = ""
    docking_method: str = ""
    confirm: list[str] = []

    def values(self, fields: Collection[str]) -> dict[str, str]:
        return {f: getattr(self, f).strip() for f in fields}


@dataclass(frozen=True)
class Filters:
    """The list's filters; the export takes the same, so a download holds what the page shows."""

    region: str = ""
    kind: str = ""
    status: str = ""
    q: str = ""

    def keep(self, row: dict[str, Any]) -> bool:
        q = self.q.strip()
        return ((not self.region or row["region_code"] == self.region) and (not self.kind or row["kind"] == self.kind)
                and (not self.status or row["status"] == self.status)
                and (not q or q.upper() in row["code"] or q in row["name"]))

    @property
    def query(self) -> str:
        return urlencode({k: v for k, v in asdict(self).items() if v})


def choices() -> dict[str, list[tuple[str, str]]]:
    """The options of each code-table field: (value as stored, what people read)."""
    regions = codes.regions().values()
    return {
        "kind": list(KINDS.items()),
        "region_code": [(r.code, f"{'省直' if r.level == 'province' else r.name}（{r.code}）") for r in regions if r.region],
        "county_code": [(r.code, f"{area_name(r.code)}（{r.code}）") for r in regions if r.level == "county"],
        "level": [(label, label) for label in codes.grades().values()],
        "category": [(c, f"{label}（{c}）") for c, label in codes.categories().items()],
        "affiliation": list(codes.affiliations().items()),
        "ownership": [(o, o) for o in OWNERSHIPS],
        "docking_method": list(METHOD_LABELS.items()),
        "status": list(STATUS_LABELS.items()),
    }


def said(field: str, value: Any) -> str:
    """A history value as people read it; the placeholder list by its fields' names."""
    if field == "placeholder" and value:
        return "、".join(FIELD_LABELS.get(p, p) for p in str(value).split(";"))
    return shown(field, value)


def edited(current: dict[str, Any], form: RegisterForm) -> dict[str, str]:
    """The fields the operator changed or ticked as checked. The form sends every field, and a
    field handed to the register stops being a placeholder, so an untouched one stays out."""
    given = form.values(EDITABLE)
    normal = check({**given, "_region_code": given["region_code"] or current["region_code"]})
    return {k: v for k, v in given.items() if normal.get(k) != current.get(k) or k in form.confirm}


def notice(done: str, name: str = "", counts: tuple[int, int, int] = (0, 0, 0)) -> str:
    """The confirmation line after a redirect, built here from a fixed word: the address
    carries no text of its own to show."""
    lines = {"add": "已登记新机构" + (f"：{name}" if name else ""), "update": "已保存修改", "same": "没有变化：所填内容与登记一致",
             "close": "已关停：不再计入统计，数据保留", "reopen": "已重新启用",
             "import": "导入完成：新登记 {} 家，修改 {} 家，无变化 {} 家".format(*counts)}
    return lines.get(done, "")


def _form_of(row: dict[str, Any]) -> dict[str, str]:
    return {f: "" if row.get(f) is None else str(row[f]) for f in ADDED}


def _sheet_row(exc: SheetError) -> str:
    found = re.match(r"第(\d+)行", exc.message)
    return found[1] if found else ""


def _suffix(filename: str) -> str:
    suffix = Path(filename).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""


def save_upload(upload: UploadFile | None, folder: Path) -> Path:
    """The upload as a file the sheet reader opens by its suffix; capped, since the reader holds
    every row in memory."""
    if upload is None or not upload.filename:
        raise SheetError("NO_FILE", "请选择要导入的机构登记表（XLSX）")
    path = folder / f"register{_suffix(upload.filename)}"
    size = 0
    with path.open("wb") as out:
        while chunk := upload.file.read(1 << 20):
            size += len(chunk)
            if size > MAX_UPLOAD:
                raise SheetError("FILE_TOO_LARGE", f"文件超过{MAX_UPLOAD >> 20}MB，请分批导入")
            out.write(chunk)
    return path


def build_router(engine: Engine, view: Callable[[Request], Viewer], writer: Callable[[Request], auth.SessionInfo],
                 page: Callable[..., HTMLResponse], missing: Callable[[Viewer, str], HTMLResponse]) -> APIRouter:
    """``view`` reads (a regional reader only its region), ``writer`` lets operators only
    through (the 403 page otherwise), ``missing`` is the dashboard's 404 of an institution."""
    router = APIRouter(include_in_schema=False)
    options = choices()

    def listing(v: Viewer, f: Filters) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        rows = registered(engine, v.within)
        return rows, [r for r in rows if f.keep(r)]

    def list_page(v: Viewer, f: Filters, status_code: int = 200, **ctx: Any) -> HTMLResponse:
        rows, kept = listing(v, f)
        regions = sorted({(r["region_code"], r["region_name"]) for r in rows})
        ctx.setdefault("form", _form_of({"kind": "hospital"}))
        return page("register.html", status_code, me=v.me, area=v.area, active="register", rows=kept, total=len(rows),
                    f=f, regions=regions, can_write=not v.regional, choices=options, shown=shown, ph=placeholders,
                    labels=FIELD_LABELS, **ctx)

    def org_page(v: Viewer, row: dict[str, Any], status_code: int = 200, **ctx: Any) -> HTMLResponse:
        ctx.setdefault("form", _form_of(row))
        return page("register_org.html", status_code, me=v.me, area=v.area, active="register", inst=row,
                    changes=history(engine, row["code"]), actions=ACTIONS, labels=FIELD_LABELS,
                    can_write=not v.regional, choices=options, shown=shown, said=said, ph=placeholders(row), **ctx)

    def operator(request: Request, token: str) -> tuple[Viewer, HTMLResponse | None]:
        """The operator of a POST, and the 403 page when the form's CSRF token is not the session's."""
        me = writer(request)
        v = viewer_of(engine, me)
        if not auth.csrf_ok(me.csrf_token, token):
            return v, page("error.html", 403, me=me, message=CSRF_REFUSED)
        return v, None

    def registered_row(v: Viewer, code: str) -> dict[str, Any] | None:
        row = institution(engine, code)
        return row if row is not None and (v.within is None or code in v.within) else None

    def operator_on(request: Request, token: str, code: str) -> tuple[Viewer, dict[str, Any]] | HTMLResponse:
        """The operator and the institution a POST changes, or the page refusing it (403, 404)."""
        v, refused = operator(request, token)
        row = None if refused else registered_row(v, code)
        return refused or (missing(v, code) if row is None else (v, row))

    def imported(upload: UploadFile | None, by: str) -> ImportResult:
        with TemporaryDirectory(prefix="phip-register-") as folder:
            return import_register(engine, save_upload(upload, Path(folder)), by)

    @router.get(PREFIX, response_class=HTMLResponse)
    def register_page(request: Request, region: str = "", kind: str = "", status: str = "", q: str = "", done: str = "",
                      code: str = "", added: Annotated[int, Query(ge=0)] = 0, updated: Annotated[int, Query(ge=0)] = 0,
                      unchanged: Annotated[int, Query(ge=0)] = 0) -> HTMLResponse:
        v = view(request)
        row = registered_row(v, code) if code else None
        return list_page(v, Filters(region, kind, status, q),
                         notice=notice(done, row["name"] if row else "", (added, updated, unchanged)), new=row)

    @router.get(PREFIX + ".xlsx")
    def register_xlsx(request: Request, region: str = "", kind: str = "", status: str = "", q: str = "") -> Response:
        _, kept = listing(view(request), Filters(region, kind, status, q))
        body = export_register(engine, {r["code"] for r in kept})
        return Response(body, media_type=XLSX, headers=attachment(f"机构登记表-{platform_now():%Y%m%d}.xlsx"))

    @router.post(PREFIX)
    def add(request: Request, form: Annotated[RegisterForm, Form()]) -> Response:
        v, refused = operator(request, form.csrf_token)
        if refused:
            return refused
        try:
            change = add_institution(engine, form.values(ADDED), v.me.username)
        except RegisterError as exc:
            return list_page(v, Filters(), 422, form=form.values(ADDED), error=exc)
        return RedirectResponse(f"{PREFIX}?done=add&code={quote(change.code)}", status_code=303)

    @router.post(PREFIX + "/import")
    def import_sheet(request: Request, file: UploadFile | None = None,
                     csrf_token: Annotated[str, Form()] = "") -> Response:
        v, refused = operator(request, csrf_token)
        if refused:
            return refused
        try:
            result = imported(file, v.me.username)
        except SheetError as exc:
            return list_page(v, Filters(), 422, import_error=exc, import_row=_sheet_row(exc))
        counts = {"added": result.added, "updated": result.updated, "unchanged": result.unchanged}
        return RedirectResponse(f"{PREFIX}?done=import&{urlencode(counts)}", status_code=303)

    @router.get(PREFIX + "/{code}", response_class=HTMLResponse)
    def org(request: Request, code: str, done: str = "") -> HTMLResponse:
        v = view(request)
        row = registered_row(v, code)
        if row is None:
            return missing(v, code)
        # a confirmation the register contradicts (?done=close on an active institution, a
        # forged or stale link) is not shown
        closed = row.get("status") == "closed"
        said = "" if (done == "close" and not closed) or (done == "reopen" and closed) else notice(done)
        return org_page(v, row, notice=said)

    @router.post(PREFIX + "/{code}")
    def change(request: Request, code: str, form: Annotated[RegisterForm, Form()]) -> Response:
        found = operator_on(request, form.csrf_token, code)
        if isinstance(found, Response):
            return found
        v, row = found
        try:
            values = edited(row, form)
            done = "update" if values and update_institution(engine, code, values, v.me.username).fields else "same"
        except RegisterError as exc:
            return org_page(v, row, 422, form={**_form_of(row), **form.values(EDITABLE)}, error=exc)
        return RedirectResponse(f"{PREFIX}/{quote(code)}?done={done}", status_code=303)

    @router.post(PREFIX + "/{code}/{action}")
    def close_or_reopen(request: Request, code: str, action: Literal["close", "reopen"],
                        csrf_token: Annotated[str, Form()] = "") -> Response:
        found = operator_on(request, csrf_token, code)
        if isinstance(found, Response):
            return found
        v, row = found
        try:
            set_status(engine, code, STATES[action], v.me.username)
        except RegisterError as exc:
            return org_page(v, row, 422, error=exc)
        return RedirectResponse(f"{PREFIX}/{quote(code)}?done={action}", status_code=303)

    return router
