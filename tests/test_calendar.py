"""The working-day calendar: statutory holidays, 调休 weekends, the override file and missing years.

Expected dates are written out literally and also checked against chinese_calendar itself, so a wrong
literal cannot hide behind a wrong implementation.
"""

from __future__ import annotations

import datetime as dt
import pickle
import time
from pathlib import Path

import chinese_calendar
import pytest

from duban.engine.calendar import CalendarError, CalendarFileError, WorkingCalendar

D = dt.date.fromisoformat
SHIPPED_OVERRIDES = Path(__file__).resolve().parents[1] / "rules" / "calendar-overrides.yaml"


def first_working_day_per_chinese_calendar(year: int, month: int) -> dt.date:
    day = dt.date(year, month, 1)
    while not chinese_calendar.is_workday(day):
        day += dt.timedelta(days=1)
    return day


@pytest.fixture
def calendar() -> WorkingCalendar:
    return WorkingCalendar.load(None)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "calendar-overrides.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# -- chinese_calendar years ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "day",
    ["2023-01-28", "2023-01-29", "2023-10-07", "2023-10-08", "2024-02-04", "2024-02-18", "2025-10-11"],
)
def test_a_tiaoxiu_weekend_working_day_counts_as_a_working_day(calendar: WorkingCalendar, day: str) -> None:
    assert D(day).weekday() >= 5
    assert chinese_calendar.is_workday(D(day))
    assert calendar.is_working_day(D(day))


@pytest.mark.parametrize("day", ["2023-01-02", "2023-10-02", "2023-10-06", "2024-02-12", "2025-10-08"])
def test_a_statutory_holiday_on_a_weekday_is_not_a_working_day(calendar: WorkingCalendar, day: str) -> None:
    assert D(day).weekday() < 5
    assert not calendar.is_working_day(D(day))


@pytest.mark.parametrize(
    ("year", "month", "expected"),
    [
        (2023, 10, "2023-10-07"),  # Oct 1–6 off; Saturday Oct 7 is a 调休 working day
        (2023, 5, "2023-05-04"),  # May 1–3 off
        (2023, 1, "2023-01-03"),  # Jan 1 Sunday, Jan 2 in lieu
        (2024, 2, "2024-02-01"),  # Spring Festival starts Feb 10
        (2024, 1, "2024-01-02"),
        (2025, 10, "2025-10-09"),  # Oct 1–8 off
    ],
)
def test_the_first_working_day_of_a_month_follows_the_state_council_schedule(
    calendar: WorkingCalendar, year: int, month: int, expected: str
) -> None:
    assert first_working_day_per_chinese_calendar(year, month) == D(expected)
    assert calendar.nth_working_day_of_month(year, month, 1) == D(expected)


def test_the_third_working_day_of_october_2025_is_the_tiaoxiu_saturday(calendar: WorkingCalendar) -> None:
    assert calendar.nth_working_day_of_month(2025, 10, 3) == D("2025-10-11")


def test_the_last_working_day_of_december_2023_is_friday_the_29th(calendar: WorkingCalendar) -> None:
    assert chinese_calendar.is_workday(D("2023-12-29"))
    assert not chinese_calendar.is_workday(D("2023-12-30"))
    assert calendar.last_working_day_of_month(2023, 12) == D("2023-12-29")


def test_the_last_working_day_of_february_in_the_leap_year_2024_is_the_29th(calendar: WorkingCalendar) -> None:
    assert calendar.last_working_day_of_month(2024, 2) == D("2024-02-29")


def test_asking_for_more_working_days_than_a_month_has_is_a_chinese_error(calendar: WorkingCalendar) -> None:
    count = len(calendar.working_days_of_month(2023, 10))
    assert count == sum(
        chinese_calendar.is_workday(dt.date(2023, 10, d)) for d in range(1, 32)
    )
    with pytest.raises(CalendarError, match="2023年10月只有"):
        calendar.nth_working_day_of_month(2023, 10, count + 1)


def test_next_working_day_skips_the_national_day_week_onto_the_tiaoxiu_saturday(calendar: WorkingCalendar) -> None:
    assert calendar.next_working_day(D("2023-09-29")) == D("2023-10-07")
    assert calendar.shift_to_working_day(D("2023-10-07")) == D("2023-10-07")
    assert calendar.next_working_day(D("2023-10-07"), include_self=False) == D("2023-10-08")


# -- report due dates ------------------------------------------------------------------------------------


def test_september_2023_figures_are_due_on_tuesday_10_october_2023(calendar: WorkingCalendar) -> None:
    assert chinese_calendar.is_workday(D("2023-10-10"))
    assert calendar.due_date_for_month(2023, 9) == D("2023-10-10")


def test_january_2024_figures_due_during_spring_festival_move_to_the_tiaoxiu_sunday(
    calendar: WorkingCalendar,
) -> None:
    # 10 Feb 2024 is the first day of the Spring Festival break (Feb 10–17); Sunday Feb 18 is a working day.
    assert not chinese_calendar.is_workday(D("2024-02-10"))
    assert chinese_calendar.is_workday(D("2024-02-18"))
    assert calendar.due_date_for_month(2024, 1) == D("2024-02-18")


def test_december_figures_are_due_in_january_of_the_next_year(calendar: WorkingCalendar) -> None:
    assert calendar.due_date_for_month(2023, 12, day=1) == D("2024-01-02")  # Jan 1 2024 is New Year's Day


def test_a_due_day_past_the_end_of_the_month_means_its_last_day(calendar: WorkingCalendar) -> None:
    # January 2024 figures "due on the 30th" of February: Feb 29 2024 (leap year, a Thursday).
    assert calendar.due_date_for_month(2024, 1, day=30) == D("2024-02-29")
    # February 2023 figures due on the 31st of March: Friday Mar 31.
    assert calendar.due_date_for_month(2023, 2, day=31) == D("2023-03-31")


def test_a_due_day_outside_1_to_31_is_rejected_in_chinese(calendar: WorkingCalendar) -> None:
    with pytest.raises(CalendarError, match="报送日应在 1–31 日之间"):
        calendar.due_date_for_month(2023, 1, day=0)


# -- years without data --------------------------------------------------------------------------------


def test_a_2027_date_falls_back_to_weekends_and_is_recorded_without_raising(calendar: WorkingCalendar) -> None:
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_workday(D("2027-01-04"))
    assert calendar.uncovered_years() == set()
    assert calendar.is_working_day(D("2027-01-01"))  # a Friday: the guess, until the admin fills it in
    assert not calendar.is_working_day(D("2027-01-02"))  # Saturday
    assert calendar.uncovered_years() == {2027}
    assert calendar.due_date_for_month(2027, 1) == D("2027-02-10")


def test_the_admin_is_warned_once_per_missing_year(calendar: WorkingCalendar) -> None:
    calendar.is_working_day(D("2027-03-01"))
    calendar.is_working_day(D("2027-06-01"))
    notices = calendar.pop_new_notices()
    assert [n.year for n in notices] == [2027]
    assert notices[0].message == (
        "2027年的法定节假日数据缺失：按周末推算工作日，请在 rules/calendar-overrides.yaml 中补充国务院办公厅通知的安排"
    )
    calendar.is_working_day(D("2027-09-01"))
    assert calendar.pop_new_notices() == []
    assert [n.year for n in calendar.notices] == [2027]


def test_advance_notice_names_the_programme_years_without_data(calendar: WorkingCalendar) -> None:
    assert [n.year for n in calendar.notice_for(range(2023, 2028))] == [2027]
    assert calendar.uncovered_years() == set()  # asking in advance records nothing


# -- the override file -------------------------------------------------------------------------------------

OVERRIDES_2027 = """\
# 国务院办公厅关于2027年部分节假日安排的通知 (example values)
2027:
  holidays:
    - 2027-01-01
    - 2027-02-05..2027-02-11
    - 2026-12-31        # the New Year's break may start in December of the year before
  workdays:
    - 2027-02-14
"""


def test_an_override_file_defining_2027_is_used_and_silences_the_warning(tmp_path: Path) -> None:
    calendar = WorkingCalendar.load(write(tmp_path, OVERRIDES_2027))
    assert not calendar.is_working_day(D("2027-01-01"))
    assert not calendar.is_working_day(D("2027-02-08"))  # Monday inside the range
    assert calendar.is_working_day(D("2027-02-14"))  # 调休 Sunday
    assert calendar.is_working_day(D("2027-02-12"))  # Friday after the range: by weekday
    assert not calendar.is_working_day(D("2027-02-13"))  # Saturday, not listed
    assert calendar.nth_working_day_of_month(2027, 1, 1) == D("2027-01-04")
    assert calendar.uncovered_years() == set()
    assert calendar.pop_new_notices() == []


def test_an_override_date_in_december_of_the_year_before_wins_over_chinese_calendar(tmp_path: Path) -> None:
    assert chinese_calendar.is_workday(D("2026-12-31"))
    calendar = WorkingCalendar.load(write(tmp_path, OVERRIDES_2027))
    assert not calendar.is_working_day(D("2026-12-31"))
    assert calendar.is_working_day(D("2026-12-30"))  # the rest of 2026 still comes from chinese_calendar
    assert not calendar.is_working_day(D("2026-10-01"))


def test_an_override_year_replaces_chinese_calendar_for_that_year(tmp_path: Path) -> None:
    calendar = WorkingCalendar.load(write(tmp_path, "2024:\n  holidays:\n    - 2024-01-01\n"))
    # chinese_calendar has Sunday 2024-02-04 as a working day; the file, which fully defines 2024, does not.
    assert not calendar.is_working_day(D("2024-02-04"))
    assert calendar.is_working_day(D("2024-02-12"))
    assert calendar.is_working_day(D("2023-10-07"))  # 2023 is not in the file: chinese_calendar


def test_a_malformed_override_file_reports_every_problem_at_its_line_and_column(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "2027:\n"
        "  holidays:\n"
        "    - 2027-02-30\n"
        "    - 2027-03-10..2027-03-01\n"
        "  workdays:\n"
        "    - 2027-02-15\n"
        "  holiday:\n"
        "    - 2027-05-01\n"
        "twenty:\n"
        "  holidays: []\n",
    )
    with pytest.raises(CalendarFileError) as caught:
        WorkingCalendar.load(path)
    lines = str(caught.value).splitlines()
    assert lines == [
        f"{path}:3:7: 无法识别的日期“2027-02-30”：应写成 2027-01-01 或区间 2027-02-05..2027-02-11",
        f"{path}:4:7: 区间“2027-03-10..2027-03-01”的起点晚于终点",
        f"{path}:6:7: 2027-02-15 是星期一，本来就是工作日；workdays 只需列出调休上班的周六、周日",
        f"{path}:7:3: 未知的项“holiday”：只能是 holidays（放假日期）或 workdays（调休上班日期）",
        f"{path}:9:1: “twenty”不是年份：应写四位数年份，例如 2027:",
    ]


def test_a_yaml_syntax_error_is_reported_in_chinese_with_its_position(tmp_path: Path) -> None:
    path = write(tmp_path, "2027:\n  holidays: [2027-01-01\n")
    with pytest.raises(CalendarFileError) as caught:
        WorkingCalendar.load(path)
    problem = caught.value.problems[0]
    assert problem.line == 3
    assert "YAML 格式错误" in problem.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2027:\n  holidays:\n    - 2027-01-01..2027-03-31\n", "超过31天"),
        ("2027:\n  holidays:\n    - 2026-05-01\n", "2026-05-01 不属于2027年"),
        ("2027:\n  holidays:\n    - 2027-02-14\n  workdays:\n    - 2027-02-14\n", "同时列在 holidays（第3行）"),
        ("2027: [2027-01-01]\n", "2027年下面应缩进写 holidays"),
        ("- 2027-01-01\n", "文件应按年份书写"),
    ],
)
def test_override_mistakes_are_explained_in_chinese(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(CalendarFileError, match=message):
        WorkingCalendar.load(write(tmp_path, text))


def test_an_override_file_that_blanks_out_most_of_a_year_is_rejected(tmp_path: Path) -> None:
    ranges = "".join(f"    - 2027-{m:02d}-01..2027-{m:02d}-28\n" for m in range(1, 13))
    with pytest.raises(CalendarFileError, match="2027年只有"):
        WorkingCalendar.load(write(tmp_path, "2027:\n  holidays:\n" + ranges))


def test_a_missing_override_file_is_reported_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(CalendarFileError, match="找不到节假日调整文件"):
        WorkingCalendar.load(tmp_path / "absent.yaml")


def test_the_shipped_example_override_file_loads_and_leaves_2027_to_be_filled_in() -> None:
    calendar = WorkingCalendar.load(SHIPPED_OVERRIDES)
    assert calendar.overrides.years == frozenset()
    assert [n.year for n in calendar.notice_for([2026, 2027])] == [2027]
    assert str(SHIPPED_OVERRIDES) in calendar.notice_for([2027])[0].message


def test_the_notice_names_the_override_file_actually_in_use(tmp_path: Path) -> None:
    path = write(tmp_path, "2028:\n  holidays:\n    - 2028-01-03\n")
    calendar = WorkingCalendar.load(path)
    calendar.is_working_day(D("2027-05-05"))
    assert calendar.pop_new_notices()[0].message.startswith(f"2027年的法定节假日数据缺失：按周末推算工作日，请在 {path} 中")


def test_a_calendar_survives_pickling_with_its_overrides(tmp_path: Path) -> None:
    calendar = WorkingCalendar.load(write(tmp_path, OVERRIDES_2027))
    calendar.is_working_day(D("2027-01-01"))
    restored = pickle.loads(pickle.dumps(calendar))
    assert not restored.is_working_day(D("2027-01-01"))
    assert restored.is_working_day(D("2027-02-14"))


def test_lookups_are_cached_fast_enough_for_the_engine(calendar: WorkingCalendar) -> None:
    days = [D("2023-01-01") + dt.timedelta(days=i) for i in range(1461)]
    calendar.is_working_day(days[0])
    started = time.perf_counter()
    for _ in range(50):
        for day in days:
            calendar.is_working_day(day)
    per_lookup = (time.perf_counter() - started) / (50 * len(days))
    assert per_lookup < 20e-6  # measured ~0.6 µs cached; chinese_calendar.is_workday ~16 µs
