"""Inputs are bounded (issue 15): row, column and cell-length limits named in Chinese and checked before
the write lock; numbers that would be stored as infinity; codes that deceive; units that share a name."""

from __future__ import annotations

import re
import sqlite3
import time
import zipfile
from pathlib import Path

from openpyxl import Workbook
from sqlalchemy import select
from test_import import JULY, OBSERVATIONS, UNITS, basics, row_counts, run, write_csv

from duban.store.db import create_all, make_engine, transaction
from duban.store.importer import ImportLimits, import_paths
from duban.store.models import Observation, Unit


def wide_workbook(path: Path, rows: int, last_column: str) -> Path:
    """A workbook whose every row has a value in A and in `last_column` (XFA = column 16,381).

    Written as raw sheet XML: 3,000 rows take 200 KB, yet a reader fills in every cell between.
    """
    workbook = Workbook()
    workbook.active.title = "units"
    workbook.active.append(["code"])
    workbook.save(path)
    with zipfile.ZipFile(path) as source:
        parts = {name: source.read(name) for name in source.namelist()}
    sheet = parts["xl/worksheets/sheet1.xml"].decode()
    body = "".join(f'<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>u{r}</t></is></c>'
                   f'<c r="{last_column}{r}"><v>1</v></c></row>' for r in range(1, rows + 1))
    parts["xl/worksheets/sheet1.xml"] = re.sub(r"<sheetData>.*</sheetData>|<sheetData\s*/>",
                                               f"<sheetData>{body}</sheetData>", sheet, flags=re.S).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in parts.items():
            target.writestr(name, data)
    return path


def test_a_workbook_of_3000_rows_by_16380_columns_is_refused_before_the_write_lock(tmp_path):
    database = tmp_path / "duban.db"
    engine = make_engine(str(database), connect_args={"timeout": 1})
    create_all(engine)
    path = wide_workbook(tmp_path / "units.xlsx", 3000, "XFA")
    # Another writer holds the lock: an import that reached for it would fail after 1 s.
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        report = import_paths(engine, [path], now=JULY, imported_by="统计员")
        elapsed = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert report.problem_lines()[0] == (f"{path}:units:1: 本行有 16,381 列，超过每行最多 256 列的上限"
                                         "（可用 DUBAN_IMPORT_MAX_COLUMNS 调整），未读取该文件")
    assert elapsed < 30  # measured: well under a second (bench figure in the README)
    engine.dispose()


def test_a_csv_cell_over_131072_characters_is_a_chinese_problem_not_a_traceback(sqlite_engine, tmp_path):
    before = row_counts(sqlite_engine)
    path = write_csv(tmp_path / "units.csv", [UNITS[0], ["fgj", "区" * 200_000, "", ""]])
    report = run(sqlite_engine, path)
    assert report.problem_lines()[0] == (f"{path}:2: 单元格超过 32,767 个字符的上限"
                                         "（可用 DUBAN_IMPORT_MAX_CELL_CHARS 调整），未读取该文件")
    assert row_counts(sqlite_engine) == before


def test_a_cell_longer_than_the_configured_limit_names_its_row_and_column(sqlite_engine, tmp_path):
    workbook = Workbook()
    workbook.active.title = "单位"
    workbook.active.append(["代码", "名称", "邮箱"])
    workbook.active.append(["fgj", "区发改局" * 30, ""])
    workbook.save(tmp_path / "units.xlsx")
    report = import_paths(sqlite_engine, [tmp_path / "units.xlsx"], now=JULY, imported_by="x",
                          limits=ImportLimits(max_cell_chars=100))
    assert report.problem_lines()[0] == (f"{tmp_path / 'units.xlsx'}:单位:2:名称: 单元格有 120 个字符，超过 100 个字符的上限"
                                         "（可用 DUBAN_IMPORT_MAX_CELL_CHARS 调整），未读取该文件")


def test_the_row_limit_counts_every_file_of_one_import(sqlite_engine, tmp_path):
    folder = basics(tmp_path / "lists")  # 1 programme + 4 units + 2 indicators = 7 data rows
    report = import_paths(sqlite_engine, [folder], now=JULY, imported_by="x", limits=ImportLimits(max_rows=6))
    assert report.problem_lines()[0] == (f"{folder / 'indicators.csv'}: 本次导入的数据行超过 6 行的上限"
                                         "（可用 DUBAN_IMPORT_MAX_ROWS 调整）：请分批导入")
    assert import_paths(sqlite_engine, [folder], now=JULY, imported_by="x", limits=ImportLimits(max_rows=7)).ok


def _figures(rows: int) -> list[list[str]]:
    """`rows` distinct figures of fw_invest (a running total that only grows) for the units of `basics`."""
    units = ["fgj", "sw", "wjd", "zb"]
    return [["indicator", "period", "value", "unit"]] + [
        ["fw_invest", f"{2000 + n // 48}-{n // 4 % 12 + 1:02d}", f"{n // 4 % 12 + 1}", units[n % 4]] for n in range(rows)]


def test_a_file_of_exactly_the_row_limit_is_accepted_and_one_row_more_is_not(sqlite_engine, tmp_path):
    # The limit counts data rows of one import, the header not included (python -m bench import: a
    # million figures imported on their own, after the lists).
    assert run(sqlite_engine, basics(tmp_path / "lists")).ok
    (tmp_path / "exact").mkdir()
    exact = write_csv(tmp_path / "exact" / "observations.csv", _figures(50))
    report = import_paths(sqlite_engine, [exact], now=JULY, imported_by="x", limits=ImportLimits(max_rows=50))
    assert report.ok, report.problem_lines()
    assert report.counts["observations"].new == 50
    (tmp_path / "over").mkdir()
    over = write_csv(tmp_path / "over" / "observations.csv", _figures(51))
    report = import_paths(sqlite_engine, [over], now=JULY, imported_by="x", limits=ImportLimits(max_rows=50))
    assert report.problem_lines()[0] == (f"{over}: 本次导入的数据行超过 50 行的上限"
                                         "（可用 DUBAN_IMPORT_MAX_ROWS 调整）：请分批导入")


def test_the_row_limit_is_exact_when_the_file_is_parsed_rather_than_counted_from_its_bytes(sqlite_engine, tmp_path):
    # Blank lines make the byte count of lines generous: the file is then parsed, and its 20 data
    # rows are within a limit of 20 (blank rows, as Excel leaves them, are no data rows).
    (tmp_path / "lists").mkdir()
    units = [[f"u{n}", f"单位{n}", "", "部门"] for n in range(20)]
    path = write_csv(tmp_path / "lists" / "units.csv", [UNITS[0], *units[:10], ["", "", "", ""], *units[10:], []])
    report = import_paths(sqlite_engine, [path], now=JULY, imported_by="x", limits=ImportLimits(max_rows=20))
    assert report.ok, report.problem_lines()
    assert report.counts["units"].new == 20
    report = import_paths(sqlite_engine, [path], now=JULY, imported_by="x", limits=ImportLimits(max_rows=19))
    assert report.problem_lines()[0] == (f"{path}: 本次导入的数据行超过 19 行的上限"
                                         "（可用 DUBAN_IMPORT_MAX_ROWS 调整）：请分批导入")


def test_limits_come_from_the_environment_and_ignore_nonsense():
    limits = ImportLimits.from_env({"DUBAN_IMPORT_MAX_ROWS": "5000", "DUBAN_IMPORT_MAX_COLUMNS": "-1",
                                    "DUBAN_IMPORT_MAX_CELL_CHARS": "many", "DUBAN_IMPORT_JUMP_FACTOR": "inf"})
    assert (limits.max_rows, limits.max_columns, limits.max_cell_chars, limits.jump_factor) == (5000, 256, 32_767, 10)


def test_a_400_digit_figure_is_refused_and_never_stored_as_infinity(sqlite_engine, tmp_path):
    folder = basics(tmp_path / "lists")
    write_csv(folder / "observations.csv", [OBSERVATIONS[0], ["fw_invest", "2023-06", "-" + "9" * 400, ""]])
    report = run(sqlite_engine, folder)
    assert report.problem_lines()[0] == (f"{folder / 'observations.csv'}:2:value: "
                                         f"数值超出可接受范围（绝对值不超过 10 的 15 次方）：'-{'9' * 19}…（共401位）'")
    with transaction(sqlite_engine) as s:
        assert s.scalars(select(Observation)).all() == []


def test_unit_codes_with_invisible_or_look_alike_characters_are_refused(sqlite_engine, tmp_path):
    path = write_csv(tmp_path / "units.csv", [UNITS[0], ["fgj\u200b", "区发改局", "", ""], ["fgј", "区商务局", "", ""],
                                             ["f\u202egj", "区财政局", "", ""]])
    report = run(sqlite_engine, path)
    assert [line.split(": ", 1)[0] for line in report.problem_lines()[:3]] == [
        f"{path}:2:code", f"{path}:3:code", f"{path}:4:code"]
    assert "代码只能由英文字母、数字、下划线 _ 和连字符 - 组成：'fgj<U+200B>'" in report.problem_lines()[0]


def test_two_units_may_not_share_a_name_in_one_list_or_with_the_stored_ones(sqlite_engine, tmp_path):
    assert run(sqlite_engine, write_csv(tmp_path / "units.csv", UNITS)).ok
    (tmp_path / "more").mkdir()
    again = write_csv(tmp_path / "more" / "units.csv", [UNITS[0], ["fgj2", "区发改局", "", ""], ["x1", "新单位", "", ""], ["x2", "新单位 ", "", ""]])
    report = run(sqlite_engine, again)
    lines = report.problem_lines()
    assert f"{again}:2:name: 单位名称“区发改局”与单位 fgj 重复：单位名称不能相同（按名称查找单位时无法区分）" in lines
    assert f"{again}:3:name: 单位名称“新单位”与单位 x2 重复：单位名称不能相同（按名称查找单位时无法区分）" in lines
    with transaction(sqlite_engine) as s:
        assert s.get(Unit, "fgj2") is None


def test_a_unit_may_take_a_name_another_unit_gives_up_in_the_same_import(sqlite_engine, tmp_path):
    assert run(sqlite_engine, write_csv(tmp_path / "units.csv", UNITS)).ok
    (tmp_path / "swap").mkdir()
    swap = write_csv(tmp_path / "swap" / "units.csv", [UNITS[0], ["fgj", "区发展和改革局", "", ""], ["fgj2", "区发改局", "", ""]])
    report = run(sqlite_engine, swap)
    assert report.ok, report.problem_lines()


def test_the_cell_limit_bounds_rows_times_columns(sqlite_engine, tmp_path):
    path = write_csv(tmp_path / "units.csv", UNITS)  # 5 rows of 4 cells
    report = import_paths(sqlite_engine, [path], now=JULY, imported_by="x", limits=ImportLimits(max_cells=19))
    assert report.problem_lines()[0] == (f"{path}:5: 本次导入的单元格超过 19 个的上限（可用 DUBAN_IMPORT_MAX_CELLS 调整）："
                                         "请删去多余的列或分批导入")
