"""A 报送提醒 before the due date goes only to units that have not filed.

The example figures carry no 报送日期 and are imported after every moment a replay visits, so a
replay sees June's figures only from their due date (10 July). They were filed on time: the
reminder of 7 July ("请于2023年7月10日前报送") must not chase them. 区文化和广电旅游体育局 never
files its June count of new enterprises: that one is reminded, then chased once overdue."""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import Engine

from duban.engine.evaluate import evaluate
from duban.engine.loader import load_rule_set
from duban.engine.rules import RuleSet
from duban.store.importer import import_paths
from duban.store.periods import SHANGHAI
from duban.store.snapshot import Snapshot, build_snapshot, load_snapshot, read_rows

REMINDER_DAY = dt.datetime(2023, 7, 7, 8, 30, tzinfo=SHANGHAI)  # 10 July 2023 is a Monday: T-3 is Friday 7 July


def _lucheng(engine: Engine) -> RuleSet:
    report = import_paths(engine, ["examples/lucheng-2023"], now=dt.datetime(2024, 3, 1, tzinfo=dt.UTC),
                          imported_by="test")
    assert report.ok, report.problem_lines()
    rule_set = load_rule_set("rules/lucheng")
    rule_set.settings = dataclasses.replace(rule_set.settings, start=dt.date(2023, 1, 1))
    return rule_set


def _reminded(rule_set: RuleSet, snapshot: Snapshot) -> set[tuple[str, str]]:
    result = evaluate(rule_set, snapshot, groups=["daily"])
    return {(c.subject, c.period.split("/")[0]) for c in result.candidates
            if c.rule.endswith("_figures") and c.details.get("stage") == "due_soon"}


def test_figures_filed_on_time_are_not_reminded_before_their_due_date(sqlite_engine):
    rule_set = _lucheng(sqlite_engine)
    live = load_snapshot(sqlite_engine, REMINDER_DAY)  # one moment: read through the database
    with sqlite_engine.connect() as conn:
        replayed = build_snapshot(read_rows(conn, None), REMINDER_DAY)  # a replay: read once, cut in memory
    for snapshot in (live, replayed):
        assert "2023-06" not in snapshot.observations["service_investment_share"][""], "not visible before 10 July"
        assert _reminded(rule_set, snapshot) == {("new_above_scale_service_enterprises@wgltj", "2023-06")}


def test_figures_that_came_in_after_the_reminder_are_reminded(sqlite_engine):
    """When the store knows the figures came on 8 July, the 7 July reminder was due: it goes out."""
    report = import_paths(sqlite_engine, ["examples/lucheng-2023"], now=dt.datetime(2023, 7, 8, tzinfo=SHANGHAI),
                          imported_by="test")
    assert report.ok, report.problem_lines()
    rule_set = load_rule_set("rules/lucheng")
    rule_set.settings = dataclasses.replace(rule_set.settings, start=dt.date(2023, 1, 1))
    snapshot = load_snapshot(sqlite_engine, REMINDER_DAY)
    assert snapshot.filed_unseen == {}
    reminded = _reminded(rule_set, snapshot)
    assert ("service_investment_growth", "2023-06") in reminded and len(reminded) > 10
