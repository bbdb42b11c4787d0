"""The board (挂图作战): the current light of every indicator, project, task and unit.

The lights are rows (`board_lights`), written by a full evaluation (`refresh_all`: the whole store,
every rule, as the rounds evaluate it) and re-written for just what a submission touched
(`refresh_indicators`: the figures of those indicators, the rules that read them). Pages read the
rows with indexed queries, so the board's cost does not grow with the evaluation's.

A subject's light is its worst rule light (red < yellow < green < blue); a unit's light is the worst
light of the subjects it leads. The ranking (晾晒) scores each unit by its lights
(green 100, blue 80, yellow 60, red 0, averaged) and keeps one row per unit and month, so the
board shows the movement since the month before.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, delete, func, insert, or_, select
from sqlalchemy.orm import Session

from duban.engine.evaluate import Assessment, Evaluator
from duban.engine.rules import RuleSet
from duban.notifiers.render import name_with_months
from duban.store.db import transaction
from duban.store.models import Indicator, IndicatorUnit, Observation, Setting, Target, Task, Unit
from duban.store.periods import SHANGHAI
from duban.store.snapshot import build_snapshot, read_rows
from duban.store.web_models import BoardLight, BoardLightUnit, BoardRanking

LEVEL_ORDER = {"red": 0, "yellow": 1, "green": 2, "blue": 3, "": 4}
LEVEL_SCORE = {"red": 0.0, "yellow": 60.0, "green": 100.0, "blue": 80.0}
LEVEL_LABELS = {"red": "红灯", "yellow": "黄灯", "green": "绿灯", "blue": "提醒", "": "无灯"}
SUBJECT_LABELS = {"indicator": "指标", "project": "项目", "project_list": "项目清单", "task": "任务", "unit": "单位"}
_CHUNK = 2000
VERSION_KEY = "board.version"


def _bump(session: Session, at: dt.datetime) -> None:
    """A new version of the lights: pages cached under the old one are stale everywhere."""
    import uuid

    row = session.get(Setting, VERSION_KEY)
    if row is None:
        session.add(Setting(key=VERSION_KEY, value=uuid.uuid4().hex, updated_at=at))
    else:
        row.value, row.updated_at = uuid.uuid4().hex, at


def version(session: Session) -> str:
    return session.scalar(select(Setting.value).where(Setting.key == VERSION_KEY)) or ""


def store_version(session: Session) -> tuple[Any, ...]:
    """What a unit's page depends on, read in one statement of index look-ups: the lights' version,
    the newest audit row (every step taken in the web), import batch (any import, the CLI's too),
    request and submission."""
    from duban.store.models import ImportBatch
    from duban.store.web_models import AuditEntry, Submission, UnitRequest

    return tuple(session.execute(select(
        select(Setting.value).where(Setting.key == VERSION_KEY).scalar_subquery(),
        select(func.max(AuditEntry.id)).scalar_subquery(),
        select(func.max(ImportBatch.id)).scalar_subquery(),
        select(func.max(UnitRequest.id)).scalar_subquery(),
        select(func.max(Submission.id)).scalar_subquery(),
    )).one())


_RUNNING_MONTHS = re.compile(r"^(\d{4})年1—(\d{1,2})月$")


def value_period(a: Assessment) -> str:
    """The month a light's figure runs to ("2023-12"), for `name_with_months`; '' when not a month.

    Threshold and milestone lights carry it; pace and forecast lights give the months ended of
    their year; otherwise a label "2023年1—12月" says it."""
    found = str(a.details.get("value_period") or "")
    if found:
        return found
    months = a.details.get("months_ended") or (a.details.get("forecast") or {}).get("months")
    if months and len(a.period) == 4 and a.period.isdigit():
        return f"{a.period}-{int(months):02d}"
    match = _RUNNING_MONTHS.match(a.period_label or "")
    if match:
        return f"{match.group(1)}-{int(match.group(2)):02d}"
    base = a.period.split("/")[0]
    return base if re.fullmatch(r"\d{4}-\d{2}", base) else ""  # a month's figure (a report due)


def _light_rows(assessments: Iterable[Assessment], at: dt.datetime) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for a in assessments:
        key = (a.rule, a.subject_type, a.subject)
        level = a.level or ("blue" if a.decisions else "")
        if not level:
            continue  # measured but nothing to show (a praise not earned, a reminder not due)
        name, measure = name_with_months(a.subject_name, value_period(a)), a.measure
        if a.subject_type == "unit" and "tasks_due" in a.details:
            # Tasks done on time of those due: "1" against "1" alone says nothing.
            name, measure = f"{name}：按时完成到期任务", measure or "项"
        row = {
            "rule": a.rule, "rule_kind": a.rule_kind, "subject_type": a.subject_type, "subject": a.subject,
            "subject_name": name + (f"（{a.unit_name}）" if a.unit_name and "@" in a.subject else ""),
            "lead_unit": a.units[0] if a.units else "", "units_text": ";" + ";".join(a.units) + ";" if a.units else "",
            "period_label": a.period_label, "level": level, "value": a.value, "threshold": a.threshold,
            "expected": a.expected, "measure": measure, "deadline": a.deadline, "updated_at": at,
        }
        before = rows.get(key)
        if before is None or LEVEL_ORDER[level] < LEVEL_ORDER[before["level"]]:
            rows[key] = row
    return list(rows.values())


def _link_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One `board_light_units` row per unit a light concerns."""
    return [{"unit_code": unit, "rule": row["rule"], "subject_type": row["subject_type"], "subject": row["subject"]}
            for row in rows for unit in dict.fromkeys(u for u in row["units_text"].split(";") if u)]


def _insert_lights(session: Session, rows: list[dict[str, Any]]) -> None:
    links = _link_rows(rows)
    for start in range(0, len(rows), _CHUNK):
        session.execute(insert(BoardLight), rows[start:start + _CHUNK])
    for start in range(0, len(links), _CHUNK):
        session.execute(insert(BoardLightUnit), links[start:start + _CHUNK])


def _join_unit(query: Any, unit_code: str) -> Any:
    return query.join(BoardLightUnit, and_(BoardLightUnit.rule == BoardLight.rule,
                                           BoardLightUnit.subject_type == BoardLight.subject_type,
                                           BoardLightUnit.subject == BoardLight.subject)
                      ).where(BoardLightUnit.unit_code == unit_code)


@dataclass(frozen=True)
class RefreshReport:
    lights: int
    seconds: float
    scope: str


def refresh_all(engine: Engine, rule_set: RuleSet, at: dt.datetime, evaluator: Evaluator | None = None) -> RefreshReport:
    """Evaluate the whole store at `at` and replace every light; update this month's ranking."""
    began = time.perf_counter()
    owned = evaluator is None
    evaluator = evaluator or Evaluator(rule_set)
    try:
        with transaction(engine) as session:
            snapshot = build_snapshot(read_rows(session.connection(), at), at)
            result = evaluator.evaluate(snapshot)
            rows = _light_rows(result.assessments, at)
            session.execute(delete(BoardLight))
            session.execute(delete(BoardLightUnit))
            _insert_lights(session, rows)
            update_ranking(session, at)
            _bump(session, at)
    finally:
        if owned:
            evaluator.close()
    return RefreshReport(len(rows), time.perf_counter() - began, "all")


def refresh_indicators(engine: Engine, rule_set: RuleSet, at: dt.datetime, indicators: set[str],
                       evaluator: Evaluator | None = None) -> RefreshReport:
    """Re-evaluate only the rules that read `indicators`, on a snapshot holding only those indicators'
    lists and figures, and replace only their lights."""
    began = time.perf_counter()
    rules = [r for r in rule_set.rules if r.selector.subject_type == "indicator"
             and (r.referenced_indicators & indicators or not r.selector.codes)]
    wanted = set(indicators)
    for rule in rules:
        if rule.referenced_indicators & indicators:
            wanted |= set(rule.referenced_indicators)
    if not rules:
        return RefreshReport(0, time.perf_counter() - began, "indicators")
    partial = dataclasses.replace(rule_set, rules=rules)
    owned = evaluator is None
    evaluator = evaluator or Evaluator(partial)
    try:
        with transaction(engine) as session:
            rows_in = _partial_rows(session, at, wanted)
            snapshot = build_snapshot(rows_in, at)
            result = evaluator.evaluate(snapshot)
            rule_ids = {r.id for r in rules}
            rows = [row for row in _light_rows(result.assessments, at) if row["rule"] in rule_ids]
            stale = or_(BoardLight.subject.in_(list(wanted)),
                        *(BoardLight.subject.startswith(f"{code}@") for code in sorted(wanted)))
            stale_links = or_(BoardLightUnit.subject.in_(list(wanted)),
                              *(BoardLightUnit.subject.startswith(f"{code}@") for code in sorted(wanted)))
            session.execute(delete(BoardLight).where(BoardLight.rule.in_(list(rule_ids)), stale))
            session.execute(delete(BoardLightUnit).where(BoardLightUnit.rule.in_(list(rule_ids)), stale_links))
            _insert_lights(session, rows)
            _bump(session, at)
    finally:
        if owned:
            evaluator.close()
    return RefreshReport(len(rows), time.perf_counter() - began, "indicators")


def _partial_rows(session: Session, at: dt.datetime, indicators: set[str]) -> Any:
    """StoreRows with only `indicators` (and their figures and targets); no projects or tasks."""
    from duban.store.models import Programme
    from duban.store.snapshot import IndicatorInfo, ProgrammeInfo, StoreRows, UnitInfo, _ended_codes

    conn = session.connection()
    codes = sorted(indicators)
    programme_row = conn.execute(select(Programme.code, Programme.name, Programme.start, Programme.end,
                                        Programme.document)).first()
    links: dict[str, list[str]] = defaultdict(list)
    for code, unit in conn.execute(select(IndicatorUnit.indicator_code, IndicatorUnit.unit_code)
                                   .where(IndicatorUnit.indicator_code.in_(codes))
                                   .order_by(IndicatorUnit.indicator_code, IndicatorUnit.position)):
        links[code].append(unit)
    unit_codes = {u for units in links.values() for u in units}
    units = {code: UnitInfo(code, name, tuple(emails or ()), kind) for code, name, emails, kind in conn.execute(
        select(Unit.code, Unit.name, Unit.emails, Unit.kind).where(Unit.code.in_(sorted(unit_codes))))}
    infos = {code: IndicatorInfo(code, name, measure, kind, direction, tuple(links.get(code, ())))
             for code, name, measure, kind, direction in conn.execute(
                 select(Indicator.code, Indicator.name, Indicator.measure, Indicator.kind, Indicator.direction)
                 .where(Indicator.code.in_(codes)))}
    targets = {(i, s, u): v for i, s, u, v in conn.execute(
        select(Target.indicator_code, Target.scope, Target.unit_code, Target.value).where(Target.indicator_code.in_(codes)))}
    observations: list[tuple[str, str, str, float]] = [(row[0], row[1], row[2], row[3]) for row in conn.execute(
        select(Observation.indicator_code, Observation.unit_code, Observation.period, Observation.value)
        .where(Observation.indicator_code.in_(codes)).order_by(Observation.indicator_code, Observation.unit_code))]
    ended = set(_ended_codes({row[2] for row in observations}, at))
    observations = [row for row in observations if row[2] in ended]
    return StoreRows(ProgrammeInfo(*programme_row) if programme_row else None, units, infos, targets, observations,
                     {}, {}, [], [], {}, periods_filtered=True)


# --- ranking (晾晒) --------------------------------------------------------------------------------


def _month(at: dt.datetime) -> str:
    local = at.astimezone(SHANGHAI)
    return f"{local.year:04d}-{local.month:02d}"


def _previous_month(month: str) -> str:
    year, mon = int(month[:4]), int(month[5:])
    return f"{year - 1:04d}-12" if mon == 1 else f"{year:04d}-{mon - 1:02d}"


def unit_counts(session: Session) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for unit, level, n in session.execute(select(BoardLight.lead_unit, BoardLight.level, func.count())
                                          .group_by(BoardLight.lead_unit, BoardLight.level)):
        if unit:
            counts[unit][level] += n
    return counts


def update_ranking(session: Session, at: dt.datetime) -> None:
    """Rank the member units; the working group (kind working_group) coordinates and is never ranked."""
    month = _month(at)
    scored = []
    coordinators = set(session.scalars(select(Unit.code).where(Unit.kind == "working_group")))
    for unit, levels in unit_counts(session).items():
        if unit in coordinators:
            continue
        lit = {k: v for k, v in levels.items() if k in LEVEL_SCORE}
        total = sum(lit.values())
        if not total:
            continue
        score = sum(LEVEL_SCORE[k] * v for k, v in lit.items()) / total
        scored.append((unit, round(score, 1), lit.get("red", 0), lit.get("yellow", 0), lit.get("green", 0)))
    scored.sort(key=lambda s: (-s[1], -s[4], s[2], s[0]))
    session.execute(delete(BoardRanking).where(BoardRanking.month == month))
    rows = [{"month": month, "unit_code": unit, "rank": index + 1, "score": score, "red": red, "yellow": yellow,
             "green": green, "updated_at": at} for index, (unit, score, red, yellow, green) in enumerate(scored)]
    for start in range(0, len(rows), _CHUNK):
        session.execute(insert(BoardRanking), rows[start:start + _CHUNK])


@dataclass(frozen=True)
class RankRow:
    rank: int
    unit_code: str
    unit_name: str
    score: float
    red: int
    yellow: int
    green: int
    movement: int | None  # places gained since last month (+ up, - down), None when new


def ranking(session: Session, at: dt.datetime, *, limit: int = 50, offset: int = 0) -> tuple[str, list[RankRow]]:
    month = session.scalar(select(func.max(BoardRanking.month)).where(BoardRanking.month <= _month(at))) or _month(at)
    before = dict(session.execute(select(BoardRanking.unit_code, BoardRanking.rank)
                                  .where(BoardRanking.month == _previous_month(month))).all())
    rows = session.execute(select(BoardRanking, Unit.name).join(Unit, Unit.code == BoardRanking.unit_code, isouter=True)
                           .where(BoardRanking.month == month).order_by(BoardRanking.rank).limit(limit).offset(offset)).all()
    return month, [RankRow(r.rank, r.unit_code, name or r.unit_code, r.score, r.red, r.yellow, r.green,
                           (before[r.unit_code] - r.rank) if r.unit_code in before else None) for r, name in rows]


# --- reading the board ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BoardFilter:
    unit: str = ""
    kind: str = ""  # indicator project task
    level: str = ""  # red yellow green blue
    q: str = ""


def board_page(session: Session, filt: BoardFilter, *, page: int = 1, per_page: int = 50) -> tuple[int, list[BoardLight]]:
    query = select(BoardLight)
    count = select(func.count()).select_from(BoardLight)
    conditions: list[Any] = []
    if filt.unit:
        query, count = _join_unit(query, filt.unit), _join_unit(count, filt.unit)
    if filt.kind:
        conditions.append(BoardLight.subject_type == filt.kind)
    if filt.level:
        conditions.append(BoardLight.level == filt.level)
    if filt.q:
        # A task row reads as its measure: the measure's words find it too.
        conditions.append(or_(BoardLight.subject_name.contains(filt.q), BoardLight.subject.contains(filt.q),
                              and_(BoardLight.subject_type == "task",
                                   BoardLight.subject.in_(select(Task.code).where(Task.measures.contains(filt.q))))))
    for condition in conditions:
        query, count = query.where(condition), count.where(condition)
    total = int(session.scalar(count) or 0)
    # Worst first: red, yellow, then the rest; the level index serves the order.
    rows = list(session.scalars(query.order_by(BoardLight.level.in_(["red", "yellow"]).desc(),
                                               BoardLight.level, BoardLight.subject_type, BoardLight.subject)
                                .limit(per_page).offset((page - 1) * per_page)))
    return total, rows


def level_totals(session: Session, filt: BoardFilter | None = None) -> dict[str, dict[str, int]]:
    """{subject_type: {level: count}} for the summary tiles."""
    query = select(BoardLight.subject_type, BoardLight.level, func.count()).group_by(BoardLight.subject_type, BoardLight.level)
    if filt and filt.unit:
        query = _join_unit(query, filt.unit)
    totals: dict[str, dict[str, int]] = defaultdict(dict)
    for kind, level, n in session.execute(query):
        totals[kind][level] = n
    return totals


def unit_light(session: Session, unit_code: str) -> str:
    levels = set(session.scalars(select(BoardLight.level).where(BoardLight.lead_unit == unit_code).distinct()))
    lit = [lv for lv in levels if lv]
    return min(lit, key=lambda lv: LEVEL_ORDER[lv]) if lit else ""


def unit_lights(session: Session, unit_code: str, limit: int = 200) -> list[BoardLight]:
    return list(session.scalars(_join_unit(select(BoardLight), unit_code)
                                .order_by(BoardLight.level.in_(["red", "yellow"]).desc(), BoardLight.level,
                                          BoardLight.subject).limit(limit)))


def subject_lights(session: Session, subject_type: str, subject: str) -> list[BoardLight]:
    return list(session.scalars(select(BoardLight).where(BoardLight.subject_type == subject_type,
                                                         or_(BoardLight.subject == subject,
                                                             BoardLight.subject.startswith(f"{subject}@")))
                                .order_by(BoardLight.rule)))


def series(session: Session, indicator: str, unit: str = "") -> list[tuple[str, float]]:
    return [(p, v) for p, v in session.execute(
        select(Observation.period, Observation.value).where(Observation.indicator_code == indicator,
                                                            Observation.unit_code == unit).order_by(Observation.period))]


def worst(levels: Sequence[str]) -> str:
    lit = [lv for lv in levels if lv]
    return min(lit, key=lambda lv: LEVEL_ORDER.get(lv, 9)) if lit else ""


# --- how a task reads -------------------------------------------------------------------------------

SHORT_MEASURE = 40


def shorten(text: str, limit: int = SHORT_MEASURE) -> str:
    """The first sentence of a measure if short enough, else its first `limit` characters and "…"."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = re.split(r"[。；;]", text, maxsplit=1)[0]
    if len(head) <= limit:
        return head + "…"
    return text[:limit - 1].rstrip("，、,") + "…"


@dataclass(frozen=True)
class TaskText:
    """A task as the notices name it: its measure (具体举措), under its group (the task's title)."""

    group: str
    measure: str  # the full text of the measure (the goal, or the group, when the document gives none)
    goal: str

    @property
    def short(self) -> str:
        return shorten(self.measure)


def task_text(task: Task) -> TaskText:
    return TaskText(task.title, (task.measures or task.goal or task.title).strip(), task.goal or "")


def task_texts(session: Session, codes: Iterable[str]) -> dict[str, TaskText]:
    wanted = sorted(set(codes))
    if not wanted:
        return {}
    return {code: TaskText(title, (measures or goal or title).strip(), goal or "") for code, title, measures, goal in
            session.execute(select(Task.code, Task.title, Task.measures, Task.goal).where(Task.code.in_(wanted)))}


# --- the unit filter ---------------------------------------------------------------------------------

PICKER_SELECT_MAX = 60  # up to this many units the filter is a drop-down; beyond, a typed name with suggestions


def unit_choices(session: Session) -> list[tuple[str, str]]:
    """(code, name) of every unit, by name, for the board's unit picker."""
    return [(code, name) for code, name in session.execute(select(Unit.code, Unit.name).order_by(Unit.name, Unit.code))]


def resolve_unit(session: Session, text: str) -> tuple[str, str, str]:
    """What the official typed or picked (a unit's name, part of it, or its code) as (code, name, problem).

    A name or code matches exactly first; else a part of a name that only one unit's name holds.
    Otherwise `problem` says, in Chinese, that no unit or several units match."""
    text = text.strip()
    if not text:
        return "", "", ""
    exact = session.execute(select(Unit.code, Unit.name).where(or_(Unit.code == text, Unit.name == text))
                            .order_by((Unit.code == text).desc()).limit(1)).first()
    if exact is not None:
        return exact[0], exact[1], ""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    found = session.execute(select(Unit.code, Unit.name).where(Unit.name.like(f"%{escaped}%", escape="\\"))
                            .order_by(Unit.name).limit(6)).all()
    if len(found) == 1:
        return found[0][0], found[0][1], ""
    if not found:
        return "", "", f"没有名称为“{text}”的单位，请从列表中选择单位名称。"
    names = "、".join(name for _, name in found[:5]) + ("等" if len(found) > 5 else "")
    return "", "", f"名称含“{text}”的单位有多个（{names}），请从列表中选择完整的单位名称。"
