"""The rule model: what a validated rule file becomes. Produced by engine.loader."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from duban.engine.expr import Bound

RULE_KINDS = ("threshold", "pace", "deadline", "report_due", "praise", "milestone", "forecast")
NOTIFY_CHOICES = ("units", "working_group", "both")
LEVELS = ("red", "yellow", "blue", "green")
PRAISE_BASES = ("target_met_early", "ahead_of_pace", "tasks_on_time")
STRENGTHS = ("hard", "soft")  # 确保/不低于: a miss is red; 力争: yellow at worst
COMPARISONS = ("at_least", "more_than", "about", "at_most")  # 以上/不低于 · 超过 · 左右 · 以下/不超过
TARGET_SHAPES = ("annual", "milestone", "final")
AGGREGATES = ("count", "total_investment", "planned_investment", "completed_investment")
DEFAULT_TOLERANCE = 5.0  # 左右: met within ±5 % of the figure unless the target or rule says otherwise


@dataclass(frozen=True)
class Position:
    file: str
    line: int
    column: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Selector:
    """Which subjects a rule applies to.

    `codes` lists explicit codes; `kinds` restricts indicators by kind; `everything` is `all`.
    """

    subject_type: str  # indicator | task | project
    codes: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    everything: bool = False
    # projects: {category: 战略支撑型, level: 省级, in_year: true} filters the project list
    categories: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    in_year: bool = False
    # {year: 2023}: the projects under way in 2023 only, judged only while 2023 is the year judged (a
    # one-year list such as 附件1 第4项 "2023年……组织实施4个重大项目" is not carried into 2024)
    year: int = 0

    def matches(self, code: str, kind: str = "") -> bool:
        if self.everything:
            return True
        if self.codes and code not in self.codes:
            return False
        return not (self.kinds and kind not in self.kinds)

    def matches_project(self, code: str, category: str, level: str) -> bool:
        if not self.matches(code):
            return False
        if self.categories and category not in self.categories:
            return False
        return not (self.levels and level not in self.levels)


@dataclass(frozen=True)
class Rule:
    id: str  # qualified: "<programme>.<id>"
    kind: str
    title: str
    source: str
    selector: Selector
    position: Position
    notify: str = "units"
    template: str = ""  # "" = the template named after the notice kind
    action: str = ""
    repeat: dt.timedelta | None = dt.timedelta(days=7)
    groups: tuple[str, ...] = ("monthly",)
    # Per indicator, the sentence that states that indicator's target, where one rule reads several.
    sources: tuple[tuple[str, str], ...] = ()
    resolve_margin: float = 0.0  # threshold/pace hysteresis: cleared by at least this much before 销号
    # threshold
    at_least: Bound | None = None
    at_most: Bound | None = None
    more_than: Bound | None = None  # 超过: strictly more than
    aggregate: str = ""  # threshold over the project list: count | total_investment | …
    level: str = "red"
    # targets (pace, milestone, forecast): defaults for targets that do not state them
    strength: str = "hard"
    tolerance: float | None = None  # 左右, in percent of the target (None: the target's, else 5)
    yellow_margin: float | None = None
    # pace
    target: str = "year"
    per_unit: bool = False
    yellow_gap: float = 10.0
    praise_margin: float | None = None
    # deadline, milestone
    remind_days: tuple[int, ...] = (7, 1)
    escalate_after_days: int = 15
    # report_due
    due_day: int = 10
    remind_days_before: int = 3
    escalate_after_working_days: int = 10
    # praise
    basis: str = ""
    margin: float = 10.0
    # forecast
    from_month: int = 3
    warn_below: float = 100.0
    # Where the fields naming indicators stand ("indicator", "indicators", "indicators:<code>", "at_least",
    # "at_most"), so a check against the store can point at the field, not at the rule's first line.
    field_positions: tuple[tuple[str, Position], ...] = field(default=(), compare=False)

    def source_for(self, indicator: str = "", subject: str = "") -> str:
        """The sentence that states this subject's target: the subject's own (`sources` keyed
        indicator@unit, for a unit's share), else the indicator's, else the rule's."""
        found = dict(self.sources)
        return found.get(subject) or found.get(indicator) or self.source

    @property
    def short_id(self) -> str:
        return self.id.split(".", 1)[-1]

    def indicator_position(self, code: str) -> Position:
        """The line of the field that names indicator `code` (the rule's own line when unknown)."""
        positions = dict(self.field_positions)
        if f"indicators:{code}" in positions:
            return positions[f"indicators:{code}"]
        if self.selector.subject_type == "indicator" and code in self.selector.codes:
            for key in ("indicator", "indicators"):
                if key in positions:
                    return positions[key]
        for key, bound in (("at_least", self.at_least), ("at_most", self.at_most)):
            if bound is not None and code in bound.references and key in positions:
                return positions[key]
        return self.position

    @property
    def referenced_indicators(self) -> frozenset[str]:
        codes = set(self.selector.codes) if self.selector.subject_type == "indicator" else set()
        for bound in (self.at_least, self.at_most, self.more_than):
            if bound is not None:
                codes |= bound.references
        return frozenset(codes)


@dataclass(frozen=True)
class Settings:
    """programme.yaml: per rule set settings."""

    programme: str
    name: str = ""
    document: str = ""
    working_group: str = ""
    admin_email: str = ""
    subject_prefix: str = ""
    calendar: Path | None = None
    title: str = ""  # the document's full title, cited in 《》 (with 实施方案)
    issued: dt.date | None = None  # the document's date (成文日期)
    start: dt.date | None = None  # first day of notices; default `issued`
    mechanism: str = ""  # the document's sentence on urging, cited by every 督办提醒
    praise_mechanism: str = ""  # the document's sentence on praise, cited by a 通报
    # indicator@unit → the document's name for that unit's share (培育规上人力资源服务企业)
    target_names: dict[str, str] = field(default_factory=dict)
    # What the reports and their lists are called: the document's own names (Lucheng: 月度专报,
    # 争先创优晾晒表 …), or neutral ones where the document names none (REPORT_NAMES, LIST_NAMES).
    report_names: dict[str, str] = field(default_factory=dict)
    list_names: dict[str, str] = field(default_factory=dict)

    @property
    def notices_from(self) -> dt.date | None:
        """No notice cites a document before it exists: rounds before this day send nothing."""
        return self.start or self.issued

    def report_name(self, kind: str) -> str:
        """monthly → 月度专报 (Lucheng) or 月度监测报告 (a document without a name for it)."""
        return self.report_names.get(kind) or REPORT_NAMES[kind]

    def list_name(self, key: str) -> str:
        """indicators, projects, tasks, ranking, ledger, focus, assessment → the list's name (争先创优晾晒表 …)."""
        return self.list_names.get(key) or LIST_NAMES[key]


# Neutral names for a document that names no reports or lists of its own: plain descriptions,
# never another programme's mechanism (湖政办发〔2023〕16号 has no 月度专报, 季度通报 or 晾晒).
REPORT_NAMES = {"monthly": "月度监测报告", "quarterly": "季度分析报告", "annual": "年度评价报告"}
LIST_NAMES = {"indicators": "主要指标进度表", "projects": "重大项目推进表", "tasks": "重点任务推进表",
              "ranking": "单位推进情况排名表", "ledger": "督办事项办理表", "focus": "重点督促单位名单",
              # the year's assessment of the units: "2023年度{name}" in the mail, "年度{name}" in the report
              "assessment": "评价"}


@dataclass(frozen=True)
class Cadence:
    """A fire time of the programme's rhythm (周会商, 月调度 …) and what it does."""

    id: str
    name: str
    when: str
    groups: tuple[str, ...]
    digest: str
    to: tuple[str, ...]
    position: Position
    source: str = ""
    anchor: dt.date | None = None


@dataclass(frozen=True)
class RuleTestFile:
    path: Path


@dataclass
class RuleSet:
    directory: Path
    settings: Settings
    rules: list[Rule] = field(default_factory=list)
    cadences: list[Cadence] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id or rule.short_id == rule_id:
                return rule
        raise KeyError(rule_id)

    @property
    def templates_dir(self) -> Path:
        """Templates live beside the rules: the set's own templates/, else the shared rules/templates/."""
        own = self.directory / "templates"
        return own if own.is_dir() else self.directory.parent / "templates"
