"""留痕: one append-only row per step anybody takes through the web or the CLI."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from duban.app.accounts import Principal
from duban.store.web_models import AuditEntry

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
