"""Reporting periods ('2023-06', '2023-Q2', '2023') and what had ended at a given moment."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
_YEAR = re.compile(r"^(\d{4})$")


@dataclass(frozen=True, order=True)
class Period:
    """A reporting period; `start` inclusive, `end` exclusive (both local dates)."""

    start: dt.date
    end: dt.date
    code: str

    @property
    def year(self) -> int:
        return self.start.year

    @property
    def kind(self) -> str:
        if _MONTH.match(self.code):
            return "month"
        if _QUARTER.match(self.code):
            return "quarter"
        return "year"

    @property
    def last_day(self) -> dt.date:
        return self.end - dt.timedelta(days=1)

    @property
    def label(self) -> str:
        """The way the documents write it: 2023年6月, 2023年第二季度, 2023年."""
        if self.kind == "month":
            return f"{self.start.year}年{self.start.month}月"
        if self.kind == "quarter":
            return f"{self.start.year}年第{'一二三四'[(self.start.month - 1) // 3]}季度"
        return f"{self.start.year}年"


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


@lru_cache(maxsize=8192)  # Period is immutable; evaluations parse the same few hundred codes again and again
def parse_period(code: str) -> Period:
    """Parse a canonical period code; raises ValueError with a Chinese message."""
    if m := _MONTH.match(code):
        year, month = int(m[1]), int(m[2])
        if not 1 <= month <= 12:
            raise ValueError(f"期间 '{code}' 的月份无效")
        start = dt.date(year, month, 1)
        return Period(start, _add_months(start, 1), code)
    if m := _QUARTER.match(code):
        start = dt.date(int(m[1]), 3 * (int(m[2]) - 1) + 1, 1)
        return Period(start, _add_months(start, 3), code)
    if m := _YEAR.match(code):
        start = dt.date(int(m[1]), 1, 1)
        return Period(start, dt.date(start.year + 1, 1, 1), code)
    raise ValueError(f"期间 '{code}' 格式不正确，应为 YYYY-MM、YYYY-Qn 或 YYYY")


FIGURES_DUE_DAY = 10  # figures for a period are due on the 10th of the month after it (report_due's default)


def figures_due(period: Period) -> dt.date:
    """When a period's figures are due: the 10th of the month after it ends.

    A replay or an evaluation in the past takes this as the moment a figure imported later was
    known, so the 3 July round does not see June figures due on 10 July.
    """
    return period.end + dt.timedelta(days=FIGURES_DUE_DAY - 1)


def month_code(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


def local_date(at: dt.datetime) -> dt.date:
    """The calendar date in Asia/Shanghai: the programmes' clock, whatever the server's zone."""
    if at.tzinfo is None:
        raise ValueError("evaluation time must be timezone-aware")
    return at.astimezone(SHANGHAI).date()


def has_ended(period: Period, at: dt.datetime) -> bool:
    return period.end <= local_date(at)


def last_ended_month(at: dt.datetime) -> tuple[int, int]:
    """(year, month) of the latest month that had ended at `at`."""
    today = local_date(at)
    previous = _add_months(dt.date(today.year, today.month, 1), -1)
    return previous.year, previous.month


def months_between(start: dt.date, end_exclusive: dt.date) -> int:
    """Whole months from the month of `start` up to (not including) the month of `end_exclusive`."""
    return (end_exclusive.year - start.year) * 12 + end_exclusive.month - start.month
