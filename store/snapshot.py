"""The store as it stood at a moment T: what an evaluation is allowed to see.

Only periods that had ended by T are visible (the figures for July do not exist on 15 July,
even when the store already holds them), and a task counts as done only from its done date.
This is what makes `simulate` and replays honest.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from store.models import (
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
from store.periods import has_ended, local_date, parse_period


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


@dataclass(frozen=True)
class ProjectInfo:
    code: str
    name: str
    category: str
    level: str
    total_investment: float
    units: tuple[str, ...]


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

    @property
    def done(self) -> bool:
        return self.done_on is not None


@dataclass(frozen=True)
class ProgrammeInfo:
    code: str
    name: str
    start: dt.date
    end: dt.date
    document: str


@dataclass
class Snapshot:
    at: dt.datetime
    programme: ProgrammeInfo | None
    units: dict[str, UnitInfo] = field(default_factory=dict)
    indicators: dict[str, IndicatorInfo] = field(default_factory=dict)
    targets: dict[tuple[str, str, str], float] = field(default_factory=dict)
    # indicator -> unit ('' = whole) -> period code -> value, ended periods only
    observations: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    projects: dict[str, ProjectInfo] = field(default_factory=dict)
    plans: dict[tuple[str, int], float] = field(default_factory=dict)
    investments: dict[str, dict[str, float]] = field(default_factory=dict)
    tasks: dict[str, TaskInfo] = field(default_factory=dict)

    @property
    def today(self) -> dt.date:
        return local_date(self.at)


def _ended_filter(at: dt.datetime) -> Callable[[str], bool]:
    cache: dict[str, bool] = {}

    def ended(code: str) -> bool:
        if code not in cache:
            try:
                cache[code] = has_ended(parse_period(code), at)
            except ValueError:
                cache[code] = False
        return cache[code]

    return ended


def load_snapshot(source: Engine | Session, at: dt.datetime) -> Snapshot:
    if isinstance(source, Session):
        return _load(source, at)
    with Session(source) as session:
        return _load(session, at)


def _links(session: Session, column_owner: type, owner_attr: str) -> dict[str, tuple[str, ...]]:
    rows = session.execute(
        select(getattr(column_owner, owner_attr), column_owner.unit_code).order_by(  # type: ignore[attr-defined]
            getattr(column_owner, owner_attr), column_owner.position  # type: ignore[attr-defined]
        )
    )
    grouped: dict[str, list[str]] = defaultdict(list)
    for owner, unit in rows:
        grouped[owner].append(unit)
    return {k: tuple(v) for k, v in grouped.items()}


def _load(session: Session, at: dt.datetime) -> Snapshot:
    today = local_date(at)
    ended = _ended_filter(at)
    programme_row = session.scalars(select(Programme)).first()
    programme = (
        ProgrammeInfo(programme_row.code, programme_row.name, programme_row.start, programme_row.end, programme_row.document)
        if programme_row
        else None
    )
    snapshot = Snapshot(at=at, programme=programme)
    for code, name, emails, kind in session.execute(select(Unit.code, Unit.name, Unit.emails, Unit.kind)):
        snapshot.units[code] = UnitInfo(code, name, tuple(emails or ()), kind)

    indicator_units = _links(session, IndicatorUnit, "indicator_code")
    for code, name, measure, kind, direction in session.execute(
        select(Indicator.code, Indicator.name, Indicator.measure, Indicator.kind, Indicator.direction)
    ):
        snapshot.indicators[code] = IndicatorInfo(code, name, measure, kind, direction, indicator_units.get(code, ()))

    for indicator, scope, unit, value in session.execute(
        select(Target.indicator_code, Target.scope, Target.unit_code, Target.value)
    ):
        snapshot.targets[(indicator, scope, unit)] = value

    observations: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for indicator, period, unit, value in session.execute(
        select(Observation.indicator_code, Observation.period, Observation.unit_code, Observation.value)
    ):
        if ended(period):
            observations[indicator][unit][period] = value
    snapshot.observations = {k: dict(v) for k, v in observations.items()}

    project_units = _links(session, ProjectUnit, "project_code")
    for code, name, category, level, total in session.execute(
        select(Project.code, Project.name, Project.category, Project.level, Project.total_investment)
    ):
        snapshot.projects[code] = ProjectInfo(code, name, category, level, total, project_units.get(code, ()))
    for project, year, planned in session.execute(
        select(ProjectPlan.project_code, ProjectPlan.year, ProjectPlan.planned_investment)
    ):
        snapshot.plans[(project, year)] = planned
    investments: dict[str, dict[str, float]] = defaultdict(dict)
    for project, period, value in session.execute(
        select(ProjectInvestment.project_code, ProjectInvestment.period, ProjectInvestment.value)
    ):
        if ended(period):
            investments[project][period] = value
    snapshot.investments = dict(investments)

    task_units = _links(session, TaskUnit, "task_code")
    for code, title, measures, goal, deadline, deadline_text, status, done_on in session.execute(
        select(Task.code, Task.title, Task.measures, Task.goal, Task.deadline, Task.deadline_text, Task.status, Task.done_on)
    ):
        # A task finished after T was still open at T.
        done_at_t = done_on if status == "done" and (done_on is None or done_on <= today) else None
        if status == "done" and done_on is None:
            done_at_t = deadline or today
        snapshot.tasks[code] = TaskInfo(code, title, measures, goal, deadline, deadline_text,
                                        task_units.get(code, ()), done_at_t)
    return snapshot
