"""Building the web application from the environment: what `duban web` and its workers run."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from sqlalchemy import select
from starlette.applications import Starlette

from duban.engine.loader import load_rule_set, resolve_rule_set
from duban.engine.rules import RuleSet
from duban.store.db import make_engine
from duban.store.models import Programme
from duban.web.app import WebConfig, create_app

TRUE = ("1", "true", "yes", "on")


def base_url() -> str:
    """DUBAN_WEB_URL: the address units open (for sign-in links in mails), without a trailing slash."""
    return os.environ.get("DUBAN_WEB_URL", "http://127.0.0.1:8000").rstrip("/")


def config_from_env() -> WebConfig:
    engine = make_engine(os.environ.get("DUBAN_DB"))
    rules_dir = Path(os.environ.get("DUBAN_RULES", "rules"))

    def load() -> RuleSet:
        with engine.connect() as conn:
            programme = conn.scalars(select(Programme.code)).first()
        return load_rule_set(resolve_rule_set(rules_dir, programme))

    at = os.environ.get("DUBAN_WEB_AT")
    frozen = dt.datetime.fromisoformat(at) if at else None
    clock = (lambda: frozen) if frozen is not None else (lambda: dt.datetime.now(dt.UTC))
    reports = os.environ.get("DUBAN_REPORTS_DIR", "").strip()
    return WebConfig(engine=engine, rule_set_loader=load, base_url=base_url(), clock=clock,
                     reports_dir=Path(reports).resolve() if reports else None,
                     secure_cookies=os.environ.get("DUBAN_WEB_SECURE_COOKIES", "").lower() in TRUE,
                     trust_proxy=os.environ.get("DUBAN_WEB_TRUST_PROXY", "").lower() in TRUE)


def app_from_env() -> Starlette:
    """uvicorn factory: `uvicorn --factory duban.web.server:app_from_env`."""
    return create_app(config_from_env())


def serve(host: str, port: int, workers: int = 1, *, log_level: str = "warning") -> None:
    """Run the portal under uvicorn, as `duban web` does.

    With several workers uvicorn binds the listening socket itself without naming the protocol, and
    asyncio then leaves Nagle's algorithm on for every connection accepted from it (it sets
    TCP_NODELAY only on sockets whose `proto` is TCP): on a kept-alive connection each response's
    body waited for the client's delayed ACK of its headers, 40 ms per request. Linux hands
    TCP_NODELAY on from the listening socket to each accepted one, so it is set there.
    """
    import socket

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config("duban.web.server:app_from_env", factory=True, host=host, port=port, workers=workers,
                            log_level=log_level, proxy_headers=False)
    if config.workers <= 1:
        uvicorn.Server(config).run()
        return
    sock = config.bind_socket()
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    import inspect

    if "target" in inspect.signature(Multiprocess).parameters:  # uvicorn before 0.30 passed the server's run
        Multiprocess(config, target=uvicorn.Server(config).run, sockets=[sock]).run()  # type: ignore[call-arg]
    else:
        Multiprocess(config, sockets=[sock]).run()
