"""The outbox: deliveries are rows first and network traffic second.

`enqueue` runs inside the lifecycle's transaction, so a round's notices and their messages are
committed together or not at all. `drain` sends due rows:

* claiming is a conditional UPDATE (pending and due, or sending with an expired lease) under a
  claim token unique to the batch, so two drains never send the same row on SQLite or PostgreSQL;
* each result is committed right after its send, so a killed sender loses at most the marks of
  the messages in flight (which are then re-sent after their lease expires: at-least-once);
* temporary failures back off exponentially; permanent ones, and rows out of attempts, become
  `failed`, and one report per drain lists them for the admin (itself an outbox row).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session

from duban.notifiers.message import (
    DEFAULT_MAIL_FROM,
    EMAIL,
    MessageError,
    OutgoingMessage,
    build_email,
)
from duban.notifiers.render import format_datetime_cn
from duban.notifiers.transports import Outcome, SendResult, Transport
from duban.store.db import transaction
from duban.store.models import Delivery, DeliveryPayload

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"
ADMIN_REPORT_PREFIX = "admin-report|"
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=6)
DEFAULT_LEASE = timedelta(minutes=5)
_KEY_CHUNK = 500
DELIVERIES = cast(Table, Delivery.__table__)
PAYLOADS = cast(Table, DeliveryPayload.__table__)


def backoff(attempts: int) -> timedelta:
    """Wait before the next try after `attempts` failed tries: 1, 2, 4 … minutes, capped at 6 hours."""
    exponent = max(0, attempts - 1)
    if exponent > 20:
        return BACKOFF_CAP
    return min(BACKOFF_BASE * (2**exponent), BACKOFF_CAP)


# --- enqueue ----------------------------------------------------------------------------------


def enqueue(session: Session, messages: Sequence[OutgoingMessage], *, now: datetime) -> int:
    """Insert outbox rows for messages whose idempotency key is new; return how many were inserted.

    Keys already in the outbox (or repeated within `messages`) are skipped, so enqueueing the
    same round twice sends nothing the second time. The unique constraint on the key backs this
    up if two writers race.
    """
    unique: dict[str, OutgoingMessage] = {}
    for message in messages:
        unique.setdefault(message.idempotency_key, message)
    keys = list(unique)
    existing: set[str] = set()
    for start in range(0, len(keys), _KEY_CHUNK):
        chunk = keys[start : start + _KEY_CHUNK]
        existing.update(
            session.scalars(select(Delivery.idempotency_key).where(Delivery.idempotency_key.in_(chunk)))
        )
    rows = [
        {
            "idempotency_key": message.idempotency_key,
            "message_id": message.message_id,
            "round_id": message.round_id,
            "channel": message.channel,
            "recipient_unit": message.recipient_unit,
            "address": message.address,
            "subject": message.subject,
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "claimed_by": "",
            "last_error": "",
            "created_at": now,
        }
        for key, message in unique.items()
        if key not in existing
    ]
    if rows:
        inserted = session.execute(
            insert(Delivery).returning(Delivery.id, Delivery.idempotency_key, sort_by_parameter_order=True), rows
        ).all()
        session.execute(
            insert(DeliveryPayload),
            [{"delivery_id": delivery_id, "payload": unique[key].payload} for delivery_id, key in inserted],
        )
    return len(rows)


# --- drain ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryFailure:
    delivery_id: int
    recipient_unit: str
    address: str
    subject: str
    attempts: int
    error: str


@dataclass
class DrainReport:
    claimed: int = 0
    sent: int = 0
    retried: int = 0  # temporary failures put back with backoff
    failed: int = 0  # permanent failures and rows out of attempts
    lost_claims: int = 0  # rows whose lease expired and another sender took over
    failures: list[DeliveryFailure] = field(default_factory=list)
    admin_report_key: str | None = None

    def summary(self) -> str:
        text = f"本次共处理{self.claimed}封：成功{self.sent}封，稍后重试{self.retried}封，失败{self.failed}封"
        if self.admin_report_key:
            text += "；失败清单已发送给管理员"
        return text


@dataclass
class _Claimed:
    message: OutgoingMessage
    token: str
    attempts: int
    claimed_until: datetime


def _due(now: datetime) -> Any:
    return or_(
        and_(Delivery.status == PENDING, Delivery.next_attempt_at <= now),
        and_(Delivery.status == SENDING, Delivery.claimed_until < now),
    )


def _to_message(row: Any) -> OutgoingMessage:
    return OutgoingMessage(
        idempotency_key=row.idempotency_key,
        message_id=row.message_id,
        channel=row.channel,
        recipient_unit=row.recipient_unit,
        address=row.address,
        subject=row.subject,
        payload=row.payload,
        at=row.created_at,
        envelope_from="",
        round_id=row.round_id,
        delivery_id=row.id,
    )


class _Drainer:
    def __init__(
        self,
        engine: Engine,
        transport: Transport,
        *,
        now: Callable[[], datetime],
        worker: str,
        limit: int | None,
        lease: timedelta,
        max_attempts: int,
    ) -> None:
        self.engine = engine
        self.transport = transport
        self.now = now
        self.worker = worker[:60]
        self.limit = limit
        self.lease = lease
        self.max_attempts = max_attempts
        self.report = DrainReport()
        self.queue: deque[_Claimed] = deque()
        self.exhausted = False
        self.batch = 0
        # A claim costs a few milliseconds whatever its size: claim enough to amortise it, not so
        # many that a killed sender leaves a long tail waiting for its lease to expire.
        self.batch_size = max(1, transport.concurrency) * 16
        # One connection for the whole drain: each claim and each mark is its own short
        # transaction on it, without the cost of a session or a pool checkout per message.
        self.connection = engine.connect()
        self.marks = _Marks(self.connection)

    def claim(self, only_ids: Iterable[int] | None = None) -> list[_Claimed]:
        """Claim a batch of due rows under a fresh token; returns what this drain now owns."""
        wanted = self.batch_size
        if self.limit is not None:
            wanted = min(wanted, self.limit - self.report.claimed)
        if wanted <= 0:
            return []
        self.batch += 1
        token = f"{self.worker}#{uuid.uuid4().hex[:8]}-{self.batch}"
        now = self.now()
        until = now + self.lease
        table = DELIVERIES
        with self.connection.begin():
            channels = sorted(self.transport.channels)
            # Two index-friendly queries (status, next_attempt_at) instead of one OR: with
            # thousands of rows due at the same instant an OR plus a tie-break sort scans them all.
            expired = (
                select(table.c.id)
                .where(table.c.status == SENDING, table.c.claimed_until < now, table.c.channel.in_(channels))
                .limit(wanted)
            )
            due = (
                select(table.c.id)
                .where(table.c.status == PENDING, table.c.next_attempt_at <= now, table.c.channel.in_(channels))
                .order_by(table.c.next_attempt_at)
                .limit(wanted)
            )
            if only_ids is not None:
                expired = expired.where(table.c.id.in_(list(only_ids)))
                due = due.where(table.c.id.in_(list(only_ids)))
            ids = [*self.connection.scalars(expired), *self.connection.scalars(due)][:wanted]
            if not ids:
                return []
            self.connection.execute(
                update(table)
                .where(table.c.id.in_(ids), _due(now))
                .values(status=SENDING, claimed_by=token, claimed_until=until, attempts=table.c.attempts + 1)
            )
            rows = self.connection.execute(
                select(table, PAYLOADS.c.payload)
                .join(PAYLOADS, PAYLOADS.c.delivery_id == table.c.id)
                .where(table.c.id.in_(ids), table.c.claimed_by == token, table.c.status == SENDING)
                .order_by(table.c.id)
            ).all()
            claimed = [_Claimed(_to_message(row), token, row.attempts, until) for row in rows]
        self.report.claimed += len(claimed)
        return claimed

    def next_message(self) -> _Claimed | None:
        # Synchronous on purpose: no await between checking and claiming, so the worker
        # coroutines of one drain never claim twice for the same gap.
        if not self.queue and not self.exhausted:
            batch = self.claim()
            if batch:
                self.queue.extend(batch)
            else:
                self.exhausted = True
        return self.queue.popleft() if self.queue else None

    def still_ours(self, claimed: _Claimed) -> bool:
        """Renew a lease that is half gone before sending, so a slow batch is never taken over."""
        now = self.now()
        if now < claimed.claimed_until - self.lease / 2:
            return True
        until = now + self.lease
        if self.marks.update(*_owned_update(claimed, {"claimed_until": until})) == 1:
            claimed.claimed_until = until
            return True
        self.report.lost_claims += 1
        return False

    def record(self, claimed: _Claimed, result: SendResult) -> None:
        now = self.now()
        values: dict[str, Any]
        failure: str | None = None
        if result.outcome is Outcome.OK:
            values = {"status": SENT, "sent_at": now, "claimed_until": None, "last_error": ""}
        elif result.outcome is Outcome.TEMPORARY and claimed.attempts < self.max_attempts:
            values = {
                "status": PENDING,
                "next_attempt_at": now + backoff(claimed.attempts),
                "claimed_until": None,
                "last_error": result.message,
            }
        else:
            if result.outcome is Outcome.TEMPORARY:
                failure = f"已尝试{claimed.attempts}次仍未成功，不再重试。最后一次错误：{result.message}"
            else:
                failure = result.message
            values = {"status": FAILED, "claimed_until": None, "last_error": failure}
        if self.marks.update(*_owned_update(claimed, values)) != 1:
            self.report.lost_claims += 1
            return
        if result.outcome is Outcome.OK:
            self.report.sent += 1
        elif failure is None:
            self.report.retried += 1
        else:
            self.report.failed += 1
            message = claimed.message
            if not message.idempotency_key.startswith(ADMIN_REPORT_PREFIX):
                self.report.failures.append(
                    DeliveryFailure(
                        delivery_id=message.delivery_id or 0,
                        recipient_unit=message.recipient_unit,
                        address=message.address,
                        subject=message.subject,
                        attempts=claimed.attempts,
                        error=failure,
                    )
                )

    async def run_worker(self) -> None:
        while (claimed := self.next_message()) is not None:
            if not self.still_ours(claimed):
                continue
            try:
                result = await self.transport.send(claimed.message)
            except Exception as exc:  # a transport bug must not strand the row in 'sending'
                result = SendResult.temporary(f"发送程序异常：{type(exc).__name__}: {exc}")
            self.record(claimed, result)

    async def run(self) -> None:
        workers = max(1, self.transport.concurrency)
        await asyncio.gather(*(self.run_worker() for _ in range(workers)))


_OWNED_UPDATES: dict[tuple[str, ...], Any] = {}


def _owned_update(claimed: _Claimed, values: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """An UPDATE that only touches the row while this drain's claim on it still holds.

    Statements are built once per set of columns and reused with bound parameters: building
    a fresh statement per message cost as much as the database write itself.
    """
    columns = tuple(sorted(values))
    statement = _OWNED_UPDATES.get(columns)
    if statement is None:
        table = DELIVERIES
        statement = (
            update(table)
            .where(
                table.c.id == bindparam("owned_id"),
                table.c.claimed_by == bindparam("owned_token"),
                table.c.status == SENDING,
            )
            .values({column: bindparam(f"new_{column}", type_=table.c[column].type) for column in columns})
        )
        _OWNED_UPDATES[columns] = statement
    parameters = {f"new_{column}": value for column, value in values.items()}
    parameters.update(owned_id=claimed.message.delivery_id, owned_token=claimed.token)
    return statement, parameters


class _Marks:
    """Runs the per-message marks on the DB-API connection under the drain's Core connection.

    A mark is one UPDATE of one row, committed at once: that is what lets a killed sender repeat
    only the messages in flight. Through Core each mark also paid for a BEGIN IMMEDIATE, a COMMIT
    and the execution bookkeeping of three statements, together as much CPU as the rest of the
    drain. Here a statement is compiled once, by SQLAlchemy, with its type processors (so stored
    timestamps keep the format every other query compares against), and each mark is a single
    `cursor.execute`: on SQLite, in autocommit mode (store.db), one statement is its own
    transaction; elsewhere it is followed by a commit. Claims stay on Core: they are rare.
    """

    def __init__(self, connection: Connection) -> None:
        self.dialect = connection.dialect
        self.dbapi = connection.connection.dbapi_connection
        # pysqlite with isolation_level None (store.db) commits each statement by itself.
        self.autocommit = self.dialect.name == "sqlite" and getattr(self.dbapi, "isolation_level", "") is None
        self.prepared: dict[int, tuple[str, Any, dict[str, Any]]] = {}

    def _prepare(self, statement: Any) -> tuple[str, Any, dict[str, Any]]:
        compiled = statement.compile(dialect=self.dialect)
        processors = {}
        for name, bind in compiled.binds.items():
            processor = bind.type.bind_processor(self.dialect)
            if processor is not None:
                processors[name] = processor
        prepared = (compiled.string, compiled, processors)
        self.prepared[id(statement)] = prepared
        return prepared

    def update(self, statement: Any, parameters: dict[str, Any]) -> int:
        """Execute and commit one UPDATE; return how many rows it changed."""
        sql, compiled, processors = self.prepared.get(id(statement)) or self._prepare(statement)
        values = compiled.construct_params(parameters)
        for name, processor in processors.items():
            values[name] = processor(values[name])
        arguments = tuple(values[name] for name in compiled.positiontup) if compiled.positional else values
        assert self.dbapi is not None
        cursor = self.dbapi.cursor()
        try:
            cursor.execute(sql, arguments)
            count = int(cursor.rowcount or 0)
        finally:
            cursor.close()
        if not self.autocommit:
            self.dbapi.commit()
        return count


async def drain(
    engine: Engine,
    transport: Transport,
    *,
    now: Callable[[], datetime],
    worker: str,
    limit: int | None = None,
    lease: timedelta = DEFAULT_LEASE,
    max_attempts: int = 8,
    admin_address: str | None = None,
    mail_from: str = DEFAULT_MAIL_FROM,
) -> DrainReport:
    """Send every due row this transport can carry (at most `limit`); see the module docstring."""
    drainer = _Drainer(
        engine, transport, now=now, worker=worker, limit=limit, lease=lease, max_attempts=max_attempts
    )
    try:
        await transport.open()
        await drainer.run()
        report = drainer.report
        if report.failures and admin_address:
            delivery_id = _enqueue_admin_report(
                engine, report, admin_address=admin_address, mail_from=mail_from, now=now()
            )
            if delivery_id is not None and EMAIL in transport.channels:
                # Try the report at once; if it fails it stays in the outbox like any message.
                drainer.exhausted = False
                drainer.limit = None
                drainer.queue.extend(drainer.claim(only_ids=[delivery_id]))
                drainer.exhausted = True
                await drainer.run_worker()
    finally:
        drainer.connection.close()
        await transport.close()
    return drainer.report


def _enqueue_admin_report(
    engine: Engine, report: DrainReport, *, admin_address: str, mail_from: str, now: datetime
) -> int | None:
    key = f"{ADMIN_REPORT_PREFIX}{now.isoformat()}|{uuid.uuid4().hex[:12]}"
    count = len(report.failures)
    lines = [
        "管理员：",
        "",
        f"督办系统于{format_datetime_cn(now)}发送通知时，有{count}封未能送达，已停止重试，请核实处理：",
        "",
    ]
    for index, failure in enumerate(report.failures, start=1):
        lines += [
            f"{index}. 收件单位：{failure.recipient_unit or '—'}，地址：{failure.address}",
            f"   主题：{failure.subject}",
            f"   尝试次数：{failure.attempts}；原因：{failure.error}",
            "",
        ]
    lines += [
        "请核对单位邮箱或邮件服务器设置；修正后可用 duban outbox 查看待发和失败的通知。",
        "",
        "督办系统",
    ]
    try:
        message = build_email(
            idempotency_key=key,
            mail_from=mail_from,
            to_address=admin_address,
            to_name="督办系统管理员",
            subject=f"【督办系统】通知投递失败报告：{count}封未能送达",
            text="\n".join(lines),
            html=None,
            at=now,
            recipient_unit="admin",
        )
    except MessageError:
        return None  # a bad admin address is reported by the CLI before draining
    with transaction(engine) as session:
        enqueue(session, [message], now=now)
        delivery_id = session.scalar(select(Delivery.id).where(Delivery.idempotency_key == key))
    report.admin_report_key = key
    return delivery_id


# --- status -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryRow:
    id: int
    status: str
    channel: str
    recipient_unit: str
    address: str
    subject: str
    attempts: int
    next_attempt_at: datetime
    last_error: str


@dataclass(frozen=True)
class OutboxStatus:
    counts: dict[str, int]  # status -> rows
    rows: list[DeliveryRow]  # pending, sending and failed rows, failed first

    @property
    def open_count(self) -> int:
        return sum(self.counts.get(status, 0) for status in (PENDING, SENDING, FAILED))


def outbox_status(session: Session, *, limit: int = 200) -> OutboxStatus:
    counts = {
        status: count
        for status, count in session.execute(
            select(Delivery.status, func.count()).group_by(Delivery.status)
        ).all()
    }
    order = {FAILED: 0, SENDING: 1, PENDING: 2}
    rows = session.scalars(
        select(Delivery)
        .where(Delivery.status.in_(list(order)))
        .order_by(Delivery.status, Delivery.next_attempt_at, Delivery.id)
        .limit(limit)
    ).all()
    listed = [
        DeliveryRow(
            id=row.id,
            status=row.status,
            channel=row.channel,
            recipient_unit=row.recipient_unit,
            address=row.address,
            subject=row.subject,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            last_error=row.last_error,
        )
        for row in rows
    ]
    listed.sort(key=lambda row: (order[row.status], row.next_attempt_at, row.id))
    return OutboxStatus(counts=counts, rows=listed)
