"""Every command delivers through every configured channel, fails safe, exits non-zero when
anything failed, and says whether the admin's report went out or is only queued.

Real peers: aiosmtpd (with a self-signed certificate where it matters) and a local server that
enforces DingTalk's robot contract; the commands run in-process through click."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from duban.cli import main
from duban.notifiers.sink import DingTalkRobot, SmtpSink, free_port, make_self_signed_cert
from duban.store.db import make_engine
from duban.store.models import Delivery

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "lucheng-2023"
MAIL_FROM = "鹿城区工作专班 <zhuanban@lucheng.example.org>"
ADMIN = "admin@lucheng.example.org"  # rules/lucheng/programme.yaml's admin_email
TOKEN, SECRET = "tok-9d8c7b6a5f4e", "SECd1e2f3a4b5c6"
ROUND = "2023-07-15T10:00"


class Duban:
    def __init__(self, database: Path, rules: Path) -> None:
        self.database, self.rules = database, rules
        self.env: dict[str, str] = {"DUBAN_MAIL_FROM": MAIL_FROM}

    def __call__(self, *args: str) -> Result:
        return CliRunner().invoke(main, ["--db", str(self.database), "--rules", str(self.rules), *args],
                                  env=self.env, catch_exceptions=False)

    def rows(self) -> list[Delivery]:
        engine = make_engine(str(self.database))
        try:
            with engine.connect() as conn:
                return list(conn.execute(select(Delivery).order_by(Delivery.id)).all())  # type: ignore[arg-type]
        finally:
            engine.dispose()

    def admin_reports(self) -> int:
        engine = make_engine(str(self.database))
        try:
            with engine.connect() as conn:
                return int(conn.scalar(select(func.count()).select_from(Delivery).where(Delivery.address == ADMIN)) or 0)
        finally:
            engine.dispose()


@pytest.fixture
def duban(tmp_path: Path, rules_copy: Path) -> Duban:
    runner = Duban(tmp_path / "duban.db", rules_copy)
    assert runner("db", "upgrade").exit_code == 0
    imported = runner("import", str(EXAMPLE))
    assert imported.exit_code == 0, imported.output
    return runner


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as server:
        yield server


@pytest.fixture
def robot() -> Iterator[DingTalkRobot]:
    with DingTalkRobot(TOKEN, SECRET) as server:
        yield server


def smtp_env(port: int, **extra: str) -> dict[str, str]:
    return {"DUBAN_TRANSPORT": "smtp", "DUBAN_SMTP_PORT": str(port), "DUBAN_SMTP_TIMEOUT": "5", **extra}


def test_a_self_signed_certificate_holds_the_round_and_tells_the_admin_once(duban: Duban, tmp_path: Path) -> None:
    made = make_self_signed_cert(tmp_path / "cert")
    if made is None:
        pytest.skip("需要 openssl 生成自签名证书")
    cert, key = made
    with SmtpSink(tls="tls", cert=cert, key=key) as server:
        duban.env.update(smtp_env(server.port, DUBAN_SMTP_TLS="tls"))
        first = duban("evaluate", "--at", ROUND, "--send")
        assert first.exit_code == 4
        assert "邮件服务器证书校验失败" in first.output and "DUBAN_SMTP_CA_FILE" in first.output
        assert "已排入发件箱，但尚未发出" in first.output  # … not "已发送给管理员"
        rows = duban.rows()
        assert rows and {row.status for row in rows} == {"pending"}  # nothing given up on
        assert duban.admin_reports() == 1
        again = duban("send")
        assert again.exit_code == 4 and duban.admin_reports() == 1  # the same problem is reported once
        assert "发送受阻尚未排除" in again.output
        duban.env["DUBAN_SMTP_CA_FILE"] = str(cert)
        requeued = duban("outbox", "--retry", "--failed")  # after the fix: send now, not after the backoff
        assert f"已重新排队{len(rows)}封" in requeued.output
        fixed = duban("send")
        assert fixed.exit_code == 0, fixed.output
        assert {row.status for row in duban.rows()} == {"sent"}
        subjects = [str(m["Subject"]) for m in server.handler.messages()]
        assert any("证书校验失败" in s for s in subjects) and len(subjects) == len(rows)


def test_a_550_fails_one_message_reports_it_and_retry_requeues_it(duban: Duban, sink: SmtpSink) -> None:
    sink.handler.rcpt_replies["fgj@lucheng.example.org"] = "550 5.1.1 mailbox unavailable"
    duban.env.update(smtp_env(sink.port))
    result = duban("evaluate", "--at", ROUND, "--send")
    assert result.exit_code == 4
    assert "报告已发出" in result.output and f"（{ADMIN}）" in result.output
    reports = [m for m in sink.handler.messages() if ADMIN in str(m["To"])]
    assert len(reports) == 1 and "fgj@lucheng.example.org" in reports[0].get_content()
    # The unit by its name; its code only in brackets, for the commands that take it (--unit fgj).
    assert "收件单位：区发改局（fgj），" in reports[0].get_content()
    failed = [row for row in duban.rows() if row.status == "failed"]
    assert [row.address for row in failed] == ["fgj@lucheng.example.org"]
    listed = duban("outbox")
    assert f"#{failed[0].id}" in listed.output and "--retry" in listed.output
    assert f"#{failed[0].id} 邮件 区发改局（fgj） <fgj@lucheng.example.org>" in listed.output, listed.output
    assert " fgj <" not in listed.output
    del sink.handler.rcpt_replies["fgj@lucheng.example.org"]
    retried = duban("outbox", "--retry", "--failed")
    assert retried.exit_code == 0 and "已重新排队1封" in retried.output
    sent = duban("send")
    assert sent.exit_code == 0 and {row.status for row in duban.rows()} == {"sent"}
    assert duban("outbox", "--retry", str(failed[0].id)).exit_code == 1  # sent: never sent twice


def test_email_and_dingtalk_together_in_evaluate_send(duban: Duban, sink: SmtpSink, robot: DingTalkRobot) -> None:
    duban.env.update(smtp_env(sink.port, DUBAN_TRANSPORT="smtp,dingtalk", DUBAN_DINGTALK_WEBHOOK=robot.url,
                              DUBAN_DINGTALK_SECRET=SECRET))
    result = duban("evaluate", "--at", ROUND, "--send")
    assert result.exit_code == 0, result.output
    assert "[smtp]" in result.output and "[dingtalk]" in result.output
    assert len(robot.received) == 1 and sink.handler.count >= 1
    assert {row.status for row in duban.rows()} == {"sent"}


def test_run_once_delivers_through_both_channels(duban: Duban, sink: SmtpSink, robot: DingTalkRobot) -> None:
    duban.env.update(smtp_env(sink.port, DUBAN_TRANSPORT="smtp,dingtalk", DUBAN_DINGTALK_WEBHOOK=robot.url,
                              DUBAN_DINGTALK_SECRET=SECRET))
    result = duban("run", "--once", "--at", ROUND)
    assert result.exit_code == 0, result.output
    assert robot.received and sink.handler.count
    assert "[smtp] 本次共处理" in result.output and "[dingtalk] 本次共处理1封：成功1封" in result.output
    assert {row.channel for row in duban.rows()} == {"email", "dingtalk"}
    assert {row.status for row in duban.rows()} == {"sent"}


def test_a_mail_server_down_does_not_hold_back_the_robot(duban: Duban, robot: DingTalkRobot) -> None:
    duban.env.update(smtp_env(free_port(), DUBAN_TRANSPORT="smtp,dingtalk", DUBAN_DINGTALK_WEBHOOK=robot.url,
                              DUBAN_DINGTALK_SECRET=SECRET))
    result = duban("evaluate", "--at", ROUND, "--send")
    assert result.exit_code == 4
    assert len(robot.received) == 1
    by_channel = {(row.channel, row.status) for row in duban.rows() if row.address != ADMIN}
    assert by_channel == {("email", "pending"), ("dingtalk", "sent")}


def test_a_webhook_without_the_dingtalk_transport_leaves_nothing_pending_forever(
    duban: Duban, sink: SmtpSink, robot: DingTalkRobot
) -> None:
    duban.env.update(smtp_env(sink.port, DUBAN_DINGTALK_WEBHOOK=robot.url))
    result = duban("evaluate", "--at", ROUND, "--send")
    assert result.exit_code == 0, result.output
    assert {row.channel for row in duban.rows()} == {"email"}  # no robot row nobody would send
    # Rows left by an earlier configuration are reported, not silently kept.
    duban.env.update(DUBAN_TRANSPORT="smtp,dingtalk", DUBAN_DINGTALK_SECRET=SECRET)
    robot.status = 502
    assert duban("evaluate", "--at", "2023-07-24T10:00", "--send").exit_code == 4
    duban.env["DUBAN_TRANSPORT"] = "smtp"
    stranded = duban("send")
    assert stranded.exit_code == 4 and "DUBAN_TRANSPORT" in stranded.output


def test_a_wrong_transport_name_is_refused_before_a_round_is_recorded(duban: Duban) -> None:
    duban.env["DUBAN_TRANSPORT"] = "smtp,pigeon"
    for args in (("evaluate", "--at", ROUND, "--send"), ("run", "--once", "--at", ROUND), ("send",)):
        result = duban(*args)
        assert result.exit_code != 0 and "pigeon" in result.output
    assert duban.rows() == []


def test_send_reports_to_programme_admin_email_not_an_environment_variable(duban: Duban, sink: SmtpSink) -> None:
    duban.env.update(smtp_env(free_port()))  # the mail server is down while the round is recorded
    assert duban("evaluate", "--at", ROUND, "--send").exit_code == 4
    assert "DUBAN_ADMIN_EMAIL" not in duban.env
    assert duban("outbox", "--retry", "--failed").exit_code == 0
    sink.handler.rcpt_replies["fgj@lucheng.example.org"] = "550 5.1.1 mailbox unavailable"
    duban.env.update(smtp_env(sink.port))
    result = duban("send")
    assert result.exit_code == 4 and ADMIN in result.output and "报告已发出" in result.output
    assert "fgj@lucheng.example.org" in result.output
    assert any(ADMIN in str(m["To"]) for m in sink.handler.messages())
