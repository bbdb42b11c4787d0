"""Cell formats from docs/data.md: the spellings officials use and what they are stored as."""

import datetime as dt

import pytest

from duban.store.importing.values import (
    CellError,
    PercentCell,
    parse_date,
    parse_email_list,
    parse_month,
    parse_number,
    parse_period,
    parse_target_scope,
)


@pytest.mark.parametrize(("written", "period"), [
    ("2023-06", "2023-06"), ("2023-6", "2023-06"), ("2023/6", "2023-06"), ("2023.6", "2023-06"),
    ("2023年6月", "2023-06"), ("2023年6月份", "2023-06"), ("2023/6/1", "2023-06"), (dt.datetime(2023, 6, 1), "2023-06"),
    ("2023-Q2", "2023-Q2"), ("2023Q2", "2023-Q2"), ("2023年第2季度", "2023-Q2"), ("2023年二季度", "2023-Q2"),
    ("2023", "2023"), ("2023年", "2023"), (2023, "2023"),
])
def test_periods_are_normalised_to_month_quarter_or_year(written, period):
    assert parse_period(written) == period


@pytest.mark.parametrize("written", ["2023-13", "2023-Q5", "2023H1", "23-06", "1999-06", "六月"])
def test_impossible_or_unknown_periods_are_errors(written):
    with pytest.raises(CellError):
        parse_period(written)


def test_project_investment_periods_must_be_months():
    assert parse_month("2023年6月") == "2023-06"
    with pytest.raises(CellError, match="月份格式不正确"):
        parse_month("2023-Q2")


@pytest.mark.parametrize(("written", "parsed"), [
    ("1,234.5", (1234.5, False)), ("66.5%", (66.5, True)), ("66.5％", (66.5, True)), (" -3 ", (-3.0, False)),
    (12, (12.0, False)), (PercentCell(0.665 * 100), (66.5, True)), ("１２", (12.0, False)),
])
def test_numbers_accept_thousands_separators_and_percent_signs(written, parsed):
    assert parse_number(written) == parsed


def test_targets_are_for_a_year_or_the_programme_end():
    assert parse_target_scope("2023", "final") == "2023"
    assert parse_target_scope(2023.0, "final") == "2023"
    assert parse_target_scope("期末", "final") == parse_target_scope("FINAL", "final") == "final"
    with pytest.raises(CellError):
        parse_target_scope("2027目标", "final")


def test_dates_accept_iso_slashes_chinese_and_date_cells():
    assert parse_date("2023/6/30") == parse_date("2023年6月30日") == parse_date(dt.datetime(2023, 6, 30)) \
        == dt.date(2023, 6, 30)
    with pytest.raises(CellError, match="日期不存在"):
        parse_date("2023-02-30")


def test_email_lists_split_on_either_semicolon_or_comma_and_drop_repeats():
    assert parse_email_list("a@b.cn；c@d.cn, A@b.cn") == ["a@b.cn", "c@d.cn"]
    assert parse_email_list("") == []
    with pytest.raises(CellError):
        parse_email_list("a@b.cn\nBcc: evil@x.cn")
