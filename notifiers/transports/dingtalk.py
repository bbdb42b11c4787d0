"""DingTalk / 浙政钉 custom robot: signed webhook POST of a markdown message.

Signature (robot "加签" security setting): sign = urlencode(base64(HMAC-SHA256(secret,
f"{timestamp_ms}\\n{secret}"))), appended as `&timestamp=…&sign=…` to the webhook URL.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from duban.notifiers.message import DINGTALK, OutgoingMessage
from duban.notifiers.transports import ConfigError, SendResult

# errcodes that mean "try again later": system busy, and the robot's rate limit (20 messages/minute).
TEMPORARY_ERRCODES = frozenset({-1, 130101})


@dataclass(frozen=True)
class DingTalkConfig:
    webhook: str = field(repr=False)
    secret: str = field(default="", repr=False)
    timeout: float = 10.0

    def __repr__(self) -> str:
        base = self.webhook.split("?", 1)[0]
        return f"DingTalkConfig(webhook={base!r}?access_token=***, secret={'***' if self.secret else ''!r})"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DingTalkConfig:
        webhook = env.get("DUBAN_DINGTALK_WEBHOOK", "").strip()
        if not webhook:
            raise ConfigError("未设置DUBAN_DINGTALK_WEBHOOK（钉钉/浙政钉机器人Webhook地址）")
        if not webhook.startswith(("https://", "http://")):
            raise ConfigError("DUBAN_DINGTALK_WEBHOOK应以https://开头")
        return cls(webhook=webhook, secret=env.get("DUBAN_DINGTALK_SECRET", "").strip())


def sign(secret: str, timestamp_ms: int) -> str:
    string_to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode("utf-8"), string_to_sign, hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest))


def signed_url(webhook: str, secret: str, timestamp_ms: int) -> str:
    if not secret:
        return webhook
    joiner = "&" if "?" in webhook else "?"
    return f"{webhook}{joiner}timestamp={timestamp_ms}&sign={sign(secret, timestamp_ms)}"


class DingTalkTransport:
    name = "dingtalk"
    channels = frozenset({DINGTALK})
    concurrency = 1  # the robot accepts 20 messages a minute: never hurry it

    def __init__(self, config: DingTalkConfig, *, clock_ms: Callable[[], int] | None = None) -> None:
        self.config = config
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))

    def __repr__(self) -> str:
        return f"DingTalkTransport({self.config!r})"

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def send(self, delivery: OutgoingMessage) -> SendResult:
        url = signed_url(self.config.webhook, self.config.secret, self._clock_ms())
        return await asyncio.to_thread(self._post, url, delivery.payload)

    def _post(self, url: str, payload: bytes) -> SendResult:
        request = urllib.request.Request(
            url, data=payload, method="POST", headers={"Content-Type": "application/json; charset=utf-8"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            text = f"钉钉机器人接口返回HTTP {exc.code}"
            if exc.code == 429 or exc.code >= 500:
                return SendResult.temporary(f"{text}（临时错误，稍后重试）")
            return SendResult.permanent(f"{text}（请检查Webhook地址）")
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            return SendResult.temporary(f"无法连接钉钉机器人接口：{reason}")
        try:
            reply = json.loads(body)
            errcode = int(reply.get("errcode", -1))
            errmsg = str(reply.get("errmsg", ""))
        except (ValueError, AttributeError):
            return SendResult.temporary("钉钉机器人接口返回内容无法解析")
        if errcode == 0:
            return SendResult.success()
        text = f"钉钉机器人返回错误 errcode={errcode}：{errmsg}"
        if errcode in TEMPORARY_ERRCODES:
            return SendResult.temporary(f"{text}（临时错误，稍后重试）")
        return SendResult.permanent(f"{text}（请检查机器人的安全设置与密钥）")
