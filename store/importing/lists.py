"""The interchange contract: which lists exist, their columns, and the Chinese spellings accepted.

docs/data.md documents this module for admins; keep the two in step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "IGNORED_COLUMNS",
    "INSTRUCTIONS_SHEET",
    "LISTS",
    "LIST_ORDER",
    "Column",
    "ListSpec",
    "list_for_name",
    "normalise_header",
]


@dataclass(frozen=True)
class Column:
    name: str
    label: str  # the Chinese header templates use
    aliases: tuple[str, ...] = ()
    required: bool = True  # the column must be present in the header row
    hint: str = ""  # one line of Chinese guidance for the template's 说明 sheet


@dataclass(frozen=True)
class ListSpec:
    name: str
    label: str  # Chinese sheet name, also accepted as the list name
    aliases: tuple[str, ...]
    key: tuple[str, ...]  # columns that identify a row: a repeat within one import is an error
    columns: tuple[Column, ...]
    description: str

    def column(self, name: str) -> Column:
        return next(column for column in self.columns if column.name == name)


_UNIT_LIST_HINT = "多个单位代码用分号 ; 分隔，牵头单位写在第一位"

LISTS: tuple[ListSpec, ...] = (
    ListSpec(
        "programme", "方案", ("programmes", "实施方案"), ("code",),
        (
            Column("code", "代码", ("方案代码", "编号"), hint="方案代码，如 lucheng-2023"),
            Column("name", "名称", ("方案名称",), hint="方案全称"),
            Column("start", "开始日期", ("起始日期", "开始"), hint="如 2023-01-01"),
            Column("end", "结束日期", ("截止日期", "结束"), hint="如 2027-12-31"),
            Column("document", "文号", ("文件", "发文字号"), required=False, hint="如 温鹿政办〔2023〕55号"),
        ),
        "本数据库监管的方案（只填一行）",
    ),
    ListSpec(
        "units", "单位", ("unit", "责任单位"), ("code",),
        (
            Column("code", "代码", ("单位代码", "编号"), hint="单位代码，如 fgj"),
            Column("name", "名称", ("单位名称",), hint="如 区发改局"),
            Column("email", "邮箱", ("电子邮箱", "邮件", "emails"), hint="多个邮箱用分号 ; 分隔；可暂时留空"),
            Column("kind", "类型", ("单位类型",), required=False,
                   hint="部门、街镇、区县 或 专班（department/street/county/working_group），留空为部门"),
        ),
        "责任单位及其接收督办通知的邮箱",
    ),
    ListSpec(
        "indicators", "指标", ("indicator",), ("code",),
        (
            Column("code", "代码", ("指标代码", "编号"), hint="指标代码，如 service_va_growth"),
            Column("name", "名称", ("指标名称",), hint="如 服务业增加值增速"),
            Column("measure", "计量单位", ("量纲",), hint="如 亿元、%、个、人次、家、名"),
            Column("kind", "类型", ("指标类型",), required=False,
                   hint="水平值、增速 或 累计值（level/growth/cumulative），留空为水平值"),
            Column("direction", "方向", ("考核方向",), required=False,
                   hint="不低于 或 不高于（at_least/at_most），留空为不低于"),
            Column("reported_as", "报送口径", ("口径", "统计口径"), required=False,
                   hint="累计值指标如何报送：本年累计（1—N月累计，默认）、当月值 或 累计至今（ytd/month/to_date）"),
            # Not "单位": in statistical tables that means the unit of measure.
            Column("units", "责任单位", ("责任单位代码",), hint=_UNIT_LIST_HINT),
        ),
        "考核指标",
    ),
    ListSpec(
        "targets", "目标", ("target", "目标值"), ("indicator", "year", "unit"),
        (
            Column("indicator", "指标", ("指标代码",), hint="指标代码"),
            Column("year", "年度", ("年份", "年"), hint="年份如 2023；方案期末目标写 期末（或 final）"),
            Column("value", "数值", ("目标值", "目标"), hint="百分比指标填 66.5 或 66.5%"),
            Column("unit", "单位", ("填报单位", "责任单位", "单位代码"), required=False,
                   hint="单位名称（或单位代码）；留空表示全区目标"),
            Column("shape", "目标类型", ("目标形态",), required=False,
                   hint="年度（按序时进度考核）、节点（到期一次性考核）或 期末（annual/milestone/final）；留空：期末目标为期末，填了完成时限为节点，否则为年度"),
            Column("comparison", "表述", ("比较", "比较方式"), required=False,
                   hint="以上/不低于、超过、左右 或 以下/不超过（at_least/more_than/about/at_most），留空为以上"),
            Column("strength", "力度", ("要求",), required=False,
                   hint="确保 或 力争（hard/soft）：力争目标未完成最多亮黄灯；留空按规则设定（默认确保）"),
            Column("due", "完成时限", ("时间节点", "截止日期"), required=False,
                   hint="节点目标的完成日期，如 2023-12-31 或 2023年底前；留空为该年年底"),
            Column("tolerance", "容差", ("允许偏差",), required=False,
                   hint="“左右”允许的偏差，百分数，如 5 表示 ±5%；留空按规则设定（默认5%）"),
        ),
        "各指标的年度目标和期末目标",
    ),
    ListSpec(
        "observations", "月度数据", ("observation", "数据", "指标数据", "统计数据"), ("indicator", "period", "unit"),
        (
            Column("indicator", "指标", ("指标代码",), hint="指标代码"),
            Column("period", "期间", ("月份", "时间", "统计期", "报告期"),
                   hint="月 2023-06（或 2023年6月、2023/6），季 2023-Q2（或 2023年第2季度），年 2023"),
            Column("value", "数值", ("完成值", "实际值"), hint="百分比指标填 66.5 或 66.5%；可用千分位 1,234.5"),
            Column("unit", "单位", ("填报单位", "责任单位", "单位代码"), required=False,
                   hint="单位名称（或单位代码）；留空表示全区数据"),
            Column("reported_on", "报送日期", ("报送时间", "填报日期"), required=False,
                   hint="数据报送的日期，如 2023-07-08；留空以导入时间为准"),
        ),
        "指标的月度、季度、年度完成数据",
    ),
    ListSpec(
        "projects", "项目", ("project", "重大项目"), ("code",),
        (
            Column("code", "代码", ("项目代码", "编号"), hint="项目代码"),
            Column("name", "名称", ("项目名称",), hint="项目名称"),
            Column("category", "类别", ("项目类别", "类型"), hint="战略支撑型、产业赋能型 或 生活美好型"),
            Column("level", "级别", ("项目级别",), hint="省级 或 市级"),
            Column("total_investment", "总投资", ("总投资（亿元）", "总投资亿元"), hint="亿元"),
            Column("units", "责任单位", ("单位", "责任单位代码"), hint=_UNIT_LIST_HINT),
        ),
        "服务业重大项目",
    ),
    ListSpec(
        "project_plans", "项目计划", ("project_plan", "年度计划", "项目年度计划"), ("project", "year"),
        (
            Column("project", "项目", ("项目代码",), hint="项目代码"),
            Column("year", "年度", ("年份", "年"), hint="如 2023"),
            Column("planned_investment", "计划投资", ("计划投资（亿元）", "年度计划投资"), hint="亿元"),
        ),
        "项目年度计划投资",
    ),
    ListSpec(
        "project_investment", "项目投资", ("project_investments", "投资完成", "项目投资完成"), ("project", "period"),
        (
            Column("project", "项目", ("项目代码",), hint="项目代码"),
            Column("period", "期间", ("月份", "时间"), hint="月份，如 2023-06"),
            Column("value", "数值", ("完成投资", "当月完成投资"), hint="当月完成投资，亿元"),
        ),
        "项目每月完成投资",
    ),
    ListSpec(
        "tasks", "任务", ("task", "任务清单", "重点任务"), ("code",),
        (
            Column("code", "代码", ("任务代码", "编号"), hint="任务代码"),
            Column("title", "任务", ("任务名称", "名称", "标题"), hint="任务名称"),
            Column("measures", "具体内容举措", ("具体举措", "举措", "主要举措"), required=False, hint="具体内容举措"),
            Column("goal", "主要目标", ("目标",), required=False, hint="主要目标"),
            Column("deadline", "时间节点", ("截止日期", "完成时限", "期限"),
                   hint="如 2023-06-30、2023年6月底前、2023年底前、2023全年、五年内"),
            Column("units", "责任单位", ("单位", "责任单位代码"), hint=_UNIT_LIST_HINT),
            Column("status", "状态", ("完成情况",), required=False, hint="未完成 或 已完成（open/done），留空为未完成"),
            Column("done_on", "完成日期", ("完成时间",), required=False, hint="已完成任务的完成日期，如 2023-06-15"),
            Column("kind", "任务类型", ("类型", "任务性质"), required=False,
                   hint="限时（到期须见成果，逾期督办）或 常态化（持续推进，不计逾期，按季调度进展）；留空为限时"),
            Column("strength", "力度", ("要求",), required=False,
                   hint="确保 或 力争（hard/soft）：力争任务逾期最多亮黄灯、不升级督办；留空时按主要目标的原文判断（含“力争”“争取”即为力争）"),
        ),
        "重点任务清单",
    ),
)

LIST_ORDER: tuple[str, ...] = tuple(spec.name for spec in LISTS)
INSTRUCTIONS_SHEET = "说明"
# Columns officials commonly add for their own use; they carry no data for duban.
IGNORED_COLUMNS = frozenset({"序号", "备注", "说明", "note", "notes", "remark", "remarks"})

_BY_NAME: dict[str, ListSpec] = {}
for _spec in LISTS:
    for _name in (_spec.name, _spec.label, *_spec.aliases):
        _BY_NAME[_name.lower()] = _spec
_SUFFIX_SEPARATOR = re.compile(r"[-_.\s（(]")


def list_for_name(name: str) -> ListSpec | None:
    """The list a sheet name or file stem names.

    The whole name may be a list name or alias ("units", "单位", "project_plans"); otherwise
    the longest list name or alias that is followed by `-`, `_`, `.`, a space or a bracket
    names it ("observations-2023-06" → observations, "项目投资_6月" → project_investment).
    """
    lowered = name.strip().lower()
    if lowered in _BY_NAME:
        return _BY_NAME[lowered]
    best: tuple[int, ListSpec] | None = None
    for candidate, spec in _BY_NAME.items():
        if (
            lowered.startswith(candidate)
            and _SUFFIX_SEPARATOR.match(lowered, len(candidate))
            and (best is None or len(candidate) > best[0])
        ):
            best = (len(candidate), spec)
    return best[1] if best else None


def normalise_header(header: str) -> str:
    """Headers compare without spaces, case, or the `*` templates use to mark required columns."""
    return re.sub(r"[\s*＊]", "", header).lower()
