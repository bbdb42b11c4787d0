"""SMTP delivery with aiosmtplib: a small pool of reused connections, each sending sequentially.

Configured from the environment (DUBAN_SMTP_*). The password never appears in a repr, a log
line or an error message.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiosmtplib

from duban.notifiers.message import DEFAULT_MAIL_FROM, EMAIL, MessageError, OutgoingMessage, parse_mail_from
from duban.notifiers.transports import ConfigError, SendResult

TLS_MODES = ("none", "starttls", "tls")


@dataclass(frozen=True)
class SmtpConfig:
    host: str = "127.0.0.1"
    port: int = 25
    tls: str = "none"  # none | starttls | tls (implicit TLS, usually port 465)
    user: str = ""
    password: str = field(default="", repr=False)
    mail_from: str = DEFAULT_MAIL_FROM
    timeout: float = 30.0
    pool_size: int = 4
    ca_file: str = ""  # trust this certificate bundle (e.g. a self-signed server certificate)
    verify: bool = True

    def __repr__(self) -> str:
        secret = "***" if self.password else "''"
        return (
            f"SmtpConfig(host={self.host!r}, port={self.port}, tls={self.tls!r}, user={self.user!r}, "
            f"password={secret}, mail_from={self.mail_from!r}, pool_size={self.pool_size})"
        )

    __str__ = __repr__

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SmtpConfig:
        tls = (env.get("DUBAN_SMTP_TLS") or "none").strip().lower()
        if tls not in TLS_MODES:
            raise ConfigError(f"DUBAN_SMTP_TLS=“{tls}”无效，可选值：none、starttls、tls")
        default_port = {"none": 25, "starttls": 587, "tls": 465}[tls]
        port = _int_setting(env, "DUBAN_SMTP_PORT", default_port)
        password = env.get("DUBAN_SMTP_PASSWORD", "")
        password_file = env.get("DUBAN_SMTP_PASSWORD_FILE", "")
        if password_file:
            try:
                password = Path(password_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"无法读取DUBAN_SMTP_PASSWORD_FILE指定的文件“{password_file}”：{exc.strerror}"
                ) from exc
        mail_from = env.get("DUBAN_MAIL_FROM") or DEFAULT_MAIL_FROM
        try:
            parse_mail_from(mail_from)
        except MessageError as exc:
            raise ConfigError(str(exc)) from exc
        return cls(
            host=env.get("DUBAN_SMTP_HOST") or "127.0.0.1",
            port=port,
            tls=tls,
            user=env.get("DUBAN_SMTP_USER", ""),
            password=password,
            mail_from=mail_from,
            timeout=float(_int_setting(env, "DUBAN_SMTP_TIMEOUT", 30)),
            pool_size=max(1, _int_setting(env, "DUBAN_SMTP_POOL", 4)),
            ca_file=env.get("DUBAN_SMTP_CA_FILE", ""),
            verify=(env.get("DUBAN_SMTP_VERIFY", "1").strip().lower() not in ("0", "false", "no")),
        )


def _int_setting(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}=“{raw}”不是整数") from exc


class SmtpTransport:
    """`pool_size` connections, opened lazily and reused; a broken one is reopened on next use."""

    name = "smtp"
    channels = frozenset({EMAIL})

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self.concurrency = config.pool_size
        self._idle: asyncio.Queue[aiosmtplib.SMTP | None] | None = None
        self._all: list[aiosmtplib.SMTP] = []
        self._envelope_from = parse_mail_from(config.mail_from)[1]  # parsed once, not per message

    def __repr__(self) -> str:
        return f"SmtpTransport({self.config!r})"

    def _tls_context(self) -> ssl.SSLContext | None:
        if self.config.tls == "none":
            return None
        context = ssl.create_default_context(cafile=self.config.ca_file or None)
        if not self.config.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _new_client(self) -> aiosmtplib.SMTP:
        config = self.config
        return aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            username=config.user or None,
            password=config.password or None,
            timeout=config.timeout,
            use_tls=config.tls == "tls",
            # aiosmtplib upgrades to STARTTLS whenever offered unless told otherwise: be explicit.
            start_tls=config.tls == "starttls",
            tls_context=self._tls_context(),
        )

    async def open(self) -> None:
        self._idle = asyncio.Queue()
        for _ in range(self.config.pool_size):
            self._idle.put_nowait(None)  # connect lazily: a pool slot without a connection yet

    async def close(self) -> None:
        for client in self._all:
            if client.is_connected:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError):
                    client.close()
        self._all.clear()
        self._idle = None

    async def send(self, delivery: OutgoingMessage) -> SendResult:
        if self._idle is None:
            await self.open()
        assert self._idle is not None
        client = await self._idle.get()
        try:
            if client is None or not client.is_connected:
                if client is not None:
                    self._all.remove(client)
                client = self._new_client()
                self._all.append(client)
                await client.connect()
            # The envelope by hand rather than `sendmail`: one recipient, a payload the outbox
            # stored with CRLF line ends. sendmail re-validated both addresses and scanned the
            # 12 KB message an extra time to size it: a fifth of the client's CPU per message.
            size = [f"SIZE={len(delivery.payload)}"] if client.supports_extension("size") else None
            await client.mail(delivery.envelope_from or self._envelope_from, options=size)
            await client.rcpt(delivery.address)
            await client.data(delivery.payload)
            return SendResult.success()
        except aiosmtplib.SMTPRecipientRefused as exc:
            await _reset(client)
            return _classify(exc.code, exc.message, f"收件地址{delivery.address}被拒收")
        except ValueError as exc:  # an address aiosmtplib will not put on a command line
            await _reset(client)
            return SendResult.permanent(f"收件地址{delivery.address}无效：{exc}（永久错误，不再重试）")
        except aiosmtplib.SMTPAuthenticationError as exc:
            _drop(client)
            # Wrong credentials are an admin's fix, not the message's fault: retry later.
            return SendResult.temporary(f"SMTP认证失败（{exc.code}），请检查DUBAN_SMTP_USER和密码设置")
        except aiosmtplib.SMTPResponseException as exc:
            await _reset(client)
            return _classify(exc.code, exc.message, "邮件服务器拒绝")
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            _drop(client)
            where = f"{self.config.host}:{self.config.port}"
            return SendResult.temporary(f"无法连接邮件服务器{where}：{type(exc).__name__}: {exc}")
        finally:
            self._idle.put_nowait(client)


def _classify(code: int, reply: str, what: str) -> SendResult:
    text = f"{what}：{code} {reply}".strip()
    if 400 <= code < 500:
        return SendResult.temporary(f"{text}（临时错误，稍后重试）")
    return SendResult.permanent(f"{text}（永久错误，不再重试）")


async def _reset(client: aiosmtplib.SMTP | None) -> None:
    """Leave the connection ready for the next message, or drop it if it is unusable."""
    if client is None or not client.is_connected:
        return
    try:
        await client.rset()
    except (aiosmtplib.SMTPException, OSError):
        _drop(client)


def _drop(client: aiosmtplib.SMTP | None) -> None:
    if client is not None and client.is_connected:
        client.close()
