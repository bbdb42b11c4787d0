"""`write_xlsx(report, path)`: the five lists as the office keeps them in Excel, one sheet each.

Written with XlsxWriter in constant-memory mode (rows streamed to disk as they are written) so a
province-size report stays quick: its C-free but lean XML writer and one format object per style
combination write 300,000 cells in about a third of the time openpyxl's write-only mode took (see
docs/reports.md, Speed; `bench/xlsx_openpyxl.py` keeps that writer for the comparison). Each list
sheet: a title row, a 截至 row, the header (frozen, repeated on every printed page), the 亮灯 cell
filled red/yellow/green with its name written in it. Text is always written as text
(`duban.store.xlsx_text`): a name starting with "=" is never a formula.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.utility import _preserve_whitespace, _utf16_len, _utf16_truncate, xl_col_to_name
from xlsxwriter.worksheet import Worksheet
from xlsxwriter.xmlwriter import XMLwriter

from duban.notifiers.reports.model import LEVEL_NAMES, IndicatorRow, LedgerRow, ListItem, Report
from duban.store.periods import SHANGHAI
from duban.store.xlsx_text import XLSXWRITER_OPTIONS, write_text

# Excel's own 差/适中/好 cell styles: familiar to the office, legible in greyscale print.
FILLS = {"red": "#FFC7CE", "yellow": "#FFEB9C", "green": "#C6EFCE"}
LIGHT_FONT_COLOURS = {"red": "#9C0006", "yellow": "#9C5700", "green": "#006100"}
HEADER_FILL = "#D9D9D9"
GROUP_FILL = "#F2F2F2"
BORDER_COLOUR = "#808080"
FORMATS = {"num": "#,##0.00", "pct": '0.00"%"', "int": "0", "signed": '+0.00;-0.00;0.00', "date": 'yyyy"年"m"月"d"日"'}
HEADER_ROW = 3  # 1-based, as Excel shows it


@dataclass(frozen=True)
class Column:
    header: str
    width: float
    kind: str  # text | centre | num | pct | int | signed | date | light
    value: Callable[[Any], Any]


def _local_date(value: dt.datetime | dt.date | None) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.astimezone(SHANGHAI).date()
    return value


class _Book:
    """The workbook, its formats (one per style combination, made once) and typed cell writing."""

    def __init__(self, path: Path) -> None:
        self.wb = xlsxwriter.Workbook(str(path), {"constant_memory": True, **XLSXWRITER_OPTIONS})
        self._formats: dict[tuple[Any, ...], Format] = {}

    def fmt(self, *, font: str = "宋体", size: int = 10, bold: bool = False, colour: str | None = None,
            fill: str | None = None, border: bool = False, align: str | None = None, valign: str | None = None,
            wrap: bool = False, num: str | None = None) -> Format:
        key = (font, size, bold, colour, fill, border, align, valign, wrap, num)
        found = self._formats.get(key)
        if found is not None:
            return found
        props: dict[str, Any] = {"font_name": font, "font_size": size}
        if bold:
            props["bold"] = True
        if colour:
            props["font_color"] = colour
        if fill:
            props.update(pattern=1, bg_color=fill)
        if border:
            props.update(border=1, border_color=BORDER_COLOUR)
        if align:
            props["align"] = align
        if valign:
            props["valign"] = valign
        if wrap:
            props["text_wrap"] = True
        if num:
            props["num_format"] = num
        made = self._formats[key] = self.wb.add_format(props)
        return made

    def cell_format(self, kind: str, value: Any, *, bold: bool = False, fill: str | None = None) -> Format:
        if kind == "light":
            light = value if value in FILLS else None
            return self.fmt(bold=light is not None, colour=LIGHT_FONT_COLOURS.get(light or ""),
                            fill=FILLS.get(light or ""), border=True, align="center", valign="vcenter", wrap=True)
        if kind in FORMATS:
            centred = kind in ("int", "date")
            return self.fmt(bold=bold, fill=fill, border=True, align="center" if centred else "right",
                            valign="vcenter", wrap=centred, num=FORMATS[kind])
        return self.fmt(bold=bold, fill=fill, border=True, align="center" if kind == "centre" else None,
                        valign="vcenter", wrap=True)

    def close(self) -> None:
        self.wb.close()


def _put(ws: Worksheet, row: int, col: int, value: Any, fmt: Format | None) -> None:
    """One cell, by type: text as text (never a formula or a link), numbers, dates, blanks."""
    if value is None or value == "":
        if fmt is not None:
            ws.write_blank(row, col, None, fmt)
    elif isinstance(value, str):
        write_text(ws, row, col, value, fmt)
    elif isinstance(value, bool):
        ws.write_boolean(row, col, value, fmt)
    elif isinstance(value, int | float):
        if math.isfinite(value):
            ws.write_number(row, col, value, fmt)
        elif fmt is not None:
            ws.write_blank(row, col, None, fmt)
    elif isinstance(value, dt.datetime | dt.date):
        ws.write_datetime(row, col, value, fmt)
    else:
        write_text(ws, row, col, str(value), fmt)


class _Sheet:
    """A list sheet being written row by row (constant-memory mode writes each row once, in order)."""

    def __init__(self, book: _Book, ws: Worksheet, columns: Sequence[Column]) -> None:
        self.book = book
        self.ws = ws
        self.columns = columns
        self.row = HEADER_ROW  # the next 0-based row: just below the header

    def append(self, values: Sequence[Any], kinds: Sequence[str], *, bold: bool = False,
               fill: str | None = None) -> None:
        for col, (value, kind) in enumerate(zip(values, kinds, strict=True)):
            shown = LEVEL_NAMES.get(value or "", "") if kind == "light" else value
            _put(self.ws, self.row, col, shown, self.book.cell_format(kind, value, bold=bold, fill=fill))
        self.row += 1


def _sheet(book: _Book, title: str, heading: str, subtitle: str, columns: Sequence[Column],
           landscape: bool = True) -> _Sheet:
    ws = book.wb.add_worksheet(title)
    for i, column in enumerate(columns):
        ws.set_column(i, i, column.width)
    ws.freeze_panes(HEADER_ROW, 0)
    ws.repeat_rows(HEADER_ROW - 1)
    ws.set_paper(9)  # A4
    if landscape:
        ws.set_landscape()
    else:
        ws.set_portrait()
    ws.fit_to_pages(1, 0)
    last = len(columns) - 1
    ws.set_row(0, 30)
    ws.merge_range(0, 0, 0, last, "", book.fmt(font="黑体", size=16, bold=True, align="center", valign="vcenter"))
    write_text(ws, 0, 0, heading, book.fmt(font="黑体", size=16, bold=True, align="center", valign="vcenter"))
    sub = book.fmt(colour="#404040", align="center", valign="vcenter")
    ws.merge_range(1, 0, 1, last, "", sub)
    write_text(ws, 1, 0, subtitle, sub)
    ws.set_row(HEADER_ROW - 1, 30)
    header = book.fmt(bold=True, fill=HEADER_FILL, border=True, align="center", valign="vcenter", wrap=True)
    for i, column in enumerate(columns):
        write_text(ws, HEADER_ROW - 1, i, column.header, header)
    return _Sheet(book, ws, columns)


def _rows(sheet: _Sheet, items: Iterable[Any]) -> int:
    """The list's rows. The hot loop of a province-size report (480,000 cells in the 季度通报).

    Each row's XML goes straight into the worksheet's constant-memory row file, as XlsxWriter's own
    row writer would write it (`<row r="n">`, `<c r="A5" s="3" t="inlineStr">…`): the same
    bytes, without its per-cell bookkeeping, which took three quarters of the workbook's time
    (docs/reports.md, Speed). Text is an inline string: never a formula, never a link. A sheet whose
    rows carry their own row formats or comments goes through XlsxWriter cell by cell instead.
    """
    ws = sheet.ws
    if not _fast_path_ok(ws, sheet.row):
        return _rows_by_cell(sheet, items)
    book = sheet.book
    plain = {c.kind: book.cell_format(c.kind, None) for c in sheet.columns if c.kind != "light"}
    lights = {level: book.cell_format("light", level) for level in (*FILLS, None)}
    light_names = {level: LEVEL_NAMES[level] for level in LEVEL_NAMES}
    columns = [(xl_col_to_name(col), column.value, column.kind == "light", plain.get(column.kind))
               for col, column in enumerate(sheet.columns)]
    first = row = sheet.row
    ws._write_single_row(first)  # flushes the rows XlsxWriter still holds (title, header, subtotals)
    write = ws.fh.write
    convert_date = ws._convert_date_time
    for item in items:
        number = row + 1
        cells = [f'<row r="{number}">']
        add = cells.append
        for letter, get, is_light, fmt in columns:
            value = get(item)
            if is_light:
                shown = light_names.get(value) if value is not None else None
                cell_format = lights[value] if value in FILLS else lights[None]
                xf = cell_format._get_xf_index()
                if shown:
                    add(f'<c r="{letter}{number}" s="{xf}" t="inlineStr"><is><t>{shown}</t></is></c>')
                else:
                    add(f'<c r="{letter}{number}" s="{xf}"/>')
                continue
            assert fmt is not None
            xf = fmt._get_xf_index()
            kind = type(value)
            if value is None or value == "":
                add(f'<c r="{letter}{number}" s="{xf}"/>')
            elif kind is str:
                add(_inline_string(f'<c r="{letter}{number}" s="{xf}"', value))
            elif kind is float or kind is int:
                if math.isfinite(value):
                    add(f'<c r="{letter}{number}" s="{xf}"><v>{value:.16G}</v></c>')
                else:
                    add(f'<c r="{letter}{number}" s="{xf}"/>')
            elif kind is bool:
                add(f'<c r="{letter}{number}" s="{xf}" t="b"><v>{int(value)}</v></c>')
            elif isinstance(value, dt.datetime | dt.date):
                add(f'<c r="{letter}{number}" s="{xf}"><v>{convert_date(value):.16G}</v></c>')
            else:
                add(_inline_string(f'<c r="{letter}{number}" s="{xf}"', str(value)))
        add("</row>")
        write("".join(cells))
        row += 1
    count = row - first
    if count:
        # What XlsxWriter's checks would have recorded: the sheet's extent (<dimension>), and that
        # these rows are written (a later write starts below them).
        ws._check_dimensions(row - 1, len(columns) - 1)
        ws._check_dimensions(first, 0)
        ws.previous_row = row
    sheet.row = row
    return count


# Text XlsxWriter would not write as it stands: control characters (written as _xHHHH_), a literal
# "_x0041_" (its underscore escaped), the two non-characters.
_TEXT_NEEDS_ESCAPES = re.compile(r"[\x00-\x08\x0b-\x1f\ufffe\uffff]|_x[0-9a-fA-F]{4}_")
_TEXT_LIMIT = 32767  # Excel's longest string (UTF-16 units); XlsxWriter truncates to it


def _inline_string(head: str, text: str) -> str:
    """`<c …>` of one inline-string cell, escaped as XlsxWriter's constant-memory writer escapes it."""
    if len(text) > _TEXT_LIMIT // 2 and _utf16_len(text) > _TEXT_LIMIT:
        text = _utf16_truncate(text, _TEXT_LIMIT)
    if _TEXT_NEEDS_ESCAPES.search(text):
        text = XMLwriter._escape_control_characters(text)
    preserve = ' xml:space="preserve"' if _preserve_whitespace(text) else ""
    if "&" in text or "<" in text or ">" in text:
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f'{head} t="inlineStr"><is><t{preserve}>{text}</t></is></c>'


def _fast_path_ok(ws: Worksheet, first: int) -> bool:
    """Rows from `first` on may be written directly: constant-memory mode, and no row formats,
    heights or comments set on them (the header's and title's rows are above)."""
    return bool(ws.constant_memory) and not ws.comments and all(r < first for r in ws.row_info) \
        and ws.previous_row <= first


def _rows_by_cell(sheet: _Sheet, items: Iterable[Any]) -> int:
    """The rows through XlsxWriter's own cell writers (the reference the direct path reproduces)."""
    book, ws = sheet.book, sheet.ws
    plain = {c.kind: book.cell_format(c.kind, None) for c in sheet.columns if c.kind != "light"}
    lights = {level: book.cell_format("light", level) for level in (*FILLS, None)}
    blank_light = lights[None]
    getters = [(col, column.value, column.kind == "light", plain.get(column.kind))
               for col, column in enumerate(sheet.columns)]
    write_string, write_number, write_blank = ws.write_string, ws.write_number, ws.write_blank
    row = sheet.row
    for item in items:
        for col, get, is_light, fmt in getters:
            value = get(item)
            if is_light:
                if value in FILLS:
                    write_string(row, col, LEVEL_NAMES[value], lights[value])
                elif value in LEVEL_NAMES:  # 数据未更新: named, not lit
                    write_string(row, col, LEVEL_NAMES[value], blank_light)
                else:
                    write_blank(row, col, None, blank_light)
            elif value is None or value == "":
                write_blank(row, col, None, fmt)
            elif type(value) is str:
                write_string(row, col, value, fmt)  # text as text: never a formula, never a link
            elif type(value) is float or type(value) is int:
                if math.isfinite(value):
                    write_number(row, col, value, fmt)
                else:
                    write_blank(row, col, None, fmt)
            else:
                _put(ws, row, col, value, fmt)
        row += 1
    count = row - sheet.row
    sheet.row = row
    return count


def _empty(sheet: _Sheet, text: str) -> None:
    sheet.append([text, *([None] * (len(sheet.columns) - 1))], ["text"] * len(sheet.columns))


def write_xlsx(report: Report, path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    book = _Book(target)
    subtitle = (f"{report.programme_name}　截至{_cn(report.cutoff)}　数据期{report.progress_label}"
                f"　序时进度{_fmt(report.time_progress)}%")
    _cover(book, report)
    _indicators(book, report, subtitle)
    _projects(book, report, subtitle)
    _tasks(book, report, subtitle)
    _ranking(book, report, subtitle)
    _lists(book, report, subtitle)
    _ledger(book, report)
    if report.kind == "quarterly":
        _changes(book, report, subtitle)
        _movement(book, report, subtitle)
        _period_tasks(book, report, subtitle, "本季到期任务", "本季度到期任务完成情况")
        _supervision(book, report, subtitle)
    elif report.kind == "annual":
        _assessment(book, report, subtitle)
        _period_tasks(book, report, subtitle, "年内到期任务", "年内到期任务完成情况")
    book.close()
    return target


def _cn(value: dt.datetime | dt.date | None) -> str:
    day = _local_date(value)
    return "—" if day is None else f"{day.year}年{day.month}月{day.day}日"


def _datetime_cn(value: dt.datetime) -> str:
    """2023年7月17日 09:00, as the report's text writes a moment."""
    local = value.astimezone(SHANGHAI)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text or "0"


def _cover(book: _Book, report: Report) -> None:
    ws = book.wb.add_worksheet("说明")
    ws.set_column(0, 0, 18)
    ws.set_column(1, 1, 90)
    write_text(ws, 0, 0, report.title, book.fmt(font="黑体", size=16, bold=True))
    planned = sum(c.planned for c in report.categories)
    done = sum(c.done for c in report.categories)
    count = report.indicator_count
    summary = report.task_summary
    lines: list[tuple[str, Any, str | None]] = [
        ("报告", report.kind_name, None),
        ("工程", report.programme_name, None),
        ("文件依据", f"《{report.document_title or report.programme_name}》（{report.document}）"
                     if report.document else report.document_title or report.programme_name, None),
        ("报告期", report.period_label, None),
        ("评估时点", _datetime_cn(report.cutoff), None),
        ("数据期", report.progress_label, None),
        ("序时进度", f"{_fmt(report.time_progress)}%", None),
        ("主要指标", f"{count.total}项：绿灯{count.green}项，黄灯{count.yellow}项，红灯{count.red}项"
                     + (f"，数据未更新{count.stale}项" if count.stale else ""), None),
        ("重大项目", f"{len(report.projects)}个，年度计划投资{_fmt(planned)}亿元，已完成{_fmt(done)}亿元", None),
        ("重点任务", f"{summary.total}项：已完成{summary.done}项（按时{summary.done_on_time}项），"
                     f"推进中{summary.open}项，逾期{summary.overdue}项", None),
        ("表扬督促", f"通报表扬{len(report.praise)}项，{report.urging_name}{len(report.urging)}项", None),
        ("督办事项", (f"本期新增{len(report.opened)}项，销号{len(report.closed)}项，结转{len(report.still_open)}项"
                      if report.rounds_recorded else f"系统尚未记录督办轮次，{report.list_names['ledger']}暂无事项"), None),
        ("", "", None),
        ("亮灯说明", "绿灯：不慢于序时进度或达到标准", "green"),
        ("", "黄灯：慢于序时进度，在规则允许范围内", "yellow"),
        ("", "红灯：明显滞后于序时进度或未达底线标准", "red"),
        ("", "", None),
        ("工作表", "、".join([*(report.list_names[k] for k in ("indicators", "projects", "tasks", "ranking")), "表扬督促",
                              report.list_names["ledger"]]), None),
        ("口径", "与同期督办通知为同一次评估结果；完成率=累计完成值/年度目标；差距=完成率-序时进度（百分点），"
                 "标准类指标为完成值-标准值。", None),
    ]
    lines += [("审核说明" if i == 0 else "", f"{n.indicator}{'（' + n.unit_name + '）' if n.unit_name else ''}"
               f"{n.period_label}{'为' + _fmt(n.value) if n.value is not None else ''}：{n.message}。说明：{n.note}", None)
              for i, n in enumerate(report.import_notes)]
    lines += [("提示", warning, None) for warning in report.warnings]
    key_format = book.fmt(bold=True)
    for row, (label, value, light) in enumerate(lines, start=2):
        _put(ws, row, 0, label, key_format)
        value_format = book.fmt(bold=light is not None, colour=LIGHT_FONT_COLOURS.get(light or ""),
                                fill=FILLS.get(light or ""), valign="vcenter", wrap=True)
        _put(ws, row, 1, value, value_format)


def _indicators(book: _Book, report: Report, subtitle: str) -> None:
    columns = [
        Column("序号", 6, "centre", lambda r: r.index),
        Column("指标", 34, "text", lambda r: f"　其中：{r.unit_name}" if r.sub else r.name),
        Column("计量单位", 8, "centre", lambda r: r.measure),
        Column("口径", 12, "centre", lambda r: r.basis),
        Column("目标/标准", 11, "num", lambda r: r.target),
        Column("完成值", 11, "num", lambda r: r.value),
        Column("数据期", 13, "centre", lambda r: r.value_label),
        Column("完成率", 10, "pct", lambda r: r.completion),
        Column("序时进度", 10, "pct", lambda r: r.time_progress),
        Column("差距", 9, "signed", lambda r: r.gap),
        Column("亮灯", 7, "light", lambda r: r.level),
        Column("责任单位", 28, "text", lambda r: r.units),
        Column("备注", 24, "text", lambda r: r.note),
    ]
    name = report.list_names["indicators"]
    ws = _sheet(book, name, f"{report.period_label}{name}", subtitle, columns)
    rows: Sequence[IndicatorRow] = report.indicators
    if not _rows(ws, rows):
        _empty(ws, "本期无纳入监测的指标")


def _projects(book: _Book, report: Report, subtitle: str) -> None:
    columns = [
        Column("序号", 6, "centre", lambda r: r.index),
        Column("项目名称", 36, "text", lambda r: r.name),
        Column("类别", 11, "centre", lambda r: r.category),
        Column("级别", 7, "centre", lambda r: r.grade),
        Column("总投资（亿元）", 11, "num", lambda r: r.total_investment),
        Column("年度计划投资（亿元）", 12, "num", lambda r: r.planned),
        Column(f"{report.progress_label}完成（亿元）", 13, "num", lambda r: r.done),
        Column("序时应完成（亿元）", 12, "num", lambda r: r.expected),
        Column("完成率", 10, "pct", lambda r: r.completion),
        Column("序时进度", 10, "pct", lambda r: r.time_progress),
        Column("亮灯", 7, "light", lambda r: r.level),
        Column("责任单位", 30, "text", lambda r: r.units),
    ]
    name = report.list_names["projects"]
    ws = _sheet(book, name, f"{report.period_label}{name}", subtitle, columns)
    for category in report.categories:
        values: list[Any] = ["", f"{category.category}项目（{category.projects}个）小计", category.category, "",
                             category.total_investment, category.planned, category.done, category.expected,
                             category.completion, None, None, ""]
        ws.append(values, [c.kind if c.kind != "light" else "text" for c in columns], bold=True, fill=GROUP_FILL)
        _rows(ws, [r for r in report.projects if r.category == category.category])
    if report.categories:
        planned = sum(c.planned for c in report.categories)
        done = sum(c.done for c in report.categories)
        totals: list[Any] = ["", f"合计（{len(report.projects)}个）", "", "",
                             sum(c.total_investment for c in report.categories), planned, done,
                             sum(c.expected for c in report.categories),
                             100.0 * done / planned if planned else None, report.time_progress, None, ""]
        ws.append(totals, [c.kind if c.kind != "light" else "text" for c in columns], bold=True, fill=HEADER_FILL)
    else:
        _empty(ws, "本期无重大项目")


def _tasks(book: _Book, report: Report, subtitle: str) -> None:
    columns = [
        Column("序号", 6, "centre", lambda r: r.index),
        Column("任务", 24, "text", lambda r: r.title),
        Column("目标及要求", 52, "text", lambda r: r.goal),
        Column("时间节点", 14, "centre", lambda r: r.deadline_text or _cn(r.deadline)),
        Column("截止日期", 11, "date", lambda r: r.deadline),
        Column("责任单位", 28, "text", lambda r: r.units),
        Column("进展", 16, "centre", lambda r: r.status_label),
        Column("亮灯", 7, "light", lambda r: r.level),
    ]
    summary = report.task_summary
    name = report.list_names["tasks"]
    heading = f"{report.period_label}{name}"
    sub = (f"{subtitle}　共{summary.total}项，已完成{summary.done}项（按时{summary.done_on_time}项），"
           f"推进中{summary.open}项，逾期{summary.overdue}项")
    ws = _sheet(book, name, heading, sub, columns)
    if not _rows(ws, report.tasks):
        _empty(ws, "本期无重点任务")


def _ranking(book: _Book, report: Report, subtitle: str) -> None:
    columns = [
        Column("名次", 6, "int", lambda r: r.rank),
        Column("单位", 30, "text", lambda r: r.name),
        Column("监测事项（项）", 10, "int", lambda r: r.items),
        Column("平均完成率", 11, "pct", lambda r: r.completion),
        Column("序时进度", 10, "pct", lambda r: r.time_progress),
        Column("差距（百分点）", 11, "signed", lambda r: r.gap),
        Column("红灯", 7, "int", lambda r: r.red),
        Column("黄灯", 7, "int", lambda r: r.yellow),
        Column("绿灯", 7, "int", lambda r: r.green),
        Column("逾期任务", 9, "int", lambda r: r.tasks_overdue),
        Column("通报表扬", 9, "int", lambda r: r.praised),
        Column("亮灯", 7, "light", lambda r: r.level),
    ]
    name = report.list_names["ranking"]
    ws = _sheet(book, name, f"{report.period_label}{name}", subtitle, columns)
    if not _rows(ws, report.ranking):
        _empty(ws, "本期无可排名的单位")


def _lists(book: _Book, report: Report, subtitle: str) -> None:
    columns = [
        Column("类别", 10, "centre", lambda pair: pair[0]),
        Column("序号", 6, "int", lambda pair: pair[1].index),
        Column("亮灯", 7, "light", lambda pair: pair[1].level),
        Column("事项", 44, "text", lambda pair: pair[1].title),
        Column("责任单位", 28, "text", lambda pair: pair[1].units),
        Column("完成情况", 44, "text", lambda pair: pair[1].figures),
        Column("督办要求", 44, "text", lambda pair: pair[1].action),
    ]
    ws = _sheet(book, "表扬督促", f"{report.period_label}通报表扬和{report.urging_name}事项", subtitle, columns)
    items: list[tuple[str, ListItem]] = [("通报表扬", i) for i in report.praise] + [(report.urging_name, i) for i in report.urging]
    if not _rows(ws, items):
        _empty(ws, f"本期无通报表扬和{report.urging_name}事项")


def _ledger(book: _Book, report: Report) -> None:
    columns = [
        Column("类别", 14, "centre", lambda pair: pair[0]),
        Column("序号", 6, "int", lambda pair: pair[1].index),
        Column("事项", 48, "text", lambda pair: pair[1].title),
        Column("责任单位", 28, "text", lambda pair: pair[1].units),
        Column("亮灯", 7, "light", lambda pair: pair[1].level),
        Column("首次亮灯", 12, "date", lambda pair: _local_date(pair[1].first_seen)),
        Column("状态", 18, "centre", lambda pair: pair[1].status_label),
        Column("销号日期", 12, "date", lambda pair: _local_date(pair[1].closed_at)),
        Column("督办次数", 9, "int", lambda pair: pair[1].notices),
        Column("历时（天）", 9, "int", lambda pair: pair[1].days_open),
    ]
    since, until = _datetime_cn(report.since), _datetime_cn(report.cutoff)
    name = report.list_names["ledger"]
    ws = _sheet(book, name, f"{report.period_label}{name}",
                f"{report.programme_name}　统计期间{since}至{until}", columns)
    if not report.rounds_recorded:
        _empty(ws, f"系统尚未记录督办轮次（定时督办服务未运行，也未手动发送督办通知），{name}暂无事项")
        return
    items: list[tuple[str, LedgerRow]] = ([("本期新增", r) for r in report.opened] + [("本期销号", r) for r in report.closed]
                                          + [("上期结转督办中", r) for r in report.still_open])
    if not _rows(ws, items):
        _empty(ws, "本期无督办事项")


# --- 季度通报 / 年度评估: the period's own analysis, after the five lists -----------------------------


def _changes(book: _Book, report: Report, subtitle: str) -> None:
    columns = [
        Column("序号", 6, "centre", lambda c: c.index),
        Column("指标", 34, "text", lambda c: f"　其中：{c.unit_name}" if c.unit_name else c.name),
        Column("口径", 12, "centre", lambda c: c.basis),
        Column("计量单位", 8, "centre", lambda c: c.measure),
        Column("上季度完成值", 12, "num", lambda c: c.value_before),
        Column("上季度数据期", 13, "centre", lambda c: c.label_before),
        Column("上季度完成率", 11, "pct", lambda c: c.completion_before),
        Column("上季度亮灯", 8, "light", lambda c: c.level_before),
        Column("本季度完成值", 12, "num", lambda c: c.value_now),
        Column("本季度数据期", 13, "centre", lambda c: c.label_now),
        Column("本季度完成率", 11, "pct", lambda c: c.completion_now),
        Column("本季度亮灯", 8, "light", lambda c: c.level_now),
        Column("环比变化", 34, "text", lambda c: c.trend),
    ]
    compared = f"（与{report.compared_label}相比）" if report.compared_label else ""
    ws = _sheet(book, "环比分析", f"{report.period_label}主要指标环比变化{compared}", subtitle, columns)
    if not _rows(ws, report.changes):
        _empty(ws, "本季度无纳入监测的指标")


def _movement(book: _Book, report: Report, subtitle: str) -> None:
    columns = [
        Column("本季名次", 8, "int", lambda r: r.rank),
        Column("上季名次", 8, "int", lambda r: r.previous_rank),
        Column("进退位", 12, "centre", lambda r: r.movement),
        Column("单位", 30, "text", lambda r: r.name),
        Column("平均完成率", 11, "pct", lambda r: r.completion),
        Column("差距（百分点）", 11, "signed", lambda r: r.gap),
        Column("红灯", 7, "int", lambda r: r.red),
        Column("逾期任务", 9, "int", lambda r: r.tasks_overdue),
        Column("亮灯", 7, "light", lambda r: r.level),
    ]
    compared = f"（与{report.compared_label}相比）" if report.compared_label else ""
    ws = _sheet(book, "排名进退位", f"{report.period_label}成员单位排名进退位{compared}", subtitle, columns)
    if not _rows(ws, report.ranking):
        _empty(ws, "本季度无可排名的单位")


def _period_tasks(book: _Book, report: Report, subtitle: str, title: str, heading: str) -> None:
    columns = [
        Column("序号", 6, "centre", lambda r: r.index),
        Column("任务", 24, "text", lambda r: r.title),
        Column("目标及要求", 52, "text", lambda r: r.goal),
        Column("截止日期", 11, "date", lambda r: r.deadline),
        Column("责任单位", 28, "text", lambda r: r.units),
        Column("完成情况", 18, "centre", lambda r: r.status_label),
        Column("亮灯", 7, "light", lambda r: r.level),
    ]
    summary = report.period_task_summary
    sub = (f"{subtitle}　到期{summary.total}项：按时完成{summary.done_on_time}项，"
           f"逾期完成{summary.done - summary.done_on_time}项，逾期未完成{summary.overdue}项")
    ws = _sheet(book, title, f"{report.period_label}{heading}", sub, columns)
    if not _rows(ws, report.period_tasks):
        _empty(ws, "本期无到期的重点任务")


def _supervision(book: _Book, report: Report, subtitle: str) -> None:
    columns = [
        Column("序号", 6, "int", lambda r: r.index),
        Column("单位", 30, "text", lambda r: r.name),
        Column("红灯事项", 9, "int", lambda r: r.red),
        Column("逾期任务", 9, "int", lambda r: r.overdue),
        Column("排名变化", 12, "centre", lambda r: r.movement),
        Column("督导重点", 70, "text", lambda r: r.focus),
    ]
    name = report.list_names["focus"]
    ws = _sheet(book, name, f"{report.period_label}{name}", subtitle, columns)
    if not _rows(ws, report.supervision):
        _empty(ws, "本季度无需专项督导的单位")


def _assessment(book: _Book, report: Report, subtitle: str) -> None:
    columns = [
        Column("序号", 6, "int", lambda r: r.rank),
        Column("单位", 30, "text", lambda r: r.name),
        Column("监测事项", 9, "int", lambda r: r.items),
        Column("达到年度目标", 10, "int", lambda r: r.met),
        Column("平均完成率", 11, "pct", lambda r: r.completion),
        Column("到期任务", 9, "int", lambda r: r.tasks_due),
        Column("按时完成", 9, "int", lambda r: r.tasks_on_time),
        Column("逾期未完成", 10, "int", lambda r: r.tasks_overdue),
        Column("红灯", 7, "int", lambda r: r.red),
        Column("通报表扬", 9, "int", lambda r: r.praised),
        Column("等次", 7, "centre", lambda r: r.grade),
        Column("建议", 28, "text", lambda r: r.remark),
    ]
    name = report.list_names["assessment"]
    ws = _sheet(book, f"年度{name}", f"{report.period_label}成员单位{name}", subtitle, columns)
    if not _rows(ws, report.assessment):
        _empty(ws, "本年度无可评估的单位")


__all__ = ["FILLS", "write_xlsx"]
