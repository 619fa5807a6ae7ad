"""Verification of the trail (校验审计日志): recompute every MAC in ``seq`` order, streaming,
and compare the head with the anchor. The first problem found is named by its ``seq``."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, select

from . import anchor, mac
from .tables import AuditEvent


@dataclass
class Verdict:
    checked: int = 0  # rows whose MAC was recomputed and found right
    head: anchor.Head | None = None  # the newest row in the database
    anchor: anchor.Head | None = None  # the newest head recorded outside it
    code: str | None = None
    message: str | None = None
    seq: int | None = None  # the row the problem names

    @property
    def ok(self) -> bool:
        return self.code is None

    def fail(self, code: str, message: str, seq: int | None) -> Verdict:
        self.code, self.message, self.seq = code, message, seq
        return self


def verify(engine: Engine) -> Verdict:
    key = mac.load_key(create=False)
    verdict = Verdict(anchor=anchor.read())
    t = AuditEvent.__table__
    previous, expected, at_anchor = mac.GENESIS, 1, None
    with engine.connect() as conn:
        rows = conn.execution_options(stream_results=True, yield_per=10_000).execute(select(t).order_by(t.c.seq))
        for row in rows.mappings():
            if row["seq"] != expected:
                return verdict.fail("AUDIT_EVENT_MISSING", f"缺少第 {expected} 条审计记录（已被删除）", expected)
            if row["mac"] != mac.link(key, previous, row):
                return verdict.fail("AUDIT_EVENT_ALTERED",
                                    f"第 {expected} 条审计记录与防篡改链不符（记录被修改、插入，或链被重算）", expected)
            previous, expected = row["mac"], expected + 1
            verdict.checked += 1
            if verdict.anchor is not None and row["seq"] == verdict.anchor.seq:
                at_anchor = row["mac"]
    if verdict.checked:
        verdict.head = anchor.Head(verdict.checked, previous, verdict.checked)
    return _against_anchor(verdict, at_anchor)


def _against_anchor(verdict: Verdict, mac_at_anchor: str | None) -> Verdict:
    head, anchored = verdict.head, verdict.anchor
    if anchored is None:
        if head is None:
            return verdict
        return verdict.fail("AUDIT_ANCHOR_MISSING", f"锚点文件不存在，而数据库有 {head.count} 条审计记录："
                            "无法确认最新记录未被删除（检查 PHIP_AUDIT_ANCHOR_FILE）", None)
    if head is None:
        return verdict.fail("AUDIT_ALL_DELETED", f"审计记录被全部删除：锚点记录有 {anchored.count} 条，数据库中一条也没有", 1)
    if head.seq < anchored.seq:
        return verdict.fail("AUDIT_TAIL_DELETED", f"最新的审计记录被删除：锚点记录到第 {anchored.seq} 条，"
                            f"数据库只到第 {head.seq} 条（缺少第 {head.seq + 1} 条起）", head.seq + 1)
    if mac_at_anchor != anchored.mac:
        return verdict.fail("AUDIT_ANCHOR_MISMATCH", f"第 {anchored.seq} 条审计记录与锚点不符（整条链被替换或重算）",
                            anchored.seq)
    return verdict
