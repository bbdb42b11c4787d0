"""SMTP faults through the real path (outbox drain → aiosmtplib → a server on 127.0.0.1).

Temporary faults (server down, too slow to answer, 4xx, the connection dropped inside DATA) are
retried with exponential backoff and each message finally arrives once. Permanent faults (5xx)
are recorded as failed, reported to the admin once, and never tried again; a temporary fault that
never clears stops after the attempt limit and is reported the same way.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine, select

from duban.notifiers.message import OutgoingMessage, build_email
from duban.notifiers.outbox import DrainReport, backoff, drain, enqueue
from duban.notifiers.sink import free_port
from duban.notifiers.transports.smtp import SmtpConfig, SmtpTransport
from duban.store.db import transaction
from duban.store.models import Delivery

from .support import ADMIN, MAIL_FROM, FaultyHandler, dropping_server, smtp_server

T0 = dt.datetime(2023, 7, 17, 1, 0, tzinfo=dt.UTC)  # Monday 09:00 in Shanghai
TIMEOUT = 0.5  # the client's SMTP timeout; a slow server stalls for longer
STALL = 1.2


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


def notices(count: int, prefix: str, address: str | None = None) -> list[OutgoingMessage]:
    return [
        build_email(
            idempotency_key=f"{prefix}|{n}", mail_from=MAIL_FROM,
            to_address=address or f"unit{n}@lucheng.example.org", to_name=f"第{n}责任单位",
            subject=f"【督办】第{n}项重点任务逾期提醒", text="请于5个工作日内报送整改措施。",
            html="<p>请于5个工作日内报送整改措施。</p>", at=T0, recipient_unit=f"u{n}",
        )
        for n in range(count)
    ]


def queue(engine: Engine, messages: list[OutgoingMessage], clock: Clock) -> None:
    with transaction(engine) as session:
        enqueue(session, messages, now=clock())


def drain_once(engine: Engine, port: int, clock: Clock, *, max_attempts: int = 8) -> DrainReport:
    transport = SmtpTransport(SmtpConfig(host="127.0.0.1", port=port, mail_from=MAIL_FROM, pool_size=2,
                                         timeout=TIMEOUT))
    return asyncio.run(drain(engine, transport, now=clock, worker="reliability", max_attempts=max_attempts,
                             admin_address=ADMIN, mail_from=MAIL_FROM))


def rows(engine: Engine) -> list[Delivery]:
    with transaction(engine) as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.id)))


@contextmanager
def fault(kind: str, port: int, handler: FaultyHandler) -> Iterator[None]:
    """The server on `port` misbehaves in one way until the block ends."""
    if kind == "down":
        yield  # nothing listens on the port
    elif kind == "dropped-in-data":
        with dropping_server(port) as server:
            yield
        assert server.drops > 0
    else:
        if kind == "slow-rcpt":
            handler.stall_rcpt = STALL
        elif kind == "slow-data":
            handler.stall_data = STALL
        elif kind == "4xx":
            handler.rcpt_replies = {f"unit{n}@lucheng.example.org": "450 4.2.1 mailbox busy" for n in range(0, 99, 2)}
            handler.data_reply = lambda _content, _rcpt: "451 4.3.0 local error in processing, try later"
        with smtp_server(handler, port):
            yield
        handler.stall_rcpt = handler.stall_data = 0.0
        handler.rcpt_replies, handler.data_reply = {}, None


@pytest.mark.parametrize("kind", ["down", "slow-rcpt", "slow-data", "4xx", "dropped-in-data"])
def test_smtp_temporary_fault_is_retried_with_backoff_and_each_notice_arrives_once(
    engine: Engine, kind: str, ledger
) -> None:
    clock, port, handler = Clock(), free_port(), FaultyHandler()
    messages = notices(4, f"temporary-{kind}")
    queue(engine, messages, clock)
    faults = 0
    with fault(kind, port, handler):
        first = drain_once(engine, port, clock)
        assert (first.sent, first.retried, first.failed) == (0, 4, 0)
        for row in rows(engine):
            assert (row.status, row.attempts) == ("pending", 1)
            assert row.next_attempt_at == T0 + backoff(1) == T0 + dt.timedelta(minutes=1)
            assert row.last_error and ("稍后重试" in row.last_error or "无法连接邮件服务器" in row.last_error)
        clock.now = T0 + dt.timedelta(seconds=30)
        assert drain_once(engine, port, clock).claimed == 0  # the backoff is respected
        clock.now = T0 + dt.timedelta(minutes=1)
        second = drain_once(engine, port, clock)
        assert second.retried == 4
        assert {row.next_attempt_at for row in rows(engine)} == {clock.now + dt.timedelta(minutes=2)}
        faults = first.retried + second.retried
    assert handler.total == 0  # nothing slipped through while the fault lasted

    with smtp_server(handler, port):
        clock.now = T0 + dt.timedelta(minutes=3)
        last = drain_once(engine, port, clock)
    assert last.sent == 4 and not last.failures
    ids = {m.message_id for m in messages}
    lost = len(ids - set(handler.ids))
    duplicated = sum(count - 1 for count in handler.ids.values())
    ledger("smtp", faults=faults, inputs=len(messages), lost=lost, duplicated=duplicated)
    assert lost == 0 and duplicated == 0
    assert [(row.status, row.attempts) for row in rows(engine) if row.address != ADMIN] == [("sent", 3)] * 4
    # No notice failed; the server's problem (down, timing out …) is reported to the admin once,
    # however many drains met it, and reaches them once the server is back. A mailbox's 4xx is the
    # message's own temporary trouble, not the server's: nothing to report.
    assert handler.recipients[ADMIN] == (0 if kind == "4xx" else 1)


def _admin_report_text(handler: FaultyHandler) -> str:
    [raw] = [content for content in handler.raw.values() if ADMIN.encode() in content]
    message = email.message_from_bytes(raw, policy=email.policy.default)
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def test_smtp_permanent_5xx_is_failed_reported_to_the_admin_once_and_never_retried(
    engine: Engine, ledger
) -> None:
    clock, handler = Clock(), FaultyHandler()
    handler.keep_raw = True
    handler.rcpt_replies = {"gone@lucheng.example.org": "550 5.1.1 no such user"}
    handler.data_reply = lambda _c, rcpt: "554 5.6.0 message refused" if rcpt == "full@lucheng.example.org" else None
    good = notices(3, "permanent-good")
    bad = notices(1, "permanent-gone", "gone@lucheng.example.org") + notices(1, "permanent-full", "full@lucheng.example.org")
    queue(engine, good + bad, clock)
    with smtp_server(handler) as port:
        report = drain_once(engine, port, clock)
        assert (report.sent, report.failed, report.retried) == (3, 2, 0)
        assert report.admin_report == "sent" and report.admin_reports_sent == 1
        assert handler.recipients[ADMIN] == 1
        text = _admin_report_text(handler)
        for day in (1, 7, 30):  # later drains never touch a failed row again
            clock.now = T0 + dt.timedelta(days=day)
            assert drain_once(engine, port, clock).claimed == 0
    failed = [row for row in rows(engine) if row.status == "failed"]
    assert sorted(row.address for row in failed) == ["full@lucheng.example.org", "gone@lucheng.example.org"]
    assert all(row.attempts == 1 and "永久错误，不再重试" in row.last_error for row in failed)
    assert "有2封未能送达" in text and "gone@lucheng.example.org" in text and "full@lucheng.example.org" in text
    assert handler.recipients["gone@lucheng.example.org"] == handler.recipients["full@lucheng.example.org"] == 0
    assert handler.recipients[ADMIN] == 1  # reported once, not at every drain
    ledger("smtp", faults=handler.faults, inputs=len(good) + len(bad),
           lost=len({m.message_id for m in good} - set(handler.ids)),
           duplicated=sum(count - 1 for count in handler.ids.values()))


def test_smtp_a_temporary_fault_that_never_clears_stops_after_the_attempt_limit_and_is_reported(
    engine: Engine, ledger
) -> None:
    clock, handler = Clock(), FaultyHandler()
    handler.data_reply = lambda _c, rcpt: "452 4.2.2 mailbox full" if rcpt == "busy@lucheng.example.org" else None
    queue(engine, notices(1, "forever", "busy@lucheng.example.org"), clock)
    attempts = 0
    with smtp_server(handler) as port:
        for _ in range(20):
            report = drain_once(engine, port, clock, max_attempts=8)
            attempts += report.claimed - (1 if report.admin_report_key else 0)
            [row] = [r for r in rows(engine) if r.address == "busy@lucheng.example.org"]
            if row.status == "failed":
                break
            clock.now = row.next_attempt_at
        clock.now += dt.timedelta(days=30)
        assert drain_once(engine, port, clock).claimed == 0
    assert (row.status, row.attempts) == ("failed", 8)
    assert "已尝试8次仍未成功，不再重试" in row.last_error
    assert row.next_attempt_at - T0 == sum((backoff(n) for n in range(1, 8)), dt.timedelta())
    assert handler.recipients[ADMIN] == 1
    ledger("smtp", faults=attempts, inputs=1, lost=0, duplicated=0)
