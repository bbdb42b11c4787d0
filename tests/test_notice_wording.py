"""What an officer reads: the document number once, a pace item's target called a target, and the
sentence of the document in quotes with its place after it."""

from __future__ import annotations

import dataclasses
import datetime as dt

from duban.notifiers.digest import Recipient
from duban.notifiers.render import DigestRenderer, cite_source
from duban.notifiers.samples import sample_digest, sample_item

DOCUMENT = "温鹿政办〔2023〕55号"


def test_a_source_citing_its_document_does_not_print_the_number_twice() -> None:
    text = cite_source("服务业投资占全区固定资产投资比重不低于 2/3。（温鹿政办〔2023〕55号 二、主要目标（三））", DOCUMENT)
    assert text == "“服务业投资占全区固定资产投资比重不低于 2/3。”（温鹿政办〔2023〕55号 二、主要目标（三））"
    assert text.count(DOCUMENT) == 1


def test_a_source_citing_only_a_section_is_prefixed_with_the_document() -> None:
    text = cite_source("编制主要指标进度表，开展年度评价。（附件2 五（二） 清单推进机制）", DOCUMENT)
    assert text == "温鹿政办〔2023〕55号“编制主要指标进度表，开展年度评价。”（附件2 五（二） 清单推进机制）"


def test_a_bare_sentence_is_quoted_after_the_document() -> None:
    assert cite_source("力争服务业投资同比增长 8.0% 以上。", DOCUMENT) == "温鹿政办〔2023〕55号“力争服务业投资同比增长 8.0% 以上。”"


def test_a_pace_item_shows_its_target_and_time_target_not_a_warning_line() -> None:
    pace = sample_item(title="全区“举办展会活动”完成进度滞后于序时进度", subject_name="举办展会活动", value=3.0,
                       threshold=10.0, expected=5.0, measure="场", deadline=None, period_label="2023年",
                       details={"completion": 30.0, "time_progress": 50.0, "months_ended": 6})
    threshold = sample_item(expected=None)
    digest = sample_digest(recipient=Recipient("swj", "区商务局", "department", ("swj@example.org",)),
                           items=(pace, dataclasses.replace(threshold, idempotency_key="t2")))
    rendered = DigestRenderer().render(digest)
    assert not rendered.problems
    assert "累计完成：3场；年度目标：10场；完成进度：30%；序时进度：50%" in rendered.text
    assert "2023年6月数值：58.4%；目标值：66.7%" in rendered.text
    assert "年度目标：10场" in rendered.html and "目标值 66.7%" in rendered.html


# --- wording by notice kind -------------------------------------------------------------------


def _text(*items: object, **digest: object) -> str:
    rendered = DigestRenderer().render(sample_digest(items=items, **digest))
    assert not rendered.problems, rendered.problems
    return rendered.text


def test_praise_praises_and_asks_for_nothing_even_when_its_rule_has_an_action() -> None:
    praise = sample_item(kind="praise", level="green", template="praise", title="“新增规模以上服务业企业”提前完成年度目标",
                         deadline=None, action="请对照年度目标倒排进度，于5个工作日内向专班报送赶超措施。",
                         details={"completion": 100.0, "time_progress": 75.0, "months_ended": 9})
    text = _text(praise)
    assert "【表扬】" in text and "完成进度：100%" in text
    assert "赶超措施" not in text and "工作要求" not in text and "请对照上述事项" not in text
    assert "特此通报" in text


def test_a_praise_of_tasks_done_says_how_many_not_a_bare_number() -> None:
    praise = sample_item(kind="praise", level="green", template="praise", subject_type="unit", subject="drc",
                         subject_name="区发改局", title="区发改局2023年第三季度牵头任务全部按时完成", value=3.0,
                         threshold=3.0, measure="", deadline=None, period_label="2023年第三季度",
                         details={"tasks_due": 3, "tasks_on_time": 3})
    text = _text(praise)
    assert "2023年第三季度到期的牵头任务共3项，均已按时完成" in text
    assert "完成情况：3\n" not in text


def test_a_closed_item_says_what_closed_it_names_the_units_and_asks_nothing() -> None:
    closed = sample_item(kind="resolved", level=None, template="resolved", title="“服务业投资占全区固定资产投资比重”预警销号",
                         value=67.4, threshold=66.67, deadline=None,
                         closed_on=dt.date(2023, 9, 11), closing="2023年8月为67.4%，已达到66.67%的要求")
    text = _text(closed)
    assert "销号情况：2023年8月为67.4%，已达到66.67%的要求，2023年9月11日予以销号" in text
    assert "牵头单位：区发改局；配合单位：区统计局" in text
    assert "滞后" not in text and "请于5个工作日内" not in text


def test_an_escalation_after_one_notice_says_once_and_since_when() -> None:
    escalation = sample_item(kind="escalation", template="escalation", notified_before=1,
                             since=dt.date(2023, 11, 1), repeat=0)
    text = _text(escalation)
    assert "【红灯·升级督办】" in text
    assert "此前已于2023年11月1日通知1次，仍未整改到位，现升级为红灯，并抄送工作专班" in text
    assert "多次" not in text and "第0次" not in text


def test_an_escalation_after_three_notices_counts_them() -> None:
    escalation = sample_item(kind="escalation", template="escalation", notified_before=3, since=dt.date(2023, 10, 9))
    assert "自2023年10月9日起已通知3次" in _text(escalation)


def test_a_revision_says_what_changed() -> None:
    revised = sample_item(kind="revised", level="yellow", template="revised", previous_level="red",
                          title="全区“紧缺领域高素质技术人才培育”完成进度滞后于序时进度", value=133.0, threshold=200.0,
                          measure="名", deadline=None, previous={"completion": 55.0, "value": 110.0},
                          details={"completion": 66.5, "time_progress": 75.0, "months_ended": 9})
    text = _text(revised)
    assert "由红灯调整为黄灯" in text
    assert "完成进度由55%提高到66.5%，落后序时进度8.5个百分点" in text


def test_missing_figures_past_the_due_date_are_chased_without_telling_filers_to_ignore_it() -> None:
    missing = sample_item(kind="warning", level="yellow", template="report_due", title="“服务业投资增速”2023年6月数据未报送",
                          subject_name="服务业投资增速", period_label="2023年6月", deadline=dt.date(2023, 7, 10),
                          days_left=None, days_overdue=8, repeat=1, action="请按模板报送上月数据；已报送的请忽略。",
                          details={"missing_months": ["2023-06"], "working_days_overdue": 6, "escalate_after": 10})
    text = _text(missing)
    assert "【黄灯·催报】“服务业投资增速”2023年6月数据逾期未报（第2次催报）" in text
    assert "已逾期8天（6个工作日）" in text and "逾期10个工作日仍未报送的，将亮红灯并抄送工作专班" in text
    assert "请忽略" not in text


def test_missing_figures_turned_red_say_how_often_they_were_chased() -> None:
    red = sample_item(kind="escalation", level="red", template="escalation", subject_name="服务业投资增速",
                      period_label="2023年6月", deadline=dt.date(2023, 7, 10), days_overdue=15, notified_before=2,
                      since=dt.date(2023, 7, 11), details={"missing_months": ["2023-06"], "working_days_overdue": 11})
    text = _text(red)
    assert "“服务业投资增速”2023年6月数据逾期未报" in text and "已逾期11个工作日" in text
    assert "自2023年7月11日起已通知2次" in text


def test_the_working_group_is_told_not_urged() -> None:
    text = _text(sample_item(), recipient=Recipient("zhuanban", "区“十百千”工作专班", "working_group",
                                                    ("zhuanban@example.org",)))
    assert "贵单位" not in text and "请对照上述事项抓紧推进落实" not in text
    assert "情况报告" in text and "请工作专班办公室跟踪督办" in text


def test_notices_cite_the_programmes_mechanism_not_a_shared_sentence() -> None:
    text = _text(sample_item(), mechanism="由市工作专班牵头开展工作进度评价……对于进度缓慢的予以督促。（四（五））")
    assert "“由市工作专班牵头开展工作进度评价……对于进度缓慢的予以督促”（四（五））的要求" in text
    assert "亮灯督促" not in text and "月度专报" not in text


def test_a_running_total_names_its_months() -> None:
    item = sample_item(subject_name="服务业投资增速（1—N月同比）", details={"value_period": "2023-06"})
    assert "服务业投资增速（2023年1—6月同比）" in _text(item)


def test_a_light_decided_on_whole_counts_prints_its_basis_in_text_and_html() -> None:
    """Yellow beside 46.15% against 58.33% (12 points) would contradict the 10-point band: the notice says the
    whole-number basis it was judged on, with the same figures."""
    pace = sample_item(title="“服务业重大项目开工”完成进度滞后于序时进度", subject_name="服务业重大项目开工", value=6.0,
                       threshold=13.0, expected=7.0, measure="个", deadline=None, period_label="2023年1—7月", level="yellow",
                       details={"completion": 46.15, "time_progress": 58.33, "months_ended": 7, "whole_basis": True,
                                "comparison": "at_least"})
    rendered = DigestRenderer().render(sample_digest(items=(pace,)))
    assert not rendered.problems
    assert "按整数计，序时应完成7个，已完成6个" in rendered.text
    assert "按整数计，序时应完成7个，已完成6个" in rendered.html
    plain = dataclasses.replace(pace, details={k: v for k, v in pace.details.items() if k != "whole_basis"})
    assert "按整数计" not in _text(plain)


def test_a_threshold_keeps_the_documents_comparison_with_its_bound() -> None:
    # "服务业投资增速不低于8.0%": the line says 8%以上, not a bare 8% that could be read as "exactly 8".
    at_least = sample_item(expected=None, threshold=8.0, value=7.6, details={"comparison": "at_least"})
    at_most = sample_item(expected=None, threshold=3.0, value=3.4, idempotency_key="t-most",
                          details={"comparison": "at_most"})
    text = _text(at_least, at_most)
    assert "2023年6月数值：7.6%；目标值：8%以上" in text and "2023年6月数值：3.4%；目标值：3%以下" in text


def test_a_bound_computed_from_other_figures_says_what_from() -> None:
    # Huzhou's 基本持平: 不低于全市固定资产投资增速减1个百分点 — 8.9% is not a figure of the document.
    derived = sample_item(expected=None, threshold=8.9, value=8.4, details={
        "comparison": "at_least",
        "bound_basis": [{"name": "全市固定资产投资增速（1—N月同比）", "period": "2023-04", "value": 9.9, "measure": "%"}]})
    assert "目标值：8.9%以上（按全市固定资产投资增速（2023年1—4月同比）9.9%测算）" in _text(derived)
