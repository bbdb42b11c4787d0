"""The I/O edge of reports: load the store at the cut-off, evaluate, read the ledger, write the files."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from duban.engine.evaluate import Evaluator
from duban.engine.rules import RuleSet
from duban.notifiers.render import name_with_months
from duban.notifiers.reports.build import build_report, months_of
from duban.notifiers.reports.html import render_html
from duban.notifiers.reports.model import AlertRecord, ImportNote, Report
from duban.notifiers.reports.periods import cutoff, previous_period, report_period
from duban.notifiers.reports.xlsx import write_xlsx
from duban.store.models import Alert, Notice, Round
from duban.store.periods import parse_period
from duban.store.snapshot import load_snapshot


@dataclass(frozen=True)
class WrittenReport:
    report: Report
    html: Path
    xlsx: Path


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def load_ledger(session: Session, at: dt.datetime) -> list[AlertRecord] | None:
    """The 督办 alerts first seen by `at`, with when each was noticed; None if no round ran by then."""
    if session.scalar(select(Round.id).where(Round.at <= at).limit(1)) is None:
        return None
    notices: dict[int, list[dt.datetime]] = {}
    for alert_id, created in session.execute(
        select(Notice.alert_id, Notice.created_at).where(Notice.alert_id.is_not(None), Notice.created_at <= at)
    ):
        if alert_id is not None:
            notices.setdefault(alert_id, []).append(_aware(created))
    records = []
    for alert in session.scalars(
        select(Alert).where(Alert.first_seen <= at, Alert.kind.in_(("warning", "overdue")))
    ):
        history = []
        for entry in alert.level_history or []:
            try:
                when = _aware(dt.datetime.fromisoformat(str(entry.get("at"))))
            except (TypeError, ValueError):
                continue
            history.append((when, entry.get("level"), str(entry.get("state") or "firing")))
        history.sort(key=lambda h: h[0])
        records.append(AlertRecord(
            rule=alert.rule, subject_type=alert.subject_type, subject=alert.subject, period=alert.period,
            kind=alert.kind, title=alert.title, units=tuple(alert.units or ()), first_seen=_aware(alert.first_seen),
            # One round notifies several units at once: count the rounds, not the letters.
            level_history=tuple(history), notices=tuple(sorted(set(notices.get(alert.id, [])))),
            value_period=months_of(alert.period, alert.facts or {}),
        ))
    return records


def load_import_notes(session: Session, at: dt.datetime, year: str) -> list[ImportNote]:
    """The importers' explanations (审核说明, `duban import --note`) of the year's queried figures, as
    known at `at`: the newest note of each figure, in indicator and period order."""
    from duban.store import models

    note_model = getattr(models, "ObservationNote", None)  # added with the import plausibility checks
    if note_model is None:
        return []
    from duban.store.models import Indicator, Observation, Unit

    rows = session.execute(
        select(note_model.observation_id, note_model.message, note_model.note, note_model.noted_at,
               Observation.period, Observation.value, Observation.unit_code, Indicator.name, Indicator.code)
        .join(Observation, Observation.id == note_model.observation_id)
        .join(Indicator, Indicator.code == Observation.indicator_code)
        .where(Observation.period.startswith(year))
        .order_by(Indicator.code, Observation.period, note_model.noted_at)
    ).all()
    units = {code: name for code, name in session.execute(select(Unit.code, Unit.name))}
    newest: dict[int, ImportNote] = {}
    for observation_id, message, note, noted_at, period, value, unit, name, _code in rows:
        if _aware(noted_at) > at:
            continue
        try:
            label = parse_period(period).label
        except ValueError:
            label = period
        newest[observation_id] = ImportNote(indicator=name_with_months(name, period), unit_name=units.get(unit, unit) if unit else "",
                                            period_label=label, value=value, message=message, note=note)
    return list(newest.values())


def prepare_report(engine: Engine, rule_set: RuleSet, kind: str, period_code: str, *,
                   at: dt.datetime | None = None, evaluator: Evaluator | None = None) -> Report:
    """Evaluate at the report's cut-off (or `at`) and build the report. Raises ReportPeriodError."""
    period = report_period(kind, period_code)
    owned = evaluator is None
    evaluator = evaluator or Evaluator(rule_set)
    try:
        moment = at or cutoff(rule_set, evaluator.calendar, kind, period)
        before = previous_period(period)
        since = cutoff(rule_set, evaluator.calendar, kind, before)
        with Session(engine) as session:
            snapshot = load_snapshot(session, moment)
            ledger = load_ledger(session, moment)
            notes = load_import_notes(session, moment, period.code[:4])
            earlier = load_snapshot(session, since) if kind == "quarterly" and since < moment else None
        result = evaluator.evaluate(snapshot)
        previous = None
        if earlier is not None:
            # The previous quarter as its own meeting saw it: the 环比 and 进位/退位 are measured against it.
            previous = build_report(kind, before, earlier, evaluator.evaluate(earlier), rule_set, None,
                                    since=cutoff(rule_set, evaluator.calendar, kind, previous_period(before)))
    finally:
        if owned:
            evaluator.close()
    report = build_report(kind, period, snapshot, result, rule_set, ledger, since=min(since, moment), previous=previous)
    report.import_notes = notes
    return report


def write_report(report: Report, out_dir: Path, templates_dir: Path) -> WrittenReport:
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path = out_dir / f"{report.file_stem}.html"
    xlsx_path = out_dir / f"{report.file_stem}.xlsx"
    html_path.write_text(render_html(report, templates_dir), encoding="utf-8")
    write_xlsx(report, xlsx_path)
    return WrittenReport(report, html_path, xlsx_path)


def generate(engine: Engine, rule_set: RuleSet, kind: str, period_code: str, out_dir: Path, *,
             at: dt.datetime | None = None, evaluator: Evaluator | None = None) -> WrittenReport:
    report = prepare_report(engine, rule_set, kind, period_code, at=at, evaluator=evaluator)
    return write_report(report, out_dir, rule_set.templates_dir)


__all__ = ["WrittenReport", "generate", "load_import_notes", "load_ledger", "prepare_report", "write_report"]
