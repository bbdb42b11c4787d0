"""Cell parsers: one spreadsheet cell in, one canonical value out, or a `CellError` in Chinese.

Cells come from csv (always `str`) or openpyxl (`str`, `int`, `float`, `datetime`, `None`, or
`PercentCell` for a number shown with a percent format). Every parser is pure.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
from collections.abc import Mapping

Cell = str | int | float | dt.date | dt.datetime | None

__all__ = [
    "MAX_ABS_VALUE",
    "Cell",
    "CellError",
    "PercentCell",
    "as_date",
    "is_blank",
    "mojibake_hint",
    "parse_code",
    "parse_date",
    "parse_email_list",
    "parse_enum",
    "parse_month",
    "parse_name",
    "parse_number",
    "parse_period",
    "parse_target_scope",
    "parse_text",
    "parse_text_block",
    "parse_unit_codes",
    "parse_year",
    "plain_number",
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


CODE_MAX_CHARS = 64
_CODE = re.compile(rf"[A-Za-z0-9_-]{{1,{CODE_MAX_CHARS}}}")


def parse_code(cell: Cell) -> str:
    """A code (programme, unit, indicator, project, task): ASCII letters, digits, `_` and `-`, at most 64.

    Nothing else: a Cyrillic "ј", a zero-width space or a right-to-left override would make two
    codes that look the same differ, or one that reads differently from what it is.
    """
    text = parse_text(cell)
    if not text:
        raise CellError("代码不能为空")
    if not _CODE.fullmatch(text):
        shown = _visible(text)
        if len(text) > CODE_MAX_CHARS:
            raise CellError(f"代码过长（最多{CODE_MAX_CHARS}个字符）：'{shown[:40]}…'")
        raise CellError(f"代码只能由英文字母、数字、下划线 _ 和连字符 - 组成：'{shown}'")
    return text


# Characters that print as nothing or reorder what follows: zero-width spaces and joiners, the
# bidirectional embeddings, overrides and isolates, word joiners, the BOM, soft hyphen, and the
# interlinear annotation and tag characters. `Cf` covers them; listed ones are named in messages.
_INVISIBLE_NAMES = {
    "\u200b": "零宽空格", "\u200c": "零宽不连字", "\u200d": "零宽连字", "\u200e": "从左到右标记",
    "\u200f": "从右到左标记", "\u202a": "方向嵌入符", "\u202b": "方向嵌入符", "\u202c": "方向格式符",
    "\u202d": "方向强制符", "\u202e": "从右到左强制符", "\u2066": "方向隔离符", "\u2067": "方向隔离符",
    "\u2068": "方向隔离符", "\u2069": "方向隔离符", "\u2060": "零宽不换行符", "\ufeff": "字节顺序标记（BOM）",
    "\u00ad": "软连字符",
}
# Chinese typography keeps full-width punctuation (（）：；，！？); NFKC would turn it into ASCII.
_KEPT_FULL_WIDTH = frozenset("（）：；，！？［］｛｝％＋－＝／＜＞～＂＇＃＆＊＠＼＾＿｀｜")


def _visible(text: str) -> str:
    """Text with invisible and control characters shown as <U+XXXX>, for messages."""
    return "".join(f"<U+{ord(ch):04X}>" if _is_hidden(ch) else ch for ch in text)


def _is_hidden(ch: str) -> bool:
    category = unicodedata.category(ch)
    return category in ("Cc", "Cf", "Cs", "Zl", "Zp") or ch in _INVISIBLE_NAMES


def _nfkc(text: str) -> str:
    """NFKC, except the full-width punctuation Chinese text is written with."""
    if not any(ch in _KEPT_FULL_WIDTH for ch in text):
        return unicodedata.normalize("NFKC", text)
    parts: list[str] = []
    run: list[str] = []
    for ch in text:
        if ch in _KEPT_FULL_WIDTH:
            parts.append(unicodedata.normalize("NFKC", "".join(run)))
            parts.append(ch)
            run.clear()
        else:
            run.append(ch)
    parts.append(unicodedata.normalize("NFKC", "".join(run)))
    return "".join(parts)


def _refuse_hidden(text: str, allowed: str = "") -> None:
    for ch in text:
        if ch not in allowed and _is_hidden(ch):
            if (hint := mojibake_hint(text)) is not None and hint != "\ufffd":
                raise CellError(f"文字疑似乱码（原文可能是“{hint[:40]}”）：文件编码可能有误，"
                                "请在 Excel/WPS 中另存为“CSV UTF-8”后重新导入")
            what = _INVISIBLE_NAMES.get(ch, "控制字符" if unicodedata.category(ch) == "Cc" else "不可见字符")
            raise CellError(f"含有{what} U+{ord(ch):04X}，请删除后重新填写：'{_visible(text)[:80]}'")


def parse_name(cell: Cell) -> str:
    """A name or title shown to people (unit, indicator, project, programme, task, measure).

    NFKC-normalised (full-width letters and digits, compatibility ideographs and ideographic
    spaces become their ordinary forms; full-width punctuation stays), inner runs of spaces
    collapsed, and refused when it holds an invisible, direction-changing or control character.
    """
    text = parse_text(cell)
    _refuse_hidden(text)
    return re.sub(r"\s+", " ", _nfkc(text)).strip()


def parse_text_block(cell: Cell) -> str:
    """Longer free text (measures, goals, document numbers): line breaks and tabs allowed, invisible
    and other control characters refused, NFKC as for names."""
    text = parse_text(cell).replace("\r\n", "\n")
    _refuse_hidden(text, allowed="\n\t")
    return _nfkc(text).strip()


_CJK = re.compile(r"[\u4e00-\u9fff]")
# Characters a GBK file read as UTF-8-decoded-as-GBK (or the other way round) is full of.
_MOJIBAKE_MARKS = re.compile(r"[ÃÂÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖ×ØÙÚÛÜÝÞßàáâãäåæçèéêëìíîïðñòóôõö÷øùúûüýþÿ¡¢£¤¥¦§¨©ª«¬®¯°±²³´µ¶·¸¹º»¼½¾¿]")


def mojibake_hint(text: str) -> str | None:
    """If `text` looks like Chinese decoded with the wrong encoding, what it most likely said.

    Tries the usual accidents: GBK or UTF-8 bytes read as Latin-1/Windows-1252, and UTF-8 bytes
    read as GBK. A real Chinese string survives none of these round trips, so false alarms are
    rare; "\ufffd" (a character already lost) is reported as it is.
    """
    if "\ufffd" in text:
        return "\ufffd"
    if not any(ord(ch) > 0x7F for ch in text):
        return None
    if _MOJIBAKE_MARKS.search(text):
        for wrong in ("latin-1", "cp1252"):
            try:
                raw = text.encode(wrong)
            except UnicodeEncodeError:
                continue
            for right in ("utf-8", "gb18030"):
                try:
                    fixed = raw.decode(right)
                except UnicodeDecodeError:
                    continue
                if len(_CJK.findall(fixed)) >= 2 and fixed != text:
                    return fixed
    if _CJK.search(text):
        try:
            fixed = text.encode("gb18030").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return None
        if fixed != text and len(_CJK.findall(fixed)) >= 1:
            return fixed
    return None


_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_GROUPED_NUMBER = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?")
# Accounting format shows a negative in brackets: "(1.5)" is -1.5 (also full-width brackets).
_ACCOUNTING_NEGATIVE = re.compile(r"[(（]([^()（）]+)[)）]")
# No figure duban supervises comes near this; beyond it sums could overflow to infinity.
MAX_ABS_VALUE = 1e15
_MAX_DIGITS = 30


def _finite(value: float, written: object) -> float:
    """Every conversion ends here: infinity, NaN and absurd magnitudes are refused, never stored."""
    if not math.isfinite(value) or abs(value) > MAX_ABS_VALUE:
        shown = str(written)
        shown = shown if len(shown) <= 40 else f"{shown[:20]}…（共{len(shown)}位）"
        raise CellError(f"数值超出可接受范围（绝对值不超过 10 的 15 次方）：'{shown}'")
    return value


def plain_number(text: str) -> float | None:
    """The value of text written as a plain number ("12.5", "-3", ".5") within range, else None.

    `parse_number`'s common case, and what a million-row import calls per figure: None means
    "not that simple", never "wrong" (`parse_number` then decides, and explains).
    """
    if len(text) <= _MAX_DIGITS and _PLAIN_NUMBER.fullmatch(text):
        value = float(text)
        if -MAX_ABS_VALUE <= value <= MAX_ABS_VALUE:
            return value
    return None


def parse_number(cell: Cell) -> tuple[float, bool]:
    """A finite number and whether it was written as a percentage ("66.5%" or a percent-formatted cell).

    Thousands separators are accepted only in their proper places ("1,234.5"), so a
    list like "1,2" is not silently read as 12. Accounting negatives "(1.5)" are -1.5.
    """
    if isinstance(cell, PercentCell):
        return round(_finite(float(cell), cell), 10), True
    if isinstance(cell, bool):
        raise CellError(f"不是数值：'{cell}'")
    if isinstance(cell, int | float):
        try:
            value = float(cell)
        except OverflowError:
            value = math.inf
        return _finite(value, cell), False
    text = parse_text(cell).replace(" ", "").replace("\u00a0", "")
    if (simple := plain_number(text)) is not None:  # the common case: "12.5"
        return simple, False
    if _PLAIN_NUMBER.fullmatch(text) and len(text) <= _MAX_DIGITS:
        return _finite(float(text), text), False
    text = text.replace("\u2212", "-")
    if not text:
        raise CellError("数值不能为空")
    sign = 1.0
    if text[0] in "(（" and (bracketed := _ACCOUNTING_NEGATIVE.fullmatch(text)):
        sign, inner = -1.0, bracketed[1]
        if inner.startswith(("+", "-")):
            raise CellError(f"不是数值：'{text}'")
    else:
        inner = text
    percent = inner.endswith(("%", "％"))
    digits = inner[:-1] if percent else inner
    if _PLAIN_NUMBER.fullmatch(digits):
        plain = digits
    elif _GROUPED_NUMBER.fullmatch(digits):
        plain = digits.replace(",", "")
    else:
        raise CellError(f"不是数值：'{text}'")
    if len(plain.lstrip("+-").split(".")[0].lstrip("0")) > _MAX_DIGITS:
        _finite(math.inf, text)
    return sign * _finite(float(plain), text), percent


# Excel counts days from 1899-12-30; a date typed into a General cell shows (and exports) as that
# serial number (44927 is 2023-01-01). Only serials of the years duban accepts are dates.
_EXCEL_EPOCH = dt.date(1899, 12, 30)
_FIRST_SERIAL, _LAST_SERIAL = 36526, 73415  # 2000-01-01, 2100-12-31
_SERIAL_TEXT = re.compile(r"\d{5}(?:\.\d+)?")
# "2023/12/29 0:00", "2023-12-29 00:00:00": a date-time cell saved to CSV, or typed.
_DATE_TIME_TEXT = re.compile(
    r"(?P<date>\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{4}年\d{1,2}月\d{1,2}日)(?:\s*|T)\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?"
)


def as_date(cell: Cell) -> dt.date | None:
    """The date a cell holds when it is a date-like value rather than text to parse.

    Excel date and date-time cells, Excel serial numbers (a date in a General cell: 44927),
    and date-time text ("2023/12/29 0:00"). None for anything else.
    """
    if isinstance(cell, dt.datetime):
        return cell.date()
    if isinstance(cell, dt.date):
        return cell
    if isinstance(cell, int | float) and not isinstance(cell, bool | PercentCell):
        if math.isfinite(cell) and _FIRST_SERIAL <= cell < _LAST_SERIAL + 1:
            return _EXCEL_EPOCH + dt.timedelta(days=int(cell))
        return None
    if isinstance(cell, str):
        text = cell.strip()
        if _SERIAL_TEXT.fullmatch(text):
            return as_date(float(text))
        if match := _DATE_TIME_TEXT.fullmatch(text):
            return parse_date(match["date"])
    return None


_MONTH_PATTERNS = (
    re.compile(r"(?P<y>\d{4})[-/.](?P<m>\d{1,2})"),
    re.compile(r"(?P<y>\d{4})年(?P<m>\d{1,2})月(?:份)?"),
    # A date typed or exported from a date cell ("2023/6/1") names its month.
    re.compile(r"(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.]\d{1,2}"),
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
    if (date := as_date(cell)) is not None:
        return _month_period(date.year, date.month, parse_text(cell))
    written = parse_text(cell)
    text = written.replace(" ", "")
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
        raise CellError(f"期间格式不正确：'{written}'（应为 2023-06、2023-Q2 或 2023）")
    raise CellError(f"月份格式不正确：'{written}'（应为 2023-06）")


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
    """A date cell, an Excel serial (44927), or text: 2023-06-30, 2023/6/30, 2023年6月30日, 2023/6/30 0:00."""
    if not isinstance(cell, str) and (date := as_date(cell)) is not None:
        return date
    written = parse_text(cell)
    text = written.replace(" ", "")
    for pattern in _DATE_PATTERNS:
        if match := pattern.fullmatch(text):
            try:
                return dt.date(_check_year(int(match["y"]), written), int(match["m"]), int(match["d"]))
            except ValueError:
                raise CellError(f"日期不存在：'{written}'") from None
    if (date := as_date(written)) is not None:
        return date
    if isinstance(cell, int | float) and not isinstance(cell, bool):
        raise CellError(f"日期格式不正确：'{written}'（应为 2023-06-30；Excel 日期序号只接受 2000—2100 年）")
    raise CellError(f"日期格式不正确：'{written}'（应为 2023-06-30）")


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
