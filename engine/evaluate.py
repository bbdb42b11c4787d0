"""Evaluation: (rules, a store snapshot, now) → alert candidates. No I/O, no clock.

For each rule, facts are derived from the snapshot in Python (year-to-date sums, time
progress, days to a deadline); the decision itself — which light, which reminder — is the
rule's durable-rules condition, compiled once per loaded rule set (engine.compile).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from duban.engine.calendar import CalendarFileError, WorkingCalendar
from duban.engine.compile import FACT_SCHEMA, DecisionKind, compile_rule_set, decision_of
from duban.engine.durable_adapter import CompiledRuleset
from duban.engine.expr import BoundUndefined
from duban.engine.rules import DEFAULT_TOLERANCE, Rule, RuleSet
from duban.store.gcpause import gc_paused
from duban.store.periods import Period, figures_due, local_date, month_code, parse_period
from duban.store.snapshot import IndicatorInfo, Snapshot, TargetSpec, TaskInfo


@dataclass(frozen=True)
class AlertCandidate:
    """What one rule says about one subject at one moment; the lifecycle turns these into notices."""

    at: dt.datetime
    rule: str
    period: str
    kind: str  # warning | reminder | overdue | praise
    level: str | None  # red | yellow | blue | green
    subject_type: str  # indicator | task | project | unit
    subject: str
    subject_name: str
    units: tuple[str, ...]
    recipients: tuple[str, ...]
    notify_units: tuple[str, ...]  # unit codes that receive it (responsible units and/or working group)
    title: str
    value: float | None = None
    threshold: float | None = None
    expected: float | None = None
    measure: str = ""
    deadline: dt.date | None = None
    days_left: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.rule, self.subject_type, self.subject, self.period)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "at": self.at.isoformat(),
            "rule": self.rule,
            "period": self.period,
            "kind": self.kind,
            "level": self.level,
            "subject_type": self.subject_type,
            "subject": self.subject,
            "subject_name": self.subject_name,
            "units": list(self.units),
            "recipients": list(self.recipients),
            "title": self.title,
            "value": _round(self.value),
        }
        if self.threshold is not None:
            data["threshold"] = _round(self.threshold)
        if self.expected is not None:
            data["expected"] = _round(self.expected)
        if self.measure:
            data["measure"] = self.measure
        if self.deadline is not None:
            data["deadline"] = self.deadline.isoformat()
            data["days_left"] = self.days_left
        data.update(self.details)
        return data


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


@dataclass(frozen=True)
class Assessment:
    """What one rule measured for one subject, whether or not anything fired: the rows reports show.

    `level` is the light the rule's conditions gave: red/yellow when a warning fired, green when
    a threshold or pace rule was met, None when the rule only reminds (deadlines, reports due).
    """

    rule: str
    rule_kind: str
    subject_type: str
    subject: str
    subject_name: str
    units: tuple[str, ...]
    unit_name: str
    period: str
    period_label: str
    measure: str
    value: float | None
    threshold: float | None
    expected: float | None
    deadline: dt.date | None
    days_left: int | None
    level: str | None
    decisions: tuple[str, ...]  # stages matched, e.g. ("yellow",) or ("ahead",)
    details: dict[str, Any]


@dataclass
class Derived:
    facts: list[dict[str, Any]] = field(default_factory=list)
    pending: list[_Pending] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: set[str] = field(default_factory=set)
    # Items left out because their figures are unusable (not finite) or their rule failed: one line
    # each, in Chinese, naming the rule, the subject and file:line. The rest of the round goes on.
    failures: list[str] = field(default_factory=list)


@dataclass
class EvaluationResult:
    candidates: list[AlertCandidate]
    warnings: list[str]
    skipped_rules: set[str] = field(default_factory=set)  # rule ids not evaluated (unknown indicators)
    failures: list[str] = field(default_factory=list)  # items skipped as unusable (see Derived.failures)
    # (derived fact, decisions it matched) pairs; `assessments` describes them when asked, because
    # rounds never need them and building tens of thousands costs as much as deriving them.
    measured: list[tuple[_Pending, list[DecisionKind]]] = field(default_factory=list, repr=False)

    @cached_property
    def assessments(self) -> list[Assessment]:
        return [_assessment(item, decisions) for item, decisions in self.measured]


@dataclass
class _Pending:
    """A derived fact plus what is needed to describe it if a condition matches."""

    rule: Rule
    subject_type: str
    subject: str
    subject_name: str
    units: tuple[str, ...]
    period: str
    measure: str = ""
    value: float | None = None
    threshold: float | None = None
    expected: float | None = None
    deadline: dt.date | None = None
    days_left: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    unit_name: str = ""
    period_label: str = ""


class Evaluator:
    """Holds one compiled rule set (one durable-rules host); evaluate() is a pure function of its inputs."""

    def __init__(self, rule_set: RuleSet, calendar: WorkingCalendar | None = None) -> None:
        self.rule_set = rule_set
        self.load_warnings: list[str] = []
        if calendar is None:
            try:
                calendar = WorkingCalendar.load(rule_set.settings.calendar)
            except CalendarFileError as exc:
                # A broken override file must not stop supervision: weekends still count, the admin is told.
                self.load_warnings.append(f"节假日调整文件有误，暂按 chinese-calendar 和周末推算工作日：{exc}")
                calendar = WorkingCalendar.load(None)
        self.calendar = calendar
        self._compiled: CompiledRuleset = compile_rule_set(rule_set)

    def close(self) -> None:
        self._compiled.close()

    def evaluate(self, snapshot: Snapshot, *, groups: Iterable[str] | None = None) -> EvaluationResult:
        with gc_paused():
            return self._evaluate(snapshot, groups)

    def _evaluate(self, snapshot: Snapshot, groups: Iterable[str] | None) -> EvaluationResult:
        derived = self.derive(snapshot, groups=groups)
        pending = derived.pending
        candidates = []
        matched: list[list[DecisionKind]] = [[] for _ in pending]
        for index, durable_rule in self._compiled.match_indices(derived.facts):
            decision = decision_of(durable_rule)
            if decision.kind == "none":
                continue
            matched[index].append(decision)
            candidates.append(self._candidate(pending[index], decision, snapshot, snapshot.at))
        candidates.sort(key=lambda c: (c.rule, c.subject_type, c.subject, c.period, c.kind))
        return EvaluationResult(candidates, derived.warnings, derived.skipped, derived.failures,
                                list(zip(pending, matched, strict=True)))

    def derive(self, snapshot: Snapshot, *, groups: Iterable[str] | None = None) -> Derived:
        """The facts the rules' conditions decide on, one per (rule, subject); no decision yet.

        Public so that benchmarks can assert the very same facts into durable-rules directly.
        """
        wanted = set(groups) if groups is not None else None
        derived = Derived(warnings=list(self.load_warnings))
        context = _Context(snapshot, derived.warnings)
        context.failures = derived.failures
        defaults = {name: kind() for name, kind in FACT_SCHEMA.fields.items()}
        for rule in self.rule_set.rules:
            if wanted is not None and not wanted & set(rule.groups):
                continue
            unknown = sorted(code for code in rule.referenced_indicators if code not in snapshot.indicators)
            if unknown:
                derived.warnings.append(
                    f"{rule.position}: 规则 `{rule.short_id}` 引用了未知指标 {', '.join(unknown)}，本次跳过该规则")
                derived.skipped.add(rule.id)
                continue
            defaults["rule"] = rule.id
            start = len(derived.pending)
            try:
                for item, fact in _DERIVERS[rule.kind](self, rule, snapshot, context):
                    unusable = _unusable(item, fact)
                    if unusable:
                        # One bad figure (a 400-digit value stored as -inf, two 1e308 rows summed) must
                        # not stop the round: this subject is left out and the admin told.
                        derived.failures.append(
                            f"{rule.position}: 规则 `{rule.short_id}` 的对象 {item.subject}（{item.period_label or item.period}）"
                            f"数据不是有限数值（{unusable}），本次跳过该对象；请核对导入的数据")
                        continue
                    named = self.rule_set.settings.target_names.get(item.subject) if item.subject_type == "indicator" else None
                    if named:  # a unit's share the document names on its own: 培育规上旅游企业, not 新增规模以上服务业企业
                        item.subject_name = named
                    # Every fact carries every schema field: durable needs them typed and present.
                    derived.facts.append({**defaults, **fact, "idx": len(derived.pending)})
                    derived.pending.append(item)
            except Exception as exc:  # a rule that cannot be evaluated is skipped; the others go on
                del derived.facts[start:], derived.pending[start:]
                derived.failures.append(
                    f"{rule.position}: 规则 `{rule.short_id}` 本次无法计算（{type(exc).__name__}: {str(exc)[:200]}），已跳过该规则")
                derived.skipped.add(rule.id)
        return derived

    # --- turning a match into a candidate ---------------------------------------------------

    def _candidate(self, item: _Pending, decision: DecisionKind, snapshot: Snapshot, at: dt.datetime) -> AlertCandidate:
        rule = item.rule
        wg = working_group_of(self.rule_set, snapshot)
        notify = rule.notify
        if decision.copy_working_group and notify == "units":
            notify = "both"
        notify_units: list[str] = []
        if notify in ("units", "both"):
            notify_units += list(item.units)
        if notify in ("working_group", "both") and wg and wg not in notify_units:
            notify_units.append(wg)
        recipients: list[str] = []
        for code in notify_units:
            unit = snapshot.units.get(code)
            for email in unit.emails if unit else ():
                if email not in recipients:
                    recipients.append(email)
        template = rule.title
        if decision.kind == "praise" and rule.kind == "pace":
            template = "“{subject}”" + ("（{unit}）" if item.unit_name else "") + "完成进度快于序时进度" \
                + _fmt(rule.praise_margin) + "个百分点以上"
        if decision.stage == "progress":
            # An ongoing duty has no 时间节点 to quote: the quarter's progress is what is asked for.
            template = "常态化任务“{subject}”{period}推进情况调度"
        subject = item.subject_name
        if "“{subject}”" in template:
            # Quotes inside quotes are single: “‘品字标浙江服务’品牌企业培育”, never ““品字标浙江服务”品牌企业培育”.
            subject = subject.replace("“", "‘").replace("”", "’")
        title = _fill(template, {
            "subject": subject,
            "period": item.period_label,
            "unit": item.unit_name,
            "value": _fmt(item.value),
            "threshold": _fmt(item.threshold),
            "expected": _fmt(item.expected),
            "days": str(abs(item.days_left)) if item.days_left is not None else "",
            "forecast": _fmt(item.details["forecast"]["percent"]) if "forecast" in item.details else "",
        })
        title += _stage_note(decision.stage, item)
        details = dict(item.details)
        details["stage"] = decision.stage
        return AlertCandidate(
            at=at,
            rule=rule.id,
            period=item.period if not decision.period_suffix else f"{item.period}/{decision.period_suffix}",
            kind=decision.kind,
            level=decision.level,
            subject_type=item.subject_type,
            subject=item.subject,
            subject_name=item.subject_name,
            units=item.units,
            recipients=tuple(recipients),
            notify_units=tuple(notify_units),
            title=title,
            value=item.value,
            threshold=item.threshold,
            expected=item.expected,
            measure=item.measure,
            deadline=item.deadline,
            days_left=item.days_left,
            details=details,
        )


_LIGHT_ORDER = {"red": 0, "yellow": 1, "green": 2, "blue": 3}


def working_group_of(rule_set: RuleSet, snapshot: Snapshot) -> str:
    """The working group's unit code: programme.yaml's `working_group`, else the unit of kind working_group."""
    named = rule_set.settings.working_group
    if named:
        return named
    found = snapshot.working_group_units
    return found[0] if found else ""


def _unusable(item: _Pending, fact: dict[str, Any]) -> str:
    """'' when every number of the item is finite; else which one is not (e.g. 'gap=-inf')."""
    for name, value in fact.items():
        if isinstance(value, float) and not math.isfinite(value):
            return f"{name}={value}"
    for name in ("value", "threshold", "expected"):
        value = getattr(item, name)
        if isinstance(value, float) and not math.isfinite(value):
            return f"{name}={value}"
    return ""


def _assessment(item: _Pending, decisions: list[DecisionKind]) -> Assessment:
    warned = [d.level for d in decisions if d.kind in ("warning", "overdue") and d.level]
    if warned:
        level: str | None = min(warned, key=lambda lv: _LIGHT_ORDER.get(lv, 9))
    elif item.rule.kind in ("threshold", "pace", "milestone", "forecast") or any(d.kind == "praise" for d in decisions) \
            or (item.rule.kind == "deadline" and item.details.get("done")):
        level = "green"
    else:
        level = None
    return Assessment(
        rule=item.rule.id, rule_kind=item.rule.kind, subject_type=item.subject_type, subject=item.subject,
        subject_name=item.subject_name, units=item.units, unit_name=item.unit_name, period=item.period,
        period_label=item.period_label, measure=item.measure, value=item.value, threshold=item.threshold,
        expected=item.expected, deadline=item.deadline, days_left=item.days_left, level=level,
        decisions=tuple(d.stage for d in decisions), details=dict(item.details),
    )


def _stage_note(stage: str, item: _Pending) -> str:
    """Deadline and reporting notices say where the subject stands: days left, or days overdue."""
    days = item.days_left
    due = f"{item.deadline.month}月{item.deadline.day}日" if item.deadline else ""
    if stage.startswith("remind") and days is not None:
        working = item.details.get("working_days_left")
        if days == 0:
            return "（今日到期）"
        if working == 0:
            return f"（距完成时限还有{days}天，今日为到期前最后一个工作日）"
        return f"（距完成时限还有{working}个工作日）" if working is not None else f"（距完成时限还有{days}天）"
    if stage == "progress":
        return ""
    if stage == "overdue" and days is not None:
        return f"（已逾期{-days}天）"
    if stage == "escalated" and days is not None:
        return f"（已逾期{-days}天，升级督办）"
    if stage == "due_soon":
        return f"（报送截止日{due}）"
    if stage in ("missing", "missing_red"):
        return f"（已超过报送截止日{due}）"
    if stage == "forecast" and "forecast" in item.details:
        return f"（按当前进度，预计年底完成{_fmt(item.details['forecast']['percent'])}%）"
    if stage == "missed" and item.deadline is not None:
        return f"（完成时限{item.deadline.year}年{item.deadline.month}月{item.deadline.day}日已过）"
    return ""


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.2f}".rstrip("0").rstrip(".")


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _fill(text: str, values: dict[str, str]) -> str:
    """Fill {name} placeholders; unknown names stay as written (no format-string attribute access)."""
    return _PLACEHOLDER.sub(lambda m: values.get(m[1], m[0]), text)


# --- fact derivation, one function per rule kind ------------------------------------------------


def _indicators(rule: Rule, snapshot: Snapshot) -> list[IndicatorInfo]:
    selector = rule.selector
    return [
        info for code, info in sorted(snapshot.indicators.items()) if selector.matches(code, info.kind)
    ]


def _latest(series: dict[str, float]) -> tuple[Period, float] | None:
    """The latest figure; among periods ending together the finest: a month over its quarter over its year."""
    best: tuple[tuple[dt.date, dt.date], Period, float] | None = None
    for code, value in series.items():
        period = parse_period(code)
        key = (period.end, period.start)
        if best is None or key > best[0]:
            best = (key, period, value)
    return None if best is None else (best[1], best[2])


def _value_in(snapshot: Snapshot, code: str, period: Period) -> float | None:
    return snapshot.observations.get(code, {}).get("", {}).get(period.code)


def _derive_threshold(ev: Evaluator, rule: Rule, snapshot: Snapshot, context: _Context) -> Iterable[tuple[_Pending, dict[str, Any]]]:
    bound = rule.at_least or rule.more_than or rule.at_most
    assert bound is not None
    if rule.selector.subject_type == "project":
        yield from _project_list_threshold(rule, bound, snapshot, context)
        return
    for info in _indicators(rule, snapshot):
        latest = _latest(snapshot.observations.get(info.code, {}).get("", {}))
        if latest is None:
            continue
        period, value = latest
        try:
            limit = bound.resolve(info.measure, lambda code, p=period: _value_in(snapshot, code, p))  # type: ignore[misc]
        except BoundUndefined as exc:
            # Not "figures missing": the rule would silently never fire. Skipped and reported instead.
            context.failures.append(f"{rule.position}: 规则 `{rule.short_id}` 的标准 {bound.text} 在 {period.label} 无法计算"
                                    f"（{exc}），本次跳过 {info.code}；请核对数据或修改标准")
            continue
        if limit is None:
            context.warnings.append(f"{rule.position}: 规则 `{rule.short_id}` 缺少 {period.label} 的比较指标数据（{bound.text}），本次跳过 {info.code}")
            continue
        details: dict[str, Any] = {"value_period": period.code, "bound": bound.text,
                                   "comparison": _rule_comparison(rule), "strength": rule.strength}
        if bound.references:
            # A bound computed from other figures is not a figure of the document: the notice names
            # what it was computed from ("按全市固定资产投资增速9.9%测算").
            details["bound_basis"] = [
                {"name": snapshot.indicators[code].name if code in snapshot.indicators else code,
                 "period": period.code, "value": _value_in(snapshot, code, period),
                 "measure": snapshot.indicators[code].measure if code in snapshot.indicators else ""}
                for code in sorted(bound.references)]
        item = _Pending(
            rule, "indicator", info.code, info.name, info.units, str(period.year), info.measure,
            value=value, threshold=limit, period_label=period.label, details=details,
        )
        gap = value - limit if rule.at_most is not None else limit - value
        yield item, {"gap": gap}


def _rule_comparison(rule: Rule) -> str:
    return "more_than" if rule.more_than is not None else "at_most" if rule.at_most is not None else "at_least"


_AGGREGATE_LABELS = {"count": "个数", "total_investment": "总投资", "planned_investment": "年度计划投资",
                     "completed_investment": "完成投资"}


def _project_list_threshold(rule: Rule, bound: Any, snapshot: Snapshot, context: _Context) -> Iterable[tuple[_Pending, dict[str, Any]]]:
    """`projects: {category: …, level: …}` with `aggregate`: one figure over the project list."""
    selector = rule.selector
    today = snapshot.today
    # The year judged, as for annual targets: in January, last year (its plans and December figures).
    year = _judged_year(snapshot)
    if selector.year:
        if selector.year != year:
            return  # a one-year list (附件1: 2023) is judged in its own year only
        year = selector.year
    chosen = []
    for code, project in sorted(snapshot.projects.items()):
        if not selector.matches_project(code, project.category, project.level):
            continue
        if selector.in_year and not snapshot.plans.get((code, year)) and not context.project_sum(code, str(year)):
            continue
        chosen.append(project)
    aggregate = rule.aggregate
    if aggregate == "count":
        value, measure = float(len(chosen)), "个"
    elif aggregate == "total_investment":
        value, measure = sum(p.total_investment for p in chosen), "亿元"
    elif aggregate == "planned_investment":
        value, measure = sum(snapshot.plans.get((p.code, year), 0.0) for p in chosen), "亿元"
    else:
        value, measure = sum(context.project_sum(p.code, str(year)) for p in chosen), "亿元"
    limit = bound.resolve(measure, lambda code: None)
    if limit is None:
        context.warnings.append(f"{rule.position}: 规则 `{rule.short_id}` 的标准不能引用指标（项目清单没有期间），本次跳过")
        return
    scope = "、".join((*selector.categories, *selector.levels))
    name = f"{scope}服务业重大项目" if scope else "服务业重大项目"
    if selector.in_year:
        name = f"{year}年推进的{name}"
    units: list[str] = []
    for project in chosen:
        for unit in project.units[:1]:
            if unit not in units:
                units.append(unit)
    last_month = today.month - 1 if today.year == year else 12
    period_label = f"{year}年1—{last_month}月" if aggregate == "completed_investment" and last_month else f"{year}年"
    item = _Pending(rule, "project_list", rule.short_id, f"{name}{_AGGREGATE_LABELS[aggregate]}", tuple(units),
                    str(year), measure, value=value, threshold=limit, period_label=period_label,
                    details={"aggregate": aggregate, "projects": [p.code for p in chosen], "bound": bound.text,
                             "categories": list(selector.categories), "levels": list(selector.levels),
                             "comparison": _rule_comparison(rule), "strength": rule.strength})
    gap = value - limit if rule.at_most is not None else limit - value
    yield item, {"gap": gap}


# --- targets as the documents state them -----------------------------------------------------

# Measures whose figures are whole items: an expected value of 0.08个 means nothing.
COUNT_MEASURES = frozenset({"个", "家", "名", "项", "场", "人", "人次", "次", "座", "条", "所", "批", "处", "件", "户", "位", "支", "只"})


def _is_count(measure: str) -> bool:
    return measure.strip() in COUNT_MEASURES


@dataclass(frozen=True)
class _Target:
    """A target with what the rule adds: the strength and tolerance it falls back on, and the line that meets it."""

    value: float
    shape: str
    comparison: str
    strength: str
    tolerance: float
    due: dt.date | None
    count: bool

    @property
    def line(self) -> float:
        """The least figure that meets the target: 以上 T, 超过 T (a count: T+1), 左右 T×(1−tolerance)."""
        if self.comparison == "about":
            line = self.value * (1 - self.tolerance / 100)
            return float(math.ceil(line - 1e-9)) if self.count else line
        if self.comparison == "more_than" and self.count:
            return math.floor(self.value + 1e-9) + 1.0
        return self.value

    def met(self, value: float) -> bool:
        if self.comparison == "at_most":
            return value <= self.value + 1e-9
        if self.comparison == "more_than":
            return value > self.value + 1e-9
        return value >= self.line - 1e-9

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {"shape": self.shape, "comparison": self.comparison, "strength": self.strength,
                                "target_value": self.value, "line": round(self.line, 4)}
        if self.comparison == "about":
            data["tolerance"] = self.tolerance
        if self.due is not None:
            data["due"] = self.due.isoformat()
        return data


def _target(rule: Rule, spec: TargetSpec, measure: str) -> _Target:
    tolerance = spec.tolerance if spec.tolerance is not None else rule.tolerance if rule.tolerance is not None else DEFAULT_TOLERANCE
    return _Target(spec.value, spec.shape, spec.comparison, spec.strength or rule.strength, tolerance, spec.due,
                   _is_count(measure))


def _spec(snapshot: Snapshot, key: tuple[str, str, str]) -> TargetSpec | None:
    spec = snapshot.target_specs.get(key)
    if spec is None and key in snapshot.targets:  # snapshots built by hand (tests, benchmarks) carry only values
        spec = TargetSpec(snapshot.targets[key], "final" if key[1] == "final" else "annual", "at_least", "", None, None)
    return spec


def _programme_months(snapshot: Snapshot) -> tuple[dt.date, int] | None:
    programme = snapshot.programme
    if programme is None:
        return None
    total = (programme.end.year - programme.start.year) * 12 + programme.end.month - programme.start.month + 1
    return programme.start, total


def _pace_lag(target: _Target, value: float, p: float) -> tuple[float, float]:
    """(expected by now, points behind it): whole items for counts; nothing expected before the first whole item."""
    line = target.line
    expected = line * p / 100
    if target.count:
        expected = float(math.floor(expected + 1e-9))
    if line <= 0:
        return expected, 0.0
    lag = 100.0 * (expected - value) / line
    if p >= 100 and not target.met(value):
        lag = max(lag, 0.01)  # the period is over: 250 against 超过250 misses
    return expected, lag


class _Context:
    """What one evaluation shares across its rules: warnings, and running totals several rules need.

    Several bundled rule kinds (pace, programme pace, praise, forecast) read the same series; at
    province scale computing each once halves the derivation time.
    """

    def __init__(self, snapshot: Snapshot, warnings: list[str]) -> None:
        self.snapshot = snapshot
        self.warnings = warnings
        self.failures: list[str] = []  # items skipped as unusable (Derived.failures)
        self._totals: dict[tuple[str, str], _Totals] = {}
        self._sums: dict[str, dict[str, float]] = {}

    def totals(self, info: IndicatorInfo, unit: str) -> _Totals:
        key = (info.code, unit)
        found = self._totals.get(key)
        if found is None:
            found = self._totals[key] = _Totals.of(_series(self.snapshot, info.code, unit, info.reported_as),
                                                   info.reported_as or "month")
        return found

    def sum_in_scope(self, indicator: str, unit: str, scope: str) -> float:
        """This year's (scope '2023') or the programme's ('final') achievement, as the indicator reports it."""
        info = self.snapshot.indicators[indicator]
        totals = self.totals(info, unit)
        return totals.final if scope == "final" else totals.by_year.get(int(scope), (0.0, 0))[0]

    def project_sum(self, project: str, year: str) -> float:
        sums = self._sums.get(project)
        if sums is None:
            sums = self._sums[project] = _monthly_sums(self.snapshot.investments.get(project, {}))
        return sums.get(year, 0.0)


@dataclass
class _Totals:
    """A cumulative series read as the office reports it.

    `by_year[y]` = (what was achieved in year y, the last month it covers); `final` = since the
    programme began. ytd (本年累计): the latest running total of each year — never summed within a
    year; month (当月值): monthly amounts added up; to_date (累计至今): the latest running total,
    a year's achievement being its rise over the previous year's last figure.
    """

    by_year: dict[int, tuple[float, int]]
    final: float
    monthly: dict[int, dict[int, float]]  # the figures of each month as reported: year -> month -> value
    reported_as: str
    _series: dict[str, float] | None = None  # monthly amounts: the raw series, read by month on demand

    @classmethod
    def _of_amounts(cls, series: dict[str, float]) -> _Totals:
        """Monthly amounts (当月值): summed per year, months only (the hot path at province scale)."""
        sums: dict[str, float] = {}
        last: dict[str, str] = {}
        for code, value in series.items():
            if len(code) != 7 or code[4] != "-" or code[5] == "Q":
                continue  # quarterly and yearly rows would double count
            year = code[:4]
            sums[year] = sums.get(year, 0.0) + value
            if code > last.get(year, ""):
                last[year] = code
        by_year = {int(year): (total, int(last[year][5:])) for year, total in sums.items()}
        monthly: dict[int, dict[int, float]] = {}
        totals = cls(by_year, sum(sums.values()), monthly, "month")
        totals._series = series
        return totals

    def _months(self, year: int) -> dict[int, float]:
        if year not in self.monthly and self._series is not None:
            prefix = f"{year}-"
            self.monthly[year] = {int(code[5:]): value for code, value in self._series.items()
                                  if code.startswith(prefix) and code[5] != "Q"}
        return self.monthly.get(year, {})

    def profile(self, year: int) -> dict[int, float]:
        """The year's running total at the end of each reported month (for forecasts)."""
        months = self._months(year)
        if self.reported_as == "month":
            running, total = {}, 0.0
            for month in sorted(months):
                total += months[month]
                running[month] = total
            return running
        if self.reported_as == "to_date":
            before = [value for y, (value, _) in self.by_year.items() if y < year]
            base = sum(before)
            return {m: v - base for m, v in months.items()}
        return dict(months)

    @classmethod
    def of(cls, series: dict[str, float], reported_as: str) -> _Totals:
        if reported_as == "month":
            return cls._of_amounts(series)
        # latest[year] = ((end month index, start month index), value, last month): a month beats
        # its quarter and its year when they end together (the finest figure).
        latest: dict[int, tuple[tuple[int, int], float, int]] = {}
        monthly: dict[int, dict[int, float]] = {}
        for code, value in series.items():
            if len(code) == 7 and code[4] == "-" and code[5] != "Q":  # 2023-06, the common case, parsed cheaply
                year, month = int(code[:4]), int(code[5:])
                monthly.setdefault(year, {})[month] = value
                key = (month, month)
            elif reported_as == "month":
                continue  # monthly amounts: quarterly and yearly rows would double count
            else:
                try:
                    period = parse_period(code)
                except ValueError:
                    continue
                year, month = period.year, period.last_day.month
                key = (month, period.start.month)
            if reported_as != "month" and (year not in latest or key > latest[year][0]):
                latest[year] = (key, value, month)
        by_year: dict[int, tuple[float, int]] = {}
        previous = 0.0
        for year in sorted(latest):
            _key, value, last_month = latest[year]
            if reported_as == "to_date":
                by_year[year] = (value - previous, last_month)
                previous = value
            else:
                by_year[year] = (value, last_month)
        if reported_as == "to_date":
            final = latest[max(latest)][1] if latest else 0.0
        else:
            final = sum(v for v, _ in by_year.values())
        return cls(by_year, final, monthly, reported_as)


def _series(snapshot: Snapshot, indicator: str, unit: str, reported_as: str = "month") -> dict[str, float]:
    """A unit's figures; for the whole jurisdiction ('') the reported total, or else the units' sum.

    Running totals (ytd, to_date) of several units are added only for periods every unit that
    reported that year has filed: a half-filed month would look like a fall.
    """
    by_unit = snapshot.observations.get(indicator, {})
    if unit or "" in by_unit:
        return by_unit.get(unit, {})
    merged: dict[str, float] = {}
    counts: dict[str, int] = {}
    for unit_series in by_unit.values():
        for code, value in unit_series.items():
            merged[code] = merged.get(code, 0.0) + value
            counts[code] = counts.get(code, 0) + 1
    if reported_as in ("ytd", "to_date") and len(by_unit) > 1:
        reporters: dict[str, set[int]] = {}
        for index, unit_series in enumerate(by_unit.values()):
            for code in unit_series:
                reporters.setdefault(code[:4], set()).add(index)
        merged = {code: value for code, value in merged.items() if counts[code] == len(reporters[code[:4]])}
    return merged


def _monthly_sums(series: dict[str, float]) -> dict[str, float]:
    """Per year ('2023') and for the whole programme ('final'), the sum of monthly amounts only:
    quarterly and yearly rows would double count."""
    sums: dict[str, float] = {}
    total = 0.0
    for code, value in series.items():
        if len(code) != 7 or code[4] != "-" or code[5] == "Q":
            continue
        year = code[:4]
        sums[year] = sums.get(year, 0.0) + value
        total += value
    sums["final"] = total
    return sums


def _judged_year(snapshot: Snapshot) -> int:
    """The year annual targets are judged in: last year in January (December's figures), else this year."""
    today = snapshot.today
    return today.year if today.month > 1 else today.year - 1


def _derive_pace(ev: Evaluator, rule: Rule, snapshot: Snapshot, context: _Context) -> Iterable[tuple[_Pending, dict[str, Any]]]:
    if rule.selector.subject_type == "project":
        yield from _project_pace(rule, snapshot, context)
        return
    final = rule.target == "final"
    programme = _programme_months(snapshot)
    if final and programme is None:
        return
    for info in _indicators(rule, snapshot):
        if info.kind != "cumulative":
            continue
        units = [u for u in info.units if _has_target(snapshot, info.code, u, final)] if rule.per_unit else [""]
        for unit in units:
            totals = context.totals(info, unit)
            unit_info = snapshot.units.get(unit)
            subject = info.code if not unit else f"{info.code}@{unit}"
            recipients = (unit,) if unit else info.units
            base = {"indicator": info.code, "unit": unit, "reported_as": info.reported_as}
            if final:
                spec = _spec(snapshot, (info.code, "final", unit))
                if spec is None or spec.shape != "final" or not totals.by_year:
                    continue
                assert programme is not None
                start, total_months = programme
                last_year = max(totals.by_year)
                _, last_month = totals.by_year[last_year]
                ended = max(0, min(total_months, (last_year - start.year) * 12 + last_month - start.month + 1))
                if ended == 0:
                    continue
                target = _target(rule, spec, info.measure)
                if target.comparison == "at_most":
                    continue
                p = 100.0 * ended / total_months
                done = totals.final
                expected, lag = _pace_lag(target, done, p)
                label = f"规划期前{ended}个月（至{last_year}年{last_month}月）"
                how = (f"按规划期序时进度测算：期末目标{_fmt(target.value)}{info.measure}×规划期已过"
                       f"{ended}/{total_months}个月")
                details = {**base, **target.payload(), "completion": round(100.0 * done / target.value, 2) if target.value else 0.0,
                           "time_progress": round(p, 2), "months_ended": ended, "months_total": total_months,
                           "derived": True, "derived_how": how, "final_year": snapshot.programme.end.year
                           if snapshot.programme else None}
                if _whole_decides(rule, target, lag, round(p, 2) - details["completion"]):
                    details["whole_basis"] = True
                item = _Pending(rule, "indicator", subject, info.name, recipients, "final", info.measure,
                                value=done, threshold=target.value, expected=expected, period_label=label,
                                unit_name=unit_info.name if unit_info else "", details=details)
                yield item, {"completion": details["completion"], "lag": lag, "lead": details["completion"] - round(p, 2),
                             "soft": target.strength == "soft"}
                continue
            year = _judged_year(snapshot)
            spec = _spec(snapshot, (info.code, str(year), unit))
            if spec is None or spec.shape != "annual":
                continue
            done, month = totals.by_year.get(year, (0.0, 0))
            if month == 0:
                continue  # no figure of this year yet: report_due asks for it
            target = _target(rule, spec, info.measure)
            if target.comparison == "at_most":
                continue
            p = 100.0 * month / 12
            expected, lag = _pace_lag(target, done, p)
            completion = round(100.0 * done / target.value, 2) if target.value else 0.0
            details = {**base, **target.payload(), "completion": completion, "time_progress": round(p, 2),
                       "months_ended": month, "months_total": 12, "derived": False,
                       "value_period": month_code(year, month)}
            if _whole_decides(rule, target, lag, round(p, 2) - completion):
                details["whole_basis"] = True
            item = _Pending(rule, "indicator", subject, info.name, recipients, str(year), info.measure,
                            value=done, threshold=target.value, expected=expected, period_label=f"{year}年1—{month}月",
                            unit_name=unit_info.name if unit_info else "", details=details)
            yield item, {"completion": completion, "lag": lag, "lead": completion - round(p, 2),
                         "soft": target.strength == "soft"}


def _whole_decides(rule: Rule, target: _Target, lag: float, shown_gap: float) -> bool:
    """Whether counting whole items (3 due by now, 2 done) gives another light than the percentages a
    notice shows (66.67% against 75%) would: the notice then says the whole-number basis it was judged on."""
    if not target.count:
        return False

    def light(gap: float) -> str:
        if gap <= 1e-9:
            return "green"
        return "red" if gap >= rule.yellow_gap - 1e-9 and target.strength != "soft" else "yellow"

    return light(lag) != light(shown_gap)


def _has_target(snapshot: Snapshot, indicator: str, unit: str, final: bool) -> bool:
    if final:
        return (indicator, "final", unit) in snapshot.targets
    return (indicator, str(_judged_year(snapshot)), unit) in snapshot.targets


def _project_pace(rule: Rule, snapshot: Snapshot, context: _Context) -> Iterable[tuple[_Pending, dict[str, Any]]]:
    """Each project's completed investment (完成投资, this year) against its yearly plan and the months reported."""
    year = _judged_year(snapshot)
    for code, project in sorted(snapshot.projects.items()):
        if not rule.selector.matches_project(code, project.category, project.level):
            continue
        planned = snapshot.plans.get((code, year))
        if not planned:
            continue
        months = [int(c[5:7]) for c in snapshot.investments.get(code, {}) if c.startswith(f"{year}-")]
        ended = max(months) if months else (snapshot.today.month - 1 if snapshot.today.year == year else 12)
        if ended == 0:
            continue
        p = 100.0 * ended / 12
        done = context.project_sum(code, str(year))
        c = 100.0 * done / planned
        item = _Pending(rule, "project", code, project.name, project.units, str(year), "亿元",
                        value=done, threshold=planned, expected=planned * p / 100, period_label=f"{year}年1—{ended}月",
                        details={"completion": round(c, 2), "time_progress": round(p, 2), "category": project.category,
                                 "project_level": project.level, "months_ended": ended,
                                 "value_period": month_code(year, ended)})
        yield item, {"completion": c, "lag": p - c, "lead": round(c, 2) - round(p, 2), "soft": rule.strength == "soft"}


def _derive_milestone(ev: Evaluator, rule: Rule, snapshot: Snapshot, context: _Context) -> Iterable[tuple[_Pending, dict[str, Any]]]:
    """One result due by a date: reminders as it approaches, a light only once it has passed unmet.

    The figure counts everything since the programme began (a to_date indicator: its running
    total as reported), so "到2025年争创2个" and "2023年底前累计争创12个" read as written.
    """
    today = snapshot.today
    for info in _indicators(rule, snapshot):
        for (code, scope, unit), spec in sorted(snapshot.target_specs.items()):
            if code != info.code or spec.shape != "milestone" or spec.due is None:
                continue
            if bool(unit) != rule.per_unit or (unit and unit not in info.units):
                continue
            target = _target(rule, spec, info.measure)
            totals = context.totals(info, unit) if info.kind == "cumulative" else None
            if totals is not None:
                value = totals.final
                covered = max(((y, m) for y, (_, m) in totals.by_year.items()), default=None)
            else:
                latest = _latest(_series(snapshot, info.code, unit))
                value = latest[1] if latest else 0.0
                covered = (latest[0].year, latest[0].last_day.month) if latest else None
            days_left = (spec.due - today).days
            # Judged once the figures for the due date's month are in, or a month after they were due.
            judged = (covered is not None and covered >= (spec.due.year, spec.due.month)) or \
                today >= figures_due(parse_period(month_code(spec.due.year, spec.due.month))) + dt.timedelta(days=30)
            unit_info = snapshot.units.get(unit)
            gap = 0.0 if target.met(value) else (target.line - value if target.comparison != "at_most" else value - target.value)
            gap = max(gap, 0.01) if not target.met(value) else 0.0
            details = {"indicator": info.code, "unit": unit, **target.payload(), "judged": judged,
                       "derived": False, "completion": round(100.0 * value / target.value, 2) if target.value else 0.0}
            if covered is not None and (totals is None or len(totals.by_year) == 1):
                # The latest month its figure covers; a total over several years has no "1—N月".
                details["value_period"] = month_code(*covered)
            item = _Pending(rule, "indicator", info.code if not unit else f"{info.code}@{unit}", info.name,
                            (unit,) if unit else info.units, scope, info.measure, value=value, threshold=target.value,
                            deadline=spec.due, days_left=days_left, period_label=_due_label(spec.due),
                            unit_name=unit_info.name if unit_info else "", details=details)
            yield item, {"gap": gap, "days": float(days_left), "flag": judged, "soft": target.strength == "soft"}


def _due_label(due: dt.date) -> str:
    if due.month == 12 and due.day == 31:
        return f"{due.year}年底前"
    return f"{due.year}年{due.month}月{due.day}日前"


def _derive_forecast(ev: Evaluator, rule: Rule, snapshot: Snapshot, context: _Context) -> Iterable[tuple[_Pending, dict[str, Any]]]:
    """Project the year-end figure from this year's running total and warn before the light.

    With last year's monthly running totals in the store, the projection follows last year's
    profile (this year's total × last December's ÷ last year's same month); else it is linear.
    """
    year = snapshot.today.year if snapshot.today.month > 1 else snapshot.today.year - 1
    for info in _indicators(rule, snapshot):
        if info.kind != "cumulative":
            continue
        units = [u for u in info.units if (info.code, str(year), u) in snapshot.targets] if rule.per_unit else [""]
        for unit in units:
            spec = _spec(snapshot, (info.code, str(year), unit))
            if spec is None or spec.shape != "annual":
                continue
            target = _target(rule, spec, info.measure)
            if target.comparison == "at_most" or target.value <= 0:
                continue
            totals = context.totals(info, unit)
            done, month = totals.by_year.get(year, (0.0, 0))
            if month < rule.from_month or month >= 12:
                continue
            last = totals.profile(year - 1)
            if last.get(month, 0.0) > 0 and 12 in last:
                projected, method = done * last[12] / last[month], "last_year_profile"
            else:
                projected, method = done * 12 / month, "linear"
            percent = 100.0 * projected / target.value
            warn_line = target.line * rule.warn_below / 100
            gap = 100.0 * (warn_line - projected) / target.value
            unit_info = snapshot.units.get(unit)
            forecast = {"value": round(projected, 2), "percent": round(percent, 1), "method": method,
                        "months": month, "warn_below": rule.warn_below}
            details = {"indicator": info.code, "unit": unit, **target.payload(), "derived": False,
                       "completion": round(100.0 * done / target.value, 2), "forecast": forecast,
                       "value_period": month_code(year, month)}
            item = _Pending(rule, "indicator", info.code if not unit else f"{info.code}@{unit}", info.name,
                            (unit,) if unit else info.units, str(year), info.measure, value=done,
                            threshold=target.value, expected=projected, period_label=f"{year}年1—{month}月",
                            unit_name=unit_info.name if unit_info else "", details=details)
            yield item, {"gap": gap}


def _task_details(task: TaskInfo, snapshot: Snapshot) -> dict[str, Any]:
    """What a task notice shows besides its title: the document's columns, by name (docs/rules.md)."""
    def name(code: str) -> str:
        unit = snapshot.units.get(code)
        return unit.name if unit else code
    lead, others = (task.units[0], task.units[1:]) if task.units else ("", ())
    return {
        "task_kind": task.kind,
        "measures": task.measures,
        "goal": task.goal,
        "deadline_text": task.deadline_text,
        "lead_unit": lead,
        "lead_unit_name": name(lead) if lead else "",
        "other_units": list(others),
        "other_unit_names": [name(code) for code in others],
    }


def _working_days_until(calendar: WorkingCalendar, today: dt.date, day: dt.date, cap: int) -> int | None:
    """Working days in (today, day]: 1 on the last working day before `day`'s own working day.

    None when more than `cap` calendar days away (no reminder can be due yet; not worth counting).
    """
    if (day - today).days > cap:
        return None
    count = 0
    current = today + dt.timedelta(days=1)
    while current <= day:
        count += calendar.is_working_day(current)
        current += dt.timedelta(days=1)
    return count


def _quarter_end(day: dt.date) -> dt.date:
    month = 3 * ((day.month - 1) // 3) + 3
    return (dt.date(day.year + (month == 12), 1 if month == 12 else month + 1, 1)) - dt.timedelta(days=1)


def _derive_deadline(ev: Evaluator, rule: Rule, snapshot: Snapshot, context: _Context) -> Iterable[tuple[_Pending, dict[str, Any]]]:
    """Deadline tasks: reminders `remind_days` WORKING days before the deadline, overdue after it
    (calendar days). Ongoing tasks (常态化): never overdue; a progress check in the last
    max(remind_days) working days of every quarter of their term instead."""
    today = snapshot.today
    window = max(rule.remind_days, default=7)
    cap = 2 * window + 30  # calendar days beyond which no reminder window can start (holidays included)
    wg = set(snapshot.working_group_units)
    if ev.rule_set.settings.working_group:
        wg.add(ev.rule_set.settings.working_group)
    for code, task in sorted(snapshot.tasks.items()):
        if not rule.selector.matches(code):
            continue
        # The working group coordinates (附件1 “工作专班成员单位”): it is never urged about its own list.
        # A task it shares goes to the other units; one only it answers for has no light and no 催办.
        units = tuple(u for u in task.units if u not in wg)
        details = _task_details(task, snapshot)
        details["strength"] = task.strength
        if task.done:
            # Done is done: a green light on the board (no notice; the lifecycle closes what was open).
            if task.deadline is not None or task.ongoing:
                item = _Pending(rule, "task", code, task.title, units or task.units,
                                (task.deadline or task.done_on or today).isoformat(), deadline=task.deadline,
                                period_label=task.deadline_text, details={**details, "done": True,
                                                                          "done_on": task.done_on.isoformat() if task.done_on else None})
                yield item, {"days": 1e6, "flag": False, "soft": True}
            continue
        if not units:
            continue
        if task.ongoing:
            yield from _ongoing_check(ev, rule, snapshot, task, details, window, units)
            continue
        if task.deadline is None:
            continue
        days_left = (task.deadline - today).days
        working = _working_days_until(ev.calendar, today, task.deadline, cap) if days_left >= 0 else None
        details["working_days_left"] = working
        item = _Pending(rule, "task", code, task.title, units, task.deadline.isoformat(),
                        deadline=task.deadline, days_left=days_left, period_label=task.deadline_text,
                        details=details)
        # 力争 in the task's own goal: a stretch goal, yellow at worst (never 升级督办).
        yield item, {"days": float(working if working is not None else days_left), "soft": task.strength == "soft"}


def _ongoing_check(ev: Evaluator, rule: Rule, snapshot: Snapshot, task: TaskInfo, details: dict[str, Any],
                   window: int, units: tuple[str, ...]) -> Iterable[tuple[_Pending, dict[str, Any]]]:
    today = snapshot.today
    programme = snapshot.programme
    if programme is not None and today < programme.start:
        return
    end = task.deadline or (programme.end if programme else None)
    if end is not None and today > end:
        return  # its term is over: an ongoing duty has nothing to be overdue on
    quarter_end = _quarter_end(today)
    working = _working_days_until(ev.calendar, today, quarter_end, 2 * window + 30)
    if working is None or working > window:
        return
    quarter = _quarter_of(today)
    details = {**details, "progress_quarter": quarter, "working_days_left": working}
    item = _Pending(rule, "task", task.code, task.title, units, quarter, deadline=quarter_end,
                    days_left=(quarter_end - today).days, period_label=parse_period(quarter).label,
                    details=details)
    yield item, {"days": 1e6, "flag": True, "soft": True}


def _derive_report_due(ev: Evaluator, rule: Rule, snapshot: Snapshot, context: _Context) -> Iterable[tuple[_Pending, dict[str, Any]]]:
    today = snapshot.today
    programme = snapshot.programme
    first = programme.start if programme else dt.date(today.year, 1, 1)
    # A document cannot make a unit late for a due date before it existed: once notices have begun
    # (programme.yaml `issued`/`start`), figures due before that day are not chased; the first due
    # date on or after it is. An evaluation asked for a moment before the document (a what-if, e.g.
    # `evaluate --at 2023-07-15`) reads the mechanism as if in force; no notice goes out then anyway.
    begins = ev.rule_set.settings.notices_from
    chase_from = begins if begins is not None and begins <= today else None
    year, month = first.year, first.month
    months: list[tuple[int, int, dt.date, str, str]] = []
    while (year, month) < (today.year, today.month):
        due = ev.calendar.due_date_for_month(year, month, rule.due_day)
        if chase_from is not None and due < chase_from:
            pass
        elif (due - today).days <= rule.remind_days_before:
            quarter = f"{year}-Q{(month - 1) // 3 + 1}" if month % 3 == 0 else ""
            months.append((year, month, due, month_code(year, month), quarter))
        year, month = (year, month + 1) if month < 12 else (year + 1, 1)
    if not months:
        return
    for info in _indicators(rule, snapshot):
        if not info.units:
            continue
        observed = snapshot.observations.get(info.code, {})
        # Per unit: the units that own a share of the target or have filed their own figures.
        reporters = [u for u in info.units if u in observed or any((info.code, scope, u) in snapshot.targets
                                                                   for scope in (str(today.year), "final"))] \
            if rule.per_unit else list(info.units[:1])
        unseen = snapshot.filed_unseen.get(info.code, {})
        for reporter in reporters:
            series = observed.get(reporter if rule.per_unit else "", {})
            if not rule.per_unit and not series:
                # Figures filed per unit still count as the jurisdiction's report.
                series = {k: v for s in observed.values() for k, v in s.items()}
            # Filed on time at a moment a replay does not know: not chased before its due date.
            filed = unseen.get(reporter, set()) if rule.per_unit else {p for periods in unseen.values() for p in periods}
            unit = snapshot.units.get(reporter)
            subject = info.code if not rule.per_unit else f"{info.code}@{reporter}"
            overdue: list[tuple[int, int, dt.date, str]] = []
            for y, m, due, code, quarter in months:
                if code in series or (quarter and quarter in series):
                    continue
                days_left = (due - today).days
                if days_left < 0:
                    overdue.append((y, m, due, code))
                    continue
                if code in filed:
                    continue
                item = _Pending(rule, "indicator", subject, info.name, (reporter,), code, info.measure,
                                deadline=due, days_left=days_left, period_label=f"{y}年{m}月",
                                unit_name=unit.name if unit else reporter,
                                details={"indicator": info.code, "unit": reporter})
                yield item, {"days": float(days_left)}
            if overdue:
                # One item for every month still missing, keyed by the earliest: a unit that has not
                # reported for half a year gets one line, not six, each repeated every week.
                y, m, due, code = overdue[0]
                days_left = (due - today).days
                working = _working_days_after(ev, due, today)
                item = _Pending(rule, "indicator", subject, info.name, (reporter,), code, info.measure,
                                deadline=due, days_left=days_left, period_label=_months_label([(y, m) for y, m, *_ in overdue]),
                                unit_name=unit.name if unit else reporter,
                                details={"indicator": info.code, "unit": reporter,
                                         "missing_months": [c for *_, c in overdue],
                                         "working_days_overdue": working,
                                         "escalate_after": rule.escalate_after_working_days})
                yield item, {"days": float(days_left), "wdays": float(working)}


def _working_days_after(ev: Evaluator, due: dt.date, today: dt.date) -> int:
    """Working days in (due, today]: how long figures have been missing, as offices count it."""
    cache: dict[tuple[dt.date, dt.date], int] = ev.__dict__.setdefault("_working_days_cache", {})
    key = (due, today)
    if key not in cache:
        count, day = 0, due + dt.timedelta(days=1)
        while day <= today:
            count += ev.calendar.is_working_day(day)
            day += dt.timedelta(days=1)
        cache[key] = count
    return cache[key]


def _months_label(months: Sequence[tuple[int, int]]) -> str:
    """2023年6月 · 2023年6月—8月（共3个月） · 2023年11月—2024年2月（共4个月） · 2023年6月、8月（共2个月）"""
    (y0, m0), (y1, m1) = months[0], months[-1]
    if len(months) == 1:
        return f"{y0}年{m0}月"
    contiguous = (y1 * 12 + m1) - (y0 * 12 + m0) == len(months) - 1
    if contiguous:
        end = f"{m1}月" if y1 == y0 else f"{y1}年{m1}月"
        return f"{y0}年{m0}月—{end}（共{len(months)}个月）"
    labels, year = [], None
    for y, m in months[:6]:
        labels.append(f"{m}月" if y == year else f"{y}年{m}月")
        year = y
    more = "等" if len(months) > 6 else ""
    return f"{'、'.join(labels)}{more}（共{len(months)}个月）"


def _quarter_of(day: dt.date) -> str:
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def _derive_praise(ev: Evaluator, rule: Rule, snapshot: Snapshot, context: _Context) -> Iterable[tuple[_Pending, dict[str, Any]]]:
    today = snapshot.today
    if rule.basis == "tasks_on_time":
        yield from _tasks_on_time(rule, snapshot, today)
        return
    year = _judged_year(snapshot)
    scope = str(year)
    for info in _indicators(rule, snapshot):
        if info.kind != "cumulative":
            continue
        for unit in ("", *info.units):
            spec = _spec(snapshot, (info.code, scope, unit))
            if spec is None or spec.shape != "annual" or spec.value <= 0:
                continue
            target = _target(rule, spec, info.measure)
            if target.comparison == "at_most":
                continue
            done, ended = context.totals(info, unit).by_year.get(year, (0.0, 0))
            if ended == 0:
                continue
            p = 100.0 * ended / 12
            expected, lag = _pace_lag(target, done, p)
            c = 100.0 * done / target.line if target.line else 0.0
            unit_info = snapshot.units.get(unit)
            quarter = _quarter_of(dt.date(year, ended, 1))
            period = scope if rule.basis == "target_met_early" else quarter
            item = _Pending(
                rule, "indicator", info.code if not unit else f"{info.code}@{unit}", info.name,
                (unit,) if unit else info.units, period, info.measure,
                value=done, threshold=target.value, expected=expected,
                period_label=f"{scope}年1—{ended}月", unit_name=unit_info.name if unit_info else "",
                details={"completion": round(100.0 * done / target.value, 2), "time_progress": round(p, 2),
                         "indicator": info.code, "unit": unit, **target.payload(), "derived": False,
                         "months_ended": ended, "value_period": month_code(year, ended)},
            )
            if rule.basis == "target_met_early":
                # "Early" while months of the year remain: never once the year is over.
                months_left = 0 if snapshot.today.year > year else 12 - ended
                yield item, {"completion": c if target.met(done) else min(c, 99.99), "days": float(months_left)}
            else:
                yield item, {"completion": c, "lag": lag,
                             "lead": item.details["completion"] - item.details["time_progress"]}


def _tasks_on_time(rule: Rule, snapshot: Snapshot, today: dt.date) -> Iterable[tuple[_Pending, dict[str, Any]]]:
    # The most recent quarter that has ended.
    this_quarter_start = dt.date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    last_day = this_quarter_start - dt.timedelta(days=1)
    quarter = _quarter_of(last_day)
    start = dt.date(last_day.year, 3 * ((last_day.month - 1) // 3) + 1, 1)
    by_unit: dict[str, list[bool]] = {}
    # A unit still late on any task it answers for (lead or supporting) is not praised for the quarter's:
    # the same report would praise it and list it for supervision.
    late: set[str] = set()
    for code, task in snapshot.tasks.items():
        if not rule.selector.matches(code) or task.deadline is None or not task.units or task.ongoing:
            continue  # an ongoing duty has no result date to be on time for
        if task.deadline < today and not task.done:
            late.update(task.units)
        if start <= task.deadline <= last_day:
            on_time = task.done_on is not None and task.done_on <= task.deadline
            by_unit.setdefault(task.units[0], []).append(on_time)
    for unit, results in sorted(by_unit.items()):
        info = snapshot.units.get(unit)
        item = _Pending(rule, "unit", unit, info.name if info else unit, (unit,), quarter,
                        value=float(sum(results)), threshold=float(len(results)),
                        period_label=parse_period(quarter).label, unit_name=info.name if info else unit,
                        details={"tasks_due": len(results), "tasks_on_time": sum(results)})
        yield item, {"flag": all(results) and unit not in late}


_DERIVERS: dict[str, Any] = {
    "milestone": _derive_milestone,
    "forecast": _derive_forecast,
    "threshold": _derive_threshold,
    "pace": _derive_pace,
    "deadline": _derive_deadline,
    "report_due": _derive_report_due,
    "praise": _derive_praise,
}


def evaluate(rule_set: RuleSet, snapshot: Snapshot, *, groups: Sequence[str] | None = None,
             calendar: WorkingCalendar | None = None) -> EvaluationResult:
    """One-shot convenience: compile, evaluate, free. Long-running callers keep an Evaluator."""
    evaluator = Evaluator(rule_set, calendar)
    try:
        return evaluator.evaluate(snapshot, groups=groups)
    finally:
        evaluator.close()


__all__ = ["AlertCandidate", "Assessment", "EvaluationResult", "Evaluator", "evaluate", "local_date"]
