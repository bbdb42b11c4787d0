"""The outbox: deliveries are rows first and network traffic second.

`enqueue` runs inside the lifecycle's transaction, so a round's notices and their messages are
committed together or not at all. `drain` sends due rows:

* claiming is a conditional UPDATE (pending and due, or sending with an expired lease) under a
  claim token unique to the batch, so two drains never send the same row on SQLite or PostgreSQL;
* each result is committed right after its send, so a killed sender loses at most the marks of
  the messages in flight (which are then re-sent after their lease expires: at-least-once);
* temporary failures back off exponentially; permanent ones, and rows out of attempts, become
  `failed`, and one report per drain lists them for the admin (itself an outbox row);
* a temporary failure that is the server's or the settings' problem (certificate, DNS, timeout,
  login …, see `SendResult.cause`) is reported to the admin once per problem, not per message,
  and reported again only after the transport has delivered in between;
* pacing: a transport with a `rate` gets at most that many sends per window and pacing key (one
  DingTalk robot), counting what earlier drains sent (the outbox's own `sent_at`), waiting up to
  `max_wait` for the window and otherwise leaving the row for later without spending an attempt;
  a THROTTLED answer pauses the key (persisted in `settings`, so other commands respect it) and
  puts its rows back, also without spending attempts;
* every error stored or reported passes through `redact.scrub`: no token, password or signature;
* `requeue` puts failed rows (or chosen ones) back in the queue: `duban outbox --retry`, the web.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from duban.notifiers.message import (
    DEFAULT_MAIL_FROM,
    EMAIL,
    MessageError,
    OutgoingMessage,
    build_email,
)
from duban.notifiers.render import format_datetime_cn
from duban.notifiers.transports import Outcome, Rate, SendResult, Transport
from duban.notifiers.transports.redact import scrub
from duban.store.db import transaction
from duban.store.models import Delivery, DeliveryPayload, Setting, Unit

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"
ADMIN_REPORT_PREFIX = "admin-report|"
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=6)
DEFAULT_LEASE = timedelta(minutes=5)
DEFAULT_MAX_WAIT = timedelta(seconds=90)  # a paced drain waits this long for its window, then defers
PAUSE_PREFIX = "pause:"  # settings key: a pacing key paused until (ISO time), e.g. after DingTalk 130101
PROBLEM_PREFIX = "delivery_problem:"  # settings key: a problem already reported to the admin
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


@dataclass(frozen=True)
class Problem:
    """A server or settings problem behind temporary failures, e.g. a certificate that fails."""

    transport: str
    cause: str
    message: str


# What became of the admin's report: nothing to report, sent, queued (not yet delivered: the mail
# server may be the problem), or nobody to send it to.
ADMIN_NONE, ADMIN_SENT, ADMIN_QUEUED, ADMIN_NO_ADDRESS = "none", "sent", "queued", "no_address"


@dataclass
class DrainReport:
    claimed: int = 0
    sent: int = 0
    retried: int = 0  # temporary failures put back with backoff
    failed: int = 0  # permanent failures and rows out of attempts
    deferred: int = 0  # put back by pacing or a throttled peer, no attempt spent
    throttled: int = 0  # of which the peer answered "too fast" (DingTalk 130101)
    lost_claims: int = 0  # rows whose lease expired and another sender took over
    admin_reports_sent: int = 0  # reports to the admin (not counted above) that went out
    failures: list[DeliveryFailure] = field(default_factory=list)
    problems: dict[str, Problem] = field(default_factory=dict)  # cause -> first occurrence
    resume_at: datetime | None = None  # deferred rows are due again from then
    admin_report_key: str | None = None
    admin_report: str = ADMIN_NONE
    admin_address: str = ""

    @property
    def ok(self) -> bool:
        """Nothing failed or waits because of a failure (pacing alone is not a failure)."""
        return not (self.failed or self.retried or self.throttled)

    def summary(self) -> str:
        text = f"本次共处理{self.claimed}封：成功{self.sent}封，稍后重试{self.retried}封，失败{self.failed}封"
        if self.deferred:
            text += f"，按发送频率限制延后{self.deferred}封"
            if self.resume_at is not None:
                text += f"（{format_datetime_cn(self.resume_at)}起续发）"
        if self.admin_reports_sent and self.admin_report == ADMIN_NONE:
            text += f"；另发出此前排队的管理员报告{self.admin_reports_sent}封"
        return text + admin_report_text(self.admin_report, self.admin_address)


def admin_report_text(state: str, address: str = "") -> str:
    where = f"（{address}）" if address else ""
    if state == ADMIN_SENT:
        return f"；失败情况已报告管理员{where}，报告已发出"
    if state == ADMIN_QUEUED:
        return f"；失败情况的管理员报告{where}已排入发件箱，但尚未发出（邮件通道恢复后自动发送）"
    if state == ADMIN_NO_ADDRESS:
        return "；未向管理员报告：programme.yaml 未设置 admin_email"
    return ""


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
        sleep: Callable[[float], Any] = asyncio.sleep,
        max_wait: timedelta = DEFAULT_MAX_WAIT,
    ) -> None:
        self.engine = engine
        self.sleep = sleep
        self.max_wait = max_wait
        self.pacers: dict[str, _Pacer] = {}
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
        self.channels = sorted(transport.channels)

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
            channels = self.channels
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
        error = scrub(result.message)
        if result.outcome is Outcome.THROTTLED:
            until = now + timedelta(seconds=result.retry_after or 60.0)
            self.pause(claimed.message, until)
            self.defer(claimed, until, error, throttled=True)
            return
        if result.outcome is Outcome.OK:
            values = {"status": SENT, "sent_at": now, "claimed_until": None, "last_error": ""}
        elif result.outcome is Outcome.TEMPORARY and claimed.attempts < self.max_attempts:
            values = {
                "status": PENDING,
                "next_attempt_at": now + backoff(claimed.attempts),
                "claimed_until": None,
                "last_error": error,
            }
        else:
            if result.outcome is Outcome.TEMPORARY:
                failure = f"已尝试{claimed.attempts}次仍未成功，不再重试。最后一次错误：{error}"
            else:
                failure = error
            values = {"status": FAILED, "claimed_until": None, "last_error": failure}
        if result.outcome is Outcome.TEMPORARY and result.cause and result.cause not in self.report.problems:
            self.report.problems[result.cause] = Problem(self.transport.name, result.cause, error)
        if self.marks.update(*_owned_update(claimed, values)) != 1:
            self.report.lost_claims += 1
            return
        if claimed.message.idempotency_key.startswith(ADMIN_REPORT_PREFIX):
            # The admin's report is not one of the notices this drain counts.
            self.report.claimed -= 1
            self.report.admin_reports_sent += int(result.outcome is Outcome.OK)
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

    # pacing

    def pacer_for(self, message: OutgoingMessage) -> _Pacer:
        """The pacing state of the message's key: its window (if the transport has a rate) and any
        pause a throttled answer left, also one another process recorded."""
        rate: Rate | None = getattr(self.transport, "rate", None)
        if rate is not None and rate.count <= 0:
            rate = None
        key = self.transport.pace_key(message)
        pacer = self.pacers.get(key)
        if pacer is None:
            pacer = self.pacers[key] = self.load_pacer(key, rate)
        return pacer

    def load_pacer(self, key: str, rate: Rate | None) -> _Pacer:
        """Seed the window with what was sent lately (by any process) and any pause still on."""
        now = self.now()
        table = DELIVERIES
        history: list[datetime] = []
        with self.connection.begin():
            if rate is not None:
                history = list(self.connection.scalars(
                    select(table.c.sent_at)
                    .where(table.c.status == SENT, table.c.channel.in_(self.channels),
                           table.c.sent_at > now - timedelta(seconds=rate.seconds))
                    .order_by(table.c.sent_at.desc())
                    .limit(rate.count)
                ))
            paused = self.connection.scalar(select(Setting.value).where(Setting.key == f"{PAUSE_PREFIX}{key}"))
        until = None
        if paused:
            try:
                until = datetime.fromisoformat(paused)
            except ValueError:
                until = None
        return _Pacer(rate, sorted(history), until)

    def pause(self, message: OutgoingMessage, until: datetime) -> None:
        pacer = self.pacer_for(message)
        key = self.transport.pace_key(message)
        pacer.paused_until = max(until, pacer.paused_until or until)
        with self.connection.begin():
            self.connection.execute(delete(Setting).where(Setting.key == f"{PAUSE_PREFIX}{key}"))
            self.connection.execute(insert(Setting).values(key=f"{PAUSE_PREFIX}{key}", value=until.isoformat(),
                                                           updated_at=self.now()))

    def defer(self, claimed: _Claimed, until: datetime, error: str | None = None, *, throttled: bool = False) -> None:
        """Give the row back without spending the attempt its claim counted."""
        values: dict[str, Any] = {"status": PENDING, "next_attempt_at": until, "claimed_until": None,
                                  "attempts": max(0, claimed.attempts - 1)}
        if error is not None:
            values["last_error"] = error
        if self.marks.update(*_owned_update(claimed, values)) != 1:
            self.report.lost_claims += 1
            return
        self.report.deferred += 1
        self.report.throttled += int(throttled)
        if self.report.resume_at is None or until < self.report.resume_at:
            self.report.resume_at = until
        # Nothing more of this transport can go now: stop claiming, hand back what is queued.
        self.exhausted = True

    async def paced(self, claimed: _Claimed) -> bool:
        """Wait for the pacing window (up to max_wait); False when the row was deferred instead."""
        pacer = self.pacer_for(claimed.message)
        while True:
            now = self.now()
            delay = pacer.delay(now)
            if delay <= 0:
                pacer.take(now)
                return True
            until = now + timedelta(seconds=delay)
            if pacer.paused(now) or delay > self.max_wait.total_seconds():
                note = None
                if pacer.paused(now):
                    note = f"发送对象暂停接收（发送过快被限流），{format_datetime_cn(until)}后自动续发"
                self.defer(claimed, until, note)
                return False
            await self.sleep(delay)

    async def run_worker(self) -> None:
        while (claimed := self.next_message()) is not None:
            if not self.still_ours(claimed):
                continue
            if not await self.paced(claimed):
                continue
            try:
                result = await self.transport.send(claimed.message)
            except Exception as exc:  # a transport bug must not strand the row in 'sending'
                result = SendResult.temporary(f"发送程序异常：{type(exc).__name__}: {exc}")
            self.record(claimed, result)

    async def run(self) -> None:
        workers = max(1, self.transport.concurrency)
        await asyncio.gather(*(self.run_worker() for _ in range(workers)))


class _Pacer:
    """A sliding window of send times for one pacing key, plus a pause (after "too fast")."""

    def __init__(self, rate: Rate | None, history: list[datetime], paused_until: datetime | None) -> None:
        self.rate = rate
        self.window = timedelta(seconds=rate.seconds if rate else 0)
        self.sent: deque[datetime] = deque(history[-rate.count:] if rate else ())
        self.paused_until = paused_until

    def paused(self, now: datetime) -> bool:
        return self.paused_until is not None and now < self.paused_until

    def delay(self, now: datetime) -> float:
        """Seconds until a send is allowed (0: now)."""
        if self.paused_until is not None and now < self.paused_until:
            return (self.paused_until - now).total_seconds()
        if self.rate is None:
            return 0.0
        while self.sent and self.sent[0] <= now - self.window:
            self.sent.popleft()
        if len(self.sent) < self.rate.count:
            return 0.0
        return max(0.001, (self.sent[0] + self.window - now).total_seconds())

    def take(self, now: datetime) -> None:
        if self.rate is not None:
            self.sent.append(now)


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
    sleep: Callable[[float], Any] = asyncio.sleep,
    max_wait: timedelta = DEFAULT_MAX_WAIT,
    only_ids: Sequence[int] | None = None,
) -> DrainReport:
    """Send every due row this transport can carry (at most `limit`); see the module docstring.

    With `admin_address`, failures and newly seen problems are reported to the admin (one outbox
    row, sent at once when this transport carries e-mail). `only_ids` restricts the drain to rows.
    """
    drainer = _Drainer(
        engine, transport, now=now, worker=worker, limit=limit, lease=lease, max_attempts=max_attempts,
        sleep=sleep, max_wait=max_wait,
    )
    try:
        await transport.open()
        if only_ids is not None:
            drainer.queue.extend(drainer.claim(only_ids=list(only_ids)))
            drainer.exhausted = True
        await drainer.run()
        report = drainer.report
        if admin_address is not None:
            problems = note_problems(engine, transport.name, report, now=now())
            delivery_id = enqueue_admin_report(
                engine, report.failures, problems, admin_address=admin_address, mail_from=mail_from, now=now()
            )
            report.admin_address = admin_address
            if delivery_id is not None:
                report.admin_report_key = f"#{delivery_id}"
                report.admin_report = ADMIN_QUEUED
                if EMAIL in transport.channels:
                    # Try the report at once; if it fails it stays in the outbox like any message.
                    # Its own send is not counted among the notices of this drain.
                    before = report.admin_reports_sent
                    drainer.exhausted = False
                    drainer.limit = None
                    drainer.queue.extend(drainer.claim(only_ids=[delivery_id]))
                    drainer.exhausted = True
                    await drainer.run_worker()
                    if report.admin_reports_sent > before:
                        report.admin_report = ADMIN_SENT
    finally:
        drainer.connection.close()
        await transport.close()
    return drainer.report


def note_problems(engine: Engine, transport_name: str, report: DrainReport, *, now: datetime) -> list[Problem]:
    """The problems of this drain not yet reported to the admin; remembers them in `settings`.

    A transport that delivered without problems in this drain has recovered: its remembered
    problems are forgotten, so the next occurrence is reported again.
    """
    prefix = f"{PROBLEM_PREFIX}{transport_name}:"
    new: list[Problem] = []
    with transaction(engine) as session:
        if report.sent and not report.problems:
            session.execute(delete(Setting).where(Setting.key.like(f"{prefix}%")))
            return []
        for cause, problem in report.problems.items():
            key = f"{prefix}{cause}"
            if session.get(Setting, key) is None:
                session.add(Setting(key=key, value=f"{now.isoformat()}|{problem.message}", updated_at=now))
                new.append(problem)
    return new


def open_problems(session: Session) -> list[tuple[Problem, datetime | None]]:
    """Problems reported to the admin and not yet cleared by a delivery: (problem, first seen)."""
    found = []
    for setting in session.scalars(select(Setting).where(Setting.key.like(f"{PROBLEM_PREFIX}%")).order_by(Setting.key)):
        transport, _, cause = setting.key[len(PROBLEM_PREFIX):].partition(":")
        stamp, _, message = setting.value.partition("|")
        try:
            seen: datetime | None = datetime.fromisoformat(stamp)
        except ValueError:
            seen = None
        found.append((Problem(transport, cause, scrub(message)), seen))
    return found


PROBLEM_TITLES = {
    "tls_cert": "邮件服务器证书校验失败",
    "tls": "邮件服务器TLS加密连接失败",
    "dns": "邮件服务器域名无法解析",
    "timeout": "连接超时",
    "connect": "无法连接",
    "auth": "SMTP登录认证失败",
    "sender": "发件人地址被拒绝",
    "config": "发送设置有误",
    "server": "服务器暂时拒绝",
}
TRANSPORT_LABELS = {"smtp": "邮件（SMTP）", "dingtalk": "钉钉机器人", "file": "文件发件箱"}


def enqueue_admin_report(
    engine: Engine,
    failures: Sequence[DeliveryFailure],
    problems: Sequence[Problem],
    *,
    admin_address: str,
    mail_from: str,
    now: datetime,
) -> int | None:
    """Queue one message to the admin listing new problems and failed deliveries; its row id."""
    if not failures and not problems:
        return None
    key = f"{ADMIN_REPORT_PREFIX}{now.isoformat()}|{uuid.uuid4().hex[:12]}"
    count = len(failures)
    lines = ["管理员：", ""]
    with Session(engine) as session:
        names = unit_names(session)
    if problems:
        lines += [f"督办系统于{format_datetime_cn(now)}发送通知时遇到以下问题，相关通知已保留在发件箱、不会丢失，"
                  "问题排除后自动续发（同一问题只报告一次）：", ""]
        for index, problem in enumerate(problems, start=1):
            title = PROBLEM_TITLES.get(problem.cause, "发送受阻")
            label = TRANSPORT_LABELS.get(problem.transport, problem.transport)
            lines += [f"{index}. {label}：{title}", f"   {scrub(problem.message)}", ""]
    if failures:
        lines += [f"督办系统于{format_datetime_cn(now)}发送通知时，有{count}封未能送达，已停止重试，请核实处理：", ""]
        for index, failure in enumerate(failures, start=1):
            lines += [
                f"{index}. 收件单位：{unit_label(failure.recipient_unit, names)}，地址：{failure.address}",
                f"   主题：{failure.subject}",
                f"   尝试次数：{failure.attempts}；原因：{scrub(failure.error)}",
                "",
            ]
    lines += [
        "请核对单位邮箱或发送设置；可用 duban outbox 查看待发和失败的通知，"
        "修正后用 duban outbox --retry --failed（或 --retry 编号）重新排队发送。",
        "",
        "督办系统",
    ]
    if failures and problems:
        subject = f"【督办系统】通知发送受阻，{count}封未能送达"
    elif failures:
        subject = f"【督办系统】通知投递失败报告：{count}封未能送达"
    else:
        subject = f"【督办系统】通知发送受阻：{'、'.join(PROBLEM_TITLES.get(p.cause, '发送受阻') for p in problems)}"
    try:
        message = build_email(
            idempotency_key=key,
            mail_from=mail_from,
            to_address=admin_address,
            to_name="督办系统管理员",
            subject=subject,
            text="\n".join(lines),
            html=None,
            at=now,
            recipient_unit=ADMIN_UNIT,
        )
    except MessageError:
        return None  # a bad admin address is reported by the CLI before draining
    with transaction(engine) as session:
        enqueue(session, [message], now=now)
        delivery_id = session.scalar(select(Delivery.id).where(Delivery.idempotency_key == key))
    return delivery_id


# --- requeue ----------------------------------------------------------------------------------


@dataclass
class RequeueResult:
    requeued: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)  # id -> why (Chinese)

    def lines(self) -> list[str]:
        out = []
        if self.requeued:
            ids = "、".join(f"#{i}" for i in self.requeued[:20]) + ("等" if len(self.requeued) > 20 else "")
            out.append(f"已重新排队{len(self.requeued)}封（{ids}），将在下次发送时投递（duban send，或运行中的服务在30秒内）。")
        for delivery_id, why in self.refused.items():
            out.append(f"#{delivery_id} 未重新排队：{why}")
        if not self.requeued and not self.refused:
            out.append("没有发送失败的通知需要重新排队。")
        return out


def requeue(session: Session, *, ids: Sequence[int] = (), failed: bool = False, now: datetime) -> RequeueResult:
    """Put failed rows (with `failed`: all of them, and pending rows backing off after a failed
    attempt; or the given ids) back in the queue, due now.

    Attempts start over; a pending row is made due now; sent and in-flight rows are left alone
    (a sent notice is never sent twice by this). Remembered problems are forgotten so that a
    problem that persists is reported again.
    """
    result = RequeueResult()
    wanted: list[int] = []
    if failed:
        # Failed rows, and rows waiting out a backoff after a failed attempt (e.g. the certificate
        # has just been fixed): all of them due now.
        wanted += list(session.scalars(
            select(Delivery.id)
            .where(or_(Delivery.status == FAILED,
                       and_(Delivery.status == PENDING, Delivery.attempts > 0, Delivery.next_attempt_at > now)))
            .order_by(Delivery.id)))
    if ids:
        found = {row.id: row.status for row in session.execute(
            select(Delivery.id, Delivery.status).where(Delivery.id.in_(list(ids))))}
        for delivery_id in ids:
            status = found.get(delivery_id)
            if status is None:
                result.refused[delivery_id] = "发件箱中没有这个编号"
            elif status == SENT:
                result.refused[delivery_id] = "已发送成功，不会重复发送"
            elif status == SENDING:
                result.refused[delivery_id] = "正在发送中"
            elif delivery_id not in wanted:
                wanted.append(delivery_id)
    if wanted:
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(wanted), Delivery.status.in_([FAILED, PENDING]))
            .values(status=PENDING, attempts=0, next_attempt_at=now, claimed_by="", claimed_until=None)
            .execution_options(synchronize_session=False)
        )
        session.execute(delete(Setting).where(Setting.key.like(f"{PROBLEM_PREFIX}%")))
        result.requeued = wanted
    return result


def stranded(session: Session, channels: Iterable[str]) -> dict[str, int]:
    """Pending rows of channels no configured transport carries: channel -> count."""
    return {
        channel: count
        for channel, count in session.execute(
            select(Delivery.channel, func.count())
            .where(Delivery.status.in_([PENDING, SENDING]), Delivery.channel.not_in(list(channels)))
            .group_by(Delivery.channel)
        ).all()
    }


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
    recipient_name: str = ""  # the unit as the office names it: 区发改局（fgj）


ADMIN_UNIT = "admin"  # recipient_unit of the admin's own reports


def unit_names(session: Session) -> dict[str, str]:
    """Unit code -> Chinese name, from the store's unit list."""
    return {code: name for code, name in session.execute(select(Unit.code, Unit.name))}


def unit_label(code: str, names: Mapping[str, str]) -> str:
    """A recipient as an admin reads it: the unit's name, its code in brackets for commands that
    take it (silence --unit, notices --unit); the admin's own reports as 系统管理员."""
    if not code:
        return "—"
    if code == ADMIN_UNIT and code not in names:
        return "系统管理员"
    name = names.get(code)
    return f"{name}（{code}）" if name and name != code else code


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
    names = unit_names(session)
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
            recipient_name=unit_label(row.recipient_unit, names),
        )
        for row in rows
    ]
    listed.sort(key=lambda row: (order[row.status], row.next_attempt_at, row.id))
    return OutboxStatus(counts=counts, rows=listed)
