"""Sending the outbox through every configured transport: the one path used by `duban send`,
`evaluate --send`, `run`, `run --once` and the service (and the web, later).

`deliver` drains each configured transport in turn, so one failing (the mail server's certificate,
say) does not hold back the others (the DingTalk robot), then reports failures and newly seen
problems to programme.yaml's `admin_email` in ONE message, sent through an e-mail transport at
once when it can be, and says whether it went out or is only queued. Rows of a channel that no
configured transport carries are reported (never silently left pending).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from duban.notifiers.message import EMAIL, MessageError, validate_address
from duban.notifiers.outbox import (
    ADMIN_NO_ADDRESS,
    ADMIN_NONE,
    ADMIN_QUEUED,
    ADMIN_SENT,
    DEFAULT_MAX_WAIT,
    FAILED,
    PENDING,
    SENDING,
    DeliveryFailure,
    DrainReport,
    OutboxStatus,
    Problem,
    admin_report_text,
    drain,
    enqueue_admin_report,
    note_problems,
    open_problems,
    stranded,
)
from duban.notifiers.render import format_datetime_cn
from duban.notifiers.transports import ConfigError, Transport
from duban.notifiers.transports.redact import scrub
from duban.notifiers.transports.settings import (
    DeliverySettings,
    build_transport,
    build_transports,
    delivery_settings,
)
from duban.store.db import transaction

STATUS_LABELS = {PENDING: "待发送", SENDING: "发送中", FAILED: "发送失败", "sent": "已发送"}
CHANNEL_LABELS = {"email": "邮件", "dingtalk": "钉钉"}
EXIT_DELIVERY_FAILED = 4  # a command's exit code when a delivery failed or waits after a failure


def transports_from_env(env: Mapping[str, str]) -> list[Transport]:
    """DUBAN_TRANSPORT names one transport or several separated by commas (e.g. "smtp,dingtalk")."""
    return build_transports(delivery_settings(env))


def default_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class DeliveryOutcome:
    """What one send of the outbox did, over every transport; `str()` is the Chinese summary."""

    reports: list[tuple[str, DrainReport]] = field(default_factory=list)
    config_error: str = ""
    admin_report: str = ADMIN_NONE
    admin_address: str = ""
    problems: list[Problem] = field(default_factory=list)  # reported this time
    unresolved: list[tuple[Problem, datetime | None]] = field(default_factory=list)  # reported earlier, not cleared
    stranded: dict[str, int] = field(default_factory=dict)  # channel -> rows no transport carries

    @property
    def failures(self) -> list[DeliveryFailure]:
        return [failure for _name, report in self.reports for failure in report.failures]

    @property
    def ok(self) -> bool:
        return (not self.config_error and not self.stranded and not self.unresolved
                and all(report.ok for _n, report in self.reports))

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else EXIT_DELIVERY_FAILED

    def lines(self) -> list[str]:
        if self.config_error:
            return [f"未发送：{self.config_error}"]
        lines = [f"[{name}] {report.summary()}" for name, report in self.reports]
        for channel, count in self.stranded.items():
            label = CHANNEL_LABELS.get(channel, channel)
            lines.append(f"有{count}条{label}消息待发送，但 DUBAN_TRANSPORT 中没有能发送它们的通道"
                         f"（如钉钉需包含 dingtalk 并设置 DUBAN_DINGTALK_WEBHOOK）")
        waiting = {p.cause: p for _n, r in self.reports for p in r.problems.values()}
        for problem in waiting.values():
            lines.append(f"发送受阻（邮件已保留，稍后重试）：{scrub(problem.message)}")
        for problem, seen in self.unresolved:
            if problem.cause in waiting:
                continue
            since = f"{format_datetime_cn(seen)}起" if seen else ""
            lines.append(f"发送受阻尚未排除（{since}，已报告管理员；受影响的通知等待重试，"
                         f"修正后可用 duban outbox --retry --failed 立即重发）：{problem.message}")
        text = admin_report_text(self.admin_report, self.admin_address)
        if text:
            lines.append(text.lstrip("；") + "。")
        return lines

    def __str__(self) -> str:
        return "\n".join(self.lines())


async def deliver(
    engine: Engine,
    *,
    admin_address: str | None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    env: Mapping[str, str] | None = None,
    settings: DeliverySettings | None = None,
    worker: str | None = None,
    limit: int | None = None,
    sleep: Callable[[float], Any] = asyncio.sleep,
    max_wait: timedelta = DEFAULT_MAX_WAIT,
) -> DeliveryOutcome:
    """Drain the outbox with every configured transport, then report to the admin once."""
    outcome = DeliveryOutcome(admin_address=admin_address or "")
    try:
        settings = settings or delivery_settings(env)
        transports = build_transports(settings)
        if admin_address:
            admin_address = validate_address(admin_address, "管理员邮箱（programme.yaml 的 admin_email）")
    except (ConfigError, MessageError) as exc:
        outcome.config_error = str(exc)
        return outcome
    worker = worker or default_worker()
    for transport in transports:
        try:
            report = await drain(engine, transport, now=now, worker=worker, limit=limit, sleep=sleep,
                                 max_wait=max_wait, mail_from=settings.mail_from)
        except Exception as exc:  # one transport's failure must not keep the others from sending
            report = DrainReport()
            report.retried = 1
            report.problems["crash"] = Problem(transport.name, "crash",
                                               f"{transport.name}发送中断：{type(exc).__name__}: {scrub(str(exc))}")
        outcome.reports.append((transport.name, report))
    with transaction(engine) as session:
        outcome.stranded = stranded(session, settings.channels() | _carried(transports))
    problems: list[Problem] = []
    for name, report in outcome.reports:
        problems += note_problems(engine, name, report, now=now())
    outcome.problems = problems
    with transaction(engine) as session:
        outcome.unresolved = [(p, seen) for p, seen in open_problems(session) if p.transport in settings.transports]
    if not outcome.failures and not problems:
        return outcome
    if not admin_address:
        outcome.admin_report = ADMIN_NO_ADDRESS
        return outcome
    delivery_id = enqueue_admin_report(engine, outcome.failures, problems, admin_address=admin_address,
                                       mail_from=settings.mail_from, now=now())
    if delivery_id is None:
        return outcome
    outcome.admin_report = ADMIN_QUEUED
    mailer = next((t for t in transports if EMAIL in t.channels), None)
    if mailer is not None:
        # A fresh instance: the drains closed theirs.
        fresh = build_transport(settings, mailer.name)
        report = await drain(engine, fresh, now=now, worker=worker, only_ids=[delivery_id], sleep=sleep,
                             max_wait=max_wait, mail_from=settings.mail_from)
        if report.admin_reports_sent:
            outcome.admin_report = ADMIN_SENT
    return outcome


def _carried(transports: list[Transport]) -> frozenset[str]:
    return frozenset(channel for transport in transports for channel in transport.channels)


async def send_pending(
    engine: Engine,
    *,
    env: Mapping[str, str],
    now: Callable[[], datetime],
    worker: str | None = None,
    limit: int | None = None,
    admin_address: str | None = None,
) -> list[tuple[str, DrainReport]]:
    """Drain the outbox once with every configured transport. Raises ConfigError on bad settings."""
    settings = delivery_settings(env)
    outcome = await deliver(engine, admin_address=admin_address, now=now, settings=settings, worker=worker,
                            limit=limit)
    if outcome.config_error:
        raise ConfigError(outcome.config_error)
    return outcome.reports


def status_lines(status: OutboxStatus) -> list[str]:
    """`duban outbox`: counts, then failed, in-flight and waiting rows with their last errors."""
    counts = "，".join(
        f"{STATUS_LABELS[key]}{status.counts.get(key, 0)}封" for key in (PENDING, SENDING, FAILED, "sent")
    )
    lines = [f"发件箱：{counts}"]
    if not status.rows:
        lines.append("没有待发送或发送失败的通知。")
        return lines
    if status.counts.get(FAILED):
        lines.append("修正原因后，可用 duban outbox --retry --failed 把全部失败的通知重新排队，或 --retry 编号 指定一封。")
    current = None
    for row in status.rows:
        if row.status != current:
            current = row.status
            lines += ["", f"【{STATUS_LABELS[row.status]}】"]
        channel = CHANNEL_LABELS.get(row.channel, row.channel)
        lines.append(f"  #{row.id} {channel} {row.recipient_name or row.recipient_unit} <{row.address}> {row.subject}")
        detail = f"已尝试{row.attempts}次"
        if row.status == PENDING:
            detail += f"，下次发送：{format_datetime_cn(row.next_attempt_at)}"
        if row.last_error:
            detail += f"；最近错误：{scrub(row.last_error)}"
        lines.append(f"      {detail}")
    return lines
