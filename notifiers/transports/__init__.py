"""Transports deliver `OutgoingMessage`s: SMTP, .eml files, DingTalk robot.

Every transport classifies each send as ok, temporary (try again later: connection refused,
timeouts, 4xx) or permanent (will never succeed as is: 5xx, bad address), so the outbox can
decide between backoff and giving up without knowing the protocol.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from duban.notifiers.message import OutgoingMessage


class Outcome(StrEnum):
    OK = "ok"
    TEMPORARY = "temporary"
    PERMANENT = "permanent"
    # The peer said "too fast" (DingTalk errcode 130101): not the message's fault, so no attempt is
    # spent; the transport is paused for `retry_after` seconds and the row waits that long.
    THROTTLED = "throttled"


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    message: str = ""  # Chinese, shown to the admin; includes the server's reply when there is one
    # Why a temporary failure happened when it is the server's or the settings' problem rather than
    # the message's ("tls_cert", "tls", "dns", "timeout", "connect", "auth", "sender", "config"):
    # such a problem is reported to the admin once, not once per message.
    cause: str = ""
    retry_after: float | None = None  # seconds; THROTTLED only

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    @classmethod
    def success(cls, message: str = "") -> SendResult:
        return cls(Outcome.OK, message)

    @classmethod
    def temporary(cls, message: str, cause: str = "") -> SendResult:
        return cls(Outcome.TEMPORARY, message, cause)

    @classmethod
    def throttled(cls, message: str, retry_after: float) -> SendResult:
        return cls(Outcome.THROTTLED, message, "throttled", retry_after)

    @classmethod
    def permanent(cls, message: str) -> SendResult:
        return cls(Outcome.PERMANENT, message)


@dataclass(frozen=True)
class Rate:
    """At most `count` sends per `seconds` (a sliding window), per pacing key."""

    count: int
    seconds: float = 60.0


class Transport(Protocol):
    """Open once, send many (concurrently up to `concurrency`), close once.

    `rate` (None = as fast as `concurrency` allows) is enforced by the outbox per `pace_key(message)`,
    e.g. per DingTalk robot, with the history of recent sends read from the outbox itself, so
    consecutive commands and the service share one budget.
    """

    name: str
    channels: frozenset[str]  # which outbox channels this transport delivers
    concurrency: int  # how many sends the outbox may run at once
    rate: Rate | None

    def pace_key(self, message: OutgoingMessage) -> str: ...

    async def open(self) -> None: ...

    async def send(self, delivery: OutgoingMessage) -> SendResult: ...

    async def close(self) -> None: ...


class ConfigError(ValueError):
    """A transport setting is missing or wrong; the text is Chinese and names the variable."""


TRANSPORT_NAMES = ("file", "smtp", "dingtalk")


def transport_from_env(name: str | None = None, env: Mapping[str, str] | None = None) -> Transport:
    """One transport by name (default: the first of DUBAN_TRANSPORT), from the delivery settings."""
    from duban.notifiers.transports.settings import build_transport, delivery_settings

    settings = delivery_settings(env, only=name)
    return build_transport(settings, settings.transports[0])


__all__ = ["ConfigError", "Outcome", "Rate", "SendResult", "Transport", "transport_from_env"]
