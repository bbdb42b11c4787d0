"""Cell parsers: one spreadsheet cell in, one canonical value out, or a `CellError` in Chinese.

Cells come from csv (always `str`) or openpyxl (`str`, `int`, `float`, `datetime`, `None`, or
`PercentCell` for a number shown with a percent format). Every parser is pure.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping

Cell = str | int | float | dt.date | dt.datetime | None

__all__ = [
    "Cell",
    "CellError",
    "PercentCell",
    "is_blank",
    "parse_code",
    "parse_date",
    "parse_email_list",
    "parse_enum",
    "parse_month",
    "parse_number",
    "parse_period",
    "parse_target_scope",
    "parse_text",
    "parse_unit_codes",
    "parse_year",
]


class CellError(ValueError):
    """A cell the user must correct; the message is Chinese and names the offending text."""


class PercentCell(float):
    """A number Excel displays as a percentage, already scaled: a cell 0.665 shown as 66.5% is 66.5."""


def is_blank(cell: Cell) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip())


def parse_text(cell: Cell) -> str:
    if cell is None:
        return ""
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell).strip()


_CODE = re.compile(r"[^\s;；,，、]{1,64}")


def parse_code(cell: Cell) -> str:
    """A code (unit, indicator, project, task): no spaces or list separators, at most 64 characters."""
    text = parse_text(cell)
    if not text:
        raise CellError("代码不能为空")
    if not _CODE.fullmatch(text):
        raise CellError(f"代码格式不正确（不能含空格、分隔符，最长64个字符）：'{text}'")
    return text


_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_GROUPED_NUMBER = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?")


def parse_number(cell: Cell) -> tuple[float, bool]:
    """A finite number and whether it was written as a percentage ("66.5%" or a percent-formatted cell).

    Thousands separators are accepted only in their proper places ("1,234.5"), so a
    list like "1,2" is not silently read as 12.
    """
    if isinstance(cell, PercentCell):
        return round(float(cell), 10), True
    if isinstance(cell, bool):
        raise CellError(f"不是数值：'{cell}'")
    if isinstance(cell, int | float):
        value = float(cell)
        if not math.isfinite(value):
            raise CellError(f"不是有效数值：'{cell}'")
        return value, False
    text = parse_text(cell).replace(" ", "").replace("\u00a0", "")
    if not text:
        raise CellError("数值不能为空")
    percent = text.endswith(("%", "％"))
    digits = text[:-1] if percent else text
    if _PLAIN_NUMBER.fullmatch(digits):
        value = float(digits)
    elif _GROUPED_NUMBER.fullmatch(digits):
        value = float(digits.replace(",", ""))
    else:
        raise CellError(f"不是数值：'{text}'")
    return value, percent


_MONTH_PATTERNS = (
    re.compile(r"(?P<y>\d{4})[-/.](?P<m>\d{1,2})"),
    re.compile(r"(?P<y>\d{4})年(?P<m>\d{1,2})月(?:份)?"),
    # A date typed or exported from a date cell ("2023/6/1") names its month.
    re.compile(r"(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.]\d{1,2}(?:\d{2}:\d{2}(?::\d{2})?)?"),
    re.compile(r"(?P<y>\d{4})年(?P<m>\d{1,2})月\d{1,2}日"),
)
_QUARTER_PATTERNS = (
    re.compile(r"(?P<y>\d{4})-?[Qq](?P<q>[1-4])"),
    re.compile(r"(?P<y>\d{4})年第?(?P<q>[1-4一二三四])季度?"),
)
_YEAR_PATTERN = re.compile(r"(?P<y>\d{4})(?:年|年度)?")
_CHINESE_QUARTERS = {"一": "1", "二": "2", "三": "3", "四": "4"}
_FIRST_YEAR, _LAST_YEAR = 2000, 2100


def _check_year(year: int, original: object) -> int:
    if not _FIRST_YEAR <= year <= _LAST_YEAR:
        raise CellError(f"年份超出范围（{_FIRST_YEAR}–{_LAST_YEAR}）：'{original}'")
    return year


def _month_period(year: int, month: int, original: object) -> str:
    if not 1 <= month <= 12:
        raise CellError(f"月份不存在：'{original}'")
    return f"{_check_year(year, original):04d}-{month:02d}"


def parse_period(cell: Cell, *, monthly_only: bool = False) -> str:
    """'YYYY-MM', 'YYYY-Qn' or 'YYYY' from the spellings officials use; date cells name their month."""
    if isinstance(cell, dt.date):
        return _month_period(cell.year, cell.month, cell)
    text = parse_text(cell).replace(" ", "")
    if not text:
        raise CellError("期间不能为空")
    for pattern in _MONTH_PATTERNS:
        if match := pattern.fullmatch(text):
            return _month_period(int(match["y"]), int(match["m"]), text)
    if not monthly_only:
        for pattern in _QUARTER_PATTERNS:
            if match := pattern.fullmatch(text):
                quarter = _CHINESE_QUARTERS.get(match["q"], match["q"])
                return f"{_check_year(int(match['y']), text):04d}-Q{quarter}"
        if match := _YEAR_PATTERN.fullmatch(text):
            return f"{_check_year(int(match['y']), text):04d}"
        raise CellError(f"期间格式不正确：'{text}'（应为 2023-06、2023-Q2 或 2023）")
    raise CellError(f"月份格式不正确：'{text}'（应为 2023-06）")


def parse_month(cell: Cell) -> str:
    return parse_period(cell, monthly_only=True)


def parse_year(cell: Cell) -> int:
    if isinstance(cell, int | float) and not isinstance(cell, bool) and float(cell).is_integer():
        return _check_year(int(cell), cell)
    text = parse_text(cell).replace(" ", "")
    if match := _YEAR_PATTERN.fullmatch(text):
        return _check_year(int(match["y"]), text)
    raise CellError(f"年度格式不正确：'{text}'（应为 2023）")


FINAL_SCOPE_WORDS = ("final", "期末")


def parse_target_scope(cell: Cell, final_scope: str) -> str:
    """A year ('2023') or the programme-end target (written `final` or `期末`)."""
    text = parse_text(cell).replace(" ", "")
    if text.lower() in FINAL_SCOPE_WORDS:
        return final_scope
    try:
        return str(parse_year(cell))
    except CellError:
        raise CellError(f"年度格式不正确：'{text}'（应为 2023，或 final/期末 表示方案期末目标）") from None


_DATE_PATTERNS = (
    re.compile(r"(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})"),
    re.compile(r"(?P<y>\d{4})年(?P<m>\d{1,2})月(?P<d>\d{1,2})日"),
)


def parse_date(cell: Cell) -> dt.date:
    if isinstance(cell, dt.datetime):
        return cell.date()
    if isinstance(cell, dt.date):
        return cell
    text = parse_text(cell).replace(" ", "")
    for pattern in _DATE_PATTERNS:
        if match := pattern.fullmatch(text):
            try:
                return dt.date(_check_year(int(match["y"]), text), int(match["m"]), int(match["d"]))
            except ValueError:
                raise CellError(f"日期不存在：'{text}'") from None
    raise CellError(f"日期格式不正确：'{text}'（应为 2023-06-30）")


def parse_enum(cell: Cell, accepted: Mapping[str, str], what: str) -> str:
    """The canonical value for an English or Chinese spelling; `accepted` maps lower-cased spellings."""
    text = parse_text(cell).replace(" ", "")
    try:
        return accepted[text.lower()]
    except KeyError:
        choices = "、".join(dict.fromkeys(accepted.values()))
        raise CellError(f"{what}取值不正确：'{text}'（应为 {choices}）") from None


# Strict enough to catch typos and header injection, loose enough for real government addresses.
# `fullmatch` matters: `$` would accept a trailing newline.
_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)
_LIST_SEPARATORS = re.compile(r"[;；,，、]")


def parse_email_list(cell: Cell) -> list[str]:
    """Addresses separated by `;`, `；` or `,`; empty means the unit has no address yet."""
    text = parse_text(cell)
    addresses: list[str] = []
    for part in _LIST_SEPARATORS.split(text):
        address = part.strip(" \t\u00a0\u3000")
        if not address:
            continue
        if len(address) > 254 or not _EMAIL.fullmatch(address):
            raise CellError(f"邮箱地址格式不正确：{address!r}")
        if address.lower() not in (known.lower() for known in addresses):
            addresses.append(address)
    return addresses


def parse_unit_codes(cell: Cell) -> list[str]:
    """Unit codes separated by `;` (also `；`, `,`, `，`, `、`), lead unit first."""
    codes: list[str] = []
    for part in _LIST_SEPARATORS.split(parse_text(cell)):
        code = part.strip()
        if not code:
            continue
        if code in codes:
            raise CellError(f"责任单位重复：'{code}'")
        codes.append(parse_code(code))
    return codes
