"""DingTalk robot: signed webhook, markdown body, errcode classification — against a local HTTP server."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import Engine, select

from duban.notifiers.message import OutgoingMessage, build_dingtalk_message, build_email_messages
from duban.notifiers.outbox import drain, enqueue
from duban.notifiers.render import DigestRenderer
from duban.notifiers.samples import ROUND_AT, sample_digest
from duban.notifiers.sink import free_port
from duban.notifiers.transports import Outcome
from duban.notifiers.transports.dingtalk import DingTalkConfig, DingTalkTransport
from duban.store.db import transaction
from duban.store.models import Delivery

SECRET = "SEC0123456789abcdef"
TOKEN = "robot-token"
TEMPLATES = Path(__file__).resolve().parents[1] / "rules" / "templates"


class Robot:
    """Verifies the signature exactly as DingTalk documents it, then replies with `reply`."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.reply: dict[str, Any] = {"errcode": 0, "errmsg": "ok"}
        self.status = 200
        robot = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                timestamp = query["timestamp"][0]
                expected = base64.b64encode(
                    hmac.new(SECRET.encode(), f"{timestamp}\n{SECRET}".encode(), hashlib.sha256).digest()
                ).decode()
                if query.get("access_token") != [TOKEN] or query.get("sign") != [expected]:
                    reply = {"errcode": 310000, "errmsg": "sign not match"}
                else:
                    robot.received.append(json.loads(body))
                    reply = robot.reply
                payload = json.dumps(reply).encode()
                self.send_response(robot.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/robot/send?access_token={TOKEN}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def robot() -> Iterator[Robot]:
    server = Robot()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def message() -> OutgoingMessage:
    digest = sample_digest()
    return build_dingtalk_message(digest, DigestRenderer(TEMPLATES).render(digest))


def send(transport: DingTalkTransport) -> Any:
    return asyncio.run(transport.send(message()))


def test_a_signed_markdown_message_is_accepted(robot: Robot) -> None:
    result = send(DingTalkTransport(DingTalkConfig(webhook=robot.url, secret=SECRET)))
    assert result.outcome is Outcome.OK
    [body] = robot.received
    assert body["msgtype"] == "markdown"
    assert "服务业投资占全区固定资产投资比重低于2/3" in body["markdown"]["text"]


def test_a_wrong_secret_is_a_permanent_failure_naming_the_errcode(robot: Robot) -> None:
    result = send(DingTalkTransport(DingTalkConfig(webhook=robot.url, secret="wrong")))
    assert result.outcome is Outcome.PERMANENT and "310000" in result.message
    assert robot.received == []


def test_the_robots_rate_limit_and_server_errors_are_temporary(robot: Robot) -> None:
    transport = DingTalkTransport(DingTalkConfig(webhook=robot.url, secret=SECRET))
    robot.reply = {"errcode": 130101, "errmsg": "send too fast"}
    assert send(transport).outcome is Outcome.TEMPORARY
    robot.status = 502
    assert send(transport).outcome is Outcome.TEMPORARY


def test_an_unreachable_robot_is_a_temporary_failure() -> None:
    config = DingTalkConfig(webhook=f"http://127.0.0.1:{free_port()}/robot/send?access_token=x", secret=SECRET)
    assert send(DingTalkTransport(config)).outcome is Outcome.TEMPORARY


def test_the_webhook_token_and_secret_are_masked_in_repr(robot: Robot) -> None:
    text = repr(DingTalkTransport(DingTalkConfig(webhook=robot.url, secret=SECRET)))
    assert TOKEN not in text and SECRET not in text


def test_a_dingtalk_drain_sends_only_robot_rows(sqlite_engine: Engine, robot: Robot) -> None:
    digest = sample_digest()
    rendered = DigestRenderer(TEMPLATES).render(digest)
    with transaction(sqlite_engine) as session:
        enqueue(
            session,
            [*build_email_messages(digest, rendered), build_dingtalk_message(digest, rendered)],
            now=ROUND_AT,
        )
    transport = DingTalkTransport(DingTalkConfig(webhook=robot.url, secret=SECRET))
    report = asyncio.run(
        drain(sqlite_engine, transport, now=lambda: ROUND_AT + timedelta(seconds=1), worker="robot")
    )
    assert report.sent == 1 and len(robot.received) == 1
    with transaction(sqlite_engine) as session:
        states = {channel: status for channel, status in session.execute(select(Delivery.channel, Delivery.status))}
    assert states == {"dingtalk": "sent", "email": "pending"}
