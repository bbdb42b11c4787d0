"""Finding the lists in the paths given, and streaming their rows lazily from .csv and .xlsx files.

Nothing here touches the database. Rows are read one at a time so a million-row file costs
memory for one row, not for the file.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from duban.store.importing.lists import (
    IGNORED_COLUMNS,
    INSTRUCTIONS_SHEET,
    LIST_ORDER,
    ListSpec,
    list_for_name,
    normalise_header,
)
from duban.store.importing.values import Cell, PercentCell, is_blank, parse_text

__all__ = ["SUPPORTED_SUFFIXES", "Problem", "Source", "Table", "detect_csv_encoding", "discover", "open_table"]

SUPPORTED_SUFFIXES = (".csv", ".xlsx")
HEADER_ROW = 1
CSV_ENCODINGS = ("utf-8-sig", "gb18030")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Problem:
    """One thing the user must fix, printed as `file[:sheet]:row:column: message`."""

    file: str
    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f":{self.row}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class Source:
    path: Path
    sheet: str | None
    spec: ListSpec

    @property
    def label(self) -> str:
        return f"{self.path}:{self.sheet}" if self.sheet else str(self.path)


@dataclass
class Table:
    source: Source
    columns: dict[str, tuple[int, str]]  # canonical column -> (position, header as the user wrote it)
    rows: Iterator[tuple[int, list[Cell]]]  # (row number as a spreadsheet shows it, cells)

    def header(self, column: str) -> str:
        return self.columns[column][1] if column in self.columns else column


def discover(paths: Sequence[str | Path]) -> tuple[list[Source], list[Problem]]:
    """Every list in `paths`, in dependency order (programme first, tasks last), then by file name."""
    sources: list[Source] = []
    problems: list[Problem] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES
                           and not p.name.startswith(("~$", ".")))
            if not files:
                problems.append(Problem(str(path), None, None, "文件夹中没有 .csv 或 .xlsx 文件"))
            for file in files:
                _add_file(file, sources, problems)
        elif path.is_file():
            _add_file(path, sources, problems)
        else:
            problems.append(Problem(str(path), None, None, "文件或文件夹不存在"))
    order = {name: position for position, name in enumerate(LIST_ORDER)}
    sources.sort(key=lambda source: order[source.spec.name])  # stable: file order kept within a list
    return sources, problems


def _add_file(path: Path, sources: list[Source], problems: list[Problem]) -> None:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        problems.append(Problem(str(path), None, None, "只能导入 .csv 或 .xlsx 文件"))
        return
    stem_spec = list_for_name(path.stem)
    if suffix == ".csv":
        if stem_spec is None:
            problems.append(Problem(str(path), None, None, _unknown_list_message("文件名", path.stem)))
        else:
            sources.append(Source(path, None, stem_spec))
        return
    try:
        sheet_names = _sheet_names(path)
    except Exception:  # openpyxl raises many types for a damaged or mis-named file
        problems.append(Problem(str(path), None, None, "无法读取该 Excel 文件（文件损坏或不是 .xlsx 格式）"))
        return
    data_sheets = [name for name in sheet_names if name.strip() != INSTRUCTIONS_SHEET]
    for sheet in data_sheets:
        spec = list_for_name(sheet)
        # A one-sheet workbook called "units.xlsx" with a sheet "Sheet1" is named by its file.
        if spec is None and len(data_sheets) == 1:
            spec = stem_spec
        if spec is None:
            problems.append(Problem(f"{path}:{sheet}", None, None, _unknown_list_message("工作表名称", sheet)))
        else:
            sources.append(Source(path, sheet, spec))


def _unknown_list_message(what: str, name: str) -> str:
    return (f"无法从{what}“{name}”判断是哪一类清单（应以 {'、'.join(LIST_ORDER)} 或 "
            "方案、单位、指标、目标、月度数据、项目、项目计划、项目投资、任务 开头）")


def _sheet_names(path: Path) -> list[str]:
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        return list(workbook.sheetnames)
    finally:
        workbook.close()


def detect_csv_encoding(path: Path) -> tuple[str | None, int]:
    """The first of UTF-8 (with or without BOM) and GB18030 (a superset of GBK) that decodes the whole file.

    Returns (None, line) when neither does, with the line where UTF-8 decoding first failed.
    WPS and older Excel save CSV as GBK; a UTF-8 prefix followed by GBK bytes must not pass.
    """
    first_bad_line = 1
    for encoding in CSV_ENCODINGS:
        decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
        lines_before = 0
        try:
            with path.open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    try:
                        decoder.decode(chunk)
                    except UnicodeDecodeError as error:
                        lines_before += chunk.count(b"\n", 0, max(error.start, 0))
                        raise
                    lines_before += chunk.count(b"\n")
                decoder.decode(b"", final=True)
            return encoding, 0
        except UnicodeDecodeError:
            if encoding == CSV_ENCODINGS[0]:
                first_bad_line = lines_before + 1
    return None, first_bad_line


@contextmanager
def open_table(source: Source, problems: list[Problem]) -> Iterator[Table | None]:
    """The table's header checked and its rows ready to stream; None (with problems added) if unusable."""
    if source.path.suffix.lower() == ".csv":
        with _open_csv(source, problems) as raw_rows:
            yield _with_header(source, raw_rows, problems) if raw_rows is not None else None
    else:
        with _open_xlsx(source, problems) as raw_rows:
            yield _with_header(source, raw_rows, problems) if raw_rows is not None else None


@contextmanager
def _open_csv(source: Source, problems: list[Problem]) -> Iterator[Iterator[list[Cell]] | None]:
    encoding, bad_line = detect_csv_encoding(source.path)
    if encoding is None:
        problems.append(Problem(source.label, bad_line, None,
                                "文件编码无法识别：请在 Excel/WPS 中另存为“CSV UTF-8”或 GBK 编码的 CSV 文件"))
        yield None
        return
    with source.path.open(encoding=encoding, newline="") as handle:
        rows: Iterator[list[Any]] = csv.reader(handle)
        yield rows


@contextmanager
def _open_xlsx(source: Source, problems: list[Problem]) -> Iterator[Iterator[list[Cell]] | None]:
    from openpyxl import load_workbook

    workbook = load_workbook(source.path, read_only=True, data_only=True)
    try:
        worksheet = workbook[source.sheet or workbook.sheetnames[0]]
        # Files written by other tools often carry a wrong <dimension>; read every row there is.
        worksheet.reset_dimensions()
        yield _xlsx_rows(worksheet)
    finally:
        workbook.close()


def _xlsx_rows(worksheet: Any) -> Iterator[list[Cell]]:
    expected_row = 1
    for cells in worksheet.iter_rows():
        row_number = next((cell.row for cell in cells if getattr(cell, "row", None)), expected_row)
        # Read-only sheets may skip empty rows; keep row numbers true to what Excel shows.
        while expected_row < row_number:
            yield []
            expected_row += 1
        yield [_xlsx_value(cell) for cell in cells]
        expected_row += 1


def _xlsx_value(cell: Any) -> Cell:
    value = cell.value
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float) and "%" in (cell.number_format or ""):
        return PercentCell(value * 100)
    if isinstance(value, dt.time):
        return str(value)
    return value


def _with_header(source: Source, raw_rows: Iterator[list[Cell]], problems: list[Problem]) -> Table | None:
    spec = source.spec
    header_cells = next(raw_rows, None)
    if header_cells is None or all(is_blank(cell) for cell in header_cells):
        problems.append(Problem(source.label, HEADER_ROW, None, "缺少表头行（第1行应为列名）"))
        return None
    by_spelling: dict[str, str] = {}
    for column in spec.columns:
        for spelling in (column.name, column.label, *column.aliases):
            by_spelling[normalise_header(spelling)] = column.name
    columns: dict[str, tuple[int, str]] = {}
    usable = True
    for position, cell in enumerate(header_cells):
        written = parse_text(cell)
        normalised = normalise_header(written)
        if not normalised or normalised in IGNORED_COLUMNS:
            continue
        name = by_spelling.get(normalised)
        if name is None:
            accepted = "、".join(f"{c.name}（{c.label}）" for c in spec.columns)
            problems.append(Problem(source.label, HEADER_ROW, written, f"无法识别的列名：'{written}'（可用列：{accepted}）"))
            usable = False
        elif name in columns:
            problems.append(Problem(source.label, HEADER_ROW, written,
                                    f"列重复：'{written}' 与 '{columns[name][1]}' 是同一列"))
            usable = False
        else:
            columns[name] = (position, written)
    for column in spec.columns:
        if column.required and column.name not in columns:
            problems.append(Problem(source.label, HEADER_ROW, column.name,
                                    f"缺少必填列：{column.name}（{column.label}）"))
            usable = False
    if not usable:
        return None
    return Table(source, columns, _numbered_rows(raw_rows))


def _numbered_rows(raw_rows: Iterator[list[Cell]]) -> Iterator[tuple[int, list[Cell]]]:
    for number, cells in enumerate(raw_rows, start=HEADER_ROW + 1):
        if any(not is_blank(cell) for cell in cells):
            yield number, cells
