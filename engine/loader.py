"""Load and validate a rules directory. Every problem is collected, with file:line:column.

A rule set is a directory holding `programme.yaml` and rule files (`*.yaml` with a top-level
`rules:` and/or `cadence:` list). Rule unit tests live in its `tests/` folder and are not
loaded here. Messages are in Chinese; key names stay in English.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from duban.engine.expr import ExpressionError, parse_bound
from duban.engine.rules import (
    AGGREGATES,
    LIST_NAMES,
    NOTIFY_CHOICES,
    PRAISE_BASES,
    REPORT_NAMES,
    RULE_KINDS,
    STRENGTHS,
    Cadence,
    Position,
    Rule,
    RuleSet,
    Selector,
    Settings,
)
from duban.engine.yaml_errors import explain as explain_yaml_error

_T = TypeVar("_T")
INDICATOR_KINDS = ("level", "growth", "cumulative")
_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_DURATION = re.compile(r"^(\d+)\s*([dwh天周])$")

# -- bounds on what a rule file may say: whatever evaluation cannot use is refused here ------------------
# `duban check` and a reload in the service are the gate: a value that passes must evaluate.
MAX_RULE_FILE_BYTES = 1 << 20  # a rule file is a page of text; 1 MiB is far beyond any real one
MAX_YAML_DEPTH = 20  # rule files nest 4 levels deep (rules → item → indicators → kind)
MAX_NUMBER = 1e12  # |number| in a rule: larger than any yuan figure or percentage a programme sets
MAX_DURATION_DAYS = 3660  # ten years: a 催办 interval beyond that never comes
_INT_RANGES: dict[str, tuple[int, int]] = {"due_day": (1, 31)}
_DEFAULT_INT_RANGE = (0, MAX_DURATION_DAYS)
_SHOW_LIMIT = 60  # characters of a value quoted back in an error message


@dataclass(frozen=True)
class RuleError:
    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class RuleSetInvalid(Exception):
    def __init__(self, errors: list[RuleError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


# --- the rule language, declared once: validation and rules/schema.json both come from here ---


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # str id number int bool bound duration enum intlist strlist selector date
    kinds: tuple[str, ...] = RULE_KINDS
    required: bool = False
    choices: tuple[str, ...] = ()
    description: str = ""


ALL = RULE_KINDS
_TARGETED = ("pace", "milestone", "forecast")
RULE_FIELDS: tuple[Field, ...] = (
    Field("id", "id", required=True, description="Unique name within the rule set (lowercase, digits, _)."),
    Field("kind", "enum", required=True, choices=RULE_KINDS, description="The rule kind."),
    Field("title", "str", required=True, description="Chinese title of the notice; {subject} {period} {unit} are filled in."),
    Field("source", "str", required=True, description="The sentence of the source document this rule encodes."),
    Field("sources", "strmap", ("threshold", "pace", "report_due", "praise", "milestone", "forecast"),
          description="Per indicator code, the sentence that states its target (where one rule reads several "
                      "indicators); notices cite it instead of `source`."),
    Field("indicator", "str", ("threshold", "pace", "report_due", "praise", "milestone", "forecast"), description="One indicator code."),
    Field("indicators", "selector", ("threshold", "pace", "report_due", "praise", "milestone", "forecast"),
          description="all | list of codes | {kind: level|growth|cumulative or list}."),
    Field("tasks", "selector", ("deadline", "praise"), description="all | list of task codes."),
    Field("projects", "selector", ("pace", "threshold"),
          description="all | list of project codes | {category: 战略支撑型, level: 省级, in_year: true}."),
    Field("aggregate", "enum", ("threshold",), choices=AGGREGATES,
          description="Over the selected projects: count, total_investment (总投资), planned_investment "
                      "(this year's plans) or completed_investment (完成投资 this year, 1—N月)."),
    Field("notify", "enum", choices=NOTIFY_CHOICES, description="Who is told: the subject's units, the working group, or both."),
    Field("template", "str", description="Item template in templates/items/ (default: by kind)."),
    Field("action", "str", description="What the recipient should do (Chinese)."),
    Field("repeat", "duration", description="催办 interval for a still-firing warning: 7d, 2w, never."),
    Field("groups", "strlist", description="Cadence groups that evaluate this rule (default [monthly])."),
    Field("at_least", "bound", ("threshold",), description="Lower bound (以上, 不低于, ≥): number, percent (66.5%), fraction (2/3) or expression."),
    Field("more_than", "bound", ("threshold",), description="Strict lower bound (超过, >): equal to it is a miss."),
    Field("at_most", "bound", ("threshold",), description="Upper bound (以下, 不超过, ≤), same forms as at_least."),
    Field("level", "enum", ("threshold",), choices=("red", "yellow"), description="Light when the bound is missed (default red)."),
    Field("yellow_margin", "number", ("threshold",), description="A miss by at most this much lights yellow instead."),
    Field("strength", "enum", ("threshold", *_TARGETED), choices=STRENGTHS,
          description="hard (确保, 不低于: a miss is red) or soft (力争: yellow at worst). For targets: the default "
                      "for targets whose own 力度 column is empty (default hard)."),
    Field("tolerance", "number", _TARGETED,
          description="左右 (comparison about): met within this many percent of the target (default: the target's, else 5)."),
    Field("resolve_margin", "number", ("threshold", "pace"),
          description="Hysteresis: the alert is closed (销号) only once the bound is beaten by this much "
                      "(threshold: in the indicator's measure; pace: points ahead of time progress). Default 0."),
    Field("target", "enum", ("pace",), choices=("year", "final"),
          description="Annual targets paced by the year (default), or programme-end targets paced by the programme's "
                      "elapsed share (derived: 按规划期序时进度测算)."),
    Field("per_unit", "bool", ("pace", "report_due", "milestone", "forecast"), description="Judge each responsible unit on its own figures."),
    Field("yellow_gap", "number", ("pace",), description="Points behind time progress still yellow (default 10)."),
    Field("praise_margin", "number", ("pace",), description="Points ahead of time progress that earn praise."),
    Field("remind_days", "intlist", ("deadline", "milestone"),
          description="Reminders this many days before the deadline (deadline default [7, 1]; milestone default [30, 7])."),
    Field("escalate_after_days", "int", ("deadline",), description="Days overdue before red, copied to the working group (default 15)."),
    Field("due_day", "int", ("report_due",), description="Figures for month M are due on this day of M+1 (default 10)."),
    Field("remind_days_before", "int", ("report_due",), description="Reminder this many days before the due date (default 3)."),
    Field("escalate_after_working_days", "int", ("report_due",),
          description="Working days after the due date before missing figures turn red and the working group is "
                      "copied (default 10)."),
    Field("basis", "enum", ("praise",), required=True, choices=PRAISE_BASES, description="What earns praise."),
    Field("margin", "number", ("praise",), description="ahead_of_pace: points ahead of time progress (default 10)."),
    Field("from_month", "int", ("forecast",), description="First month-end from which a forecast is made (default 3: after March's figures)."),
    Field("warn_below", "number", ("forecast",), description="Warn when the projected year-end value is below this percent of the target (default 100)."),
)
RULE_FIELD_NAMES = tuple(f.name for f in RULE_FIELDS)

CADENCE_FIELDS: tuple[Field, ...] = (
    Field("id", "id", required=True, description="Unique name of the fire time."),
    Field("name", "str", required=True, description="Chinese name, e.g. 月调度."),
    Field("when", "str", required=True, description="Cron expression or phrase: 每月第一个工作日 09:00, 每两周周一."),
    Field("groups", "strlist", required=True, description="Rule groups evaluated at this fire time."),
    Field("digest", "enum", choices=("consultation", "monthly_dispatch", "quarterly", "annual", "notices"),
          description="Which digest is sent (default notices)."),
    Field("to", "strlist", description="Recipients: units, working_group (default both)."),
    Field("source", "str", description="The sentence of the document this cadence encodes."),
    Field("anchor", "date", description="First fire date for every-two-weeks / every-two-months schedules."),
)

SETTINGS_FIELDS: tuple[Field, ...] = (
    Field("programme", "id", required=True, description="Programme code; must match the database's programme."),
    Field("name", "str", description="Programme name, e.g. 湖州市服务业高质量发展“十百千”工程."),
    Field("title", "str", description="The document's full title, as notices cite it in 《》: "
          "温州市鹿城区服务业高质量发展“十百千”工程实施方案（2023-2027年）."),
    Field("document", "str", description="Document number, e.g. 温鹿政办〔2023〕55号."),
    Field("issued", "date", description="Date the document was issued (成文日期), e.g. 2023-08-24; "
          "notices start from it unless `start` is given."),
    Field("start", "date", description="First day notices are sent (default: `issued`)."),
    Field("mechanism", "str", description="The document's sentence on urging (亮灯督促/督促) that every "
          "督办提醒 cites, quoted as written."),
    Field("praise_mechanism", "str", description="The document's sentence on praise (通报表扬) that a "
          "通报 of praise and 销号 cites, quoted as written."),
    Field("target_names", "strmap", description="Per indicator@unit, the name the document gives a unit's share of a "
          "target (区人力社保局's 4 of 新增规模以上服务业企业 is 培育规上人力资源服务企业); notices, reports and the "
          "board use it instead of the indicator's name."),
    Field("working_group", "str", description="Unit code of the working group (工作专班); default: the unit of kind working_group."),
    Field("admin_email", "str", description="Where rule, template and delivery errors are reported."),
    Field("subject_prefix", "str", description="E-mail subject prefix, e.g. 【鹿城区“十百千”工作专班】."),
    Field("calendar", "str", description="Calendar override file (relative to this directory)."),
    *(Field(f"report_{kind}", "str", description=f"What the {kind} report is called, as the document names it "
            f"(default {name}); e.g. {example}.")
      for kind, name, example in (("monthly", "月度监测报告", "月度专报"), ("quarterly", "季度分析报告", "季度通报"),
                                  ("annual", "年度评价报告", "年度评估"))),
    *(Field(f"list_{key}", "str", description=f"What the reports' {what} is called, as the document names it "
            f"(default {LIST_NAMES[key]}); e.g. {example}.")
      for key, what, example in (("indicators", "indicator list", "主要指标进度表"),
                                 ("projects", "project list", "重大项目实施表"),
                                 ("tasks", "task list", "重点任务攻坚表"),
                                 ("ranking", "ranking of units", "争先创优晾晒表"),
                                 ("ledger", "ledger of notices opened and closed", "督导服务销号表"),
                                 ("focus", "quarter's list of units to supervise", "督导服务名单"),
                                 ("assessment", "year's assessment of the units (2023年度…, sheet 年度…)", "综合评估"))),
)

# "" means: the item template named after the notice kind (warning, reminder, overdue, praise …).
DEFAULT_TEMPLATE = {"threshold": "", "pace": "", "deadline": "", "report_due": "report_due", "praise": "",
                    "milestone": "", "forecast": ""}


def _pos(node: Any, key: Any = None, index: int | None = None) -> tuple[int, int]:
    try:
        if index is not None:
            line, col = node.lc.item(index)
        elif key is not None:
            line, col = node.lc.value(key) if not isinstance(node.get(key), CommentedMap | CommentedSeq) else node.lc.key(key)
        else:
            line, col = node.lc.line, node.lc.col
        return line + 1, col + 1
    except (AttributeError, KeyError, TypeError):
        return 1, 1


class _FileChecker:
    def __init__(self, path: Path, display: str) -> None:
        self.path = path
        self.display = display
        self.errors: list[RuleError] = []

    def error(self, node: Any, message: str, key: Any = None, index: int | None = None, key_pos: bool = False) -> None:
        if key_pos and key is not None:
            try:
                line, col = node.lc.key(key)
                self.errors.append(RuleError(self.display, line + 1, col + 1, message))
                return
            except (AttributeError, KeyError, TypeError):
                pass
        line, col = _pos(node, key, index)
        self.errors.append(RuleError(self.display, line, col, message))

    def load(self) -> Any:
        yaml = YAML(typ="rt")
        try:
            text = self.path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            self.errors.append(RuleError(self.display, 1, 1, "文件不是 UTF-8 编码，请另存为 UTF-8"))
            return None
        if len(text.encode("utf-8")) > MAX_RULE_FILE_BYTES:
            self.errors.append(RuleError(self.display, 1, 1,
                                         f"文件过大（超过 {MAX_RULE_FILE_BYTES // 1024} KB），规则文件不应这么长，请检查是否放错了文件"))
            return None
        try:
            if not self._plain_structure(yaml, text):
                return None
            return yaml.load(text)
        except MarkedYAMLError as exc:
            problem = explain_yaml_error(exc)  # Chinese, at the mark that points at the cause
            self.errors.append(RuleError(self.display, problem.line, problem.column, problem.message))
            return None
        except Exception as exc:  # ruamel raises a few unmarked errors on odd input
            self.errors.append(RuleError(self.display, 1, 1, f"YAML 语法错误：{exc}"))
            return None

    def _plain_structure(self, yaml: YAML, text: str) -> bool:
        """Refuses YAML aliases and nesting beyond MAX_YAML_DEPTH before anything is built."""
        problem = yaml_structure_problem(text, yaml)
        if problem is not None:
            self.errors.append(RuleError(self.display, *problem))
            return False
        return True

    def check_keys(self, mapping: CommentedMap, allowed: Iterable[str], what: str) -> None:
        allowed = tuple(allowed)
        for key in mapping:
            if key not in allowed:
                shown = _clip(str(key)) if isinstance(key, str | int | float) else _show(key)
                close = difflib.get_close_matches(shown, allowed, n=1, cutoff=0.6)
                hint = f"，是否应为 `{close[0]}`？" if close else f"；可用的键：{', '.join(allowed)}"
                self.error(mapping, f"{what}中有未知的键 `{shown}`{hint}", key=key, key_pos=True)

    def value(self, mapping: CommentedMap, spec: Field) -> Any:
        """Check one field's type; returns the converted value or None after recording an error."""
        raw = mapping[spec.name]

        def bad(expected: str) -> None:
            self.error(mapping, f"`{spec.name}` 应为{expected}，实际为 {_show(raw)}", key=spec.name)

        kind = spec.type
        if kind in ("str", "id"):
            if not isinstance(raw, str) or not raw.strip():
                bad("非空文本")
                return None
            if kind == "id" and not _ID.match(raw):
                bad("小写字母开头、由小写字母/数字/下划线组成的标识")
                return None
            return raw.strip()
        if kind == "enum":
            if not isinstance(raw, str | int | float) or raw not in spec.choices:
                close = difflib.get_close_matches(_clip(raw), spec.choices, n=1, cutoff=0.5) \
                    if isinstance(raw, str) else []
                hint = f"，是否应为 `{close[0]}`？" if close else ""
                bad(f"以下之一：{' | '.join(spec.choices)}{hint}")
                return None
            return raw
        if kind == "number":
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                bad("数字")
                return None
            if not _finite_number(raw):
                bad(f"有限的数字（绝对值不超过 {MAX_NUMBER:.0e}；不能是 .nan、.inf）")
                return None
            return float(raw)
        if kind == "int":
            low, high = _INT_RANGES.get(spec.name, _DEFAULT_INT_RANGE)
            if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
                bad(f"非负整数（不超过 {high}）" if (low, high) == _DEFAULT_INT_RANGE else f"{low} 到 {high} 之间的整数")
                return None
            return int(raw)
        if kind == "bool":
            if not isinstance(raw, bool):
                bad("true 或 false")
                return None
            return raw
        if kind == "intlist":
            if not isinstance(raw, list) or not all(isinstance(v, int) and not isinstance(v, bool)
                                                    and 0 <= v <= MAX_DURATION_DAYS for v in raw):
                bad(f"非负整数列表（每项不超过 {MAX_DURATION_DAYS}），如 [7, 1]")
                return None
            return tuple(int(v) for v in raw)
        if kind == "strmap":
            if not isinstance(raw, dict) or not raw or not all(isinstance(k, str) and k and isinstance(v, str) and v.strip()
                                                               for k, v in raw.items()):
                bad("指标代码到原文句子的映射，如 {deposit_loan_increase: 力争……新增超2000亿元。（附件1 第8项）}")
                return None
            return tuple((str(k), str(v).strip()) for k, v in raw.items())
        if kind == "strlist":
            if isinstance(raw, str):
                return (raw,)
            if not isinstance(raw, list) or not raw or not all(isinstance(v, str) and v for v in raw):
                bad("文本列表，如 [monthly]")
                return None
            return tuple(raw)
        if kind == "duration":
            if isinstance(raw, str) and raw.strip() in ("never", "不重复"):
                return "never"
            m = _DURATION.match(str(raw).strip()) if isinstance(raw, str) else None
            if not m:
                bad("时长，如 7d（天）、2w（周）、12h（小时）或 never")
                return None
            amount, unit = int(m[1]), m[2]
            days = amount * 7 if unit in ("w", "周") else amount / 24 if unit == "h" else amount
            if not 0 < days <= MAX_DURATION_DAYS:
                bad(f"大于 0、不超过 {MAX_DURATION_DAYS} 天的时长，如 7d、2w")
                return None
            if unit in ("w", "周"):
                return dt.timedelta(weeks=amount)
            if unit == "h":
                return dt.timedelta(hours=amount)
            return dt.timedelta(days=amount)
        if kind == "date":
            if isinstance(raw, dt.date):
                return raw
            try:
                return dt.date.fromisoformat(str(raw))
            except ValueError:
                bad("日期，如 2023-01-02")
                return None
        if kind == "bound":
            try:
                return parse_bound(raw)
            except ExpressionError as exc:
                line, col = _pos(mapping, spec.name)
                self.errors.append(RuleError(
                    self.display, line, col + exc.offset,
                    f"`{spec.name}` 必须是数字、百分数、分数（如 2/3）或指标表达式（如 fixed_asset_investment_growth - 1），"
                    f"实际为 {_show(raw)}：{exc}",
                ))
                return None
        if kind == "selector":
            return raw  # interpreted by _selector, which knows the rule kind
        raise AssertionError(kind)


def yaml_structure_problem(text: str, yaml: YAML | None = None) -> tuple[int, int, str] | None:
    """(line, column, Chinese message) of the first YAML anchor or alias (`&name`, `*name`) or nesting beyond
    MAX_YAML_DEPTH.

    An alias repeats a value without copying it; nine-way aliases eight deep are 43 million values once
    printed or walked, which a 2.6 KB file can hold. Duban's YAML files never need them: each value is
    written out. Cheap for ordinary files (`_may_alias_or_nest_deep` decides whether to parse at all).
    Raises MarkedYAMLError for a file that is not YAML, as loading would.
    """
    if not _may_alias_or_nest_deep(text):
        return None
    depth = 0
    for event in (yaml or YAML(typ="rt")).parse(text):
        name = type(event).__name__
        # An anchor is only there to be aliased; refusing it too keeps ruamel's English warnings (a
        # duplicate anchor) away from the admin and says the same thing at the first place it matters.
        if name == "AliasEvent" or getattr(event, "anchor", None):
            mark = event.start_mark
            return mark.line + 1, mark.column + 1, "不允许使用 YAML 锚点和别名（&名称、*名称）：请直接写出取值"
        if name in ("MappingStartEvent", "SequenceStartEvent"):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                mark = event.start_mark
                return (mark.line + 1, mark.column + 1,
                        f"嵌套层级过深（超过 {MAX_YAML_DEPTH} 层），不需要这么深的结构")
        elif name in ("MappingEndEvent", "SequenceEndEvent"):
            depth -= 1
    return None


def _may_alias_or_nest_deep(text: str) -> bool:
    """A cheap look for what `_plain_structure` refuses, so ordinary files are parsed once, not twice.

    An alias needs an anchor (`&`); deep flow nesting needs brackets; deep block nesting needs deep
    indentation. False means none of them can be present.
    """
    if "&" in text:
        return True
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(0, depth - 1)
    if deepest > MAX_YAML_DEPTH:
        return True
    return any(len(line) - len(line.lstrip()) > 2 * MAX_YAML_DEPTH for line in text.splitlines())


def _clip(value: str) -> str:
    return value if len(value) <= _SHOW_LIMIT else value[:_SHOW_LIMIT] + "…"


def _finite_number(value: int | float) -> bool:
    """True for a number a rule can use: finite and within ±MAX_NUMBER (a 400-digit int is not)."""
    if isinstance(value, int):
        return -MAX_NUMBER <= value <= MAX_NUMBER
    return math.isfinite(value) and abs(value) <= MAX_NUMBER


def _show(value: Any) -> str:
    """A value quoted back in an error: never expanded (mappings and lists by kind), never long."""
    if isinstance(value, str):
        return f"'{_clip(value)}'"
    if value is None:
        return "空值"
    if isinstance(value, dict):
        return "映射"
    if isinstance(value, list):
        return "列表"
    if isinstance(value, int) and not isinstance(value, bool) and not -MAX_NUMBER <= value <= MAX_NUMBER:
        return f"{len(str(abs(value)))} 位的整数"
    return _clip(repr(value))


def load_rule_set(directory: Path, *, display_root: Path | None = None) -> RuleSet:
    """Load and validate one rule set. Raises RuleSetInvalid listing every error."""
    directory = Path(directory)
    root = display_root if display_root is not None else Path.cwd()
    errors: list[RuleError] = []

    def shown(path: Path) -> str:
        try:
            return str(path.resolve().relative_to(root.resolve()))
        except ValueError:
            return str(path)

    settings_path = directory / "programme.yaml"
    settings: Settings | None = None
    if not settings_path.is_file():
        errors.append(RuleError(shown(settings_path), 1, 1, "缺少 programme.yaml（规则集的项目设置：programme、working_group 等）"))
    else:
        checker = _FileChecker(settings_path, shown(settings_path))
        settings = _checked(checker, lambda: _settings(checker, checker.load(), directory), None)
        errors += checker.errors

    rules: list[Rule] = []
    cadences: list[Cadence] = []
    files = sorted(p for p in directory.glob("*.yaml") if p.name != "programme.yaml")
    seen_ids: dict[str, Position] = {}
    programme = settings.programme if settings else directory.name
    for path in files:
        checker = _FileChecker(path, shown(path))
        document = checker.load()
        if document is not None:
            nothing: tuple[list[Rule], list[Cadence]] = ([], [])
            file_rules, file_cadences = _checked(checker, functools.partial(_rule_file, checker, document, programme), nothing)
            items: list[Rule | Cadence] = [*file_rules, *file_cadences]
            for item in items:
                key = item.id
                if key in seen_ids:
                    checker.errors.append(RuleError(
                        checker.display, item.position.line, item.position.column,
                        f"规则 id `{key.split('.', 1)[-1]}` 重复，已在 {seen_ids[key]} 定义",
                    ))
                else:
                    seen_ids[key] = item.position
            rules += file_rules
            cadences += file_cadences
        errors += checker.errors
    if errors:
        raise RuleSetInvalid(errors)
    if settings is None:  # an empty programme.yaml (or only comments) parses without an error of its own
        raise RuleSetInvalid([RuleError(shown(settings_path), 1, 1,
                                        "programme.yaml 为空：至少需要 programme 一项设置")])
    if settings.calendar is not None:
        from duban.engine.calendar import CalendarFileError, WorkingCalendar

        try:
            WorkingCalendar.load(settings.calendar)
        except CalendarFileError as exc:
            raise RuleSetInvalid([RuleError(shown(settings_path), 1, 1, f"`calendar` 指定的节假日调整文件有误：{exc}")]) from None
    return RuleSet(directory=directory, settings=settings, rules=rules, cadences=cadences, files=files)


def _checked(checker: _FileChecker, check: Callable[[], _T], failed: _T) -> _T:
    """The gate never crashes: a value no check foresaw becomes a Chinese error at the file, not a traceback."""
    try:
        return check()
    except (RecursionError, OverflowError, ValueError, TypeError, MemoryError) as exc:
        checker.errors.append(RuleError(checker.display, 1, 1,
                                        f"文件中有无法处理的取值（{type(exc).__name__}），请检查数字大小和嵌套层级"))
        return failed


def _settings(checker: _FileChecker, document: Any, directory: Path) -> Settings | None:
    if document is None:
        return None
    if not isinstance(document, CommentedMap):
        checker.error(document, "programme.yaml 顶层应为映射（键: 值）")
        return None
    checker.check_keys(document, [f.name for f in SETTINGS_FIELDS], "programme.yaml ")
    values = _fields(checker, document, SETTINGS_FIELDS, "programme.yaml")
    if "programme" not in values:
        return None
    calendar = values.get("calendar")
    return Settings(
        programme=values["programme"],
        name=values.get("name", ""),
        document=values.get("document", ""),
        working_group=values.get("working_group", ""),
        admin_email=values.get("admin_email", ""),
        subject_prefix=values.get("subject_prefix", ""),
        calendar=(directory / calendar) if calendar else None,
        title=values.get("title", ""),
        issued=values.get("issued"),
        start=values.get("start"),
        mechanism=values.get("mechanism", ""),
        praise_mechanism=values.get("praise_mechanism", ""),
        target_names=dict(values.get("target_names", ())),
        report_names={kind: values[f"report_{kind}"] for kind in REPORT_NAMES if values.get(f"report_{kind}")},
        list_names={key: values[f"list_{key}"] for key in LIST_NAMES if values.get(f"list_{key}")},
    )


def _fields(checker: _FileChecker, mapping: CommentedMap, specs: Iterable[Field], what: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for spec in specs:
        if spec.name not in mapping:
            if spec.required:
                checker.error(mapping, f"{what}缺少必填键 `{spec.name}`")
            continue
        value = checker.value(mapping, spec)
        if value is not None:
            values[spec.name] = value
    return values


def _rule_file(checker: _FileChecker, document: Any, programme: str) -> tuple[list[Rule], list[Cadence]]:
    if not isinstance(document, CommentedMap):
        checker.error(document, "规则文件顶层应为映射，包含 `rules:` 或 `cadence:` 列表")
        return [], []
    checker.check_keys(document, ("rules", "cadence"), "规则文件顶层")
    rules: list[Rule] = []
    cadences: list[Cadence] = []
    for section, build in (("rules", _rule), ("cadence", _cadence)):
        if section not in document:
            continue
        items = document[section]
        if not isinstance(items, CommentedSeq):
            checker.error(document, f"`{section}` 应为列表（每项以 - 开头）", key=section)
            continue
        for index, item in enumerate(items):
            if not isinstance(item, CommentedMap):
                checker.error(items, f"`{section}` 的第 {index + 1} 项应为映射", index=index)
                continue
            built = build(checker, item, programme)
            if built is not None:
                (rules if section == "rules" else cadences).append(built)  # type: ignore[arg-type]
    return rules, cadences


def _rule(checker: _FileChecker, item: CommentedMap, programme: str) -> Rule | None:
    before = len(checker.errors)
    kind = item.get("kind")
    what = f"规则 `{item.get('id', '?')}` "
    checker.check_keys(item, RULE_FIELD_NAMES, what)
    known_kind = kind in RULE_KINDS
    # With an unknown kind only the common fields can be checked; the kind error is reported anyway.
    specs = [f for f in RULE_FIELDS if (kind in f.kinds if known_kind else f.kinds == RULE_KINDS)]
    if known_kind:
        for f in RULE_FIELDS:
            if f.name in item and kind not in f.kinds:
                checker.error(item, f"`{f.name}` 不适用于 kind: {kind} 的规则（适用于 {', '.join(f.kinds)}）", key=f.name, key_pos=True)
    values = _fields(checker, item, specs, what)
    selector = _selector(checker, item, values.get("kind")) if known_kind else None
    if values.get("kind") == "threshold" and sum(k in item for k in ("at_least", "more_than", "at_most")) != 1:
        checker.error(item, f"{what}须有 `at_least`、`more_than` 或 `at_most` 之一（只能有一个）")
    if values.get("kind") == "threshold" and selector is not None:
        if selector.subject_type == "project" and "aggregate" not in item:
            checker.error(item, f"{what}对项目清单设阈值时须写 `aggregate`（count、total_investment、planned_investment 或 completed_investment）")
        if selector.subject_type != "project" and "aggregate" in item:
            checker.error(item, "`aggregate` 只适用于 `projects:` 选定的项目清单", key="aggregate", key_pos=True)
    if values.get("tolerance", 0.0) < 0 or values.get("tolerance", 0.0) >= 100:
        checker.error(item, f"`tolerance` 应为 0 到 100 之间的百分数（“左右”的容差），实际为 {values['tolerance']:g}", key="tolerance")
    if "from_month" in values and not 1 <= values["from_month"] <= 11:
        checker.error(item, f"`from_month` 应为 1 到 11 的月份，实际为 {values['from_month']}", key="from_month")
    if values.get("resolve_margin", 0.0) < 0:
        checker.error(item, f"`resolve_margin` 应为非负数（销号前须超过标准的幅度），实际为 {values['resolve_margin']:g}",
                      key="resolve_margin")
    if len(checker.errors) > before or selector is None:
        return None
    line, col = _pos(item)
    repeat = values.get("repeat", dt.timedelta(days=7))
    return Rule(
        field_positions=_indicator_field_positions(checker.display, item),
        id=f"{programme}.{values['id']}",
        kind=values["kind"],
        title=values["title"],
        source=values["source"],
        selector=selector,
        position=Position(checker.display, line, col),
        notify=values.get("notify", "units"),
        template=values.get("template", DEFAULT_TEMPLATE[values["kind"]]),
        action=values.get("action", ""),
        repeat=None if repeat == "never" else repeat,
        groups=values.get("groups", ("monthly",)),
        sources=values.get("sources", ()),
        resolve_margin=values.get("resolve_margin", 0.0),
        at_least=values.get("at_least"),
        at_most=values.get("at_most"),
        more_than=values.get("more_than"),
        aggregate=values.get("aggregate", ""),
        level=values.get("level", "red"),
        strength=values.get("strength", "hard"),
        tolerance=values.get("tolerance"),
        yellow_margin=values.get("yellow_margin"),
        target=values.get("target", "year"),
        per_unit=values.get("per_unit", False),
        yellow_gap=values.get("yellow_gap", 10.0),
        praise_margin=values.get("praise_margin"),
        remind_days=values.get("remind_days", (30, 7) if values["kind"] == "milestone" else (7, 1)),
        escalate_after_days=values.get("escalate_after_days", 15),
        due_day=values.get("due_day", 10),
        remind_days_before=values.get("remind_days_before", 3),
        escalate_after_working_days=values.get("escalate_after_working_days", 10),
        basis=values.get("basis", ""),
        margin=values.get("margin", 10.0),
        from_month=values.get("from_month", 3),
        warn_below=values.get("warn_below", 100.0),
    )


def _indicator_field_positions(display: str, item: CommentedMap) -> tuple[tuple[str, Position], ...]:
    positions = [(key, Position(display, *_pos(item, key))) for key in ("indicator", "indicators", "at_least", "more_than", "at_most")
                 if key in item]
    codes = item.get("indicators")
    if isinstance(codes, CommentedSeq):
        positions += [(f"indicators:{code}", Position(display, *_pos(codes, index=i)))
                      for i, code in enumerate(codes) if isinstance(code, str)]
    return tuple(positions)


_SUBJECT_KEYS = {
    "threshold": ("indicator", "indicators", "projects"),
    "pace": ("indicator", "indicators", "projects"),
    "report_due": ("indicator", "indicators"),
    "deadline": ("tasks",),
    "milestone": ("indicator", "indicators"),
    "forecast": ("indicator", "indicators"),
}
_PROJECT_FILTER_KEYS = ("codes", "category", "level", "in_year", "year")


def _selector(checker: _FileChecker, item: CommentedMap, kind: str | None) -> Selector | None:
    if kind is None:
        return None
    allowed: tuple[str, ...]
    if kind == "praise":
        basis = item.get("basis")
        allowed = ("tasks",) if basis == "tasks_on_time" else ("indicator", "indicators")
    else:
        allowed = _SUBJECT_KEYS[kind]
    present = [k for k in ("indicator", "indicators", "tasks", "projects") if k in item]
    if len(present) != 1 or present[0] not in allowed:
        checker.error(item, f"规则须用以下之一指定对象：{' | '.join(f'`{k}`' for k in allowed)}（只能一个）",
                      key=present[0] if present else None, key_pos=bool(present))
        return None
    key = present[0]
    raw = item[key]
    subject_type = {"indicator": "indicator", "indicators": "indicator", "tasks": "task", "projects": "project"}[key]
    if key == "indicator":
        if not isinstance(raw, str) or not raw:
            checker.error(item, f"`indicator` 应为一个指标代码，实际为 {_show(raw)}", key=key)
            return None
        return Selector("indicator", codes=(raw,))
    if raw == "all":
        return Selector(subject_type, everything=True)
    if isinstance(raw, list) and raw and all(isinstance(v, str) and v for v in raw):
        return Selector(subject_type, codes=tuple(raw))
    if key == "projects" and isinstance(raw, CommentedMap):
        return _project_filter(checker, raw)
    if key == "indicators" and isinstance(raw, CommentedMap):
        checker.check_keys(raw, ("kind",), "`indicators` ")
        raw_kinds = raw.get("kind")
        kinds = [raw_kinds] if isinstance(raw_kinds, str) else raw_kinds
        if not isinstance(kinds, list) or not kinds or any(k not in INDICATOR_KINDS for k in kinds):
            checker.error(raw, f"`indicators.kind` 应为 {' | '.join(INDICATOR_KINDS)} 或其列表，实际为 {_show(raw.get('kind'))}",
                          key="kind" if "kind" in raw else None)
            return None
        return Selector("indicator", kinds=tuple(kinds))
    hint = {"indicators": "或 {kind: cumulative}", "projects": "或 {category: 战略支撑型, level: 省级, in_year: true}"}.get(key, "")
    checker.error(item, f"`{key}` 应为 all、代码列表{hint}，实际为 {_show(raw)}", key=key)
    return None


def _project_filter(checker: _FileChecker, raw: CommentedMap) -> Selector | None:
    """`projects: {category: 战略支撑型, level: 省级, in_year: true}`: the project list, filtered."""
    from duban.store.models import PROJECT_CATEGORIES, PROJECT_LEVELS

    before = len(checker.errors)
    checker.check_keys(raw, _PROJECT_FILTER_KEYS, "`projects` ")
    found: dict[str, tuple[str, ...]] = {}
    for key, choices in (("category", PROJECT_CATEGORIES), ("level", PROJECT_LEVELS)):
        if key not in raw:
            continue
        value = raw[key]
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not values or any(v not in choices for v in values):
            checker.error(raw, f"`projects.{key}` 应为 {' | '.join(choices)} 或其列表，实际为 {_show(value)}", key=key)
            continue
        found[key] = tuple(values)
    in_year = raw.get("in_year", False)
    if not isinstance(in_year, bool):
        checker.error(raw, f"`projects.in_year` 应为 true 或 false，实际为 {_show(in_year)}", key="in_year")
    codes = raw.get("codes", [])
    if "codes" in raw and (not isinstance(codes, list) or not codes or not all(isinstance(c, str) and c for c in codes)):
        checker.error(raw, f"`projects.codes` 应为项目代码列表，实际为 {_show(codes)}", key="codes")
    year = raw.get("year", 0)
    if "year" in raw and (isinstance(year, bool) or not isinstance(year, int) or not 2000 <= year <= 2100):
        checker.error(raw, f"`projects.year` 应为年份，如 2023，实际为 {_show(year)}", key="year")
    if len(checker.errors) > before:
        return None
    return Selector("project", codes=tuple(codes) if isinstance(codes, list) else (), everything=False,
                    categories=found.get("category", ()), levels=found.get("level", ()),
                    in_year=bool(in_year) or bool(year), year=int(year))


def _cadence(checker: _FileChecker, item: CommentedMap, programme: str) -> Cadence | None:
    before = len(checker.errors)
    what = f"节奏 `{item.get('id', '?')}` "
    checker.check_keys(item, [f.name for f in CADENCE_FIELDS], what)
    values = _fields(checker, item, CADENCE_FIELDS, what)
    for target in values.get("to", ()):
        if target not in ("units", "working_group"):
            checker.error(item, f"`to` 的取值应为 units 或 working_group，实际为 '{target}'", key="to")
    if len(checker.errors) > before:
        return None
    line, col = _pos(item)
    return Cadence(
        id=f"{programme}.{values['id']}",
        name=values["name"],
        when=values["when"],
        groups=values["groups"],
        digest=values.get("digest", "notices"),
        to=values.get("to", ("units", "working_group")),
        position=Position(checker.display, line, col),
        source=values.get("source", ""),
        anchor=values.get("anchor"),
    )


def check_against_store(
    rule_set: RuleSet, indicator_codes: set[str], unit_codes: set[str], template_exists: Callable[[str], bool] | None = None,
    working_group_codes: set[str] | None = None,
) -> list[RuleError]:
    """Cross-checks that need the database: unknown indicator codes, an unknown working group."""
    errors: list[RuleError] = []
    for rule in rule_set.rules:
        missing = sorted(rule.referenced_indicators - indicator_codes)
        for code in missing:
            at = rule.indicator_position(code)
            errors.append(RuleError(at.file, at.line, at.column,
                                    f"规则 `{rule.short_id}` 引用了数据库中不存在的指标代码 `{code}`"))
        if rule.template and template_exists is not None and not template_exists(rule.template):
            errors.append(RuleError(rule.position.file, rule.position.line, rule.position.column,
                                    f"规则 `{rule.short_id}` 的通知模板 `{rule.template}` 不存在（templates/items/{rule.template}.txt.j2）"))
    wg = rule_set.settings.working_group
    if unit_codes and wg and wg not in unit_codes:
        errors.append(RuleError(str(rule_set.directory / "programme.yaml"), 1, 1,
                                f"`working_group` 指定的单位代码 `{wg}` 在数据库中不存在"))
    if unit_codes and not wg and not working_group_codes:
        errors.append(RuleError(str(rule_set.directory / "programme.yaml"), 1, 1,
                                "找不到工作专班：单位清单中没有类型为“专班”（working_group）的单位，programme.yaml 也未用 "
                                "`working_group` 指定；升级督办和专班汇总无人接收。请在单位清单中登记专班（类型填“专班”）"))
    return errors


def resolve_rule_set(directory: Path, programme: str | None) -> Path:
    """`--rules rules/` names either one rule set or a folder of them; pick the database's programme."""
    sets = find_rule_sets(directory)
    if len(sets) == 1 and sets[0] == Path(directory):
        return sets[0]
    for candidate in sets:
        if candidate.name == programme:
            return candidate
    names = ", ".join(p.name for p in sets) or "无"
    if programme is None:
        raise RuleSetInvalid([RuleError(str(directory), 1, 1,
                                        f"数据库尚未导入项目（programme），无法从 {directory} 中选择规则集（可选：{names}）；请用 --rules 指定，如 --rules {directory}/lucheng")])
    raise RuleSetInvalid([RuleError(str(directory), 1, 1,
                                    f"{directory} 下没有项目 `{programme}` 的规则集（可选：{names}）；请用 --rules 指定")])


def find_rule_sets(directory: Path) -> list[Path]:
    """A directory that is a rule set, or the rule sets directly beneath it (rules/ → rules/lucheng …)."""
    directory = Path(directory)
    if (directory / "programme.yaml").is_file():
        return [directory]
    return sorted(p for p in directory.iterdir() if p.is_dir() and (p / "programme.yaml").is_file()) if directory.is_dir() else []
