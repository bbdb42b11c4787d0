"""Writes each message to `<outbox_dir>/<sortable name>.eml` (DingTalk: `.json`): the demo default.

Files are written to a temporary name and renamed, so a reader (or a crash) never sees half a
message. The name derives from the round time and the Message-ID, so writing the same message
twice replaces the file with identical content: the transport is idempotent.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from datetime import UTC
from pathlib import Path

from duban.notifiers.message import DINGTALK, EMAIL, OutgoingMessage
from duban.notifiers.transports import Rate, SendResult

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class FileTransport:
    name = "file"
    channels = frozenset({EMAIL, DINGTALK})
    concurrency = 1
    rate: Rate | None = None

    def pace_key(self, message: OutgoingMessage) -> str:
        return "file"

    def __init__(self, outbox_dir: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.outbox_dir = Path(outbox_dir)
        self.fsync = fsync

    async def open(self) -> None:
        self.outbox_dir.mkdir(parents=True, exist_ok=True)

    async def close(self) -> None:
        return None

    def path_for(self, delivery: OutgoingMessage) -> Path:
        stamp = delivery.at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        unit = _UNSAFE.sub("_", delivery.recipient_unit)[:40] or "unit"
        digest = hashlib.sha256(delivery.message_id.encode("utf-8")).hexdigest()[:16]
        suffix = ".json" if delivery.channel == DINGTALK else ".eml"
        return self.outbox_dir / f"{stamp}-{unit}-{digest}{suffix}"

    async def send(self, delivery: OutgoingMessage) -> SendResult:
        target = self.path_for(delivery)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            self.outbox_dir.mkdir(parents=True, exist_ok=True)
            with open(temporary, "wb") as handle:
                handle.write(delivery.payload)
                if self.fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(temporary, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
            return SendResult.temporary(f"写入文件 {target} 失败：{exc.strerror or exc}")
        return SendResult.success(str(target))
