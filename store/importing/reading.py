"""Finding the lists in the paths given, and streaming their rows lazily from .csv, .xlsx and .xls files.

Nothing here touches the database. Rows are read one at a time so a million-row file costs
memory for one row, not for the file. `measure` reads every file once before the import takes
the write lock and refuses those beyond the limits (rows, columns, cell length): a hostile or
accidental giant never holds the lock.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from operator import methodcaller
from pathlib import Path
from typing import Any, Protocol, cast

from duban.store.importing.limits import ImportLimits
from duban.store.importing.lists import (
    IGNORED_COLUMNS,
    INSTRUCTIONS_SHEET,
    LIST_ORDER,
    ListSpec,
    list_for_name,
    normalise_header,
)
from duban.store.importing.values import Cell, PercentCell, is_blank, parse_text

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Problem",
    "ProblemSink",
    "Source",
    "Table",
    "detect_csv_encoding",
    "discover",
    "measure",
    "open_table",
]

SUPPORTED_SUFFIXES = (".csv", ".xlsx", ".xls")
HEADER_ROW = 1
CSV_ENCODINGS = ("utf-8-sig", "gb18030")
_CHUNK = 1 << 20
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # the compound file every .xls is
_UNREADABLE_WORKBOOK = "无法读取该 Excel 文件（文件损坏，或不是 .xlsx/.xls 格式）"


@dataclass(frozen=True)
class Problem:
    """One thing the user must fix, printed as `file[:sheet]:row:column: message`.

    A warning (`warning=True`) is a figure to confirm rather than an error: the import is
    refused unless the importer explains it with a note.
    """

    file: str
    row: int | None
    column: str | None
    message: str
    warning: bool = False

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f":{self.row}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {'【需核实】' if self.warning else ''}{self.message}"


class ProblemSink(Protocol):
    def append(self, problem: Problem, /) -> None: ...


@dataclass(frozen=True)
class Source:
    """A sheet or file to read; or, with `rows`, rows given in memory (a web form), header first."""

    path: Path
    sheet: str | None
    spec: ListSpec
    rows: tuple[tuple[Cell, ...], ...] | None = None
    name: str | None = None  # the label of in-memory rows
    first_row: int = HEADER_ROW + 1  # the number the first data row is shown with

    @property
    def label(self) -> str:
        if self.name is not None:
            return self.name
        return f"{self.path}:{self.sheet}" if self.sheet else str(self.path)

    @property
    def kind(self) -> str:
        """"memory", "csv", "xlsx" or "xls": the workbook kind is what the bytes say, not the suffix."""
        if self.rows is not None:
            return "memory"
        suffix = self.path.suffix.lower()
        if suffix == ".csv":
            return "csv"
        return _workbook_kind(self.path) or suffix.lstrip(".")


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
                problems.append(Problem(str(path), None, None, "文件夹中没有 .csv、.xlsx 或 .xls 文件"))
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
        problems.append(Problem(str(path), None, None, "只能导入 .csv、.xlsx 或 .xls 文件"))
        return
    stem_spec = list_for_name(path.stem)
    if suffix == ".csv":
        if stem_spec is None:
            problems.append(Problem(str(path), None, None, _unknown_list_message("文件名", path.stem)))
        else:
            sources.append(Source(path, None, stem_spec))
        return
    try:
        sheets = _workbook_sheets(path)
    except Exception:  # openpyxl and xlrd raise many types for a damaged or mis-named file
        problems.append(Problem(str(path), None, None, _UNREADABLE_WORKBOOK))
        return
    # Excel's empty Sheet2/Sheet3 (or any empty sheet whose name is no list) carry nothing.
    data_sheets = [name for name, empty in sheets
                   if name.strip() != INSTRUCTIONS_SHEET and not (empty and list_for_name(name) is None)]
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


def _workbook_kind(path: Path) -> str | None:
    """"xlsx" or "xls" from the file's first bytes (offices rename one to the other), None if neither."""
    try:
        with path.open("rb") as handle:
            magic = handle.read(8)
    except OSError:
        return None
    if magic.startswith(_ZIP_MAGIC):
        return "xlsx"
    if magic == _OLE_MAGIC:
        return "xls"
    return None


def _workbook_sheets(path: Path) -> list[tuple[str, bool]]:
    """(sheet name, whether it holds no value at all) for every sheet, in workbook order.

    Only sheets whose name is no list are scanned for emptiness, and the scan stops at the
    first value: a full data sheet costs nothing here.
    """
    kind = _workbook_kind(path) or path.suffix.lower().lstrip(".")
    if kind == "xls":
        book = _open_xls(path)
        try:
            return [(sheet.name, list_for_name(sheet.name) is None and not any(
                not is_blank(sheet.cell_value(r, c)) for r in range(sheet.nrows) for c in range(sheet.row_len(r))))
                for sheet in book.sheets()]
        finally:
            book.release_resources()
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        found = []
        for name in workbook.sheetnames:
            empty = False
            if list_for_name(name) is None and name.strip() != INSTRUCTIONS_SHEET:
                worksheet = workbook[name]
                worksheet.reset_dimensions()
                empty = not any(not is_blank(value) for row in worksheet.iter_rows(values_only=True) for value in row)
            found.append((name, empty))
        return found
    finally:
        workbook.close()


def _open_xls(path: Path) -> Any:
    import xlrd

    return xlrd.open_workbook(str(path), formatting_info=True, on_demand=True)


def detect_csv_encoding(path: Path) -> tuple[str | None, int]:
    """UTF-16 when the file starts with its byte-order mark; otherwise the first of UTF-8 (with or without
    BOM) and GB18030 (a superset of GBK) that decodes the whole file.

    Returns (None, line) when neither does, with the line where UTF-8 decoding first failed.
    WPS and older Excel save CSV as GBK; a UTF-8 prefix followed by GBK bytes must not pass.
    """
    first_bad_line = 1
    try:
        with path.open("rb") as handle:
            start = handle.read(4)
    except OSError:
        return None, 1
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", 0  # Excel's "Unicode text" and some WPS exports; the BOM says which byte order
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
def open_table(source: Source, problems: ProblemSink, limits: ImportLimits | None = None) -> Iterator[Table | None]:
    """The table's header checked and its rows ready to stream; None (with problems added) if unusable.

    Rows beyond `limits` end the table with a problem (the import then fails): the check in
    `measure` comes first, this one keeps a file changed since from running unbounded.
    """
    limits = limits or ImportLimits()
    with _raw_rows(source, problems, limits) as raw_rows:
        if raw_rows is None:
            yield None
            return
        bounded = _bounded(source, raw_rows, problems, limits, [0, 0])
        yield _with_header(source, bounded, problems)


def measure(sources: Sequence[Source], limits: ImportLimits) -> list[Problem]:
    """Every file read once, before the write lock: problems only for files beyond the limits.

    A file that cannot be read at all is left for the import itself to report (with every
    other problem); here only size matters, and the first excess stops the reading of a file.
    The row and cell limits count all files together.
    """
    problems: list[Problem] = []
    total = [0, 0]
    for source in sources:
        if source.kind == "csv" and _csv_surely_within(source.path, limits, total):
            continue
        ignored: list[Problem] = []
        with _raw_rows(source, ignored, limits) as raw_rows:
            if raw_rows is None:
                continue
            before = len(problems)
            for _ in _bounded(source, raw_rows, problems, limits, total):
                pass
            if len(problems) > before and problems[-1].message.startswith("本次导入的"):
                break
    return problems


def _csv_surely_within(path: Path, limits: ImportLimits, total: list[int]) -> bool:
    """Whether the bytes alone prove a csv file within the limits, so it need not be parsed twice.

    Every bound is counted generously: lines for records, a line's bytes for its longest cell
    (a character takes at least one byte), commas plus one for its cells. When the generous
    counts fit, so do the real ones, and `total` grows by them; otherwise the file is parsed.
    """
    lines = commas = widest = longest = 0
    count_commas = methodcaller("count", b",")
    carry = b""
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                parts = (carry + chunk).split(b"\n")
                carry = parts.pop()
                lines += len(parts)
                commas += sum(map(count_commas, parts))
                widest = max(widest, max(map(count_commas, parts), default=0))
                longest = max(longest, max(map(len, parts), default=0), len(carry))
                if longest > limits.max_cell_chars:
                    return False
    except OSError:
        return False
    if carry:
        lines += 1
        commas += carry.count(b",")
        widest = max(widest, carry.count(b","))
    widest += 1
    cells = commas + lines
    rows = max(lines - 1, 0)
    if (widest > limits.max_columns or longest > limits.max_cell_chars or total[0] + rows > limits.max_rows
            or total[1] + cells > limits.max_cells):
        return False
    total[0] += rows
    total[1] += cells
    return True


def _bounded(source: Source, rows: Iterator[list[Cell]], problems: ProblemSink, limits: ImportLimits,
             total: list[int]) -> Iterator[tuple[int, list[Cell]]]:
    """The header row and every data row that holds anything, each with the number a spreadsheet shows
    it with, until a row breaks a limit: then a problem naming the limit, and no more rows.

    `total` is [data rows, cells] read so far, carried from file to file: the header and blank
    rows are no data rows, so a file of exactly `max_rows` figures passes. This runs for every
    row of a million-row file twice (before the lock and under it): the loop is kept tight.
    """
    max_columns, max_chars = limits.max_columns, limits.max_cell_chars
    rows_read, cells_read = total
    rows_allowed, cells_allowed = limits.max_rows, limits.max_cells
    header: list[Cell] | None = None
    failure: tuple[int, int] | None = None  # (raw row index, position of a long cell or -1)
    index = -1
    cells: list[Cell] = []
    offset = source.first_row - 1  # `_row_number`, inlined
    for index, cells in enumerate(rows):
        width = len(cells)
        cells_read += width
        if width > max_columns or cells_read > cells_allowed:
            failure = (index, -1)
            break
        try:  # csv rows are all text: one C-level pass; workbook rows mix types and take the slow path
            longest = max(map(len, cells), default=0)  # type: ignore[arg-type]
        except TypeError:
            longest = max((len(cell) for cell in cells if isinstance(cell, str)), default=0)
        if longest > max_chars:
            failure = (index, next(i for i, cell in enumerate(cells) if isinstance(cell, str) and len(cell) == longest))
            break
        if header is None:
            header = cells
        else:
            for cell in cells:  # a blank row is no data row (`is_blank`, inlined): neither counted nor kept
                if cell is not None and (not isinstance(cell, str) or cell.strip()):
                    break
            else:
                continue
            rows_read += 1
            if rows_read > rows_allowed:
                break
        yield index + offset, cells
    total[0], total[1] = rows_read, cells_read
    number = _row_number(source, index)
    if failure is not None:  # `cells` is the row that broke a limit
        if failure[1] >= 0:
            longest = len(cast(str, cells[failure[1]]))
            problems.append(Problem(source.label, number, _column_name(header or [], failure[1]),
                                    f"单元格有 {longest:,} 个字符，超过 {max_chars:,} 个字符的上限"
                                    "（可用 DUBAN_IMPORT_MAX_CELL_CHARS 调整），未读取该文件"))
        elif len(cells) > max_columns:
            problems.append(Problem(source.label, number, None,
                                    f"本行有 {len(cells):,} 列，超过每行最多 {max_columns:,} 列的上限"
                                    "（可用 DUBAN_IMPORT_MAX_COLUMNS 调整），未读取该文件"))
        else:
            problems.append(Problem(source.label, number, None,
                                    f"本次导入的单元格超过 {cells_allowed:,} 个的上限（可用 DUBAN_IMPORT_MAX_CELLS 调整）："
                                    "请删去多余的列或分批导入"))
    elif rows_read > rows_allowed:
        problems.append(Problem(source.label, None, None,
                                f"本次导入的数据行超过 {rows_allowed:,} 行的上限（可用 DUBAN_IMPORT_MAX_ROWS 调整）："
                                "请分批导入"))


def _row_number(source: Source, index: int) -> int:
    """The number a user sees for the `index`-th raw row (0 = header)."""
    return index + source.first_row - 1


def _column_name(header: Sequence[Cell], position: int) -> str:
    written = parse_text(header[position]) if position < len(header) else ""
    return written or f"第{position + 1}列"


@contextmanager
def _raw_rows(source: Source, problems: ProblemSink, limits: ImportLimits) -> Iterator[Iterator[list[Cell]] | None]:
    kind = source.kind
    if kind == "memory":
        yield (list(row) for row in source.rows or ())
    elif kind == "csv":
        with _open_csv(source, problems, limits) as rows:
            yield rows
    elif kind == "xls":
        with _open_xls_rows(source, problems) as rows:
            yield rows
    else:
        with _open_xlsx(source, problems) as rows:
            yield rows


@contextmanager
def _open_csv(source: Source, problems: ProblemSink, limits: ImportLimits) -> Iterator[Iterator[list[Cell]] | None]:
    encoding, bad_line = detect_csv_encoding(source.path)
    if encoding is None:
        problems.append(Problem(source.label, bad_line, None,
                                "文件编码无法识别：请在 Excel/WPS 中另存为“CSV UTF-8”或 GBK 编码的 CSV 文件"))
        yield None
        return
    with source.path.open(encoding=encoding, newline="") as handle:
        yield _csv_rows(source, handle, problems, limits)


def _csv_rows(source: Source, handle: Any, problems: ProblemSink, limits: ImportLimits) -> Iterator[list[Cell]]:
    """csv.reader's rows; its errors (a cell beyond the field limit, a stray quote) become problems."""
    # Excel's "Unicode text" (UTF-16) separates cells with tabs: a header line with tabs and no
    # commas names that delimiter.
    first_line = handle.readline()
    handle.seek(0)
    delimiter = "\t" if "\t" in first_line and "," not in first_line else ","
    reader: Iterator[list[Any]] = csv.reader(handle, delimiter=delimiter)
    records = 0
    # The csv module's own field limit (131,072 by default) raises mid-file. The import's cell
    # limit is checked per cell by `_bounded` (naming the column); the module's is only the backstop.
    if csv.field_size_limit() <= limits.max_cell_chars:
        csv.field_size_limit(limits.max_cell_chars + 1)
    try:
        for row in reader:
            records += 1
            yield row
    except csv.Error as error:
        if "field larger than field limit" in str(error):
            message = (f"单元格超过 {limits.max_cell_chars:,} 个字符的上限（可用 DUBAN_IMPORT_MAX_CELL_CHARS 调整），"
                       "未读取该文件")
        else:
            message = f"CSV 格式有误（如引号不成对），无法继续读取：{error}"
        problems.append(Problem(source.label, _row_number(source, records), None, message))


@contextmanager
def _open_xlsx(source: Source, problems: ProblemSink) -> Iterator[Iterator[list[Cell]] | None]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(source.path, read_only=True, data_only=True)
    except Exception:  # a file changed or damaged since discovery
        problems.append(Problem(source.label, None, None, _UNREADABLE_WORKBOOK))
        yield None
        return
    try:
        worksheet = workbook[source.sheet or workbook.sheetnames[0]]
        # Files written by other tools often carry a wrong <dimension>; read every row there is.
        worksheet.reset_dimensions()
        yield _guarded(source, _xlsx_rows(worksheet), problems)
    finally:
        workbook.close()


def _guarded(source: Source, rows: Iterator[list[Cell]], problems: ProblemSink) -> Iterator[list[Cell]]:
    """A workbook damaged past its start (truncated, bad XML) ends the table with a problem, not a traceback."""
    count = 0
    try:
        for row in rows:
            count += 1
            yield row
    except Exception as error:  # zipfile, XML and openpyxl errors: the file is damaged
        problems.append(Problem(source.label, _row_number(source, count), None,
                                f"{_UNREADABLE_WORKBOOK}：读到此行时出错（{type(error).__name__}）"))


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
    if isinstance(value, dt.timedelta):
        return str(value)
    return value


@contextmanager
def _open_xls_rows(source: Source, problems: ProblemSink) -> Iterator[Iterator[list[Cell]] | None]:
    """An Excel 97–2003 workbook (xlrd). The format caps a sheet at 65,536 × 256 cells."""
    try:
        book = _open_xls(source.path)
        sheet = book.sheet_by_name(source.sheet) if source.sheet else book.sheet_by_index(0)
    except Exception:
        problems.append(Problem(source.label, None, None, _UNREADABLE_WORKBOOK))
        yield None
        return
    try:
        yield _guarded(source, _xls_rows(book, sheet), problems)
    finally:
        book.release_resources()


def _xls_rows(book: Any, sheet: Any) -> Iterator[list[Cell]]:
    for row in range(sheet.nrows):
        yield [_xls_value(book, cell) for cell in sheet.row(row)]


def _xls_value(book: Any, cell: Any) -> Cell:
    import xlrd

    kind, value = cell.ctype, cell.value
    if kind in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
        return None
    if kind == xlrd.XL_CELL_TEXT:
        return str(value)
    if kind == xlrd.XL_CELL_BOOLEAN:
        return str(bool(value))
    if kind == xlrd.XL_CELL_ERROR:
        return xlrd.error_text_from_code.get(value, "#ERROR")
    if kind == xlrd.XL_CELL_DATE:
        try:
            moment = xlrd.xldate.xldate_as_datetime(value, book.datemode)
        except (ValueError, OverflowError, xlrd.xldate.XLDateError):
            return float(value)
        return moment if moment.time() != dt.time() else moment.date()
    number = float(value)
    xf = book.xf_list[cell.xf_index] if cell.xf_index is not None and cell.xf_index < len(book.xf_list) else None
    fmt = book.format_map.get(xf.format_key) if xf is not None else None
    if fmt is not None and "%" in fmt.format_str:
        return PercentCell(number * 100)
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def _with_header(source: Source, raw_rows: Iterator[tuple[int, list[Cell]]], problems: ProblemSink) -> Table | None:
    """The table of `_bounded` rows: the first is the header, the others data rows that hold anything."""
    spec = source.spec
    header_cells = next(raw_rows, (0, None))[1]
    if header_cells is None or all(is_blank(cell) for cell in header_cells):
        problems.append(Problem(source.label, _row_number(source, 0), None,
                                "缺少表头行（第1行应为列名）"))
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
            problems.append(Problem(source.label, _row_number(source, 0), written, f"无法识别的列名：'{written}'（可用列：{accepted}）"))
            usable = False
        elif name in columns:
            problems.append(Problem(source.label, _row_number(source, 0), written,
                                    f"列重复：'{written}' 与 '{columns[name][1]}' 是同一列"))
            usable = False
        else:
            columns[name] = (position, written)
    for column in spec.columns:
        if column.required and column.name not in columns:
            problems.append(Problem(source.label, _row_number(source, 0), column.name,
                                    f"缺少必填列：{column.name}（{column.label}）"))
            usable = False
    if not usable:
        return None
    return Table(source, columns, raw_rows)
