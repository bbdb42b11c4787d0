"""DingTalk robot: signed webhook, markdown body, errcode classification and pacing — against a
local server that enforces the documented robot contract (signature, 20 a minute, 130101 for 10
minutes), on an injected clock: minutes of robot time, no real sleeping."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select

from duban.notifiers.message import OutgoingMessage, build_dingtalk_message, build_email_messages
from duban.notifiers.outbox import drain, enqueue
from duban.notifiers.render import DigestRenderer
from duban.notifiers.samples import ROUND_AT, sample_digest
from duban.notifiers.sink import DingTalkRobot, free_port
from duban.notifiers.transports import Outcome
from duban.notifiers.transports.dingtalk import DingTalkConfig, DingTalkTransport
from duban.store.db import transaction
from duban.store.models import Delivery

SECRET = "SEC0123456789abcdef"
TOKEN = "robot-token-5f1c2a9e"
TEMPLATES = Path(__file__).resolve().parents[1] / "rules" / "templates"


class Clock:
    """The one clock of the test: the robot, the signature timestamps and the outbox read it; sleeping advances it."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self.slept = 0.0

    def __call__(self) -> datetime:
        return self.now

    def ms(self) -> int:
        return int(self.now.timestamp() * 1000)

    def seconds(self) -> float:
        return self.now.timestamp()

    async def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock(ROUND_AT + timedelta(seconds=1))


@pytest.fixture
def robot(clock: Clock) -> Iterator[DingTalkRobot]:
    with DingTalkRobot(TOKEN, SECRET, clock=clock.seconds) as server:
        yield server


@functools.cache
def _robot_message() -> OutgoingMessage:
    digest = sample_digest()
    return build_dingtalk_message(digest, DigestRenderer(TEMPLATES).render(digest))


def message(n: int = 0) -> OutgoingMessage:
    built = _robot_message()
    return dataclasses.replace(built, idempotency_key=f"{built.idempotency_key}|{n}", message_id=f"<{n}@robot>")


def transport(robot: DingTalkRobot, clock: Clock, secret: str = SECRET, **config: Any) -> DingTalkTransport:
    return DingTalkTransport(DingTalkConfig(webhook=robot.url, secret=secret, **config), clock_ms=clock.ms)


def send(sender: DingTalkTransport) -> Any:
    return asyncio.run(sender.send(message()))


def backlog(engine: Engine, count: int) -> None:
    with transaction(engine) as session:
        enqueue(session, [message(n) for n in range(count)], now=ROUND_AT)


def rows(engine: Engine) -> list[Delivery]:
    with transaction(engine) as session:
        found = list(session.scalars(select(Delivery).order_by(Delivery.id)))
        session.expunge_all()
    return found


def test_a_signed_markdown_message_is_accepted(robot: DingTalkRobot, clock: Clock) -> None:
    result = send(transport(robot, clock))
    assert result.outcome is Outcome.OK
    [body] = robot.received
    assert body["msgtype"] == "markdown"
    assert "服务业投资占全区固定资产投资比重低于2/3" in body["markdown"]["text"]


def test_a_wrong_secret_keeps_the_message_and_names_the_errcode_and_the_setting(robot: DingTalkRobot, clock: Clock) -> None:
    result = send(transport(robot, clock, secret="wrong"))
    # The robot's settings are at fault, not the message: it waits for the admin's fix.
    assert result.outcome is Outcome.TEMPORARY and result.cause == "config"
    assert "310000" in result.message and "DUBAN_DINGTALK_SECRET" in result.message
    assert robot.received == []


def test_a_signature_older_than_an_hour_is_refused_by_the_contract(robot: DingTalkRobot, clock: Clock) -> None:
    stale = DingTalkTransport(DingTalkConfig(webhook=robot.url, secret=SECRET), clock_ms=lambda: clock.ms() - 3_700_000)
    assert send(stale).outcome is Outcome.TEMPORARY
    assert robot.rejected == 1 and robot.received == []


def test_too_fast_is_a_pause_not_a_failure_and_a_gateway_error_is_temporary(robot: DingTalkRobot, clock: Clock) -> None:
    sender = transport(robot, clock, rate=0)  # unpaced, to make the robot say "too fast"
    results = [send(sender) for _ in range(21)]
    assert [r.outcome for r in results[:20]] == [Outcome.OK] * 20
    assert results[20].outcome is Outcome.THROTTLED and results[20].retry_after == 600
    assert "130101" in results[20].message
    robot.status = 502
    assert send(sender).outcome is Outcome.TEMPORARY


def test_an_unreachable_robot_is_a_temporary_failure(clock: Clock) -> None:
    config = DingTalkConfig(webhook=f"http://127.0.0.1:{free_port()}/robot/send?access_token=x", secret=SECRET)
    assert send(DingTalkTransport(config, clock_ms=clock.ms)).outcome is Outcome.TEMPORARY


def test_the_webhook_token_and_secret_are_masked_in_repr(robot: DingTalkRobot, clock: Clock) -> None:
    text = repr(transport(robot, clock))
    assert TOKEN not in text and SECRET not in text


def test_a_dingtalk_drain_sends_only_robot_rows(sqlite_engine: Engine, robot: DingTalkRobot, clock: Clock) -> None:
    digest = sample_digest()
    rendered = DigestRenderer(TEMPLATES).render(digest)
    with transaction(sqlite_engine) as session:
        enqueue(session, [*build_email_messages(digest, rendered), build_dingtalk_message(digest, rendered)],
                now=ROUND_AT)
    report = asyncio.run(drain(sqlite_engine, transport(robot, clock), now=clock, worker="robot", sleep=clock.sleep))
    assert report.sent == 1 and len(robot.received) == 1
    states = {row.channel: row.status for row in rows(sqlite_engine)}
    assert states == {"dingtalk": "sent", "email": "pending"}


def test_a_backlog_of_100_goes_out_at_20_a_minute_without_one_too_fast(
    sqlite_engine: Engine, robot: DingTalkRobot, clock: Clock
) -> None:
    backlog(sqlite_engine, 100)
    start = clock.now
    report = asyncio.run(drain(sqlite_engine, transport(robot, clock), now=clock, worker="w", sleep=clock.sleep))
    elapsed = (clock.now - start).total_seconds()
    assert report.sent == 100 and len(robot.received) == 100
    assert robot.calls == 100 and robot.throttled == 0  # every call accepted: none wasted
    assert 4 * 60 <= elapsed <= 4 * 61 + 1  # five windows of twenty, a minute (and a second) apart
    assert {row.attempts for row in rows(sqlite_engine)} == {1}


def test_a_robot_another_sender_made_too_fast_is_left_alone_for_10_minutes_without_spending_attempts(
    sqlite_engine: Engine, robot: DingTalkRobot, clock: Clock
) -> None:
    robot.blocked_until = clock.seconds() + 300  # someone else exhausted the robot 5 minutes ago
    backlog(sqlite_engine, 30)
    report = asyncio.run(drain(sqlite_engine, transport(robot, clock), now=clock, worker="w", sleep=clock.sleep))
    assert robot.calls == 1 and robot.throttled == 1  # one call learns it; no more are made
    # The claimed batch goes back to the queue; nothing is failed and no attempt is spent.
    assert report.sent == 0 and report.throttled == 1 and report.failed == 0 and report.deferred == report.claimed
    paused_until = clock.now + timedelta(minutes=10)
    assert report.resume_at == paused_until
    assert all(row.attempts == 0 and row.status == "pending" for row in rows(sqlite_engine))
    # Another command within the pause: the pause is remembered in the database, no call is made.
    clock.now += timedelta(minutes=5)
    backlog_more = message(999)
    with transaction(sqlite_engine) as session:
        enqueue(session, [backlog_more], now=clock.now)
    again = asyncio.run(drain(sqlite_engine, transport(robot, clock), now=clock, worker="w2", sleep=clock.sleep))
    assert robot.calls == 1 and again.sent == 0 and again.deferred >= 1
    # After the ten minutes everything goes, still within 20 a minute.
    clock.now = paused_until + timedelta(seconds=1)
    later = asyncio.run(drain(sqlite_engine, transport(robot, clock), now=clock, worker="w3", sleep=clock.sleep))
    assert later.sent == 31 and robot.throttled == 1 and len(robot.received) == 31


def test_the_window_is_shared_between_commands_through_the_outbox(
    sqlite_engine: Engine, robot: DingTalkRobot, clock: Clock
) -> None:
    backlog(sqlite_engine, 25)
    first = asyncio.run(drain(sqlite_engine, transport(robot, clock), now=clock, worker="a", sleep=clock.sleep,
                              max_wait=timedelta(0), limit=20))
    assert first.sent == 20
    # A second command a few seconds later knows the robot has had its twenty this minute.
    clock.now += timedelta(seconds=5)
    second = asyncio.run(drain(sqlite_engine, transport(robot, clock), now=clock, worker="b", sleep=clock.sleep,
                               max_wait=timedelta(0)))
    assert second.sent == 0 and second.deferred == 5 and robot.calls == 20 and robot.throttled == 0
    assert {row.attempts for row in rows(sqlite_engine) if row.status == "pending"} == {0}


def test_the_rate_is_configurable_and_never_above_the_robots_limit(tmp_path: Path) -> None:
    from duban.notifiers.transports import ConfigError

    env = {"DUBAN_DINGTALK_WEBHOOK": f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}"}
    assert DingTalkConfig.from_env({**env, "DUBAN_DINGTALK_PER_MINUTE": "10"}).rate == 10
    assert DingTalkConfig.from_env(env).rate == 20
    with pytest.raises(ConfigError, match="20条"):
        DingTalkConfig.from_env({**env, "DUBAN_DINGTALK_PER_MINUTE": "30"})


def test_a_malformed_webhook_never_puts_its_token_in_the_outbox_or_on_screen(
    tmp_path: Path, clock: Clock
) -> None:
    from duban.cli import main
    from duban.store.db import make_engine
    from duban.store.migrate import upgrade

    database = tmp_path / "duban.db"
    engine = make_engine(str(database))
    upgrade(engine)
    backlog(engine, 1)
    token = "TOKEN-7a6b5c4d3e2f"
    bad = DingTalkConfig(webhook=f"http://robot.example.org/robot send?access_token={token}", secret=SECRET)
    report = asyncio.run(drain(engine, DingTalkTransport(bad, clock_ms=clock.ms), now=clock, worker="w"))
    assert report.retried == 1
    [row] = rows(engine)
    assert row.last_error and token not in row.last_error and SECRET not in row.last_error
    engine.dispose()
    shown = CliRunner().invoke(main, ["--db", str(database), "outbox"])
    assert "#1" in shown.output and token not in shown.output
    refused = CliRunner().invoke(main, ["--db", str(database), "send"], env={
        "DUBAN_TRANSPORT": "dingtalk", "DUBAN_DINGTALK_WEBHOOK": f"http://robot.example.org:port/x?access_token={token}"})
    assert refused.exit_code == 1 and "DUBAN_DINGTALK_WEBHOOK" in refused.output and token not in refused.output


def test_markdown_from_data_is_inert(robot: DingTalkRobot, clock: Clock) -> None:
    from duban.notifiers.samples import sample_item

    digest = sample_digest()
    hostile = dataclasses.replace(
        digest,
        recipient=dataclasses.replace(digest.recipient, name="<img src=x onerror=alert(1)>专班"),
        items=(sample_item(title="[点击领取](http://evil.example/?t=1) **加急**",
                           subject_name="![x](http://evil.example/p.png)", action="# 标题\n- 列表"),),
    )
    text = DigestRenderer(TEMPLATES).render(hostile).markdown
    for live in ("<img", "](http", "![", "**加急", "\n# 标题"):
        assert live not in text, live
    assert "＜img src=x onerror=alert（1）＞专班" in text  # still legible, as text
    body = json.loads(build_dingtalk_message(digest, DigestRenderer(TEMPLATES).render(digest)).payload)
    assert "服务业投资占全区固定资产投资比重低于2/3" in body["markdown"]["text"]  # ordinary data unchanged
