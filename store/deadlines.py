"""Task deadlines as the documents write them ("2023年12月底前", "2023全年", "五年内") turned into dates.

The task list's 时间节点 column mixes a deadline phrase with the work due by then
("2023年12月底前，分级分类梯队培育1家领军企业。"). A phrase may therefore be followed by the
description of the work; the phrase alone decides the date. Anything that
is not one of the phrases below is an error: a guessed deadline would send wrong reminders.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re

__all__ = ["DeadlineError", "parse_deadline"]


class DeadlineError(ValueError):
    """The text is not a deadline this parser understands; the message is Chinese and user-facing."""


# A phrase ends the text or is followed by punctuation and the description of the work.
_TAIL = r"(?:[，,；;。：:].*)?"
# Phrases that end decisively ("…底前", "全年", "五年内") may run straight into the work
# ("2023全年配合市人行…", "五年内培训100名…"). "2023年" may not: "2023年6月中旬" must not
# read as "during 2023".
_FREE_TAIL = r"(?:[^\d\s].*)?"
_YEAR = r"(?P<year>(?:19|20)\d{2})"

_FULL_DATE = re.compile(rf"{_YEAR}(?:[-/.](?P<m>\d{{1,2}})[-/.](?P<d>\d{{1,2}})|年(?P<cm>\d{{1,2}})月(?P<cd>\d{{1,2}})日)(?:前|之前)?{_TAIL}")
_MONTH_END = re.compile(rf"{_YEAR}年(?P<month>\d{{1,2}})月(?:底|末)(?:前|之前)?{_FREE_TAIL}")
_YEAR_END = re.compile(rf"{_YEAR}年?(?:底|末|全年)(?:前|之前)?{_FREE_TAIL}")
_DURING_YEAR = re.compile(rf"{_YEAR}年(?:度)?{_TAIL}")
_WITHIN_PROGRAMME = re.compile(rf"(?:五年内|5年内){_FREE_TAIL}")
_WHITESPACE = re.compile(r"\s+")


def parse_deadline(text: str | dt.date | dt.datetime, programme_end: dt.date | None) -> dt.date:
    """The last day by which the work must be done.

    Excel date cells arrive as `date`/`datetime` and are taken as they are. "五年内" means by
    the programme's last day, so it needs `programme_end`.
    """
    if isinstance(text, dt.datetime):
        return text.date()
    if isinstance(text, dt.date):
        return text
    compact = _WHITESPACE.sub("", str(text))
    if not compact:
        raise DeadlineError("时间节点为空")
    if match := _FULL_DATE.fullmatch(compact):
        year = int(match["year"])
        month = int(match["m"] or match["cm"])
        day = int(match["d"] or match["cd"])
        try:
            return dt.date(year, month, day)
        except ValueError:
            raise DeadlineError(f"时间节点中的日期不存在：'{text}'") from None
    if match := _MONTH_END.fullmatch(compact):
        year, month = int(match["year"]), int(match["month"])
        if not 1 <= month <= 12:
            raise DeadlineError(f"时间节点中的月份不存在：'{text}'")
        return dt.date(year, month, calendar.monthrange(year, month)[1])
    if match := _YEAR_END.fullmatch(compact):
        return dt.date(int(match["year"]), 12, 31)
    if match := _DURING_YEAR.fullmatch(compact):
        return dt.date(int(match["year"]), 12, 31)
    if _WITHIN_PROGRAMME.fullmatch(compact):
        if programme_end is None:
            raise DeadlineError("时间节点为“五年内”，但尚未导入方案（programme），无法确定截止日期")
        return programme_end
    raise DeadlineError(
        f"无法识别的时间节点：'{text}'（可写 2023-06-30、2023/6/30、2023年6月30日前、"
        "2023年6月底前、2023年底前、2023全年、2023年、五年内）"
    )
