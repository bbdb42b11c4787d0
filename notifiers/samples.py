"""Realistic sample digests (from the Lucheng plan, 温鹿政办〔2023〕55号) for tests, previews and the benchmark."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from typing import Any

from duban.notifiers.digest import Digest, NoticeItem, Recipient, UnitRef

DOCUMENT = "温鹿政办〔2023〕55号"
PROGRAMME = "温州市鹿城区服务业高质量发展“十百千”工程实施方案（2023-2027年）"
SENDER = "鹿城区服务业高质量发展“十百千”工程建设工作专班"
MECHANISM = "建立月度专报和季度通报制度……对于进度缓慢的予以亮灯督促。（四（四））"
PRAISE_MECHANISM = "对成效显著的单位给予通报表扬。（四（四））"
ROUND_AT = datetime(2023, 7, 5, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai

DRC = UnitRef("drc", "区发改局")
COMMERCE = UnitRef("commerce", "区商务局")
STATS = UnitRef("stats", "区统计局")


def sample_item(**overrides: Any) -> NoticeItem:
    item = NoticeItem(
        kind="warning",
        level="red",
        title="服务业投资占全区固定资产投资比重低于2/3",
        rule="lucheng.service_investment_share",
        rule_file="rules/lucheng/investment.yaml:12",
        template="warning",
        subject_type="indicator",
        subject="service_investment_share",
        subject_name="服务业投资占固定资产投资比重",
        period="2023-06",
        period_label="2023年6月",
        value=58.4,
        threshold=66.7,
        expected=66.7,
        measure="%",
        deadline=date(2023, 7, 12),
        days_left=5,
        days_overdue=None,
        units=(DRC, STATS),
        source="服务业投资占全区固定资产投资比重保持在2/3以上。",
        document=DOCUMENT,
        action="请于5个工作日内向专班报送整改措施",
        repeat=0,
        idempotency_key="lucheng.service_investment_share|service_investment_share|2023-06|warning|drc|2023-07",
    )
    return dataclasses.replace(item, **overrides)


def three_lagging_items() -> tuple[NoticeItem, ...]:
    """The three kinds of lagging items a department typically gets in one monthly round."""
    return (
        sample_item(),
        sample_item(
            kind="warning",
            level="yellow",
            title="省服务业重大项目年度计划投资完成进度滞后",
            rule="lucheng.major_project_progress",
            rule_file="rules/lucheng/projects.yaml:8",
            subject_type="project",
            subject="P2023-01",
            subject_name="鹿城区五马历史文化街区提升工程",
            value=3.1,
            threshold=4.0,
            expected=4.95,
            measure="亿元",
            source="组织实施4个重大项目，总投资139.5亿元，年度计划投资超9.9亿元。",
            action="请加快项目建设进度，并于7月10日前报送项目推进计划",
            idempotency_key="lucheng.major_project_progress|P2023-01|2023-06|warning|drc|2023-07",
        ),
        sample_item(
            kind="reminder",
            level="blue",
            title="服务业“大走访大调研大服务大解题”活动",
            rule="lucheng.task_deadline",
            rule_file="rules/lucheng/tasks.yaml:30",
            template="reminder",
            subject_type="task",
            subject="T18",
            subject_name="提升指导服务（附件1第18项）",
            period="2023",
            period_label="2023年",
            value=None,
            threshold=None,
            expected=None,
            measure="",
            deadline=date(2023, 7, 31),
            days_left=26,
            units=(COMMERCE, DRC),
            source="开展服务业“大走访大调研大服务大解题”活动，及时解决困难和问题，加强对策举措研究。",
            action="请于7月25日前报送活动开展情况",
            idempotency_key="lucheng.task_deadline|T18|2023|reminder|drc|2023-07",
        ),
    )


def sample_digest(**overrides: Any) -> Digest:
    digest = Digest(
        programme_name=PROGRAMME,
        document=DOCUMENT,
        round_key="monthly:2023-07",
        round_title="2023年7月月调度",
        at=ROUND_AT,
        recipient=Recipient("drc", "区发改局", "department", ("fgj@lucheng.example.cn",)),
        items=three_lagging_items(),
        sender=SENDER,
        mechanism=MECHANISM,
        praise_mechanism=PRAISE_MECHANISM,
    )
    return dataclasses.replace(digest, **overrides)
