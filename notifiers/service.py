"""What `duban send` and `duban outbox` do, kept out of the CLI so it stays a thin wrapper."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from datetime import datetime

from sqlalchemy import Engine

from duban.notifiers.message import DEFAULT_MAIL_FROM, MessageError, validate_address
from duban.notifiers.outbox import FAILED, PENDING, SENDING, DrainReport, OutboxStatus, drain
from duban.notifiers.render import format_datetime_cn
from duban.notifiers.transports import ConfigError, Transport, transport_from_env

STATUS_LABELS = {PENDING: "待发送", SENDING: "发送中", FAILED: "发送失败", "sent": "已发送"}
CHANNEL_LABELS = {"email": "邮件", "dingtalk": "钉钉"}


def transports_from_env(env: Mapping[str, str]) -> list[Transport]:
    """DUBAN_TRANSPORT names one transport or several separated by commas (e.g. "smtp,dingtalk")."""
    names = [name.strip() for name in (env.get("DUBAN_TRANSPORT") or "file").split(",") if name.strip()]
    return [transport_from_env(name, env) for name in dict.fromkeys(names)]


def default_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


async def send_pending(
    engine: Engine,
    *,
    env: Mapping[str, str],
    now: Callable[[], datetime],
    worker: str | None = None,
    limit: int | None = None,
) -> list[tuple[str, DrainReport]]:
    """Drain the outbox once with every configured transport. Raises ConfigError on bad settings."""
    admin = (env.get("DUBAN_ADMIN_EMAIL") or "").strip() or None
    mail_from = env.get("DUBAN_MAIL_FROM") or DEFAULT_MAIL_FROM
    if admin:
        try:
            admin = validate_address(admin, "管理员邮箱（DUBAN_ADMIN_EMAIL）")
        except MessageError as exc:
            raise ConfigError(str(exc)) from exc
    reports = []
    for transport in transports_from_env(env):
        report = await drain(
            engine,
            transport,
            now=now,
            worker=worker or default_worker(),
            limit=limit,
            admin_address=admin,
            mail_from=mail_from,
        )
        reports.append((transport.name, report))
    return reports


def status_lines(status: OutboxStatus) -> list[str]:
    """`duban outbox`: counts, then failed, in-flight and waiting rows with their last errors."""
    counts = "，".join(
        f"{STATUS_LABELS[key]}{status.counts.get(key, 0)}封" for key in (PENDING, SENDING, FAILED, "sent")
    )
    lines = [f"发件箱：{counts}"]
    if not status.rows:
        lines.append("没有待发送或发送失败的通知。")
        return lines
    current = None
    for row in status.rows:
        if row.status != current:
            current = row.status
            lines += ["", f"【{STATUS_LABELS[row.status]}】"]
        channel = CHANNEL_LABELS.get(row.channel, row.channel)
        lines.append(f"  #{row.id} {channel} {row.recipient_unit} <{row.address}> {row.subject}")
        detail = f"已尝试{row.attempts}次"
        if row.status == PENDING:
            detail += f"，下次发送：{format_datetime_cn(row.next_attempt_at)}"
        if row.last_error:
            detail += f"；最近错误：{row.last_error}"
        lines.append(f"      {detail}")
    return lines
