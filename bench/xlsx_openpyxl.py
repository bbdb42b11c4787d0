"""The report workbook writer as it was before XlsxWriter (openpyxl write-only mode), kept only so
`bench/report_bench.py` can time the two writers side by side on the same report in one run and
check that they write the same workbook. Not used by duban itself.
"""

from __future__ import annotations

import datetime as dt
import weakref
from collections.abc import Callable, Iterable, Sequence
from copy import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from duban.notifiers.reports.model import LEVEL_NAMES, IndicatorRow, LedgerRow, ListItem, Report
from duban.store.periods import SHANGHAI

# Excel's own 差/适中/好 cell styles: familiar to the office, legible in greyscale print.
FILLS = {
    "red": PatternFill("solid", start_color="FFFFC7CE", end_color="FFFFC7CE"),
    "yellow": PatternFill("solid", start_color="FFFFEB9C", end_color="FFFFEB9C"),
    "green": PatternFill("solid", start_color="FFC6EFCE", end_color="FFC6EFCE"),
}
LIGHT_FONTS = {
    "red": Font(name="宋体", size=10, bold=True, color="FF9C0006"),
    "yellow": Font(name="宋体", size=10, bold=True, color="FF9C5700"),
    "green": Font(name="宋体", size=10, bold=True, color="FF006100"),
}
HEADER_FILL = PatternFill("solid", start_color="FFD9D9D9", end_color="FFD9D9D9")
GROUP_FILL = PatternFill("solid", start_color="FFF2F2F2", end_color="FFF2F2F2")
_SIDE = Side(style="thin", color="FF808080")
BORDER = Border(left=_SIDE, right=_SIDE, top=_SIDE, bottom=_SIDE)
BODY_FONT = Font(name="宋体", size=10)
BOLD_FONT = Font(name="宋体", size=10, bold=True)
TITLE_FONT = Font(name="黑体", size=16, bold=True)
SUBTITLE_FONT = Font(name="宋体", size=10, color="FF404040")
WRAP = Alignment(wrap_text=True, vertical="center")
CENTRE = Alignment(horizontal="center", vertical="center", wrap_text=True)
RIGHT = Alignment(horizontal="right", vertical="center")
FORMATS = {"num": "#,##0.00", "pct": '0.00"%"', "int": "0", "signed": '+0.00;-0.00;0.00', "date": 'yyyy"年"m"月"d"日"'}
HEADER_ROW = 3


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


# Assigning fonts, fills and borders to a cell makes openpyxl hash and look up each style object:
# at province size (300,000 cells) that was 15 s. A cell's styles are one small array of indices,
# so each combination is styled once and its array copied onto the cells that share it.
_STYLE_CACHES: weakref.WeakKeyDictionary[Workbook, dict[tuple[str, Any, bool, str | None], Any]] = \
    weakref.WeakKeyDictionary()


def _cell(ws: WriteOnlyWorksheet, value: Any, kind: str, *, bold: bool = False,
          fill: PatternFill | None = None) -> WriteOnlyCell:
    light = value if kind == "light" and value in FILLS else None
    key = (kind, light, bold, fill.start_color.rgb if fill is not None else None)
    shown = LEVEL_NAMES.get(value or "", "") if kind == "light" else value
    cache = _STYLE_CACHES.setdefault(ws.parent, {})  # style indices belong to one workbook
    style = cache.get(key)
    if style is not None:
        cell = WriteOnlyCell(ws, value=shown)
        cell._style = copy(style)
        return cell
    cell = _styled_cell(ws, value, kind, bold=bold, fill=fill)
    cache[key] = copy(cell._style)
    return cell


def _styled_cell(ws: WriteOnlyWorksheet, value: Any, kind: str, *, bold: bool = False,
                 fill: PatternFill | None = None) -> WriteOnlyCell:
    if kind == "light":
        cell = WriteOnlyCell(ws, value=LEVEL_NAMES.get(value or "", ""))
        if value in FILLS:
            cell.fill = FILLS[value]
            cell.font = LIGHT_FONTS[value]
        else:
            cell.font = BODY_FONT
        cell.alignment = CENTRE
        cell.border = BORDER
        return cell
    cell = WriteOnlyCell(ws, value=value)
    cell.font = BOLD_FONT if bold else BODY_FONT
    cell.border = BORDER
    if kind in FORMATS:
        cell.number_format = FORMATS[kind]
        cell.alignment = CENTRE if kind in ("int", "date") else RIGHT
    else:
        cell.alignment = CENTRE if kind == "centre" else WRAP
    if fill is not None:
        cell.fill = fill
    return cell


def _sheet(wb: Workbook, title: str, heading: str, subtitle: str, columns: Sequence[Column],
           landscape: bool = True) -> WriteOnlyWorksheet:
    ws: WriteOnlyWorksheet = wb.create_sheet(title)
    for i, column in enumerate(columns, start=1):
        ws.column_dimensions[get_column_letter(i)].width = column.width
    ws.freeze_panes = f"A{HEADER_ROW + 1}"
    ws.print_title_rows = f"{HEADER_ROW}:{HEADER_ROW}"
    ws.page_setup.paperSize = "9"  # A4
    ws.page_setup.orientation = "landscape" if landscape else "portrait"
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    last = get_column_letter(len(columns))
    ws.merged_cells.add(f"A1:{last}1")
    ws.merged_cells.add(f"A2:{last}2")
    title_cell = WriteOnlyCell(ws, value=heading)
    title_cell.font = TITLE_FONT
    title_cell.alignment = Alignment(horizontal="center", vertical="center")
    ws.row_dimensions[1].height = 30
    ws.append([title_cell])
    sub_cell = WriteOnlyCell(ws, value=subtitle)
    sub_cell.font = SUBTITLE_FONT
    sub_cell.alignment = Alignment(horizontal="center", vertical="center")
    ws.append([sub_cell])
    headers = []
    for column in columns:
        cell = WriteOnlyCell(ws, value=column.header)
        cell.font = BOLD_FONT
        cell.fill = HEADER_FILL
        cell.border = BORDER
        cell.alignment = CENTRE
        headers.append(cell)
    ws.row_dimensions[HEADER_ROW].height = 30
    ws.append(headers)
    return ws


def _rows(ws: WriteOnlyWorksheet, columns: Sequence[Column], items: Iterable[Any]) -> int:
    count = 0
    for item in items:
        ws.append([_cell(ws, column.value(item), column.kind) for column in columns])
        count += 1
    return count


def _empty(ws: WriteOnlyWorksheet, columns: Sequence[Column], text: str) -> None:
    ws.append([_cell(ws, text, "text"), *(_cell(ws, None, "text") for _ in columns[1:])])


def write_xlsx(report: Report, path: str | Path) -> Path:
    target = Path(path)
    wb = Workbook(write_only=True)
    subtitle = (f"{report.programme_name}　截至{_cn(report.cutoff)}　数据期{report.progress_label}"
                f"　序时进度{_fmt(report.time_progress)}%")
    _cover(wb, report)
    _indicators(wb, report, subtitle)
    _projects(wb, report, subtitle)
    _tasks(wb, report, subtitle)
    _ranking(wb, report, subtitle)
    _lists(wb, report, subtitle)
    _ledger(wb, report)
    target.parent.mkdir(parents=True, exist_ok=True)
    wb.save(target)
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


def _cover(wb: Workbook, report: Report) -> None:
    ws: WriteOnlyWorksheet = wb.create_sheet("说明")
    ws.column_dimensions["A"].width = 18
    ws.column_dimensions["B"].width = 90
    title = WriteOnlyCell(ws, value=report.title)
    title.font = TITLE_FONT
    ws.append([title])
    ws.append([])
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
        ("督导销号", (f"本期新增{len(report.opened)}项，销号{len(report.closed)}项，结转{len(report.still_open)}项"
                      if report.rounds_recorded else "系统尚未记录督办轮次，督导服务销号表暂无事项"), None),
        ("", "", None),
        ("亮灯说明", "绿灯：不慢于序时进度或达到标准", "green"),
        ("", "黄灯：慢于序时进度，在规则允许范围内", "yellow"),
        ("", "红灯：明显滞后于序时进度或未达底线标准", "red"),
        ("", "", None),
        ("工作表", "主要指标进度表、重大项目实施表、重点任务攻坚表、争先创优晾晒表、表扬督促、督导服务销号表", None),
        ("口径", "与同期督办通知为同一次评估结果；完成率=累计完成值/年度目标；差距=完成率-序时进度（百分点），"
                 "标准类指标为完成值-标准值。", None),
    ]
    lines += [("审核说明" if i == 0 else "", f"{n.indicator}{'（' + n.unit_name + '）' if n.unit_name else ''}"
               f"{n.period_label}{'为' + _fmt(n.value) if n.value is not None else ''}：{n.message}。说明：{n.note}", None)
              for i, n in enumerate(report.import_notes)]
    lines += [("提示", warning, None) for warning in report.warnings]
    for label, value, light in lines:
        key = WriteOnlyCell(ws, value=label)
        key.font = BOLD_FONT
        cell = WriteOnlyCell(ws, value=value)
        cell.font = LIGHT_FONTS[light] if light else BODY_FONT
        cell.alignment = Alignment(wrap_text=True, vertical="center")
        if light:
            cell.fill = FILLS[light]
        ws.append([key, cell])


def _indicators(wb: Workbook, report: Report, subtitle: str) -> None:
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
    ws = _sheet(wb, "主要指标进度表", f"{report.period_label}主要指标进度表", subtitle, columns)
    rows: Sequence[IndicatorRow] = report.indicators
    if not _rows(ws, columns, rows):
        _empty(ws, columns, "本期无纳入监测的指标")


def _projects(wb: Workbook, report: Report, subtitle: str) -> None:
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
    ws = _sheet(wb, "重大项目实施表", f"{report.period_label}重大项目实施表", subtitle, columns)
    for category in report.categories:
        values: list[Any] = ["", f"{category.category}项目（{category.projects}个）小计", category.category, "",
                             category.total_investment, category.planned, category.done, category.expected,
                             category.completion, None, None, ""]
        ws.append([_cell(ws, value, column.kind if column.kind != "light" else "text", bold=True, fill=GROUP_FILL)
                   for value, column in zip(values, columns, strict=True)])
        _rows(ws, columns, [r for r in report.projects if r.category == category.category])
    if report.categories:
        planned = sum(c.planned for c in report.categories)
        done = sum(c.done for c in report.categories)
        totals: list[Any] = ["", f"合计（{len(report.projects)}个）", "", "",
                             sum(c.total_investment for c in report.categories), planned, done,
                             sum(c.expected for c in report.categories),
                             100.0 * done / planned if planned else None, report.time_progress, None, ""]
        ws.append([_cell(ws, value, column.kind if column.kind != "light" else "text", bold=True, fill=HEADER_FILL)
                   for value, column in zip(totals, columns, strict=True)])
    else:
        _empty(ws, columns, "本期无重大项目")


def _tasks(wb: Workbook, report: Report, subtitle: str) -> None:
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
    heading = f"{report.period_label}重点任务攻坚表"
    sub = (f"{subtitle}　共{summary.total}项，已完成{summary.done}项（按时{summary.done_on_time}项），"
           f"推进中{summary.open}项，逾期{summary.overdue}项")
    ws = _sheet(wb, "重点任务攻坚表", heading, sub, columns)
    if not _rows(ws, columns, report.tasks):
        _empty(ws, columns, "本期无重点任务")


def _ranking(wb: Workbook, report: Report, subtitle: str) -> None:
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
    ws = _sheet(wb, "争先创优晾晒表", f"{report.period_label}争先创优晾晒表", subtitle, columns)
    if not _rows(ws, columns, report.ranking):
        _empty(ws, columns, "本期无可排名的单位")


def _lists(wb: Workbook, report: Report, subtitle: str) -> None:
    columns = [
        Column("类别", 10, "centre", lambda pair: pair[0]),
        Column("序号", 6, "int", lambda pair: pair[1].index),
        Column("亮灯", 7, "light", lambda pair: pair[1].level),
        Column("事项", 44, "text", lambda pair: pair[1].title),
        Column("责任单位", 28, "text", lambda pair: pair[1].units),
        Column("完成情况", 44, "text", lambda pair: pair[1].figures),
        Column("督办要求", 44, "text", lambda pair: pair[1].action),
    ]
    ws = _sheet(wb, "表扬督促", f"{report.period_label}通报表扬和{report.urging_name}事项", subtitle, columns)
    items: list[tuple[str, ListItem]] = [("通报表扬", i) for i in report.praise] + [(report.urging_name, i) for i in report.urging]
    if not _rows(ws, columns, items):
        _empty(ws, columns, f"本期无通报表扬和{report.urging_name}事项")


def _ledger(wb: Workbook, report: Report) -> None:
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
    ws = _sheet(wb, "督导服务销号表", f"{report.period_label}督导服务销号表",
                f"{report.programme_name}　统计期间{since}至{until}", columns)
    if not report.rounds_recorded:
        _empty(ws, columns, "系统尚未记录督办轮次（定时督办服务未运行，也未手动发送督办通知），督导服务销号表暂无事项")
        return
    items: list[tuple[str, LedgerRow]] = ([("本期新增", r) for r in report.opened] + [("本期销号", r) for r in report.closed]
                                          + [("上期结转督办中", r) for r in report.still_open])
    if not _rows(ws, columns, items):
        _empty(ws, columns, "本期无督办事项")


__all__ = ["FILLS", "write_xlsx"]
