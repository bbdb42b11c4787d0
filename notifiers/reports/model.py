"""The report as data: what the HTML template and the workbook writer both read.

Every figure here comes from one evaluation (`engine.evaluate.EvaluationResult`) at the report's
cut-off moment, plus the alert ledger for the 销号 list; renderers only format.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from duban.engine.rules import LIST_NAMES

KINDS = ("monthly", "quarterly", "annual")
# What each report is called comes from programme.yaml (Settings.report_name): 月度专报 in Lucheng,
# 月度监测报告 in Huzhou, whose document names no 月度专报.
# The cadence `digest:` name whose round reads each report (rules/<programme>/cadence.yaml).
DIGEST_OF_KIND = {"monthly": "monthly_dispatch", "quarterly": "quarterly", "annual": "annual"}
LEVEL_NAMES = {"red": "红灯", "yellow": "黄灯", "green": "绿灯", "stale": "数据未更新"}
# "stale": the figure is older than the period it is due for; shown as 数据未更新, never as a light.
LEVEL_ORDER = {"red": 0, "yellow": 1, "green": 2, "stale": 3, None: 4}


@dataclass(frozen=True)
class AlertRecord:
    """One row of the alert ledger as the report needs it (store.models.Alert + its notices)."""

    rule: str
    subject_type: str
    subject: str
    period: str
    kind: str
    title: str
    units: tuple[str, ...]
    first_seen: dt.datetime
    level_history: tuple[tuple[dt.datetime, str | None, str], ...]  # (at, level, state), oldest first
    notices: tuple[dt.datetime, ...]  # the rounds that sent a notice about it (台账), oldest first
    value_period: str = ""  # the month its figures run to ("2023-06"): "1—N月" in the title reads 2023年1—6月


@dataclass(frozen=True)
class IndicatorRow:
    """A line of 主要指标进度表: a jurisdiction indicator, or (sub) one unit's share of it."""

    index: str
    code: str
    name: str
    unit_name: str  # the unit a per-unit share belongs to; "" for the jurisdiction
    sub: bool
    measure: str
    basis: str  # 年度目标 / 规划期目标 / 底线标准
    target: float | None
    value: float | None
    value_label: str  # the period the value covers: 2023年1—6月, 2023年6月
    completion: float | None  # percent of target
    time_progress: float | None  # 序时进度, percent
    gap: float | None  # completion − time progress (points); value − standard for thresholds
    level: str | None
    units: str  # responsible units, lead first
    note: str
    rule: str
    units_short: str = ""  # at most three names, else "甲（牵头）、乙、丙等N个单位": for the printed tables
    comparison: str = ""  # at_least | more_than | about | at_most: the document's word kept with the target


@dataclass(frozen=True)
class ProjectRow:
    index: str
    code: str
    name: str
    category: str
    grade: str  # 省级 / 市级
    total_investment: float
    planned: float | None
    done: float | None
    expected: float | None
    completion: float | None
    time_progress: float | None
    level: str | None
    units: str
    units_short: str = ""


@dataclass(frozen=True)
class CategoryTotal:
    """重大项目 investment by category: what the chart draws and the subtotal rows show."""

    category: str
    projects: int
    total_investment: float
    planned: float
    done: float
    expected: float
    red: int
    yellow: int
    green: int

    @property
    def completion(self) -> float | None:
        return 100.0 * self.done / self.planned if self.planned else None


@dataclass(frozen=True)
class TaskRow:
    index: str
    code: str
    title: str
    goal: str
    deadline: dt.date | None
    deadline_text: str
    units: str
    status: str  # done | done_late | open | overdue
    status_label: str  # 按时完成 / 逾期完成 / 推进中（剩N天） / 逾期N天
    level: str | None
    done_on: dt.date | None
    units_short: str = ""
    ongoing: bool = False  # 常态化: a duty without a result date, never due nor overdue


@dataclass(frozen=True)
class TaskSummary:
    total: int
    done: int
    done_on_time: int
    open: int
    overdue: int


@dataclass(frozen=True)
class UnitRank:
    """A line of 争先创优晾晒表: one unit's pace items, ranked by completion against time progress."""

    rank: int
    code: str
    name: str
    items: int
    completion: float  # mean completion of its items, percent
    time_progress: float
    gap: float  # mean (completion − time progress), points
    red: int
    yellow: int
    green: int
    tasks_overdue: int
    praised: int
    level: str | None
    previous_rank: int | None = None  # its place at the previous quarter's meeting (季度通报)
    movement: str = ""  # 进位N名 / 退位N名 / 名次不变 / 新列入排名


@dataclass(frozen=True)
class ListItem:
    """An entry of the praise (通报表扬) or urging (亮灯督促) list: one candidate of the evaluation."""

    index: int
    level: str | None
    title: str
    subject_name: str
    units: str
    figures: str
    action: str
    source: str
    rule: str
    units_short: str = ""


@dataclass(frozen=True)
class LedgerRow:
    """A line of 督导服务销号表."""

    index: int
    title: str
    units: str
    level: str | None  # the level it stood at (at the cut-off, or when it was closed)
    first_seen: dt.datetime
    status: str  # opened | closed | open
    status_label: str
    closed_at: dt.datetime | None
    notices: int
    days_open: int
    units_short: str = ""


@dataclass(frozen=True)
class Count:
    red: int = 0
    yellow: int = 0
    green: int = 0
    stale: int = 0  # figures older than their due period: 数据未更新, not lit

    @property
    def total(self) -> int:
        return self.red + self.yellow + self.green + self.stale


@dataclass(frozen=True)
class IndicatorChange:
    """A line of the quarter's analysis: an indicator now and at the previous quarter's meeting."""

    index: str
    name: str
    unit_name: str
    measure: str
    basis: str
    value_before: float | None
    label_before: str
    value_now: float | None
    label_now: str
    completion_before: float | None
    completion_now: float | None
    change: float | None  # completion points (pace), or the value's change (standards)
    change_unit: str  # 个百分点 / the measure
    level_before: str | None
    level_now: str | None
    trend: str  # 提升N个百分点 / 回落… / 持平 / 新纳入监测


@dataclass(frozen=True)
class SupervisionItem:
    """A line of the quarter's 督导服务名单: a unit the working group visits, and why."""

    index: int
    code: str
    name: str
    red: int  # its red indicators and projects
    overdue: int  # its overdue tasks
    movement: str  # 退位N名 …
    focus: str  # what to look at first: the red items and overdue tasks, by name


@dataclass(frozen=True)
class UnitAssessment:
    """A line of the year's 综合评估: one member unit's year."""

    rank: int
    code: str
    name: str
    items: int
    met: int  # indicators and projects at or beyond their year's target
    completion: float | None  # mean completion of its year targets, percent
    tasks_due: int
    tasks_on_time: int
    tasks_overdue: int
    praised: int
    red: int
    grade: str  # 好 / 较好 / 一般 / 较差
    remark: str


@dataclass(frozen=True)
class ImportNote:
    """A figure the import's plausibility checks queried, with the importer's explanation (审核说明)."""

    indicator: str
    unit_name: str
    period_label: str
    value: float | None
    message: str
    note: str


@dataclass
class Report:
    kind: str
    period: str  # 2023-06, 2023-Q2, 2023
    period_label: str  # 2023年6月, 2023年第二季度, 2023年
    title: str  # the report's own title
    kind_name: str  # 月度专报 … (programme.yaml's report_monthly …)
    programme_name: str
    document: str  # the document's number (文号)
    signer: str
    cutoff: dt.datetime
    since: dt.datetime  # the previous report's cut-off: the 销号 list covers (since, cutoff]
    time_progress: float | None
    progress_label: str  # 2023年1—6月
    indicators: list[IndicatorRow] = field(default_factory=list)
    indicator_count: Count = field(default_factory=Count)
    projects: list[ProjectRow] = field(default_factory=list)
    categories: list[CategoryTotal] = field(default_factory=list)
    project_count: Count = field(default_factory=Count)
    tasks: list[TaskRow] = field(default_factory=list)
    task_summary: TaskSummary = field(default_factory=lambda: TaskSummary(0, 0, 0, 0, 0))
    ranking: list[UnitRank] = field(default_factory=list)
    praise: list[ListItem] = field(default_factory=list)
    urging: list[ListItem] = field(default_factory=list)
    opened: list[LedgerRow] = field(default_factory=list)
    closed: list[LedgerRow] = field(default_factory=list)
    still_open: list[LedgerRow] = field(default_factory=list)
    rounds_recorded: bool = True
    warnings: list[str] = field(default_factory=list)
    # 季度通报 and 年度评估: the period's own analysis (empty in the 月度专报)
    compared_label: str = ""  # the meeting compared with: 2023年第一季度
    changes: list[IndicatorChange] = field(default_factory=list)
    period_tasks: list[TaskRow] = field(default_factory=list)  # tasks whose deadline falls in the period
    period_task_summary: TaskSummary = field(default_factory=lambda: TaskSummary(0, 0, 0, 0, 0))
    supervision: list[SupervisionItem] = field(default_factory=list)
    assessment: list[UnitAssessment] = field(default_factory=list)
    import_notes: list[ImportNote] = field(default_factory=list)
    # The document as every citation names it: its full title from programme.yaml's `title` (with 实施方案)
    document_title: str = ""
    # What the document calls urging: 亮灯督促 (Lucheng), 督促 (Huzhou: no lights in its text)
    urging_name: str = "亮灯督促"
    # The lists' names (programme.yaml's list_*): indicators, projects, tasks, ranking, ledger, focus
    list_names: dict[str, str] = field(default_factory=lambda: dict(LIST_NAMES))

    @property
    def file_stem(self) -> str:
        return f"{self.kind}-{self.period}"


__all__ = [
    "DIGEST_OF_KIND", "KINDS", "LEVEL_NAMES", "LEVEL_ORDER", "AlertRecord", "CategoryTotal", "Count",
    "ImportNote", "IndicatorChange", "IndicatorRow", "LedgerRow", "ListItem", "ProjectRow", "Report",
    "SupervisionItem", "TaskRow", "TaskSummary", "UnitAssessment", "UnitRank",
]
