"""Cadence schedules: the calendar phrases the programme documents use, and standard cron.

Every schedule runs in Asia/Shanghai whatever the server's time zone. Pure: ``now`` is always passed in.

Phrases (Chinese digits 一二三…十/两 and Arabic digits are interchangeable; default time 09:00;
a time is written ``09:00``, ``9:30``, ``9点``, ``9点半``, ``下午4点``)::

    Phrase                         Fires                                                  Document
    -----------------------------  -----------------------------------------------------  ------------------------
    每周一 09:00 / 每星期一         every Monday                                           鹿城 周会商
    每周五 16:00                   every Friday 16:00                                      鹿城 周会商 (weekly reading)
    每两周周一 09:00 / 双周周一      every other Monday, counted from the anchor week        鹿城 每两周召集一次会商
    每N周周X / 隔周周X              every N weeks (N = 1..8) / every other week
    每个工作日 09:00                every working day
    每月第一个工作日 09:00          first working day of every month (may be a 调休 Saturday)  鹿城 月调度, 湖州 每月调度
    每月第N个工作日                 N-th working day (N = 1..10; a month with fewer: its last)
    每月最后一个工作日              last working day of every month
    每月10日 / 每月10号 09:00       the 10th of every month (29–31: the month's last day if shorter)  鹿城 月度专报
    每月最后一天                   the last calendar day of every month
    每季度首月15日                  15 Jan/Apr/Jul/Oct (首月 = 第一个月; 第二个月; 末月 = 第三个月)  鹿城 季度通报
    每季度第一个工作日               first working day of Jan/Apr/Jul/Oct                    鹿城 季分析, 湖州 每季召开例会
    每季度最后一个工作日             last working day of Mar/Jun/Sep/Dec
    每季度末月25日                  25 Mar/Jun/Sep/Dec
    每季度首月第一个工作日           same as 每季度第一个工作日
    每两月第一个工作日 / 双月…        Feb/Apr/Jun/Aug/Oct/Dec (双月 = even months)             湖州 双月现场推进
    单月第一个工作日                Jan/Mar/May/Jul/Sep/Nov
    每N月… (N = 2..6)              every N months, counted from the anchor month (N = 2: even months)
    每半年首月10日 / 每半年末月…      Jan+Jul / Jun+Dec
    每年1月15日                    15 January every year                                    鹿城 年评估
    每年12月最后一个工作日           last working day of December                            鹿城 年底综合评估
    0 9 * * 1                      standard 5-field cron ``minute hour day-of-month month day-of-week``

``每季度15日`` is rejected as ambiguous (first or last month of the quarter?): write 首月 or 末月.

Options, in parentheses (full- or half-width) after the phrase:

- ``(遇节假日顺延)`` / ``(顺延)``: a fire time on a non-working day moves to the next working day, same time
  of day. **Default on for phrases, off for cron.** ``(不顺延)`` turns it off. Phrases that already pick
  working days (第N个工作日, 最后一个工作日, 每个工作日) are unaffected. A 调休 weekend working day
  (e.g. Saturday 2023-10-07) counts as a working day. Two fire times moved onto the same instant fire once.
- ``(起算 2023-01-02)`` (or ``起算日``/``起算月``, ``2023-02`` accepted): the anchor of 每N周 / 每N月
  schedules, i.e. one fire date. The anchor's week (every-N-weeks) or month (every-N-months) fires and
  every N-th one from there, in both directions. Week counting is by days from the anchor's Monday, never by
  ISO week number (ISO week parity breaks across year boundaries: 2026 has 53 weeks).
  The default anchor is :data:`PROGRAMME_START` (Monday 2023-01-02) for weeks, February 2023 for every two
  months (双月 = even months) and January 2023 otherwise. ``parse_schedule(anchor=…)`` gives the same
  default from the rule file's ``anchor:`` key; an inline ``(起算 …)`` takes precedence.

Cron: standard (Vixie) semantics — minute 0–59, hour 0–23, day-of-month 1–31, month 1–12 or JAN–DEC,
day-of-week 0–7 or SUN–SAT where **0 and 7 are Sunday and 1 is Monday** (unlike APScheduler's
``CronTrigger.from_crontab``, which treats 1 as Tuesday). ``*``, ``a-b``, ``a-b/n``, ``*/n``, ``a/n`` and lists.
When both day-of-month and day-of-week are restricted (neither starts with ``*``) a day matching either
fires, as in cron. Cron does not move off holidays unless ``(遇节假日顺延)`` is appended or
``shift_to_working_day=True`` is passed.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger

from duban.engine.calendar import WorkingCalendar

__all__ = [
    "PROGRAMME_START",
    "SHANGHAI",
    "Schedule",
    "ScheduleError",
    "ScheduleTrigger",
    "parse_schedule",
]

SHANGHAI = ZoneInfo("Asia/Shanghai")
PROGRAMME_START = dt.date(2023, 1, 2)  # Monday of the programmes' first week (2023–2027)
DEFAULT_TIME = dt.time(9, 0)
MAX_NTH_WORKING_DAY = 10
MAX_SEARCH_DAYS = 400
ONE_DAY = dt.timedelta(days=1)


class ScheduleError(ValueError):
    """The schedule text cannot be understood; ``message`` is Chinese, ``column`` 1-based within the text."""

    def __init__(self, text: str, message: str, column: int | None = None) -> None:
        super().__init__(message)
        self.text = text
        self.message = message
        self.column = column


# -- numbers ---------------------------------------------------------------------------------------------

_CHINESE_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
                   "八": 8, "九": 9}
_NUM = r"(?:[0-9]+|[零〇一二两三四五六七八九十]+)"


def _number(text: str) -> int | None:
    """1–99 in Arabic or Chinese digits (十, 十五, 二十, 三十一); None when not a number."""
    if text.isascii() and text.isdigit():
        return int(text)
    if "十" in text:
        tens_text, _, ones_text = text.partition("十")
        if "十" in ones_text or len(tens_text) > 1 or len(ones_text) > 1:
            return None
        tens = _CHINESE_DIGITS.get(tens_text, -1) if tens_text else 1
        ones = _CHINESE_DIGITS.get(ones_text, -1) if ones_text else 0
        return None if tens < 1 or ones < 0 else tens * 10 + ones
    if len(text) == 1:
        return _CHINESE_DIGITS.get(text)
    return None


def _required_number(text: str, source: str, what: str, low: int, high: int) -> int:
    value = _number(text)
    if value is None or not low <= value <= high:
        raise ScheduleError(source, f"“{source}”中的{what}“{text}”应在 {low}–{high} 之间")
    return value


# -- day patterns ------------------------------------------------------------------------------------------


class _DayPattern(Protocol):
    @property
    def picks_working_days(self) -> bool:
        """True when every nominal day is already a working day (nothing to move)."""
        ...

    def days(self, start: dt.date, calendar: WorkingCalendar) -> Iterator[dt.date]:
        """Nominal fire dates ≥ start, increasing, without end."""
        ...


def _monday_of(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


@dataclass(frozen=True)
class _Weekly:
    weekday: int  # 0 = Monday
    every_weeks: int
    anchor: dt.date
    picks_working_days: bool = False

    def days(self, start: dt.date, calendar: WorkingCalendar) -> Iterator[dt.date]:
        day = start + dt.timedelta(days=(self.weekday - start.weekday()) % 7)
        weeks_from_anchor = (_monday_of(day) - _monday_of(self.anchor)).days // 7
        day += dt.timedelta(weeks=(-weeks_from_anchor) % self.every_weeks)
        step = dt.timedelta(weeks=self.every_weeks)
        while True:
            yield day
            day += step


@dataclass(frozen=True)
class _EveryWorkingDay:
    picks_working_days: bool = True

    def days(self, start: dt.date, calendar: WorkingCalendar) -> Iterator[dt.date]:
        day = start
        while True:
            if calendar.is_working_day(day):
                yield day
            day += ONE_DAY


# Day selectors inside a chosen month.
_DAY_OF_MONTH = "day"
_NTH_WORKING = "nth_working"
_LAST_WORKING = "last_working"
_LAST_DAY = "last_day"


def _days_in_month(year: int, month: int) -> int:
    following = dt.date(year + 1, 1, 1) if month == 12 else dt.date(year, month + 1, 1)
    return (following - dt.timedelta(days=1)).day


@dataclass(frozen=True)
class _MonthCycle:
    """Months whose index (year*12 + month-1) ≡ anchor + offset (mod every_months), one day in each."""

    every_months: int
    anchor_index: int
    offset: int
    selector: str
    number: int = 0
    picks_working_days: bool = False

    def select(self, year: int, month: int, calendar: WorkingCalendar) -> dt.date | None:
        if self.selector == _DAY_OF_MONTH:
            return dt.date(year, month, min(self.number, _days_in_month(year, month)))
        if self.selector == _LAST_DAY:
            return dt.date(year, month, _days_in_month(year, month))
        working = calendar.working_days_of_month(year, month)
        if not working:
            return None
        if self.selector == _LAST_WORKING:
            return working[-1]
        return working[min(self.number, len(working)) - 1]

    def days(self, start: dt.date, calendar: WorkingCalendar) -> Iterator[dt.date]:
        index = start.year * 12 + start.month - 1
        index += (self.anchor_index + self.offset - index) % self.every_months
        for _ in range(10_000):
            chosen = self.select(index // 12, index % 12 + 1, calendar)
            if chosen is not None and chosen >= start:
                yield chosen
            index += self.every_months


# -- cron --------------------------------------------------------------------------------------------------

_MONTH_NAMES = {name: i + 1 for i, name in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"])}
_WEEKDAY_NAMES = {name: i for i, name in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}
_NO_NAMES: dict[str, int] = {}
_CRON_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (  # (Chinese name, low, high, names)
    ("分钟", 0, 59, _NO_NAMES),
    ("小时", 0, 23, _NO_NAMES),
    ("日", 1, 31, _NO_NAMES),
    ("月", 1, 12, _MONTH_NAMES),
    ("星期", 0, 7, _WEEKDAY_NAMES),
)


@dataclass(frozen=True)
class _Cron:
    days_of_month: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday (cron numbering)
    day_of_month_star: bool
    weekday_star: bool
    picks_working_days: bool = False

    def matches(self, day: dt.date) -> bool:
        if day.month not in self.months:
            return False
        day_of_month_ok = day.day in self.days_of_month
        weekday_ok = day.isoweekday() % 7 in self.weekdays
        if self.day_of_month_star or self.weekday_star:
            return day_of_month_ok and weekday_ok
        return day_of_month_ok or weekday_ok

    def days(self, start: dt.date, calendar: WorkingCalendar) -> Iterator[dt.date]:
        day = start
        while True:
            if self.matches(day):
                yield day
            day += ONE_DAY


def _cron_field(text: str, source: str, position: int, column: int) -> set[int]:
    name, low, high, names = _CRON_FIELDS[position]

    def fail(detail: str) -> ScheduleError:
        return ScheduleError(source, f"cron 第{position + 1}个字段（{name}）“{text}”{detail}", column)

    def value(token: str) -> int:
        token_upper = token.upper()
        if token_upper in names:
            return names[token_upper]
        if not token.isascii() or not token.isdigit():
            raise fail(f"中的“{token}”不是数字")
        number = int(token)
        if not low <= number <= high:
            raise fail(f"超出范围 {low}–{high}")
        return number

    result: set[int] = set()
    for part in text.split(","):
        if not part:
            raise fail("中有多余的逗号")
        range_text, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isascii() or not step_text.isdigit() or int(step_text) == 0:
                raise fail(f"中的步长“{step_text}”应为正整数")
            step = int(step_text)
        if range_text == "*":
            first, last = low, high
        elif "-" in range_text:
            first_text, _, last_text = range_text.partition("-")
            first, last = value(first_text), value(last_text)
            if last < first:
                raise fail("的区间起点大于终点")
        else:
            first = value(range_text)
            last = high if slash else first
        result.update(range(first, last + 1, step))
    if position == 4 and 7 in result:  # 7 is Sunday too
        result.discard(7)
        result.add(0)
    return result


def _parse_cron(body: str, source: str, body_column: int) -> tuple[_Cron, tuple[dt.time, ...]]:
    fields = body.split()
    columns = [body_column + m.start() for m in re.finditer(r"\S+", body)]
    if len(fields) != 5:
        raise ScheduleError(source, f"cron 表达式应有 5 个字段（分 时 日 月 星期），“{body}”有 {len(fields)} 个")
    minutes, hours, days_of_month, months, weekdays = (
        _cron_field(text, source, i, columns[i]) for i, text in enumerate(fields)
    )
    pattern = _Cron(frozenset(days_of_month), frozenset(months), frozenset(weekdays),
                    fields[2].startswith("*"), fields[4].startswith("*"))
    # 28 years hold every (leap year, weekday) combination: a pattern silent that long never fires.
    probe = dt.date(2024, 1, 1)
    if not any(pattern.matches(probe + dt.timedelta(days=i)) for i in range(366 * 28)):
        raise ScheduleError(source, f"cron 表达式“{body}”永远不会触发（例如 2 月 30 日），请检查日和月")
    times = tuple(dt.time(h, m) for h in sorted(hours) for m in sorted(minutes))
    return pattern, times


# -- phrases -----------------------------------------------------------------------------------------------

_WEEKDAY_CHARS = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6,
                  "1": 0, "2": 1, "3": 2, "4": 3, "5": 4, "6": 5, "7": 6}
_OPTION_RE = re.compile(r"[(（]([^()（）]*)[)）]")
_CLOCK_RE = re.compile(r"(?:(?P<half>上午|早上|下午|晚上)\s*)?(?P<h>\d{1,2})\s*:\s*(?P<m>\d{2})\s*$")
_HOUR_RE = re.compile(
    rf"(?:(?P<half>上午|早上|下午|晚上)\s*)?(?P<h>{_NUM})\s*[点时]\s*(?:(?P<halfhour>半)|(?P<m>{_NUM})\s*分)?\s*$"
)
_ANCHOR_RE = re.compile(r"起算[日月]?\s*[:：]?\s*(?P<y>\d{4})-(?P<m>\d{1,2})(?:-(?P<d>\d{1,2}))?")
_WEEKLY_RE = re.compile(
    rf"(?:每(?:(?P<n>{_NUM})个?)?(?:周|星期|礼拜)|(?P<other>双周|隔周))(?:周|星期|礼拜)?(?P<wd>[一二三四五六日天1-7])"
)
_DAY_SELECTOR_RE = re.compile(
    rf"(?:第(?P<nth>{_NUM})个工作日|首个工作日|(?P<lastwork>最后一个工作日)|(?P<lastday>最后一天|月末)"
    rf"|(?P<dom>{_NUM})[日号])"
)
_PART_RE = re.compile(rf"(?:(?P<first>首月)|(?P<last>末月|最后一个月)|第(?P<n>{_NUM})个月)")


def _normalise(text: str) -> str:
    full_width = {ord("０") + i: ord("0") + i for i in range(10)}
    full_width.update({ord("："): ord(":"), ord("　"): ord(" "), ord("－"): ord("-")})
    return text.translate(full_width).strip()


def _parse_time(body: str, source: str) -> tuple[str, dt.time | None]:
    match = _CLOCK_RE.search(body) or _HOUR_RE.search(body)
    if match is None:
        return body, None
    hour = _number(match["h"])
    if hour is None or hour > 23:
        raise ScheduleError(source, f"“{source}”中的时刻“{match.group(0).strip()}”不对：小时应在 0–23 之间")
    minute = 30 if match.groupdict().get("halfhour") else (_number(match["m"]) if match["m"] else 0)
    if minute is None or minute > 59:
        raise ScheduleError(source, f"“{source}”中的时刻“{match.group(0).strip()}”不对：分钟应在 0–59 之间")
    if match["half"] in ("下午", "晚上") and hour < 12:
        hour += 12
    return body[: match.start()].strip(), dt.time(hour, minute)


def _month_index(day: dt.date) -> int:
    return day.year * 12 + day.month - 1


def _parse_phrase(body: str, source: str, anchor: dt.date | None, anchor_inline: bool) -> _DayPattern:
    compact = re.sub(r"\s+", "", body)
    if re.fullmatch(r"每个?工作日", compact):
        return _EveryWorkingDay()

    weekly = _WEEKLY_RE.fullmatch(compact)
    if weekly:
        every = 2 if weekly["other"] else _required_number(weekly["n"], source, "周数", 1, 8) if weekly["n"] else 1
        if anchor_inline and every == 1:
            raise ScheduleError(source, f"“{source}”每周都触发，不需要起算日")
        return _Weekly(_WEEKDAY_CHARS[weekly["wd"]], every, anchor or PROGRAMME_START)

    cycle = re.match(rf"每个?月|每(?P<n>{_NUM})个?月|(?P<parity>单月|双月)|每个?季度?|(?P<half>每半年)"
                     rf"|每年(?P<month>{_NUM})月", compact)
    if cycle is None:
        raise ScheduleError(
            source,
            f"无法识别的周期“{source}”：可写 每周一 09:00、每两周周一、每月第一个工作日、每月10日、"
            "每季度首月15日、每两月第一个工作日、每年1月15日，或 5 段 cron 表达式（如 0 9 * * 1）",
        )
    rest = compact[cycle.end():]
    if cycle["month"] is not None:
        month = _required_number(cycle["month"], source, "月份", 1, 12)
        every, anchor_index, in_quarter_like = 12, month - 1, False
    elif cycle["parity"]:
        if anchor_inline:
            raise ScheduleError(source, f"“{source}”已用单月/双月指定月份，不能再写起算日")
        every, anchor_index, in_quarter_like = 2, (0 if cycle["parity"] == "单月" else 1), False
    elif cycle["n"] is not None:
        every = _required_number(cycle["n"], source, "月数", 1, 6)
        default_anchor = dt.date(2023, 2, 1) if every == 2 else dt.date(2023, 1, 1)
        anchor_index, in_quarter_like = _month_index(anchor or default_anchor), False
    elif cycle["half"]:
        every, anchor_index, in_quarter_like = 6, 0, True
    elif "季" in cycle.group(0):
        every, anchor_index, in_quarter_like = 3, 0, True
    else:
        every, anchor_index, in_quarter_like = 1, 0, False
    if anchor_inline and (cycle["month"] is not None or in_quarter_like or every == 1):
        raise ScheduleError(source, f"“{source}”的月份是固定的，起算日只用于 每N周、每N月")

    offset: int | None = 0
    part = _PART_RE.match(rest)
    if part:
        if not in_quarter_like:
            raise ScheduleError(source, f"“{part.group(0)}”只能用于 每季度 或 每半年（“{source}”）")
        if part["first"]:
            offset = 0
        elif part["last"]:
            offset = every - 1
        else:
            offset = _required_number(part["n"], source, "第几个月", 1, every) - 1
        rest = rest[part.end():]
    elif in_quarter_like:
        offset = None  # decided by the day selector below

    if rest == "":
        raise ScheduleError(source, f"“{source}”缺少日期：例如 每月10日、每月第一个工作日、每季度第一个工作日")
    day = _DAY_SELECTOR_RE.fullmatch(rest)
    if day is None:
        raise ScheduleError(
            source, f"“{source}”中的“{rest}”无法识别：可写 10日、第一个工作日、第N个工作日、最后一个工作日、最后一天"
        )
    if day["dom"] is not None:
        selector, number = _DAY_OF_MONTH, _required_number(day["dom"], source, "日期", 1, 31)
        if offset is None:
            raise ScheduleError(
                source, f"“{source}”不明确：请写成 每季度首月{number}日 或 每季度末月{number}日（半年同理）"
            )
        if cycle["month"] is not None:
            month = anchor_index + 1
            longest = 29 if month == 2 else _days_in_month(2023, month)
            if number > longest:
                raise ScheduleError(source, f"“{source}”：{month}月没有{number}日")
    elif day["lastwork"]:
        selector, number = _LAST_WORKING, 0
    elif day["lastday"]:
        selector, number = _LAST_DAY, 0
    else:
        nth = day["nth"]
        number = 1 if nth is None else _required_number(nth, source, "第几个工作日", 1, MAX_NTH_WORKING_DAY)
        selector = _NTH_WORKING
    if offset is None:
        offset = every - 1 if selector in (_LAST_WORKING, _LAST_DAY) else 0
    return _MonthCycle(every, anchor_index, offset, selector, number,
                       picks_working_days=selector in (_NTH_WORKING, _LAST_WORKING))


# -- the schedule ------------------------------------------------------------------------------------------


class Schedule:
    """A parsed schedule; ``next_fire_after`` and ``fire_times`` answer in Asia/Shanghai aware datetimes."""

    def __init__(self, text: str, calendar: WorkingCalendar, pattern: _DayPattern, times: tuple[dt.time, ...],
                 *, shift_to_working_day: bool, anchor: dt.date | None, is_cron: bool) -> None:
        self.text = text
        self.calendar = calendar
        self.shift_to_working_day = shift_to_working_day
        self.anchor = anchor
        self.is_cron = is_cron
        self._pattern = pattern
        self._times = times

    def __repr__(self) -> str:
        return f"Schedule({self.text!r}, shift_to_working_day={self.shift_to_working_day})"

    def next_fire_after(self, after: dt.datetime) -> dt.datetime:
        """The first fire time strictly after ``after`` (which must be timezone-aware)."""
        if after.tzinfo is None or after.utcoffset() is None:
            raise ValueError("next_fire_after needs a timezone-aware datetime")
        local = after.astimezone(SHANGHAI).replace(tzinfo=None)
        shifting = self.shift_to_working_day and not self._pattern.picks_working_days
        start = local.date()
        if shifting:
            # A nominal day before `start` can land after it only across an unbroken run of days off.
            for _ in range(MAX_SEARCH_DAYS):
                if self.calendar.is_working_day(start - ONE_DAY):
                    break
                start -= ONE_DAY
        best: dt.datetime | None = None
        for nominal in self._pattern.days(start, self.calendar):
            if best is not None and nominal > best.date():
                break
            fire_day = self.calendar.shift_to_working_day(nominal) if shifting else nominal
            for time_of_day in self._times:
                candidate = dt.datetime.combine(fire_day, time_of_day)
                if candidate > local:  # times are sorted: the first later one is this day's earliest
                    if best is None or candidate < best:
                        best = candidate
                    break
        assert best is not None  # patterns are infinite and validated to fire
        return best.replace(tzinfo=SHANGHAI)

    def fire_times(self, start: dt.datetime, end: dt.datetime) -> Iterator[dt.datetime]:
        """Fire times t with start ≤ t < end, in order."""
        fire = self.next_fire_after(start - dt.timedelta(microseconds=1))
        while fire < end:
            yield fire
            fire = self.next_fire_after(fire)


def parse_schedule(
    text: str,
    calendar: WorkingCalendar,
    *,
    anchor: dt.date | None = None,
    shift_to_working_day: bool | None = None,
) -> Schedule:
    """Parse a phrase or a cron expression (see the module docstring). Raises ScheduleError (Chinese).

    ``anchor`` and ``shift_to_working_day`` are defaults (from the rule file's keys); inline options
    ``(起算 …)``, ``(遇节假日顺延)``, ``(不顺延)`` in the text take precedence.
    """
    source = text
    normalised = _normalise(text)
    if not normalised:
        raise ScheduleError(source, "时间安排为空：例如 每月第一个工作日 09:00")

    inline_shift: bool | None = None
    inline_anchor: dt.date | None = None
    for option in _OPTION_RE.finditer(normalised):
        content = re.sub(r"\s+", "", option[1])
        anchor_match = _ANCHOR_RE.fullmatch(content)
        if content in ("遇节假日顺延", "节假日顺延", "顺延", "遇节假日顺延至下一个工作日"):
            inline_shift = True
        elif content in ("不顺延", "遇节假日不顺延", "节假日不顺延"):
            inline_shift = False
        elif anchor_match:
            try:
                inline_anchor = dt.date(int(anchor_match["y"]), int(anchor_match["m"]), int(anchor_match["d"] or 1))
            except ValueError:
                raise ScheduleError(source, f"起算日“{option[1]}”不是有效日期", option.start() + 1) from None
        else:
            raise ScheduleError(
                source, f"无法识别的选项“{option[1]}”：可写（遇节假日顺延）、（不顺延）或（起算 2023-01-02）",
                option.start() + 1,
            )
    body = _OPTION_RE.sub(" ", normalised).strip()
    leftover = re.search(r"[()（）]", body)
    if leftover:
        raise ScheduleError(source, f"“{source}”中的括号不成对", leftover.start() + 1)

    if re.fullmatch(r"[0-9A-Za-z*/,\-]+(\s+[0-9A-Za-z*/,\-]+)+", body):
        if inline_anchor is not None:
            raise ScheduleError(source, "cron 表达式不使用起算日")
        pattern_cron, times = _parse_cron(body, source, normalised.find(body) + 1)
        shift = inline_shift if inline_shift is not None else bool(shift_to_working_day)
        return Schedule(source, calendar, pattern_cron, times, shift_to_working_day=shift, anchor=None, is_cron=True)

    body, time_of_day = _parse_time(body, source)
    effective_anchor = inline_anchor or anchor
    pattern = _parse_phrase(body, source, effective_anchor, inline_anchor is not None)
    shift = inline_shift if inline_shift is not None else (True if shift_to_working_day is None else shift_to_working_day)
    return Schedule(source, calendar, pattern, (time_of_day or DEFAULT_TIME,),
                    shift_to_working_day=shift, anchor=effective_anchor, is_cron=False)


# -- APScheduler 3.11 --------------------------------------------------------------------------------------


class ScheduleTrigger(BaseTrigger):
    """APScheduler 3.11 trigger over a Schedule: pure and deterministic, picklable for persistent job stores.

    The pickled state holds the schedule's text, options and calendar data (not a file path), so a job
    restored from the store behaves exactly as when it was added; re-add jobs (replace_existing=True) at
    start-up so an edited override file takes effect.
    """

    def __init__(self, schedule: Schedule, *, end: dt.datetime | None = None) -> None:
        self.schedule = schedule
        self.end = end

    def get_next_fire_time(self, previous_fire_time: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
        if previous_fire_time is not None:
            fire = self.schedule.next_fire_after(previous_fire_time)
        else:
            fire = self.schedule.next_fire_after(now - dt.timedelta(microseconds=1))
        if self.end is not None and fire > self.end:
            return None
        return fire

    def __getstate__(self) -> dict[str, Any]:
        return {
            "version": 1,
            "text": self.schedule.text,
            "anchor": self.schedule.anchor,
            "shift_to_working_day": self.schedule.shift_to_working_day,
            "calendar": self.schedule.calendar,
            "end": self.end,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.get("version") != 1:
            raise ValueError(f"Cannot restore ScheduleTrigger state version {state.get('version')}")
        self.schedule = parse_schedule(state["text"], state["calendar"], anchor=state["anchor"],
                                       shift_to_working_day=state["shift_to_working_day"])
        self.end = state["end"]

    def __str__(self) -> str:
        return f"duban[{self.schedule.text}]"

    def __repr__(self) -> str:
        return f"<ScheduleTrigger ({self.schedule.text!r}, shift_to_working_day={self.schedule.shift_to_working_day})>"
