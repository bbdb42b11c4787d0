"""A sender killed mid-drain (SIGKILL, no clean-up) loses nothing: after a restart every message
arrives, and only the one in flight may arrive twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text

from duban.notifiers.message import OutgoingMessage, build_email
from duban.notifiers.outbox import drain, enqueue
from duban.notifiers.sink import SmtpSink
from duban.notifiers.transports.smtp import SmtpConfig, SmtpTransport
from duban.store.db import transaction
from duban.store.models import Delivery

ROOT = Path(__file__).resolve().parents[1]
MAIL_FROM = "工作专班 <zhuanban@lucheng.example.cn>"
TOTAL, KILL_AT = 30, 12


def database_url(engine: Engine) -> str:
    url = engine.url
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        url = url.update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


def batch(now: datetime) -> list[OutgoingMessage]:
    return [
        build_email(
            idempotency_key=f"kill|{n}",
            mail_from=MAIL_FROM,
            to_address=f"unit{n}@lucheng.example.cn",
            to_name=f"单位{n}",
            subject=f"第{n}号督办提醒",
            text="请于5个工作日内向专班报送整改措施。",
            html="<p>请于5个工作日内向专班报送整改措施。</p>",
            at=now,
        )
        for n in range(TOTAL)
    ]


@pytest.mark.slow
def test_a_sender_killed_mid_drain_loses_nothing_and_duplicates_at_most_the_message_in_flight(
    engine: Engine, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    messages = batch(now)
    with transaction(engine) as session:
        enqueue(session, messages, now=now - timedelta(seconds=1))

    killed = threading.Event()
    process: subprocess.Popen[bytes] | None = None

    def kill_when_enough_arrived(count: int) -> None:
        # Called inside the server before it answers 250: the sender dies with this one in flight.
        if count == KILL_AT and process is not None:
            os.kill(process.pid, signal.SIGKILL)
            killed.set()

    with SmtpSink() as sink:
        sink.handler.on_accept = kill_when_enough_arrived
        env = dict(
            os.environ,
            DUBAN_DB=database_url(engine),
            DUBAN_TRANSPORT="smtp",
            DUBAN_SMTP_HOST="127.0.0.1",
            DUBAN_SMTP_PORT=str(sink.port),
            DUBAN_SMTP_POOL="1",
            DUBAN_MAIL_FROM=MAIL_FROM,
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "duban", "send"], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        _out, err = process.communicate(timeout=120)
        assert killed.is_set(), err.decode()
        assert process.returncode == -signal.SIGKILL
        sink.handler.on_accept = None

        with transaction(engine) as session:
            states = Counter(session.scalars(select(Delivery.status)))
        assert states["sent"] == KILL_AT - 1 and states["sending"] >= 1

        # Restart after the dead sender's lease (5 minutes) has run out.
        later = now + timedelta(minutes=6)
        transport = SmtpTransport(SmtpConfig(port=sink.port, mail_from=MAIL_FROM, pool_size=1))
        report = asyncio.run(drain(engine, transport, now=lambda: later, worker="restarted"))
        assert report.sent == TOTAL - (KILL_AT - 1)

        arrivals = Counter(sink.handler.message_ids())
    assert set(arrivals) == {m.message_id for m in messages}
    duplicated = [mid for mid, count in arrivals.items() if count > 1]
    assert len(duplicated) <= 1
    assert sum(arrivals.values()) <= TOTAL + 1
    with transaction(engine) as session:
        assert Counter(session.scalars(select(Delivery.status))) == Counter({"sent": TOTAL})
