"""The service's health endpoint: GET /healthz on 127.0.0.1, the same checks as `duban doctor`.

Answers 200 with the JSON report when nothing has failed (warnings included), 503 when a check
failed or the service lost its database lock. Network probes (SMTP, DingTalk) are left to
`duban doctor`: a monitor polling every minute must not open a mail session each time.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sqlalchemy import Engine

from duban.app.doctor import FAIL, OK, Check, diagnose

__all__ = ["HealthServer", "start_health_server"]


class HealthServer:
    def __init__(self, server: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self.server, self.thread = server, thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_health_server(
    engine: Engine,
    *,
    port: int,
    rules_root: Path,
    shown_db: str,
    lock_held: Callable[[], bool],
    clock: Callable[[], dt.datetime],
    host: str = "127.0.0.1",
) -> HealthServer:
    def report() -> tuple[int, bytes]:
        held = lock_held()
        lock_check = Check("服务", OK if held else FAIL,
                           "持有数据库锁，正在按节奏运行" if held else "数据库锁已失效，轮次暂停",
                           "" if held else "检查数据库连接；服务会在数据库恢复后自动重新取得锁。")
        result = diagnose(engine, shown_db=shown_db, rules_root=rules_root, now=clock(),
                          probe_network=False, extra=[lambda: lock_check])
        body = json.dumps(result.as_dict(), ensure_ascii=False).encode("utf-8")
        return (503 if result.status == FAIL else 200), body

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] not in ("/healthz", "/health"):
                self.send_error(404)
                return
            try:
                status, body = report()
            except Exception as exc:  # the endpoint itself must answer, whatever broke
                status, body = 503, json.dumps({"status": FAIL, "error": str(exc)}, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    thread = threading.Thread(target=server.serve_forever, name="duban-health", daemon=True)
    thread.start()
    return HealthServer(server, thread)
