"""The store as it stood at a moment T: what an evaluation is allowed to see.

Only periods that had ended by T are visible (the figures for July do not exist on 15 July,
even when the store already holds them), and a task counts as done only from its done date.
A figure is visible from the day it was reported (`reported_on`), else from its import
(`imported_at`) — or, for a moment before that import (a replay, `evaluate --at` in the past),
from the due date of its period's figures (the 10th of the following month): the 3 July round
does not see June figures due on 10 July. This is what makes `simulate` and replays honest.

Such a figure was filed on time, at a moment the store does not know. Lights never read it before
its due date; but a reminder before the due date ("请于7月10日前报送") must not chase it either:
the replay cannot tell that the unit had not filed yet, and in the example data every unit files
on time. The snapshot lists these figures apart (`filed_unseen`) for the report-due rules only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Engine, Executable, Select, and_, or_, select
from sqlalchemy.orm import Session

from duban.store.gcpause import gc_paused
from duban.store.models import (
    Indicator,
    IndicatorUnit,
    Observation,
    Programme,
    Project,
    ProjectInvestment,
    ProjectPlan,
    ProjectUnit,
    Target,
    Task,
    TaskUnit,
    Unit,
)
from duban.store.periods import SHANGHAI, figures_due, has_ended, local_date, parse_period


@dataclass(frozen=True)
class UnitInfo:
    code: str
    name: str
    emails: tuple[str, ...]
    kind: str


@dataclass(frozen=True)
class IndicatorInfo:
    code: str
    name: str
    measure: str
    kind: str
    direction: str
    units: tuple[str, ...]
    reported_as: str = ""  # cumulative figures: ytd 本年累计 (default), month 当月值, to_date 累计至今


@dataclass(frozen=True)
class TargetSpec:
    """A target as the document states it (targets list), resolved to defaults where a column was empty."""

    value: float
    shape: str  # annual | milestone | final
    comparison: str  # at_least | more_than | about | at_most
    strength: str  # hard | soft | '' (not stated: the rule's)
    due: dt.date | None  # milestone: the date by which; final: None (the programme's end)
    tolerance: float | None  # 左右, percent; None: the rule's, else 5


@dataclass(frozen=True)
class ProjectInfo:
    code: str
    name: str
    category: str
    level: str
    total_investment: float
    units: tuple[str, ...]


SOFT_WORDS = ("力争", "争取")  # a stretch goal (docs/data.md, tasks: 力度)


@dataclass(frozen=True)
class TaskInfo:
    code: str
    title: str
    measures: str
    goal: str
    deadline: dt.date | None
    deadline_text: str
    units: tuple[str, ...]
    done_on: dt.date | None  # None while not done as of the snapshot's moment
    kind: str = "deadline"  # deadline | ongoing (常态化: no overdue, a quarterly progress check)
    stated_strength: str = ""  # the task list's 力度 column: hard | soft | '' (read from the goal)

    @property
    def ongoing(self) -> bool:
        return self.kind == "ongoing"

    @property
    def done(self) -> bool:
        return self.done_on is not None

    @property
    def due_text(self) -> str:
        """What the task must deliver: its goal (主要目标), or its measures when the goal column only
        repeats the 时间节点 (“2023全年”)."""
        return self.goal if self.goal and self.goal != self.deadline_text else self.measures or self.goal

    @property
    def strength(self) -> str:
        """soft when the task's own goal is a stretch goal (力争/争取 anywhere in it), else hard.

        One task is one light: when any of what it must deliver is only 力争, missing the date is not
        certainly a failure, so it is yellow at worst (a wrong red light is worse than none). The hard
        figures in the same row keep their own indicator rules (rules/lucheng/README.md). The task list's
        力度 column, when filled, says it outright and wins over the reading."""
        if self.stated_strength:
            return self.stated_strength
        return "soft" if any(word in self.due_text for word in SOFT_WORDS) else "hard"


@dataclass(frozen=True)
class ProgrammeInfo:
    code: str
    name: str
    start: dt.date
    end: dt.date
    document: str


@dataclass
class Snapshot:
    """Read-only by contract: snapshots built from the same StoreRows share their lists of units,
    indicators, targets, projects and plans."""

    at: dt.datetime
    programme: ProgrammeInfo | None
    units: dict[str, UnitInfo] = field(default_factory=dict)
    indicators: dict[str, IndicatorInfo] = field(default_factory=dict)
    targets: dict[tuple[str, str, str], float] = field(default_factory=dict)
    # the same keys: shape, comparison, strength, due date, tolerance of each target
    target_specs: dict[tuple[str, str, str], TargetSpec] = field(default_factory=dict)
    # indicator -> unit ('' = whole) -> period code -> value, ended periods only
    observations: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    projects: dict[str, ProjectInfo] = field(default_factory=dict)
    plans: dict[tuple[str, int], float] = field(default_factory=dict)
    investments: dict[str, dict[str, float]] = field(default_factory=dict)
    tasks: dict[str, TaskInfo] = field(default_factory=dict)
    # indicator -> unit -> periods filed on time at a moment not recorded (imported after T without a
    # 报送日期, their period ended but not yet due at T): not figures yet, but not to be chased
    filed_unseen: dict[str, dict[str, set[str]]] = field(default_factory=dict)

    @property
    def today(self) -> dt.date:
        return local_date(self.at)

    @property
    def working_group_units(self) -> tuple[str, ...]:
        """Units of kind working_group (工作专班), by code."""
        return tuple(sorted(code for code, unit in self.units.items() if unit.kind == "working_group"))


def _ended_codes(codes: Iterable[str], at: dt.datetime) -> list[str]:
    ended = []
    for code in codes:
        try:
            if has_ended(parse_period(code), at):
                ended.append(code)
        except ValueError:
            continue  # the importer admits only canonical codes; anything else is not a period
    return ended


def _ended_rows(connection: Connection, columns: Sequence[Any], period: Any, at: dt.datetime | None,
                imported_at: Any = None, reported_on: Any = None, codes: list[str] | None = None) -> Sequence[Any]:
    """Rows of a periodic table whose period had ended at `at` (all rows if None), filtered by the database.

    The filter compares `period || ''` rather than `period`: with a bare column SQLite walks the
    period index and fetches half a table row by row, twice as slow as scanning it (measured on
    the province benchmark: 0.33 s against 0.15 s for 180,000 of 360,000 rows).
    """
    statement: Select[Any] = select(*columns)
    if at is not None:
        if codes is None:
            codes = list(connection.execute(select(period).distinct()).scalars())
        ended = _ended_codes(codes, at)
        if len(ended) < len(codes):
            statement = statement.where(period.concat("").in_(ended))
        if imported_at is not None:
            # Known at `at`: reported by then; else imported by then, or (a moment before the
            # import: a replay) its period's figures were due by then.
            today = local_date(at)
            due = [code for code in ended if figures_due(parse_period(code)) <= today]
            known = or_(imported_at <= at, period.concat("").in_(due)) if len(due) < len(ended) else None
            if reported_on is not None:
                unreported = reported_on.is_(None) if known is None else and_(reported_on.is_(None), known)
                statement = statement.where(or_(reported_on <= today, unreported))
            elif known is not None:
                statement = statement.where(known)
    return _plain_rows(connection, statement)


def _visible_from(imported_at: Any, reported_on: Any, period: str, cache: dict[Any, Any]) -> dt.datetime:
    """The moment a figure became known (see the module docstring), from the driver's raw values."""
    key = (imported_at, reported_on, period)
    found = cache.get(key)
    if found is not None:
        return found
    if reported_on is not None:
        day = reported_on if isinstance(reported_on, dt.date) else dt.date.fromisoformat(str(reported_on)[:10])
        moment = dt.datetime.combine(day, dt.time(), SHANGHAI)
    else:
        imported = imported_at if isinstance(imported_at, dt.datetime) else dt.datetime.fromisoformat(str(imported_at))
        if imported.tzinfo is None:
            imported = imported.replace(tzinfo=dt.UTC)
        try:
            due = dt.datetime.combine(figures_due(parse_period(period)), dt.time(), SHANGHAI)
        except ValueError:
            due = imported
        moment = min(imported, due)
    cache[key] = moment
    return moment


def _plain_rows(connection: Connection, statement: Executable) -> Sequence[Any]:
    """The driver's own tuples, for columns that need no type processing (strings, numbers).

    Wrapping 360,000 rows in SQLAlchemy Row objects costs as much as SQLite's own fetch.
    Dates and JSON columns must go through SQLAlchemy: SQLite stores them as text.
    """
    result = connection.execute(statement)
    try:
        return result.cursor.fetchall()
    finally:
        result.close()


def _links(connection: Connection, column_owner: Any, owner_attr: str) -> dict[str, tuple[str, ...]]:
    owner = getattr(column_owner, owner_attr)
    rows = _plain_rows(connection, select(owner, column_owner.unit_code).order_by(owner, column_owner.position))
    return {key: tuple(unit for _, unit in group) for key, group in groupby(rows, key=itemgetter(0))}


@dataclass
class StoreRows:
    """The rows a snapshot is built from, as read from the store."""

    programme: ProgrammeInfo | None
    units: dict[str, UnitInfo]
    indicators: dict[str, IndicatorInfo]
    targets: dict[tuple[str, str, str], float]
    # indicator, unit, period, value (+ the moment it became known, when read for many moments)
    observations: Sequence[tuple[Any, ...]]
    projects: dict[str, ProjectInfo]
    plans: dict[tuple[str, int], float]
    investments: Sequence[tuple[Any, ...]]  # project, period, value (+ the moment it became known)
    tasks: Sequence[tuple[str, str, str, str, dt.date | None, str, str, dt.date | None, str, str]]
    task_units: dict[str, tuple[str, ...]]
    periods_filtered: bool  # True when only periods ended (and figures known) at the moment read are present
    target_specs: dict[tuple[str, str, str], TargetSpec] = field(default_factory=dict)
    # periods_filtered: (indicator, unit, period) of figures filed on time, not yet visible (Snapshot.filed_unseen)
    filed_unseen: Sequence[tuple[str, str, str]] = ()


def read_rows(connection: Connection, at: dt.datetime | None) -> StoreRows:
    """Read what snapshots need; with `at`, periods not yet ended are left in the database."""
    programme_row = connection.execute(
        select(Programme.code, Programme.name, Programme.start, Programme.end, Programme.document)
    ).first()
    units = {code: UnitInfo(code, name, tuple(emails or ()), kind) for code, name, emails, kind in
             connection.execute(select(Unit.code, Unit.name, Unit.emails, Unit.kind)).all()}
    indicator_units = _links(connection, IndicatorUnit, "indicator_code")
    indicators = {code: IndicatorInfo(code, name, measure, kind, direction, indicator_units.get(code, ()),
                                      (reported_as or "ytd") if kind == "cumulative" else "")
                  for code, name, measure, kind, direction, reported_as in _plain_rows(connection, select(
                      Indicator.code, Indicator.name, Indicator.measure, Indicator.kind, Indicator.direction,
                      Indicator.reported_as))}
    target_rows = connection.execute(select(
        Target.indicator_code, Target.scope, Target.unit_code, Target.value, Target.shape, Target.comparison,
        Target.strength, Target.due, Target.tolerance)).all()
    targets = {(indicator, scope, unit): value for indicator, scope, unit, value, *_ in target_rows}
    target_specs = {(indicator, scope, unit): _target_spec(scope, value, shape, comparison, strength, due, tolerance)
                    for indicator, scope, unit, value, shape, comparison, strength, due, tolerance in target_rows}
    observation_columns: tuple[Any, ...] = (Observation.indicator_code, Observation.unit_code, Observation.period, Observation.value)
    if at is None:
        observation_columns += (Observation.imported_at, Observation.reported_on)
    periods = list(connection.execute(select(Observation.period).distinct()).scalars()) if at is not None else None
    observations = _ended_rows(connection, observation_columns, Observation.period, at,
                               Observation.imported_at, Observation.reported_on, periods)
    project_units = _links(connection, ProjectUnit, "project_code")
    projects = {code: ProjectInfo(code, name, category, level, total, project_units.get(code, ()))
                for code, name, category, level, total in _plain_rows(connection, select(
                    Project.code, Project.name, Project.category, Project.level, Project.total_investment))}
    plans = {(project, year): planned for project, year, planned in _plain_rows(connection, select(
        ProjectPlan.project_code, ProjectPlan.year, ProjectPlan.planned_investment))}
    investment_columns: tuple[Any, ...] = (ProjectInvestment.project_code, ProjectInvestment.period, ProjectInvestment.value)
    if at is None:
        investment_columns += (ProjectInvestment.imported_at,)
    investments = _ended_rows(connection, investment_columns, ProjectInvestment.period, at, ProjectInvestment.imported_at)
    filed_unseen: Sequence[tuple[str, str, str]] = ()
    if at is not None:
        filed_unseen = _filed_unseen(connection, at, periods or [])
    else:
        cache: dict[Any, Any] = {}
        # (…, the moment it became known, whether that moment is only its due date: filed on time, when unknown)
        observations = [(i, u, p, v, _visible_from(imported, reported, p, cache),
                         reported is None and _imported_after_due(imported, p, cache))
                        for i, u, p, v, imported, reported in observations]
        investments = [(project, p, v, _visible_from(imported, None, p, cache)) for project, p, v, imported in investments]
    tasks = connection.execute(select(Task.code, Task.title, Task.measures, Task.goal, Task.deadline,
                                      Task.deadline_text, Task.status, Task.done_on, Task.kind,
                                      Task.strength)).all()
    return StoreRows(ProgrammeInfo(*programme_row) if programme_row else None, units, indicators, targets,
                     observations, projects, plans, investments, tasks, _links(connection, TaskUnit, "task_code"),
                     periods_filtered=at is not None, target_specs=target_specs, filed_unseen=filed_unseen)


def _filed_unseen(connection: Connection, at: dt.datetime, periods: list[str]) -> Sequence[tuple[str, str, str]]:
    """Figures of periods ended at `at` but not yet due, imported after their due date without a
    报送日期: a replay's figures filed on time at a moment it does not know (as `_visible_from` and
    `_imported_after_due` read them). Only the few periods between their end and their due date are
    read, through the period index; a live round finds none."""
    today = local_date(at)
    pending = {code: dt.datetime.combine(figures_due(parse_period(code)), dt.time(), SHANGHAI)
               for code in _ended_codes(periods, at)
               if figures_due(parse_period(code)) > today}
    if not pending:
        return ()
    return _plain_rows(connection, select(Observation.indicator_code, Observation.unit_code, Observation.period)
                       .where(or_(*(and_(Observation.period == code, Observation.imported_at > due)
                                    for code, due in pending.items())),
                              Observation.reported_on.is_(None)))


def _imported_after_due(imported_at: Any, period: str, cache: dict[Any, Any]) -> bool:
    key = ("after_due", imported_at, period)
    found = cache.get(key)
    if found is None:
        imported = imported_at if isinstance(imported_at, dt.datetime) else dt.datetime.fromisoformat(str(imported_at))
        if imported.tzinfo is None:
            imported = imported.replace(tzinfo=dt.UTC)
        try:
            found = imported > dt.datetime.combine(figures_due(parse_period(period)), dt.time(), SHANGHAI)
        except ValueError:
            found = False
        cache[key] = found
    return bool(found)


def _target_spec(scope: str, value: float, shape: str, comparison: str, strength: str, due: Any,
                 tolerance: float | None) -> TargetSpec:
    if isinstance(due, str):
        due = dt.date.fromisoformat(due[:10])
    resolved = shape or ("final" if scope == "final" else "milestone" if due is not None else "annual")
    if resolved == "milestone" and due is None and scope != "final":
        due = dt.date(int(scope), 12, 31)
    return TargetSpec(value, resolved, comparison or "at_least", strength, due, tolerance)


def build_snapshot(rows: StoreRows, at: dt.datetime) -> Snapshot:
    """The snapshot as of `at` from rows read at `at`, or from rows read once for many moments."""
    with gc_paused():
        return _build(rows, at)


def _build(rows: StoreRows, at: dt.datetime) -> Snapshot:
    today = local_date(at)
    snapshot = Snapshot(at=at, programme=rows.programme, units=rows.units, indicators=rows.indicators,
                        targets=rows.targets, target_specs=rows.target_specs, projects=rows.projects, plans=rows.plans)
    observation_rows: Iterable[tuple[Any, ...]] = rows.observations
    investment_rows: Iterable[tuple[Any, ...]] = rows.investments
    filed_unseen: Iterable[tuple[Any, ...]] = rows.filed_unseen
    if not rows.periods_filtered:
        ended = set(_ended_codes({row[2] for row in rows.observations} | {row[1] for row in rows.investments}, at))
        observation_rows = [row for row in rows.observations if row[2] in ended and row[4] <= at]
        investment_rows = [row for row in rows.investments if row[1] in ended and row[3] <= at]
        filed_unseen = [row for row in rows.observations if row[2] in ended and row[4] > at and row[5]]
    observations: dict[str, dict[str, dict[str, float]]] = {}
    # Rows arrive grouped by series in practice (imported series by series); grouping merges,
    # so any order is still correct.
    for (indicator, unit), group in groupby(observation_rows, key=itemgetter(0, 1)):
        series = observations.setdefault(indicator, {}).setdefault(unit, {})
        series.update(map(itemgetter(2, 3), group))
    snapshot.observations = observations
    for indicator, unit, period, *_ in filed_unseen:
        snapshot.filed_unseen.setdefault(indicator, {}).setdefault(unit, set()).add(period)
    investments: dict[str, dict[str, float]] = {}
    for project, amounts in groupby(investment_rows, key=itemgetter(0)):
        investments.setdefault(project, {}).update(map(itemgetter(1, 2), amounts))
    snapshot.investments = investments
    for code, title, measures, goal, deadline, deadline_text, status, done_on, kind, strength in rows.tasks:
        # A task finished after T was still open at T.
        done_at_t = done_on if status == "done" and (done_on is None or done_on <= today) else None
        if status == "done" and done_on is None:
            done_at_t = deadline or today
        snapshot.tasks[code] = TaskInfo(code, title, measures, goal, deadline, deadline_text,
                                        rows.task_units.get(code, ()), done_at_t, kind or "deadline",
                                        stated_strength=strength or "")
    return snapshot


def load_snapshot(source: Engine | Session, at: dt.datetime) -> Snapshot:
    # Core statements on the session's connection: ORM row loading costs as much again as
    # SQLite's own fetch at province scale, and a snapshot needs plain tuples only.
    with gc_paused():
        if isinstance(source, Session):
            return _build(read_rows(source.connection(), at), at)
        with Session(source) as session:
            return _build(read_rows(session.connection(), at), at)
