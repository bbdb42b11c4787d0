"""Build a `Report` from one evaluation at the cut-off and the alert ledger. Pure: no I/O, no clock."""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from statistics import fmean
from typing import Any

from duban.engine.evaluate import AlertCandidate, Assessment, EvaluationResult
from duban.engine.rules import LIST_NAMES, RuleSet
from duban.notifiers.render import name_with_months
from duban.notifiers.reports.model import (
    LEVEL_ORDER,
    AlertRecord,
    CategoryTotal,
    Count,
    IndicatorChange,
    IndicatorRow,
    LedgerRow,
    ListItem,
    ProjectRow,
    Report,
    SupervisionItem,
    TaskRow,
    TaskSummary,
    UnitAssessment,
    UnitRank,
)
from duban.store.periods import Period, local_date, parse_period
from duban.store.snapshot import Snapshot

CATEGORY_ORDER = ("战略支撑型", "产业赋能型", "生活美好型")
_LIGHTS = ("red", "yellow", "green")


def build_report(
    kind: str,
    period: Period,
    snapshot: Snapshot,
    result: EvaluationResult,
    rule_set: RuleSet,
    ledger: Sequence[AlertRecord] | None,
    *,
    since: dt.datetime,
    previous: Report | None = None,
) -> Report:
    """The report for `period`, as the evaluation at `snapshot.at` (the cut-off) saw it.

    `ledger` is None when the store has recorded no rounds: the 销号 list is then empty and the
    report says why. `since` is the previous report's cut-off (the 销号 list covers since → cut-off).
    `previous` is the same kind of report for the period before, as its own meeting saw it: the
    季度通报 compares each indicator and each unit's place with it (环比, 进位/退位).
    """
    settings = rule_set.settings
    programme = snapshot.programme
    name = settings.name or (programme.name if programme else settings.programme)
    signer = settings.subject_prefix.strip("【】") or name
    progress, progress_label = _time_progress(snapshot)
    report = Report(
        kind=kind, period=period.code, period_label=period.label,
        title=_title(kind, period, name, settings.report_name(kind)), kind_name=settings.report_name(kind),
        programme_name=name, list_names={key: settings.list_name(key) for key in LIST_NAMES},
        document_title=settings.title or name,
        document=settings.document or (programme.document if programme else ""), signer=signer,
        urging_name=_urging_name(settings.mechanism),
        cutoff=snapshot.at, since=since, time_progress=progress, progress_label=progress_label,
        warnings=list(result.warnings),
    )
    names = _UnitNames(snapshot, settings.working_group or next(iter(snapshot.working_group_units), ""))
    due_days = {code: rule.due_day for rule in rule_set.rules if rule.kind == "report_due"
                for code in snapshot.indicators if rule.selector.matches(code, snapshot.indicators[code].kind)}
    report.indicators, report.indicator_count = _indicator_rows(result.assessments, snapshot, names, due_days)
    report.projects, report.categories, report.project_count = _project_rows(result.assessments, snapshot, names)
    report.tasks, report.task_summary = _task_rows(result.assessments, snapshot, names)
    report.praise, report.urging = _lists(result.candidates, rule_set, names, snapshot)
    report.ranking = _ranking(result.assessments, report.tasks, snapshot, result.candidates, names)
    if kind != "monthly":
        report.period_tasks, report.period_task_summary = _period_tasks(report.tasks, period)
    if previous is not None:
        report.compared_label = previous.period_label
        report.changes = _changes(report, previous)
        report.ranking = _movement(report.ranking, previous.ranking)
    if kind == "quarterly":
        report.supervision = _supervision(result.assessments, report, snapshot, names)
    if kind == "annual":
        report.assessment = _assessment(result.assessments, report, snapshot, period, names)
    if ledger is None:
        report.rounds_recorded = False
    else:
        report.opened, report.closed, report.still_open = _ledger(ledger, since, snapshot.at, names, snapshot)
    return report


def _urging_name(mechanism: str) -> str:
    """What the document calls urging: 亮灯督促 where its mechanism sentence says so (Lucheng), else
    督促 (湖政办发〔2023〕16号 has no lights: "对于进度缓慢的予以督促")."""
    return "亮灯督促" if not mechanism or "亮灯" in mechanism else "督促"


def months_of(period: str, details: Mapping[str, object]) -> str:
    """The month a running total runs to, as `name_with_months` reads it ("2023-06"), or "".

    Threshold rules say it (`value_period`); a year's pace item has its year and the months ended;
    a report_due item's period is the month itself. Programme-end items have none ("累计")."""
    value_period = details.get("value_period")
    if isinstance(value_period, str) and value_period:
        return value_period
    base = period.split("/")[0]
    if len(base) == 7 and base[4] == "-" and base[5] != "Q":
        return base
    ended = details.get("months_ended")
    forecast = details.get("forecast")
    if not isinstance(ended, int) and isinstance(forecast, Mapping):  # a year-end forecast: months it ran on
        ended = forecast.get("months")
    if len(base) == 4 and base.isdigit() and isinstance(ended, int) and 1 <= ended <= 12 and not details.get("derived"):
        return f"{base}-{ended:02d}"
    return ""


def _months_named(text: str, period: str, details: Mapping[str, object], snapshot: Snapshot | None = None,
                  subject: str = "") -> str:
    """`text` with an indicator name's "1—N月" made the real months (as the notices write them).

    Where the rule does not say which month its figure is (a milestone: "到2023年底前…"), the latest
    month the store holds for the indicator in that year (or before) at the cut-off; a programme-end
    total keeps "累计"."""
    months = months_of(period, details)
    base = period.split("/")[0]
    if not months and snapshot is not None and subject and base != "final" and not details.get("derived") \
            and "1—N月" in text:
        code, _, unit = subject.partition("@")
        by_unit = snapshot.observations.get(code, {})
        series = [by_unit.get(unit, {})] if unit else list(by_unit.values())
        found = [c for one in series for c in one if len(c) == 7 and c[4] == "-" and c[5] != "Q"
                 and (not (len(base) == 4 and base.isdigit()) or c[:4] <= base)]
        months = max(found) if found else ""
    return name_with_months(text, months)


def _title(kind: str, period: Period, name: str, kind_name: str) -> str:
    """2023年6月…工程推进情况月度专报; 2023年度…工程年度评估报告 (the report's name from programme.yaml)."""
    project = name.split("（")[0]
    if kind == "annual":
        noun = kind_name if kind_name.endswith("报告") else f"{kind_name}报告"
        return f"{period.label}度{project}{noun}"
    return f"{period.label}{project}推进情况{kind_name}"


def _time_progress(snapshot: Snapshot) -> tuple[float | None, str]:
    """The year's 序时进度 at the cut-off, as the pace rules compute it (months ended / 12)."""
    today = snapshot.today
    year = today.year if today.month > 1 else today.year - 1
    ended = today.month - 1 if today.month > 1 else 12
    return 100.0 * ended / 12, (f"{year}年1—{ended}月" if ended > 1 else f"{year}年1月")


class _UnitNames:
    def __init__(self, snapshot: Snapshot, working_group: str) -> None:
        self.snapshot = snapshot
        self.working_group = working_group

    def name(self, code: str) -> str:
        unit = self.snapshot.units.get(code)
        return unit.name if unit else code

    def join(self, codes: Iterable[str]) -> str:
        names = [self.name(code) for code in codes]
        if len(names) > 1:
            names[0] += "（牵头）"
        return "、".join(names)

    def short(self, codes: Sequence[str], limit: int = 3) -> str:
        if len(codes) <= limit:
            return self.join(codes)
        return self.join(codes[:limit]) + f"等{len(codes)}个单位"

    def members(self, codes: Iterable[str]) -> list[str]:
        """Units that answer for an item: the working group coordinates, it is not ranked."""
        out = []
        for code in codes:
            unit = self.snapshot.units.get(code)
            if code != self.working_group and (unit is None or unit.kind != "working_group"):
                out.append(code)
        return out


def _worst(levels: Iterable[str | None]) -> str | None:
    present = [level for level in levels if level in LEVEL_ORDER]
    return min(present, key=lambda lv: LEVEL_ORDER[lv]) if present else None


def _count(levels: Iterable[str | None]) -> Count:
    tally: dict[str | None, int] = defaultdict(int)
    for level in levels:
        tally[level] += 1
    return Count(tally["red"], tally["yellow"], tally["green"], tally["stale"])


# --- 主要指标进度表 ---------------------------------------------------------------------------------


def _indicator_code(a: Assessment) -> str:
    return str(a.details.get("indicator") or a.subject.split("@")[0])


def _indicator_rows(assessments: Sequence[Assessment], snapshot: Snapshot, names: _UnitNames,
                    due_days: dict[str, int] | None = None) -> tuple[list[IndicatorRow], Count]:
    measured: dict[tuple[str, str], list[Assessment]] = defaultdict(list)  # (subject, period) -> rules
    notes: dict[tuple[str, str], list[str]] = defaultdict(list)
    missing: dict[str, list[str]] = defaultdict(list)  # subject -> months not reported
    for a in assessments:
        if a.subject_type != "indicator":
            continue
        if a.rule_kind in ("threshold", "pace", "milestone"):
            measured[(a.subject, a.period)].append(a)
            if "ahead" in a.decisions:
                notes[(a.subject, _scope(a.period))].append("快于序时进度，予以表扬")
        elif a.rule_kind == "praise" and "target_met_early" in a.decisions:
            notes[(a.subject, _scope(a.period))].append("提前完成年度目标，予以表扬")
        elif a.rule_kind == "praise" and "ahead_of_pace" in a.decisions:
            notes[(a.subject, _scope(a.period))].append("快于序时进度，予以表扬")
        elif a.rule_kind == "report_due" and "missing" in a.decisions:
            missing[a.subject].append(a.period_label)
    order = {code: i for i, code in enumerate(snapshot.indicators)}

    def sort_key(key: tuple[str, str]) -> tuple[int, str, int, str]:
        subject, scope = key
        code = subject.split("@")[0]
        first = measured[key][0]
        return (order.get(code, len(order)), code, 0 if first.rule_kind == "pace" and scope != "final" else
                1 if first.rule_kind == "pace" else 2, subject)

    # Jurisdiction rows first in their order, each followed by its units' shares ("其中").
    keys = sorted(measured, key=sort_key)
    tops = [k for k in keys if "@" not in k[0]]
    subs: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    orphans: list[tuple[str, str]] = []
    for key in keys:
        if "@" in key[0]:
            parent = (key[0].split("@")[0], key[1])
            (subs[parent] if parent in measured else orphans).append(key)
    rows: list[IndicatorRow] = []
    for number, key in enumerate([*tops, *orphans], start=1):
        rows.append(_fresh(_indicator_row(str(number), key, measured[key], notes, missing, snapshot, names, sub=False),
                           measured[key], snapshot, due_days or {}))
        for sub in subs.get(key, []):
            rows.append(_fresh(_indicator_row("", sub, measured[sub], notes, missing, snapshot, names, sub=True),
                               measured[sub], snapshot, due_days or {}))
    return rows, _count(r.level for r in rows if not r.sub)


# A figure is due once its period has ended and the reporting day has passed (the report_due rule's
# due_day, else the 10th: 统计快报 come out in the first ten days of the next month).
DEFAULT_DUE_DAY = 10


def due_period(kind: str, today: dt.date, due_day: int = DEFAULT_DUE_DAY) -> Period:
    """The latest month, quarter or year whose figure is due by `today`."""
    ref = today - dt.timedelta(days=due_day)
    if kind == "month":
        last = dt.date(ref.year, ref.month, 1) - dt.timedelta(days=1)
        return parse_period(f"{last.year:04d}-{last.month:02d}")
    if kind == "quarter":
        last = dt.date(ref.year, 3 * ((ref.month - 1) // 3) + 1, 1) - dt.timedelta(days=1)
        return parse_period(f"{last.year:04d}-Q{(last.month - 1) // 3 + 1}")
    return parse_period(f"{ref.year - 1:04d}")


def _latest_month(snapshot: Snapshot, code: str, unit: str) -> Period | None:
    by_unit = snapshot.observations.get(code, {})
    series = [by_unit.get(unit, {})] if unit else list(by_unit.values())
    months = [c for s in series for c in s if len(c) == 7 and c[4] == "-" and c[5] != "Q"]
    return parse_period(max(months)) if months else None


def _fresh(row: IndicatorRow, rules: list[Assessment], snapshot: Snapshot, due_days: dict[str, int]) -> IndicatorRow:
    """A figure older than its due period is 数据未更新: never green (a red or yellow stays, as notified)."""
    from dataclasses import replace

    a = min(rules, key=lambda x: LEVEL_ORDER.get(x.level, 4))
    latest: Period | None
    if a.rule_kind == "threshold":
        code = str(a.details.get("value_period") or "")
        try:
            latest = parse_period(code) if code else None
        except ValueError:
            latest = None
    else:
        latest = _latest_month(snapshot, row.code, str(a.details.get("unit") or "") if "@" in a.subject else "")
    if latest is None:
        return row
    due = due_period(latest.kind, snapshot.today, due_days.get(row.code, DEFAULT_DUE_DAY))
    if latest.end >= due.end:
        return row
    note = f"数据未更新：最新数据为{latest.label}，应报送至{due.label}"
    return replace(row, level="stale" if row.level in ("green", None) else row.level,
                   note="；".join(n for n in (note, row.note) if n))


def _scope(period: str) -> str:
    """The target scope a period belongs to: a praise for 2023-Q2 annotates the 2023 row."""
    return period if period == "final" else period[:4]


def _indicator_row(index: str, key: tuple[str, str], rules: list[Assessment], notes: dict[tuple[str, str], list[str]],
                   missing: dict[str, list[str]], snapshot: Snapshot, names: _UnitNames, *, sub: bool) -> IndicatorRow:
    a = min(rules, key=lambda x: LEVEL_ORDER.get(x.level, 4))
    code = _indicator_code(a)
    info = snapshot.indicators.get(code)
    note = list(dict.fromkeys(notes.get(key, [])))
    months = missing.get(a.subject, [])
    if months:
        note.append("、".join(months) + "数据未报送")
    if a.rule_kind == "threshold":
        bound = str(a.details.get("bound", ""))
        # 力争 is not a floor: "力争服务业投资同比增长8.0%以上" is a stretch goal, yellow at worst.
        basis = "力争目标" if a.details.get("strength") == "soft" else "底线标准"
        if bound and not _is_number(bound):  # a standard read from another indicator: say which, by name
            for other, other_info in sorted(snapshot.indicators.items(), key=lambda kv: -len(kv[0])):
                bound = bound.replace(other, other_info.name)
            note.insert(0, _months_named(f"标准：{bound.replace(' ', '')}", a.period, a.details, snapshot, a.subject))
        gap = None if a.value is None or a.threshold is None else a.value - a.threshold
        completion = progress = None
    elif a.rule_kind == "milestone":
        # One result by a date (到2025年争创2个): measured against the target itself, not a monthly pace.
        basis = f"节点目标（{a.period_label}）"
        completion = _float(a.details.get("completion"))
        progress = gap = None
        if a.measure.strip() == "%" and a.value is not None and a.threshold is not None:
            # A share or a rate (出口占全国份额2.331%, 增速不低于10%): the gap in points, not a 完成率 of a percentage.
            completion, gap = None, a.value - a.threshold
        if a.level is None and a.days_left is not None and a.days_left >= 0:
            note.insert(0, f"距节点还有{a.days_left}天")
    else:
        basis = "规划期目标" if a.period == "final" else "年度目标"
        if a.details.get("derived"):  # no year target of its own: the programme's, at its time progress
            basis = "按规划期序时进度测算"
        if a.details.get("strength") == "soft":
            basis += "（力争）"
        completion = _float(a.details.get("completion"))
        progress = _float(a.details.get("time_progress"))
        gap = completion - progress if completion is not None and progress is not None else None
        if a.details.get("whole_basis") and a.expected is not None and a.value is not None:
            # The light was decided on whole items (1家 × 20% of the period is 0家 due by now): say so
            # beside the points, which alone would contradict the colour.
            note.insert(0, f"按整数计，至今应完成{_num(a.expected)}{a.measure}，已完成{_num(a.value)}{a.measure}")
    return IndicatorRow(
        index=index, code=code, name=_months_named(a.subject_name if "@" in a.subject or not info else info.name,
                                             a.period, a.details,
                                             snapshot, a.subject),
        unit_name=a.unit_name if sub or "@" in a.subject else "", sub=sub, measure=a.measure, basis=basis,
        target=a.threshold, value=a.value,
        # A milestone's count runs since the programme began (累计至今); a figure of a year's months
        # (营业收入（2023年1—12月）) already names its months, and a share or a rate (从业人员比重67.3%,
        # 增速8.7%) is a level, never a running total: it is labelled with the month it stands at.
        value_label=_milestone_value_label(info, a.details) if a.rule_kind == "milestone" else a.period_label,
        completion=completion, time_progress=progress,
        gap=gap, level=a.level, units=names.join(a.units), note="；".join(note), rule=a.rule,
        units_short=names.short(a.units), comparison=str(a.details.get("comparison") or ""),
    )


def _milestone_value_label(info: Any, details: Mapping[str, Any]) -> str:
    if info is not None and "1—N月" in info.name:
        return ""
    if info is not None and (info.kind in ("level", "growth") or info.measure.strip() == "%"):
        period = str(details.get("value_period") or "")
        try:
            return parse_period(period).label if period else ""
        except ValueError:
            return ""
    return "累计至今"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return "/" in text and all(part.strip().isdigit() for part in text.split("/"))
    return True


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


# --- 重大项目实施表 ---------------------------------------------------------------------------------


def _project_rows(assessments: Sequence[Assessment], snapshot: Snapshot,
                  names: _UnitNames) -> tuple[list[ProjectRow], list[CategoryTotal], Count]:
    by_project: dict[str, list[Assessment]] = defaultdict(list)
    for a in assessments:
        if a.subject_type == "project" and a.rule_kind == "pace":
            by_project[a.subject].append(a)
    categories = sorted({p.category for p in snapshot.projects.values()},
                        key=lambda c: (CATEGORY_ORDER.index(c) if c in CATEGORY_ORDER else 9, c))
    rows: list[ProjectRow] = []
    totals: list[CategoryTotal] = []
    number = 0
    for category in categories:
        members = [p for p in snapshot.projects.values() if p.category == category]
        members.sort(key=lambda p: p.code)
        planned = done = expected = 0.0
        lights: list[str | None] = []
        for project in members:
            number += 1
            measured = by_project.get(project.code)
            if measured:
                a = min(measured, key=lambda x: LEVEL_ORDER.get(x.level, 3))
                planned += a.threshold or 0.0
                done += a.value or 0.0
                expected += a.expected or 0.0
                lights.append(a.level)
                rows.append(ProjectRow(
                    index=str(number), code=project.code, name=project.name, category=category, grade=project.level,
                    total_investment=project.total_investment, planned=a.threshold, done=a.value, expected=a.expected,
                    completion=_float(a.details.get("completion")), time_progress=_float(a.details.get("time_progress")),
                    level=a.level, units=names.join(project.units), units_short=names.short(project.units)))
            else:  # no plan for the year, or no rule measures it: listed, not lit
                rows.append(ProjectRow(
                    index=str(number), code=project.code, name=project.name, category=category, grade=project.level,
                    total_investment=project.total_investment, planned=None, done=None, expected=None,
                    completion=None, time_progress=None, level=None, units=names.join(project.units),
                    units_short=names.short(project.units)))
        tally = _count(lights)
        totals.append(CategoryTotal(category, len(members), sum(p.total_investment for p in members),
                                    planned, done, expected, tally.red, tally.yellow, tally.green))
    return rows, totals, _count(r.level for r in rows)


# --- 重点任务攻坚表 ---------------------------------------------------------------------------------


def _task_rows(assessments: Sequence[Assessment], snapshot: Snapshot,
               names: _UnitNames) -> tuple[list[TaskRow], TaskSummary]:
    deadline_levels: dict[str, str | None] = {}
    for a in assessments:
        if a.subject_type == "task" and a.rule_kind == "deadline":
            deadline_levels[a.subject] = _worst([deadline_levels.get(a.subject), a.level])
    today = snapshot.today
    rows = []
    done = on_time = overdue = 0
    for number, task in enumerate(sorted(snapshot.tasks.values(), key=lambda t: t.code), start=1):
        level: str | None
        if task.done_on is not None:
            done += 1
            late = task.deadline is not None and task.done_on > task.deadline
            on_time += not late
            status = "done_late" if late else "done"
            label = f"{'逾期完成' if late else '按时完成'}（{task.done_on.month}月{task.done_on.day}日）"
            level = "green"
        elif task.deadline is not None and task.deadline < today and not task.ongoing:
            overdue += 1
            status, label = "overdue", f"逾期{(today - task.deadline).days}天"
            # The deadline rule's light (yellow, red once escalated; 力争 yellow at worst); overdue is
            # never green. A task only the working group answers for (附件1 “工作专班成员单位”) is the
            # coordinator's own: listed with its days, no light.
            if names.members(task.units):
                level = deadline_levels.get(task.code) or "yellow"
            else:
                level, label = None, label + "（专班统筹）"
        else:
            status = "open"
            if task.ongoing:
                label = "常态化推进"  # a duty, not a result by a date: never overdue
            else:
                label = f"推进中（剩{(task.deadline - today).days}天）" if task.deadline else "推进中"
            level = None
        rows.append(TaskRow(
            # Some lists put only the time limit in the goal column; the measures then say what is due.
            index=str(number), code=task.code, title=task.title,
            goal=task.goal if task.goal and task.goal != task.deadline_text else task.measures or task.goal,
            deadline=task.deadline, deadline_text=task.deadline_text, units=names.join(task.units),
            units_short=names.short(task.units),
            status=status, status_label=label, level=level, done_on=task.done_on, ongoing=task.ongoing))
    summary = TaskSummary(total=len(rows), done=done, done_on_time=on_time, open=len(rows) - done - overdue,
                          overdue=overdue)
    return rows, summary


# --- 通报表扬 / 亮灯督促 ------------------------------------------------------------------------------


def _lists(candidates: Sequence[AlertCandidate], rule_set: RuleSet, names: _UnitNames,
           snapshot: Snapshot | None = None) -> tuple[list[ListItem], list[ListItem]]:
    rules = {r.id: r for r in rule_set.rules}
    order = {r.id: i for i, r in enumerate(rule_set.rules)}
    praise = [c for c in candidates if c.kind == "praise"]
    urging = [c for c in candidates if c.kind in ("warning", "overdue") and c.level in ("red", "yellow")]
    praise.sort(key=lambda c: (order.get(c.rule, 999), c.subject))
    urging.sort(key=lambda c: (LEVEL_ORDER.get(c.level, 3), order.get(c.rule, 999), c.subject))

    def item(index: int, c: AlertCandidate) -> ListItem:
        rule = rules.get(c.rule)
        subject = c.subject if c.subject_type == "indicator" else ""
        answerable = names.members(c.units) or list(c.units)
        return ListItem(index=index, level=c.level if c.kind != "praise" else "green",
                        title=_months_named(c.title, c.period, c.details, snapshot, subject),
                        subject_name=_months_named(c.subject_name, c.period, c.details, snapshot, subject),
                        units=names.join(answerable), units_short=names.short(answerable),
                        figures=_figures(c), action=rule.action if rule else "",
                        source=rule.source_for(str(c.details.get("indicator") or subject.split("@")[0]), subject)
                        if rule else "",
                        rule=c.rule)

    return ([item(i, c) for i, c in enumerate(praise, start=1)], [item(i, c) for i, c in enumerate(urging, start=1)])


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    text = f"{value:,.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _figures(c: AlertCandidate) -> str:
    """The figures behind a line of the lists, in the words the office uses."""
    details = c.details
    completion = _float(details.get("completion"))
    progress = _float(details.get("time_progress"))
    if "tasks_due" in details:
        return f"到期任务{details['tasks_due']}项，按时完成{details.get('tasks_on_time', 0)}项"
    if completion is not None and progress is not None:
        text = f"完成{_num(c.value)}{c.measure}，目标{_num(c.threshold)}{c.measure}，完成率{_num(completion)}%"
        gap = completion - progress
        # A light decided on whole items says so, or its colour would contradict the points shown.
        whole = (f"；按整数计，序时应完成{_num(c.expected)}{c.measure}，已完成{_num(c.value)}{c.measure}"
                 if details.get("whole_basis") and c.expected is not None else "")
        if abs(gap) < 0.005:
            return text + f"，与序时进度{_num(progress)}%持平" + whole
        return text + f"，{'快' if gap > 0 else '慢'}于序时进度（{_num(progress)}%）{_num(abs(gap))}个百分点" + whole
    if c.deadline is not None and c.days_left is not None:
        due = f"{c.deadline.year}年{c.deadline.month}月{c.deadline.day}日"
        if "indicator" in details and details.get("shape") == "milestone":
            # A milestone is a result due by a date (时间节点), not a figure to report.
            return f"完成时限{due}，已超过{-c.days_left}天" if c.days_left < 0 else f"完成时限{due}"
        if "indicator" in details:  # a monthly figure due
            return f"报送截止日{due}，已超过{-c.days_left}天" if c.days_left < 0 else f"报送截止日{due}"
        return f"时间节点{due}，已逾期{-c.days_left}天" if c.days_left < 0 else f"时间节点{due}"
    if c.value is not None and c.threshold is not None:
        label = _period_label(str(details.get("value_period", "")))
        return f"{label + '为' if label else ''}{_num(c.value)}{c.measure}，标准{_num(c.threshold)}{c.measure}"
    return ""


def _period_label(code: str) -> str:
    try:
        return parse_period(code).label if code else ""
    except ValueError:
        return code


# --- 争先创优晾晒表 ---------------------------------------------------------------------------------


def _unit_items(assessments: Sequence[Assessment], names: _UnitNames) -> dict[str, list[Assessment]]:
    """Each member unit's pace items of the year: its own share of a target where it has one, else
    the indicators and projects it answers for (five-year targets left out)."""
    pace = [a for a in assessments if a.rule_kind == "pace" and a.period != "final"
            and _float(a.details.get("completion")) is not None]
    own: set[tuple[str, str, str]] = set()  # (unit, indicator, period) with a per-unit share
    for a in pace:
        if "@" in a.subject:
            own.add((str(a.details.get("unit", "")), _indicator_code(a), a.period))
    items: dict[str, list[Assessment]] = defaultdict(list)
    for a in pace:
        if "@" in a.subject:
            items[str(a.details.get("unit", ""))].append(a)
            continue
        for unit in names.members(a.units):
            if a.subject_type == "indicator" and (unit, _indicator_code(a), a.period) in own:
                continue
            items[unit].append(a)
    return items


def _ranking(assessments: Sequence[Assessment], tasks: Sequence[TaskRow], snapshot: Snapshot,
             candidates: Sequence[AlertCandidate], names: _UnitNames) -> list[UnitRank]:
    """Each unit's pace items (its own share of a target, else the indicators and projects it answers
    for), ranked by mean completion against time progress. Five-year (final) targets are left out:
    they run on a different clock and would double count the year's figures."""
    items = _unit_items(assessments, names)
    overdue: dict[str, int] = defaultdict(int)
    for task in tasks:
        if task.status == "overdue":
            info = snapshot.tasks.get(task.code)
            for unit in names.members(info.units if info else ()):
                overdue[unit] += 1
    praised: dict[str, int] = defaultdict(int)
    for c in candidates:
        if c.kind == "praise":
            for unit in names.members(c.units):
                praised[unit] += 1
    rows = []
    for unit, measured in items.items():
        completion = fmean(_float(a.details["completion"]) or 0.0 for a in measured)
        progress = fmean(_float(a.details["time_progress"]) or 0.0 for a in measured)
        gap = fmean((_float(a.details["completion"]) or 0.0) - (_float(a.details["time_progress"]) or 0.0)
                    for a in measured)
        tally = _count(a.level for a in measured)
        rows.append((unit, len(measured), completion, progress, gap, tally))
    rows.sort(key=lambda r: (-round(r[4], 6), r[5].red, r[5].yellow, r[0]))
    ranked = []
    for rank, (unit, count, completion, progress, gap, tally) in enumerate(rows, start=1):
        level = "red" if tally.red else "yellow" if tally.yellow else "green"
        ranked.append(UnitRank(rank=rank, code=unit, name=names.name(unit), items=count, completion=completion,
                               time_progress=progress, gap=gap, red=tally.red, yellow=tally.yellow, green=tally.green,
                               tasks_overdue=overdue.get(unit, 0), praised=praised.get(unit, 0), level=level))
    return ranked


# --- 督导服务销号表 ---------------------------------------------------------------------------------


def _state_at(record: AlertRecord, at: dt.datetime) -> tuple[str | None, str, dt.datetime | None, str | None]:
    """(level, state, when the state began, level before it resolved) of an alert at `at`."""
    level: str | None = None
    state = "firing"
    since: dt.datetime | None = None
    before: str | None = None
    for when, lv, st in record.level_history:
        if when > at:
            break
        if st != "resolved" and lv:
            before = lv
        if st != state:
            since = when
        level, state = lv, st
    return level, state, since, before


# An alert's stored title carries its state at the last evaluation ("（已逾期31天，升级督办）"); a report
# is read as of its own cut-off, where the ledger's 历时 column says how long the item has been open.
_STATE_SUFFIX = re.compile(r"（已逾期\d+天(?:，升级督办)?）")


def _ledger(records: Sequence[AlertRecord], since: dt.datetime, cutoff: dt.datetime, names: _UnitNames,
            snapshot: Snapshot | None = None) -> tuple[list[LedgerRow], list[LedgerRow], list[LedgerRow]]:
    opened: list[LedgerRow] = []
    closed: list[LedgerRow] = []
    still_open: list[LedgerRow] = []
    for record in sorted(records, key=lambda r: (r.first_seen, r.rule, r.subject)):
        if record.kind not in ("warning", "overdue") or record.first_seen > cutoff:
            continue
        level, state, state_since, before = _state_at(record, cutoff)
        notices = sum(1 for at in record.notices if at <= cutoff)
        answerable = names.members(record.units) or list(record.units)
        units, units_short = names.join(answerable), names.short(answerable)
        is_closed = state == "resolved" and state_since is not None and since < state_since <= cutoff

        def row(status: str, label: str, lv: str | None, closed_at: dt.datetime | None,
                record: AlertRecord = record, units: str = units, units_short: str = units_short,
                notices: int = notices) -> LedgerRow:
            end = closed_at or cutoff
            title = (name_with_months(record.title, record.value_period) if record.value_period else
                     _months_named(record.title, record.period, {}, snapshot,
                                   record.subject if record.subject_type == "indicator" else ""))
            title = _STATE_SUFFIX.sub("", title)
            return LedgerRow(index=0, title=title, units=units, level=lv, first_seen=record.first_seen,
                             status=status, status_label=label, closed_at=closed_at, notices=notices,
                             days_open=max(0, (local_date(end) - local_date(record.first_seen)).days),
                             units_short=units_short)

        if since < record.first_seen <= cutoff:
            opened.append(row("opened", "已销号" if state == "resolved" else "督办中",
                              before if state == "resolved" else level,
                              state_since if state == "resolved" else None))
        if is_closed:
            closed.append(row("closed", "已销号", before, state_since))
        elif state == "firing" and record.first_seen <= since:
            still_open.append(row("open", "督办中", level, None))
    return _numbered(opened), _numbered(closed), _numbered(still_open)


def _numbered(rows: list[LedgerRow]) -> list[LedgerRow]:
    from dataclasses import replace

    return [replace(r, index=i) for i, r in enumerate(rows, start=1)]


# --- 季度通报 / 年度评估: the period's own analysis ---------------------------------------------------


def _period_tasks(tasks: Sequence[TaskRow], period: Period) -> tuple[list[TaskRow], TaskSummary]:
    """Tasks whose deadline falls in the period, and how they ended by the cut-off."""
    from dataclasses import replace

    due = [t for t in tasks if t.deadline is not None and period.start <= t.deadline <= period.end and not t.ongoing]
    rows = [replace(t, index=str(i)) for i, t in enumerate(due, start=1)]
    done = sum(1 for t in rows if t.status in ("done", "done_late"))
    on_time = sum(1 for t in rows if t.status == "done")
    overdue = sum(1 for t in rows if t.status == "overdue")
    return rows, TaskSummary(total=len(rows), done=done, done_on_time=on_time, open=len(rows) - done - overdue,
                             overdue=overdue)


def _points(value: float) -> str:
    return _num(abs(value))


def _changes(report: Report, previous: Report) -> list[IndicatorChange]:
    """Each indicator now against the previous quarter's meeting (环比): completion for targets of the
    same year or the programme, the figure itself for standards."""
    before = {(r.code, r.unit_name, r.basis): r for r in previous.indicators}
    same_year = previous.period[:4] == report.period[:4]
    rows = []
    for row in report.indicators:
        old = before.get((row.code, row.unit_name, row.basis))
        if old is not None and row.basis == "年度目标" and not same_year:
            old = None  # a new year's target starts from nothing: no 环比 with last year's
        change: float | None = None
        unit = ""
        if old is None:
            trend = "新年度起算" if row.basis == "年度目标" and not same_year else "新纳入监测"
        elif row.completion is not None and old.completion is not None:
            change, unit = row.completion - old.completion, "个百分点"
            trend = ("持平" if abs(change) < 0.005 else
                     f"完成率{'提高' if change > 0 else '回落'}{_points(change)}个百分点")
        elif row.value is not None and old.value is not None:
            change, unit = row.value - old.value, ("个百分点" if row.measure == "%" else row.measure)
            trend = "持平" if abs(change) < 0.005 else f"{'提高' if change > 0 else '下降'}{_points(change)}{unit}"
        else:
            trend = "数据不全，无法比较"
        if old is not None and old.level != row.level and row.level in ("red", "yellow", "green", "stale") \
                and old.level in ("red", "yellow", "green", "stale"):
            trend += (f"（本季度数据未更新，上季度为{_LEVEL_WORDS[old.level]}）" if row.level == "stale" else
                      f"（上季度数据未更新，本季度为{_LEVEL_WORDS[row.level]}）" if old.level == "stale" else
                      f"（{_LEVEL_WORDS[old.level]}转{_LEVEL_WORDS[row.level]}）")
        rows.append(IndicatorChange(
            index=row.index, name=row.name, unit_name=row.unit_name if row.sub else "", measure=row.measure,
            basis=row.basis, value_before=old.value if old else None, label_before=old.value_label if old else "",
            value_now=row.value, label_now=row.value_label, completion_before=old.completion if old else None,
            completion_now=row.completion, change=change, change_unit=unit, level_before=old.level if old else None,
            level_now=row.level, trend=trend))
    return rows


_LEVEL_WORDS = {"red": "红灯", "yellow": "黄灯", "green": "绿灯", "stale": "数据未更新"}


def _movement(ranking: Sequence[UnitRank], before: Sequence[UnitRank]) -> list[UnitRank]:
    """Each unit's place against the previous quarter's: 进位 (up), 退位 (down)."""
    from dataclasses import replace

    places = {r.code: r.rank for r in before}
    moved = []
    for row in ranking:
        old = places.get(row.code)
        if old is None:
            text = "新列入排名"
        elif old > row.rank:
            text = f"进位{old - row.rank}名"
        elif old < row.rank:
            text = f"退位{row.rank - old}名"
        else:
            text = "名次不变"
        moved.append(replace(row, previous_rank=old, movement=text))
    return moved


def _red_items(assessments: Sequence[Assessment], names: _UnitNames,
               snapshot: Snapshot | None = None) -> dict[str, list[str]]:
    """Each member unit's red indicators and projects, by name."""
    found: dict[str, list[str]] = defaultdict(list)
    for a in assessments:
        if a.level != "red" or a.rule_kind not in ("threshold", "pace") or a.period == "final":
            continue
        units = [str(a.details.get("unit"))] if "@" in a.subject and a.details.get("unit") else names.members(a.units)
        name = _months_named(a.subject_name, a.period, a.details, snapshot,
                             a.subject if a.subject_type == "indicator" else "")
        for unit in units:
            if name not in found[unit]:
                found[unit].append(name)
    return found


def _overdue_tasks(report: Report, snapshot: Snapshot, names: _UnitNames) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for task in report.tasks:
        if task.status == "overdue":
            info = snapshot.tasks.get(task.code)
            for unit in names.members(info.units if info else ()):
                found[unit].append(task.title)
    return found


def _supervision(assessments: Sequence[Assessment], report: Report, snapshot: Snapshot,
                 names: _UnitNames) -> list[SupervisionItem]:
    """The quarter's 督导服务名单 (附件2 五（二）: 每季度开展督导服务): member units with red
    indicators or projects, overdue tasks, or that fell three places or more in the ranking."""
    reds = _red_items(assessments, names, snapshot)
    overdue = _overdue_tasks(report, snapshot, names)
    moves = {r.code: r.movement for r in report.ranking}
    fell = {r.code for r in report.ranking
            if r.previous_rank is not None and r.rank - r.previous_rank >= 3}
    codes = sorted(set(reds) | set(overdue) | fell,
                   key=lambda c: (-(len(reds.get(c, [])) + len(overdue.get(c, []))), names.name(c)))
    items = []
    for index, code in enumerate(codes, start=1):
        focus = [f"红灯：{'、'.join(reds[code][:3])}{'等' if len(reds[code]) > 3 else ''}"] if reds.get(code) else []
        if overdue.get(code):
            tasks = overdue[code]
            focus.append(f"逾期任务：{'、'.join(tasks[:2])}{'等' if len(tasks) > 2 else ''}")
        if code in fell:
            focus.append(f"排名{moves[code]}")
        items.append(SupervisionItem(index=index, code=code, name=names.name(code), red=len(reds.get(code, [])),
                                     overdue=len(overdue.get(code, [])), movement=moves.get(code, ""),
                                     focus="；".join(focus)))
    return items


# 年度评估 grades (附件2 四（四）: 年底开展综合评估，对进展较好的街镇和部门进行总结): computed from the
# year's figures as a proposal for the assessment meeting; the office decides.
GRADE_RULES = ("好：平均完成率不低于序时进度、无红灯、年内到期任务均已完成；"
               "较好：平均完成率落后序时进度不超过10个百分点、无红灯、逾期未完成任务不超过到期任务的四分之一；"
               "较差：红灯2项及以上，或逾期未完成任务超过到期任务的一半，或平均完成率落后序时进度30个百分点以上；"
               "其余为一般。")


def _grade(gap: float | None, red: int, overdue: int, due: int) -> str:
    late = overdue / due if due else 0.0
    if red >= 2 or late > 0.5 or (gap is not None and gap < -30):
        return "较差"
    if red == 0 and overdue == 0 and (gap is None or gap >= 0):
        return "好"
    if red == 0 and late <= 0.25 and (gap is None or gap >= -10):
        return "较好"
    return "一般"


def _assessment(assessments: Sequence[Assessment], report: Report, snapshot: Snapshot, period: Period,
                names: _UnitNames) -> list[UnitAssessment]:
    """The year's 综合评估 of each member unit: its year targets, its tasks due in the year, its praise."""
    ranked = {r.code: r for r in report.ranking}
    met = {unit: sum(1 for a in measured if (_float(a.details.get("completion")) or 0.0) >= 100.0)
           for unit, measured in _unit_items(assessments, names).items()}
    due: dict[str, list[TaskRow]] = defaultdict(list)
    for task in report.period_tasks:
        info = snapshot.tasks.get(task.code)
        for unit in names.members(info.units if info else ()):
            due[unit].append(task)
    reds = _red_items(assessments, names, snapshot)
    rows = []
    for code in set(ranked) | set(due):
        rank = ranked.get(code)
        tasks = due.get(code, [])
        overdue = sum(1 for t in tasks if t.status == "overdue")
        red = len(reds.get(code, []))
        grade = _grade(rank.gap if rank else None, red, overdue, len(tasks))
        remark = {"好": "建议通报表扬，总结推广经验", "较差": "建议约谈督促，限期整改"}.get(grade, "")
        rows.append(UnitAssessment(
            rank=0, code=code, name=names.name(code), items=rank.items if rank else 0, met=met.get(code, 0),
            completion=rank.completion if rank else None, tasks_due=len(tasks),
            tasks_on_time=sum(1 for t in tasks if t.status == "done"), tasks_overdue=overdue,
            praised=rank.praised if rank else 0, red=red, grade=grade, remark=remark))
    order = {"好": 0, "较好": 1, "一般": 2, "较差": 3}
    rows.sort(key=lambda r: (order[r.grade], -(ranked[r.code].gap if r.code in ranked else -1e9), r.name))
    from dataclasses import replace

    return [replace(r, rank=i) for i, r in enumerate(rows, start=1)]


__all__ = ["GRADE_RULES", "build_report", "due_period"]
