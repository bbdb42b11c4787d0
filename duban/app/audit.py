"""留痕: one append-only row per step anybody takes through the web or the CLI."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from duban.app.accounts import Principal
from duban.store.web_models import REQUEST_KIND_LABELS, ROLE_LABELS, AuditEntry, UnitRequest, WebUser

ACTION_LABELS = {
    "signin_link": "通过一次性链接登录", "login": "密码登录", "logout": "退出登录",
    "submit": "在线报送", "upload": "上传报表", "request": "提交申请", "progress": "报告进展",
    "approve": "同意申请", "return": "退回申请", "ack": "确认告警", "silence": "设置静默",
    "import": "导入清单", "retry": "重新投递", "link_issued": "生成登录链接",
}


def record(session: Session, who: Principal | None, action: str, *, at: dt.datetime, address: str = "",
           object_type: str = "", object_id: str | int = "", unit_code: str = "", **detail: Any) -> AuditEntry:
    entry = AuditEntry(
        at=at, user_id=who.user_id if who else None, actor=who.login if who else "", role=who.role if who else "",
        unit_code=unit_code or (who.unit_code if who else ""), action=action, object_type=object_type,
        object_id=str(object_id), detail=detail, address=address[:64],
    )
    session.add(entry)
    return entry


def recent(session: Session, *, unit_code: str | None = None, object_type: str | None = None,
           object_id: str | None = None, limit: int = 200) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if unit_code is not None:
        query = query.where(AuditEntry.unit_code == unit_code)
    if object_type is not None:
        query = query.where(AuditEntry.object_type == object_type)
    if object_id is not None:
        query = query.where(AuditEntry.object_id == object_id)
    return list(session.scalars(query))


# --- one request's history -------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One state change of a unit's request, as its 留痕 shows it."""

    at: dt.datetime
    who: str  # name and role: 区发改局（责任单位）, 王主任（办公室）
    action: str  # 提交销号申请, 退回申请, 同意申请 …
    state: str  # the state it left the request in
    reason: str  # the unit's text, or the office's comment
    notes: tuple[str, ...]  # new deadline asked, attachments, alerts closed
    address: str


_STATE_AFTER = {"request": "待审批", "progress": "已报", "approve": "已同意", "return": "已退回"}


def request_history(session: Session, request: UnitRequest) -> list[Step]:
    """Every step of `request` from the audit rows (object `request`, its id), oldest first: who
    submitted it with what, who returned it and why, who approved it."""
    rows = list(session.scalars(select(AuditEntry).where(AuditEntry.object_type == "request",
                                                         AuditEntry.object_id == str(request.id))
                                .order_by(AuditEntry.at, AuditEntry.id)))
    ids = {row.user_id for row in rows if row.user_id is not None}
    names = dict(session.execute(select(WebUser.id, WebUser.name).where(WebUser.id.in_(ids))).all()) if ids else {}
    steps = []
    for row in rows:
        detail = row.detail or {}
        name = (names.get(row.user_id) if row.user_id is not None else None) or row.actor or "—"
        who = f"{name}（{ROLE_LABELS.get(row.role, row.role)}）" if row.role else name
        notes: list[str] = []
        if row.action in ("request", "progress"):
            kind = REQUEST_KIND_LABELS.get(str(detail.get("kind", request.kind)), "申请")
            action = "报告进展" if row.action == "progress" else f"提交{kind}"
            reason = request.text
            if detail.get("new_deadline"):
                notes.append(f"申请延期至 {chinese_date(str(detail['new_deadline']))}")
            if detail.get("attachments"):
                notes.append(f"附件 {detail['attachments']} 个")
        else:
            action = ACTION_LABELS.get(row.action, row.action)
            reason = str(detail.get("comment") or "")
            if detail.get("resolved_alerts"):
                notes.append(f"销号告警 {detail['resolved_alerts']} 条")
        steps.append(Step(row.at, who, action, _STATE_AFTER.get(row.action, ""), reason, tuple(notes), row.address))
    return steps


def chinese_date(value: dt.date | str | None) -> str:
    """2023-11-30 → 2023年11月30日 (what officials write); text that is not a date as it is."""
    from duban.notifiers.render import format_date_cn

    if isinstance(value, str):
        try:
            return format_date_cn(dt.date.fromisoformat(value))
        except ValueError:
            return value or "—"
    return format_date_cn(value)
