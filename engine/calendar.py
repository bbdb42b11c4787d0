"""The Chinese working-day calendar: statutory holidays, 调休 working weekends, and an admin override file.

Data sources, per calendar year, in order of precedence:

1. the override file (``rules/calendar-overrides.yaml``), for every year it lists: that year is fully
   defined by the file (listed holidays off, listed workdays on, every other day by weekday);
2. ``chinese_calendar`` (covers 2004–2026 in 1.11.0; any other year raises ``NotImplementedError``);
3. Monday–Friday, for a year with neither: the year is recorded so the caller warns the admin once
   (:meth:`WorkingCalendar.pop_new_notices`), and nothing raises.

A date listed in the override file always wins, even when its own year is not a key: the State
Council's notice for year Y sometimes rearranges the last days of December of Y-1 (New Year's holiday).

The override file format::

    2027:
      holidays:                      # 法定节假日及调休放假
        - 2027-01-01
        - 2027-02-05..2027-02-11     # ranges, both ends included
      workdays:                      # 调休上班的周六、周日
        - 2027-02-14

Pure: no clock reads; the only I/O is :meth:`WorkingCalendar.load` reading the override file.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import chinese_calendar
from ruamel.yaml import YAML
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError

__all__ = [
    "DEFAULT_OVERRIDES_PATH",
    "CalendarError",
    "CalendarFileError",
    "CalendarNotice",
    "CalendarOverrides",
    "FileProblem",
    "WorkingCalendar",
]

DEFAULT_OVERRIDES_PATH = "rules/calendar-overrides.yaml"

# The State Council's longest break (Spring Festival) is 8–9 days; a longer range is almost surely a typo.
MAX_RANGE_DAYS = 31
# A real year has about 250 working days; fewer than this means the file blanks out most of a year.
MIN_WORKING_DAYS_PER_YEAR = 200
# Bounds every "search forward for a working day" loop, so a pathological file cannot hang the engine.
MAX_SEARCH_DAYS = 400

_WEEKDAY_NAMES = ("星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日")
_DATE_RE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}")
_RANGE_RE = re.compile(r"(?P<first>\S+?)\s*(?:\.\.|至)\s*(?P<last>\S+)")


class CalendarError(ValueError):
    """A calendar question with no answer (e.g. the 20th working day of a month with 18)."""


@dataclass(frozen=True)
class FileProblem:
    path: str
    line: int  # 1-based
    column: int  # 1-based
    message: str  # Chinese, for the admin

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}"


class CalendarFileError(Exception):
    """The override file cannot be used; ``problems`` lists every error found, each with its position."""

    def __init__(self, problems: list[FileProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class CalendarNotice:
    year: int
    message: str  # Chinese, for the admin


@dataclass(frozen=True)
class CalendarOverrides:
    years: frozenset[int] = frozenset()
    holidays: frozenset[dt.date] = frozenset()
    workdays: frozenset[dt.date] = frozenset()


def _is_weekday(day: dt.date) -> bool:
    return day.weekday() < 5


def _chinese_calendar_has(year: int) -> bool:
    try:
        chinese_calendar.is_workday(dt.date(year, 1, 1))
    except NotImplementedError:
        return False
    return True


@dataclass
class _State:
    """Mutable caches behind the immutable-looking calendar; rebuilt after unpickling."""

    year_tables: dict[int, bytes] = field(default_factory=dict)
    uncovered: set[int] = field(default_factory=set)
    notified: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


class WorkingCalendar:
    """Answers "is this a working day in mainland China?" for any date, never raising for missing data."""

    def __init__(self, overrides: CalendarOverrides | None = None, *, source: Path | None = None) -> None:
        self.overrides = overrides or CalendarOverrides()
        self.source = source
        self._state = _State()

    @classmethod
    def load(cls, overrides: Path | None) -> WorkingCalendar:
        """Read the override file (if any). Raises CalendarFileError with file:line:column: 中文 messages."""
        if overrides is None:
            return cls()
        try:
            text = overrides.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CalendarFileError([FileProblem(str(overrides), 1, 1, "找不到节假日调整文件")]) from None
        except UnicodeDecodeError:
            raise CalendarFileError([FileProblem(str(overrides), 1, 1, "文件不是 UTF-8 编码，请另存为 UTF-8")]) from None
        return cls(parse_overrides(text, str(overrides)), source=overrides)

    # -- pickling (APScheduler persists triggers that hold a calendar) --------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {"overrides": self.overrides, "source": self.source}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.overrides = state["overrides"]
        self.source = state["source"]
        self._state = _State()

    # -- queries --------------------------------------------------------------------------------------

    def is_working_day(self, day: dt.date) -> bool:
        table = self._state.year_tables.get(day.year)
        if table is None:
            table = self._year_table(day.year)
        return table[day.timetuple().tm_yday - 1] == 1

    def next_working_day(self, day: dt.date, *, include_self: bool = True) -> dt.date:
        candidate = day if include_self else day + dt.timedelta(days=1)
        for _ in range(MAX_SEARCH_DAYS):
            if self.is_working_day(candidate):
                return candidate
            candidate += dt.timedelta(days=1)
        raise CalendarError(f"{day.isoformat()} 之后 {MAX_SEARCH_DAYS} 天内没有工作日，请检查节假日调整文件")

    def shift_to_working_day(self, day: dt.date) -> dt.date:
        """The day itself if it is a working day, else the next working day (节假日顺延)."""
        return self.next_working_day(day, include_self=True)

    def working_days_of_month(self, year: int, month: int) -> list[dt.date]:
        first = dt.date(year, month, 1)
        days = []
        day = first
        while day.month == month:
            if self.is_working_day(day):
                days.append(day)
            day += dt.timedelta(days=1)
        return days

    def nth_working_day_of_month(self, year: int, month: int, n: int = 1) -> dt.date:
        """The n-th working day of the month (n ≥ 1), or counted from the end for n ≤ -1 (-1 = last)."""
        days = self.working_days_of_month(year, month)
        if n == 0 or abs(n) > len(days):
            raise CalendarError(f"{year}年{month}月只有{len(days)}个工作日，没有第{n}个")
        return days[n - 1] if n > 0 else days[n]

    def last_working_day_of_month(self, year: int, month: int) -> dt.date:
        return self.nth_working_day_of_month(year, month, -1)

    def due_date_for_month(self, year: int, month: int, day: int = 10) -> dt.date:
        """Figures for month M are due on day D of month M+1, moved to the next working day if needed.

        A day past the end of month M+1 (30 for February) means its last day, as officials read "每月30日前".
        """
        if not 1 <= day <= 31:
            raise CalendarError(f"报送日应在 1–31 日之间，而不是 {day} 日")
        due_year, due_month = (year + 1, 1) if month == 12 else (year, month + 1)
        following = dt.date(due_year + 1, 1, 1) if due_month == 12 else dt.date(due_year, due_month + 1, 1)
        last_day = (following - dt.timedelta(days=1)).day
        return self.shift_to_working_day(dt.date(due_year, due_month, min(day, last_day)))

    def has_data_for(self, year: int) -> bool:
        """True when the year's holidays are known (override file or chinese_calendar); does not record."""
        return year in self.overrides.years or _chinese_calendar_has(year)

    def uncovered_years(self) -> set[int]:
        """Years looked up so far that had neither chinese_calendar data nor an override: guessed by weekday."""
        return set(self._state.uncovered)

    @property
    def notices(self) -> list[CalendarNotice]:
        return [self._notice(year) for year in sorted(self._state.uncovered)]

    def pop_new_notices(self) -> list[CalendarNotice]:
        """Notices not returned before: call after each evaluation so the admin is warned once per year."""
        with self._state.lock:
            fresh = sorted(self._state.uncovered - self._state.notified)
            self._state.notified.update(fresh)
        return [self._notice(year) for year in fresh]

    def notice_for(self, years: Iterable[int]) -> list[CalendarNotice]:
        """Advance warnings for years that will need data (e.g. the programme's last year), without recording."""
        return [self._notice(year) for year in sorted(set(years)) if not self.has_data_for(year)]

    def _notice(self, year: int) -> CalendarNotice:
        where = str(self.source) if self.source is not None else DEFAULT_OVERRIDES_PATH
        return CalendarNotice(
            year,
            f"{year}年的法定节假日数据缺失：按周末推算工作日，请在 {where} 中补充国务院办公厅通知的安排",
        )

    def _year_table(self, year: int) -> bytes:
        with self._state.lock:
            cached = self._state.year_tables.get(year)
            if cached is not None:
                return cached
            first = dt.date(year, 1, 1)
            days = [first + dt.timedelta(days=i) for i in range((dt.date(year + 1, 1, 1) - first).days)]
            if year in self.overrides.years:
                flags = [_is_weekday(d) for d in days]
            elif _chinese_calendar_has(year):
                flags = [chinese_calendar.is_workday(d) for d in days]
            else:
                flags = [_is_weekday(d) for d in days]
                self._state.uncovered.add(year)
            for i, day in enumerate(days):
                if day in self.overrides.holidays:
                    flags[i] = False
                elif day in self.overrides.workdays:
                    flags[i] = True
            table = bytes(flags)
            self._state.year_tables[year] = table
            return table


# -- the override file ----------------------------------------------------------------------------------


class _DatesAsText(RoundTripConstructor):
    """Keeps YAML timestamps as text so a bad date (2027-02-30) is reported at its line, not as a crash."""


_DatesAsText.add_constructor("tag:yaml.org,2002:timestamp", RoundTripConstructor.construct_yaml_str)


def _position(node: Any, *, key: Any = None, index: int | None = None) -> tuple[int, int]:
    """1-based (line, column) of a mapping key or sequence item, (1, 1) when ruamel kept no position."""
    try:
        if index is not None:
            line, column = node.lc.item(index)
        elif key is not None:
            line, column = node.lc.key(key)
        else:
            line, column = node.lc.line, node.lc.col
    except (AttributeError, KeyError, TypeError):
        return 1, 1
    return line + 1, column + 1


def _parse_one_date(text: str) -> dt.date | None:
    if not _DATE_RE.fullmatch(text):
        return None
    year, month, day = (int(part) for part in text.split("-"))
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def parse_overrides(text: str, path: str) -> CalendarOverrides:
    """Parse the override file's text; all problems are collected and raised together."""
    problems: list[FileProblem] = []

    def problem(line_column: tuple[int, int], message: str) -> None:
        problems.append(FileProblem(path, line_column[0], line_column[1], message))

    from duban.engine.loader import yaml_structure_problem

    yaml = YAML(typ="rt")
    yaml.Constructor = _DatesAsText
    try:
        refused = yaml_structure_problem(text)  # aliases and deep nesting, before anything is built
        if refused is not None:
            raise CalendarFileError([FileProblem(path, *refused)])
        document = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        detail = exc.problem or exc.context or "语法错误"
        raise CalendarFileError([FileProblem(path, line, column, f"YAML 格式错误（{detail}），请检查缩进和冒号")]) from None

    if document is None:
        return CalendarOverrides()
    if not isinstance(document, dict):
        raise CalendarFileError(
            [FileProblem(path, 1, 1, "文件应按年份书写，例如第一行写 2027:，下面缩进写 holidays 和 workdays")]
        )

    years: set[int] = set()
    holidays: dict[dt.date, tuple[int, int]] = {}
    workdays: dict[dt.date, tuple[int, int]] = {}

    for year_key, plan in document.items():
        key_position = _position(document, key=year_key)
        year_text = str(year_key)
        if not re.fullmatch(r"\d{4}", year_text):
            problem(key_position, f"“{year_text}”不是年份：应写四位数年份，例如 2027:")
            continue
        year = int(year_text)
        years.add(year)
        if plan is None:
            plan = {}
        if not isinstance(plan, dict):
            problem(key_position, f"{year}年下面应缩进写 holidays（放假日期）和 workdays（调休上班日期）两个列表")
            continue
        for kind, entries in plan.items():
            kind_position = _position(plan, key=kind)
            if kind not in ("holidays", "workdays"):
                problem(kind_position, f"未知的项“{kind}”：只能是 holidays（放假日期）或 workdays（调休上班日期）")
                continue
            if entries is None:
                continue
            if not isinstance(entries, list):
                problem(kind_position, f"{kind} 应为日期列表，每行一项，例如“    - {year}-01-01”")
                continue
            target = holidays if kind == "holidays" else workdays
            for index, entry in enumerate(entries):
                entry_position = _position(entries, index=index)
                for day in _entry_days(str(entry), year, kind, entry_position, problem):
                    target.setdefault(day, entry_position)

    for day, where in sorted(workdays.items()):
        if day in holidays:
            line, column = holidays[day]
            problem(where, f"{day.isoformat()} 同时列在 holidays（第{line}行）和 workdays 中，只能保留一处")
        elif _is_weekday(day):
            problem(
                where,
                f"{day.isoformat()} 是{_WEEKDAY_NAMES[day.weekday()]}，本来就是工作日；"
                "workdays 只需列出调休上班的周六、周日",
            )

    for year in sorted(years):
        if problems:
            break
        working = _count_working_days(year, holidays.keys(), workdays.keys())
        if working < MIN_WORKING_DAYS_PER_YEAR:
            problem(
                _position(document, key=year),
                f"按本文件，{year}年只有{working}个工作日（正常约250个），请检查放假区间是否写错",
            )

    if problems:
        raise CalendarFileError(sorted(problems, key=lambda p: (p.line, p.column)))
    return CalendarOverrides(frozenset(years), frozenset(holidays), frozenset(workdays))


def _entry_days(text: str, year: int, kind: str, position: tuple[int, int], problem: Any) -> list[dt.date]:
    text = text.strip()
    hint = f"应写成 {year}-01-01 或区间 {year}-02-05..{year}-02-11"
    range_match = _RANGE_RE.fullmatch(text)
    if range_match:
        first = _parse_one_date(range_match["first"])
        last = _parse_one_date(range_match["last"])
        if first is None or last is None:
            problem(position, f"无法识别的日期区间“{text}”：{hint}")
            return []
        if last < first:
            problem(position, f"区间“{text}”的起点晚于终点")
            return []
        length = (last - first).days + 1
        if length > MAX_RANGE_DAYS:
            problem(position, f"区间“{text}”长达{length}天，超过{MAX_RANGE_DAYS}天，请检查是否写错")
            return []
        days = [first + dt.timedelta(days=i) for i in range(length)]
    else:
        single = _parse_one_date(text)
        if single is None:
            problem(position, f"无法识别的日期“{text}”：{hint}")
            return []
        days = [single]
    # The notice for year Y may rearrange the end of December of Y-1 (the New Year's break).
    allowed_first = dt.date(year - 1, 12, 1)
    allowed_last = dt.date(year, 12, 31)
    outside = [d for d in days if not allowed_first <= d <= allowed_last]
    if outside:
        problem(
            position,
            f"{outside[0].isoformat()} 不属于{year}年：{year}年下只能写{year}年的日期（或上一年12月的跨年调休日期）",
        )
        return []
    return days


def _count_working_days(year: int, holidays: Iterable[dt.date], workdays: Iterable[dt.date]) -> int:
    off = set(holidays)
    on = set(workdays)
    first = dt.date(year, 1, 1)
    count = 0
    for i in range((dt.date(year + 1, 1, 1) - first).days):
        day = first + dt.timedelta(days=i)
        if day in off:
            continue
        if day in on or _is_weekday(day):
            count += 1
    return count
