"""The weekly onboarding table and its summary sentence as seed 000 (the Jilin weekly report)
lays them out: "截至9月18日，全省14家中省直医院、6个卫生健康业务系统实现与省全民健康信息平台
网络联通。其中，11家医院实现……" above a table 序号 | 名称 | 网络联通 | 数据上传 | 数据分析 in
three groups (医疗机构, 业务系统, 外部系统). Closed institutions are left out."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from io import BytesIO

from sqlalchemy import Engine

from phip.standard.validate import platform_now
from phip.standard.workbook import save_workbook

from .onboarding import KIND_LABELS, PROVINCIAL, Status, onboarding_status

HEADER = ("序号", "名称", "网络联通", "数据上传", "数据分析")
SCOPES = {"all": "", "provincial": "中省直"}


def weekly_rows(engine: Engine, scope: str = "all", *, within: Collection[str] | None = None) -> list[Status]:
    """The rows of the weekly table: active ones; ``provincial`` keeps the 中省直 hospitals only
    (隶属关系 中央 or 省属), with every system; ``within`` a regional reader's institutions."""
    rows = [s for s in onboarding_status(engine, within=within) if s.status == "active"]
    if scope == "provincial":
        rows = [s for s in rows if s.kind != "hospital" or s.affiliation in PROVINCIAL]
    return rows


def summary_sentence(rows: list[Status], as_of: date, scope: str = "all", area: str = "全省") -> str:
    """The report's sentence, counted from the same rows as the table; ``area`` names where
    (a regional reader's city or county instead of 全省)."""
    hospitals = [s for s in rows if s.kind == "hospital"]
    systems = [s for s in rows if s.kind == "business_system"]
    connected = sum(s.network == "connected" for s in hospitals)
    text = (f"截至{as_of.month}月{as_of.day}日，{area}{connected}家{SCOPES.get(scope, '')}医院、"
            f"{sum(s.network == 'connected' for s in systems)}个卫生健康业务系统实现与省全民健康信息平台网络联通。"
            f"其中，{sum(s.uploading for s in hospitals)}家医院实现部分电子病历类存量数据上传至省平台，"
            f"{sum(bool(s.analysed) for s in hospitals)}家医院完成上传存量数据分析。")
    interrupted = sum(s.interrupted for s in hospitals)
    if interrupted:
        text += f"另有{interrupted}家医院数据上传中断。"
    return text


def to_xlsx(engine: Engine, scope: str = "all", as_of: date | None = None, *, within: Collection[str] | None = None,
            area: str = "全省") -> bytes:
    """Row 1 the sentence, row 2 the header, then each group under its heading row; ``within``
    and ``area`` make a regional reader's table."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    as_of = as_of or platform_now().date()
    rows = weekly_rows(engine, scope, within=within)
    wb = Workbook()
    ws = wb.active
    ws.title = "对接情况"
    ws.append([summary_sentence(rows, as_of, scope, area)])
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(HEADER))
    ws.cell(1, 1).alignment = Alignment(wrap_text=True, vertical="top")
    ws.row_dimensions[1].height = 60
    ws.append(list(HEADER))
    for cell in ws[2]:
        cell.font = Font(bold=True)
    for kind, label in KIND_LABELS.items():
        group = [s for s in rows if s.kind == kind]
        if not group:
            continue
        ws.append([label])
        ws.merge_cells(start_row=ws.max_row, start_column=1, end_row=ws.max_row, end_column=len(HEADER))
        ws.cell(ws.max_row, 1).font = Font(bold=True)
        for n, s in enumerate(group, 1):
            labels = s.labels
            ws.append([n, s.name, labels["network"], labels["upload"], labels["analysis"]])
    for col, width in zip("ABCDE", (6, 36, 10, 24, 10), strict=True):
        ws.column_dimensions[col].width = width
    buf = BytesIO()
    save_workbook(wb, buf)
    return buf.getvalue()
