"""时间节点 as the task list writes them become the last day the work is due; anything else is refused."""

import datetime as dt

import pytest

from duban.store.deadlines import DeadlineError, parse_deadline

PROGRAMME_END = dt.date(2027, 12, 31)


@pytest.mark.parametrize(
    ("text", "due"),
    [
        ("2023-06-30", dt.date(2023, 6, 30)),
        ("2023/6/30", dt.date(2023, 6, 30)),
        ("2023年12月底前", dt.date(2023, 12, 31)),
        ("2023年6月底前", dt.date(2023, 6, 30)),
        ("2024年2月底前", dt.date(2024, 2, 29)),
        ("2023年底前", dt.date(2023, 12, 31)),
        ("2023年底", dt.date(2023, 12, 31)),
        ("2023全年", dt.date(2023, 12, 31)),
        ("2023年全年", dt.date(2023, 12, 31)),
        ("2023 全年", dt.date(2023, 12, 31)),
        ("2023年", dt.date(2023, 12, 31)),
        ("2023年6月30日前", dt.date(2023, 6, 30)),
        ("2023 年 6 月底前", dt.date(2023, 6, 30)),
    ],
)
def test_the_documents_deadline_phrases_mean_the_last_day_they_name(text, due):
    assert parse_deadline(text, PROGRAMME_END) == due


def test_a_phrase_followed_by_the_work_due_uses_the_phrase_alone():
    assert parse_deadline("2023年12月底前，分级分类梯队培育1家领军企业。", None) == dt.date(2023, 12, 31)
    assert parse_deadline("2023年，培育“品字标浙江服务”品牌企业1家", None) == dt.date(2023, 12, 31)
    assert parse_deadline("2023 全年，举办展会活动10场。", None) == dt.date(2023, 12, 31)
    assert parse_deadline("2023全年配合市人行、市金融办做好应用场景搭建。", None) == dt.date(2023, 12, 31)


def test_within_five_years_means_the_programmes_last_day():
    assert parse_deadline("五年内", PROGRAMME_END) == PROGRAMME_END
    assert parse_deadline("五年内培训100名左右新生代企业家。", PROGRAMME_END) == PROGRAMME_END


def test_within_five_years_without_a_programme_is_an_error_not_a_guess():
    with pytest.raises(DeadlineError, match="五年内"):
        parse_deadline("五年内", None)


def test_excel_date_cells_are_taken_as_they_are():
    assert parse_deadline(dt.datetime(2023, 9, 30, 0, 0), None) == dt.date(2023, 9, 30)
    assert parse_deadline(dt.date(2023, 9, 30), None) == dt.date(2023, 9, 30)


@pytest.mark.parametrize(
    "text", ["", "尽快", "年底前", "2023年6月中旬", "2023年上半年", "2023年13月底前", "2023-02-30", "下半年", "2023年Q3"]
)
def test_anything_else_is_an_error_with_a_chinese_message(text):
    with pytest.raises(DeadlineError) as raised:
        parse_deadline(text, PROGRAMME_END)
    assert isinstance(raised.value, ValueError)
    assert any("\u4e00" <= char <= "\u9fff" for char in str(raised.value))
