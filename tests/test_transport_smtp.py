"""SMTP transport against a real aiosmtpd server on 127.0.0.1: classification, TLS, reuse, secrets."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from duban.notifiers.message import OutgoingMessage, build_email
from duban.notifiers.samples import ROUND_AT
from duban.notifiers.sink import SmtpSink, free_port, make_self_signed_cert
from duban.notifiers.transports import ConfigError, Outcome, transport_from_env
from duban.notifiers.transports.smtp import SmtpConfig, SmtpTransport

MAIL_FROM = "工作专班 <zhuanban@lucheng.example.cn>"


def message(n: int, address: str = "fgj@lucheng.example.cn") -> OutgoingMessage:
    return build_email(
        idempotency_key=f"test|{n}|{address}",
        mail_from=MAIL_FROM,
        to_address=address,
        to_name="区发改局",
        subject=f"第{n}号通知",
        text="正文：请于5个工作日内报送整改措施。",
        html="<p>正文</p>",
        at=ROUND_AT,
        recipient_unit="drc",
    )


async def send_all(transport: SmtpTransport, messages: list[OutgoingMessage]) -> list[Outcome]:
    await transport.open()
    try:
        results = await asyncio.gather(*(transport.send(m) for m in messages))
    finally:
        await transport.close()
    return [r.outcome for r in results]


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as server:
        yield server


def config(port: int, **overrides: object) -> SmtpConfig:
    values: dict[str, object] = {"host": "127.0.0.1", "port": port, "mail_from": MAIL_FROM, "pool_size": 2}
    values.update(overrides)
    return SmtpConfig(**values)  # type: ignore[arg-type]


def test_messages_arrive_intact_and_connections_are_reused(sink: SmtpSink) -> None:
    outcomes = asyncio.run(send_all(SmtpTransport(config(sink.port)), [message(n) for n in range(20)]))
    assert outcomes == [Outcome.OK] * 20
    received = sink.handler.messages()
    assert sorted(str(m["Subject"]) for m in received) == sorted(f"第{n}号通知" for n in range(20))
    assert len(sink.handler.sessions) <= 2  # the pool's two connections carried all twenty


def test_a_4xx_reply_is_a_temporary_failure(sink: SmtpSink) -> None:
    sink.handler.data_reply = lambda _content: "451 4.3.0 mailbox busy, try later"
    [outcome] = asyncio.run(send_all(SmtpTransport(config(sink.port)), [message(1)]))
    assert outcome is Outcome.TEMPORARY


def test_a_5xx_reply_for_the_recipient_is_a_permanent_failure(sink: SmtpSink) -> None:
    sink.handler.rcpt_replies["nobody@lucheng.example.cn"] = "550 5.1.1 no such user"
    transport = SmtpTransport(config(sink.port))

    async def run() -> tuple[str, Outcome, Outcome]:
        await transport.open()
        bad = await transport.send(message(1, "nobody@lucheng.example.cn"))
        good = await transport.send(message(2))  # the connection is still usable afterwards
        await transport.close()
        return bad.message, bad.outcome, good.outcome

    text, bad, good = asyncio.run(run())
    assert bad is Outcome.PERMANENT and "550" in text and "nobody@lucheng.example.cn" in text
    assert good is Outcome.OK


def test_a_stopped_server_is_a_temporary_failure() -> None:
    transport = SmtpTransport(config(free_port(), timeout=2.0))
    [outcome] = asyncio.run(send_all(transport, [message(1)]))
    assert outcome is Outcome.TEMPORARY


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    made = make_self_signed_cert(tmp_path_factory.mktemp("tls"))
    if made is None:
        pytest.skip("neither the cryptography package nor the openssl CLI is available to make a certificate")
    return made


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_starttls_and_implicit_tls_work_with_a_trusted_self_signed_certificate(
    certificate: tuple[Path, Path], mode: str
) -> None:
    cert, key = certificate
    with SmtpSink(tls=mode, cert=cert, key=key) as server:
        transport = SmtpTransport(config(server.port, tls=mode, ca_file=str(cert)))
        outcomes = asyncio.run(send_all(transport, [message(n) for n in range(3)]))
        assert outcomes == [Outcome.OK] * 3
        assert len(server.handler.messages()) == 3


def test_an_untrusted_certificate_is_not_accepted_silently(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    with SmtpSink(tls="tls", cert=cert, key=key) as server:
        transport = SmtpTransport(config(server.port, tls="tls", timeout=3.0))
        [outcome] = asyncio.run(send_all(transport, [message(1)]))
        assert outcome is Outcome.TEMPORARY
        assert server.handler.count == 0


def test_plain_mode_does_not_upgrade_to_starttls_on_its_own(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    # A server that insists on STARTTLS refuses a client configured for none: no silent upgrade.
    with SmtpSink(tls="starttls", cert=cert, key=key) as server:
        [outcome] = asyncio.run(send_all(SmtpTransport(config(server.port, tls="none")), [message(1)]))
        assert outcome is not Outcome.OK
        assert server.handler.count == 0


def test_credentials_never_appear_in_repr(tmp_path: Path) -> None:
    secret_file = tmp_path / "password"
    secret_file.write_text("s3cret-口令\n", encoding="utf-8")
    settings = SmtpConfig.from_env(
        {
            "DUBAN_SMTP_HOST": "smtp.lucheng.example.cn",
            "DUBAN_SMTP_TLS": "starttls",
            "DUBAN_SMTP_USER": "zhuanban",
            "DUBAN_SMTP_PASSWORD_FILE": str(secret_file),
            "DUBAN_MAIL_FROM": MAIL_FROM,
        }
    )
    assert settings.password == "s3cret-口令"
    assert settings.port == 587
    for text in (repr(settings), str(settings), repr(SmtpTransport(settings))):
        assert "s3cret" not in text and "password=***" in text


def test_bad_settings_are_reported_in_chinese_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="DUBAN_SMTP_TLS"):
        SmtpConfig.from_env({"DUBAN_SMTP_TLS": "ssl"})
    with pytest.raises(ConfigError, match="DUBAN_SMTP_PORT"):
        SmtpConfig.from_env({"DUBAN_SMTP_PORT": "二十五"})
    with pytest.raises(ConfigError, match="DUBAN_MAIL_FROM"):
        SmtpConfig.from_env({"DUBAN_MAIL_FROM": "专班 <bad address>"})
    with pytest.raises(ConfigError, match="DUBAN_TRANSPORT"):
        transport_from_env(env={"DUBAN_TRANSPORT": "pigeon"})
