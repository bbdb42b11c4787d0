"""Render a `Digest` into a subject, a plain-text body, an HTML body and DingTalk markdown.

Templates are admin-edited files, so they run in jinja2's sandbox and every failure is contained:
a broken template is reported as `path:line: 中文信息` and replaced by a built-in fallback for
that template only, so no notice is ever lost because of a typo in a template.

Items are rendered one by one by their own template (`items/<template>.{txt,html}.j2`) and the
digest templates receive the rendered items (`entry.text`, `entry.html`): this is what lets one
broken item template fall back without taking the whole digest down with it.
"""

from __future__ import annotations

import ctypes
import itertools
import operator
import os
import re
import threading
import time
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from jinja2 import (
    BaseLoader,
    DictLoader,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
    nodes,
    pass_context,
    select_autoescape,
)
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from duban.notifiers.digest import (
    ACTION_SECTIONS,
    KIND_LABELS,
    LEVEL_LABELS,
    SECTION_LABELS,
    SECTION_ORDER,
    Digest,
    NoticeItem,
    UnitRef,
)
from duban.paths import BUNDLED_TEMPLATES

DEFAULT_TEMPLATES_DIR = BUNDLED_TEMPLATES
TEMPLATE_NAME = re.compile(r"^[a-z0-9_][a-z0-9_-]*$")

try:
    from zoneinfo import ZoneInfo

    SHANGHAI: Any = ZoneInfo("Asia/Shanghai")
except Exception:  # no tz database on the machine: China has no DST, a fixed offset is exact
    SHANGHAI = timezone(timedelta(hours=8), "CST")

# Colours chosen for contrast on white; the text label always accompanies the colour.
BADGE_STYLES = {
    "red": "background:#c0392b;color:#ffffff",
    "yellow": "background:#f1c40f;color:#3d3d00",
    "reminder": "background:#2e6fb7;color:#ffffff",
    "blue": "background:#2e6fb7;color:#ffffff",
    "praise": "background:#2e8b57;color:#ffffff",
    "green": "background:#2e8b57;color:#ffffff",
    "resolved": "background:#7f8c8d;color:#ffffff",
}


# -- bounds on one render: an admin template may loop for ever or build a 50 MB string ---------------------
# Beyond a bound the template is treated as broken: the built-in template is used for it from then on
# in this round, and the admin is told (the problem is `runtime`, so the round reports it).
RENDER_SECONDS = 2.0  # per template render (DUBAN_TEMPLATE_SECONDS)
MAX_ITEM_CHARS = 100_000  # one item's text or HTML
MAX_DIGEST_CHARS = 10_000_000  # a whole digest, subject or markdown
MAX_POWER = 1_000  # `a ** b` with b beyond this runs in C for minutes: refused


def render_seconds() -> float:
    try:
        return max(0.01, float(os.environ.get("DUBAN_TEMPLATE_SECONDS", RENDER_SECONDS)))
    except ValueError:
        return RENDER_SECONDS


class RenderTimeout(Exception):
    """Raised inside a render thread by the watchdog when its render ran out of time."""


class OutputTooLarge(Exception):
    """A template expression would produce more text than one message may hold."""


class _Watchdog:
    """Interrupts a render that runs past its deadline, on whichever thread it runs.

    A render is Python bytecode (jinja2 compiles templates to Python), so an exception set with
    ``PyThreadState_SetAsyncExc`` is raised in it at the next bytecode: a `for` over range(100000)
    nested twice stops within milliseconds of the deadline. One daemon thread serves every render;
    ``arm``/``disarm`` cost a lock and a dict entry. ``disarm`` clears an exception set but not yet
    raised, so it can never land in code after the render.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._armed: dict[int, tuple[float, int]] = {}
        self._fired: set[int] = set()
        self._tokens = itertools.count(1)
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float) -> int:
        with self._condition:
            token = next(self._tokens)
            self._armed[threading.get_ident()] = (time.monotonic() + seconds, token)
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="duban-render-watchdog", daemon=True)
                self._thread.start()
            self._condition.notify()
            return token

    def disarm(self, token: int) -> bool:
        """True when this render's deadline passed (the caller then raises RenderTimeout itself)."""
        with self._condition:
            ident = threading.get_ident()
            if self._armed.get(ident, (0.0, 0))[1] == token:
                del self._armed[ident]
            if token not in self._fired:
                return False
            self._fired.discard(token)
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), None)
            return True

    def _watch(self) -> None:
        with self._condition:
            while True:
                now = time.monotonic()
                for ident, (deadline, token) in list(self._armed.items()):
                    if deadline <= now:
                        del self._armed[ident]
                        self._fired.add(token)
                        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(RenderTimeout))
                upcoming = min((deadline for deadline, _ in self._armed.values()), default=None)
                self._condition.wait(None if upcoming is None else max(0.001, upcoming - now))


_WATCHDOG = _Watchdog()


def _sized(value: Any) -> int | None:
    return len(value) if isinstance(value, str | bytes | list | tuple) else None


@dataclass(frozen=True)
class TemplateProblem:
    """A template error the admin can fix: where it is and what is wrong, in Chinese."""

    path: str
    line: int | None
    message: str
    runtime: bool = False  # found while rendering a digest (not when the templates were loaded)

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class Entry:
    """One item as the digest templates see it."""

    index: int
    item: NoticeItem
    text: str
    html: Markup


@dataclass(frozen=True)
class Section:
    key: str
    label: str
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class RenderedDigest:
    subject: str
    text: str
    html: str
    markdown: str
    problems: tuple[TemplateProblem, ...] = ()


# --- helpers exposed to templates -----------------------------------------------------------


def figure_digits(value: float, digits: int = 2) -> int:
    """Decimals that show a figure at the document's precision: 2.331 keeps its three (a target of 2.331%
    shown as 2.33% is not the document's), a computed 83.3333… is cut to two."""
    for more in range(digits + 1, 5):
        if abs(value - round(value, digits)) > 1e-9 and abs(value - round(value, more)) < 1e-9:
            return more
    return digits


def format_number(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "—"
    digits = figure_digits(float(value), digits)
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def format_figure(value: float | None, measure: str = "") -> str:
    if value is None:
        return "—"
    return f"{format_number(value)}{measure}"


def format_date_cn(value: date | datetime | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        value = value.astimezone(SHANGHAI).date()
    return f"{value.year}年{value.month}月{value.day}日"


def format_datetime_cn(value: datetime) -> str:
    local = value.astimezone(SHANGHAI)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


def format_units(units: Iterable[UnitRef], lead_mark: str = "（牵头）") -> str:
    names = [unit.name for unit in units]
    if len(names) > 1:
        names[0] += lead_mark
    return "、".join(names)


def badge(key: str | None, label: str | None = None) -> Markup:
    """A coloured light with its name written in it (colour is never the only signal)."""
    key = key or "reminder"
    text = label or LEVEL_LABELS.get(key) or SECTION_LABELS.get(key, key)
    style = BADGE_STYLES.get(key, BADGE_STYLES["reminder"])
    return Markup(
        '<span style="display:inline-block;padding:1px 8px;border-radius:3px;font-size:13px;'
        'font-weight:bold;white-space:nowrap;{}">{}</span>'
    ).format(Markup(style), text)


CHINESE_DIGITS = "零一二三四五六七八九十"


_CITED = re.compile(r"^(?P<sentence>.+?[。！；.])\s*[（(](?P<citation>.+)[）)]\s*$", re.S)
# A source whose sentence has no full stop before its section: "…分支机构1家（第11项）". The section is
# the last parenthesis, holding no parenthesis of its own.
_CITED_BARE = re.compile(r"^(?P<sentence>.+?)\s*[（(](?P<citation>[^（）()]+)[）)]\s*$", re.S)


def _cited(source: str) -> re.Match[str] | None:
    return _CITED.match(source) or _CITED_BARE.match(source)


def cite_source(source: str, document: str = "") -> str:
    """The rule's sentence in quotes, then where it stands; the document number only once.

    Rule sources are written "sentence。（文号 section）" or "sentence。（section）": quoting the
    whole source after the document number printed the number twice, inside the quotes.
    """
    match = _cited(source.strip())
    if match is None:
        return f"{document}“{source.strip()}”"
    citation = match["citation"]
    prefix = "" if document and document in citation else document
    return f"{prefix}“{match['sentence']}”（{citation}）"


def quote_source(source: str) -> str:
    """“sentence”（section）: a mechanism quoted inline, after the document it belongs to is named."""
    match = _cited(source.strip())
    if match is None:
        return f"“{source.strip().rstrip('。；;.')}”" if source.strip() else ""
    return f"“{match['sentence'].rstrip('。；;.')}”（{match['citation']}）"


def format_percent(value: Any) -> str:
    if value is None or value == "":
        return "—"
    return f"{format_number(float(value))}%"


_MONTHS_N = "1—N月"


_STAGE_CN = {"reminder": "（报送提醒）", "praise": ""}


def period_cn(period: str) -> str:
    """A stored period as an office writes it: 2023/praise → 2023年, 2023-12-31/T-7 → 2023年12月31日（到期前7天提醒）."""
    from duban.store.periods import parse_period

    base, _, stage = period.partition("/")
    if base == "final":
        text = "规划期"
    else:
        try:
            text = parse_period(base).label
        except ValueError:
            try:
                text = format_date_cn(date.fromisoformat(base))
            except ValueError:
                text = base
    if stage.startswith("T-") and stage[2:].isdigit():
        return f"{text}（到期前{stage[2:]}天提醒）"
    return text + _STAGE_CN.get(stage, "")


def name_with_months(name: str, value_period: str) -> str:
    """"服务业投资增速（1—N月同比）" for June 2023 reads "服务业投资增速（2023年1—6月同比）"."""
    if _MONTHS_N not in name:
        return name
    monthly = len(value_period) == 7 and value_period[4] == "-" and "Q" not in value_period
    months = f"{value_period[:4]}年1—{int(value_period[5:7])}月" if monthly else "累计"
    return name.replace(_MONTHS_N, months)


def subject_cn(item: NoticeItem) -> str:
    """The subject as a reader names it: name (unit, period), with "1—N月" made the real months."""
    details = item.details
    period = item.period.split("/")[0]
    value_period = str(details.get("value_period") or "")
    name = name_with_months(item.subject_name, value_period)
    if name != item.subject_name or re.search(r"\d{4}年1—\d+月", name):
        return name  # the months are in the name already
    parts = []
    if "@" in item.subject and item.units:
        parts.append(item.units[0].name)
    label = item.period_label
    ended = details.get("months_ended")
    if period == "final" or label == "final":
        label = f"规划期前{ended}个月" if ended else "规划期累计"
    elif ended and len(period) == 4 and period.isdigit():
        label = f"{period}年1—{ended}月" if ended != 1 else f"{period}年1月"
    if item.subject_type == "task":
        label = ""
    if label and label not in name:
        parts.append(label)
    return f"{name}（{'，'.join(parts)}）" if parts else name


def target_label(item: NoticeItem) -> str:
    details = item.details
    if details.get("derived"):
        return "目标（按规划期序时进度测算）"
    if item.period.split("/")[0] == "final":
        return "规划期目标"
    if item.subject_type == "project":
        return "年度计划投资"
    return "年度目标"


_COMPARISON_WORDS = {"at_least": "{}以上", "more_than": "超过{}", "about": "{}左右", "at_most": "{}以下"}


def target_worded(value: Any, measure: str, comparison: Any) -> str:
    """A target as the document words it: 800家以上, 超过250家, 1000名左右 (the comparison stays with it)."""
    shown = format_figure(value, measure)
    pattern = _COMPARISON_WORDS.get(str(comparison or ""))
    return pattern.format(shown) if pattern and shown != "—" else shown


def target_cn(item: NoticeItem) -> str:
    """The target line: "年度目标：12家以上", or for a programme-end target paced by the programme's elapsed
    share the document's target itself and then the derived amount, labelled as derived:
    "2027年目标：超过800家；按规划期序时进度测算，至今应完成40家"."""
    details = item.details
    worded = target_worded(item.threshold, item.measure, details.get("comparison"))
    if details.get("derived"):
        year = details.get("final_year")
        label = f"{year}年目标" if year else "规划期目标"
        if item.expected is None:
            return f"{label}：{worded}"
        return f"{label}：{worded}；按规划期序时进度测算，至今应完成{format_figure(item.expected, item.measure)}"
    return f"{target_label(item)}：{worded}"


def goal_text(goal: Any, deadline_text: Any) -> str:
    """The 工作目标 without the 时间节点 it repeats: "2023全年" → "", "2023全年，力争…" → "力争…"."""
    text, when = str(goal or "").strip(), re.sub(r"\s+", "", str(deadline_text or ""))
    if not when:
        return text
    squeezed = re.sub(r"\s+", "", text)
    if squeezed == when:
        return ""
    if squeezed.startswith(when):
        # Drop as many characters of the original as make up the 时间节点, spaces included.
        seen, cut = 0, 0
        while cut < len(text) and seen < len(when):
            if not text[cut].isspace():
                seen += 1
            cut += 1
        return text[cut:].lstrip("，,、；; ：:")
    return text


def goal_cn(item: NoticeItem) -> str:
    return goal_text(item.details.get("goal"), item.details.get("deadline_text"))


def bound_label(item: NoticeItem) -> str:
    return "目标值"


def bound_cn(item: NoticeItem) -> str:
    """A threshold's bound as the document words it: 8%以上 (不低于8.0%), 3%以下, 超过2000亿元; one computed
    from other figures says what from: 8.9%以上（按全市固定资产投资增速（2023年1—4月同比）9.9%测算）."""
    worded = target_worded(item.threshold, item.measure, item.details.get("comparison"))
    basis = [b for b in item.details.get("bound_basis") or [] if isinstance(b, dict) and b.get("value") is not None]
    if not basis:
        return worded
    named = "、".join(f"{name_with_months(str(b.get('name', '')), str(b.get('period', '')))}"
                     f"{format_figure(b['value'], str(b.get('measure') or ''))}" for b in basis)
    return f"{worded}（按{named}测算）"


def history_cn(item: NoticeItem) -> str:
    """How many notices of this item went before, and since when: never "经多次提醒" after one."""
    before, since = item.notified_before, item.since
    tail = "现升级为红灯，并抄送工作专班" if item.kind == "escalation" else "已抄送工作专班"
    if before <= 0 or since is None:
        return f"{tail}。"
    when = format_date_cn(since)
    still = "仍未报送" if "missing_months" in item.details else "仍未整改到位"
    if before == 1:
        return f"此前已于{when}通知1次，{still}，{tail}。"
    return f"自{when}起已通知{before}次，{still}，{tail}。"


def months_cn(item: NoticeItem) -> str:
    """The months a missing-figures item lists: 2023年6月, or 2023年6月—9月（共4个月）."""
    months = [str(m) for m in item.details.get("missing_months") or []]
    if len(months) <= 1:
        return item.period_label
    from duban.engine.evaluate import _months_label

    return _months_label([(int(m[:4]), int(m[5:7])) for m in months])


def change_cn(item: NoticeItem) -> str:
    """What changed in a revision (灯色调整): the figure last told and the figure now."""
    before, now = item.previous, item.details
    light = f"由{LEVEL_LABELS.get(item.previous_level or 'red', '红灯')}调整为{LEVEL_LABELS.get(item.level or '', '黄灯')}"
    if now.get("held"):
        return f"已达到要求，但尚未稳定超出销号线，{light}，暂按黄灯跟踪；稳定达到后予以销号。"
    if before.get("completion") is not None and now.get("completion") is not None:
        gap = float(now.get("time_progress") or 0) - float(now["completion"])
        text = (f"完成进度由{format_percent(before['completion'])}提高到{format_percent(now['completion'])}"
                + (f"，落后序时进度{format_number(gap)}个百分点" if gap > 0 else ""))
    elif before.get("value") is not None and item.value is not None:
        text = f"数值由{format_figure(before['value'], item.measure)}变为{format_figure(item.value, item.measure)}"
    else:
        text = "根据最新数据差距已缩小"
    return f"{text}，{light}；达到要求后予以销号。"


def chinese_ordinal(number: int) -> str:
    """1 -> 一, 12 -> 十二, for section headings (一、二、…); larger numbers stay Arabic."""
    if 0 <= number <= 10:
        return CHINESE_DIGITS[number]
    if number < 20:
        return "十" + CHINESE_DIGITS[number - 10]
    if number < 100:
        tens, ones = divmod(number, 10)
        return CHINESE_DIGITS[tens] + "十" + (CHINESE_DIGITS[ones] if ones else "")
    return str(number)


def _filters() -> dict[str, Any]:
    return {
        "num": format_number,
        "fig": format_figure,
        "date_cn": format_date_cn,
        "datetime_cn": format_datetime_cn,
        "units_cn": format_units,
        "level_label": lambda level: LEVEL_LABELS.get(level or "", ""),
        "kind_label": lambda kind: KIND_LABELS.get(kind, kind),
        "badge": badge,
        "cn": chinese_ordinal,
        "cite": cite_source,
        "quote": quote_source,
        "pct": format_percent,
        "subject_cn": subject_cn,
        "target_label": target_label,
        "target_cn": target_cn,
        "goal_cn": goal_cn,
        "bound_label": bound_label,
        "bound_cn": bound_cn,
        "history_cn": history_cn,
        "change_cn": change_cn,
        "months_cn": months_cn,
    }


# --- built-in fallbacks: minimal, trusted, used only when an admin template is broken ----------

FALLBACK_TEMPLATES = {
    "subject.txt.j2": "【{{ digest.signer }}】{{ digest.round_title }}：{{ action_count }}项待办",
    "items/fallback.txt.j2": (
        "{{ index }}. {{ item.title }}\n"
        "   对象：{{ item.subject_name }}（{{ item.period_label }}）\n"
        "   数据：{{ item.value|fig(item.measure) }}，目标 {{ item.expected|fig(item.measure) }}"
        "，阈值 {{ item.threshold|fig(item.measure) }}\n"
        "{% if item.deadline %}   时限：{{ item.deadline|date_cn }}\n{% endif %}"
        "   依据：{{ item.source }}（{{ item.document }}）\n"
        "   请办：{{ item.action }}\n"
    ),
    "items/fallback.html.j2": (
        '<div style="margin:8px 0;padding:8px;border:1px solid #999999">'
        "<p><b>{{ index }}. {{ item.title }}</b> {{ item.section|badge }}</p>"
        "<p>对象：{{ item.subject_name }}（{{ item.period_label }}）；"
        "数据：{{ item.value|fig(item.measure) }}，目标 {{ item.expected|fig(item.measure) }}"
        "，阈值 {{ item.threshold|fig(item.measure) }}"
        "{% if item.deadline %}；时限：{{ item.deadline|date_cn }}{% endif %}</p>"
        "<p>依据：{{ item.source }}（{{ item.document }}）</p><p>请办：{{ item.action }}</p></div>"
    ),
    "digest.txt.j2": (
        "{{ digest.recipient.name }}：\n\n{{ digest.round_title }}共有{{ digest.items|length }}项事项：\n\n"
        "{% for section in sections %}【{{ section.label }}】\n"
        "{% for entry in section.entries %}{{ entry.text }}\n{% endfor %}{% endfor %}"
        "\n{{ digest.signer }}\n{{ digest.at|date_cn }}\n"
    ),
    "digest.html.j2": (
        "<html><body><p>{{ digest.recipient.name }}：</p>"
        "<p>{{ digest.round_title }}共有{{ digest.items|length }}项事项：</p>"
        "{% for section in sections %}<h3>{{ section.label }}</h3>"
        "{% for entry in section.entries %}{{ entry.html }}{% endfor %}{% endfor %}"
        "<p>{{ digest.signer }}<br>{{ digest.at|date_cn }}</p></body></html>"
    ),
    "digest.md.j2": (
        "### {{ digest.round_title }}\n\n{% for section in sections %}**{{ section.label }}**\n\n"
        "{% for entry in section.entries %}{{ entry.text }}\n{% endfor %}{% endfor %}"
    ),
}


class _BoundedEnvironment(SandboxedEnvironment):
    """jinja2's sandbox, plus bounds on the two operators that build huge values in one C call."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "*":
            for sequence, times in ((left, right), (right, left)):
                size = _sized(sequence)
                if size is not None and isinstance(times, int) and size * times > MAX_DIGEST_CHARS:
                    raise OutputTooLarge(f"{size} × {times}")
            return operator.mul(left, right)
        if isinstance(right, int) and not isinstance(right, bool) and abs(right) > MAX_POWER:
            raise OutputTooLarge(f"** {right}")
        return operator.pow(left, right)


# DingTalk markdown: data must stay text. Characters that start markdown or HTML (a unit named
# `<img src=…>`, a title `[点击](http://…)`) become their full-width forms, which read the same to a
# Chinese reader and do nothing; line breaks in data become spaces (no new heading or list).
_MARKDOWN_INERT = str.maketrans({
    "<": "＜", ">": "＞", "[": "［", "]": "］", "(": "（", ")": "）", "*": "＊", "_": "＿", "`": "｀",
    "#": "＃", "!": "！", "|": "｜", "~": "～", "\\": "＼", "\r": " ", "\n": " ",
})
_PLAIN_URL = re.compile(r"https?://[^\s<>()\[\]`*!|\\]+")


def markdown_text(value: str) -> str:
    """A data value made inert for DingTalk markdown (a plain http(s) URL is left usable)."""
    if _PLAIN_URL.fullmatch(value):
        return value
    return value.translate(_MARKDOWN_INERT)


@pass_context
def _finalize(context: Context, value: Any) -> Any:
    """Every `{{ … }}` of a markdown template (*.md.j2) prints data as inert text."""
    if isinstance(value, str) and not isinstance(value, Markup) and (context.name or "").endswith(".md.j2"):
        return markdown_text(value)
    return value


def _make_environment(loader: BaseLoader) -> SandboxedEnvironment:
    env = _BoundedEnvironment(
        loader=loader,
        finalize=_finalize,
        autoescape=select_autoescape(
            enabled_extensions=("html.j2", "htm.j2", "html"), default_for_string=False
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    env.filters.update(_filters())
    return env


def _private_attribute_uses(ast: nodes.Template) -> Iterable[tuple[int, str]]:
    """Attribute accesses that can only be attempts to reach Python internals."""
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
        ):
            name = node.arg.value
        else:
            continue
        if name.startswith("_"):
            yield node.lineno, name


class DigestRenderer:
    """Loads the templates of one templates directory once and renders digests with them.

    `problems` lists the errors found at load time; `render` returns those found while
    rendering. Both are `TemplateProblem`s meant to be shown to the admin as is.
    """

    def __init__(self, templates_dir: str | os.PathLike[str] = DEFAULT_TEMPLATES_DIR) -> None:
        self.templates_dir = Path(templates_dir)
        self._env = _make_environment(FileSystemLoader(str(self.templates_dir)))
        self._fallback_env = _make_environment(DictLoader(FALLBACK_TEMPLATES))
        self._templates: dict[str, Template] = {}
        self._broken: dict[str, TemplateProblem] = {}
        self._load_all()

    @property
    def problems(self) -> tuple[TemplateProblem, ...]:
        return tuple(self._broken.values())

    # -- loading ---------------------------------------------------------------------------

    def display_path(self, name: str) -> str:
        path = self.templates_dir / name
        try:
            return str(path.resolve().relative_to(Path.cwd().resolve())) if path.is_absolute() else str(path)
        except ValueError:
            return str(path)

    def _load_all(self) -> None:
        if not self.templates_dir.is_dir():
            self._broken["."] = TemplateProblem(
                str(self.templates_dir), None, "模板目录不存在，所有通知均使用内置模板"
            )
            return
        for path in sorted(self.templates_dir.rglob("*.j2")):
            self._load(path.relative_to(self.templates_dir).as_posix())

    def _load(self, name: str) -> Template | None:
        if name in self._templates:
            return self._templates[name]
        if name in self._broken:
            return None
        try:
            source, _filename, _uptodate = self._env.loader.get_source(self._env, name)  # type: ignore[union-attr]
            ast = self._env.parse(source, name)
            for line, attribute in _private_attribute_uses(ast):
                raise _Refused(line, attribute)
            template = self._env.get_template(name)
        except TemplateNotFound:
            self._broken[name] = TemplateProblem(self.display_path(name), None, "模板文件不存在，已使用内置模板")
            return None
        except TemplateSyntaxError as exc:
            self._broken[name] = TemplateProblem(
                self.display_path(name), exc.lineno, f"模板语法错误（{_explain(exc)}），已使用内置模板"
            )
            return None
        except _Refused as exc:
            self._broken[name] = TemplateProblem(
                self.display_path(name),
                exc.line,
                f"模板试图访问受保护的内部属性“{exc.attribute}”，出于安全考虑已拒绝该模板，已使用内置模板",
            )
            return None
        self._templates[name] = template
        return template

    # -- rendering -------------------------------------------------------------------------

    def _render(
        self,
        name: str | None,
        fallback: str,
        context: Mapping[str, Any],
        problems: dict[str, TemplateProblem],
    ) -> str:
        template = self._load(name) if name else None
        if name is None:
            pass  # the caller has already recorded why there is no usable name
        elif template is None:
            problems.setdefault(name, self._broken[name])
        else:
            limit = MAX_ITEM_CHARS if name.startswith("items/") else MAX_DIGEST_CHARS
            try:
                output = self._bounded(template, context)
                if len(output) <= limit:
                    return output
                raise OutputTooLarge(f"{len(output):,}")
            except (RenderTimeout, OutputTooLarge) as exc:
                # Beyond a bound: the template is not tried again this round (1,000 items would take
                # 1,000 time limits), the built-in one stands in, and the admin is told.
                problem = self._limit_problem(name, exc, limit)
                self._broken[name] = problem
                self._templates.pop(name, None)
                problems.setdefault(name, problem)
            except Exception as exc:  # any failure inside an admin template falls back
                problems.setdefault(name, self._runtime_problem(name, exc))
        return self._fallback_env.get_template(fallback).render(context)

    @staticmethod
    def _bounded(template: Template, context: Mapping[str, Any]) -> str:
        """template.render within render_seconds(); RenderTimeout beyond it."""
        token = _WATCHDOG.arm(render_seconds())
        try:
            output = template.render(context)
        finally:
            fired = _WATCHDOG.disarm(token)
        if fired:
            raise RenderTimeout()
        return output

    def _limit_problem(self, name: str, exc: Exception, limit: int) -> TemplateProblem:
        if isinstance(exc, RenderTimeout):
            message = f"模板渲染超过 {render_seconds():g} 秒（可能有过大的循环），已停止并改用内置模板"
        else:
            message = f"模板生成的内容超过上限（{limit:,} 个字符），已改用内置模板"
        return TemplateProblem(self.display_path(name), None, message, runtime=True)

    def _runtime_problem(self, name: str, exc: Exception) -> TemplateProblem:
        line = None
        for frame in traceback.extract_tb(exc.__traceback__):
            if frame.filename.endswith(".j2") or frame.filename == str(self.templates_dir / name):
                line = frame.lineno
        if isinstance(exc, SecurityError):
            message = f"模板试图访问受保护的内部属性，出于安全考虑已拒绝（{exc}），已使用内置模板"
        elif isinstance(exc, UndefinedError):
            message = f"模板引用了不存在的字段（{exc}），已使用内置模板"
        else:
            message = f"模板渲染出错（{type(exc).__name__}: {exc}），已使用内置模板"
        return TemplateProblem(self.display_path(name), line, message, runtime=True)

    def render(self, digest: Digest) -> RenderedDigest:
        problems: dict[str, TemplateProblem] = {}
        sections: list[Section] = []
        index = 0
        for key, items in digest.sections():
            entries = []
            for item in items:
                index += 1
                entries.append(self._render_item(digest, item, index, SECTION_LABELS[key], problems))
            sections.append(Section(key, SECTION_LABELS[key], tuple(entries)))
        counts = {key: 0 for key in SECTION_ORDER} | {s.key: len(s.entries) for s in sections}
        worst = digest.worst_section()
        context = {
            "digest": digest,
            "recipient": digest.recipient,
            "sections": sections,
            "counts": counts,
            "action_count": digest.action_count(),
            "worst": worst,
            "worst_label": SECTION_LABELS.get(worst or "", ""),
            "worst_count": counts.get(worst or "", 0),
            "action_sections": ACTION_SECTIONS,
            "section_order": SECTION_ORDER,
            "section_labels": SECTION_LABELS,
        }
        subject = self._render("subject.txt.j2", "subject.txt.j2", context, problems)
        text = self._render("digest.txt.j2", "digest.txt.j2", context, problems)
        html = self._render("digest.html.j2", "digest.html.j2", context, problems)
        markdown = self._render("digest.md.j2", "digest.md.j2", context, problems)
        return RenderedDigest(
            subject=" ".join(subject.split()),
            text=text,
            html=html,
            markdown=markdown,
            problems=tuple(problems.values()),
        )

    def _render_item(
        self,
        digest: Digest,
        item: NoticeItem,
        index: int,
        section_label: str,
        problems: dict[str, TemplateProblem],
    ) -> Entry:
        context = {
            "item": item,
            "digest": digest,
            "recipient": digest.recipient,
            "index": index,
            "section_label": section_label,
        }
        text_name: str | None = f"items/{item.template}.txt.j2"
        html_name: str | None = f"items/{item.template}.html.j2"
        if not TEMPLATE_NAME.match(item.template):
            problems.setdefault(
                f"items/{item.template}",
                TemplateProblem(item.rule_file, None, f"规则指定的模板名“{item.template}”不合法，已使用内置模板"),
            )
            text_name = html_name = None
        text = self._render(text_name, "items/fallback.txt.j2", context, problems)
        html = self._render(html_name, "items/fallback.html.j2", context, problems)
        return Entry(index=index, item=item, text=text.rstrip("\n"), html=Markup(html))


class _Refused(Exception):
    def __init__(self, line: int, attribute: str) -> None:
        super().__init__(attribute)
        self.line = line
        self.attribute = attribute


def _explain(exc: TemplateSyntaxError) -> str:
    return exc.message or "无法解析"


@dataclass
class RendererCache:
    """Keeps one renderer per templates directory (templates are compiled once per process)."""

    renderers: dict[Path, DigestRenderer] = field(default_factory=dict)

    def get(self, templates_dir: str | os.PathLike[str]) -> DigestRenderer:
        key = Path(templates_dir).resolve()
        if key not in self.renderers:
            self.renderers[key] = DigestRenderer(templates_dir)
        return self.renderers[key]
