"""Connections and sessions. SQLite by default; any SQLAlchemy URL through --db or DUBAN_DB."""

from __future__ import annotations

import os
import re
import weakref
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


def database_schema(schema: str | None = None) -> str | None:
    """The PostgreSQL schema of this programme (DUBAN_DB_SCHEMA), or None for the default one.

    Several programmes share one PostgreSQL database, one schema each: every table, the Alembic
    version and the service lock then live in the programme's own schema.
    """
    chosen = schema if schema is not None else os.environ.get("DUBAN_DB_SCHEMA", "")
    chosen = chosen.strip()
    if not chosen:
        return None
    if not SCHEMA_NAME.fullmatch(chosen):
        raise ValueError(f"数据库模式名“{chosen}”无效：只能由小写字母、数字和下划线组成，且以字母开头。")
    return chosen


SCHEMA_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")


def make_engine(url: str | None = None, *, schema: str | None = None, **kwargs: Any) -> Engine:
    resolved = resolve_url(url)
    parsed = make_url(resolved)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(resolved, **kwargs)
    kwargs.setdefault("pool_pre_ping", True)
    chosen_schema = database_schema(schema) if parsed.get_backend_name() == "postgresql" else None
    if chosen_schema:
        connect_args = dict(kwargs.pop("connect_args", {}))
        options = connect_args.get("options", "")
        connect_args["options"] = f"{options} -csearch_path={chosen_schema}".strip()
        kwargs["connect_args"] = connect_args
    engine = create_engine(resolved, **kwargs)
    if chosen_schema:
        _SCHEMAS[engine] = chosen_schema
    return engine


_SCHEMAS: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def engine_schema(engine: Engine) -> str | None:
    """The programme schema an engine was made for (PostgreSQL), or None."""
    return _SCHEMAS.get(engine)


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
