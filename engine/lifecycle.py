"""The alert lifecycle: one small state machine per (rule, subject, period).

    (none) ──candidate──▶ firing ──no candidate──▶ resolved (销号)
                           │  ▲                       │
                           │  └──────candidate────────┘ (fires again)
                           ├─ yellow → red: escalation notice
                           ├─ red → yellow: level revised (the unit caught up)
                           └─ still firing: repeated (催办) once per the rule's repeat interval

Pure: given the round's candidates, the stored alert states, silences and `now`, it returns
what to record and which notices to send. No clock, no database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from engine.evaluate import AlertCandidate

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
class PlannedNotice:
    """One notice to one unit: a line in that unit's digest for this round."""

    kind: str  # warning reminder overdue praise escalation resolved
    level: str | None
    recipient_unit: str
    alert_key: AlertKey
    title: str
    repeat: int
    candidate: AlertCandidate | None  # None for 销号 of an alert with no candidate

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
) -> RoundPlan:
    silence_list = list(silences)
    result = RoundPlan(alerts=[], notices=[])
    seen: set[AlertKey] = set()

    def notify(state: AlertState, kind: str, level: str | None, units: Iterable[str],
               candidate: AlertCandidate | None, title: str) -> bool:
        sent = False
        for unit in dict.fromkeys(units):
            if any(s.mutes(state.rule, state.subject, unit, now) for s in silence_list):
                result.silenced += 1
                continue
            result.notices.append(PlannedNotice(kind, level, unit, state.key, title, state.repeats, candidate))
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
        acked = old.acked_until is not None and old.acked_until > now
        repeat = repeat_of.get(candidate.rule)
        due = repeat is not None and (old.last_notified_at is None or now - old.last_notified_at >= repeat)
        state = replace(old, kind=candidate.kind, level=candidate.level, units=candidate.units,
                        notify_units=candidate.notify_units, title=candidate.title, facts=facts)
        if worse:
            # Escalation: everyone now responsible is told, acknowledged or not.
            state = replace(state, last_notified_at=now, acked_until=None)
            notify(state, "escalation", candidate.level, candidate.notify_units, candidate, candidate.title)
            result.alerts.append((state, True))
        elif due and not acked and candidate.kind not in QUIET_KINDS:
            state = replace(state, last_notified_at=now, repeats=old.repeats + 1)
            notify(state, candidate.kind, candidate.level, candidate.notify_units, candidate, candidate.title)
            result.alerts.append((state, True))
        else:
            result.alerts.append((state, False))

    for key, old in stored.items():
        if old.state != "firing" or key in seen or old.rule not in evaluated_rules:
            continue
        state = replace(old, state="resolved")
        notified = False
        if old.kind not in QUIET_KINDS:
            notified = notify(state, "resolved", None, old.notify_units, None, old.title)
        result.alerts.append((state, notified))
    return result
