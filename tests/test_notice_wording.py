"""What an officer reads: the document number once, a pace item's target called a target, and the
sentence of the document in quotes with its place after it."""

from __future__ import annotations

import dataclasses

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
    assert "年度目标 10场" in rendered.html and "目标值 66.7%" in rendered.html
