"""The files officials actually send: GBK and BOM csv from WPS/Excel, workbooks with several sheets,
percent-formatted and date cells, filled-in templates; and the `duban import`/`duban template` commands."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from click.testing import CliRunner
from openpyxl import Workbook, load_workbook
from sqlalchemy import select
from test_import import INDICATORS, OBSERVATIONS, UNITS, basics, row_counts, run, write_csv

from duban.cli import main
from duban.store.db import transaction
from duban.store.importing.lists import LISTS
from duban.store.models import Indicator, Observation, Task, Unit
from duban.store.templates_xlsx import write_templates


def test_a_gbk_csv_from_wps_is_read_correctly(sqlite_engine, tmp_path):
    units = write_csv(tmp_path / "单位.csv", [["代码", "名称", "邮箱", "类型"], ["fgj", "区发改局", "f@lucheng.gov.cn", "部门"]],
                      encoding="gbk")
    assert run(sqlite_engine, units).ok
    with transaction(sqlite_engine) as s:
        assert s.get(Unit, "fgj").name == "区发改局"


def test_a_utf8_csv_with_a_byte_order_mark_is_read_correctly(sqlite_engine, tmp_path):
    units = write_csv(tmp_path / "units.csv", UNITS, encoding="utf-8-sig")
    report = run(sqlite_engine, units)
    assert report.ok, report.problem_lines()  # a BOM left on "code" would make it an unknown column
    with transaction(sqlite_engine) as s:
        assert s.get(Unit, "wjd").name == "五马街道"


def _sheet(workbook: Workbook, title: str, rows: list[list[object]]):
    sheet = workbook.create_sheet(title)
    for row in rows:
        sheet.append(row)
    return sheet


def test_a_workbook_with_several_sheets_is_imported_in_dependency_order(sqlite_engine, tmp_path):
    workbook = Workbook()
    workbook.remove(workbook.active)
    # Figures come first in the workbook; units and indicators must still be imported before them.
    figures = _sheet(workbook, "月度数据", [["指标", "期间", "数值", "填报单位"],
                                            ["fw_share", dt.datetime(2023, 6, 1), 0.665, ""],
                                            ["fw_invest", "2023年第2季度", 12.5, "wjd"]])
    figures["C2"].number_format = "0.0%"  # shown as 66.5% in Excel, stored as 0.665
    _sheet(workbook, "说明", [["本工作表导入时忽略"]])
    _sheet(workbook, "指标", INDICATORS)
    _sheet(workbook, "units", UNITS)
    _sheet(workbook, "任务", [["代码", "任务", "时间节点", "责任单位"], ["t1", "任务一", dt.datetime(2023, 9, 30), "fgj"]])
    path = tmp_path / "报送.xlsx"
    workbook.save(path)

    report = run(sqlite_engine, path)

    assert report.ok, report.problem_lines()
    with transaction(sqlite_engine) as s:
        figures_stored = {(o.indicator_code, o.period): (o.value, o.source_file) for o in s.scalars(select(Observation))}
        assert figures_stored == {("fw_share", "2023-06"): (66.5, f"{path}:月度数据"),
                                  ("fw_invest", "2023-Q2"): (12.5, f"{path}:月度数据")}
        task = s.get(Task, "t1")
        assert (task.deadline, task.deadline_text) == (dt.date(2023, 9, 30), "2023-09-30")


def test_problems_in_a_workbook_name_the_sheet(sqlite_engine, tmp_path):
    basics(tmp_path / "basics")
    assert run(sqlite_engine, tmp_path / "basics").ok
    workbook = Workbook()
    workbook.active.title = "月度数据"
    workbook.active.append(OBSERVATIONS[0])
    workbook.active.append(["fw_share", "2023-06", "很多", ""])
    workbook.create_sheet("预算").append(["科目", "金额"])
    path = tmp_path / "data.xlsx"
    workbook.save(path)

    messages = [str(problem) for problem in run(sqlite_engine, path).problems]

    assert f"{path}:月度数据:2:value: 不是数值：'很多'" in messages
    assert any(message.startswith(f"{path}:预算: 无法从工作表名称“预算”判断") for message in messages)


def test_a_one_sheet_workbook_is_named_by_its_file(sqlite_engine, tmp_path):
    workbook = Workbook()
    workbook.active.title = "Sheet1"
    for row in UNITS:
        workbook.active.append(row)
    workbook.save(tmp_path / "units-2023.xlsx")
    assert run(sqlite_engine, tmp_path / "units-2023.xlsx").counts["units"].new == len(UNITS) - 1


def test_filled_in_templates_import_cleanly(sqlite_engine, tmp_path):
    written = write_templates(tmp_path / "模板")
    assert sorted(path.name for path in written) == sorted(f"{spec.name}.xlsx" for spec in LISTS)
    for name, rows in (("units", UNITS), ("indicators", INDICATORS), ("observations", OBSERVATIONS)):
        path = tmp_path / "模板" / f"{name}.xlsx"
        workbook = load_workbook(path)
        data_sheet, instructions = workbook.worksheets
        assert instructions.title == "说明"
        headers = [cell.value for cell in data_sheet[1]]
        by_name = {column.name: column.label for spec in LISTS if spec.name == name for column in spec.columns}
        assert headers == list(by_name.values())  # Chinese headers
        for row in rows[1:]:
            record = dict(zip(rows[0], row, strict=True))
            data_sheet.append([record.get(column, "") for column in by_name])
        workbook.save(path)

    report = run(sqlite_engine, tmp_path / "模板")

    assert report.ok, report.problem_lines()
    assert (report.counts["units"].new, report.counts["indicators"].new, report.counts["observations"].new) == (4, 2, 2)
    with transaction(sqlite_engine) as s:
        assert s.get(Indicator, "fw_share").unit_codes == ["fgj", "sw"]


def test_blank_templates_import_as_nothing_to_do(sqlite_engine, tmp_path):
    write_templates(tmp_path)
    report = run(sqlite_engine, tmp_path)
    assert report.ok and sum(c.new for c in report.counts.values()) == 0


# --- the commands -------------------------------------------------------------------------


def _cli(db: Path, *args: str):
    return CliRunner().invoke(main, ["--db", str(db), *args])


def test_duban_import_prints_a_chinese_summary_and_exits_zero(tmp_path):
    db = tmp_path / "duban.db"
    assert _cli(db, "db", "upgrade").exit_code == 0
    result = _cli(db, "import", str(basics(tmp_path / "lists")), "--by", "李四")
    assert result.exit_code == 0, result.output
    assert "单位（units）：新增 4，更新 0，未变 0" in result.output


def test_duban_import_lists_the_problems_and_exits_non_zero_writing_nothing(tmp_path, sqlite_engine):
    db = Path(sqlite_engine.url.database)
    bad = write_csv(tmp_path / "units.csv", [UNITS[0], ["x", "X", "abc@", "department"], ["y", "Y", "", "科室"]])
    before = row_counts(sqlite_engine)

    result = _cli(db, "import", str(bad))

    assert result.exit_code == 1
    assert f"{bad}:2:email: 邮箱地址格式不正确：'abc@'" in result.stderr
    assert f"{bad}:3:kind: 单位类型取值不正确" in result.stderr
    assert "共发现 2 个问题，本次导入未写入任何数据" in result.stderr
    assert "Traceback" not in result.output
    assert row_counts(sqlite_engine) == before


def test_duban_import_on_an_uninitialised_database_says_what_to_do(tmp_path):
    result = _cli(tmp_path / "empty.db", "import", str(basics(tmp_path / "lists")))
    assert result.exit_code == 1
    assert "duban db upgrade" in result.output


def test_duban_template_refuses_to_overwrite_filled_templates_without_force(tmp_path):
    assert _cli(tmp_path / "x.db", "template", str(tmp_path / "t")).exit_code == 0
    again = _cli(tmp_path / "x.db", "template", str(tmp_path / "t"))
    assert again.exit_code == 1 and "--force" in again.output
    assert _cli(tmp_path / "x.db", "template", str(tmp_path / "t"), "--force").exit_code == 0
