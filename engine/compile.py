"""Compile a rule set into durable-rules conditions: one durable rule per decision a YAML rule can take.

A YAML rule of kind `threshold` with a yellow margin becomes two durable rules, `<id>#red`
and `<id>#yellow`, each a condition on one derived fact. Facts carry the rule id, so a fact
can only match its own rule's decisions. The durable rule name says what a match means
(`decision_of`): kind, light, and whether the working group is copied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from duban.engine.durable_adapter import CompiledRuleset, FactSchema
from duban.engine.rules import Rule, RuleSet

# Conditions compare a fact's fields with the rule's constants only. A condition comparing two
# fields of one fact (`{'$lt': {'value': {'$m': 'bound'}}}`) corrupts durable's heap when a fact
# does not match (measured: a segfault within a few hundred evaluations), so the differences
# are derived in Python: `gap` (how far a bound is missed), `lag` (points behind time progress).
FACT_SCHEMA = FactSchema(
    fields={
        "rule": str,
        "idx": int,
        "gap": float,
        "lag": float,
        "lead": float,  # points ahead of time progress as the notice shows them (completion − time progress)
        "completion": float,
        "days": float,
        "wdays": float,  # working days past a due date (report_due)
        "flag": bool,
        "soft": bool,  # a 力争 target: yellow at worst
    }
)


@dataclass(frozen=True)
class DecisionKind:
    kind: str  # warning | reminder | overdue | praise
    level: str | None
    stage: str
    period_suffix: str = ""
    copy_working_group: bool = False


Condition = dict[str, Any]


def _rule(rule: Rule) -> Condition:
    return {"rule": rule.id}


def _all(*conditions: Condition) -> Condition:
    # durable checks only the first key of a multi-key dict: always combine with $and.
    return {"$and": list(conditions)}


def _const_cmp(op: str, left: str, value: float) -> Condition:
    return {op: {left: value}}


_DECISIONS: dict[str, DecisionKind] = {}
NO_DECISION = "none"


def decision_of(durable_name: str) -> DecisionKind:
    return _DECISIONS[durable_name.split("#", 1)[1]]


def _decide(name: str, decision: DecisionKind) -> str:
    _DECISIONS.setdefault(name, decision)
    return name


def rule_conditions(rule: Rule) -> dict[str, Condition]:
    """The durable conditions for one YAML rule, keyed '<rule id>#<decision>'."""
    out: dict[str, Condition] = {}

    def add(decision: str, kind: DecisionKind, condition: Condition) -> None:
        out[f"{rule.id}#{_decide(decision, kind)}"] = _all(_rule(rule), condition)

    if rule.kind == "threshold":
        # 超过 (more_than): equal to the bound is a miss too.
        miss = _const_cmp("$gte" if rule.more_than is not None else "$gt", "gap", 0.0)
        if rule.strength == "soft":
            # 力争: a miss is yellow at worst.
            add("yellow", DecisionKind("warning", "yellow", "yellow"), miss)
        elif rule.yellow_margin:
            add("red", DecisionKind("warning", "red", "red"), _const_cmp("$gt", "gap", rule.yellow_margin))
            add("yellow", DecisionKind("warning", "yellow", "yellow"),
                _all(miss, _const_cmp("$lte", "gap", rule.yellow_margin)))
        else:
            level = rule.level
            add(level, DecisionKind("warning", level, level), miss)
    elif rule.kind == "pace":
        add("red", DecisionKind("warning", "red", "red"),
            _all(_const_cmp("$gte", "lag", rule.yellow_gap), {"soft": False}))
        add("yellow", DecisionKind("warning", "yellow", "yellow"),
            _all(_const_cmp("$gt", "lag", 0.0), _const_cmp("$lt", "lag", rule.yellow_gap)))
        # A 力争 target far behind is still yellow.
        add("yellow_soft", DecisionKind("warning", "yellow", "yellow"),
            _all(_const_cmp("$gte", "lag", rule.yellow_gap), {"soft": True}))
        if rule.praise_margin is not None:
            # Praise only when the shown figures bear out "快于序时进度N个百分点以上": the whole-number
            # allowance that spares a count a wrong light must not also earn it praise.
            add("ahead", DecisionKind("praise", "green", "ahead", period_suffix="praise"),
                _all(_const_cmp("$lte", "lag", -rule.praise_margin), _const_cmp("$gte", "lead", rule.praise_margin - 1e-6)))
    elif rule.kind == "milestone":
        # Reminders while unmet as the date approaches; a light only once the date has passed unmet
        # (and its figures are in): red for a hard target, yellow for a 力争 one. Never monthly pacing.
        days = sorted(set(rule.remind_days), reverse=True)
        unmet = _const_cmp("$gt", "gap", 0.0)
        for i, n in enumerate(days):
            lower = _const_cmp("$gt", "days", float(days[i + 1])) if i + 1 < len(days) else _const_cmp("$gte", "days", 0.0)
            add(f"remind{n}", DecisionKind("reminder", "blue", f"remind{n}", period_suffix=f"T-{n}"),
                _all(unmet, _const_cmp("$lte", "days", float(n)), lower))
        add("missed", DecisionKind("warning", "red", "missed"),
            _all(unmet, _const_cmp("$lt", "days", 0.0), {"flag": True}, {"soft": False}))
        add("missed_soft", DecisionKind("warning", "yellow", "missed"),
            _all(unmet, _const_cmp("$lt", "days", 0.0), {"flag": True}, {"soft": True}))
    elif rule.kind == "forecast":
        add("forecast", DecisionKind("warning", "yellow", "forecast"), _const_cmp("$gt", "gap", 0.0))
    elif rule.kind == "deadline":
        days = sorted(set(rule.remind_days), reverse=True)
        for i, n in enumerate(days):
            lower = _const_cmp("$gt", "days", float(days[i + 1])) if i + 1 < len(days) else _const_cmp("$gte", "days", 0.0)
            add(f"remind{n}", DecisionKind("reminder", "blue", f"remind{n}", period_suffix=f"T-{n}"),
                _all(_const_cmp("$lte", "days", float(n)), lower))
        escalate = float(rule.escalate_after_days)
        add("overdue", DecisionKind("overdue", "yellow", "overdue"),
            _all(_const_cmp("$lt", "days", 0.0), _const_cmp("$gte", "days", -escalate)))
        add("escalated", DecisionKind("overdue", "red", "escalated", copy_working_group=True),
            _all(_const_cmp("$lt", "days", -escalate), {"soft": False}))
        # A 力争 task (its own goal says 力争/争取) is a stretch goal: still yellow, never 升级督办.
        add("overdue_soft", DecisionKind("overdue", "yellow", "overdue"),
            _all(_const_cmp("$lt", "days", -escalate), {"soft": True}))
        # Ongoing (常态化) tasks: their facts carry flag=True and days far away, so only this matches.
        add("progress", DecisionKind("reminder", "blue", "progress", period_suffix="progress"), {"flag": True})
    elif rule.kind == "report_due":
        add("due_soon", DecisionKind("reminder", "blue", "due_soon", period_suffix="reminder"),
            _all(_const_cmp("$gte", "days", 0.0), _const_cmp("$lte", "days", float(rule.remind_days_before))))
        # Missing figures: yellow 催报 after the due date; red, copied to the working group, once
        # more than `escalate_after_working_days` working days have passed.
        escalate = float(rule.escalate_after_working_days)
        add("missing", DecisionKind("warning", "yellow", "missing"),
            _all(_const_cmp("$lt", "days", 0.0), _const_cmp("$lte", "wdays", escalate)))
        add("missing_red", DecisionKind("warning", "red", "missing_red", copy_working_group=True),
            _all(_const_cmp("$lt", "days", 0.0), _const_cmp("$gt", "wdays", escalate)))
    elif rule.kind == "praise":
        praise = DecisionKind("praise", "green", rule.basis)
        if rule.basis == "target_met_early":
            add("met_early", praise, _all(_const_cmp("$gte", "completion", 100.0), _const_cmp("$gt", "days", 0.0)))
        elif rule.basis == "ahead_of_pace":
            add("ahead", praise, _all(_const_cmp("$lte", "lag", -rule.margin), _const_cmp("$gte", "lead", rule.margin - 1e-6)))
        else:
            add("on_time", praise, {"flag": True})
    else:  # pragma: no cover - the loader only admits known kinds
        raise ValueError(rule.kind)
    # Every fact must match some durable rule: durable corrupts its heap when a session holds facts
    # that passed a rule's first test and failed the rest (measured: segfaults within hundreds of
    # evaluations). This catch-all decision matches every fact of the rule and is ignored.
    out[f"{rule.id}#{_decide(NO_DECISION, DecisionKind('none', None, NO_DECISION))}"] = _rule(rule)
    return out


def compile_rule_set(rule_set: RuleSet) -> CompiledRuleset:
    conditions: dict[str, Condition] = {}
    for rule in rule_set.rules:
        conditions.update(rule_conditions(rule))
    return CompiledRuleset(rule_set.settings.programme, conditions, FACT_SCHEMA)
