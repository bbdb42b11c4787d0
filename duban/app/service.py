"""`duban run`: the long-running service — cadence rounds, catch-up, one instance per database, hot reload.

The core (`Service`) is driven by an explicit ``now`` and has no threads: `Service.tick(now)` runs
every cadence whose latest fire time ≤ now has no round yet. `run_service` is the thin APScheduler
shell around it (one job per cadence, `coalesce=True`, `misfire_grace_time=None`, `max_instances=1`).

Round keys and the watermark
    A cadence fire is the round ``f"{cadence.id}@{fire_time.isoformat()}"`` (fire time in
    Asia/Shanghai). `record_round` records a key once (the `rounds.key` unique constraint backs this
    up even if two processes raced past the lock), so the rounds table is the watermark: no state
    lives in APScheduler (its MemoryJobStore is rebuilt from the rule files at every start/reload).

Catch-up after downtime, and the evaluation time
    At start, for each cadence, the latest fire time ≤ now is found by walking the schedule from the
    cadence's latest recorded round (or from ``now - 400 days``, not before the programme start) up to
    now. If that key has no round, it runs ONCE: three missed weekly consultations give one round,
    keyed by the latest missed fire time, not three.

    The round is evaluated at NOW, not at the missed fire time. Evaluating at the missed fire time
    would keep the digest "as of" its date, but deadline reminders and overdue warnings that fell due
    between then and now would not be seen by it, and the next round might be days away. Evaluating at
    now sends everything that is due now; the key still names the fire time it stands for, so a
    restart does not run it again. (`Round.at` is the evaluation time; the key carries the fire time.)

One instance per database (a lease for the process lifetime)
    PostgreSQL: ``pg_try_advisory_lock(LOCK_CLASS, crc32(current_schema()))`` held on a dedicated
    connection (one lease per schema, since a schema is a deployment). SQLite: an exclusive
    ``fcntl.flock`` on ``<db file>.lock``. The second process logs ``event=lock_held`` and exits
    non-zero, or waits with ``--wait``.

Hot reload
    The rule-set directory (and the calendar override file) are polled by mtime/size every few
    seconds; SIGHUP forces a reload. A change that fails validation (rule files, cadence phrases,
    calendar file, templates) is rejected: errors are logged and mailed to programme.yaml's
    ``admin_email`` through the outbox, once per distinct bad state, and the last good rules keep
    running. A good change replaces the jobs.

Calendar years without holiday data (2027 in chinese-calendar 1.11) are warned about once per
year (log + admin mail), remembered in the `settings` table as ``calendar_warned:<year>``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.exc import DBAPIError

from duban.app.rounds import (
    Companion,
    RoundError,
    RoundReport,
    mail_from,
    record_round,
    send_outbox,
    template_problems,
)
from duban.engine.calendar import CalendarFileError, WorkingCalendar
from duban.engine.evaluate import Evaluator
from duban.engine.loader import RuleError, RuleSetInvalid, load_rule_set
from duban.engine.rules import Cadence, RuleSet
from duban.engine.schedule import (
    PROGRAMME_START,
    SHANGHAI,
    Schedule,
    ScheduleError,
    ScheduleTrigger,
    parse_schedule,
)
from duban.notifiers.message import MessageError, build_email
from duban.notifiers.outbox import enqueue
from duban.store.db import transaction
from duban.store.models import Round, Setting

logger = logging.getLogger("duban.app.service")

CATCH_UP_WINDOW = dt.timedelta(days=400)
CALENDAR_LOOKAHEAD = dt.timedelta(days=45)  # warn about next year's missing holidays in mid-November
LOCK_CLASS = 0x6475_6261  # "duba": the first key of the two-key advisory lock
DEFAULT_POLL_SECONDS = 3.0
RETRY_SECONDS = 30.0  # a crashed round is retried, and the outbox drained, at most this often
EXIT_LOCK_HELD = 2
EXIT_RULES_INVALID = 1
EXIT_ROUND_FAILED = 3  # --once: a round crashed and was rolled back; the next run retries it
# A round that fails this many times for a reason other than the database (a bug, a value nothing
# foresaw) is recorded as failed and the admin told: `run --once` under cron must not retry it forever.
MAX_ROUND_ATTEMPTS = 3
# After SIGTERM a round in progress may finish for this long (DUBAN_STOP_GRACE, seconds); then the process
# ends without it: the round's transaction is rolled back whole and the next start runs it again.
STOP_GRACE_SECONDS = 10.0

Sender = Callable[[Engine, RuleSet], object]  # returns what to log as the summary (str() of it)


def service_send(engine: Engine, rule_set: RuleSet) -> object:
    """The service sends without waiting for pacing windows: paced rows wait in the outbox (no
    attempt spent) for the next drain, so the loop stays free to answer signals and reloads."""
    return send_outbox(engine, rule_set, max_wait=dt.timedelta(0))


def log_event(event: str, level: int = logging.INFO, **fields: object) -> None:
    """One line per event: ``event=… key=value …``; values with spaces are JSON-quoted."""
    parts = [f"event={event}"]
    for name, value in fields.items():
        shown = value.isoformat() if isinstance(value, dt.datetime) else str(value)
        if not shown or any(c.isspace() or c in '"=' for c in shown):
            shown = json.dumps(shown, ensure_ascii=False)
        parts.append(f"{name}={shown}")
    # The fields also travel as a structure, so the JSON-lines formatter (duban.app.logs) keeps them typed.
    logger.log(level, " ".join(parts), extra={"duban_event": {"event": event, **fields}})


def round_key(cadence: Cadence, fire_time: dt.datetime) -> str:
    return f"{cadence.id}@{fire_time.astimezone(SHANGHAI).isoformat()}"


def fire_time_of(key: str) -> dt.datetime | None:
    _, _, stamp = key.rpartition("@")
    try:
        value = dt.datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


# -- loading and validating the rules ----------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedRules:
    """A rule set that passed every check the service needs, with its cadences' schedules."""

    rule_set: RuleSet
    calendar: WorkingCalendar
    schedules: dict[str, Schedule]
    fingerprint: str

    @property
    def cadences(self) -> list[Cadence]:
        return list(self.rule_set.cadences)


def watched_files(rule_set: RuleSet) -> list[Path]:
    """The rule set's files, its templates (possibly the shared rules/templates) and its calendar file."""
    roots = {rule_set.directory.resolve(), Path(rule_set.templates_dir).resolve()}
    files = {p for root in roots for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")}
    if rule_set.settings.calendar is not None:
        files.add(rule_set.settings.calendar.resolve())
    return sorted(files)


def fingerprint(rule_set: RuleSet) -> str:
    """Changes when a watched file is added, removed, or gets a new mtime or size; new files in the
    rule-set directory count too (a new rule file)."""
    digest = hashlib.sha256()
    paths = set(watched_files(rule_set)) | {p.resolve() for p in rule_set.directory.glob("*.yaml")}
    for path in sorted(paths):
        try:
            stat = path.stat()
        except FileNotFoundError:
            digest.update(f"{path}:missing\n".encode())
            continue
        digest.update(f"{path}:{stat.st_mtime_ns}:{stat.st_size}\n".encode())
    return digest.hexdigest()[:16]


def load_rules(directory: Path) -> LoadedRules:
    """Load and check a rule set for running. Raises RuleSetInvalid listing every problem."""
    rule_set = load_rule_set(directory)
    errors: list[RuleError] = []
    calendar_path = rule_set.settings.calendar
    try:
        calendar = WorkingCalendar.load(calendar_path)
    except CalendarFileError as exc:
        errors += [RuleError(p.path, p.line, p.column, p.message) for p in exc.problems]
        calendar = WorkingCalendar()
    schedules: dict[str, Schedule] = {}
    for cadence in rule_set.cadences:
        try:
            schedules[cadence.id] = parse_schedule(cadence.when, calendar, anchor=cadence.anchor)
        except ScheduleError as exc:
            where = cadence.position
            errors.append(RuleError(where.file, where.line, where.column,
                                    f"节奏 `{cadence.id.split('.', 1)[-1]}` 的 when 无法使用：{exc.message}"))
    if not rule_set.cadences:
        errors.append(RuleError(str(directory), 1, 1, "规则集中没有任何节奏（cadence），服务将无事可做：请保留 cadence.yaml"))
    for problem in template_problems(rule_set):
        errors.append(RuleError(str(rule_set.templates_dir), 1, 1, f"通知模板有误：{problem}"))
    if errors:
        raise RuleSetInvalid(errors)
    return LoadedRules(rule_set, calendar, schedules, fingerprint(rule_set))


# -- the instance lock ---------------------------------------------------------------------------------------


class LockHeld(Exception):
    """Another process holds this database's service lock."""


class InstanceLock:
    """A lease for the process lifetime: one running service per database (or PostgreSQL schema)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.description = ""
        self._file: IO[bytes] | None = None
        self._connection: Connection | None = None

    def try_acquire(self) -> bool:
        if self.engine.dialect.name == "sqlite":
            return self._try_file_lock()
        return self._try_advisory_lock()

    def acquire(self, *, wait: bool, stop: threading.Event | None = None, poll_seconds: float = 2.0) -> None:
        """Take the lock, or raise LockHeld (without ``wait``). Waiting ends early when ``stop`` is set."""
        while not self.try_acquire():
            if not wait:
                raise LockHeld(self.description)
            if stop is not None and stop.wait(poll_seconds):
                raise LockHeld(self.description)
            if stop is None:
                time.sleep(poll_seconds)

    def _try_file_lock(self) -> bool:
        database = self.engine.url.database
        if not database or database == ":memory:":
            self.description = "memory"
            return True
        path = Path(f"{database}.lock")
        self.description = str(path)
        handle = path.open("ab")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n".encode())
        handle.flush()
        self._file = handle
        return True

    def _try_advisory_lock(self) -> bool:
        connection = self.engine.connect()
        try:
            schema = connection.scalar(text("SELECT current_schema()")) or ""
            # Two-key form: one lease per schema, since each schema is a separate deployment.
            object_key = zlib.crc32(schema.encode()) - (1 << 31)
            self.description = f"pg_advisory_lock({LOCK_CLASS}, {object_key}) schema={schema}"
            held = bool(connection.scalar(text("SELECT pg_try_advisory_lock(:a, :b)"),
                                          {"a": LOCK_CLASS, "b": object_key}))
            connection.commit()  # a session-level advisory lock outlives the transaction
        except Exception:
            connection.close()
            raise
        if not held:
            connection.close()
            return False
        self._connection = connection
        return True

    def still_held(self) -> bool:
        """False when the PostgreSQL connection holding the lease is gone (the lease went with it)."""
        if self._connection is None:
            return self._file is not None or self.description == "memory"
        try:
            self._connection.execute(text("SELECT 1"))
            self._connection.commit()
        except Exception:  # any failure means the session, and with it the lock, is gone
            return False
        return True

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        if self._connection is not None:
            # Never hand the session back to the pool with the lock in it: end the session.
            with contextlib.suppress(Exception):
                self._connection.invalidate()
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None


# -- the service core ---------------------------------------------------------------------------------------


@dataclass
class ReloadOutcome:
    applied: bool
    errors: list[str] = field(default_factory=list)
    admin_notified: bool = False


class Service:
    """Rounds for one rule set on one database. Every method takes ``now``; nothing here reads a clock."""

    def __init__(self, engine: Engine, directory: Path, *, send: Sender = service_send) -> None:
        self.engine = engine
        self.directory = Path(directory)
        self.send = send
        self.rules: LoadedRules | None = None
        self._rejected: str | None = None  # fingerprint of the last bad state already reported
        self.round_lock = threading.RLock()
        self.retry_due = False  # a round crashed (e.g. the database restarted): the loop ticks again
        self.delivery_failed = False  # a send in this process had failures (`run --once` exits non-zero)
        self.last_delivery: object = None  # what the latest send did (its str() is the summary)
        self.deliveries: list[object] = []  # every send of this process that claimed something or failed

    # lifecycle

    def start(self) -> LoadedRules:
        """Load the rules at start-up; with no last good rules to fall back on, errors are fatal."""
        self.rules = load_rules(self.directory)
        log_event("rules_loaded", directory=self.directory, cadences=len(self.rules.cadences),
                  rules=len(self.rules.rule_set.rules), fingerprint=self.rules.fingerprint)
        return self.rules

    def current(self) -> LoadedRules:
        if self.rules is None:
            raise RuntimeError("Service.start() was not called")
        return self.rules

    # what is due

    def last_recorded_fire(self, cadence: Cadence) -> dt.datetime | None:
        with self.engine.connect() as conn:
            keys = conn.scalars(select(Round.key).where(Round.job == cadence.id).order_by(Round.id.desc()).limit(20))
            fires = [fire for fire in (fire_time_of(key) for key in keys) if fire is not None]
        return max(fires) if fires else None

    def latest_fire(self, cadence: Cadence, now: dt.datetime) -> dt.datetime | None:
        """The latest fire time ≤ now, searched from the cadence's last recorded round (or 400 days back)."""
        schedule = self.current().schedules[cadence.id]
        # No notice before the programme's document exists (programme.yaml `issued`, or `start`).
        first = self.current().rule_set.settings.notices_from or PROGRAMME_START
        floor = max(now - CATCH_UP_WINDOW, dt.datetime.combine(max(first, PROGRAMME_START), dt.time(), SHANGHAI))
        last = self.last_recorded_fire(cadence)
        start = max(floor, last + dt.timedelta(microseconds=1)) if last is not None else floor
        if start > now:
            return last
        latest = last
        for fire in schedule.fire_times(start, now + dt.timedelta(microseconds=1)):
            latest = fire
        return latest

    def due(self, now: dt.datetime) -> list[tuple[Cadence, dt.datetime]]:
        """Cadences whose latest fire time ≤ now has no round yet, each with that fire time."""
        latest = [(cadence, self.latest_fire(cadence, now)) for cadence in self.current().cadences]
        candidates = {round_key(c, fire): (c, fire) for c, fire in latest if fire is not None}
        # One connection at a time: on SQLite every connection begins IMMEDIATE (a write lock).
        with self.engine.connect() as conn:
            recorded = set(conn.scalars(select(Round.key).where(Round.key.in_(list(candidates)))))
        due = [item for key, item in candidates.items() if key not in recorded]
        return sorted(due, key=lambda item: item[1])

    # running rounds

    def tick(self, now: dt.datetime, *, should_stop: Callable[[], bool] = lambda: False) -> list[RoundReport]:
        """Run every due cadence once (catch-up at start; `--once`), then warn about calendar gaps."""
        reports = []
        for cadence, fire in self.due(now):
            if should_stop():
                log_event("catch_up_interrupted", reason="stopping")
                break
            try:
                report = self.run_round(cadence, fire, now)
            except Exception as exc:  # one broken cadence must not keep the others from running
                log_event("round_crashed", logging.ERROR, key=round_key(cadence, fire),
                          error=f"{type(exc).__name__}: {exc}")
                if not self.count_failure(cadence, fire, now, exc):
                    self.retry_due = True
                continue
            if report is not None:
                reports.append(report)
        if not any(not r.skipped for r in reports):
            # Nothing was recorded, so nothing was sent: messages a crash left in the outbox, or
            # temporary failures whose backoff is over, must not wait for the next cadence fire.
            self.retry_outbox()
        try:
            self.warn_calendar_gaps(now)
        except Exception as exc:  # e.g. the database went away: the next tick warns instead
            log_event("calendar_check_failed", logging.ERROR, error=f"{type(exc).__name__}: {exc}")
            self.retry_due = True
        return reports

    def retry_outbox(self) -> None:
        """Drain what is due in the outbox; a failure (database or transport down) is retried later."""
        try:
            self.deliver()
        except Exception as exc:
            log_event("outbox_send_failed", logging.ERROR, error=f"{type(exc).__name__}: {exc}")

    def run_due(self, cadence_id: str, now: dt.datetime) -> RoundReport | None:
        """The APScheduler job: run this cadence's latest fire ≤ now unless it already has a round."""
        with self.round_lock:
            rules = self.current()
            cadence = next((c for c in rules.cadences if c.id == cadence_id), None)
            if cadence is None:  # removed by a reload while the job was queued
                return None
            fire = self.latest_fire(cadence, now)
            if fire is None:
                return None
            report = self.run_round(cadence, fire, now)
            self.warn_calendar_gaps(now)
            return report

    def run_round(self, cadence: Cadence, fire: dt.datetime, now: dt.datetime) -> RoundReport | None:
        """Record the round for ``fire`` (evaluated at ``now``, see the module docstring), then send."""
        with self.round_lock:
            rules = self.current()
            key = round_key(cadence, fire)
            log_event("round_started", key=key, job=cadence.id, fire_time=fire, at=now)
            evaluator = Evaluator(rules.rule_set, rules.calendar)
            try:
                report = record_round(self.engine, rules.rule_set, now, key=key, job=cadence.id, name=cadence.name,
                                      groups=cadence.groups, evaluator=evaluator, started_at=now,
                                      companions=self.companions(cadence, fire, now))
            except RoundError as exc:
                log_event("round_failed", logging.ERROR, key=key, error=str(exc))
                self.count_failure(cadence, fire, now, exc)
                return None
            finally:
                evaluator.close()
            if report.skipped:
                log_event("round_skipped", key=key, reason="already_recorded")
                return report
            log_event("round_recorded", key=key, round_id=report.round_id, candidates=report.candidates,
                      notices=report.notices, messages=report.messages, warnings=len(report.warnings),
                      problems=len(report.problems), skipped_items=len(report.failures))
            self.deliver()
            return report

    def count_failure(self, cadence: Cadence, fire: dt.datetime, now: dt.datetime, exc: BaseException) -> bool:
        """Count a failed attempt at a round; True when it was given up (recorded as failed, admin told).

        Database errors are not counted: the database being away is not the round's fault, and the
        round commits whole once it is back. A failure that could not even be counted is retried.
        """
        if isinstance(exc, DBAPIError):
            return False
        key = round_key(cadence, fire)
        error = f"{type(exc).__name__}: {exc}"[:1000]
        try:
            with transaction(self.engine) as session:
                counter = session.get(Setting, f"round_failures:{key}")
                attempts = int(counter.value) + 1 if counter is not None else 1
                if counter is None:
                    session.add(Setting(key=f"round_failures:{key}", value="1", updated_at=now))
                else:
                    counter.value, counter.updated_at = str(attempts), now
                if attempts < MAX_ROUND_ATTEMPTS:
                    log_event("round_attempt_failed", logging.WARNING, key=key, attempts=attempts,
                              limit=MAX_ROUND_ATTEMPTS)
                    return False
                if session.scalar(select(Round.id).where(Round.key == key)) is None:
                    session.add(Round(key=key, job=cadence.id, at=now, started_at=now, finished_at=now,
                                      summary={"failed": True, "attempts": attempts, "error": error}))
        except Exception as failure:
            log_event("round_failure_not_counted", logging.ERROR, key=key, error=f"{type(failure).__name__}: {failure}")
            return False
        log_event("round_given_up", logging.ERROR, key=key, attempts=attempts,
                  message=f"轮次连续 {attempts} 次失败，已记录为失败，不再重试")
        body = (f"“{cadence.name}”轮次（{key}）连续 {attempts} 次未能完成，已记录为失败，不再自动重试，"
                f"本轮的通知未发送。\n\n最后一次的错误：{error}\n\n"
                f"请排查原因（可运行 duban check、duban evaluate --at 检查）；修正后可用 "
                f"duban evaluate --at … --send 补发。下一次节奏到点时照常运行。\n")
        try:
            self.notify_admin(f"round-failed:{key}", f"{cadence.name}轮次连续失败，已停止重试", body, now)
        except Exception as failure:  # the round is recorded as failed either way
            log_event("admin_mail_failed", logging.ERROR, reason=f"round-failed:{key}", error=str(failure))
        return True

    def companions(self, cadence: Cadence, fire: dt.datetime, now: dt.datetime) -> list[Companion]:
        """The other cadences whose latest fire is this same moment: their round is this one (one mail
        per unit per moment). A catch-up of an older fire takes no companion whose latest is later."""
        rules = self.current()
        found = []
        for other in rules.cadences:
            if other.id == cadence.id or other.id not in rules.schedules:
                continue
            if self.latest_fire(other, now) == fire:
                found.append(Companion(round_key(other, fire), other.id, other.name, other.groups))
        return found

    def deliver(self) -> None:
        outcome = self.send(self.engine, self.current().rule_set)
        ok = getattr(outcome, "ok", True)
        log_event("outbox_sent", logging.INFO if ok else logging.WARNING, summary=str(outcome).replace("\n", " | "))
        self.delivery_failed = self.delivery_failed or not ok
        self.last_delivery = outcome
        if not ok or any(report.claimed for _name, report in getattr(outcome, "reports", [])):
            self.deliveries = [*self.deliveries[-49:], outcome]

    # reload

    def check_reload(self, now: dt.datetime, *, force: bool = False) -> ReloadOutcome | None:
        """Reload when the watched files changed (or ``force``); None when nothing changed."""
        rules = self.current()
        seen = fingerprint(rules.rule_set)
        if not force and seen == rules.fingerprint and self._rejected is not None:
            self._rejected = None  # the bad change was undone: the files match the running rules again
            log_event("rules_restored", fingerprint=seen)
            return None
        if not force and seen in (rules.fingerprint, self._rejected):
            return None
        try:
            fresh = load_rules(self.directory)
        except RuleSetInvalid as invalid:
            return self._reject(invalid.errors, seen, now)
        with self.round_lock:
            self.rules = fresh
        self._rejected = None
        log_event("rules_reloaded", cadences=len(fresh.cadences), rules=len(fresh.rule_set.rules),
                  fingerprint=fresh.fingerprint, forced=force)
        return ReloadOutcome(applied=True)

    def _reject(self, errors: Sequence[RuleError], seen: str, now: dt.datetime) -> ReloadOutcome:
        lines = [str(e) for e in errors]
        for line in lines:
            log_event("rules_rejected_error", logging.ERROR, error=line)
        log_event("rules_rejected", logging.ERROR, errors=len(lines), fingerprint=seen,
                  message="规则修改未通过校验，继续使用上一版有效规则")
        outcome = ReloadOutcome(applied=False, errors=lines)
        if seen != self._rejected:
            body = ("规则目录 {directory} 的修改未通过校验，督办服务仍按上一版有效规则运行。\n"
                    "请按以下提示修改后保存，服务会自动重新加载：\n\n{errors}\n\n"
                    "（共 {count} 处错误；可先运行 duban check 检查。）\n").format(
                        directory=self.directory, errors="\n".join(lines), count=len(lines))
            outcome.admin_notified = self.notify_admin(
                f"reload:{seen}", "规则修改未生效：校验发现错误", body, now)
            self._rejected = seen
        return outcome

    # admin messages

    def notify_admin(self, reason: str, subject: str, body: str, now: dt.datetime,
                     *, setting_key: str | None = None) -> bool:
        """Enqueue a plain Chinese message to the admin (once per ``reason``) and send it."""
        settings = self.current().rule_set.settings
        if not settings.admin_email:
            log_event("admin_mail_skipped", logging.WARNING, reason=reason, why="programme.yaml 未设置 admin_email")
            return False
        try:
            message = build_email(
                idempotency_key=f"admin:{settings.programme}:{reason}", mail_from=mail_from(),
                to_address=settings.admin_email, to_name="规则管理员",
                subject=f"{settings.subject_prefix}{subject}", text=body, html=None, at=now,
            )
        except MessageError as exc:
            log_event("admin_mail_failed", logging.ERROR, reason=reason, error=str(exc))
            return False
        with transaction(self.engine) as session:
            if setting_key is not None:
                if session.get(Setting, setting_key) is not None:
                    return False
                session.add(Setting(key=setting_key, value=now.isoformat(), updated_at=now))
            queued = enqueue(session, [message], now=now)
        log_event("admin_mail_queued", reason=reason, queued=queued)
        if queued:
            self.deliver()
        return queued > 0

    def warn_calendar_gaps(self, now: dt.datetime) -> list[int]:
        """Warn once per year that has no holiday data (looked up, or within the look-ahead)."""
        calendar = self.current().calendar
        horizon = (now + CALENDAR_LOOKAHEAD).year
        # Deadlines in 2027 are looked up from 2023 on, but the State Council publishes a year's
        # holidays only in the late autumn before: warning earlier would be noise nobody can act on.
        years = {year for year in calendar.uncovered_years() if year <= horizon}
        years |= {n.year for n in calendar.notice_for({now.year, horizon})}
        warned = []
        with self.engine.connect() as conn:
            known = set(conn.scalars(select(Setting.key).where(Setting.key.like("calendar_warned:%"))))
        for notice in calendar.notice_for(years):
            key = f"calendar_warned:{notice.year}"
            if key in known:
                continue
            log_event("calendar_year_missing", logging.WARNING, year=notice.year, message=notice.message)
            body = (f"{notice.message}。\n\n在补充之前，{notice.year}年的节假日和调休按普通周末推算，"
                    "会商、调度等节奏和报送截止日可能落在实际放假日。\n")
            if not self.notify_admin(key, f"{notice.year}年节假日数据缺失", body, now, setting_key=key):
                with transaction(self.engine) as session:  # no admin address: still warn only once
                    if session.get(Setting, key) is None:
                        session.add(Setting(key=key, value=now.isoformat(), updated_at=now))
            warned.append(notice.year)
        return warned


# -- the APScheduler shell ------------------------------------------------------------------------------------


Clock = Callable[[], dt.datetime]


def shifted_clock(start: dt.datetime | None) -> Clock:
    """The wall clock, or one that starts at ``start`` and runs at real speed (``--at``)."""
    if start is None:
        return lambda: dt.datetime.now(SHANGHAI)
    origin = time.monotonic()
    return lambda: start + dt.timedelta(seconds=time.monotonic() - origin)


@dataclass
class Controls:
    """Set by signal handlers, read by the main loop."""

    stop: threading.Event = field(default_factory=threading.Event)
    reload: threading.Event = field(default_factory=threading.Event)


def _sync_jobs(scheduler: Any, service: Service, clock: Clock) -> None:
    rules = service.current()
    wanted = {c.id for c in rules.cadences}
    for job in scheduler.get_jobs():
        if job.id not in wanted:
            job.remove()
    for cadence in rules.cadences:
        scheduler.add_job(
            _job, trigger=ScheduleTrigger(rules.schedules[cadence.id]), args=(service, cadence.id, clock),
            id=cadence.id, name=cadence.name, replace_existing=True,
            coalesce=True, misfire_grace_time=None, max_instances=1,
        )
    for job in scheduler.get_jobs():
        log_event("job_scheduled", job=job.id, next_fire=job.next_run_time or "")


def _job(service: Service, cadence_id: str, clock: Clock) -> None:
    try:
        service.run_due(cadence_id, clock())
    except Exception as exc:  # a failed round must not stop the scheduler; the service loop retries it
        log_event("round_crashed", logging.ERROR, job=cadence_id, error=f"{type(exc).__name__}: {exc}")
        service.retry_due = True


def run_service(service: Service, *, clock: Clock, controls: Controls, lock: InstanceLock,
                poll_seconds: float = DEFAULT_POLL_SECONDS) -> int:
    """Catch up, then run the cadence jobs until ``controls.stop``; reload on change or ``controls.reload``."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler

    # One worker: rounds never overlap, and SIGTERM waits for at most one.
    scheduler = BackgroundScheduler(timezone=SHANGHAI, executors={"default": ThreadPoolExecutor(1)})
    scheduler.start(paused=True)  # jobs added now; fires during catch-up run after it (and find their round)
    _sync_jobs(scheduler, service, clock)
    reports = interruptible(lambda: service.tick(clock(), should_stop=controls.stop.is_set), controls.stop) or []
    log_event("catch_up_done", rounds=sum(1 for r in reports if not r.skipped))
    scheduler.resume()
    exit_code = 0
    paused = False
    next_retry = next_drain = time.monotonic() + RETRY_SECONDS
    try:
        while not controls.stop.wait(poll_seconds):
            if not lock.still_held():
                # The database restarted or the connection dropped: the lease went with it. Pause the
                # rounds until it is ours again; exit only if another instance took it meanwhile.
                if not paused:
                    log_event("lock_lost", logging.ERROR, message="数据库连接中断，数据库锁已失效：暂停轮次，等待数据库恢复")
                    scheduler.pause()
                    paused = True
                regained = _regain(lock)
                if regained is None:
                    continue
                if not regained:
                    log_event("lock_held", logging.ERROR, lock=lock.description,
                              message="数据库恢复后锁已被另一个督办服务实例持有，为免重复发送，本实例退出")
                    exit_code = EXIT_LOCK_HELD
                    break
                log_event("lock_regained", lock=lock.description, message="数据库已恢复，重新持有锁，继续运行")
                scheduler.resume()
                paused = False
                service.retry_due = True
                next_retry = 0.0
            now_monotonic = time.monotonic()
            if service.retry_due and now_monotonic >= next_retry:
                # A round crashed (database down, disk full …): catch up now instead of at the next fire.
                service.retry_due = False
                next_retry = next_drain = now_monotonic + RETRY_SECONDS
                try:
                    interruptible(lambda: service.tick(clock(), should_stop=controls.stop.is_set), controls.stop)
                except Exception as exc:
                    log_event("retry_failed", logging.ERROR, error=f"{type(exc).__name__}: {exc}")
                    service.retry_due = True
            elif now_monotonic >= next_drain:
                next_drain = now_monotonic + RETRY_SECONDS
                service.retry_outbox()  # temporary failures whose backoff is over, leases that ran out
            forced = controls.reload.is_set()
            controls.reload.clear()
            try:
                outcome = service.check_reload(clock(), force=forced)
            except Exception as exc:  # e.g. the admin mail about a bad reload could not be queued
                log_event("reload_failed", logging.ERROR, error=f"{type(exc).__name__}: {exc}")
                continue
            if outcome is not None and outcome.applied:
                _sync_jobs(scheduler, service, clock)
    finally:
        log_event("stopping", message="正在停止：等待当前轮次完成")
        scheduler.shutdown(wait=False)
        # A round running in the scheduler's worker gets the grace time, then is abandoned (rolled back).
        if not service.round_lock.acquire(timeout=stop_grace()):
            abandon()
        service.round_lock.release()
    log_event("stopped", exit_code=exit_code)
    return exit_code


def stop_grace() -> float:
    try:
        return max(0.0, float(os.environ.get("DUBAN_STOP_GRACE", STOP_GRACE_SECONDS)))
    except ValueError:
        return STOP_GRACE_SECONDS


_T = TypeVar("_T")


def interruptible(work: Callable[[], _T], stop: threading.Event) -> _T | None:
    """Run ``work`` (a round: the rule engine's C code, the database) on a worker thread.

    Python runs signal handlers only on the main thread, between bytecodes: while the main thread is
    inside a long C call nothing answers SIGTERM. Here the main thread only waits, so a SIGTERM is seen
    within a fraction of a second; the work then gets ``stop_grace()`` seconds to finish, after which
    the process ends without it (`abandon`). Returns the work's result (its exception is re-raised).
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # handed to the main thread
            outcome["error"] = exc

    worker = threading.Thread(target=target, name="duban-round", daemon=True)
    worker.start()
    while worker.is_alive():
        if stop.wait(0.2):
            worker.join(stop_grace())
            if worker.is_alive():
                abandon()
            break
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def abandon() -> None:
    """End the process now, leaving a round unfinished: its transaction is never committed."""
    log_event("stopped_mid_round", logging.WARNING,
              message="收到停止信号，当前轮次未在宽限时间内完成：已放弃（整体回滚，未发送），下次启动时重做")
    for handler in logging.getLogger("duban").handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(EXIT_ROUND_FAILED)


def _regain(lock: InstanceLock) -> bool | None:
    """Take the lost lease again: True if ours, False if another instance holds it, None if unreachable."""
    lock.release()
    try:
        return lock.try_acquire()
    except Exception as exc:  # the database is still down: try again at the next poll
        log_event("lock_retry", logging.WARNING, error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        return None


@contextlib.contextmanager
def held_lock(engine: Engine, *, wait: bool, stop: threading.Event) -> Iterator[InstanceLock]:
    lock = InstanceLock(engine)
    lock.acquire(wait=wait, stop=stop)
    log_event("lock_acquired", lock=lock.description, pid=os.getpid())
    try:
        yield lock
    finally:
        lock.release()
