"""The schema: programme lists, figures, and what the engine and notifiers record.

Codes are the natural keys admins see in spreadsheets and rule files, so the programme
lists use them as primary keys; engine and delivery tables use surrogate integer ids.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

UNIT_KINDS = ("department", "street", "county", "working_group")
INDICATOR_KINDS = ("level", "growth", "cumulative")
DIRECTIONS = ("at_least", "at_most")
REPORTED_AS = ("ytd", "month", "to_date")  # 本年累计 (default for cumulative) · 当月值 · 累计至今
TARGET_SHAPES = ("annual", "milestone", "final")
TARGET_COMPARISONS = ("at_least", "more_than", "about", "at_most")
TARGET_STRENGTHS = ("hard", "soft")
PROJECT_CATEGORIES = ("战略支撑型", "产业赋能型", "生活美好型")
PROJECT_LEVELS = ("省级", "市级")
TASK_STATUSES = ("open", "done")
# deadline: a result due by a date (reminders, then overdue); ongoing: 常态化/持续推进 duty with no
# result date — never overdue, a quarterly progress check instead.
TASK_KINDS = ("deadline", "ongoing")
FINAL_TARGET = "final"  # Target.scope for the programme-end target


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timestamps are stored in UTC and always come back timezone-aware.

    SQLite has no time zones and returns naive values; comparing those with aware
    `now` values would raise, so every timestamp goes through this type.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware datetime")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    pass


class Programme(Base):
    """The programme this database supervises (one row: one database per programme)."""

    __tablename__ = "programmes"
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    start: Mapped[dt.date] = mapped_column(Date)
    end: Mapped[dt.date] = mapped_column(Date)
    document: Mapped[str] = mapped_column(Text, default="")


class Unit(Base):
    __tablename__ = "units"
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    emails: Mapped[list[str]] = mapped_column(JSON, default=list)
    kind: Mapped[str] = mapped_column(String(20), default="department")


class Indicator(Base):
    __tablename__ = "indicators"
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    measure: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(20), default="level")
    direction: Mapped[str] = mapped_column(String(10), default="at_least")
    # How a cumulative figure is reported: '' (= ytd), ytd 本年累计, month 当月值, to_date 累计至今.
    reported_as: Mapped[str] = mapped_column(String(10), default="", server_default="")
    units: Mapped[list[IndicatorUnit]] = relationship(
        order_by="IndicatorUnit.position", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def unit_codes(self) -> list[str]:
        return [link.unit_code for link in self.units]


class IndicatorUnit(Base):
    """An indicator's responsible units, in document order (lead unit first)."""

    __tablename__ = "indicator_units"
    __table_args__ = (Index("ix_indicator_units_unit", "unit_code"),)  # a unit's own page
    indicator_code: Mapped[str] = mapped_column(ForeignKey("indicators.code"), primary_key=True)
    unit_code: Mapped[str] = mapped_column(ForeignKey("units.code"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Target(Base):
    """A target for one indicator: per year (scope '2023') or programme-end (scope 'final').

    `unit_code` is '' for the whole jurisdiction, or a unit's share of the target.
    """

    __tablename__ = "targets"
    indicator_code: Mapped[str] = mapped_column(ForeignKey("indicators.code"), primary_key=True)
    scope: Mapped[str] = mapped_column(String(10), primary_key=True)
    unit_code: Mapped[str] = mapped_column(String(64), primary_key=True, default="")
    value: Mapped[float] = mapped_column(Float)
    # As the document states it; '' = not stated (shape from scope, comparison at_least, strength the rule's).
    shape: Mapped[str] = mapped_column(String(10), default="", server_default="")
    comparison: Mapped[str] = mapped_column(String(10), default="", server_default="")
    strength: Mapped[str] = mapped_column(String(10), default="", server_default="")
    due: Mapped[dt.date | None] = mapped_column(Date, nullable=True)  # a milestone's date (default: end of its year)
    tolerance: Mapped[float | None] = mapped_column(Float, nullable=True)  # 左右, percent (None: the rule's, else 5)


class Observation(Base):
    """A reported figure. `unit_code` is '' for a jurisdiction-wide figure."""

    __tablename__ = "observations"
    __table_args__ = (
        UniqueConstraint("indicator_code", "period", "unit_code", name="uq_observation"),
        Index("ix_observation_period", "period"),
        # One series (an indicator's figures for one unit) in period order: the importer's series
        # check, a unit's owed figures, the board's chart.
        Index("ix_observation_series", "indicator_code", "unit_code", "period"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    indicator_code: Mapped[str] = mapped_column(ForeignKey("indicators.code"))
    period: Mapped[str] = mapped_column(String(7))
    unit_code: Mapped[str] = mapped_column(String(64), default="")
    value: Mapped[float] = mapped_column(Float)
    source_file: Mapped[str] = mapped_column(Text, default="")
    imported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # 报送日期: the day the figure was reported; it is visible to evaluations from then on.
    reported_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)


class ObservationRevision(Base):
    """History of a corrected figure: the value it replaced, who changed it and when."""

    __tablename__ = "observation_revisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    observation_id: Mapped[int] = mapped_column(ForeignKey("observations.id"), index=True)
    old_value: Mapped[float] = mapped_column(Float)
    new_value: Mapped[float] = mapped_column(Float)
    changed_by: Mapped[str] = mapped_column(Text, default="")
    source_file: Mapped[str] = mapped_column(Text, default="")
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Project(Base):
    __tablename__ = "projects"
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(10))
    level: Mapped[str] = mapped_column(String(10))
    total_investment: Mapped[float] = mapped_column(Float)
    units: Mapped[list[ProjectUnit]] = relationship(
        order_by="ProjectUnit.position", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def unit_codes(self) -> list[str]:
        return [link.unit_code for link in self.units]


class ProjectUnit(Base):
    __tablename__ = "project_units"
    __table_args__ = (Index("ix_project_units_unit", "unit_code"),)  # a unit's own page
    project_code: Mapped[str] = mapped_column(ForeignKey("projects.code"), primary_key=True)
    unit_code: Mapped[str] = mapped_column(ForeignKey("units.code"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class ProjectPlan(Base):
    """A project's planned investment for one year (亿元)."""

    __tablename__ = "project_plans"
    project_code: Mapped[str] = mapped_column(ForeignKey("projects.code"), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    planned_investment: Mapped[float] = mapped_column(Float)


class ProjectInvestment(Base):
    """Investment completed in one month (亿元), period 'YYYY-MM'."""

    __tablename__ = "project_investment"
    project_code: Mapped[str] = mapped_column(ForeignKey("projects.code"), primary_key=True)
    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    source_file: Mapped[str] = mapped_column(Text, default="")
    imported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Task(Base):
    __tablename__ = "tasks"
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    measures: Mapped[str] = mapped_column(Text, default="")
    goal: Mapped[str] = mapped_column(Text, default="")
    deadline: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    deadline_text: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(10), default="open")
    done_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    kind: Mapped[str] = mapped_column(String(10), default="deadline", server_default="deadline")
    # 力度 as the task list states it: hard (确保) or soft (力争); '' = read from the goal's own words.
    strength: Mapped[str] = mapped_column(String(10), default="", server_default="")
    units: Mapped[list[TaskUnit]] = relationship(
        order_by="TaskUnit.position", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def unit_codes(self) -> list[str]:
        return [link.unit_code for link in self.units]


class TaskUnit(Base):
    __tablename__ = "task_units"
    __table_args__ = (Index("ix_task_units_unit", "unit_code"),)  # a unit's own page
    task_code: Mapped[str] = mapped_column(ForeignKey("tasks.code"), primary_key=True)
    unit_code: Mapped[str] = mapped_column(ForeignKey("units.code"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class ImportBatch(Base):
    """One successful `duban import`: what was read, and how many rows changed."""

    __tablename__ = "import_batches"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    files: Mapped[list[str]] = mapped_column(JSON, default=list)
    inserted: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    imported_by: Mapped[str] = mapped_column(Text, default="")
    # `duban import --note`: why figures the plausibility checks queried are right (审核说明).
    note: Mapped[str] = mapped_column(Text, default="", server_default="")


class ObservationNote(Base):
    """A figure an import queried (审核: a share over 100, a running total that fell, a jump, a
    growth rate out of range) and the importer's note that explains it.

    One row per queried figure per import; the newest for an observation is the one to show
    beside it in reports.
    """

    __tablename__ = "observation_notes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    observation_id: Mapped[int] = mapped_column(ForeignKey("observations.id"), index=True)
    import_batch_id: Mapped[int] = mapped_column(ForeignKey("import_batches.id"))
    audit: Mapped[str] = mapped_column(String(20))  # which check: share, growth, shrink, jump
    message: Mapped[str] = mapped_column(Text)  # the warning as the importer saw it
    note: Mapped[str] = mapped_column(Text)
    noted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


# --- engine: alert lifecycle -------------------------------------------------------------


class Alert(Base):
    """One alert per (rule, subject, period): firing or resolved, with its level history."""

    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("rule", "subject_type", "subject", "period", name="uq_alert"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule: Mapped[str] = mapped_column(String(200))
    subject_type: Mapped[str] = mapped_column(String(20))
    subject: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(20))
    level: Mapped[str | None] = mapped_column(String(10), nullable=True)
    state: Mapped[str] = mapped_column(String(10), default="firing", index=True)
    units: Mapped[list[str]] = mapped_column(JSON, default=list)
    notify_units: Mapped[list[str]] = mapped_column(JSON, default=list)
    title: Mapped[str] = mapped_column(Text, default="")
    facts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    repeats: Mapped[int] = mapped_column(Integer, default=0)
    level_history: Mapped[list[Any]] = mapped_column(JSON, default=list)
    first_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    last_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_notified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    acked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    acked_by: Mapped[str] = mapped_column(Text, default="")


class Silence(Base):
    """Mutes matching notices until `until`. Empty match fields match anything."""

    __tablename__ = "silences"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule: Mapped[str] = mapped_column(String(200), default="")
    subject: Mapped[str] = mapped_column(String(64), default="")
    unit: Mapped[str] = mapped_column(String(64), default="")
    until: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(Text, default="")
    reason: Mapped[str] = mapped_column(Text, default="")


class Round(Base):
    """One evaluation round. `key` is unique per scheduled fire time: the scheduler's watermark."""

    __tablename__ = "rounds"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    job: Mapped[str] = mapped_column(String(200), default="", index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Notice(Base):
    """The ledger (台账): every notice decided, for whom, when and why."""

    __tablename__ = "notices"
    __table_args__ = (Index("ix_notice_recipient", "recipient_unit"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(400), unique=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), index=True)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"), nullable=True, index=True)
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id"), nullable=True, index=True)
    rule: Mapped[str] = mapped_column(String(200))
    subject_type: Mapped[str] = mapped_column(String(20))
    subject: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(20))  # warning reminder overdue praise escalation resolved digest
    level: Mapped[str | None] = mapped_column(String(10), nullable=True)
    recipient_unit: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text)
    facts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Delivery(Base):
    """An outbox row: one rendered message to one address over one channel.

    Senders claim rows with a conditional UPDATE (status pending -> sending), so two
    senders never send the same row; a crash leaves it 'sending' until its claim expires.
    """

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_delivery_due", "status", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(400), unique=True)
    message_id: Mapped[str] = mapped_column(String(300))
    round_id: Mapped[int | None] = mapped_column(ForeignKey("rounds.id"), nullable=True, index=True)
    channel: Mapped[str] = mapped_column(String(20), default="email")
    recipient_unit: Mapped[str] = mapped_column(String(64), default="")
    address: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default="pending")  # pending sending sent failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str] = mapped_column(String(100), default="")
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class DeliveryPayload(Base):
    """The exact bytes of one outbox message, kept apart from its delivery row.

    A delivery's status changes at least twice (claimed, then sent) and each change rewrites the
    whole row: with a 12 KB message inside it, every mark rewrote its overflow pages too.
    """

    __tablename__ = "delivery_payloads"
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"), primary_key=True)
    payload: Mapped[bytes] = mapped_column(LargeBinary)


class Setting(Base):
    """Small key/value state the service keeps (for example: calendar years already warned about)."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


__all__ = [
    "DIRECTIONS",
    "FINAL_TARGET",
    "INDICATOR_KINDS",
    "PROJECT_CATEGORIES",
    "PROJECT_LEVELS",
    "REPORTED_AS",
    "TARGET_COMPARISONS",
    "TARGET_SHAPES",
    "TARGET_STRENGTHS",
    "TASK_KINDS",
    "TASK_STATUSES",
    "UNIT_KINDS",
    "Alert",
    "Base",
    "Delivery",
    "DeliveryPayload",
    "ImportBatch",
    "Indicator",
    "IndicatorUnit",
    "Notice",
    "Observation",
    "ObservationRevision",
    "Programme",
    "Project",
    "ProjectInvestment",
    "ProjectPlan",
    "ProjectUnit",
    "Round",
    "Setting",
    "Silence",
    "Target",
    "Task",
    "TaskUnit",
    "Unit",
]
