"""Every delivery setting is read here, from one mapping of DUBAN_* names to strings.

The mapping is the process environment by default (`settings_source`). A configuration file can
feed the same names: set `settings_source` to a function returning the file's values overlaid by
the environment, and every command and the service see them (nothing else reads DUBAN_SMTP_*,
DUBAN_DINGTALK_*, DUBAN_TRANSPORT, DUBAN_OUTBOX_DIR or DUBAN_MAIL_FROM).

| name | default | meaning |
|---|---|---|
| DUBAN_TRANSPORT | file | comma-separated: file, smtp, dingtalk (e.g. "smtp,dingtalk") |
| DUBAN_OUTBOX_DIR | outbox | where the file transport writes .eml/.json |
| DUBAN_MAIL_FROM | 工作专班 <noreply@duban.invalid> | sender |
| DUBAN_SMTP_HOST/_PORT/_TLS/_USER/_PASSWORD/_PASSWORD_FILE | 127.0.0.1/25,587,465/none | server |
| DUBAN_SMTP_CA_FILE, DUBAN_SMTP_VERIFY | system CAs, 1 | trust a private CA; 0 disables checks |
| DUBAN_SMTP_EHLO | this host's FQDN, else the sender's domain | the EHLO name |
| DUBAN_SMTP_CONNECTIONS (alias DUBAN_SMTP_POOL) | 4 | connections at once |
| DUBAN_SMTP_RATE | 0 (no limit) | messages per minute |
| DUBAN_SMTP_TIMEOUT | 30 | seconds |
| DUBAN_DINGTALK_WEBHOOK, DUBAN_DINGTALK_SECRET | | the working group's robot |
| DUBAN_DINGTALK_PER_MINUTE | 20 | messages per minute per robot (DingTalk allows 20) |
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from duban.notifiers.message import DEFAULT_MAIL_FROM, DINGTALK, EMAIL, MessageError, parse_mail_from
from duban.notifiers.transports import TRANSPORT_NAMES, ConfigError, Transport


def _environment() -> Mapping[str, str]:
    return os.environ


# Where the settings come from; a configuration file layer replaces this (environment still wins).
settings_source: Callable[[], Mapping[str, str]] = _environment


def current_env() -> Mapping[str, str]:
    return settings_source()


@dataclass(frozen=True)
class DeliverySettings:
    transports: tuple[str, ...]
    env: Mapping[str, str]

    @property
    def mail_from(self) -> str:
        return self.env.get("DUBAN_MAIL_FROM") or DEFAULT_MAIL_FROM

    @property
    def outbox_dir(self) -> str:
        return self.env.get("DUBAN_OUTBOX_DIR") or "outbox"

    @property
    def webhook(self) -> str:
        return (self.env.get("DUBAN_DINGTALK_WEBHOOK") or "").strip()

    def channels(self) -> frozenset[str]:
        """The outbox channels some configured transport carries: rounds create rows only for these.

        E-mail always; DingTalk when the dingtalk transport is configured, or when the file transport
        (which writes DingTalk messages as .json previews) runs with a webhook set.
        """
        channels = {EMAIL}
        if "dingtalk" in self.transports or ("file" in self.transports and self.webhook):
            channels.add(DINGTALK)
        return frozenset(channels)


def parse_transport_names(raw: str | None) -> tuple[str, ...]:
    names = [name.strip().lower() for name in (raw or "file").split(",") if name.strip()]
    for name in names:
        if name not in TRANSPORT_NAMES:
            raise ConfigError(f"DUBAN_TRANSPORT中的“{name}”无效，可选值：{'、'.join(TRANSPORT_NAMES)}（多个用逗号分隔，如 smtp,dingtalk）")
    return tuple(dict.fromkeys(names)) or ("file",)


def delivery_settings(env: Mapping[str, str] | None = None, *, only: str | None = None) -> DeliverySettings:
    """Read and check the delivery settings; raises ConfigError (Chinese, naming the variable).

    Every configured transport is built once here so that a wrong setting is reported before a
    round is recorded, not after.
    """
    env = current_env() if env is None else env
    names = parse_transport_names(only if only is not None else env.get("DUBAN_TRANSPORT"))
    settings = DeliverySettings(transports=names, env=env)
    try:
        parse_mail_from(settings.mail_from)
    except MessageError as exc:
        raise ConfigError(str(exc)) from exc
    for name in names:
        build_transport(settings, name)
    return settings


def configured_channels(env: Mapping[str, str] | None = None) -> frozenset[str]:
    """`DeliverySettings.channels` without raising: a round still records what it decided."""
    env = current_env() if env is None else env
    try:
        names = parse_transport_names(env.get("DUBAN_TRANSPORT"))
    except ConfigError:
        names = ("file",)
    return DeliverySettings(transports=names, env=env).channels()


def build_transport(settings: DeliverySettings, name: str) -> Transport:
    env = settings.env
    if name == "file":
        from duban.notifiers.transports.file import FileTransport

        return FileTransport(settings.outbox_dir)
    if name == "smtp":
        from duban.notifiers.transports.smtp import SmtpConfig, SmtpTransport

        return SmtpTransport(SmtpConfig.from_env(env))
    if name == "dingtalk":
        from duban.notifiers.transports.dingtalk import DingTalkConfig, DingTalkTransport

        return DingTalkTransport(DingTalkConfig.from_env(env))
    raise ConfigError(f"DUBAN_TRANSPORT中的“{name}”无效，可选值：{'、'.join(TRANSPORT_NAMES)}")


def build_transports(settings: DeliverySettings) -> list[Transport]:
    return [build_transport(settings, name) for name in settings.transports]


def int_setting(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}=“{raw}”不是整数") from exc
    if value < minimum:
        raise ConfigError(f"{name}=“{raw}”不能小于{minimum}")
    return value
