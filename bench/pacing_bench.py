"""Pacing against DingTalk's robot contract: a backlog drained on an injected clock.

Figures: calls made, 130101 answers, robot-time to drain, attempts spent, for duban's pacing and
for the same drain unpaced (what happened before: 20 accepted, then 130101 for 10 minutes).
Also SMTP at a configured rate against aiosmtpd (real time, small numbers).
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from duban.notifiers.message import build_dingtalk_message, build_email
from duban.notifiers.outbox import drain, enqueue
from duban.notifiers.render import DigestRenderer
from duban.notifiers.samples import ROUND_AT, sample_digest
from duban.notifiers.sink import DingTalkRobot, SmtpSink
from duban.notifiers.transports.dingtalk import DingTalkConfig, DingTalkTransport
from duban.notifiers.transports.smtp import SmtpConfig, SmtpTransport
from duban.paths import BUNDLED_TEMPLATES
from duban.store.db import create_all, make_engine, transaction
from duban.store.models import Delivery

BACKLOG = 100
TOKEN, SECRET = "bench-token", "bench-secret"


class Clock:
    def __init__(self) -> None:
        self.now = ROUND_AT + timedelta(seconds=1)

    def __call__(self):  # type: ignore[no-untyped-def]
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def dingtalk_backlog(rate: int, folder: Path) -> str:
    engine = make_engine(str(folder / f"dingtalk-{rate}.db"))
    create_all(engine)
    digest = sample_digest()
    base = build_dingtalk_message(digest, DigestRenderer(BUNDLED_TEMPLATES).render(digest))
    with transaction(engine) as session:
        enqueue(session, [dataclasses.replace(base, idempotency_key=f"b{n}", message_id=f"<{n}@b>")
                          for n in range(BACKLOG)], now=ROUND_AT)
    clock = Clock()
    start = clock.now
    with DingTalkRobot(TOKEN, SECRET, clock=lambda: clock.now.timestamp()) as robot:
        transport = DingTalkTransport(DingTalkConfig(webhook=robot.url, secret=SECRET, rate=rate),
                                      clock_ms=lambda: int(clock.now.timestamp() * 1000))
        rounds = 0
        while rounds < 40:  # a drain every 30 s of robot time, like the service, until all are sent
            rounds += 1
            asyncio.run(drain(engine, transport, now=clock, worker="bench", sleep=clock.sleep))
            with engine.connect() as conn:
                left = conn.scalar(select(func.count()).select_from(Delivery).where(Delivery.status != "sent"))
                attempts = conn.scalar(select(func.sum(Delivery.attempts)))
            if not left:
                break
            clock.now += timedelta(seconds=30)
        minutes = (clock.now - start).total_seconds() / 60
        return (f"{'paced ' + str(rate) + '/min' if rate else 'unpaced'}: backlog {BACKLOG}, {robot.calls} calls, "
                f"{robot.throttled}×130101, {len(robot.received)} delivered, {attempts} attempts, "
                f"{minutes:.1f} min of robot time, {left} left")


def smtp_rate(folder: Path, rate: int = 30, count: int = 100) -> str:
    engine = make_engine(str(folder / "smtp.db"))
    create_all(engine)
    messages = [build_email(idempotency_key=f"s{n}", mail_from="专班 <zb@example.org>", to_address="a@example.org",
                            to_name="区发改局", subject=f"第{n}号", text="x", html=None, at=ROUND_AT)
                for n in range(count)]
    with transaction(engine) as session:
        enqueue(session, messages, now=ROUND_AT)
    clock = Clock()
    start = clock.now
    with SmtpSink() as sink:
        began = time.monotonic()
        report = asyncio.run(drain(engine, SmtpTransport(SmtpConfig(port=sink.port, rate=rate, pool_size=2)),
                                   now=clock, worker="bench", sleep=clock.sleep))
        elapsed = time.monotonic() - began
        sessions = len(sink.handler.sessions)
    minutes = (clock.now - start).total_seconds() / 60
    return (f"smtp at {rate}/min over 2 connections: {report.sent} of {count} sent, {minutes:.1f} min of clock "
            f"(expected {(count - 1) // rate} windows), {sessions} connections, {elapsed:.1f} s real")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(dingtalk_backlog(20, folder), flush=True)
        print(dingtalk_backlog(0, folder), flush=True)
        print(smtp_rate(folder), flush=True)


if __name__ == "__main__":
    main()
