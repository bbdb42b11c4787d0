"""Time: the server's own time zone never matters, rounds fire at Asia/Shanghai times, and year ends,
the leap day, month ends, holiday blocks and 调休 working weekends land where the documents say.

The national day week of 2023: 09-29 (中秋) to 10-06 are days off; Saturday 10-07 and Sunday 10-08
are 调休 working days.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from duban.app.service import Service
from duban.engine.evaluate import Evaluator
from duban.store.db import transaction
from duban.store.importer import import_paths
from duban.store.models import Round
from duban.store.snapshot import load_snapshot

from .support import LUCHENG_EXAMPLE, ROOT, duban, duban_env

UTC = dt.UTC
SERVER_ZONES = ["UTC", "America/New_York", "Asia/Shanghai"]

DUE_PROBE = """
import datetime as dt, json, sys, time
from pathlib import Path
from duban.app.service import Service
from duban.store.db import make_engine
service = Service(make_engine(sys.argv[1]), Path(sys.argv[2]))
service.start()
probes = ["2023-10-07T00:29:59", "2023-10-07T00:30:00", "2023-10-16T00:59:59", "2023-10-16T01:00:00",
          "2023-12-31T23:00:00", "2024-02-29T00:30:00"]
out = {p: sorted(f"{c.id}@{f.isoformat()}" for c, f in service.due(dt.datetime.fromisoformat(p).replace(tzinfo=dt.UTC)))
       for p in probes}
out["local_zone"] = time.strftime("%Z")
print(json.dumps(out, ensure_ascii=False))
"""


@pytest.fixture
def lucheng(sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    lists = tmp_path / "lists"
    shutil.copytree(LUCHENG_EXAMPLE, lists)
    with (lists / "tasks.csv").open("a", encoding="utf-8") as tasks:
        tasks.write("R-LEAP,闰日任务,措施,目标,2024-02-29,fgj,open,\n")
        tasks.write("R-YEAR,年末任务,措施,目标,2023-12-31,fgj,open,\n")
        tasks.write("R-APR,月末任务（4月30日为星期日）,措施,目标,2023-04-30,fgj,open,\n")
        tasks.write("R-NATL,国庆任务,措施,目标,2023-10-01,fgj,open,\n")
    report = import_paths(sqlite_engine, [lists], now=dt.datetime(2023, 1, 1, tzinfo=UTC), imported_by="time")
    assert report.ok, report.problem_lines()
    monkeypatch.setenv("DUBAN_TRANSPORT", "file")
    monkeypatch.setenv("DUBAN_OUTBOX_DIR", str(tmp_path / "outbox"))
    return sqlite_engine


def test_time_a_server_in_utc_or_new_york_fires_at_shanghai_times(
    lucheng: Engine, rules_copy: Path, tmp_path: Path, ledger
) -> None:
    database = lucheng.url.database
    assert database is not None
    answers, timelines = {}, {}
    for zone in SERVER_ZONES:
        env = duban_env(database, TZ=zone, DUBAN_RULES=str(rules_copy))
        probe = subprocess.run([sys.executable, "-c", DUE_PROBE, database, str(rules_copy / "lucheng")],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert probe.returncode == 0, probe.stderr
        answers[zone] = json.loads(probe.stdout)
        timeline = duban("simulate", "--from", "2023-09-25", "--to", "2023-10-17", "--json", env=env)
        assert timeline.returncode == 0, timeline.stderr
        timelines[zone] = timeline.stdout
    zones = {zone: answer.pop("local_zone") for zone, answer in answers.items()}
    ledger("time", inputs=len(SERVER_ZONES) * 7, faults=len(SERVER_ZONES))
    assert zones["UTC"] == "UTC" and zones["America/New_York"] in ("EST", "EDT")  # the zones really differed
    assert all(answer == answers["Asia/Shanghai"] for answer in answers.values())
    assert all(timeline == timelines["Asia/Shanghai"] for timeline in timelines.values())
    due = answers["UTC"]
    # 08:30 in Shanghai is 00:30 UTC: not a second earlier; Saturday 10-07 is a 调休 working day.
    assert "lucheng.daily_check@2023-10-07T08:30:00+08:00" not in due["2023-10-07T00:29:59"]
    assert "lucheng.daily_check@2023-10-07T08:30:00+08:00" in due["2023-10-07T00:30:00"]
    # The 15th of October 2023 is a Sunday: the monthly dispatch moves to Monday the 16th, 09:00.
    assert "lucheng.monthly_dispatch@2023-10-16T09:00:00+08:00" not in due["2023-10-16T00:59:59"]
    assert "lucheng.monthly_dispatch@2023-10-16T09:00:00+08:00" in due["2023-10-16T01:00:00"]
    # 23:00 UTC on New Year's Eve is already 07:00 on 1 January 2024 in Shanghai: a holiday.
    assert "lucheng.daily_check@2023-12-29T08:30:00+08:00" in due["2023-12-31T23:00:00"]
    assert "lucheng.daily_check@2024-02-29T08:30:00+08:00" in due["2024-02-29T00:30:00"]


def test_time_the_holiday_block_and_the_tiaoxiu_weekend(lucheng: Engine, rules_copy: Path, ledger) -> None:
    service = Service(lucheng, rules_copy / "lucheng")
    service.start()
    start = dt.datetime(2023, 9, 27, 0, 31, tzinfo=UTC)  # 08:31 in Shanghai, every morning for two weeks
    ticks = [start + dt.timedelta(days=n) for n in range(14)]
    for now in ticks:
        service.tick(now)
    with transaction(lucheng) as session:
        keys = set(session.scalars(select(Round.key)))
    daily = sorted(key.split("@")[1][:10] for key in keys if key.startswith("lucheng.daily_check@"))
    consultations = sorted(key.split("@")[1] for key in keys if key.startswith("lucheng.consultation@"))
    ledger("time", inputs=len(ticks), faults=0)
    # 09-29 .. 10-06 are off; the 调休 Saturday and Sunday (10-07, 10-08) are working days.
    assert daily == ["2023-09-27", "2023-09-28", "2023-10-07", "2023-10-08", "2023-10-09", "2023-10-10"]
    assert "2023-10-09T09:00:00+08:00" in consultations  # every two weeks from 2023-01-02, after the holiday


@pytest.mark.parametrize(
    ("task", "timeline"),
    [
        # A deadline on Sunday 30 April (a month end): reminders 5 working days before (the 调休 Sunday 23 April
        # counts) and 1 working day before, then overdue on 1 May (a holiday).
        ("R-APR", {"2023-04-22": None, "2023-04-23": ("2023-04-30/T-5", "blue", 7),
                   "2023-04-29": ("2023-04-30/T-1", "blue", 1), "2023-05-01": ("2023-04-30", "yellow", -1)}),
        # The year end: reminders in December, overdue on 2 January (1 January is a holiday), red after 15 days.
        ("R-YEAR", {"2023-12-24": ("2023-12-31/T-5", "blue", 7), "2023-12-30": ("2023-12-31/T-1", "blue", 1),
                    "2024-01-02": ("2023-12-31", "yellow", -2), "2024-01-16": ("2023-12-31", "red", -16)}),
        # The leap day 2024-02-29: 5 working days before on 02-22, 1 on 02-28, overdue on 1 March.
        ("R-LEAP", {"2024-02-21": None, "2024-02-22": ("2024-02-29/T-5", "blue", 7),
                    "2024-02-28": ("2024-02-29/T-1", "blue", 1), "2024-03-01": ("2024-02-29", "yellow", -1)}),
        # A deadline inside the national day holiday block.
        ("R-NATL", {"2023-09-24": ("2023-10-01/T-5", "blue", 7), "2023-10-02": ("2023-10-01", "yellow", -1)}),
    ],
)
def test_time_deadlines_across_month_ends_the_year_end_and_the_leap_day(
    lucheng: Engine, rules_copy: Path, task: str, timeline: dict[str, tuple[str, str, int] | None], ledger
) -> None:
    from duban.app.service import load_rules

    rules = load_rules(rules_copy / "lucheng")
    evaluator = Evaluator(rules.rule_set, rules.calendar)
    seen = {}
    try:
        for day in timeline:
            # The same instant written in UTC: 09:00 in Shanghai is 01:00 UTC.
            at = dt.datetime.fromisoformat(f"{day}T01:00").replace(tzinfo=UTC)
            with transaction(lucheng) as session:
                snapshot = load_snapshot(session, at)
            found = [(c.period, c.level, c.days_left) for c in evaluator.evaluate(snapshot).candidates
                     if c.subject == task]
            seen[day] = found[0] if found else None
    finally:
        evaluator.close()
    ledger("time", inputs=len(timeline), faults=0)
    assert seen == timeline
