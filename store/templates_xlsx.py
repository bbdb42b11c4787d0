"""`duban template DIR`: one blank workbook per list, ready for officials to fill in and send back.

One workbook per list (not one workbook for everything) because lists are filled by different
people: the statistics office fills 月度数据, the development office fills 项目. Each workbook
has the data sheet, named with the list's Chinese name, and a 说明 sheet explaining each column.
"""

from __future__ import annotations

from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.worksheet.datavalidation import DataValidation

from duban.store.importing.lists import INSTRUCTIONS_SHEET, LISTS, ListSpec
from duban.store.xlsx_text import set_value

__all__ = ["write_templates"]

# Drop-down choices for columns with a fixed set of values (the Chinese spellings the importer accepts).
_CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("units", "kind"): ("部门", "街镇", "区县", "专班"),
    ("indicators", "kind"): ("水平值", "增速", "累计值"),
    ("indicators", "direction"): ("不低于", "不高于"),
    ("projects", "category"): ("战略支撑型", "产业赋能型", "生活美好型"),
    ("projects", "level"): ("省级", "市级"),
    ("tasks", "status"): ("未完成", "已完成"),
}
_TEXT_COLUMNS = {"code", "indicator", "unit", "units", "project", "period", "year", "email"}
_HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")


def write_templates(directory: Path) -> list[Path]:
    """Write `<list>.xlsx` for every list into `directory` (created if needed); returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in LISTS:
        path = directory / f"{spec.name}.xlsx"
        _workbook_for(spec).save(path)
        written.append(path)
    return written


def _workbook_for(spec: ListSpec) -> Workbook:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None  # a new Workbook always has one sheet
    sheet.title = spec.label
    for position, column in enumerate(spec.columns, start=1):
        cell = set_value(sheet.cell(row=1, column=position), column.label)
        cell.font = Font(bold=True)
        cell.fill = _HEADER_FILL
        letter = cell.column_letter
        sheet.column_dimensions[letter].width = max(14, len(column.label) * 3)
        if column.name in _TEXT_COLUMNS:
            # Keep "2023-06" and codes like "001" as typed instead of letting Excel turn them into dates/numbers.
            for row in range(2, 1001):
                sheet.cell(row=row, column=position).number_format = "@"
        choices = _CHOICES.get((spec.name, column.name))
        if choices:
            validation = DataValidation(type="list", formula1='"' + ",".join(choices) + '"', allow_blank=True)
            validation.error = "请从下拉列表中选择"
            sheet.add_data_validation(validation)
            validation.add(f"{letter}2:{letter}1000")
    sheet.freeze_panes = "A2"

    notes = workbook.create_sheet(INSTRUCTIONS_SHEET)
    notes.append([f"{spec.label}（{spec.name}）：{spec.description}"])
    notes.append(["在“" + spec.label + "”工作表第1行之下逐行填写；第1行列名请勿修改。本说明工作表导入时自动忽略。"])
    notes.append([])
    notes.append(["列名", "英文列名", "是否必填列", "填写说明"])
    for cell in notes[4]:
        cell.font = Font(bold=True)
        cell.fill = _HEADER_FILL
    for column in spec.columns:
        notes.append([column.label, column.name, "必填" if column.required else "可选", column.hint])
    for letter, width in zip("ABCD", (16, 20, 12, 80), strict=True):
        notes.column_dimensions[letter].width = width
    for row in notes.iter_rows():
        for cell in row:
            set_value(cell, cell.value)  # text stays text (a hint starting with "=" or "-" is no formula)
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    return workbook
