"""Tables of the web portal (issue 13): accounts, sessions, sign-in links, submissions (报送),
requests (进展、销号、延期), attachments, the audit trail (留痕) and the board's lights.

Nothing here is ever deleted by the application: a returned request stays with its comment, a
corrected figure keeps its revision, every step leaves an `AuditEntry`. Sessions, sign-in links and
login attempts live in the database, not in a process, so several web workers behind a proxy agree.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from duban.store.models import Base, UTCDateTime

ROLES = ("office", "leader", "member", "unit")
ROLE_LABELS = {"office": "办公室", "leader": "专班领导", "member": "专班成员", "unit": "责任单位"}
REQUEST_KINDS = ("progress", "close", "extend")
REQUEST_KIND_LABELS = {"progress": "进展报告", "close": "销号申请", "extend": "延期申请"}
REQUEST_STATES = ("posted", "open", "approved", "returned")
REQUEST_STATE_LABELS = {"posted": "已报", "open": "待审批", "approved": "已同意", "returned": "已退回"}


class WebUser(Base):
    __tablename__ = "web_users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    login: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(Text, default="")
    role: Mapped[str] = mapped_column(String(10))
    unit_code: Mapped[str] = mapped_column(String(64), default="", index=True)
    email: Mapped[str] = mapped_column(Text, default="")
    password_hash: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class WebSession(Base):
    """A signed-in browser. The cookie holds a random token; the row holds only its SHA-256."""

    __tablename__ = "web_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("web_users.id"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    address: Mapped[str] = mapped_column(String(64), default="")


class SignInLink(Base):
    """A one-time sign-in link: signed, expiring, spent by the confirming POST (never by a GET)."""

    __tablename__ = "web_signin_links"
    nonce_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("web_users.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    used_from: Mapped[str] = mapped_column(String(64), default="")


class LoginAttempt(Base):
    __tablename__ = "web_login_attempts"
    __table_args__ = (Index("ix_login_attempt_key_at", "key", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    ok: Mapped[bool] = mapped_column(Boolean, default=False)


class Submission(Base):
    """One 报送: all its figures written in one import, or none. The receipt (回执) is this row."""

    __tablename__ = "submissions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    unit_code: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("web_users.id"))
    submitted_by: Mapped[str] = mapped_column(Text, default="")
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    method: Mapped[str] = mapped_column(String(10), default="form")  # form | upload
    source_name: Mapped[str] = mapped_column(Text, default="")
    values: Mapped[list[Any]] = mapped_column(JSON, default=list)  # [indicator, period, unit, value]
    explanations: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    values_hash: Mapped[str] = mapped_column(String(64))
    batch_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    address: Mapped[str] = mapped_column(String(64), default="")


class UnitRequest(Base):
    """A unit's progress report, 销号 request or extension request on one task (or alert)."""

    __tablename__ = "unit_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(10), index=True)
    unit_code: Mapped[str] = mapped_column(String(64), index=True)
    task_code: Mapped[str] = mapped_column(String(64), default="", index=True)
    alert_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    text: Mapped[str] = mapped_column(Text, default="")
    new_deadline: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    old_deadline: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("web_users.id"))
    created_by: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    decided_by: Mapped[str] = mapped_column(Text, default="")
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    decision_comment: Mapped[str] = mapped_column(Text, default="")


class Attachment(Base):
    __tablename__ = "attachments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("unit_requests.id"), index=True)
    filename: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # None when kept in a folder
    path: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class AuditEntry(Base):
    """留痕: who did what, when, from which address. Append-only."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_object", "object_type", "object_id"),)  # one request's history
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    actor: Mapped[str] = mapped_column(Text, default="")
    role: Mapped[str] = mapped_column(String(10), default="")
    unit_code: Mapped[str] = mapped_column(String(64), default="", index=True)
    action: Mapped[str] = mapped_column(String(40))
    object_type: Mapped[str] = mapped_column(String(20), default="")
    object_id: Mapped[str] = mapped_column(String(100), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    address: Mapped[str] = mapped_column(String(64), default="")


class BoardLight(Base):
    """The board's current light for one (rule, subject): written by a full evaluation, and
    re-written for just the subjects a submission touched."""

    __tablename__ = "board_lights"
    __table_args__ = (
        UniqueConstraint("rule", "subject_type", "subject", name="uq_board_light"),
        Index("ix_board_light_level", "level"),
        Index("ix_board_light_lead", "lead_unit"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule: Mapped[str] = mapped_column(String(200))
    rule_kind: Mapped[str] = mapped_column(String(20), default="")
    subject_type: Mapped[str] = mapped_column(String(20))
    subject: Mapped[str] = mapped_column(String(200))
    subject_name: Mapped[str] = mapped_column(Text, default="")
    lead_unit: Mapped[str] = mapped_column(String(64), default="")
    units_text: Mapped[str] = mapped_column(Text, default="")  # ";a;b;" so LIKE '%;a;%' finds a unit
    period_label: Mapped[str] = mapped_column(Text, default="")
    level: Mapped[str] = mapped_column(String(10), default="")  # red yellow green blue ''
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    expected: Mapped[float | None] = mapped_column(Float, nullable=True)
    measure: Mapped[str] = mapped_column(String(20), default="")
    deadline: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class BoardLightUnit(Base):
    """Each unit a light concerns, so a unit's page finds its lights by index instead of reading every
    light's `units_text`. Written and deleted with the lights."""

    __tablename__ = "board_light_units"
    unit_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    rule: Mapped[str] = mapped_column(String(200), primary_key=True)
    subject_type: Mapped[str] = mapped_column(String(20), primary_key=True)
    subject: Mapped[str] = mapped_column(String(200), primary_key=True)


class BoardRanking(Base):
    """晾晒: each unit's score and rank for a month, kept so the next month shows the movement."""

    __tablename__ = "board_rankings"
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    unit_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    red: Mapped[int] = mapped_column(Integer, default=0)
    yellow: Mapped[int] = mapped_column(Integer, default=0)
    green: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


__all__ = [
    "REQUEST_KINDS",
    "REQUEST_KIND_LABELS",
    "REQUEST_STATES",
    "REQUEST_STATE_LABELS",
    "ROLES",
    "ROLE_LABELS",
    "Attachment",
    "AuditEntry",
    "BoardLight",
    "BoardLightUnit",
    "BoardRanking",
    "LoginAttempt",
    "SignInLink",
    "Submission",
    "UnitRequest",
    "WebSession",
    "WebUser",
]
