"""The alert lifecycle: one small state machine per (rule, subject, period).

    (none) ──candidate──▶ firing ──no candidate──▶ resolved (销号)
                           │  ▲                       │
                           │  └──────candidate────────┘ (fires again)
                           ├─ yellow → red: escalation notice
                           ├─ red → yellow: revision notice (改为黄灯: the unit caught up)
                           ├─ no candidate, but within the rule's resolve_margin: held open,
                           │  red revised to yellow, no 催办 (hysteresis: no 销号 on a hair's breadth)
                           └─ still firing: repeated (催办) once per the rule's repeat interval,
                              unless acknowledged until later

Pure: given the round's candidates, the stored alert states, silences and `now`, it returns
what to record and which notices to send. No clock, no database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from duban.engine.evaluate import AlertCandidate, Assessment
from duban.engine.rules import Rule

AlertKey = tuple[str, str, str, str]  # rule, subject_type, subject, period
LEVEL_RANK = {None: 0, "green": 0, "blue": 1, "yellow": 2, "red": 3}
# Reminders and praise lapse quietly; warnings and overdue items are closed with a 销号 notice.
QUIET_KINDS = frozenset({"reminder", "praise"})


@dataclass(frozen=True)
class AlertState:
    """What the store remembers of an alert (see store.models.Alert)."""

    rule: str
    subject_type: str
    subject: str
    period: str
    kind: str
    level: str | None
    state: str  # firing | resolved
    first_seen: dt.datetime
    last_notified_at: dt.datetime | None = None
    acked_until: dt.datetime | None = None
    repeats: int = 0
    units: tuple[str, ...] = ()
    notify_units: tuple[str, ...] = ()
    title: str = ""
    facts: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> AlertKey:
        return (self.rule, self.subject_type, self.subject, self.period)


@dataclass(frozen=True)
class SilenceRule:
    rule: str = ""
    subject: str = ""
    unit: str = ""
    until: dt.datetime = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)

    def mutes(self, rule: str, subject: str, unit: str, now: dt.datetime) -> bool:
        if now >= self.until:
            return False
        short_rule = rule.split(".", 1)[-1]
        return (
            (not self.rule or self.rule in (rule, short_rule))
            and (not self.subject or self.subject == subject or subject.startswith(f"{self.subject}@"))
            and (not self.unit or self.unit == unit)
        )


@dataclass(frozen=True)
class Standing:
    """Where a subject stands against its rule this round, fired or not (from an Assessment).

    `clearance` is how far it is better than the bound: threshold value above an `at_least`
    bound (below an `at_most` one), in the indicator's measure; pace completion ahead of time
    progress, in percentage points. Negative means it misses.
    """

    clearance: float
    value: float | None = None
    threshold: float | None = None
    expected: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


def standings(assessments: Iterable[Assessment], rules: Iterable[Rule]) -> dict[AlertKey, Standing]:
    """Standings of the subjects of rules with a `resolve_margin` (the only ones that need them)."""
    held = {rule.id: rule for rule in rules if rule.resolve_margin > 0}
    result: dict[AlertKey, Standing] = {}
    for a in assessments:
        rule = held.get(a.rule)
        if rule is None:
            continue
        clearance: float | None = None
        if rule.kind == "threshold" and a.value is not None and a.threshold is not None:
            clearance = a.value - a.threshold if rule.at_least is not None else a.threshold - a.value
        elif rule.kind == "pace" and "completion" in a.details and "time_progress" in a.details:
            clearance = float(a.details["completion"]) - float(a.details["time_progress"])
        if clearance is not None:
            result[(a.rule, a.subject_type, a.subject, a.period)] = Standing(
                clearance, a.value, a.threshold, a.expected, dict(a.details))
    return result


@dataclass(frozen=True)
class PlannedNotice:
    """One notice to one unit: a line in that unit's digest for this round."""

    kind: str  # warning reminder overdue praise escalation revised resolved
    level: str | None
    recipient_unit: str
    alert_key: AlertKey
    title: str
    repeat: int
    candidate: AlertCandidate | None  # None for 销号 of an alert with no candidate
    # Wording: how many notices of this alert went out before this one and since when (an
    # escalation says "此前已提醒2次（自2023年11月1日起）", never "经多次提醒" after one), and the
    # light before a revision (灯色调整) or a 销号.
    notified_before: int = 0
    since: dt.datetime | None = None
    previous_level: str | None = None
    previous: Mapping[str, Any] = field(default_factory=dict)  # the figures last told (value, completion …)

    def idempotency_key(self, round_key: str) -> str:
        rule, _subject_type, subject, period = self.alert_key
        return f"{rule}|{subject}|{period}|{self.kind}|{self.recipient_unit}|{round_key}"


@dataclass
class RoundPlan:
    alerts: list[tuple[AlertState, bool]]  # new or changed alert states, and whether it was notified now
    notices: list[PlannedNotice]
    silenced: int = 0


def plan(
    candidates: Iterable[AlertCandidate],
    stored: Mapping[AlertKey, AlertState],
    *,
    now: dt.datetime,
    evaluated_rules: set[str],
    repeat_of: Mapping[str, dt.timedelta | None],
    silences: Iterable[SilenceRule] = (),
    resolve_margin_of: Mapping[str, float] | None = None,
    standing: Mapping[AlertKey, Standing] | None = None,
) -> RoundPlan:
    """Decide this round's alert states and notices.

    `resolve_margin_of` maps a rule to its hysteresis margin and `standing` gives where each of
    its subjects stands (see `standings`): an alert whose candidate is gone stays open until the
    subject clears its bound by the margin. Without them an alert resolves as soon as it clears.
    """
    silence_list = list(silences)
    margins = resolve_margin_of or {}
    standing = standing or {}
    result = RoundPlan(alerts=[], notices=[])
    seen: set[AlertKey] = set()

    def notify(state: AlertState, kind: str, level: str | None, units: Iterable[str],
               candidate: AlertCandidate | None, title: str, old: AlertState | None = None) -> bool:
        sent = False
        # Notices of this alert before this one: the first, then one per 催办.
        before = 0 if old is None or old.state == "resolved" else 1 + old.repeats
        since = old.first_seen if old is not None and before else None
        previous = old.level if old is not None else None
        told = {k: v for k, v in (old.facts if old is not None else {}).items()
                if k in ("value", "completion", "time_progress", "value_period", "threshold")}
        for unit in dict.fromkeys(units):
            if any(s.mutes(state.rule, state.subject, unit, now) for s in silence_list):
                result.silenced += 1
                continue
            result.notices.append(PlannedNotice(kind, level, unit, state.key, title, state.repeats, candidate,
                                                before, since, previous, told))
            sent = True
        return sent

    for candidate in candidates:
        key = candidate.key
        if key in seen:
            continue
        seen.add(key)
        old = stored.get(key)
        facts = candidate.to_json()
        if old is None or old.state == "resolved":
            state = AlertState(
                *key, kind=candidate.kind, level=candidate.level, state="firing",
                first_seen=now if old is None else old.first_seen, last_notified_at=now, repeats=0,
                units=candidate.units, notify_units=candidate.notify_units, title=candidate.title, facts=facts,
            )
            notified = notify(state, candidate.kind, candidate.level, candidate.notify_units, candidate, candidate.title)
            result.alerts.append((state, notified))
            continue
        worse = LEVEL_RANK[candidate.level] > LEVEL_RANK[old.level]
        better = old.level == "red" and candidate.level == "yellow"
        acked = old.acked_until is not None and old.acked_until > now
        repeat = repeat_of.get(candidate.rule)
        due = repeat is not None and (old.last_notified_at is None or now - old.last_notified_at >= repeat)
        state = replace(old, kind=candidate.kind, level=candidate.level, units=candidate.units,
                        notify_units=candidate.notify_units, title=candidate.title, facts=facts)
        if worse:
            # Escalation: everyone now responsible is told, acknowledged or not.
            state = replace(state, last_notified_at=now, acked_until=None)
            notify(state, "escalation", candidate.level, candidate.notify_units, candidate, candidate.title, old)
            result.alerts.append((state, True))
        elif better:
            # The unit caught up: tell it the light changed, rather than leave it red. Not a
            # 催办, so an acknowledgement does not hold it back; the repeat clock restarts.
            state = replace(state, last_notified_at=now)
            notify(state, "revised", candidate.level, candidate.notify_units, candidate, candidate.title, old)
            result.alerts.append((state, True))
        elif due and not acked and candidate.kind not in QUIET_KINDS:
            state = replace(state, last_notified_at=now, repeats=old.repeats + 1)
            notify(state, candidate.kind, candidate.level, candidate.notify_units, candidate, candidate.title, old)
            result.alerts.append((state, True))
        else:
            result.alerts.append((state, False))

    for key, old in stored.items():
        if old.state != "firing" or key in seen or old.rule not in evaluated_rules:
            continue
        margin = margins.get(old.rule, 0.0)
        where = standing.get(key)
        if margin > 0 and where is not None and where.clearance < margin and old.kind not in QUIET_KINDS:
            result.alerts.append(_hold(old, where, now, notify))
            continue
        state = replace(old, state="resolved")
        notified = False
        if old.kind not in QUIET_KINDS:
            notified = notify(state, "resolved", None, old.notify_units, None, old.title, old)
        result.alerts.append((state, notified))
    return result


def _hold(old: AlertState, where: Standing, now: dt.datetime,
          notify: Callable[..., bool],
          ) -> tuple[AlertState, bool]:
    """Inside the resolve margin: the bound is met but not yet by enough to close the alert.

    A red alert is revised to yellow (the miss is gone); a yellow one waits quietly, with no
    催办, for the figure to clear the margin or to miss again.
    """
    facts = {**old.facts, "value": where.value, "threshold": where.threshold, "held": True,
             "clearance": round(where.clearance, 2)}
    if old.level != "red":
        return replace(old, facts=facts), False
    state = replace(old, level="yellow", last_notified_at=now, facts=facts)
    candidate = AlertCandidate(
        at=now, rule=old.rule, period=old.period, kind=old.kind, level="yellow", subject_type=old.subject_type,
        subject=old.subject, subject_name=str(old.facts.get("subject_name") or old.subject), units=old.units,
        recipients=tuple(old.facts.get("recipients") or ()), notify_units=old.notify_units, title=old.title,
        value=where.value, threshold=where.threshold, expected=where.expected,
        measure=str(old.facts.get("measure") or ""), details={**where.details, "held": True},
    )
    return state, notify(state, "revised", "yellow", old.notify_units, candidate, old.title, old)
