"""Shared fixtures: real SQLite files and, when reachable, a real PostgreSQL server."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from duban.store.db import create_all, make_engine

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("DUBAN_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_pg_reason: str | None = None


def _pg_available() -> bool:
    global _pg_reason
    try:
        engine = make_engine(PG_URL, connect_args={"connect_timeout": 2})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception as exc:  # any failure to connect means "not available here"
        _pg_reason = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        return False


PG_AVAILABLE = _pg_available()


def pytest_report_header(config: pytest.Config) -> str:
    if PG_AVAILABLE:
        return f"PostgreSQL: {PG_URL} (store, lock and reliability tests run against it)"
    return f"NOTICE: PostgreSQL unreachable at {PG_URL} ({_pg_reason}); its tests are SKIPPED"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """tests/reliability runs with `make reliability` (CI runs both), not inside `make unit`."""
    if collection_path.name == "reliability" and collection_path.parent == ROOT / "tests":
        asked = [Path(arg.split("::")[0]).resolve() for arg in config.args]
        if not any(path == collection_path or collection_path in path.parents for path in asked):
            return True
    return None


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("DUBAN_REQUIRE_PG") and not PG_AVAILABLE:
        raise pytest.UsageError(f"DUBAN_REQUIRE_PG is set but PostgreSQL is unreachable: {_pg_reason}")


@pytest.fixture
def sqlite_engine(tmp_path) -> Iterator[Engine]:
    engine = make_engine(str(tmp_path / "duban.db"))
    create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine() -> Iterator[Engine]:
    """A fresh schema in the test database, dropped afterwards."""
    if not PG_AVAILABLE:
        pytest.skip(f"PostgreSQL unreachable ({_pg_reason})")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    create_all(engine)
    yield engine
    engine.dispose()
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request, tmp_path) -> Iterator[Engine]:
    """Runs a store test once on a SQLite file and once on PostgreSQL (skipped when unreachable)."""
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_engine")
    else:
        yield request.getfixturevalue("pg_engine")


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    """A private copy of rules/ (lucheng, templates, calendar overrides) that a test may edit."""
    target = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", target, ignore=shutil.ignore_patterns("huzhou"))
    # The document is dated 24 August 2023 and notices start then; these tests run the 2023 cadence
    # from January, so the copy starts on 1 January (test_simulate checks the document's own date).
    programme = target / "lucheng" / "programme.yaml"
    programme.write_text(programme.read_text(encoding="utf-8") + "start: 2023-01-01\n", encoding="utf-8")
    return target
