"""Cadence schedules: every cadence of the two documents, holiday moves, cron, time zones, APScheduler.

Nothing is frozen: schedules are pure, so tests pass datetimes in. Expected holiday moves are checked
against chinese_calendar itself as well as written out.

Sources:
  鹿城 (003): 附件1 item 1 "实行周会商、月调度、季分析、年评估"; 附件2 (一) "专班每两周召集一次会商 … 总牵头人每月召开
  一次调度会议 … 每季度召开一次分析会"; (四) "年底开展综合评估"; 方案 四(四) "建立月度专报和季度通报制度".
  湖州 (000): 四(一) "通过每月调度、双月现场推进、每季召开例会等形式".
"""

from __future__ import annotations

import datetime as dt
import itertools
import pickle
from pathlib import Path

import chinese_calendar
import pytest
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from hypothesis import given, settings
from hypothesis import strategies as st

from duban.engine.calendar import WorkingCalendar
from duban.engine.schedule import SHANGHAI, ScheduleError, ScheduleTrigger, parse_schedule

UTC = dt.UTC
CALENDAR = WorkingCalendar.load(None)


def at(text: str) -> dt.datetime:
    """An Asia/Shanghai wall-clock instant, e.g. at("2023-10-07 09:00")."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def fires(text: str, start: str, end: str, **options: object) -> list[str]:
    schedule = parse_schedule(text, CALENDAR, **options)  # type: ignore[arg-type]
    return [t.strftime("%Y-%m-%d %H:%M") for t in schedule.fire_times(at(start), at(end))]


def next_fire(text: str, after: dt.datetime, **options: object) -> dt.datetime:
    return parse_schedule(text, CALENDAR, **options).next_fire_after(after)  # type: ignore[arg-type]


def shifted_per_chinese_calendar(day: dt.date) -> dt.date:
    while not chinese_calendar.is_workday(day):
        day += dt.timedelta(days=1)
    return day


def first_working_day_per_chinese_calendar(year: int, month: int) -> dt.date:
    return shifted_per_chinese_calendar(dt.date(year, month, 1))


def dates(fire_times: list[str]) -> list[dt.date]:
    return [dt.date.fromisoformat(t[:10]) for t in fire_times]


# -- 鹿城: 周会商, 每两周会商 -------------------------------------------------------------------------------


def test_lucheng_weekly_consultation_moves_the_national_day_monday_onto_the_tiaoxiu_saturday() -> None:
    assert fires("每周一 09:00", "2023-09-18", "2023-10-17") == [
        "2023-09-18 09:00",
        "2023-09-25 09:00",
        "2023-10-07 09:00",  # Monday Oct 2 is a holiday; Saturday Oct 7 is the next working day
        "2023-10-09 09:00",
        "2023-10-16 09:00",
    ]
    assert shifted_per_chinese_calendar(dt.date(2023, 10, 2)) == dt.date(2023, 10, 7)


def test_lucheng_weekly_reading_on_two_holiday_fridays_fires_once_on_the_saturday_they_both_move_to() -> None:
    assert fires("每周五 16:00", "2023-09-20", "2023-10-20") == [
        "2023-09-22 16:00",
        "2023-10-07 16:00",  # Fri Sep 29 (中秋) and Fri Oct 6 (国庆) both move here: one reading, not two
        "2023-10-13 16:00",
    ]


def test_a_spring_festival_friday_moves_onto_the_tiaoxiu_saturday_2023_01_28() -> None:
    assert not chinese_calendar.is_workday(dt.date(2023, 1, 27))
    assert next_fire("每周五 16:00", at("2023-01-21 00:00")) == at("2023-01-28 16:00")


def test_lucheng_consultation_every_two_weeks_keeps_its_rhythm_across_new_year_2024() -> None:
    fire_times = fires("每两周周一 09:00", "2023-12-01", "2024-02-01")
    assert fire_times == [
        "2023-12-04 09:00",
        "2023-12-18 09:00",
        "2024-01-02 09:00",  # Monday Jan 1 is New Year's Day
        "2024-01-15 09:00",
        "2024-01-29 09:00",
    ]


def test_every_two_weeks_counts_from_the_anchor_not_iso_week_parity_across_the_53_week_year_2026() -> None:
    fire_days = dates(fires("每两周周一 09:00", "2026-11-20", "2027-02-01"))
    assert [(b - a).days for a, b in itertools.pairwise(fire_days)] == [14, 14, 14, 14]
    iso_weeks = [d.isocalendar().week for d in fire_days]
    assert iso_weeks == [49, 51, 53, 2, 4]  # ISO parity (odd weeks) would have fired on week 1 too


def test_the_anchor_of_every_two_weeks_picks_the_other_mondays() -> None:
    expected = ["2023-12-11 09:00", "2023-12-25 09:00", "2024-01-08 09:00"]
    assert fires("每两周周一 (起算 2023-01-09)", "2023-12-01", "2024-01-20") == expected
    assert fires("每两周周一", "2023-12-01", "2024-01-20", anchor=dt.date(2023, 1, 9)) == expected
    # an inline anchor wins over the rule file's default
    assert fires("每两周周一（起算 2023-01-09）", "2023-12-01", "2024-01-20", anchor=dt.date(2023, 1, 2)) == expected


@pytest.mark.parametrize("text", ["每2周周一", "双周周一", "隔周周一", "每两周星期一", "每两个星期一"])
def test_every_other_week_can_be_written_several_ways(text: str) -> None:
    assert fires(text, "2023-12-01", "2024-01-20") == fires("每两周周一 09:00", "2023-12-01", "2024-01-20")


# -- 鹿城: 月调度, 季分析, 年评估, 月度专报, 季度通报 --------------------------------------------------------------


def test_lucheng_monthly_dispatch_meets_on_each_months_first_working_day_in_2023() -> None:
    fire_days = dates(fires("每月第一个工作日 09:00", "2023-01-01", "2024-01-01"))
    assert fire_days == [first_working_day_per_chinese_calendar(2023, m) for m in range(1, 13)]
    assert fire_days[0] == dt.date(2023, 1, 3)  # Jan 2 in lieu of New Year's Day
    assert fire_days[4] == dt.date(2023, 5, 4)  # May 1–3 off
    assert fire_days[9] == dt.date(2023, 10, 7)  # a Saturday: 调休 working day


def test_lucheng_quarterly_analysis_meets_on_each_quarters_first_working_day() -> None:
    assert fires("每季度第一个工作日", "2023-01-01", "2024-01-01") == [
        "2023-01-03 09:00",
        "2023-04-03 09:00",
        "2023-07-03 09:00",
        "2023-10-07 09:00",
    ]
    assert fires("每季度首月第一个工作日", "2023-01-01", "2024-01-01") == fires(
        "每季度第一个工作日", "2023-01-01", "2024-01-01"
    )


def test_lucheng_annual_assessment_is_on_the_last_working_day_of_december() -> None:
    fire_days = dates(fires("每年12月最后一个工作日", "2023-01-01", "2027-01-01"))
    assert fire_days == [dt.date(2023, 12, 29), dt.date(2024, 12, 31), dt.date(2025, 12, 31), dt.date(2026, 12, 31)]
    for day in fire_days:
        after = [day + dt.timedelta(days=i) for i in range(1, 32 - day.day)]
        assert chinese_calendar.is_workday(day) and not any(chinese_calendar.is_workday(d) for d in after)


def test_an_annual_date_fires_once_a_year() -> None:
    assert fires("每年1月15日", "2023-01-01", "2026-01-01") == [
        "2023-01-16 09:00",  # Sunday
        "2024-01-15 09:00",
        "2025-01-15 09:00",
    ]


def test_lucheng_monthly_report_on_the_10th_moves_off_weekends_and_holidays() -> None:
    fire_days = dates(fires("每月10日 09:00", "2023-01-01", "2025-01-01"))
    expected = [shifted_per_chinese_calendar(dt.date(y, m, 10)) for y in (2023, 2024) for m in range(1, 13)]
    assert fire_days == expected
    assert dt.date(2024, 2, 18) in fire_days  # Feb 10 2024 is Spring Festival; Sunday Feb 18 a working day
    assert dt.date(2023, 6, 12) in fire_days  # Saturday Jun 10 → Monday


def test_lucheng_quarterly_bulletin_on_the_15th_of_the_quarters_first_month() -> None:
    assert fires("每季度首月15日", "2023-01-01", "2024-01-01") == [
        "2023-01-16 09:00",
        "2023-04-17 09:00",
        "2023-07-17 09:00",
        "2023-10-16 09:00",
    ]
    assert [shifted_per_chinese_calendar(dt.date(2023, m, 15)) for m in (1, 4, 7, 10)] == dates(
        fires("每季度首月15日", "2023-01-01", "2024-01-01")
    )


# -- 湖州: 每月调度, 双月现场推进, 每季召开例会 ---------------------------------------------------------------------


def test_huzhou_monthly_dispatch_crosses_the_year_boundary() -> None:
    assert fires("每月第一个工作日", "2024-11-01", "2025-03-01") == [
        "2024-11-01 09:00",
        "2024-12-02 09:00",
        "2025-01-02 09:00",
        "2025-02-05 09:00",  # Spring Festival 2025: Jan 28 – Feb 4 off
    ]
    assert first_working_day_per_chinese_calendar(2025, 2) == dt.date(2025, 2, 5)


def test_huzhou_bimonthly_site_visits_default_to_the_even_months() -> None:
    fire_days = dates(fires("双月第一个工作日", "2024-01-01", "2025-01-01"))
    assert fire_days == [first_working_day_per_chinese_calendar(2024, m) for m in (2, 4, 6, 8, 10, 12)]
    assert fires("每两月第一个工作日", "2024-01-01", "2025-01-01") == fires("双月第一个工作日", "2024-01-01", "2025-01-01")


def test_huzhou_bimonthly_site_visits_can_be_anchored_on_the_odd_months() -> None:
    expected = [first_working_day_per_chinese_calendar(2024, m) for m in (1, 3, 5, 7, 9, 11)]
    assert dates(fires("每两月第一个工作日 (起算 2023-01)", "2024-01-01", "2025-01-01")) == expected
    assert dates(fires("每两月第一个工作日", "2024-01-01", "2025-01-01", anchor=dt.date(2023, 1, 2))) == expected
    assert dates(fires("单月第一个工作日", "2024-01-01", "2025-01-01")) == expected


def test_huzhou_quarterly_meeting_on_a_tiaoxiu_sunday_stays_on_that_sunday() -> None:
    assert fires("每季度末月25日 15:00", "2023-01-01", "2024-01-01") == [
        "2023-03-27 15:00",  # Saturday → Monday
        "2023-06-25 15:00",  # Sunday, but a 调休 working day (Dragon Boat Festival)
        "2023-09-25 15:00",
        "2023-12-25 15:00",
    ]
    assert chinese_calendar.is_workday(dt.date(2023, 6, 25))


# -- more holiday moves and month ends ----------------------------------------------------------------------


def test_a_fire_time_on_a_spring_festival_saturday_moves_onto_the_tiaoxiu_sunday_2024_02_04() -> None:
    assert not chinese_calendar.is_workday(dt.date(2024, 2, 3))
    assert next_fire("每月3日", at("2024-01-10 00:00")) == at("2024-02-04 09:00")


def test_the_third_working_day_of_october_2025_is_the_tiaoxiu_saturday() -> None:
    assert next_fire("每月第三个工作日", at("2025-09-30 00:00")) == at("2025-10-11 09:00")


def test_the_last_working_day_of_the_month_crosses_from_december_into_january() -> None:
    assert fires("每月最后一个工作日", "2023-12-01", "2024-03-01") == [
        "2023-12-29 09:00",
        "2024-01-31 09:00",
        "2024-02-29 09:00",  # leap day
    ]


def test_month_end_phrases_respect_the_leap_day_and_short_months() -> None:
    assert fires("每月最后一天 (不顺延)", "2024-02-01", "2024-05-01") == [
        "2024-02-29 09:00",
        "2024-03-31 09:00",
        "2024-04-30 09:00",
    ]
    assert next_fire("每月31日", at("2024-03-30 00:00")) == at("2024-04-01 09:00")  # Sunday Mar 31 → Monday
    assert next_fire("每月31日", at("2024-04-02 00:00")) == at("2024-04-30 09:00")  # April has no 31st
    assert fires("每年2月29日", "2024-01-01", "2026-01-01") == ["2024-02-29 09:00", "2025-02-28 09:00"]


def test_not_shifting_keeps_a_holiday_fire_time_where_it_is() -> None:
    assert next_fire("每月10日 (不顺延)", at("2024-02-01 00:00")) == at("2024-02-10 09:00")
    assert next_fire("每月10日", at("2024-02-01 00:00"), shift_to_working_day=False) == at("2024-02-10 09:00")


def test_a_2027_fire_time_falls_back_to_weekends_and_records_the_year_without_raising() -> None:
    calendar = WorkingCalendar.load(None)
    schedule = parse_schedule("每月第一个工作日", calendar)
    assert schedule.next_fire_after(at("2026-12-31 12:00")) == at("2027-01-01 09:00")  # Friday: the guess
    assert calendar.uncovered_years() == {2027}


def test_an_override_file_for_2027_moves_the_fire_time(tmp_path: Path) -> None:
    overrides = tmp_path / "calendar-overrides.yaml"
    overrides.write_text("2027:\n  holidays:\n    - 2027-01-01\n", encoding="utf-8")
    calendar = WorkingCalendar.load(overrides)
    schedule = parse_schedule("每月第一个工作日", calendar)
    assert schedule.next_fire_after(at("2026-12-31 12:00")) == at("2027-01-04 09:00")
    assert calendar.uncovered_years() == set()


# -- time zones and instants ---------------------------------------------------------------------------------


def test_on_a_utc_server_the_nine_oclock_fire_is_01_00_utc() -> None:
    after = dt.datetime(2023, 10, 8, 20, 0, tzinfo=UTC)  # already Monday 04:00 in Shanghai
    fire = next_fire("每周一 09:00", after)
    assert fire == dt.datetime(2023, 10, 9, 1, 0, tzinfo=UTC)
    assert fire.tzinfo == SHANGHAI and fire.hour == 9


def test_next_fire_is_strictly_after_the_given_instant() -> None:
    fire = at("2023-10-09 09:00")
    assert next_fire("每周一 09:00", fire) == at("2023-10-16 09:00")
    assert next_fire("每周一 09:00", fire - dt.timedelta(microseconds=1)) == fire


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire("每周一", dt.datetime(2023, 10, 9))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("每周一", "09:00"),
        ("每周一 9点", "09:00"),
        ("每周一 9点半", "09:30"),
        ("每周一 下午4点", "16:00"),
        ("每周一 下午四点三十分", "16:30"),
        ("每周一 09：30", "09:30"),
        ("每周一 ０９:３０", "09:30"),
    ],
)
def test_the_default_time_is_nine_and_times_can_be_written_in_chinese(text: str, expected: str) -> None:
    assert next_fire(text, at("2023-10-08 00:00")).strftime("%H:%M") == expected


@pytest.mark.parametrize(
    ("chinese", "arabic"),
    [
        ("每月第二个工作日", "每月第2个工作日"),
        ("每月十日", "每月10日"),
        ("每月十号", "每月10日"),
        ("每年十二月最后一个工作日", "每年12月最后一个工作日"),
        ("每季度首月十五日", "每季度首月15日"),
        ("每周日", "每周7"),
        ("每周天", "每星期日"),
        ("每季度第三个月二十五日", "每季度末月25日"),
    ],
)
def test_chinese_and_arabic_digits_mean_the_same(chinese: str, arabic: str) -> None:
    assert fires(chinese, "2023-01-01", "2024-01-01") == fires(arabic, "2023-01-01", "2024-01-01")


def test_every_working_day_includes_tiaoxiu_weekends_and_skips_holidays() -> None:
    fire_days = dates(fires("每个工作日 16:00", "2023-09-27", "2023-10-10"))
    assert fire_days == [
        dt.date(2023, 9, 27), dt.date(2023, 9, 28), dt.date(2023, 10, 7), dt.date(2023, 10, 8), dt.date(2023, 10, 9),
    ]


# -- cron --------------------------------------------------------------------------------------------------


def test_cron_day_of_week_1_is_monday_unlike_apscheduler_from_crontab() -> None:
    assert fires("0 9 * * 1", "2023-09-26", "2023-10-10") == ["2023-10-02 09:00", "2023-10-09 09:00"]
    apscheduler_reading = CronTrigger.from_crontab("0 9 * * 1", timezone=SHANGHAI)
    assert apscheduler_reading.get_next_fire_time(None, at("2023-10-09 10:00")).weekday() == 1  # Tuesday


@pytest.mark.parametrize("text", ["0 9 * * 0", "0 9 * * 7", "0 9 * * SUN", "0 9 * * sun"])
def test_cron_day_of_week_0_and_7_are_sunday(text: str) -> None:
    assert next_fire(text, at("2023-10-09 00:00")) == at("2023-10-15 09:00")


def test_cron_does_not_move_off_holidays_unless_asked() -> None:
    assert next_fire("0 9 * * 1", at("2023-09-26 00:00")) == at("2023-10-02 09:00")
    assert next_fire("0 9 * * 1 (遇节假日顺延)", at("2023-09-26 00:00")) == at("2023-10-07 09:00")
    assert next_fire("0 9 * * 1", at("2023-09-26 00:00"), shift_to_working_day=True) == at("2023-10-07 09:00")


def test_cron_with_both_day_fields_restricted_fires_on_either_as_in_standard_cron() -> None:
    assert fires("30 8 1,15 * 5", "2023-09-28", "2023-10-16") == [
        "2023-09-29 08:30",
        "2023-10-01 08:30",
        "2023-10-06 08:30",
        "2023-10-13 08:30",
        "2023-10-15 08:30",
    ]


def test_cron_ranges_steps_and_names() -> None:
    assert len(fires("*/15 9-10 * * MON-FRI", "2023-10-09", "2023-10-10")) == 8
    assert fires("0 9 1 JAN,jul *", "2023-01-01", "2024-01-01") == ["2023-01-01 09:00", "2023-07-01 09:00"]
    assert fires("0 10/6 * * *", "2023-10-09", "2023-10-10") == ["2023-10-09 10:00", "2023-10-09 16:00", "2023-10-09 22:00"]


def test_shifted_cron_with_several_times_a_day_fires_each_time_once() -> None:
    assert fires("0 9,14 * * * (顺延)", "2023-10-13", "2023-10-17") == [
        "2023-10-13 09:00",
        "2023-10-13 14:00",
        "2023-10-16 09:00",  # Saturday's and Sunday's fires land here too: once each
        "2023-10-16 14:00",
    ]


# -- errors ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("每周八", "无法识别的周期"),
        ("", "时间安排为空"),
        ("每季度15日", "请写成 每季度首月15日 或 每季度末月15日"),
        ("每月第十一个工作日", "第几个工作日“十一”应在 1–10 之间"),
        ("每月10日 25:00", "小时应在 0–23 之间"),
        ("每年2月30日", "2月没有30日"),
        ("每年13月1日", "月份“13”应在 1–12 之间"),
        ("每月", "缺少日期"),
        ("每月首月10日", "“首月”只能用于 每季度 或 每半年"),
        ("每周一（每天）", "无法识别的选项“每天”"),
        ("每周一 (起算 2023-01-09)", "不需要起算日"),
        ("双月第一个工作日 (起算 2023-01)", "不能再写起算日"),
        ("每季度第一个工作日 (起算 2023-02)", "起算日只用于"),
        ("每两周周一 (起算 2023-02-30)", "不是有效日期"),
        ("每周一 (遇节假日顺延", "括号不成对"),
        ("0 9 30 2 *", "永远不会触发"),
        ("0 9 * *", "应有 5 个字段"),
        ("0 9 * * 1 (起算 2023-01-02)", "cron 表达式不使用起算日"),
        ("0 9 * * 8", "第5个字段（星期）“8”超出范围 0–7"),
        ("0 9 5-1 * *", "区间起点大于终点"),
    ],
)
def test_bad_schedules_are_explained_in_chinese(text: str, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(text, CALENDAR)
    assert message in caught.value.message
    assert caught.value.text == text


def test_a_bad_cron_field_points_at_its_column() -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule("0 25 * * *", CALENDAR)
    assert caught.value.message == "cron 第2个字段（小时）“25”超出范围 0–23"
    assert caught.value.column == 3


# -- the search is right wherever it starts ------------------------------------------------------------------

INSTANTS = st.datetimes(min_value=dt.datetime(2023, 1, 1), max_value=dt.datetime(2026, 9, 30)).map(
    lambda naive: naive.replace(tzinfo=UTC)
)


def brute_force_next(after: dt.datetime, nominal_days: list[dt.date], time_of_day: dt.time) -> dt.datetime:
    candidates = [
        dt.datetime.combine(shifted_per_chinese_calendar(day), time_of_day, tzinfo=SHANGHAI) for day in nominal_days
    ]
    return min(c for c in candidates if c > after)


def around(after: dt.datetime) -> list[dt.date]:
    start = after.astimezone(SHANGHAI).date() - dt.timedelta(days=45)
    return [start + dt.timedelta(days=i) for i in range(45 + 60)]  # stays within chinese_calendar's 2026


@settings(max_examples=150, deadline=None)
@given(INSTANTS)
def test_weekly_next_fire_matches_a_brute_force_over_chinese_calendar(after: dt.datetime) -> None:
    fridays = [d for d in around(after) if d.weekday() == 4]
    assert next_fire("每周五 16:00", after) == brute_force_next(after, fridays, dt.time(16, 0))


@settings(max_examples=150, deadline=None)
@given(INSTANTS)
def test_monthly_next_fire_matches_a_brute_force_over_chinese_calendar(after: dt.datetime) -> None:
    tenths = [d for d in around(after) if d.day == 10]
    assert next_fire("每月10日", after) == brute_force_next(after, tenths, dt.time(9, 0))
    firsts = [first_working_day_per_chinese_calendar(d.year, d.month) for d in around(after) if d.day == 1]
    assert next_fire("每月第一个工作日", after) == brute_force_next(after, firsts, dt.time(9, 0))


# -- APScheduler 3.11 ----------------------------------------------------------------------------------------


def test_the_trigger_gives_the_first_fire_at_or_after_now_and_then_strictly_after_the_previous() -> None:
    trigger = ScheduleTrigger(parse_schedule("每周一 09:00", CALENDAR))
    now = at("2023-10-09 09:00")
    assert trigger.get_next_fire_time(None, now) == now
    assert trigger.get_next_fire_time(now, now) == at("2023-10-16 09:00")
    # misfire catch-up: APScheduler asks again from each previous fire time, independent of now
    assert trigger.get_next_fire_time(at("2023-09-25 09:00"), now) == at("2023-10-07 09:00")


def test_the_trigger_stops_after_its_end() -> None:
    trigger = ScheduleTrigger(parse_schedule("每周一 09:00", CALENDAR), end=at("2023-10-10 00:00"))
    assert trigger.get_next_fire_time(None, at("2023-10-08 00:00")) == at("2023-10-09 09:00")
    assert trigger.get_next_fire_time(at("2023-10-09 09:00"), at("2023-10-09 09:00")) is None


def test_the_trigger_pickles_with_its_calendar_overrides(tmp_path: Path) -> None:
    overrides = tmp_path / "calendar-overrides.yaml"
    overrides.write_text("2027:\n  holidays:\n    - 2027-01-01\n", encoding="utf-8")
    trigger = ScheduleTrigger(parse_schedule("每两月第一个工作日 (起算 2023-01)", WorkingCalendar.load(overrides)))
    restored = pickle.loads(pickle.dumps(trigger))
    assert str(restored) == "duban[每两月第一个工作日 (起算 2023-01)]"
    assert restored.get_next_fire_time(None, at("2026-12-31 12:00")) == at("2027-01-04 09:00")


def test_a_real_scheduler_with_a_sqlite_job_store_restores_the_trigger(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    schedule = parse_schedule("每两周周一 09:00", CALENDAR)
    first = BackgroundScheduler(jobstores={"default": SQLAlchemyJobStore(url=url)}, timezone=UTC)
    first.start(paused=True)
    before = dt.datetime.now(UTC)
    first.add_job("builtins:print", trigger=ScheduleTrigger(schedule), id="biweekly")
    after = dt.datetime.now(UTC)
    expected = {schedule.next_fire_after(before), schedule.next_fire_after(after)}
    assert first.get_job("biweekly").next_run_time in expected
    first.shutdown(wait=False)

    second = BackgroundScheduler(jobstores={"default": SQLAlchemyJobStore(url=url)}, timezone=UTC)
    second.start(paused=True)
    try:
        restored = second.get_job("biweekly")
        assert isinstance(restored.trigger, ScheduleTrigger)
        assert restored.next_run_time in expected
        assert restored.trigger.get_next_fire_time(at("2023-12-18 09:00"), at("2023-12-18 09:00")) == at(
            "2024-01-02 09:00"
        )
    finally:
        second.shutdown(wait=False)
