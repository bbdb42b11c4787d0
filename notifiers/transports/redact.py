"""Secrets never reach a stored error (deliveries.last_error), a printed line or a log line.

Two nets, both applied by `scrub`:

* patterns: `access_token=…`, `sign=…`, `secret=…`, `password=…` (and similar) in query strings
  or key=value text, and the `user:password@` part of a URL;
* values: every secret a transport configuration was built with (SMTP password, DingTalk secret
  and access token) is registered here and replaced wherever it appears, whatever surrounds it.
"""

from __future__ import annotations

import re
import threading
from urllib.parse import parse_qsl, urlsplit

MASK = "***"
_KEYS = r"access_token|accesstoken|token|sign|signature|secret|password|passwd|pwd|api_key|apikey|key"
_KEY_VALUE = re.compile(rf"(?i)(?<![A-Za-z0-9_])({_KEYS})(\s*[=:]\s*)([^\s&'\"，。；,;)）]+)")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")
_SHORTEST = 4  # shorter registered values would mask ordinary words

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a configured secret so that `scrub` masks it wherever it shows up."""
    if value and len(value) >= _SHORTEST:
        with _lock:
            _secrets.add(value)


def register_url_secrets(url: str) -> None:
    """The query values of a webhook URL (DingTalk's access_token) are secrets."""
    try:
        query = urlsplit(url).query
    except ValueError:
        query = url.partition("?")[2]
    for _name, value in parse_qsl(query, keep_blank_values=False):
        register_secret(value)


def scrub(text: str, extra: tuple[str, ...] = ()) -> str:
    """`text` with tokens, passwords, signatures and URL credentials replaced by ***."""
    if not text:
        return text
    with _lock:
        values = sorted({*_secrets, *(v for v in extra if v and len(v) >= _SHORTEST)}, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    text = _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    return _KEY_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)


def mask_url(url: str) -> str:
    """A webhook URL fit to print: scheme, host and path, query values masked."""
    return scrub(url)
