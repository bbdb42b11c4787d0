"""The outbox: idempotent enqueue, drains that lose nothing and never double-send, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from duban.notifiers.message import OutgoingMessage, build_email, build_email_messages
from duban.notifiers.outbox import backoff, drain, enqueue, outbox_status
from duban.notifiers.render import DigestRenderer
from duban.notifiers.samples import ROUND_AT, sample_digest
from duban.notifiers.service import status_lines
from duban.notifiers.sink import SmtpSink
from duban.notifiers.transports.smtp import SmtpConfig, SmtpTransport
from duban.store.db import transaction
from duban.store.models import Delivery

TEMPLATES = Path(__file__).resolve().parents[1] / "rules" / "templates"
MAIL_FROM = "工作专班 <zhuanban@lucheng.example.cn>"
ADMIN = "admin@lucheng.example.cn"


class Clock:
    def __init__(self, start: datetime = ROUND_AT) -> None:
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


def messages(count: int, prefix: str = "m") -> list[OutgoingMessage]:
    return [
        build_email(
            idempotency_key=f"{prefix}|{n}",
            mail_from=MAIL_FROM,
            to_address=f"unit{n}@lucheng.example.cn",
            to_name=f"单位{n}",
            subject=f"第{n}号督办提醒",
            text="请于5个工作日内向专班报送整改措施。",
            html=None,
            at=ROUND_AT,
            recipient_unit=f"u{n}",
        )
        for n in range(count)
    ]


def smtp(port: int, pool_size: int = 2) -> SmtpTransport:
    return SmtpTransport(SmtpConfig(port=port, mail_from=MAIL_FROM, pool_size=pool_size, timeout=3.0))


def statuses(engine: Engine) -> Counter[str]:
    with transaction(engine) as session:
        return Counter(session.scalars(select(Delivery.status)))


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as server:
        yield server


def test_a_unit_with_three_lagging_items_receives_one_email_listing_all_three(
    engine: Engine, sink: SmtpSink
) -> None:
    digest = sample_digest()
    rendered = DigestRenderer(TEMPLATES).render(digest)
    clock = Clock()
    with transaction(engine) as session:
        enqueue(session, build_email_messages(digest, rendered, mail_from=MAIL_FROM), now=clock())
    report = asyncio.run(drain(engine, smtp(sink.port), now=clock, worker="w1"))
    assert report.sent == 1
    [received] = sink.handler.messages()
    assert str(received["To"]) == "区发改局 <fgj@lucheng.example.cn>"
    body = received.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    for item in digest.items:
        assert item.title in text


def test_enqueueing_the_same_messages_twice_delivers_nothing_the_second_time(
    engine: Engine, sink: SmtpSink
) -> None:
    clock = Clock()
    batch = messages(5)
    with transaction(engine) as session:
        assert enqueue(session, batch + batch[:2], now=clock()) == 5
    assert asyncio.run(drain(engine, smtp(sink.port), now=clock, worker="w1")).sent == 5
    with transaction(engine) as session:
        assert enqueue(session, batch, now=clock()) == 0
    assert asyncio.run(drain(engine, smtp(sink.port), now=clock, worker="w1")).sent == 0
    assert sink.handler.count == 5


def test_with_the_server_down_nothing_is_lost_and_everything_arrives_when_it_returns(engine: Engine) -> None:
    clock = Clock()
    batch = messages(6)
    with transaction(engine) as session:
        enqueue(session, batch, now=clock())
    server = SmtpSink()  # not started: connection refused
    report = asyncio.run(drain(engine, smtp(server.port), now=clock, worker="w1"))
    assert (report.sent, report.retried, report.failed) == (0, 6, 0)
    with transaction(engine) as session:
        rows = session.scalars(select(Delivery)).all()
        assert {row.status for row in rows} == {"pending"}
        assert {row.next_attempt_at for row in rows} == {clock() + timedelta(minutes=1)}
        assert all("无法连接邮件服务器" in row.last_error for row in rows)

    # Still down a minute later: the second failure waits twice as long.
    clock.advance(timedelta(minutes=1))
    asyncio.run(drain(engine, smtp(server.port), now=clock, worker="w1"))
    with transaction(engine) as session:
        assert set(session.scalars(select(Delivery.next_attempt_at))) == {clock() + timedelta(minutes=2)}

    server.start()
    try:
        clock.advance(timedelta(minutes=1))
        assert asyncio.run(drain(engine, smtp(server.port), now=clock, worker="w1")).sent == 0  # not due yet
        clock.advance(timedelta(minutes=1))
        assert asyncio.run(drain(engine, smtp(server.port), now=clock, worker="w1")).sent == 6
        assert sorted(server.handler.message_ids()) == sorted(m.message_id for m in batch)
    finally:
        server.stop()
    assert statuses(engine) == Counter({"sent": 6})


def test_a_4xx_is_retried_and_a_5xx_fails_with_one_admin_report(engine: Engine, sink: SmtpSink) -> None:
    clock = Clock()
    batch = messages(4)
    sink.handler.rcpt_replies["unit0@lucheng.example.cn"] = "550 5.1.1 no such user"
    sink.handler.rcpt_replies["unit1@lucheng.example.cn"] = "550 5.1.1 no such user"
    sink.handler.rcpt_replies["unit2@lucheng.example.cn"] = "452 4.2.2 mailbox full"
    with transaction(engine) as session:
        enqueue(session, batch, now=clock())
    report = asyncio.run(drain(engine, smtp(sink.port), now=clock, worker="w1", admin_address=ADMIN))
    assert (report.sent, report.retried, report.failed) == (1, 1, 2)  # unit3; the admin report apart
    assert report.admin_report_key is not None and report.admin_report == "sent"
    [admin_mail] = [m for m in sink.handler.messages() if str(m["To"]).endswith(ADMIN + ">")]
    body = admin_mail.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "2封未能送达" in str(admin_mail["Subject"])
    assert "unit0@lucheng.example.cn" in text and "unit1@lucheng.example.cn" in text
    assert "unit2@lucheng.example.cn" not in text  # only failures, not retries
    with transaction(engine) as session:
        by_address = {row.address: row for row in session.scalars(select(Delivery))}
    assert by_address["unit0@lucheng.example.cn"].status == "failed"
    assert "550" in by_address["unit0@lucheng.example.cn"].last_error
    assert by_address["unit2@lucheng.example.cn"].status == "pending"
    assert "452" in by_address["unit2@lucheng.example.cn"].last_error

    # The failed rows are never sent again; the 4xx one is, once its backoff has passed.
    sink.handler.rcpt_replies.clear()
    clock.advance(timedelta(minutes=5))
    again = asyncio.run(drain(engine, smtp(sink.port), now=clock, worker="w1", admin_address=ADMIN))
    assert (again.sent, again.failed, again.admin_report_key) == (1, 0, None)


def test_after_max_attempts_temporary_failures_become_failed(engine: Engine, sink: SmtpSink) -> None:
    clock = Clock()
    sink.handler.data_reply = lambda _content: "451 4.3.0 try later"
    with transaction(engine) as session:
        enqueue(session, messages(1), now=clock())
    for _ in range(3):
        asyncio.run(drain(engine, smtp(sink.port), now=clock, worker="w1", max_attempts=3, admin_address=ADMIN))
        clock.advance(timedelta(hours=1))
    with transaction(engine) as session:
        row = session.scalars(select(Delivery).where(Delivery.recipient_unit == "u0")).one()
    assert (row.status, row.attempts) == ("failed", 3)
    assert "已尝试3次" in row.last_error


def test_an_admin_report_that_cannot_be_delivered_does_not_report_itself(engine: Engine, sink: SmtpSink) -> None:
    clock = Clock()
    sink.handler.data_reply = lambda _content: "554 5.7.1 rejected"
    with transaction(engine) as session:
        enqueue(session, messages(1), now=clock())
    report = asyncio.run(drain(engine, smtp(sink.port), now=clock, worker="w1", admin_address=ADMIN))
    assert report.admin_report_key is not None
    clock.advance(timedelta(hours=1))
    later = asyncio.run(drain(engine, smtp(sink.port), now=clock, worker="w1", admin_address=ADMIN))
    assert later.claimed == 0 and later.admin_report_key is None
    assert statuses(engine) == Counter({"failed": 2})


def test_two_drains_running_at_once_never_send_the_same_row(engine: Engine, sink: SmtpSink) -> None:
    clock = Clock()
    batch = messages(120)
    with transaction(engine) as session:
        enqueue(session, batch, now=clock())
    reports = {}

    def run(worker: str) -> None:
        reports[worker] = asyncio.run(drain(engine, smtp(sink.port, pool_size=3), now=clock, worker=worker))

    threads = [threading.Thread(target=run, args=(f"w{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    ids = Counter(sink.handler.message_ids())
    assert len(ids) == 120 and set(ids.values()) == {1}
    assert sum(r.sent for r in reports.values()) == 120
    assert statuses(engine) == Counter({"sent": 120})


def test_a_crashed_senders_lease_expires_and_its_rows_are_sent_by_another(engine: Engine, sink: SmtpSink) -> None:
    clock = Clock()
    with transaction(engine) as session:
        enqueue(session, messages(3), now=clock())
        # A sender claimed these rows and died before sending.
        for row in session.scalars(select(Delivery)):
            row.status, row.claimed_by, row.claimed_until = "sending", "dead", clock() + timedelta(minutes=5)
    assert asyncio.run(drain(engine, smtp(sink.port), now=clock, worker="w1")).claimed == 0
    clock.advance(timedelta(minutes=6))
    assert asyncio.run(drain(engine, smtp(sink.port), now=clock, worker="w1")).sent == 3


def test_limit_sends_at_most_that_many(engine: Engine, sink: SmtpSink) -> None:
    clock = Clock()
    with transaction(engine) as session:
        enqueue(session, messages(10), now=clock())
    assert asyncio.run(drain(engine, smtp(sink.port), now=clock, worker="w1", limit=4)).sent == 4
    assert statuses(engine) == Counter({"sent": 4, "pending": 6})


def test_backoff_doubles_from_one_minute_and_is_capped() -> None:
    assert [backoff(n) for n in (1, 2, 3)] == [timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4)]
    assert backoff(40) == timedelta(hours=6)


def test_outbox_status_lists_failed_and_pending_rows_with_their_errors_in_chinese(
    engine: Engine, sink: SmtpSink
) -> None:
    clock = Clock()
    sink.handler.rcpt_replies["unit0@lucheng.example.cn"] = "550 5.1.1 no such user"
    sink.handler.rcpt_replies["unit1@lucheng.example.cn"] = "421 4.7.0 slow down"
    with transaction(engine) as session:
        enqueue(session, messages(3), now=clock())
    asyncio.run(drain(engine, smtp(sink.port, pool_size=1), now=clock, worker="w1"))
    with transaction(engine) as session:
        status = outbox_status(session)
    assert status.counts == {"failed": 1, "pending": 1, "sent": 1}
    assert [row.status for row in status.rows] == ["failed", "pending"]
    text = "\n".join(status_lines(status))
    assert text.startswith("发件箱：待发送1封，发送中0封，发送失败1封，已发送1封")
    assert "【发送失败】" in text and "550 5.1.1 no such user" in text
    assert "【待发送】" in text and "下次发送：2023年7月5日 09:01" in text
