"""SMTP delivery with aiosmtplib: a small pool of reused connections, each sending sequentially.

Configured from the delivery settings (DUBAN_SMTP_*). The password never appears in a repr, a log
line or an error message.

What is permanent and what is not: only the server's 5xx answer about a recipient (RCPT) or the
message (DATA) gives up on the message. Everything about the server or the settings is temporary
and carries a `cause`, so the admin hears about it once and the messages wait: certificate and TLS
failures (note `ssl.SSLCertVerificationError` is also a `ValueError`), DNS failures, timeouts,
refused connections, a login the server refuses, a sender address the server refuses.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiosmtplib

from duban.notifiers.message import DEFAULT_MAIL_FROM, EMAIL, MessageError, OutgoingMessage, parse_mail_from
from duban.notifiers.transports import ConfigError, Rate, SendResult
from duban.notifiers.transports.redact import register_secret, scrub
from duban.notifiers.transports.settings import int_setting

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
    ehlo: str = ""  # the name given in EHLO; "" = this host's FQDN, else the sender's domain
    rate: int = 0  # messages per minute, 0 = no limit

    def __repr__(self) -> str:
        secret = "***" if self.password else "''"
        return (
            f"SmtpConfig(host={self.host!r}, port={self.port}, tls={self.tls!r}, user={self.user!r}, "
            f"password={secret}, mail_from={self.mail_from!r}, pool_size={self.pool_size}, "
            f"rate={self.rate}, ehlo={self.ehlo_name()!r})"
        )

    def ehlo_name(self) -> str:
        """DUBAN_SMTP_EHLO, else this host's fully qualified name, else the sender's domain.

        Many mail servers refuse or mark a bare `localhost`: a name with a dot is what they expect.
        """
        if self.ehlo:
            return self.ehlo
        fqdn = socket.getfqdn()
        if "." in fqdn and not fqdn.startswith("localhost"):
            return fqdn
        try:
            return parse_mail_from(self.mail_from)[1].rsplit("@", 1)[1]
        except (MessageError, IndexError):
            return "localhost"

    __str__ = __repr__

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SmtpConfig:
        tls = (env.get("DUBAN_SMTP_TLS") or "none").strip().lower()
        if tls not in TLS_MODES:
            raise ConfigError(f"DUBAN_SMTP_TLS=“{tls}”无效，可选值：none、starttls、tls")
        default_port = {"none": 25, "starttls": 587, "tls": 465}[tls]
        port = int_setting(env, "DUBAN_SMTP_PORT", default_port, minimum=1)
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
        ca_file = (env.get("DUBAN_SMTP_CA_FILE") or "").strip()
        if ca_file and not Path(ca_file).is_file():
            raise ConfigError(f"DUBAN_SMTP_CA_FILE指定的证书文件“{ca_file}”不存在或不是文件")
        ehlo = (env.get("DUBAN_SMTP_EHLO") or "").strip()
        if ehlo and (not ehlo.isascii() or any(c.isspace() for c in ehlo)):
            raise ConfigError(f"DUBAN_SMTP_EHLO=“{ehlo}”无效：应为本机的完整域名（ASCII，无空格），如 duban.lucheng.gov.cn")
        connections = "DUBAN_SMTP_CONNECTIONS" if (env.get("DUBAN_SMTP_CONNECTIONS") or "").strip() else "DUBAN_SMTP_POOL"
        register_secret(password)
        return cls(
            host=env.get("DUBAN_SMTP_HOST") or "127.0.0.1",
            port=port,
            tls=tls,
            user=env.get("DUBAN_SMTP_USER", ""),
            password=password,
            mail_from=mail_from,
            timeout=float(int_setting(env, "DUBAN_SMTP_TIMEOUT", 30, minimum=1)),
            pool_size=int_setting(env, connections, 4, minimum=1),
            ca_file=ca_file,
            verify=(env.get("DUBAN_SMTP_VERIFY", "1").strip().lower() not in ("0", "false", "no")),
            ehlo=ehlo,
            rate=int_setting(env, "DUBAN_SMTP_RATE", 0),
        )


class SmtpTransport:
    """`pool_size` connections, opened lazily and reused; a broken one is reopened on next use."""

    name = "smtp"
    channels = frozenset({EMAIL})

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self.concurrency = config.pool_size
        self.rate = Rate(config.rate, 60.0) if config.rate > 0 else None
        self._ehlo = config.ehlo_name()
        self._idle: asyncio.Queue[aiosmtplib.SMTP | None] | None = None
        self._all: list[aiosmtplib.SMTP] = []
        self._envelope_from = parse_mail_from(config.mail_from)[1]  # parsed once, not per message

    def __repr__(self) -> str:
        return f"SmtpTransport({self.config!r})"

    def pace_key(self, message: OutgoingMessage) -> str:
        return f"smtp:{self.config.host}"

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
            local_hostname=self._ehlo,
            use_tls=config.tls == "tls",
            # aiosmtplib upgrades to STARTTLS whenever offered unless told otherwise: be explicit.
            start_tls=config.tls == "starttls",
            tls_context=self._tls_context(),
        )

    def connection_problem(self, exc: BaseException) -> SendResult | None:
        """A failure of the connection or its TLS: temporary, with the cause in Chinese; else None."""
        where = f"{self.config.host}:{self.config.port}"
        chain = _chain(exc)
        for item in chain:
            if isinstance(item, ssl.SSLCertVerificationError):
                detail = scrub(str(item.verify_message or item.reason or item))
                return SendResult.temporary(
                    f"邮件服务器证书校验失败（{where}：{detail}），请检查 DUBAN_SMTP_CA_FILE：服务器使用自签名或"
                    "单位内部CA签发的证书时，应指向该CA证书（PEM格式）；并核对 DUBAN_SMTP_HOST 与证书上的域名一致。"
                    "邮件已保留，修正后自动重试",
                    cause="tls_cert",
                )
        for item in chain:
            if isinstance(item, ssl.SSLError):
                return SendResult.temporary(
                    f"与邮件服务器{where}建立TLS加密连接失败：{scrub(str(item.reason or item))}。请检查 DUBAN_SMTP_TLS"
                    "（465端口一般为tls，587端口为starttls，25端口为none或starttls）；邮件已保留，修正后自动重试",
                    cause="tls",
                )
        for item in chain:
            if isinstance(item, socket.gaierror):
                return SendResult.temporary(
                    f"无法解析邮件服务器地址“{self.config.host}”（DNS解析失败：{item.strerror or item}）。"
                    "请检查 DUBAN_SMTP_HOST 和本机的DNS设置；邮件已保留，稍后重试",
                    cause="dns",
                )
        if any(isinstance(item, (TimeoutError, asyncio.TimeoutError, aiosmtplib.SMTPTimeoutError)) for item in chain):
            return SendResult.temporary(
                f"连接邮件服务器{where}超时（超过{self.config.timeout:g}秒无响应）。邮件已保留，稍后重试；"
                "如持续发生，请检查网络、防火墙和 DUBAN_SMTP_PORT",
                cause="timeout",
            )
        if any(isinstance(item, (OSError, aiosmtplib.SMTPException)) for item in chain):
            return SendResult.temporary(
                f"无法连接邮件服务器{where}：{type(exc).__name__}: {scrub(str(exc))}。邮件已保留，稍后重试",
                cause="connect",
            )
        return None

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
        except aiosmtplib.SMTPSenderRefused as exc:
            await _reset(client)
            # The server refuses our sender address: a setting to fix, not a bad message.
            return SendResult.temporary(
                f"邮件服务器拒绝发件人地址{exc.sender}：{exc.code} {scrub(exc.message)}。"
                "请检查DUBAN_MAIL_FROM是否为该账号允许使用的发件地址；邮件已保留，修正后自动重试",
                cause="sender",
            )
        except aiosmtplib.SMTPAuthenticationError as exc:
            _drop(client)
            # Wrong credentials are an admin's fix, not the message's fault: retry later.
            return SendResult.temporary(
                f"SMTP认证失败（{exc.code}），请检查DUBAN_SMTP_USER和密码设置（DUBAN_SMTP_PASSWORD或"
                "DUBAN_SMTP_PASSWORD_FILE）；邮件已保留，修正后自动重试",
                cause="auth",
            )
        except aiosmtplib.SMTPDataError as exc:
            await _reset(client)
            return _classify(exc.code, exc.message, f"邮件服务器拒收发往{delivery.address}的邮件")
        except aiosmtplib.SMTPResponseException as exc:
            await _reset(client)
            # Any other refusal (HELO, MAIL options …) is about the session, not the recipient.
            return SendResult.temporary(
                f"邮件服务器拒绝：{exc.code} {scrub(exc.message)}（稍后重试）", cause="server"
            )
        except Exception as exc:
            _drop(client)
            problem = self.connection_problem(exc)
            if problem is not None:
                return problem
            if isinstance(exc, ValueError):  # an address aiosmtplib will not put on a command line
                return SendResult.permanent(
                    f"收件地址{delivery.address}无效：{scrub(str(exc))}（永久错误，不再重试）"
                )
            raise
        finally:
            self._idle.put_nowait(client)


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes: aiosmtplib wraps OSErrors in SMTPConnectError."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _classify(code: int, reply: str, what: str) -> SendResult:
    reply = scrub(reply)
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
