"""Database faults: SQLite written by an import and a round at once (and locked past the timeout),
and PostgreSQL restarted while the service is in the middle of a round.

Either both writers complete, or one says in Chinese that the database was busy and wrote nothing;
a round commits entirely or not at all, and a retry completes it; the service survives the restart.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text

from duban.store.db import make_engine, transaction
from duban.store.importer import import_paths
from duban.store.models import Delivery, ImportBatch, Notice, Round

from .support import (
    LUCHENG_EXAMPLE,
    ROOT,
    RULES,
    SEED,
    assert_no_traceback,
    database_url,
    duban,
    duban_env,
    skip_area,
    spawn_duban,
    store_fingerprint,
)

ROUND_TIMES = ["2023-07-15T10:00", "2023-07-24T10:00", "2023-08-01T10:00"]


def changed_figures(folder: Path, bump: float) -> Path:
    """The example's monthly figures, each revised by `bump`: an import that really writes."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = (LUCHENG_EXAMPLE / "observations.csv").read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], lines[1:]
    value_at = header.split(",").index("value")
    revised = []
    for row in rows:
        cells = row.split(",")
        cells[value_at] = f"{float(cells[value_at]) + bump:g}"
        revised.append(",".join(cells))
    (folder / "observations.csv").write_text("\n".join([header, *revised]) + "\n", encoding="utf-8")
    return folder


def consistent(engine: Engine) -> None:
    """Every recorded round is whole: finished, and its notices and messages all present."""
    with transaction(engine) as session:
        for round_row in session.scalars(select(Round)):
            assert round_row.finished_at is not None, round_row.key
            notices = session.scalar(select(func.count()).select_from(Notice).where(Notice.round_id == round_row.id))
            messages = session.scalar(select(func.count()).select_from(Delivery).where(Delivery.round_id == round_row.id))
            if "merged_into" in round_row.summary:  # a cadence due at the same moment: sent in the other's digest
                assert notices == messages == 0, round_row.key
                continue
            assert notices == round_row.summary["notices"], round_row.key
            assert messages == round_row.summary["messages"], round_row.key


@pytest.fixture
def lucheng_file(sqlite_engine: Engine, tmp_path: Path) -> Path:
    report = import_paths(sqlite_engine, [LUCHENG_EXAMPLE], now=dt.datetime(2023, 7, 1, tzinfo=dt.UTC),
                          imported_by="reliability")
    assert report.ok
    database = sqlite_engine.url.database
    assert database is not None
    return Path(database)


def test_sqlite_an_import_and_a_round_at_once_both_complete(
    lucheng_file: Path, sqlite_engine: Engine, tmp_path: Path, ledger
) -> None:
    rng = random.Random(SEED + 2)
    env = duban_env(str(lucheng_file), DUBAN_TRANSPORT="file", DUBAN_OUTBOX_DIR=str(tmp_path / "outbox"),
                    DUBAN_RULES=str(RULES))
    for attempt, at in enumerate(ROUND_TIMES):
        figures = changed_figures(tmp_path / f"figures-{attempt}", bump=attempt + 1)
        # Every figure moves by the same amount, so small ones jump: the 审核 query is answered with a note.
        importer = spawn_duban("import", str(figures), "--note", "可靠性测试：全部数据统一修订", env=env)
        time.sleep(rng.uniform(0.0, 0.4))  # the two start at a random offset
        runner = spawn_duban("run", "--once", "--at", at, env=env)
        outputs = [*importer.communicate(timeout=120), *runner.communicate(timeout=120)]
        assert_no_traceback(*outputs)
        assert importer.returncode == 0 and runner.returncode == 0, outputs
    ledger("sqlite", faults=len(ROUND_TIMES), inputs=2 * len(ROUND_TIMES))
    with transaction(sqlite_engine) as session:
        assert session.scalar(select(func.count()).select_from(ImportBatch)) == 1 + len(ROUND_TIMES)
        assert session.scalar(select(func.count()).select_from(Round)) >= len(ROUND_TIMES)
    consistent(sqlite_engine)


def test_sqlite_a_write_lock_held_past_the_timeout_is_a_chinese_error_and_nothing_is_half_written(
    lucheng_file: Path, sqlite_engine: Engine, tmp_path: Path, ledger
) -> None:
    env = duban_env(str(lucheng_file), DUBAN_TRANSPORT="file", DUBAN_OUTBOX_DIR=str(tmp_path / "outbox"),
                    DUBAN_RULES=str(RULES), DUBAN_SQLITE_TIMEOUT="1")
    before = store_fingerprint(sqlite_engine)
    sqlite_engine.dispose()
    holder = sqlite3.connect(lucheng_file, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another writer (a stuck tool, a backup) keeps the lock for a while
    release = threading.Timer(6.0, holder.rollback)
    release.start()
    try:
        importer = spawn_duban("import", str(changed_figures(tmp_path / "figures", bump=5)), env=env)
        runner = spawn_duban("run", "--once", "--at", ROUND_TIMES[0], env=env)
        imported, ran = importer.communicate(timeout=60), runner.communicate(timeout=60)
    finally:
        release.join()
        holder.close()
    assert_no_traceback(*imported, *ran)
    assert importer.returncode == 1 and "正被另一个进程写入" in imported[1] and "未写入任何数据" in imported[1]
    assert runner.returncode != 0
    assert "正被另一个进程写入" in ran[1] or "已整体回滚" in ran[1], ran[1]
    assert store_fingerprint(sqlite_engine) == before  # neither wrote half of anything

    retried = [duban("import", str(tmp_path / "figures"), env=env), duban("run", "--once", "--at", ROUND_TIMES[0], env=env)]
    assert [r.returncode for r in retried] == [0, 0], [r.stderr for r in retried]
    ledger("sqlite", faults=2, inputs=4)
    with transaction(sqlite_engine) as session:
        assert session.scalar(select(func.count()).select_from(Round)) == 5
    consistent(sqlite_engine)


# -- PostgreSQL restarted in the middle of a round ----------------------------------------------------------


def _cluster() -> tuple[str, str] | None:
    if shutil.which("pg_ctlcluster") is None or shutil.which("pg_lsclusters") is None or os.geteuid() != 0:
        return None
    listed = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout.split()
    return (listed[0], listed[1]) if len(listed) >= 2 else None


def _waiting_on_a_lock(admin: Engine) -> bool:
    with admin.connect() as conn:
        return bool(conn.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE 'INSERT INTO rounds%'")))


@pytest.mark.postgres
def test_postgresql_restarted_during_a_round_the_round_commits_whole_and_the_service_survives(
    pg_engine: Engine, tmp_path: Path, ledger
) -> None:
    cluster = _cluster()
    if cluster is None:
        skip_area("postgresql", "no local PostgreSQL cluster this process may restart (needs root and pg_ctlcluster)")
    assert cluster is not None
    report = import_paths(pg_engine, [LUCHENG_EXAMPLE], now=dt.datetime(2023, 7, 1, tzinfo=dt.UTC),
                          imported_by="reliability")
    assert report.ok
    url = database_url(pg_engine)
    env = duban_env(url, DUBAN_TRANSPORT="file", DUBAN_OUTBOX_DIR=str(tmp_path / "outbox"),
                    DUBAN_RULES=str(RULES))
    holder = make_engine(url)
    blocking = holder.connect()
    blocking.begin()
    blocking.execute(text("LOCK TABLE rounds IN SHARE MODE"))  # the round's INSERT waits: mid-round
    log = (tmp_path / "service.log").open("w")
    service = subprocess.Popen([sys.executable, "-m", "duban", "run", "--at", ROUND_TIMES[0], "--poll", "0.5"],
                               cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not _waiting_on_a_lock(pg_engine):
            assert service.poll() is None and time.monotonic() < deadline, (tmp_path / "service.log").read_text()
            time.sleep(0.2)
        with transaction(pg_engine) as session:
            assert session.scalar(select(func.count()).select_from(Round)) == 0
        restarted = subprocess.run(["pg_ctlcluster", cluster[0], cluster[1], "restart"], capture_output=True,
                                   text=True, timeout=120)
        assert restarted.returncode == 0, restarted.stderr
        blocking.invalidate()
        holder.dispose()
        pg_engine.dispose()
        deadline = time.monotonic() + 90
        while True:
            try:
                with transaction(pg_engine) as session:
                    if session.scalar(select(func.count()).select_from(Round)) == 5:
                        break
            except Exception:  # the server is still starting
                pass
            assert service.poll() is None, (tmp_path / "service.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "service.log").read_text()
            time.sleep(0.5)
        assert service.poll() is None  # still running after the restart
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=60) == 0
    finally:
        if service.poll() is None:
            service.kill()
        log.close()
        # Never leave the machine's PostgreSQL down (a restart that timed out on a loaded machine did):
        # every later test, and other sessions' CI, depend on it.
        if subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"], capture_output=True).returncode != 0:
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", cluster[0], cluster[1], "start"],
                           capture_output=True, timeout=120)
    output = (tmp_path / "service.log").read_text()
    ledger("postgresql", faults=1, inputs=5, lost=0, duplicated=0)
    assert_no_traceback(output)
    assert "event=round_crashed" in output and "event=lock_regained" in output
    consistent(pg_engine)
