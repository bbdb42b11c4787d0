"""Which period a report covers, the moment it is cut off, and which report a cadence round reads.

A report is what the meeting that reads it sees: the monthly report for June is the evaluation
at the July dispatch (the first fire of the cadence whose `digest` is `monthly_dispatch` after
June has ended), so its figures are the figures of that round's notices.
"""

from __future__ import annotations

import datetime as dt

from duban.engine.calendar import WorkingCalendar
from duban.engine.rules import Cadence, RuleSet
from duban.engine.schedule import ScheduleError, parse_schedule
from duban.notifiers.reports.model import DIGEST_OF_KIND, KINDS
from duban.store.periods import SHANGHAI, Period, local_date, parse_period

# Where to look for the reading meeting when the programme has no cadence of the report's own kind
# (Huzhou has no 年评估: its January 季度例会 reviews the year).
_FALLBACK_DIGESTS = {"monthly": ("monthly_dispatch",), "quarterly": ("quarterly", "monthly_dispatch"),
                     "annual": ("annual", "quarterly", "monthly_dispatch")}
_OPTION = {"monthly": "--month", "quarterly": "--quarter", "annual": "--year"}
_EXAMPLE = {"monthly": "2023-06", "quarterly": "2023-Q2", "annual": "2023"}


class ReportPeriodError(ValueError):
    """The period given does not fit the report kind; the message is Chinese and says what to write."""


def report_period(kind: str, code: str) -> Period:
    if kind not in KINDS:
        raise ReportPeriodError(f"未知的报告类型“{kind}”，应为 monthly、quarterly 或 annual")
    try:
        period = parse_period(code.strip().upper().replace("Q", "-Q").replace("--Q", "-Q"))
    except ValueError:
        period = None
    wanted = {"monthly": "month", "quarterly": "quarter", "annual": "year"}[kind]
    if period is None or period.kind != wanted:
        raise ReportPeriodError(f"{_OPTION[kind]} 的值“{code}”格式不正确，应如 {_EXAMPLE[kind]}")
    return period


def previous_period(period: Period) -> Period:
    day = period.start - dt.timedelta(days=1)
    if period.kind == "month":
        return parse_period(f"{day.year:04d}-{day.month:02d}")
    if period.kind == "quarter":
        return parse_period(f"{day.year:04d}-Q{(day.month - 1) // 3 + 1}")
    return parse_period(f"{day.year:04d}")


def _cadences(rule_set: RuleSet, digest: str) -> list[Cadence]:
    return [c for c in rule_set.cadences if c.digest == digest]


def cutoff(rule_set: RuleSet, calendar: WorkingCalendar, kind: str, period: Period) -> dt.datetime:
    """The first fire, after the period has ended, of the meeting that reads this report.

    Without such a cadence: 09:00 on the day after the period, when the rounds of the office run.
    """
    after = dt.datetime.combine(period.end, dt.time(0, 0), tzinfo=SHANGHAI)
    for digest in _FALLBACK_DIGESTS[kind]:
        fires = []
        for cadence in _cadences(rule_set, digest):
            try:
                schedule = parse_schedule(cadence.when, calendar, anchor=cadence.anchor)
            except ScheduleError:
                continue  # `duban check` reports it; the report still needs a moment
            fires.append(schedule.next_fire_after(after - dt.timedelta(microseconds=1)))
        if fires:
            return min(fires)
    return after.replace(hour=9)


def covered_period(kind: str, at: dt.datetime) -> Period:
    """The latest month, quarter or year that had ended at `at`: what a round at `at` reviews."""
    today = local_date(at)
    last = dt.date(today.year, today.month, 1) - dt.timedelta(days=1)
    if kind == "monthly":
        return parse_period(f"{last.year:04d}-{last.month:02d}")
    if kind == "quarterly":
        quarter_start = dt.date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
        last = quarter_start - dt.timedelta(days=1)
        return parse_period(f"{last.year:04d}-Q{(last.month - 1) // 3 + 1}")
    return parse_period(f"{today.year - 1:04d}")


def report_label(rule_set: RuleSet, kind: str, period: Period) -> str:
    """2023年6月月度专报 (Lucheng), 2023年6月月度监测报告 (Huzhou): the name programme.yaml gives."""
    return f"{period.label}{rule_set.settings.report_name(kind)}"


def report_links(rule_set: RuleSet, job: str, at: dt.datetime, base_url: str = "") -> list[tuple[str, str]]:
    """The reports a cadence round's digest should point to, as (label, link).

    The monthly dispatch reads the last month's 月度专报, the quarterly meeting the last quarter's
    季度通报 (and, in January, the year's 年度评估 when the programme has no annual cadence), the
    annual assessment the year's. `link` is `base_url/<file>.html` where the office publishes the
    reports, or "" (the label then names the files).
    """
    cadence = next((c for c in rule_set.cadences if c.id == job), None)
    if cadence is None:
        return []
    kinds = [kind for kind, digest in DIGEST_OF_KIND.items() if digest == cadence.digest]
    if kinds == ["quarterly"] and covered_period("quarterly", at).code.endswith("Q4") \
            and not _cadences(rule_set, "annual"):
        kinds.append("annual")
    links = []
    for kind in kinds:
        period = covered_period(kind, at)
        stem = f"{kind}-{period.code}"
        if base_url:
            links.append((report_label(rule_set, kind, period), f"{base_url.rstrip('/')}/{stem}.html"))
        else:
            links.append((f"{report_label(rule_set, kind, period)}（{stem}.html、{stem}.xlsx，由工作专班办公室印发）", ""))
    return links


__all__ = ["ReportPeriodError", "covered_period", "cutoff", "previous_period", "report_label", "report_links",
           "report_period"]
