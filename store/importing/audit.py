"""Plausibility checks on figures (审核公式, as statistics offices use them).

Hard errors (强制性审核) refuse the import: a share (比重, 占比) outside 0–100. Warnings (核实性审核)
refuse it unless the importer explains them with a note: a percentage outside 0–100 for other
indicators (a completion rate may pass 100), a growth rate outside the configured range, a
running total that falls within its year, and a figure more than N times (or less than 1/N of)
the previous month's or quarter's. Each check compares a figure of this import with the figure
before it in its series, whether that one is in the import or already stored.
"""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from typing import Any

from duban.store.importing.limits import ImportLimits
from duban.store.importing.staging import SeriesRow

__all__ = ["Finding", "IndicatorInfo", "SeriesFigures", "check_candidates", "check_series", "check_value",
           "period_label", "quiet_range"]

PERCENT = "%"
# Names that say the figure is a part of a whole: it cannot be below 0 or above 100.
_SHARE_NAME = re.compile(r"比重|占比|份额|比例|占.{0,12}比")
RUNNING_TOTALS = ("", "ytd", "to_date")  # '' is the default reading of a cumulative indicator: 本年累计


@dataclass(frozen=True)
class IndicatorInfo:
    name: str
    measure: str
    kind: str  # level, growth, cumulative
    # ytd (本年累计, also ''), month (当月值), to_date (累计至今); None where the store has no such column.
    reported_as: str | None = ""

    @property
    def running_total(self) -> bool:
        """A 本年累计 or 累计至今 figure, which cannot fall (within its year). `reported_as` None: the
        store does not say how a cumulative indicator is reported, so nothing is taken as a running total."""
        return self.kind == "cumulative" and self.reported_as is not None and self.reported_as in RUNNING_TOTALS

    @property
    def share(self) -> bool:
        return self.measure == PERCENT and self.kind != "growth" and bool(_SHARE_NAME.search(self.name))


@dataclass(frozen=True)
class Finding:
    audit: str  # share, percent, growth, shrink, jump
    message: str
    error: bool = False  # a hard error; otherwise a warning the importer may explain with a note


def period_label(period: str) -> str:
    """'2023-06' → 2023年6月, '2023-Q2' → 2023年第2季度, '2023' → 2023年."""
    if len(period) == 7 and period[5] == "Q":
        return f"{period[:4]}年第{period[6]}季度"
    if len(period) == 7:
        return f"{period[:4]}年{int(period[5:])}月"
    return f"{period}年"


def _number(value: float) -> str:
    return f"{value:,.4f}".rstrip("0").rstrip(".")


def check_value(info: IndicatorInfo, value: float, limits: ImportLimits) -> Finding | None:
    """What one figure alone can tell: shares and percentages outside 0–100, growth rates out of range."""
    if info.kind == "growth":
        if not limits.growth_min <= value <= limits.growth_max:
            return Finding("growth", f"增速 {_number(value)}% 超出 {_number(limits.growth_min)}% 至 "
                                     f"{_number(limits.growth_max)}% 的合理范围，请核实（范围可用 DUBAN_IMPORT_GROWTH_MIN、"
                                     "DUBAN_IMPORT_GROWTH_MAX 调整）")
        return None
    if info.measure == PERCENT and not 0 <= value <= 100:
        if info.share:
            return Finding("share", f"“{info.name}”是比重，应在 0 到 100 之间，实际为 {_number(value)}%", error=True)
        return Finding("percent", f"百分比 {_number(value)}% 超出 0 至 100，请核实")
    return None


def quiet_range(info: IndicatorInfo, limits: ImportLimits) -> tuple[float, float]:
    """The values `check_value` finds nothing in for this indicator: a million-row import calls it for the others only.

    Kept beside `check_value`, which it mirrors; a test holds the two together.
    """
    if info.kind == "growth":
        return limits.growth_min, limits.growth_max
    if info.measure == PERCENT:
        return 0.0, 100.0
    return -math.inf, math.inf


def _position(period: str) -> tuple[str, int] | None:
    """('month', y*12+m) or ('quarter', y*4+q); None for a year."""
    if len(period) != 7:
        return None
    year = int(period[:4])
    if period[5] == "Q":
        return "quarter", year * 4 + int(period[6])
    return "month", year * 12 + int(period[5:])


def check_series(
    rows: Iterable[Sequence[Any]], indicators: dict[str, IndicatorInfo], limits: ImportLimits
) -> Iterator[tuple[SeriesRow, Finding]]:
    """Findings for imported figures against the figure before them (month to month, quarter to quarter).

    `rows` are `SeriesRow`s or plain tuples of the same fields, ordered by indicator, unit and period.
    The loop runs once per figure of a million-row import: it stays lean on purpose.
    """
    series: tuple[str, str] | None = None
    previous: dict[str, tuple[int, Sequence[Any]]] = {}
    positions: dict[str, tuple[str, int] | None] = {}
    info: IndicatorInfo | None = None
    running = False
    factor = limits.jump_factor
    for row in rows:
        indicator, unit, period = row[0], row[1], row[2]
        if (indicator, unit) != series:
            series, previous = (indicator, unit), {}
            info = indicators.get(indicator)
            running = info is not None and info.running_total
        if info is None or info.kind == "growth":
            continue  # growth rates are checked one by one (check_value), not against each other
        if period in positions:
            position = positions[period]
        else:
            position = positions[period] = _position(period)
        if position is None:
            continue
        cadence, index = position
        before = previous.get(cadence)
        if before is not None and before[1][2] == period:
            continue  # a repeated key: reported as an error elsewhere
        previous[cadence] = (index, row)
        if before is None or row[4] < 0:
            continue
        value, before_value = row[3], before[1][3]
        if not (running and value < before_value - 1e-9) and not (
                index - before[0] == 1 and value > 0 and before_value > 0
                and (value > before_value * factor or value * factor < before_value)):
            continue  # the common case, decided without building anything
        finding = _compare(info, SeriesRow(*before[1]), before[0], SeriesRow(*row), index, cadence, limits)
        if finding is not None:
            yield SeriesRow(*row), finding


def check_candidates(
    candidates: Iterable[Sequence[Any]], indicators: dict[str, IndicatorInfo], limits: ImportLimits
) -> Iterator[tuple[SeriesRow, Finding]]:
    """`check_series`' findings from the figures it would judge, each with the figure before it.

    `candidates` are `SeriesFigures.candidates`: a figure's six `SeriesRow` fields, then the
    previous figure's period, value, source and row, then both positions (year*12+month or
    year*4+quarter). The judgement and its wording are `check_series`' own (`_compare`).
    """
    for candidate in candidates:
        indicator, unit, period = candidate[0], candidate[1], candidate[2]
        info = indicators.get(indicator)
        if info is None or info.kind == "growth":
            continue
        row = SeriesRow(*candidate[:6])
        before = SeriesRow(indicator, unit, candidate[6], candidate[7], candidate[8], candidate[9])
        cadence = "quarter" if period[5] == "Q" else "month"
        finding = _compare(info, before, candidate[11], row, candidate[10], cadence, limits)
        if finding is not None:
            yield row, finding


class SeriesFigures:
    """This import's figures by series, kept for the series checks: `check_series`' walk without the database's sort.

    `add` takes each staged figure as it is read (20 bytes a figure, in arrays: a million-row
    import, the most DUBAN_IMPORT_MAX_ROWS allows by default, keeps 20 MB); `candidates` then
    merges each series with its stored figures (`ObservationStage.stored_series`), walks it in
    period order as `check_series` does and yields the figures to judge (`check_candidates`).
    Sorting a million staged rows in the database and fetching them back cost several times
    more than this (the import's largest cost before).
    """

    def __init__(self, indicators: Mapping[str, IndicatorInfo], limits: ImportLimits) -> None:
        # The indicators whose series are walked (all but growth rates): True for a running total.
        self.running = {code: info.running_total for code, info in indicators.items() if info.kind != "growth"}
        self.factor = limits.jump_factor
        # (indicator, unit) -> period ids, values, source << 32 | row; () for a series not walked
        self._series: dict[tuple[str, str], tuple[array[int], array[float], array[int]] | tuple[()]] = {}
        self._period_ids: dict[str, int] = {}
        self._periods: list[str] = []
        self._positions: dict[str, tuple[bool, int]] = {}

    def add(self, indicator: str, unit: str, period: str, value: float, source: int, row: int) -> None:
        """One staged figure; a growth rate (checked one by one) or a year's figure is not compared."""
        series = self._series.get((indicator, unit))
        if series is None:
            series = self._series[(indicator, unit)] = (
                (array("l"), array("d"), array("q")) if indicator in self.running else ())
        period_id = self._period_ids.get(period)
        if period_id is None:
            period_id = self._period_ids[period] = len(self._periods) if len(period) == 7 else -1
            if period_id >= 0:
                self._periods.append(period)
        if series and period_id >= 0:
            series[0].append(period_id)
            series[1].append(value)
            series[2].append(source << 32 | row)

    def candidates(self, stored: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
        """The figures `check_series` would judge, in its order (indicator, unit, period, source, row).

        `stored` is (indicator, unit, period, value) of the stored figures the import does not
        replace, those of a series together. Each candidate is the figure's six `SeriesRow` fields,
        the previous figure's period, value, source and row, then both positions (`check_candidates`).
        """
        found: list[tuple[Any, ...]] = []
        for key, rows in groupby(stored, key=itemgetter(0, 1)):
            staged = self._series.pop(key, None)
            if staged:
                self._walk(key, staged, [(row[2], -1, 0, row[3]) for row in rows if len(row[2]) == 7], found)
        for key, staged in self._series.items():
            if staged:
                self._walk(key, staged, [], found)
        self._series.clear()
        found.sort(key=itemgetter(0, 1, 2, 4, 5))
        return found

    def _walk(self, key: tuple[str, str], staged: tuple[array[int], array[float], array[int]],
              figures: list[tuple[str, int, int, float]], found: list[tuple[Any, ...]]) -> None:
        indicator, unit = key
        periods = self._periods
        figures += [(periods[period_id], where >> 32, where & 0xFFFFFFFF, value)
                    for period_id, value, where in zip(*staged, strict=True)]
        figures.sort()  # by period, then source (stored first) and row: no series repeats a period
        running, factor, positions = self.running[indicator], self.factor, self._positions
        previous: dict[bool, tuple[int, str, float, int, int]] = {}
        for period, source, row, value in figures:
            position = positions.get(period)
            if position is None:
                position = positions[period] = _cadence_position(period)
            quarterly, index = position
            before = previous.get(quarterly)
            if before is not None and before[1] == period:
                continue  # a repeated key: reported as an error elsewhere
            previous[quarterly] = (index, period, value, source, row)
            if before is None or source < 0:
                continue
            before_index, before_period, before_value, before_source, before_row = before
            if (running and value < before_value - 1e-9) or (
                    index - before_index == 1 and value > 0 and before_value > 0
                    and (value > before_value * factor or value * factor < before_value)):
                found.append((indicator, unit, period, value, source, row,
                              before_period, before_value, before_source, before_row, index, before_index))


def _cadence_position(period: str) -> tuple[bool, int]:
    """(quarterly, year*4+quarter) or (monthly, year*12+month) for 'YYYY-Qn' or 'YYYY-MM'."""
    cadence, index = _position(period) or ("month", 0)
    return cadence == "quarter", index


def _compare(info: IndicatorInfo, before: SeriesRow, before_index: int, row: SeriesRow, index: int, cadence: str,
             limits: ImportLimits) -> Finding | None:
    same_year = before.period[:4] == row.period[:4]
    stored = "（已入库）" if before.source < 0 else ""
    what = f"{period_label(before.period)}{stored}的 {_number(before.value)}"
    if info.running_total and (same_year or info.reported_as == "to_date") and row.value < before.value - 1e-9:
        basis = "累计至今数" if info.reported_as == "to_date" else "本年累计数"
        return Finding("shrink", f"{basis} {_number(row.value)} 小于{what}：累计数不应下降，请核实是否误填了当月值"
                                 "（如为当月值，请将指标的报送口径改为“当月值”）")
    if info.kind == "growth" or index - before_index != 1 or (info.running_total and not same_year):
        return None
    if before.value <= 0 or row.value <= 0:
        return None
    ratio = row.value / before.value
    previous = "上月" if cadence == "month" else "上季度"
    if ratio > limits.jump_factor:
        return Finding("jump", f"{_number(row.value)} 是{previous}（{what}）的 {ratio:,.1f} 倍，超过 "
                               f"{_number(limits.jump_factor)} 倍：请核实计量单位（如万元与亿元）或是否多填了数位")
    if ratio < 1 / limits.jump_factor:
        return Finding("jump", f"{_number(row.value)} 不足{previous}（{what}）的 1/{_number(limits.jump_factor)}："
                               "请核实计量单位（如万元与亿元）或是否少填了数位")
    return None
