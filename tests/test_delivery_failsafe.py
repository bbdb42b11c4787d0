"""Delivery fails safe against real peers: a mail server with a self-signed certificate, a name
that does not resolve, a server that never answers, a mailbox that does not exist.

Only the server's 5xx about a recipient gives up on a message; everything about the server or
the settings keeps the message and says, in Chinese, what to fix."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from duban.notifiers.message import OutgoingMessage, build_email
from duban.notifiers.outbox import drain, enqueue
from duban.notifiers.samples import ROUND_AT
from duban.notifiers.sink import SmtpSink, free_port, make_self_signed_cert
from duban.notifiers.transports import Outcome, SendResult
from duban.notifiers.transports.redact import scrub
from duban.notifiers.transports.smtp import SmtpConfig, SmtpTransport
from duban.store.db import transaction

MAIL_FROM = "鹿城区工作专班 <zhuanban@lucheng.example.org>"


def message(n: int = 1, address: str = "fgj@lucheng.example.org") -> OutgoingMessage:
    return build_email(idempotency_key=f"failsafe|{n}|{address}", mail_from=MAIL_FROM, to_address=address,
                       to_name="区发改局", subject=f"第{n}号督办提醒", text="请于5个工作日内报送整改措施。",
                       html=None, at=ROUND_AT, recipient_unit="drc")


def send_one(config: SmtpConfig, item: OutgoingMessage | None = None) -> SendResult:
    async def run() -> SendResult:
        transport = SmtpTransport(config)
        await transport.open()
        try:
            return await transport.send(item or message())
        finally:
            await transport.close()

    return asyncio.run(run())


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    made = make_self_signed_cert(tmp_path_factory.mktemp("cert"))
    if made is None:
        pytest.skip("需要 cryptography 或 openssl 生成自签名证书")
    return made


@pytest.mark.parametrize("mode", ["tls", "starttls"])
def test_a_self_signed_certificate_is_a_temporary_problem_that_names_the_ca_file_setting(
    certificate: tuple[Path, Path], mode: str
) -> None:
    cert, key = certificate
    with SmtpSink(tls=mode, cert=cert, key=key) as sink:
        result = send_one(SmtpConfig(port=sink.port, tls=mode, mail_from=MAIL_FROM, timeout=5))
        assert result.outcome is Outcome.TEMPORARY and result.cause == "tls_cert"
        assert "邮件服务器证书校验失败" in result.message and "DUBAN_SMTP_CA_FILE" in result.message
        assert "无效" not in result.message  # never taken for a bad address
        trusted = send_one(SmtpConfig(port=sink.port, tls=mode, mail_from=MAIL_FROM, timeout=5, ca_file=str(cert)))
        assert trusted.outcome is Outcome.OK and sink.handler.count == 1


def test_a_mail_server_name_that_does_not_resolve_is_a_temporary_dns_problem() -> None:
    result = send_one(SmtpConfig(host="mail.lucheng.invalid", port=25, mail_from=MAIL_FROM, timeout=5))
    assert result.outcome is Outcome.TEMPORARY and result.cause == "dns"
    assert "DNS" in result.message and "DUBAN_SMTP_HOST" in result.message


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    listener.close()


def test_a_server_that_never_answers_is_a_temporary_timeout(silent_server: int) -> None:
    result = send_one(SmtpConfig(port=silent_server, mail_from=MAIL_FROM, timeout=1))
    assert result.outcome is Outcome.TEMPORARY and result.cause == "timeout"
    assert "超时" in result.message


def test_a_refused_connection_is_temporary() -> None:
    result = send_one(SmtpConfig(port=free_port(), mail_from=MAIL_FROM, timeout=2))
    assert result.outcome is Outcome.TEMPORARY and result.cause == "connect"


def test_only_a_5xx_for_the_recipient_is_permanent_and_a_refused_sender_is_a_setting() -> None:
    with SmtpSink() as sink:
        sink.handler.rcpt_replies["nobody@lucheng.example.org"] = "550 5.1.1 no such user"
        bad = send_one(SmtpConfig(port=sink.port, mail_from=MAIL_FROM), message(2, "nobody@lucheng.example.org"))
        assert bad.outcome is Outcome.PERMANENT and "550" in bad.message
        sink.handler.rcpt_replies["fgj@lucheng.example.org"] = "450 4.2.1 mailbox busy"
        busy = send_one(SmtpConfig(port=sink.port, mail_from=MAIL_FROM))
        assert busy.outcome is Outcome.TEMPORARY


def test_the_ehlo_name_is_configurable_and_never_a_bare_localhost() -> None:
    with SmtpSink() as sink:
        assert send_one(SmtpConfig(port=sink.port, mail_from=MAIL_FROM, ehlo="duban.lucheng.example.org")).ok
        assert send_one(SmtpConfig(port=sink.port, mail_from=MAIL_FROM)).ok
    named, default = sink.handler.ehlo_names
    assert named == "duban.lucheng.example.org"
    assert "." in default and default != "localhost"


def test_smtp_is_paced_to_its_rate_and_connection_count(sqlite_engine: object) -> None:
    from sqlalchemy import Engine

    assert isinstance(sqlite_engine, Engine)
    now = [ROUND_AT + timedelta(seconds=1)]

    async def sleep(seconds: float) -> None:
        now[0] += timedelta(seconds=seconds)

    with transaction(sqlite_engine) as session:
        enqueue(session, [message(n) for n in range(7)], now=ROUND_AT)
    with SmtpSink() as sink:
        config = SmtpConfig(port=sink.port, mail_from=MAIL_FROM, pool_size=2, rate=3)
        start = now[0]
        report = asyncio.run(drain(sqlite_engine, SmtpTransport(config), now=lambda: now[0], worker="w", sleep=sleep,
                                   max_wait=timedelta(minutes=2)))
    assert report.sent == 7 and sink.handler.count == 7
    assert len(sink.handler.sessions) <= 2
    # Three a minute: 3 at once, 3 a minute later, the last a minute after that.
    assert timedelta(minutes=2) <= now[0] - start < timedelta(minutes=2, seconds=5)


def test_smtp_settings_read_rate_connections_and_ehlo(tmp_path: Path) -> None:
    from duban.notifiers.transports import ConfigError

    config = SmtpConfig.from_env({"DUBAN_SMTP_RATE": "120", "DUBAN_SMTP_CONNECTIONS": "3",
                                  "DUBAN_SMTP_EHLO": "duban.lucheng.gov.cn"})
    assert (config.rate, config.pool_size, config.ehlo_name()) == (120, 3, "duban.lucheng.gov.cn")
    assert SmtpConfig.from_env({"DUBAN_SMTP_POOL": "5"}).pool_size == 5  # the older name still works
    with pytest.raises(ConfigError, match="DUBAN_SMTP_CA_FILE"):
        SmtpConfig.from_env({"DUBAN_SMTP_CA_FILE": str(tmp_path / "missing.pem")})


def test_secrets_are_scrubbed_from_any_error_text() -> None:
    from duban.notifiers.transports.redact import register_secret

    register_secret("s3cr3t-Passw0rd")
    text = ("POST https://oapi.dingtalk.com/robot/send?access_token=abc123def&timestamp=1&sign=xyz%3D failed; "
            "smtp://zhuanban:hunter22@mail.example.org password=hunter22 and s3cr3t-Passw0rd")
    cleaned = scrub(text)
    for secret in ("abc123def", "xyz%3D", "hunter22", "s3cr3t-Passw0rd"):
        assert secret not in cleaned
    assert "oapi.dingtalk.com" in cleaned and "mail.example.org" in cleaned
