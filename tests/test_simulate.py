import dataclasses
import datetime as dt
import json

from click.testing import CliRunner
from sqlalchemy import select

from duban.app.simulate import replay
from duban.cli import main
from duban.engine.loader import load_rule_set
from duban.store.importer import import_paths
from duban.store.models import Delivery, Round
from duban.store.periods import SHANGHAI


def _lucheng(sqlite_engine, start: dt.date | None = dt.date(2023, 1, 1)):
    """The Lucheng example; its document is dated 24 August 2023, so July replays set an explicit start."""
    report = import_paths(sqlite_engine, ["examples/lucheng-2023"], now=dt.datetime(2023, 1, 1, tzinfo=dt.UTC),
                          imported_by="test")
    assert report.ok, report.problem_lines()
    rule_set = load_rule_set("rules/lucheng")
    if start is not None:
        rule_set.settings = dataclasses.replace(rule_set.settings, start=start)
    return rule_set


def test_no_round_runs_before_the_document_was_issued(sqlite_engine):
    rule_set = _lucheng(sqlite_engine, start=None)
    assert rule_set.settings.issued == dt.date(2023, 8, 24)
    replay(sqlite_engine, rule_set, dt.datetime(2023, 8, 1, tzinfo=SHANGHAI), dt.datetime(2023, 9, 1, tzinfo=SHANGHAI))
    with sqlite_engine.connect() as conn:
        first = conn.scalar(select(Round.at).order_by(Round.at).limit(1))
    assert first is not None and first.astimezone(SHANGHAI).date() == dt.date(2023, 8, 24)


def test_cadences_firing_at_one_moment_make_one_message_per_unit(sqlite_engine):
    """At 09:00 on Monday 17 July 2023 the 月调度 and the 专班会商 fire together: one mail to 区发改局."""
    rule_set = _lucheng(sqlite_engine)
    replay(sqlite_engine, rule_set, dt.datetime(2023, 7, 17, tzinfo=SHANGHAI), dt.datetime(2023, 7, 18, tzinfo=SHANGHAI))
    with sqlite_engine.connect() as conn:
        rounds = conn.execute(select(Round.key, Round.summary)).all()
        to_fgj = conn.scalars(select(Delivery.subject).where(Delivery.recipient_unit == "fgj")).all()
    merged = [summary for key, summary in rounds if key.startswith("lucheng.monthly_dispatch@2023-07-17")]
    assert merged and merged[0]["merged_into"].startswith("lucheng.consultation@2023-07-17")
    assert len(to_fgj) == 1 and "专班会商、月调度" in to_fgj[0]


def test_each_cadence_round_is_recorded_under_its_own_name_and_fire_time(sqlite_engine):
    rule_set = _lucheng(sqlite_engine)
    replay(sqlite_engine, rule_set, dt.datetime(2023, 7, 1, tzinfo=SHANGHAI), dt.datetime(2023, 8, 1, tzinfo=SHANGHAI))
    with sqlite_engine.connect() as conn:
        keys = set(conn.scalars(select(Round.key)))
    assert "lucheng.monthly_dispatch@2023-07-17T09:00:00+08:00" in keys  # 15 July 2023 was a Saturday
    assert "lucheng.quarterly_analysis@2023-07-20T09:00:00+08:00" in keys
    assert "lucheng.daily_check@2023-07-03T08:30:00+08:00" in keys
    assert not any(k.startswith("lucheng.annual_assessment") for k in keys)


def test_replaying_the_same_span_twice_records_and_sends_nothing_new(sqlite_engine):
    rule_set = _lucheng(sqlite_engine)
    span = (dt.datetime(2023, 7, 1, tzinfo=SHANGHAI), dt.datetime(2023, 7, 20, tzinfo=SHANGHAI))
    first = replay(sqlite_engine, rule_set, *span)
    with sqlite_engine.connect() as conn:
        deliveries = conn.scalar(select(Delivery.id).order_by(Delivery.id.desc()).limit(1))
    second = replay(sqlite_engine, rule_set, *span)
    assert any(r.messages for r in first)
    assert all(r.skipped for r in second)
    with sqlite_engine.connect() as conn:
        assert conn.scalar(select(Delivery.id).order_by(Delivery.id.desc()).limit(1)) == deliveries


def test_simulate_prints_the_timeline_as_json_with_the_round_and_touches_nothing(tmp_path):
    db = tmp_path / "duban.db"
    runner = CliRunner()
    assert runner.invoke(main, ["--db", str(db), "db", "upgrade"]).exit_code == 0
    assert runner.invoke(main, ["--db", str(db), "import", "examples/lucheng-2023"]).exit_code == 0
    result = runner.invoke(main, ["--db", str(db), "--rules", "rules", "simulate", "--from", "2023-08-01",
                                  "--to", "2023-09-01", "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    red_share = [x for x in lines if x["rule"] == "lucheng.service_investment_share" and x["level"] == "red"]
    # The document is dated 24 August 2023: nothing before. July's share (65.8 %) lights red at the
    # first round after it that evaluates the rule, the 专班会商 of Monday 28 August.
    assert min(x["at"] for x in lines) >= "2023-08-24"
    assert red_share and red_share[0]["round"] == "lucheng.consultation@2023-08-28T09:00:00+08:00"
    assert red_share[0]["at"] == "2023-08-28T09:00:00+08:00"
    assert {"at", "rule", "period", "kind", "level", "subject", "recipients", "title"} <= set(red_share[0])
    from duban.store.db import make_engine

    with make_engine(str(db)).connect() as conn:
        assert conn.scalar(select(Round.id)) is None  # the real store has no rounds
