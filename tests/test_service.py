"""`duban run`: cadence rounds, catch-up after downtime, one instance per database, reload, calendar gaps.

The core is driven with explicit times (`Service.tick(now)`); the lock, SIGTERM and live reload are
proved with real `duban run` processes on a real SQLite file and on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from duban.app.service import InstanceLock, Service, fingerprint, load_rules, round_key
from duban.engine.calendar import WorkingCalendar
from duban.engine.loader import load_rule_set
from duban.engine.schedule import SHANGHAI, parse_schedule
from duban.store.importer import import_paths
from duban.store.models import Delivery, Round, Setting

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "lucheng-2023"


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


@pytest.fixture
def file_outbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    outbox = tmp_path / "outbox"
    monkeypatch.setenv("DUBAN_TRANSPORT", "file")
    monkeypatch.setenv("DUBAN_OUTBOX_DIR", str(outbox))
    return outbox


def _import_example(engine: Engine) -> None:
    report = import_paths(engine, [EXAMPLE], now=at("2023-07-01T09:00"), imported_by="test")
    assert report.ok, report.problem_lines()


@pytest.fixture
def lucheng_db(sqlite_engine: Engine) -> Engine:
    _import_example(sqlite_engine)
    return sqlite_engine


@pytest.fixture
def service(lucheng_db: Engine, rules_copy: Path, file_outbox: Path) -> Service:
    running = Service(lucheng_db, rules_copy / "lucheng")
    running.start()
    return running


def _round_keys(engine: Engine, job: str | None = None) -> list[str]:
    with engine.connect() as conn:
        query = select(Round.key).order_by(Round.id)
        if job is not None:
            query = query.where(Round.job == job)
        return list(conn.scalars(query))


def _admin_deliveries(engine: Engine) -> list[Delivery]:
    with Session(engine) as session:
        return list(session.scalars(select(Delivery).where(Delivery.address == "admin@lucheng.example.org")))


# -- round keys and catch-up ------------------------------------------------------------------------------


def test_a_cadence_fire_is_the_round_keyed_by_cadence_id_and_shanghai_fire_time(service: Service) -> None:
    consultation = next(c for c in service.current().cadences if c.id == "lucheng.consultation")
    fire_utc = dt.datetime(2023, 7, 17, 1, 0, tzinfo=dt.UTC)
    assert round_key(consultation, fire_utc) == "lucheng.consultation@2023-07-17T09:00:00+08:00"


def test_after_three_weeks_down_each_cadence_runs_once_for_its_latest_missed_fire(service: Service) -> None:
    engine = service.engine
    first = service.tick(at("2023-07-03T09:05"))
    assert "lucheng.consultation@2023-07-03T09:00:00+08:00" in [r.key for r in first]
    before = set(_round_keys(engine))

    # Down from 07-03 09:05 to 07-24 10:00: 14 daily checks, one consultation (07-17) and the
    # monthly dispatch of 07-15 (a Saturday, moved to Monday 07-17) and 07-20's quarterly analysis were missed.
    restart = service.tick(at("2023-07-24T10:00"))
    new = sorted(set(_round_keys(engine)) - before)
    assert new == sorted([
        "lucheng.consultation@2023-07-17T09:00:00+08:00",
        "lucheng.daily_check@2023-07-24T08:30:00+08:00",
        "lucheng.monthly_dispatch@2023-07-17T09:00:00+08:00",
        "lucheng.quarterly_analysis@2023-07-20T09:00:00+08:00",
    ])
    # The dispatch fired at the consultation's moment (07-17 09:00): one round, one mail per unit;
    # its key is recorded as merged into the consultation's round.
    merged = "lucheng.monthly_dispatch@2023-07-17T09:00:00+08:00"
    assert [r.key for r in restart if not r.skipped] == sorted(set(new) - {merged}, key=lambda k: k.split("@")[1])
    with engine.connect() as conn:
        summary = conn.scalar(select(Round.summary).where(Round.key == merged))
    assert summary["merged_into"] == "lucheng.consultation@2023-07-17T09:00:00+08:00"
    # Evaluated at the restart time (everything due now), keyed by the missed fire time.
    with engine.connect() as conn:
        evaluated = conn.scalar(select(Round.at).where(Round.key == "lucheng.consultation@2023-07-17T09:00:00+08:00"))
    assert evaluated == at("2023-07-24T10:00")


def test_a_second_tick_at_the_same_moment_records_and_sends_nothing(service: Service, file_outbox: Path) -> None:
    service.tick(at("2023-07-15T10:00"))
    rounds, files = _round_keys(service.engine), sorted(file_outbox.iterdir())
    assert rounds and files
    assert service.tick(at("2023-07-15T10:00")) == []
    assert _round_keys(service.engine) == rounds
    assert sorted(file_outbox.iterdir()) == files


def test_a_fresh_database_catches_up_only_the_latest_fire_of_each_cadence(service: Service) -> None:
    service.tick(at("2023-07-15T10:00"))
    assert sorted(_round_keys(service.engine)) == [
        "lucheng.annual_assessment@2023-01-20T09:00:00+08:00",
        "lucheng.consultation@2023-07-03T09:00:00+08:00",
        "lucheng.daily_check@2023-07-14T08:30:00+08:00",
        "lucheng.monthly_dispatch@2023-06-15T09:00:00+08:00",
        "lucheng.quarterly_analysis@2023-04-20T09:00:00+08:00",
    ]


def test_the_scheduler_job_runs_the_fire_that_just_came_due_and_only_once(service: Service) -> None:
    service.tick(at("2023-07-14T10:00"))
    report = service.run_due("lucheng.monthly_dispatch", at("2023-07-17T09:00:00.2"))
    assert report is not None and not report.skipped
    assert report.key == "lucheng.monthly_dispatch@2023-07-17T09:00:00+08:00"
    again = service.run_due("lucheng.monthly_dispatch", at("2023-07-17T09:00:05"))
    assert again is not None and again.skipped


def test_the_round_key_unique_constraint_stops_a_double_record_even_without_the_lock(
        lucheng_db: Engine, rules_copy: Path, file_outbox: Path) -> None:
    one, two = Service(lucheng_db, rules_copy / "lucheng"), Service(lucheng_db, rules_copy / "lucheng")
    one.start()
    two.start()
    cadence = next(c for c in one.current().cadences if c.id == "lucheng.consultation")
    fire = at("2023-07-17T09:00")
    first = one.run_round(cadence, fire, at("2023-07-17T09:00:01"))
    second = two.run_round(cadence, fire, at("2023-07-17T09:00:02"))
    assert first is not None and not first.skipped
    assert second is not None and second.skipped
    assert _round_keys(lucheng_db).count(round_key(cadence, fire)) == 1


# -- every cadence point of the rule files -----------------------------------------------------------------


def _fires(directory: str, cadence_id: str, start: str, end: str) -> list[str]:
    rule_set = load_rule_set(ROOT / "rules" / directory)
    calendar = WorkingCalendar.load(rule_set.settings.calendar)
    cadence = next(c for c in rule_set.cadences if c.id == cadence_id)
    schedule = parse_schedule(cadence.when, calendar, anchor=cadence.anchor)
    return [t.strftime("%Y-%m-%d %H:%M") for t in schedule.fire_times(at(start), at(end))]


def test_lucheng_consultation_is_every_other_monday_from_the_programme_start_moved_off_new_year() -> None:
    fires = _fires("lucheng", "lucheng.consultation", "2023-01-01T00:00", "2023-03-01T00:00")
    # 2023-01-02 is the New Year holiday: the first consultation moves to Tuesday 01-03.
    assert fires == ["2023-01-03 09:00", "2023-01-16 09:00", "2023-01-30 09:00", "2023-02-13 09:00",
                     "2023-02-27 09:00"]


def test_lucheng_consultation_keeps_its_fortnight_across_the_year_boundary() -> None:
    fires = _fires("lucheng", "lucheng.consultation", "2023-12-01T00:00", "2024-01-20T00:00")
    assert fires == ["2023-12-04 09:00", "2023-12-18 09:00", "2024-01-02 09:00", "2024-01-15 09:00"]


def test_monthly_dispatch_on_the_15th_moves_to_the_next_working_day_when_the_15th_is_a_weekend() -> None:
    fires = _fires("lucheng", "lucheng.monthly_dispatch", "2023-01-01T00:00", "2024-01-01T00:00")
    assert fires == ["2023-01-16 09:00", "2023-02-15 09:00", "2023-03-15 09:00", "2023-04-17 09:00",
                     "2023-05-15 09:00", "2023-06-15 09:00", "2023-07-17 09:00", "2023-08-15 09:00",
                     "2023-09-15 09:00", "2023-10-16 09:00", "2023-11-15 09:00", "2023-12-15 09:00"]


def test_lucheng_quarterly_analysis_and_annual_assessment_fire_on_the_20th_of_january_and_each_quarter() -> None:
    assert _fires("lucheng", "lucheng.quarterly_analysis", "2024-01-01T00:00", "2025-01-01T00:00") == [
        "2024-01-22 09:00", "2024-04-22 09:00", "2024-07-22 09:00", "2024-10-21 09:00"]  # all on weekends
    assert _fires("lucheng", "lucheng.annual_assessment", "2023-01-01T00:00", "2026-01-01T00:00") == [
        "2023-01-20 09:00", "2024-01-22 09:00", "2025-01-20 09:00"]


def test_daily_check_fires_on_a_working_saturday_and_not_in_the_national_day_holiday() -> None:
    fires = _fires("lucheng", "lucheng.daily_check", "2023-09-28T00:00", "2023-10-10T00:00")
    # 09-29..10-06 off; Saturday 10-07 and Sunday 10-08 are 调休 working days.
    assert fires == ["2023-09-28 08:30", "2023-10-07 08:30", "2023-10-08 08:30", "2023-10-09 08:30"]


def test_huzhou_monthly_dispatch_bimonthly_onsite_push_and_quarterly_meeting() -> None:
    assert _fires("huzhou", "huzhou.monthly_dispatch", "2023-01-01T00:00", "2023-05-01T00:00") == [
        "2023-01-16 09:00", "2023-02-15 09:00", "2023-03-15 09:00", "2023-04-17 09:00"]
    # 双月 = even months; 2023-02-25 is a Saturday (→ Monday 02-27); 2023-06-25 is a Sunday but a
    # 调休 working day after the Dragon Boat holiday, so the push stays on it.
    assert _fires("huzhou", "huzhou.onsite_push", "2023-01-01T00:00", "2024-01-01T00:00") == [
        "2023-02-27 09:00", "2023-04-25 09:00", "2023-06-25 09:00", "2023-08-25 09:00",
        "2023-10-25 09:00", "2023-12-25 09:00"]
    assert _fires("huzhou", "huzhou.quarterly_meeting", "2023-01-01T00:00", "2024-01-01T00:00") == [
        "2023-01-20 09:00", "2023-04-20 09:00", "2023-07-20 09:00", "2023-10-20 09:00"]
    assert _fires("huzhou", "huzhou.daily_check", "2023-06-21T00:00", "2023-06-27T00:00") == [
        "2023-06-21 08:30", "2023-06-25 08:30", "2023-06-26 08:30"]


def test_huzhou_cadence_groups_are_the_groups_its_rules_use() -> None:
    rule_set = load_rule_set(ROOT / "rules" / "huzhou")
    used = {group for rule in rule_set.rules for group in rule.groups}
    scheduled = {group for cadence in rule_set.cadences for group in cadence.groups}
    assert used <= scheduled, f"rules in groups no cadence runs: {used - scheduled}"


# -- hot reload -----------------------------------------------------------------------------------------------


def test_a_rule_change_that_fails_validation_is_rejected_mailed_to_the_admin_and_the_old_rules_keep_running(
        service: Service, rules_copy: Path) -> None:
    good = service.current()
    cadence_file = rules_copy / "lucheng" / "cadence.yaml"
    cadence_file.write_text(cadence_file.read_text(encoding="utf-8").replace("每两周周一 09:00", "每两周周八 09:00"),
                            encoding="utf-8")

    outcome = service.check_reload(at("2023-07-10T10:00"))
    assert outcome is not None and not outcome.applied
    assert any("cadence.yaml:" in error and "consultation" in error for error in outcome.errors), outcome.errors
    assert outcome.admin_notified
    assert service.current() is good
    [mail] = _admin_deliveries(service.engine)
    assert "规则修改未生效" in mail.subject
    assert mail.status == "sent"

    # The same bad state is reported once; the old rules still run rounds.
    assert service.check_reload(at("2023-07-10T10:00:03")) is None
    assert len(_admin_deliveries(service.engine)) == 1
    assert "lucheng.consultation@2023-07-03T09:00:00+08:00" in [r.key for r in service.tick(at("2023-07-10T08:00"))]

    cadence_file.write_text(cadence_file.read_text(encoding="utf-8").replace("每两周周八", "每周一"), encoding="utf-8")
    fixed = service.check_reload(at("2023-07-10T10:05"))
    assert fixed is not None and fixed.applied
    assert service.current() is not good
    assert service.current().fingerprint == fingerprint(service.current().rule_set)
    # Weekly now: Monday 07-10 is a consultation (it was the off week of the fortnight).
    assert "lucheng.consultation@2023-07-10T09:00:00+08:00" in [r.key for r in service.tick(at("2023-07-10T10:06"))]


def test_a_yaml_syntax_error_in_a_rule_file_is_reported_with_its_line(service: Service, rules_copy: Path) -> None:
    (rules_copy / "lucheng" / "broken.yaml").write_text("rules:\n  - id: x\n   kind: [\n", encoding="utf-8")
    outcome = service.check_reload(at("2023-07-10T10:00"))
    assert outcome is not None and not outcome.applied
    assert any("broken.yaml:" in error for error in outcome.errors), outcome.errors
    assert len(_admin_deliveries(service.engine)) == 1


def test_a_forced_reload_without_changes_keeps_the_rules(service: Service) -> None:
    outcome = service.check_reload(at("2023-07-10T10:00"), force=True)
    assert outcome is not None and outcome.applied
    assert service.check_reload(at("2023-07-10T10:00:03")) is None


# -- calendar years without holiday data -------------------------------------------------------------------


def test_2027_without_holiday_data_is_warned_once_and_rounds_still_run(service: Service) -> None:
    reports = service.tick(at("2027-01-05T10:00"))
    assert "lucheng.daily_check@2027-01-05T08:30:00+08:00" in [r.key for r in reports]
    with service.engine.connect() as conn:
        assert conn.scalar(select(Setting.key).where(Setting.key == "calendar_warned:2027")) is not None
    mails = [d for d in _admin_deliveries(service.engine) if "2027年节假日数据缺失" in d.subject]
    assert len(mails) == 1

    service.tick(at("2027-01-06T10:00"))
    assert service.warn_calendar_gaps(at("2027-01-07T10:00")) == []
    assert len([d for d in _admin_deliveries(service.engine) if "2027" in d.subject]) == 1


def test_next_years_missing_holidays_are_warned_ahead_in_november(service: Service) -> None:
    assert service.warn_calendar_gaps(at("2026-11-20T10:00")) == [2027]


# -- the instance lock ---------------------------------------------------------------------------------------


def test_a_second_lock_on_the_same_sqlite_database_is_refused_until_the_first_is_released(
        sqlite_engine: Engine) -> None:
    first, second = InstanceLock(sqlite_engine), InstanceLock(sqlite_engine)
    assert first.try_acquire()
    assert not second.try_acquire()
    first.release()
    assert second.try_acquire()
    second.release()


def test_a_second_lock_on_the_same_postgresql_schema_is_refused_until_the_first_is_released(
        pg_engine: Engine) -> None:
    first, second = InstanceLock(pg_engine), InstanceLock(pg_engine)
    assert first.try_acquire()
    assert first.still_held()
    assert not second.try_acquire()
    first.release()
    assert second.try_acquire()
    second.release()


# -- real processes ------------------------------------------------------------------------------------------


def _process_url(engine: Engine) -> str:
    url = engine.url
    if engine.dialect.name != "sqlite":
        with engine.connect() as conn:
            schema = conn.scalar(text("SELECT current_schema()"))
        url = make_url(url.render_as_string(hide_password=False)).update_query_dict(
            {"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


class _Run:
    def __init__(self, process: subprocess.Popen[str], log: Path) -> None:
        self.process, self.log = process, log

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8")

    def wait_for(self, needle: str, timeout: float = 90) -> None:
        # Generous: a wait that ends as soon as the line appears; a shared, loaded machine needs the room.
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {needle!r} in log:\n{self.text()}")
            time.sleep(0.05)


@pytest.fixture
def start_run(tmp_path: Path) -> Iterator[object]:
    started: list[_Run] = []

    def start(url: str, rules: Path, *args: str) -> _Run:
        log = tmp_path / f"run{len(started)}.log"
        env = {**os.environ, "DUBAN_DB": url, "DUBAN_RULES": str(rules), "DUBAN_TRANSPORT": "file",
               "DUBAN_OUTBOX_DIR": str(tmp_path / "outbox"), "DUBAN_LOG_FORMAT": "text"}
        with log.open("w", encoding="utf-8") as sink:
            process = subprocess.Popen([sys.executable, "-m", "duban", "run", *args], cwd=ROOT, env=env,
                                       stdout=sink, stderr=subprocess.STDOUT, text=True)
        run = _Run(process, log)
        started.append(run)
        return run

    yield start
    for run in started:
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()


def _two_processes_one_runs_rounds(engine: Engine, rules: Path, start_run: object) -> None:
    url = _process_url(engine)
    first = start_run(url, rules, "--at", "2023-07-15T10:00", "--poll", "0.3")  # type: ignore[operator]
    first.wait_for("event=catch_up_done")
    second = start_run(url, rules, "--at", "2023-07-15T10:00")  # type: ignore[operator]
    assert second.process.wait(timeout=30) == 2
    assert "event=lock_held" in second.text() and "另一个督办服务实例正在运行" in second.text()
    assert "round_started" not in second.text()

    first.process.send_signal(signal.SIGTERM)
    assert first.process.wait(timeout=30) == 0
    assert "event=stopped exit_code=0" in first.text()
    keys = _round_keys(engine)
    assert len(keys) == len(set(keys)) == 5
    with engine.connect() as conn:
        assert conn.scalar(select(Round.id).where(Round.finished_at.is_(None))) is None
        assert set(conn.scalars(select(Delivery.status))) <= {"sent"}


def test_two_services_on_one_sqlite_database_only_one_runs_rounds(
        lucheng_db: Engine, rules_copy: Path, start_run: object) -> None:
    _two_processes_one_runs_rounds(lucheng_db, rules_copy, start_run)


def test_two_services_on_one_postgresql_schema_only_one_runs_rounds(
        pg_engine: Engine, rules_copy: Path, start_run: object) -> None:
    _import_example(pg_engine)
    _two_processes_one_runs_rounds(pg_engine, rules_copy, start_run)


def test_sigterm_during_catch_up_finishes_the_running_round_and_exits_cleanly(
        lucheng_db: Engine, rules_copy: Path, start_run: object) -> None:
    run = start_run(_process_url(lucheng_db), rules_copy, "--at", "2023-07-15T10:00")  # type: ignore[operator]
    run.wait_for("event=round_started")
    run.process.send_signal(signal.SIGTERM)
    assert run.process.wait(timeout=30) == 0
    started = run.text().count("event=round_started")
    assert run.text().count("event=round_recorded") == started
    with lucheng_db.connect() as conn:
        rounds = list(conn.execute(select(Round.key, Round.finished_at)))
        statuses = set(conn.scalars(select(Delivery.status)))
    assert len(rounds) == started and all(finished is not None for _, finished in rounds)
    assert statuses <= {"sent"}


def test_a_bad_rule_file_written_while_the_service_runs_is_rejected_and_sighup_reloads(
        lucheng_db: Engine, rules_copy: Path, start_run: object) -> None:
    run = start_run(_process_url(lucheng_db), rules_copy, "--at", "2023-07-15T10:00", "--poll", "0.2")  # type: ignore[operator]
    run.wait_for("event=catch_up_done")
    (rules_copy / "lucheng" / "broken.yaml").write_text("rules:\n  - id: 1bad\n", encoding="utf-8")
    run.wait_for("event=rules_rejected ")
    assert len(_admin_deliveries(lucheng_db)) == 1, [d.subject for d in _admin_deliveries(lucheng_db)] + [run.text()]
    (rules_copy / "lucheng" / "broken.yaml").unlink()
    run.wait_for("event=rules_restored")
    run.process.send_signal(signal.SIGHUP)
    run.wait_for("forced=True")
    run.process.send_signal(signal.SIGTERM)
    assert run.process.wait(timeout=30) == 0


def test_duban_run_once_catches_up_sends_and_exits(lucheng_db: Engine, rules_copy: Path, start_run: object,
                                                  tmp_path: Path) -> None:
    run = start_run(_process_url(lucheng_db), rules_copy, "--once", "--at", "2023-07-15T10:00")  # type: ignore[operator]
    assert run.process.wait(timeout=30) == 0
    assert len(_round_keys(lucheng_db)) == 5
    assert any((tmp_path / "outbox").iterdir())
    again = start_run(_process_url(lucheng_db), rules_copy, "--once", "--at", "2023-07-15T10:00")  # type: ignore[operator]
    assert again.process.wait(timeout=30) == 0
    assert "没有到期的轮次" in again.text()


def test_load_rules_accepts_both_bundled_rule_sets() -> None:
    for name in ("lucheng", "huzhou"):
        loaded = load_rules(ROOT / "rules" / name)
        assert set(loaded.schedules) == {c.id for c in loaded.cadences}
