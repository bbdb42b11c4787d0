"""Putting a failed delivery back in the outbox, for the office's retry button (and any CLI)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from duban.notifiers.outbox import FAILED, PENDING
from duban.store.models import Delivery


def retry_delivery(session: Session, delivery_id: int, now: dt.datetime) -> Delivery:
    """A failed row becomes pending and due now, its attempts counted afresh; the error stays until the next try."""
    row = session.get(Delivery, delivery_id)
    if row is None:
        raise ValueError(f"没有编号为 #{delivery_id} 的通知")
    if row.status != FAILED:
        raise ValueError(f"通知 #{delivery_id} 不是发送失败状态，无需重试")
    row.status, row.attempts, row.next_attempt_at = PENDING, 0, now
    row.claimed_by, row.claimed_until = "", None
    return row
