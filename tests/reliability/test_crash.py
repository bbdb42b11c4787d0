"""kill -9 at random points: the sender mid-drain and the service mid-round, rounds of 1,000 notices.

After a restart every notice reaches the SMTP sink: none lost, and only messages that were in flight
when the process died (at most one per pooled connection) arrive twice, counted by Message-ID.
Kill points come from a seeded random generator (DUBAN_RELIABILITY_SEED), so a failure replays.

Between a kill and the restart the dead sender's lease (5 minutes) must run out before another
sender may take its rows over; the test moves the lease expiry into the past instead of waiting.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, update

from duban.app.rounds import record_round
from duban.app.service import load_rules
from duban.engine.evaluate import Evaluator
from duban.engine.schedule import SHANGHAI
from duban.store.db import make_engine, transaction
from duban.store.models import Delivery, Notice, Round

from .support import (
    BIG_ROUND_AT,
    BIG_UNITS,
    LUCHENG_RULES,
    SEED,
    FaultyHandler,
    assert_no_traceback,
    copy_database,
    duban,
    duban_env,
    smtp_server,
    spawn_duban,
)

POOL = 4  # DUBAN_SMTP_POOL: at most this many messages in flight at a kill
SENDER_ROUNDS, SENDER_KILLS_PER_ROUND = 2, 8
SERVICE_ROUNDS, SERVICE_KILLS_PER_ROUND = 3, 4
LONG_AGO = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def expire_leases(engine: Engine) -> int:
    """What five minutes of waiting would do: the dead sender's claims run out."""
    with transaction(engine) as session:
        result = session.execute(update(Delivery).where(Delivery.status == "sending").values(claimed_until=LONG_AGO))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def deliveries(engine: Engine) -> list[tuple[str, str]]:
    with transaction(engine) as session:
        return [(row.message_id, row.status) for row in session.execute(select(Delivery.message_id, Delivery.status))]


def arrivals(handler: FaultyHandler) -> Counter[str]:
    with handler.lock:
        return Counter(handler.ids)


def delivered_in_flight(engine: Engine, handler: FaultyHandler, before: Counter[str]) -> int:
    """Rows the dead process sent (the server has them since `before`) but had not marked sent."""
    now = arrivals(handler)
    return sum(1 for mid, status in deliveries(engine) if status != "sent" and now[mid] > before[mid])


class Killer:
    """Kills a process once the sink has accepted `threshold` messages, optionally a moment later."""

    def __init__(self) -> None:
        self.process: object = None
        self.threshold = 0
        self.delay = 0.0
        self.fired = threading.Event()

    def arm(self, pid: int, threshold: int, delay: float) -> None:
        self.pid, self.threshold, self.delay = pid, threshold, delay
        self.fired.clear()

    def __call__(self, count: int) -> None:
        if count < self.threshold or self.fired.is_set():
            return
        self.fired.set()
        if self.delay:
            threading.Timer(self.delay, os.kill, (self.pid, signal.SIGKILL)).start()
        else:
            os.kill(self.pid, signal.SIGKILL)  # inside DATA: this message is in flight


def record_big_round(engine: Engine, key: str, at: dt.datetime) -> int:
    rules = load_rules(LUCHENG_RULES)
    evaluator = Evaluator(rules.rule_set, rules.calendar)
    try:
        report = record_round(engine, rules.rule_set, at, key=key, job="reliability", evaluator=evaluator)
    finally:
        evaluator.close()
    return report.messages


@pytest.mark.slow
def test_crash_sender_killed_at_random_points_loses_nothing_and_repeats_only_messages_in_flight(
    big_programme_db: Path, tmp_path: Path, ledger
) -> None:
    rng = random.Random(SEED)
    path = copy_database(big_programme_db, tmp_path / "duban.db")
    engine = make_engine(str(path))
    handler, killer = FaultyHandler(), Killer()
    handler.on_accept = killer
    kills = in_flight_max = 0
    start = dt.datetime.fromisoformat(BIG_ROUND_AT).replace(tzinfo=SHANGHAI)
    with smtp_server(handler) as port:
        env = duban_env(str(path), DUBAN_TRANSPORT="smtp", DUBAN_SMTP_HOST="127.0.0.1",
                        DUBAN_SMTP_PORT=str(port), DUBAN_SMTP_POOL=str(POOL), DUBAN_SMTP_TIMEOUT="10")
        for round_no in range(SENDER_ROUNDS):
            # Seven days on, every overdue task is pressed again (repeat: 7d): another 1,000 notices.
            queued = record_big_round(engine, f"crash-sender-{round_no}", start + dt.timedelta(days=8 * round_no))
            # The 1,000 units' digests, and the working group's own summary of what was copied to it.
            assert BIG_UNITS <= queued <= BIG_UNITS + 1
            for left in range(SENDER_KILLS_PER_ROUND, 0, -1):
                # Spread the kills over what is still unsent, so every round takes all of them.
                unsent = sum(1 for _mid, status in deliveries(engine) if status != "sent")
                before = arrivals(handler)
                process = spawn_duban("send", env=env)
                killer.arm(process.pid, handler.total + rng.randint(1, max(1, unsent // (left + 1))),
                           rng.choice([0.0, rng.uniform(0.0, 0.05)]))
                _out, err = process.communicate(timeout=120)
                if process.returncode != -signal.SIGKILL:
                    assert process.returncode == 0, err
                    break
                kills += 1
                in_flight = delivered_in_flight(engine, handler, before)
                in_flight_max = max(in_flight_max, in_flight)
                assert in_flight <= POOL, f"kill {kills}: {in_flight} delivered but unmarked, pool is {POOL}"
                expire_leases(engine)
            killer.arm(0, 10**9, 0.0)
            expire_leases(engine)
            finished = duban("send", env=env)
            assert finished.returncode == 0, finished.stderr
            assert_no_traceback(finished.stdout, finished.stderr)

    rows = deliveries(engine)
    expected = {mid for mid, _status in rows}
    arrived = arrivals(handler)
    lost = len(expected - set(arrived))
    duplicated = sum(count - 1 for count in arrived.values() if count > 1)
    ledger("crash-sender", faults=kills, inputs=len(expected), lost=lost, duplicated=duplicated,
           note=f"sender: {kills} kills, at most {in_flight_max} message(s) in flight per kill (bound: pool {POOL})")
    engine.dispose()
    assert kills >= SENDER_ROUNDS * SENDER_KILLS_PER_ROUND - 2
    assert lost == 0
    assert set(arrived) == expected
    assert duplicated <= POOL * kills
    assert Counter(status for _mid, status in rows) == Counter({"sent": len(expected)})


@pytest.mark.slow
def test_crash_service_killed_mid_round_records_each_round_once_and_delivers_every_notice(
    big_programme_db: Path, tmp_path: Path, ledger
) -> None:
    rng = random.Random(SEED + 1)
    kills = duplicated = lost = inputs = 0
    # How long a whole `run --once` takes here: kill instants are drawn inside it, so the test
    # keeps killing mid-round however fast (or slow) the machine and the product are.
    calibration = copy_database(big_programme_db, tmp_path / "service-calibration.db")
    with smtp_server(FaultyHandler()) as port:
        started = time.monotonic()
        timed = duban("run", "--once", "--at", BIG_ROUND_AT,
                      env=duban_env(str(calibration), DUBAN_TRANSPORT="smtp", DUBAN_SMTP_HOST="127.0.0.1",
                                    DUBAN_SMTP_PORT=str(port), DUBAN_SMTP_POOL=str(POOL),
                                    DUBAN_RULES=str(LUCHENG_RULES.parent)))
        whole_round = time.monotonic() - started
    assert timed.returncode == 0, timed.stderr
    for round_no in range(SERVICE_ROUNDS):
        # A fresh database and sink per round: the same round key gives the same Message-IDs.
        handler, killer = FaultyHandler(), Killer()
        handler.on_accept = killer
        path = copy_database(big_programme_db, tmp_path / f"service-{round_no}.db")
        engine = make_engine(str(path))
        with smtp_server(handler) as port:
            env = duban_env(str(path), DUBAN_TRANSPORT="smtp", DUBAN_SMTP_HOST="127.0.0.1",
                            DUBAN_SMTP_PORT=str(port), DUBAN_SMTP_POOL=str(POOL), DUBAN_SMTP_TIMEOUT="10",
                            DUBAN_RULES=str(LUCHENG_RULES.parent))
            for attempt in range(SERVICE_KILLS_PER_ROUND):
                unsent = sum(1 for _mid, status in deliveries(engine) if status != "sent")
                with transaction(engine) as session:
                    recorded = session.scalar(select(func.count()).select_from(Round))
                if recorded == 5 and not unsent:
                    break
                before = arrivals(handler)
                process = spawn_duban("run", "--once", "--at", BIG_ROUND_AT, env=env)
                if attempt == 0 or not unsent:
                    # A random instant: starting, loading, evaluating, writing the round, or sending.
                    killer.arm(process.pid, 10**9, 0.0)
                    # Rounds already recorded are skipped on restart: draw inside what is left.
                    left = whole_round * (5 - (recorded or 0)) / 5
                    deadline = time.monotonic() + rng.uniform(0.02, 0.7) * left
                    while time.monotonic() < deadline and process.poll() is None:
                        time.sleep(0.01)
                    if process.poll() is None:
                        os.kill(process.pid, signal.SIGKILL)
                else:
                    # The round is recorded: the restart only sends, so kill it at a random message.
                    killer.arm(process.pid, handler.total + rng.randint(1, max(1, unsent // 2)),
                               rng.choice([0.0, rng.uniform(0.0, 0.05)]))
                _out, err = process.communicate(timeout=120)
                if process.returncode != -signal.SIGKILL:
                    assert process.returncode == 0, err
                    break
                kills += 1
                assert delivered_in_flight(engine, handler, before) <= POOL
                expire_leases(engine)
            expire_leases(engine)
            finished = duban("run", "--once", "--at", BIG_ROUND_AT, env=env)
            assert finished.returncode == 0, finished.stderr
            assert_no_traceback(finished.stdout, finished.stderr)

            with transaction(engine) as session:
                keys = list(session.scalars(select(Round.key)))
                notices = session.scalar(select(func.count()).select_from(Notice)) or 0
                unlinked = session.scalars(select(Notice.id).where(Notice.delivery_id.is_(None))).all()
            rows = deliveries(engine)
            engine.dispose()
            expected = {mid for mid, _status in rows}
            arrived = arrivals(handler)
            inputs += notices
            lost += len(expected - set(arrived)) + len(unlinked)
            duplicated += sum(count - 1 for count in arrived.values() if count > 1)
            assert len(keys) == len(set(keys)) == 5  # every due cadence once, none twice
            assert notices >= BIG_UNITS and not unlinked
            assert Counter(status for _mid, status in rows) == Counter({"sent": len(expected)})
            assert set(arrived) == expected
    ledger("crash-service", faults=kills, inputs=inputs, lost=lost, duplicated=duplicated,
           note=f"service: {kills} kills at random instants of `duban run --once`")
    assert kills >= 2 * SERVICE_ROUNDS
    assert lost == 0
    assert duplicated <= POOL * kills
