"""DingTalk / 浙政钉 custom robot: signed webhook POST of a markdown message.

Signature (robot "加签" security setting): sign = urlencode(base64(HMAC-SHA256(secret,
f"{timestamp_ms}\\n{secret}"))), appended as `&timestamp=…&sign=…` to the webhook URL.

Pacing: a robot accepts 20 messages a minute; beyond that it answers errcode 130101 ("send too
fast") for 10 minutes. The outbox keeps to `rate` (DUBAN_DINGTALK_PER_MINUTE, default 20 a minute, with a
second of slack per window) and, should 130101 come anyway (another sender on the same robot),
pauses this robot for the documented 10 minutes without spending the message's attempts.

The access token (in the webhook URL), the signature and the secret are secrets: they are
registered with `redact` and never appear in an error, a log line or a repr.
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
from duban.notifiers.transports import ConfigError, Rate, SendResult
from duban.notifiers.transports.redact import mask_url, register_secret, register_url_secrets, scrub
from duban.notifiers.transports.settings import int_setting

THROTTLED_ERRCODE = 130101  # "send too fast, exceed 20 times per minute": refused for 10 minutes
THROTTLE_PAUSE_SECONDS = 600.0
DEFAULT_RATE = 20  # messages per minute per robot (DingTalk's documented limit)
RATE_WINDOW_SECONDS = 61.0  # a minute plus a second of slack for clock and network jitter
# errcodes that mean "try again later": system busy.
TEMPORARY_ERRCODES = frozenset({-1})
# The robot's settings, not the message: token unknown or removed, signature or keyword or IP
# check failed. The message waits (temporary) and the admin is told once.
SETTINGS_ERRCODES = frozenset({300001, 300005, 310000, 400013})


@dataclass(frozen=True)
class DingTalkConfig:
    webhook: str = field(repr=False)
    secret: str = field(default="", repr=False)
    timeout: float = 10.0
    rate: int = DEFAULT_RATE  # per minute; 0 = no pacing (a test robot)

    def __post_init__(self) -> None:
        register_url_secrets(self.webhook)
        register_secret(self.secret)

    def __repr__(self) -> str:
        base = self.webhook.split("?", 1)[0]
        return f"DingTalkConfig(webhook={base!r}?access_token=***, secret={'***' if self.secret else ''!r})"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DingTalkConfig:
        webhook = (env.get("DUBAN_DINGTALK_WEBHOOK") or "").strip()
        if not webhook:
            raise ConfigError("未设置DUBAN_DINGTALK_WEBHOOK（钉钉/浙政钉机器人Webhook地址）")
        register_url_secrets(webhook)
        if not webhook.startswith(("https://", "http://")):
            raise ConfigError(f"DUBAN_DINGTALK_WEBHOOK应以https://开头（当前为 {mask_url(webhook)[:80]}）")
        try:
            parts = urllib.parse.urlsplit(webhook)
            _ = parts.port  # raises ValueError for a port that is not a number
            valid = bool(parts.hostname)
        except ValueError:
            valid = False
        if not valid or any(c.isspace() for c in webhook):
            raise ConfigError(f"DUBAN_DINGTALK_WEBHOOK不是有效的网址：{mask_url(webhook)[:80]}；请从机器人设置页复制完整地址")
        rate = int_setting(env, "DUBAN_DINGTALK_PER_MINUTE", DEFAULT_RATE)
        if rate > DEFAULT_RATE:
            raise ConfigError(f"DUBAN_DINGTALK_PER_MINUTE=“{rate}”超过钉钉机器人每分钟{DEFAULT_RATE}条的上限，超出后机器人将拒收10分钟")
        return cls(webhook=webhook, secret=(env.get("DUBAN_DINGTALK_SECRET") or "").strip(), rate=rate)


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
        self.rate = Rate(config.rate, RATE_WINDOW_SECONDS) if config.rate > 0 else None

    def pace_key(self, message: OutgoingMessage) -> str:
        # One budget per robot: the access token identifies it (hashed, never stored in clear).
        digest = hashlib.sha256(self.config.webhook.encode("utf-8")).hexdigest()[:12]
        return f"dingtalk:{digest}"

    def __repr__(self) -> str:
        return f"DingTalkTransport({self.config!r})"

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def send(self, delivery: OutgoingMessage) -> SendResult:
        url = signed_url(self.config.webhook, self.config.secret, self._clock_ms())
        register_url_secrets(url)  # the signature of this call
        try:
            return await asyncio.to_thread(self._post, url, delivery.payload)
        except Exception as exc:  # e.g. http.client.InvalidURL, whose text holds the whole URL
            return SendResult.temporary(
                f"调用钉钉机器人接口出错：{type(exc).__name__}: {scrub(str(exc))}；请检查DUBAN_DINGTALK_WEBHOOK",
                cause="config",
            )

    def _post(self, url: str, payload: bytes) -> SendResult:
        request = urllib.request.Request(
            url, data=payload, method="POST", headers={"Content-Type": "application/json; charset=utf-8"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            text = f"钉钉机器人接口返回HTTP {exc.code}"
            if exc.code == 429:
                return SendResult.throttled(f"{text}（发送过快，暂停10分钟后重试）", THROTTLE_PAUSE_SECONDS)
            if exc.code >= 500:
                return SendResult.temporary(f"{text}（临时错误，稍后重试）", cause="server")
            # 404/403: the robot was removed or the address is wrong; the admin fixes the setting,
            # the message is not at fault: keep it.
            return SendResult.temporary(f"{text}（请检查DUBAN_DINGTALK_WEBHOOK；消息已保留，修正后自动重试）",
                                        cause="config")
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            cause = "timeout" if isinstance(reason, TimeoutError) else "connect"
            return SendResult.temporary(f"无法连接钉钉机器人接口：{scrub(str(reason))}", cause=cause)
        try:
            reply = json.loads(body)
            errcode = int(reply.get("errcode", -1))
            errmsg = str(reply.get("errmsg", ""))
        except (ValueError, AttributeError):
            return SendResult.temporary("钉钉机器人接口返回内容无法解析")
        if errcode == 0:
            return SendResult.success()
        text = f"钉钉机器人返回错误 errcode={errcode}：{scrub(errmsg)}"
        if errcode == THROTTLED_ERRCODE:
            return SendResult.throttled(f"{text}（发送过快，机器人暂停接收10分钟，届时自动续发）", THROTTLE_PAUSE_SECONDS)
        if errcode in TEMPORARY_ERRCODES:
            return SendResult.temporary(f"{text}（临时错误，稍后重试）", cause="server")
        if errcode in SETTINGS_ERRCODES:
            return SendResult.temporary(
                f"{text}。请检查机器人的安全设置：DUBAN_DINGTALK_WEBHOOK（access_token）、DUBAN_DINGTALK_SECRET（加签密钥）、"
                "自定义关键词或IP白名单；消息已保留，修正后自动重试",
                cause="config",
            )
        return SendResult.permanent(f"{text}（请检查机器人的安全设置与密钥）")
