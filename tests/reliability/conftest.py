"""Fixtures and hooks of the reliability suite: the ledger each test feeds, and the closing table.

`pytest_terminal_summary` prints the ledger as a Markdown table and writes it to
tests/reliability/last-run.md (not committed: the README carries the reviewed copy).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .support import LEDGER, SEED, write_big_programme


@pytest.fixture
def ledger(request: pytest.FixtureRequest) -> Callable[..., None]:
    """`ledger(area, faults=…, inputs=…, lost=…, duplicated=…, note=…)` for the closing table."""
    nodeid = request.node.nodeid

    def add(area: str, **figures: Any) -> None:
        LEDGER.add(area, nodeid, **figures)

    return add


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed:
        LEDGER.failed.add(report.nodeid)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not any(row.tests for row in LEDGER.rows.values()):
        return
    table = LEDGER.table()
    terminalreporter.write_sep("=", "duban reliability: what was tried and what held")
    terminalreporter.write_line(table)
    seed = f"Seed {SEED} (DUBAN_RELIABILITY_SEED); hypothesis derandomized."
    terminalreporter.write_line(seed)
    (Path(__file__).parent / "last-run.md").write_text(table + "\n\n" + seed + "\n", encoding="utf-8")


@pytest.fixture(scope="session")
def big_programme_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file holding the 1,000-unit programme, imported once; tests copy it."""

    from duban.store.db import create_all, make_engine
    from duban.store.importer import import_paths

    folder = tmp_path_factory.mktemp("big")
    path = folder / "template.db"
    engine = make_engine(str(path))
    create_all(engine)
    report = import_paths(engine, [write_big_programme(folder / "lists")],
                          now=dt.datetime(2023, 7, 1, tzinfo=dt.UTC), imported_by="reliability")
    assert report.ok, report.problem_lines()
    engine.dispose()
    return path

