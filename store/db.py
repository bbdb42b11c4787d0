"""Connections and sessions. SQLite by default; any SQLAlchemy URL through --db or DUBAN_DB."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_DB_URL = "sqlite:///duban.db"
SQLITE_BUSY_TIMEOUT_S = 30


def resolve_url(url: str | None = None) -> str:
    """--db beats DUBAN_DB beats the default. A bare path means a SQLite file."""
    chosen = url or os.environ.get("DUBAN_DB") or DEFAULT_DB_URL
    if "://" not in chosen:
        chosen = f"sqlite:///{chosen}"
    return chosen


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    resolved = resolve_url(url)
    parsed = make_url(resolved)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(resolved, **kwargs)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(resolved, **kwargs)


def sqlite_busy_timeout() -> float:
    """Seconds a SQLite writer waits for another's lock (DUBAN_SQLITE_TIMEOUT, default 30)."""
    try:
        return max(0.0, float(os.environ.get("DUBAN_SQLITE_TIMEOUT", SQLITE_BUSY_TIMEOUT_S)))
    except ValueError:
        return float(SQLITE_BUSY_TIMEOUT_S)


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("timeout", sqlite_busy_timeout())
    # pysqlite's own transaction handling issues a deferred BEGIN, which fails at once in WAL
    # mode when a reader later writes; we take over and issue BEGIN IMMEDIATE ourselves.
    connect_args.setdefault("isolation_level", None)
    engine = create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(connect_args['timeout'] * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: commits on success, rolls back everything on any error."""
    with session_factory(engine)() as session, session.begin():
        yield session


def create_all(engine: Engine) -> None:
    """Bring the schema to the newest migration (Alembic), creating it if needed."""
    from duban.store.migrate import upgrade

    upgrade(engine)


def ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
