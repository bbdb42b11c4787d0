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


# --- the office's 留痕 page -------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One audit row as an official reads it: who, what, on which object (with a link), when, details."""

    at: dt.datetime
    who: str  # 区发改局（责任单位）, 工作专班办公室
    action: str  # 在线报送, 确认告警 …
    object: str  # 报送回执 HZ20230715-000001, 告警 #12 “…” …
    href: str  # the object's page, '' when it has none
    details: str  # in words; '' when there is nothing to add
    address: str


def _who(name: str, role: str) -> str:
    from duban.app.accounts import display_name, role_label

    return role_label(display_name(name, role), role) if role else name


def _kind_label(value: Any) -> str:
    return REQUEST_KIND_LABELS.get(str(value), str(value))


def describe(session: Session, rows: list[AuditEntry]) -> list[Line]:
    """The rows of the 留痕 page, newest first as given: names instead of ids, Chinese instead of keys."""
    from duban.store.models import Alert, Delivery, Task, Unit

    users = {row.user_id for row in rows if row.user_id is not None}
    names = dict(session.execute(select(WebUser.id, WebUser.name).where(WebUser.id.in_(users))).all()) if users else {}
    units = dict(session.execute(select(Unit.code, Unit.name)).all())

    def ids(kind: str) -> set[int]:
        return {int(row.object_id) for row in rows if row.object_type == kind and row.object_id.isdigit()}

    alerts = {a.id: a.title for a in session.scalars(select(Alert).where(Alert.id.in_(ids("alert"))))} if ids("alert") else {}
    deliveries = {d.id: d for d in session.scalars(select(Delivery).where(Delivery.id.in_(ids("delivery"))))} \
        if ids("delivery") else {}
    requests = {r.id: r for r in session.scalars(select(UnitRequest).where(UnitRequest.id.in_(ids("request"))))} \
        if ids("request") else {}
    tasks = {str(r.task_code) for r in requests.values()}
    titles = dict(session.execute(select(Task.code, Task.title).where(Task.code.in_(tasks))).all()) if tasks else {}
    lines = []
    for row in rows:
        detail = dict(row.detail or {})
        name = (names.get(row.user_id) if row.user_id is not None else None) or row.actor or "系统"
        obj, href = _object(row, units, alerts, deliveries, requests, titles)
        lines.append(Line(row.at, _who(name, row.role), ACTION_LABELS.get(row.action, row.action), obj, href,
                          _details(row.action, detail, units), row.address))
    return lines


def _object(row: AuditEntry, units: dict[str, str], alerts: dict[int, str], deliveries: dict[int, Any],
            requests: dict[int, UnitRequest], titles: dict[str, str]) -> tuple[str, str]:
    kind, key = row.object_type, row.object_id
    number = int(key) if key.isdigit() else None
    if kind == "user":
        return "", ""  # signing in and out concern the account itself, already named under 操作人
    if kind == "submission":
        return f"报送回执 {key}", f"/unit/{row.unit_code}/receipt/{key}" if row.unit_code else ""
    if kind == "request" and number is not None:
        req = requests.get(number)
        if req is None:
            return f"申请 #{key}", ""
        title = titles.get(req.task_code, req.task_code)
        return (f"{units.get(req.unit_code, req.unit_code)}的{_kind_label(req.kind)} #{key}（任务“{title}”）",
                f"/unit/{req.unit_code}/request/{key}")
    if kind == "alert" and number is not None:
        alert_title = alerts.get(number, "")
        return (f"告警 #{key}" + (f"：{alert_title}" if alert_title else "")), "/office/alerts"
    if kind == "silence" and number is not None:
        return f"静默 #{key}", "/office/alerts"
    if kind == "delivery" and number is not None:
        delivery = deliveries.get(number)
        if delivery is None:
            return f"通知 #{key}", "/office/outbox"
        return f"通知 #{key}：{delivery.subject}（{delivery.address}）", "/office/outbox"
    if kind == "import":
        return (f"导入批次 {key}" if key else "导入"), ""
    return (f"{kind} {key}".strip(), "")


def _details(action: str, detail: dict[str, Any], units: dict[str, str]) -> str:
    parts: list[str] = []
    if action in ("submit", "upload"):
        if detail.get("figures") is not None:
            parts.append(f"数据 {detail['figures']} 项")
        if detail.get("warnings"):
            parts.append(f"其中需核实 {detail['warnings']} 处（已附说明）")
        if detail.get("hash"):
            parts.append(f"校验码 {str(detail['hash'])[:12]}…")
    if action in ("request", "progress", "approve", "return"):
        if detail.get("new_deadline"):
            parts.append(f"申请延期至 {chinese_date(str(detail['new_deadline']))}")
        if detail.get("attachments"):
            parts.append(f"附件 {detail['attachments']} 个")
        if detail.get("comment"):
            parts.append(f"意见：{detail['comment']}")
        if detail.get("resolved_alerts"):
            parts.append(f"销号告警 {detail['resolved_alerts']} 条")
    if action in ("ack", "silence"):
        if detail.get("until"):
            parts.append(f"至 {chinese_date(str(detail['until']))}")
        scope = []
        if detail.get("rule"):
            scope.append(f"规则 {detail['rule']}")
        if detail.get("subject"):
            scope.append(f"对象 {detail['subject']}")
        if detail.get("unit"):
            scope.append(f"单位 {units.get(str(detail['unit']), detail['unit'])}")
        if action == "silence":
            parts.append("范围：" + ("，".join(scope) if scope else "全部"))
        if detail.get("reason"):
            parts.append(f"理由：{detail['reason']}")
    if action == "import" and detail.get("files"):
        parts.append("文件：" + "、".join(str(f) for f in detail["files"]))
    return "；".join(parts)
