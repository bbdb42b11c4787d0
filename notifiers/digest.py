"""What the lifecycle hands to the notifiers: one `Digest` per recipient per round.

The lifecycle decides *what* to say; these values carry everything the templates need so that
rendering is a pure function of a `Digest` (no database access while rendering).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

KINDS = ("warning", "reminder", "overdue", "praise", "escalation", "revised", "resolved", "report_due")
LEVELS = ("red", "yellow", "blue", "green")

# Sections of a digest, in reading order: the most urgent first.
SECTION_ORDER = ("red", "yellow", "reminder", "praise", "resolved")
SECTION_LABELS = {
    "red": "红灯",
    "yellow": "黄灯",
    "reminder": "提醒",
    "praise": "表扬",
    "resolved": "销号",
}
LEVEL_LABELS = {"red": "红灯", "yellow": "黄灯", "blue": "蓝灯", "green": "绿灯"}
KIND_LABELS = {
    "warning": "预警",
    "reminder": "提醒",
    "overdue": "逾期",
    "praise": "表扬",
    "escalation": "升级督办",
    "revised": "灯色调整",
    "resolved": "销号",
    "report_due": "报送提醒",
}
# Sections that ask the recipient to do something (counted as 待办 in the subject).
ACTION_SECTIONS = frozenset({"red", "yellow", "reminder"})


@dataclass(frozen=True)
class UnitRef:
    code: str
    name: str


@dataclass(frozen=True)
class NoticeItem:
    kind: str  # warning | reminder | overdue | praise | escalation | revised | resolved | report_due
    level: str | None  # red | yellow | blue | green | None
    title: str
    rule: str
    rule_file: str
    template: str  # item template name: rules/templates/items/<template>.{txt,html}.j2
    subject_type: str  # indicator | task | project | unit
    subject: str
    subject_name: str
    period: str
    period_label: str
    value: float | None
    threshold: float | None
    expected: float | None
    measure: str
    deadline: date | None
    days_left: int | None
    days_overdue: int | None
    units: tuple[UnitRef, ...]  # responsible units, lead first
    source: str  # the sentence of the source document the rule encodes
    document: str
    action: str
    repeat: int  # 0 = first notice, n = n-th 催办 repeat
    idempotency_key: str
    # What the candidate (or, for a 销号, the closing figures) carried beyond the fields above:
    # stage, completion, time_progress, missing_months, goal, measures … Templates render the keys
    # they know; other helpers add keys (a derived target's basis, a task's measure and goal).
    details: Mapping[str, Any] = field(default_factory=dict)
    # Lifecycle wording: how many notices of this item went before and since when (escalation,
    # 催办), the light before a revision (灯色调整), the day a 销号 item was closed and how.
    notified_before: int = 0
    since: date | None = None
    previous_level: str | None = None
    previous: Mapping[str, Any] = field(default_factory=dict)  # figures last told: value, completion …
    closed_on: date | None = None
    closing: str = ""  # why it closed, in Chinese: "已于2023年12月29日完成" / "已报送"

    @property
    def section(self) -> str:
        return section_of(self)


@dataclass(frozen=True)
class Recipient:
    code: str
    name: str
    kind: str  # department | street | working_group | admin
    emails: tuple[str, ...]


@dataclass(frozen=True)
class Digest:
    programme_name: str
    document: str
    round_key: str
    round_title: str  # e.g. "2023年7月月调度"
    at: datetime  # aware; shown in Asia/Shanghai
    recipient: Recipient
    items: tuple[NoticeItem, ...]
    report_links: tuple[tuple[str, str], ...] = ()
    # Who signs the notice, e.g. "鹿城区“十百千”工作专班"; the subject's 【…】 prefix. Empty: programme_name.
    sender: str = ""
    # The document's sentences on urging (督办提醒) and on praise (通报), from programme.yaml.
    mechanism: str = ""
    praise_mechanism: str = ""
    # The cadences this moment's digest covers, e.g. ("月调度", "专班会商"): one mail per moment.
    rounds: tuple[str, ...] = ()
    # Personal links (e.g. "在线报送本月数据" → URL) that the web adds; rendered when present.
    links: Mapping[str, str] = field(default_factory=dict)
    # What the round delivers besides the items (the 年度评估's assessment, a report's summary).
    summary: tuple[str, ...] = ()
    summary_title: str = ""  # e.g. "2023年度综合评估": what the round delivers besides its items
    # The sentence that orders the assessment (the annual cadence's `source`), cited with the summary.
    assessment_source: str = ""

    @property
    def signer(self) -> str:
        return self.sender or self.programme_name

    @property
    def to_working_group(self) -> bool:
        """The working group is told (报告), never urged (贵单位…抓紧推进落实)."""
        return self.recipient.kind == "working_group"

    def sections(self) -> list[tuple[str, list[NoticeItem]]]:
        """Non-empty sections in SECTION_ORDER, items in the order the lifecycle gave them."""
        grouped: dict[str, list[NoticeItem]] = {key: [] for key in SECTION_ORDER}
        for item in self.items:
            grouped[section_of(item)].append(item)
        return [(key, grouped[key]) for key in SECTION_ORDER if grouped[key]]

    def action_count(self) -> int:
        return sum(1 for item in self.items if section_of(item) in ACTION_SECTIONS)

    def worst_section(self) -> str | None:
        present = {section_of(item) for item in self.items}
        return next((key for key in SECTION_ORDER if key in present), None)


def section_of(item: NoticeItem) -> str:
    """Which section an item is listed under.

    Escalations and overdue items without a level are listed with the red lights: an
    overdue task is the most serious state a task can be in.
    """
    if item.kind == "resolved":
        return "resolved"
    if item.kind == "praise" or item.level == "green":
        return "praise"
    if item.kind == "escalation" or item.level == "red":
        return "red"
    if item.level == "yellow":
        return "yellow"
    if item.kind == "overdue" and item.level is None:
        return "red"
    return "reminder"
