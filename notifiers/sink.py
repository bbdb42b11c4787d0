"""A real SMTP server on 127.0.0.1 (aiosmtpd) that records what it receives, and a local server
that enforces DingTalk's documented custom-robot contract: for tests, the benchmark and local
previews. Not used in production; the SMTP sink needs the dev dependency aiosmtpd.

Run standalone (the benchmark does, so the server has its own process and event loop):
    python -m notifiers.sink --port 8025 [--tls starttls|tls --cert c.pem --key k.pem]
"""

from __future__ import annotations

import argparse
import base64
import email
import email.policy
import hashlib
import hmac
import json
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


def free_port() -> int:
    """aiosmtpd's Controller cannot bind port 0 itself: pick a free port first."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_self_signed_cert(directory: Path) -> tuple[Path, Path] | None:
    """A throwaway certificate for 127.0.0.1/localhost; None if neither cryptography nor openssl exists."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


class RecordingHandler:
    """Keeps every accepted message's bytes; can be told to refuse recipients or DATA."""

    def __init__(self, *, keep: bool = True) -> None:
        self.keep = keep
        self.lock = threading.Lock()
        self.raw: list[bytes] = []
        self.count = 0
        self.sessions: set[int] = set()  # distinct connections that delivered a message
        self.ehlo_names: list[str] = []  # the name each delivering client gave in EHLO/HELO
        self.rcpt_replies: dict[str, str] = {}  # address -> SMTP reply, e.g. "550 5.1.1 no such user"
        self.data_reply: Callable[[bytes], str | None] | None = None  # None = accept
        self.on_accept: Callable[[int], None] | None = None  # called with the running count

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        reply = self.rcpt_replies.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content
        if self.data_reply is not None:
            reply = self.data_reply(content)
            if reply:
                return reply
        with self.lock:
            self.count += 1
            count = self.count
            self.sessions.add(id(session))
            self.ehlo_names.append(str(getattr(session, "host_name", "") or ""))
            if self.keep:
                self.raw.append(content)
        if self.on_accept is not None:
            self.on_accept(count)
        return "250 Message accepted for delivery"

    def messages(self) -> list[EmailMessage]:
        with self.lock:
            raw = list(self.raw)
        return [email.message_from_bytes(data, policy=email.policy.default) for data in raw]

    def message_ids(self) -> list[str]:
        return [str(message["Message-ID"]) for message in self.messages()]


class SmtpSink:
    """An aiosmtpd server in a background thread. `tls`: none | starttls | tls (implicit)."""

    def __init__(
        self,
        handler: RecordingHandler | None = None,
        *,
        port: int | None = None,
        tls: str = "none",
        cert: Path | None = None,
        key: Path | None = None,
    ) -> None:
        self.handler = handler or RecordingHandler()
        self.port = port or free_port()
        self.tls = tls
        self.cert, self.key = cert, key
        self._controller: Any = None

    def _context(self) -> ssl.SSLContext:
        if self.cert is None or self.key is None:
            raise ValueError("TLS needs a certificate and key")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.cert), str(self.key))
        return context

    def start(self) -> SmtpSink:
        from aiosmtpd.controller import Controller

        kwargs: dict[str, Any] = {}
        if self.tls == "starttls":
            kwargs["tls_context"] = self._context()
            kwargs["require_starttls"] = True
        elif self.tls == "tls":
            kwargs["ssl_context"] = self._context()
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class DingTalkRobot:
    """A local HTTP server that behaves as DingTalk documents its custom robots.

    * `access_token` must match (else errcode 300001), the `sign` must be
      base64(HmacSHA256(secret, f"{timestamp}\\n{secret}")) and the timestamp within an hour of the
      server's clock (else 310000);
    * at most `per_minute` accepted messages in any 60 seconds; the call beyond that is answered
      130101 ("send too fast, exceed 20 times per minute") and so is every call for the next 10
      minutes;
    * errors come as HTTP 200 with errcode ≠ 0, like the real service.

    `clock` (seconds) is injectable so that tests run minutes of robot time without sleeping.
    """

    def __init__(self, token: str, secret: str, *, clock: Callable[[], float] = time.time,
                 per_minute: int = 20, block_seconds: float = 600.0) -> None:
        self.token, self.secret, self.clock = token, secret, clock
        self.per_minute, self.block_seconds = per_minute, block_seconds
        self.lock = threading.Lock()
        self.received: list[dict[str, Any]] = []
        self.accepted_at: deque[float] = deque()
        self.blocked_until = 0.0
        self.calls = 0
        self.throttled = 0  # 130101 answers given
        self.rejected = 0  # other errcodes
        self.status = 200  # set to e.g. 502 to play a failing gateway
        robot = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                reply = robot.answer(self.path, body)
                payload = json.dumps(reply).encode()
                self.send_response(robot.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/robot/send?access_token={token}"
        self._thread: threading.Thread | None = None

    def answer(self, path: str, body: bytes) -> dict[str, Any]:
        query = parse_qs(urlsplit(path).query)
        with self.lock:
            self.calls += 1
            now = self.clock()
            if query.get("access_token") != [self.token]:
                self.rejected += 1
                return {"errcode": 300001, "errmsg": "token is not exist"}
            if self.secret:
                stamp = (query.get("timestamp") or ["0"])[0]
                expected = base64.b64encode(hmac.new(self.secret.encode(), f"{stamp}\n{self.secret}".encode(),
                                                     hashlib.sha256).digest()).decode()
                if not stamp.isdigit() or abs(int(stamp) / 1000 - now) > 3600:
                    self.rejected += 1
                    return {"errcode": 310000, "errmsg": "invalid timestamp"}
                if query.get("sign") != [expected]:
                    self.rejected += 1
                    return {"errcode": 310000, "errmsg": "sign not match"}
            if now < self.blocked_until:
                self.throttled += 1
                return {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}
            while self.accepted_at and self.accepted_at[0] <= now - 60:
                self.accepted_at.popleft()
            if len(self.accepted_at) >= self.per_minute:
                self.blocked_until = now + self.block_seconds
                self.throttled += 1
                return {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}
            try:
                message = json.loads(body)
            except ValueError:
                self.rejected += 1
                return {"errcode": 40035, "errmsg": "缺少参数 json"}
            self.accepted_at.append(now)
            self.received.append(message)
            return {"errcode": 0, "errmsg": "ok"}

    def start(self) -> DingTalkRobot:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> DingTalkRobot:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="SMTP sink on 127.0.0.1 that counts and discards messages")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls", choices=["none", "starttls", "tls"], default="none")
    parser.add_argument("--cert", type=Path)
    parser.add_argument("--key", type=Path)
    args = parser.parse_args(argv)
    handler = RecordingHandler(keep=False)
    sink = SmtpSink(handler, port=args.port, tls=args.tls, cert=args.cert, key=args.key).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"ready {args.port}", flush=True)
    try:
        while not stop.is_set():
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        sink.stop()
        print(f"received {handler.count}", flush=True)


if __name__ == "__main__":
    main()
