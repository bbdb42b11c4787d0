"""File transport: atomic, idempotent .eml files that any mail client opens; and `duban send`/`duban outbox`."""

from __future__ import annotations

import asyncio
import email
import email.policy
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import Engine

from duban.cli import main
from duban.notifiers.message import OutgoingMessage, build_email_messages
from duban.notifiers.outbox import enqueue
from duban.notifiers.render import DigestRenderer
from duban.notifiers.samples import sample_digest
from duban.notifiers.transports import Outcome
from duban.notifiers.transports.file import FileTransport
from duban.store.db import transaction

TEMPLATES = Path(__file__).resolve().parents[1] / "rules" / "templates"


def digest_messages() -> list[OutgoingMessage]:
    digest = sample_digest()
    return build_email_messages(digest, DigestRenderer(TEMPLATES).render(digest))


def test_each_message_is_one_eml_file_and_rewriting_it_is_harmless(tmp_path: Path) -> None:
    [message] = digest_messages()
    transport = FileTransport(tmp_path / "outbox")

    async def send_twice() -> list[Outcome]:
        await transport.open()
        return [(await transport.send(message)).outcome for _ in range(2)]

    assert asyncio.run(send_twice()) == [Outcome.OK, Outcome.OK]
    [written] = list((tmp_path / "outbox").iterdir())  # no temporary files left behind
    assert written.name.startswith("20230705T010000Z-drc-") and written.suffix == ".eml"
    parsed = email.message_from_bytes(written.read_bytes(), policy=email.policy.default)
    assert parsed["Message-ID"] == message.message_id
    assert "3项待办" in str(parsed["Subject"])


def test_an_unwritable_outbox_dir_is_a_temporary_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    [message] = digest_messages()
    result = asyncio.run(FileTransport(blocker / "outbox").send(message))
    assert result.outcome is Outcome.TEMPORARY and "写入文件" in result.message


def test_duban_send_writes_the_outbox_and_duban_outbox_reports_it(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    with transaction(sqlite_engine) as session:
        enqueue(session, digest_messages(), now=datetime(2023, 7, 5, tzinfo=UTC))
    db = str(sqlite_engine.url.database)
    runner = CliRunner()
    env = {"DUBAN_TRANSPORT": "file", "DUBAN_OUTBOX_DIR": str(tmp_path / "out")}
    before = runner.invoke(main, ["--db", db, "outbox"], env=env)
    assert before.exit_code == 0, before.output
    assert "待发送1封" in before.output and "【待发送】" in before.output

    sent = runner.invoke(main, ["--db", db, "send"], env=env)
    assert sent.exit_code == 0, sent.output
    assert "[file] 本次共处理1封：成功1封" in sent.output
    assert len(list((tmp_path / "out").glob("*.eml"))) == 1

    after = runner.invoke(main, ["--db", db, "outbox"], env=env)
    assert "没有待发送或发送失败的通知" in after.output


def test_duban_send_reports_bad_settings_in_chinese_without_a_traceback(sqlite_engine: Engine) -> None:
    db = str(sqlite_engine.url.database)
    result = CliRunner().invoke(main, ["--db", db, "send"], env={"DUBAN_TRANSPORT": "smtp", "DUBAN_SMTP_TLS": "ssl"})
    assert result.exit_code == 1
    assert "发送配置错误" in result.output and "DUBAN_SMTP_TLS" in result.output
    assert "Traceback" not in result.output
