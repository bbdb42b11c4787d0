"""Hostile import files (issue 15): giant, wide and overflowing inputs, numbers that would become
infinity, codes and names that deceive, and a hypothesis run that mutates the figures of an import.

Every case is imported into a real SQLite store holding the Lucheng example. A case either
imports cleanly with every stored figure finite and within 10¹⁵, or is refused with Chinese
problems naming the file (and the row and column where there is one), with the store unchanged
and no traceback. The 3,000 × 16,381 workbook is refused while another writer holds the lock,
which proves it never reached for the lock.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
import shutil
import sqlite3
import time
import zipfile
from pathlib import Path

import openpyxl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from duban.store.db import create_all, make_engine
from duban.store.importer import import_paths
from duban.store.models import Observation

from .support import LUCHENG_EXAMPLE, assert_no_traceback, duban, duban_env, store_fingerprint

NOW = dt.datetime(2023, 7, 20, 1, 0, tzinfo=dt.UTC)
CHINESE = re.compile(r"[\u4e00-\u9fff]")
FIGURE_CASES = 300
OBSERVATIONS = list(csv.reader(io.StringIO((LUCHENG_EXAMPLE / "observations.csv").read_text(encoding="utf-8"))))
UNITS = list(csv.reader(io.StringIO((LUCHENG_EXAMPLE / "units.csv").read_text(encoding="utf-8"))))


def _with_sheet_data(path: Path, rows_xml: str) -> Path:
    """A one-sheet workbook named "units" whose sheet XML holds `rows_xml`, written as another tool might."""
    workbook = openpyxl.Workbook()
    workbook.active.title = "units"  # type: ignore[union-attr]
    workbook.save(path)
    with zipfile.ZipFile(path) as source:
        parts = {name: source.read(name) for name in source.namelist()}
    parts["xl/worksheets/sheet1.xml"] = re.sub(
        r"<sheetData>.*</sheetData>|<sheetData\s*/>", lambda _: f"<sheetData>{rows_xml}</sheetData>",
        parts["xl/worksheets/sheet1.xml"].decode(), flags=re.S).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in parts.items():
            target.writestr(name, data)
    return path


def wide_workbook(path: Path, rows: int, last_column: str) -> Path:
    """Every row holds a value in A and in `last_column`: small on disk, but a reader fills the gap."""
    return _with_sheet_data(path, "".join(f'<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>u{r}</t></is></c>'
                                          f'<c r="{last_column}{r}"><v>1</v></c></row>' for r in range(1, rows + 1)))


def _csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


def _hostile_files(folder: Path) -> list[tuple[str, Path]]:
    """(what, path): each must be refused."""
    cases: list[tuple[str, Path]] = []

    def case(what: str, name: str, rows: list[list[str]]) -> None:
        sub = folder / f"case{len(cases):02d}"
        sub.mkdir()
        cases.append((what, _csv(sub / name, rows)))

    head = OBSERVATIONS[0]
    figure = OBSERVATIONS[1]
    for number in ("9" * 400, "-" + "9" * 400, "1" + "0" * 308, "1e400", "nan", "inf", "-inf", "Infinity",
                   "1.7976931348623157e308", "1" + "0" * 16, "((1))", "(-1)", "1,2", "0x10", "１e5"):
        case(f"figure {number[:12]}", "observations.csv", [head, [*figure[:2], number, *figure[3:]]])
    unit_head, unit = UNITS[0], UNITS[1]
    for code in ("fgj\u200b", "fgј", "f\u202egj", "fg\x07j", "fg j", "区发改局", "a.b", "x" * 65, "=cmd|' /C calc'!A0"):
        case(f"unit code {code[:8]!r}", "units.csv", [unit_head, [code, *unit[1:]]])
    for name in ("区发改局\u202e", "区\u200b发改局", "区发改局\x1b[31m", "区发改局\ufeff"):
        case(f"unit name {name!r}", "units.csv", [unit_head, [unit[0], name, *unit[2:]]])
    case("two units, one name", "units.csv", [unit_head, unit, ["dup-1", unit[1], *unit[2:]]])
    case("cell of 200,000 characters", "units.csv", [unit_head, [unit[0], "区" * 200_000, *unit[2:]]])
    big_cell = folder / "big-cell"
    big_cell.mkdir()
    # openpyxl truncates what it writes to Excel's 32,767 characters; another tool need not.
    cells = "".join(f'<c r="{column}2" t="inlineStr"><is><t>{text}</t></is></c>'
                    for column, text in zip("ABC", [unit[0], "区" * 2_000_000, unit[2]], strict=True))
    header = "".join(f'<c r="{column}1" t="inlineStr"><is><t>{text}</t></is></c>'
                     for column, text in zip("ABC", unit_head[:3], strict=True))
    cases.append(("xlsx cell of 2,000,000 characters",
                  _with_sheet_data(big_cell / "units.xlsx", f'<row r="1">{header}</row><row r="2">{cells}</row>')))
    return cases


def test_hostile_import_files_are_refused_in_chinese_and_leave_the_store_unchanged(tmp_path: Path, ledger) -> None:
    database = tmp_path / "duban.db"
    engine = make_engine(str(database))
    create_all(engine)
    assert import_paths(engine, [LUCHENG_EXAMPLE], now=NOW, imported_by="hostile").ok
    baseline = store_fingerprint(engine)
    cases = _hostile_files(tmp_path)
    refused = 0
    for what, path in cases:
        report = import_paths(engine, [path], now=NOW, imported_by="hostile")
        assert not report.ok, what
        assert all(CHINESE.search(problem.message) for problem in report.problems), (what, report.problem_lines())
        assert all(problem.file.startswith(str(path)) for problem in report.problems), what
        assert store_fingerprint(engine) == baseline, what
        refused += 1
    engine.dispose()
    ledger("hostile-import", inputs=len(cases), faults=len(cases),
           note=f"hostile import files: {len(cases)} tried, {refused} refused in Chinese, store unchanged, tracebacks 0")


def test_the_wide_workbook_is_refused_while_another_writer_holds_the_lock(tmp_path: Path, ledger) -> None:
    database = tmp_path / "duban.db"
    engine = make_engine(str(database), connect_args={"timeout": 1})
    create_all(engine)
    path = wide_workbook(tmp_path / "units.xlsx", 3000, "XFA")
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        report = import_paths(engine, [path], now=NOW, imported_by="hostile")
        elapsed = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    engine.dispose()
    assert "超过每行最多 256 列的上限" in report.problem_lines()[0]
    ledger("hostile-import", inputs=1, faults=1,
           note=f"3,000 × 16,381-column workbook refused in {elapsed:.2f} s without taking the write lock")


def test_the_command_line_refuses_a_400_digit_figure_without_a_traceback(tmp_path: Path, ledger) -> None:
    database = tmp_path / "duban.db"
    env = duban_env(str(database))
    assert duban("db", "upgrade", env=env).returncode == 0
    assert duban("import", str(LUCHENG_EXAMPLE), env=env).returncode == 0
    folder = tmp_path / "in"
    folder.mkdir()
    _csv(folder / "observations.csv", [OBSERVATIONS[0], [*OBSERVATIONS[1][:2], "9" * 400, *OBSERVATIONS[1][3:]]])
    (folder / "units.csv").write_bytes(b"code,name,email\r\nx," + "区".encode() * 200_000 + b",\r\n")
    result = duban("import", str(folder), env=env)
    assert result.returncode == 1
    assert_no_traceback(result.stdout, result.stderr)
    assert "单元格超过 32,767 个字符的上限" in result.stderr, result.stderr
    (folder / "units.csv").unlink()
    result = duban("import", str(folder), env=env)
    assert result.returncode == 1 and "数值超出可接受范围" in result.stderr, result.stderr
    assert_no_traceback(result.stdout, result.stderr)
    ledger("hostile-import", inputs=2, faults=2)


_NUMBER_TEXT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-10**420, max_value=10**420).map(str),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.from_regex(r"[-+(（]?[0-9,]{0,30}(\.[0-9]{0,12})?[%％)）]?", fullmatch=True),
    st.sampled_from(["", "-", ".", "(", "()", "1e308", "-1e308", "2e15", "999999999999999.9", "１２３", "−5"]),
)


def test_fuzz_figures_are_stored_finite_and_bounded_or_refused_in_chinese(tmp_path: Path, ledger) -> None:
    template = tmp_path / "template.db"
    engine = make_engine(str(template))
    create_all(engine)
    assert import_paths(engine, [LUCHENG_EXAMPLE], now=NOW, imported_by="fuzz").ok
    engine.dispose()
    database = tmp_path / "duban.db"
    shutil.copy(template, database)
    engine = make_engine(str(database))
    baseline = store_fingerprint(engine)
    folder = tmp_path / "in"
    folder.mkdir()
    figures = {"cases": 0, "imported": 0, "refused": 0, "queried": 0}

    @settings(max_examples=FIGURE_CASES, derandomize=True, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.tuples(st.integers(1, len(OBSERVATIONS) - 1), _NUMBER_TEXT), min_size=1, max_size=4))
    def case(changes: list[tuple[int, str]]) -> None:
        nonlocal engine
        figures["cases"] += 1
        rows = [list(row) for row in OBSERVATIONS]
        for row, text in changes:
            rows[row][2] = text
        path = _csv(folder / "observations.csv", rows)
        report = import_paths(engine, [path], now=NOW, imported_by="fuzz", note="模糊测试")
        if report.ok:
            figures["imported"] += 1
            figures["queried"] += report.warning_count > 0
            with engine.connect() as conn:
                values = conn.scalars(select(Observation.value)).all()
            assert all(math.isfinite(value) and abs(value) <= 1e15 for value in values)
            engine.dispose()
            database.unlink()
            for leftover in tmp_path.glob("duban.db-*"):
                leftover.unlink()
            shutil.copy(template, database)
            engine = make_engine(str(database))
            return
        figures["refused"] += 1
        for problem in report.problems:
            assert CHINESE.search(problem.message), problem
            assert problem.file.startswith(str(path)), problem
        assert store_fingerprint(engine) == baseline

    case()
    engine.dispose()
    ledger("hostile-import", inputs=figures["cases"], faults=figures["cases"],
           note=(f"mutated figures: {figures['cases']} imports, {figures['refused']} refused in Chinese, "
                 f"{figures['imported']} imported ({figures['queried']} with queried figures let in by a note), "
                 "every stored figure finite and within 10^15"))
