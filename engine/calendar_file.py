"""`duban calendar add`: write one year of the State Council's holiday notice into the override file.

The file stays the admin's: comments and other years are kept as written (the new year is appended
as text); the result is parsed with the same code the engine uses before it replaces the old file,
so a mistyped date never reaches the running service.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML

from duban.engine.calendar import CalendarFileError, WorkingCalendar, parse_overrides

__all__ = ["AddedYear", "CalendarAddError", "add_year"]

_ENTRY = re.compile(r"\d{4}-\d{1,2}-\d{1,2}(\s*(\.\.|至)\s*\d{4}-\d{1,2}-\d{1,2})?")


class CalendarAddError(ValueError):
    """The year cannot be added as given; the text is Chinese."""


@dataclass(frozen=True)
class AddedYear:
    year: int
    holidays: int
    workdays: int
    working_days: int


def _block(year: int, holidays: list[str], workdays: list[str]) -> str:
    lines = [f"{year}:", "  holidays:                      # 放假日期（法定节假日及调休放假）"]
    lines += [f"    - {entry}" for entry in holidays]
    if workdays:
        lines.append("  workdays:                      # 调休上班的周六、周日")
        lines += [f"    - {entry}" for entry in workdays]
    return "\n".join(lines) + "\n"


def _without_year(text: str, year: int) -> str:
    yaml = YAML()
    yaml.preserve_quotes = True
    document = yaml.load(text) or {}
    for key in list(document):
        if str(key) == str(year):
            del document[key]
    if not document:
        # Only comments remain: keep the header comment lines as they were.
        return "".join(line for line in text.splitlines(keepends=True) if line.lstrip().startswith("#") or not line.strip())
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    return buffer.getvalue()


def add_year(path: Path, year: int, holidays: list[str], workdays: list[str], *, replace: bool = False) -> AddedYear:
    if not 2000 <= year <= 2100:
        raise CalendarAddError(f"年份 {year} 不在 2000—2100 之间。")
    for entry in [*holidays, *workdays]:
        if not _ENTRY.fullmatch(entry):
            raise CalendarAddError(f"“{entry}”不是日期或日期区间，应写成 2027-01-01 或 2027-02-05..2027-02-11。")
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    try:
        existing = parse_overrides(text, str(path)) if text.strip() else None
    except CalendarFileError as exc:
        raise CalendarAddError(f"现有的节假日调整文件有错误，请先改正：\n{exc}") from None
    if existing is not None and year in existing.years:
        if not replace:
            raise CalendarAddError(f"{path} 中已有 {year} 年的安排；如需替换请加 --replace。")
        text = _without_year(text, year)
    new_text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + _block(year, holidays, workdays)
    try:
        overrides = parse_overrides(new_text, str(path))
    except CalendarFileError as exc:
        messages = "\n".join(problem.message for problem in exc.problems)
        raise CalendarAddError(f"日期有误，文件未修改：\n{messages}") from None
    temporary = path.with_name(path.name + ".part")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary.write_text(new_text, encoding="utf-8")
    os.replace(temporary, path)
    calendar = WorkingCalendar(overrides)
    working_days = sum(len(calendar.working_days_of_month(year, month)) for month in range(1, 13))
    holiday_days = sum(1 for day in overrides.holidays if day.year == year)
    workday_days = sum(1 for day in overrides.workdays if day.year == year or (day.year == year - 1 and day.month == 12))
    return AddedYear(year=year, holidays=holiday_days, workdays=workday_days, working_days=working_days)
