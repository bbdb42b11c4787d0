"""What officials' spreadsheets really contain (issue 14): date-time cells, dates typed into General
cells, accounting negatives, Excel's empty Sheet2/Sheet3, and .xls workbooks from older offices."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from openpyxl import Workbook
from sqlalchemy import select
from test_import import INDICATORS, PROGRAMME, UNITS, basics, run, write_csv

from duban.store.db import transaction
from duban.store.models import Observation, Programme, Task, Unit

DATA = Path(__file__).parent / "data"


def test_a_date_time_cell_saved_to_csv_is_a_date_not_a_mangled_echo(sqlite_engine, tmp_path):
    folder = basics(tmp_path / "lists")
    write_csv(folder / "tasks.csv", [["code", "title", "deadline", "units"],
                                     ["t1", "培育领军企业", "2023/12/29 0:00", "fgj"]])
    report = run(sqlite_engine, folder)
    assert report.ok, report.problem_lines()
    with transaction(sqlite_engine) as s:
        task = s.get(Task, "t1")
        assert (task.deadline, task.deadline_text) == (dt.date(2023, 12, 29), "2023-12-29")


def test_a_date_typed_into_a_general_cell_is_read_as_the_date_excel_shows(sqlite_engine, tmp_path):
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "方案"
    sheet.append(PROGRAMME[0])
    sheet.append([*PROGRAMME[1][:2], 44927, 46752, PROGRAMME[1][4]])  # General cells: 2023-01-01, 2027-12-31
    workbook.save(tmp_path / "programme.xlsx")
    report = run(sqlite_engine, tmp_path / "programme.xlsx")
    assert report.ok, report.problem_lines()
    with transaction(sqlite_engine) as s:
        programme = s.scalars(select(Programme)).one()
        assert (programme.start, programme.end) == (dt.date(2023, 1, 1), dt.date(2027, 12, 31))


def test_a_bad_programme_date_is_reported_once_not_as_a_missing_programme_for_every_task(sqlite_engine, tmp_path):
    folder = tmp_path / "lists"
    folder.mkdir()
    write_csv(folder / "programme.csv", [PROGRAMME[0], [*PROGRAMME[1][:3], "2027年底", PROGRAMME[1][4]]])
    write_csv(folder / "units.csv", UNITS)
    write_csv(folder / "tasks.csv", [["code", "title", "deadline", "units"],
                                     ["t1", "青蓝接力", "五年内", "fgj"], ["t2", "领军企业", "五年内", "fgj"]])
    report = run(sqlite_engine, folder)
    messages = report.problem_lines()
    assert f"{folder / 'programme.csv'}:2:end: 日期格式不正确：'2027年底'（应为 2023-06-30）" in messages
    assert not any("尚未导入方案" in message for message in messages), messages
    assert report.problem_count == 1


def test_accounting_negatives_are_imported_as_negative_figures(sqlite_engine, tmp_path):
    folder = basics(tmp_path / "lists")
    write_csv(folder / "observations.csv", [["indicator", "period", "value", "unit"], ["fw_invest", "2023-06", "(1.5)", ""]])
    report = run(sqlite_engine, folder)
    assert report.ok, report.problem_lines()
    with transaction(sqlite_engine) as s:
        assert s.scalars(select(Observation.value)).one() == -1.5


def test_a_workbook_with_data_in_sheet1_and_excels_empty_sheet2_and_sheet3_imports(sqlite_engine, tmp_path):
    workbook = Workbook()
    workbook.active.title = "Sheet1"
    for row in UNITS:
        workbook.active.append(row)
    workbook.create_sheet("Sheet2")
    workbook.create_sheet("Sheet3")
    workbook.save(tmp_path / "units.xlsx")
    report = run(sqlite_engine, tmp_path / "units.xlsx")
    assert report.ok, report.problem_lines()
    assert report.counts["units"].new == len(UNITS) - 1


def test_an_xls_workbook_from_an_older_office_is_read_with_its_percent_and_date_cells(sqlite_engine, tmp_path):
    # tests/data/报送-2023.xls (Excel 97–2003): 单位, 指标, 月度数据 (a 2023-06-01 date cell and 0.665
    # formatted 0.0%), and Excel's empty Sheet2 and Sheet3.
    path = tmp_path / "报送-2023.xls"
    shutil.copy(DATA / path.name, path)
    report = run(sqlite_engine, path)
    assert report.ok, report.problem_lines()
    with transaction(sqlite_engine) as s:
        assert s.get(Unit, "fgj").name == "区发改局"
        figures = {(o.indicator_code, o.period, o.unit_code): o.value for o in s.scalars(select(Observation))}
    assert figures == {("fw_share", "2023-06", ""): 66.5, ("fw_invest", "2023-Q2", "sw"): 12.5}


def test_an_xls_file_saved_with_an_xlsx_name_is_read_for_what_it_is(sqlite_engine, tmp_path):
    path = tmp_path / "报送-2023.xlsx"
    shutil.copy(DATA / "报送-2023.xls", path)
    report = run(sqlite_engine, path)
    assert report.ok, report.problem_lines()


def test_a_damaged_xls_is_refused_in_chinese(sqlite_engine, tmp_path):
    path = tmp_path / "units.xls"
    path.write_bytes((DATA / "报送-2023.xls").read_bytes()[:1500])
    report = run(sqlite_engine, path)
    assert not report.ok
    assert any("无法读取该 Excel 文件" in line for line in report.problem_lines())


def test_indicators_sheet_in_a_workbook_is_still_checked_when_sheet2_is_empty(sqlite_engine, tmp_path):
    workbook = Workbook()
    workbook.active.title = "指标"
    for row in INDICATORS:
        workbook.active.append(row)
    workbook.create_sheet("Sheet2")
    workbook.save(tmp_path / "data.xlsx")
    report = run(sqlite_engine, tmp_path / "data.xlsx")
    # The indicators refer to units that do not exist: the sheet was read, Sheet2 was not an error.
    assert not report.ok
    assert all("Sheet2" not in line for line in report.problem_lines())
    assert any("未知的单位代码" in line for line in report.problem_lines())


def test_excels_unicode_text_export_utf16_with_tabs_is_read(sqlite_engine, tmp_path):
    path = tmp_path / "units.csv"
    path.write_bytes("\r\n".join("\t".join(row) for row in UNITS).encode("utf-16"))  # BOM + UTF-16LE
    report = run(sqlite_engine, path)
    assert report.ok, report.problem_lines()
    with transaction(sqlite_engine) as s:
        assert s.get(Unit, "wjd").name == "五马街道"
