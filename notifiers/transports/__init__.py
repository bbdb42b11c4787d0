"""Transports deliver `OutgoingMessage`s: SMTP, .eml files, DingTalk robot.

Every transport classifies each send as ok, temporary (try again later: connection refused,
timeouts, 4xx) or permanent (will never succeed as is: 5xx, bad address), so the outbox can
decide between backoff and giving up without knowing the protocol.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from duban.notifiers.message import OutgoingMessage


class Outcome(StrEnum):
    OK = "ok"
    TEMPORARY = "temporary"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    message: str = ""  # Chinese, shown to the admin; includes the server's reply when there is one

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    @classmethod
    def success(cls, message: str = "") -> SendResult:
        return cls(Outcome.OK, message)

    @classmethod
    def temporary(cls, message: str) -> SendResult:
        return cls(Outcome.TEMPORARY, message)

    @classmethod
    def permanent(cls, message: str) -> SendResult:
        return cls(Outcome.PERMANENT, message)


class Transport(Protocol):
    """Open once, send many (concurrently up to `concurrency`), close once."""

    name: str
    channels: frozenset[str]  # which outbox channels this transport delivers
    concurrency: int  # how many sends the outbox may run at once

    async def open(self) -> None: ...

    async def send(self, delivery: OutgoingMessage) -> SendResult: ...

    async def close(self) -> None: ...


class ConfigError(ValueError):
    """A transport setting is missing or wrong; the text is Chinese and names the variable."""


TRANSPORT_NAMES = ("file", "smtp", "dingtalk")


def transport_from_env(name: str | None = None, env: Mapping[str, str] | None = None) -> Transport:
    """Build the transport named by DUBAN_TRANSPORT (default: file) from the environment."""
    env = os.environ if env is None else env
    chosen = (name or env.get("DUBAN_TRANSPORT") or "file").strip().lower()
    if chosen == "file":
        from duban.notifiers.transports.file import FileTransport

        return FileTransport(env.get("DUBAN_OUTBOX_DIR") or "outbox")
    if chosen == "smtp":
        from duban.notifiers.transports.smtp import SmtpConfig, SmtpTransport

        return SmtpTransport(SmtpConfig.from_env(env))
    if chosen == "dingtalk":
        from duban.notifiers.transports.dingtalk import DingTalkConfig, DingTalkTransport

        return DingTalkTransport(DingTalkConfig.from_env(env))
    raise ConfigError(f"DUBAN_TRANSPORT=“{chosen}”无效，可选值：{'、'.join(TRANSPORT_NAMES)}")


__all__ = ["ConfigError", "Outcome", "SendResult", "Transport", "transport_from_env"]
