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


def _lucheng(sqlite_engine):
    report = import_paths(sqlite_engine, ["examples/lucheng-2023"], now=dt.datetime(2023, 1, 1, tzinfo=dt.UTC),
                          imported_by="test")
    assert report.ok, report.problem_lines()
    return load_rule_set("rules/lucheng")


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
    result = runner.invoke(main, ["--db", str(db), "--rules", "rules", "simulate", "--from", "2023-07-01",
                                  "--to", "2023-08-01", "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    red_share = [x for x in lines if x["rule"] == "lucheng.service_investment_share" and x["level"] == "red"]
    # June's share (62.7 %) is known from 1 July: the first round evaluating the rule lights it red.
    assert red_share and red_share[0]["round"] == "lucheng.consultation@2023-07-03T09:00:00+08:00"
    assert red_share[0]["at"] == "2023-07-03T09:00:00+08:00"
    assert {"at", "rule", "period", "kind", "level", "subject", "recipients", "title"} <= set(red_share[0])
    from duban.store.db import make_engine

    with make_engine(str(db)).connect() as conn:
        assert conn.scalar(select(Round.id)) is None  # the real store has no rounds
