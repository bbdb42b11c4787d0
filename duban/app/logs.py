"""Service logs as JSON lines (one object per line: time, level, event and its fields), or plain text.

journald, Loki, ELK and 政务云 log collectors read JSON lines without a parsing rule; set
DUBAN_LOG_FORMAT=text (or `[service] log_format = "text"`) for the older `event=… key=value` lines.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys

__all__ = ["JsonLinesFormatter", "configure_service_logging"]


class JsonLinesFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "duban_event", None)
        if isinstance(fields, dict):
            payload.update({key: _plain(value) for key, value in fields.items()})
        else:
            payload["message"] = record.getMessage()
        if record.exc_info:
            payload["traceback"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


def _plain(value: object) -> object:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return str(value)


def configure_service_logging(stream: object = None) -> None:
    root = logging.getLogger("duban")
    if not root.handlers:
        handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
        if (os.environ.get("DUBAN_LOG_FORMAT") or "json").lower() == "text":
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        else:
            handler.setFormatter(JsonLinesFormatter())
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False
