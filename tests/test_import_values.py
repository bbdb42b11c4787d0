"""Cell formats from docs/data.md: the spellings officials use and what they are stored as."""

import datetime as dt

import pytest

from duban.store.importing.values import (
    CellError,
    PercentCell,
    parse_code,
    parse_date,
    parse_email_list,
    parse_month,
    parse_name,
    parse_number,
    parse_period,
    parse_target_scope,
    parse_text_block,
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


# --- what spreadsheets produce (issue 14) ---------------------------------------------------


@pytest.mark.parametrize(("written", "parsed"), [
    ("(1.5)", (-1.5, False)), ("（1,234.5）", (-1234.5, False)), ("(12%)", (-12.0, True)), ("−3", (-3.0, False)),
])
def test_accounting_negatives_in_brackets_are_negative_numbers(written, parsed):
    assert parse_number(written) == parsed


def test_a_date_typed_into_a_general_cell_is_read_from_its_excel_serial():
    # 44927 is what Excel shows (and saves) for 2023-01-01 typed into a General cell.
    assert parse_date(44927) == parse_date("44927") == parse_date(44927.75) == dt.date(2023, 1, 1)
    assert parse_period(44927) == "2023-01"
    assert parse_period(45108) == parse_period("45108") == "2023-07"
    assert parse_period(2023) == "2023"  # a year is not a serial


def test_date_time_cells_saved_as_text_are_dates_and_echoed_as_written():
    assert parse_date("2023/12/29 0:00") == parse_date("2023-12-29 00:00:00") == dt.date(2023, 12, 29)
    assert parse_period("2023/12/29 0:00") == "2023-12"
    with pytest.raises(CellError) as refused:
        parse_date("2023/12/x 0:00")
    assert "'2023/12/x 0:00'" in str(refused.value)  # not the mangled '2023/12/x0:00'


# --- bounded and honest values (issue 15) ---------------------------------------------------


@pytest.mark.parametrize("written", ["9" * 400, "-" + "9" * 400, float("inf"), float("nan"), 10**400, "1" + "0" * 16])
def test_a_number_too_large_to_be_a_figure_is_refused_never_stored_as_infinity(written):
    with pytest.raises(CellError, match="数值超出可接受范围"):
        parse_number(written)


def test_codes_are_ascii_letters_digits_underscore_and_hyphen():
    assert parse_code("LC2023-ZC1") == "LC2023-ZC1"
    assert parse_code("service_va_growth") == "service_va_growth"
    for deceptive in ("fgj\u200b", "fgј", "fg\u202ej", "fg\x07j", "区发改局", "a.b", "x" * 65):
        with pytest.raises(CellError):
            parse_code(deceptive)
    with pytest.raises(CellError, match="<U\\+200B>"):
        parse_code("fgj\u200b")  # the message shows the invisible character


def test_names_are_nfkc_normalised_keeping_chinese_punctuation():
    assert parse_name("ＡＢＣ　科技园（试点）") == "ABC 科技园（试点）"
    assert parse_name("“十百千”工程工作专班") == "“十百千”工程工作专班"


@pytest.mark.parametrize(("written", "named"), [
    ("区发改局\u202e", "从右到左强制符"), ("区发\u200b改局", "零宽空格"), ("区发改局\x07", "控制字符"),
    ("区发改局\n", None),
])
def test_names_with_invisible_or_control_characters_are_refused(written, named):
    if named is None:  # a trailing line break is only whitespace around the name
        assert parse_name(written) == "区发改局"
        return
    with pytest.raises(CellError, match=named):
        parse_name(written)


def test_free_text_keeps_its_line_breaks_but_not_direction_overrides():
    assert parse_text_block("第一条\r\n第二条") == "第一条\n第二条"
    with pytest.raises(CellError):
        parse_text_block("第一条\u202e")
