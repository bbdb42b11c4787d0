"""A round: evaluate, apply the lifecycle, and write alerts, notices and outbox rows in ONE transaction.

Sending is separate (`duban send`, or the service right after a round): the outbox is the
contract between deciding and sending, so a crash in between loses nothing and a second run
of the same round writes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import zlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, or_, select, text, update
from sqlalchemy.orm import Session

from duban.app.links import attach_personal_links
from duban.engine.evaluate import AlertCandidate, EvaluationResult, Evaluator, working_group_of
from duban.engine.lifecycle import AlertKey, AlertState, PlannedNotice, SilenceRule, plan, standings
from duban.engine.rules import Rule, RuleSet
from duban.notifiers.digest import Digest, NoticeItem, Recipient, UnitRef
from duban.notifiers.message import (
    DINGTALK,
    MessageError,
    build_dingtalk_message,
    build_email,
    build_email_messages,
)
from duban.notifiers.outbox import enqueue
from duban.notifiers.render import (
    DigestRenderer,
    TemplateProblem,
    format_date_cn,
    format_datetime_cn,
    name_with_months,
    period_cn,
    target_worded,
)
from duban.notifiers.reports.periods import report_links as matching_reports
from duban.notifiers.transports.settings import configured_channels
from duban.store.db import transaction
from duban.store.models import Alert, Delivery, Notice, Round, Setting, Silence
from duban.store.periods import SHANGHAI
from duban.store.snapshot import Snapshot, StoreRows, build_snapshot, load_snapshot

if TYPE_CHECKING:
    from duban.notifiers.service import DeliveryOutcome


@dataclass
class RoundReport:
    key: str
    at: dt.datetime
    skipped: bool = False
    candidates: int = 0
    notices: int = 0
    messages: int = 0
    silenced: int = 0
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # items skipped as unusable; the admin is told
    admin_notified: bool = False
    round_id: int | None = None

    def __str__(self) -> str:
        when = format_datetime_cn(self.at)
        if self.skipped:
            return f"轮次 {self.key}（{when}）此前已完成，本次未重复记录或发送。"
        text = (f"轮次 {self.key}（{when}）：预警候选 {self.candidates} 项，生成通知 {self.notices} 条，"
                f"待发送邮件/消息 {self.messages} 封")
        if self.silenced:
            text += f"，静默 {self.silenced} 条"
        return text + "。"


def round_title(at: dt.datetime, name: str) -> str:
    return f"{format_date_cn(at)}{name}"


FALLBACK_MAIL_FROM = "工作专班 <duban@example.org>"


class RoundError(Exception):
    """The round cannot be recorded as configured; nothing was written."""


def mail_from() -> str:
    from duban.notifiers.transports.settings import current_env

    return current_env().get("DUBAN_MAIL_FROM") or FALLBACK_MAIL_FROM


def _state_of(alert: Alert) -> AlertState:
    return AlertState(
        alert.rule, alert.subject_type, alert.subject, alert.period, kind=alert.kind, level=alert.level,
        state=alert.state, first_seen=alert.first_seen, last_notified_at=alert.last_notified_at,
        acked_until=alert.acked_until, repeats=alert.repeats, units=tuple(alert.units or ()),
        notify_units=tuple(alert.notify_units or ()), title=alert.title, facts=alert.facts or {},
    )


def record_round(
    engine: Engine,
    rule_set: RuleSet,
    at: dt.datetime,
    *,
    key: str,
    job: str = "manual",
    name: str = "亮灯督促",  # a manual round; the digest reads "关于…亮灯督促有关事项的督办提醒"
    groups: Sequence[str] | None = None,
    result: EvaluationResult | None = None,
    evaluator: Evaluator | None = None,
    renderer: DigestRenderer | None = None,
    report_links: Sequence[tuple[str, str]] = (),
    started_at: dt.datetime | None = None,
    rows: StoreRows | None = None,
    compose: bool = True,
    refuse_earlier: bool = False,
    companions: Sequence[Companion] = (),
) -> RoundReport:
    """Evaluate at `at` (unless `result` is given) and record the round; idempotent per `key`.

    Rounds of one programme are serialized on every database (`serialize_rounds`): a second round
    waits for the first to commit and then decides on what it wrote. With `refuse_earlier` (a manual
    round: `duban evaluate --send` without --force) a round at an instant earlier than the latest
    recorded one is refused (RoundError): it would re-send warnings already handled, in the wrong
    order. The service needs no such check: its round keys are its watermark, and with `--at` its
    clock restarts at every start.

    `companions` are the other cadences firing at the same moment (月调度 and 专班会商 at 09:00 on
    one Monday): their groups are evaluated here and their rounds recorded as merged into this one,
    so each unit gets ONE message per moment, with everything due and the worst light in its subject.
    """
    report = RoundReport(key=key, at=at)
    with transaction(engine) as session:
        serialize_rounds(session, rule_set.settings.programme)
        if session.scalar(select(Round.id).where(Round.key == key)) is not None:
            report.skipped = True
            return report
        latest = session.execute(select(Round.at, Round.key).order_by(Round.at.desc()).limit(1)).first()
        if latest is not None and at < latest.at and refuse_earlier:
            raise RoundError(
                f"本轮时间 {_local(at)} 早于已记录的最近一轮（{_local(latest.at)}，轮次 {latest.key}）："
                "按较早的时间补记会重发已处理过的预警，并打乱催办、销号的先后次序。本轮未记录、未发送；"
                "确需补记请加 --force")
        merged = [c for c in companions if c.key != key
                  and session.scalar(select(Round.id).where(Round.key == c.key)) is None]
        if merged:
            names = [name, *(c.name for c in merged if c.name != name)]
            name = "、".join(dict.fromkeys(names))
            if groups is not None:
                groups = list(dict.fromkeys([*groups, *(g for c in merged for g in c.groups)]))
        # A replay reads the programme lists once (`rows`); the service reads them every round.
        snapshot = load_snapshot(session, at) if rows is None else build_snapshot(rows, at)
        if result is None:
            owned = evaluator is None
            evaluator = evaluator or Evaluator(rule_set)
            try:
                result = evaluator.evaluate(snapshot, groups=groups)
            finally:
                if owned:
                    evaluator.close()
        report.candidates = len(result.candidates)
        report.warnings = list(result.warnings)
        report.failures = list(result.failures)
        round_row = Round(key=key, job=job, at=at, started_at=started_at or at, summary={"name": name})
        session.add(round_row)
        session.flush()
        report.round_id = round_row.id
        for companion in merged:
            session.add(Round(key=companion.key, job=companion.job, at=at, started_at=started_at or at,
                              finished_at=at, summary={"name": companion.name, "merged_into": key}))

        # Alerts of a rule not evaluated this round (other groups, or skipped) must not be resolved.
        evaluated = {r.id for r in rule_set.rules
                     if (groups is None or set(groups) & set(r.groups)) and r.id not in result.skipped_rules}
        alerts = _relevant_alerts(session, evaluated, result.candidates)
        silences = [SilenceRule(s.rule, s.subject, s.unit, s.until)
                    for s in session.scalars(select(Silence).where(Silence.until > at))]
        decided = plan(result.candidates, {k: _state_of(a) for k, a in alerts.items()}, now=at,
                       evaluated_rules=evaluated, repeat_of={r.id: r.repeat for r in rule_set.rules},
                       silences=silences, resolve_margin_of={r.id: r.resolve_margin for r in rule_set.rules},
                       # Assessments are built on demand; only rules with a resolve_margin need them.
                       standing=standings(result.assessments, rule_set.rules)
                       if any(r.resolve_margin > 0 for r in rule_set.rules) else {})
        report.silenced = decided.silenced
        decided.notices = _closing(decided.notices, alerts, result, snapshot, at)
        alert_rows = _write_alerts(session, alerts, decided.alerts, at)
        notices = _write_notices(session, decided.notices, alert_rows, round_row.id, at)
        report.notices = len(notices)
        if not compose:
            # `duban simulate` without --outbox wants the timeline (the notices), not messages.
            _finish(round_row, report, at)
            return report
        renderer = renderer or DigestRenderer(rule_set.templates_dir)
        report.problems += [str(p) for p in renderer.problems]
        # The monthly dispatch and the quarterly/annual meetings point to the report they read.
        # A digest links only reports that are published: with DUBAN_REPORTS_URL (where the office
        # puts them) it links the report the meeting reads; without it it names no file.
        base_url = os.environ.get("DUBAN_REPORTS_URL", "")
        links = list(report_links) or ([
            link for j in (job, *(c.job for c in merged))
            for link in matching_reports(rule_set, j, at, base_url)] if base_url else [])
        round_row.summary = {**(round_row.summary or {}), "reports": [url for _label, url in links if url]}
        moment = {job, *(c.job for c in merged)}
        summaries: dict[str, list[str]] = {}
        summary_title = ""
        if _assesses_year(rule_set, moment, at):
            summaries, summary_title = annual_summaries(rule_set, snapshot, result, at)
        digests = build_digests(rule_set, snapshot, decided.notices, key, round_title(at, name), at,
                                list(dict.fromkeys(links)), summaries=summaries, summary_title=summary_title)
        digests = attach_personal_links(session, digests, at)  # "在线报送本月数据", "查看事项并反馈"
        channels = configured_channels()
        messages = []
        for digest in digests:
            rendered = renderer.render(digest)
            report.problems += [str(p) for p in rendered.problems]
            report.failures += [f"{p}（{digest.recipient.name}的通知）" for p in rendered.problems if p.runtime]
            try:
                built = build_email_messages(digest, rendered, mail_from=mail_from(), round_id=round_row.id)
                # The working group also hears through its robot, when a transport carries DingTalk.
                if digest.recipient.code == working_group_of(rule_set, snapshot) and DINGTALK in channels:
                    built.append(build_dingtalk_message(digest, rendered, round_id=round_row.id))
            except MessageError as exc:
                # One recipient's message that cannot be built stays local: its notices are in the ledger,
                # the admin is told (naming the unit and why), and every other recipient is sent to.
                report.failures.append(f"{digest.recipient.name}（{digest.recipient.code}）的通知无法生成：{exc}；"
                                       "其余单位的通知照常发送，请修正后用 duban evaluate --send 补发")
                continue
            messages += built
        report.messages = enqueue(session, messages, now=at)
        _link_notices(session, notices, round_row.id)
        report.admin_notified = _tell_admin(session, rule_set, report, name, at)
        _finish(round_row, report, at)
    return report


def serialize_rounds(session: Session, programme: str) -> None:
    """Hold the programme's round lock until this transaction ends.

    SQLite: every write transaction begins IMMEDIATE (store/db.py), which already excludes a second
    writer. PostgreSQL: a transaction-level advisory lock keyed by the schema and the programme, so a
    service round, `evaluate --send` and `run --once` never both decide on the same alert: the second
    waits, then reads what the first committed (READ COMMITTED takes a fresh snapshot per statement).
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    schema = session.scalar(text("SELECT current_schema()")) or ""
    key = zlib.crc32(f"{schema}:{programme}".encode()) - (1 << 31)
    session.execute(text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": ROUND_LOCK_CLASS, "b": key})


ROUND_LOCK_CLASS = 0x6475_6272  # "dubr": rounds; the service's instance lease uses "duba"


def _local(at: dt.datetime) -> str:
    return f"{format_date_cn(at)} {at.astimezone(SHANGHAI):%H:%M:%S}"  # seconds: two rounds may be 1 s apart


def _tell_admin(session: Session, rule_set: RuleSet, report: RoundReport, name: str, at: dt.datetime) -> bool:
    """One plain message to programme.yaml's admin_email listing what this round left out.

    Each line is told once (remembered in `settings` as `reported:<hash>`): the same unusable figure
    seen again at the next round, or by another cadence's round, is not mailed again.
    """
    from duban.notifiers.transports.settings import current_env

    settings = rule_set.settings
    # programme.yaml's admin_email; the configuration's [mail] admin_email only when it has none.
    admin = settings.admin_email or current_env().get("DUBAN_ADMIN_EMAIL", "")
    if not report.failures or not admin:
        return False
    keys = {line: f"reported:{hashlib.sha256(line.encode()).hexdigest()[:24]}" for line in set(report.failures)}
    known = set(session.scalars(select(Setting.key).where(Setting.key.in_(list(keys.values())))))
    lines = sorted(line for line, key in keys.items() if key not in known)
    if not lines:
        return False
    session.add_all(Setting(key=keys[line], value=line[:500], updated_at=at) for line in lines)
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
    body = (f"{round_title(at, name)}（轮次 {report.key}）已完成，其余通知照常发送；以下 {len(lines)} 项未能处理，"
            "已跳过或改用内置模板：\n\n" + "\n".join(f"- {line}" for line in lines[:200])
            + ("\n- ……" if len(lines) > 200 else "")
            + "\n\n请核对数据或规则、模板后保存；同样的问题不会重复提醒。\n")
    try:
        message = build_email(idempotency_key=f"admin:{settings.programme}:round-problems:{digest}",
                              mail_from=mail_from(), to_address=admin, to_name="规则管理员",
                              subject=f"{settings.subject_prefix}督办轮次有 {len(lines)} 项未能处理", text=body,
                              html=None, at=at)
    except MessageError:
        return False  # a bad admin address is reported by `duban check --db` and the outbox
    return enqueue(session, [message], now=at) > 0


@dataclass(frozen=True)
class Companion:
    """Another cadence firing at the same moment as the round being recorded."""

    key: str
    job: str
    name: str
    groups: tuple[str, ...]


def _finish(round_row: Round, report: RoundReport, at: dt.datetime) -> None:
    round_row.finished_at = at
    before = round_row.summary or {}
    round_row.summary = {"name": before.get("name", ""), "reports": before.get("reports", []),
                         "candidates": report.candidates, "notices": report.notices,
                         "messages": report.messages, "warnings": report.warnings[:50],
                         "problems": report.problems[:50], "failures": report.failures[:50]}


def _relevant_alerts(session: Session, evaluated: set[str],
                     candidates: Sequence[AlertCandidate]) -> dict[AlertKey, Alert]:
    """The stored alerts this round can change: the firing ones of the evaluated rules (they may
    resolve) and any, resolved or not, that a candidate names. Resolved history stays unread: over
    a five-year replay it outgrows everything else a round touches."""
    if not evaluated:
        return {}
    subjects = {c.subject for c in candidates if c.rule in evaluated}
    wanted = Alert.state == "firing"
    if len(subjects) <= _MAX_IN_LIST:
        wanted = or_(wanted, Alert.subject.in_(subjects)) if subjects else wanted
    else:
        wanted = Alert.id.is_not(None)
    keys = {c.key for c in candidates}
    return {key: alert for alert in session.scalars(select(Alert).where(Alert.rule.in_(evaluated), wanted))
            if (key := (alert.rule, alert.subject_type, alert.subject, alert.period)) in keys or alert.state == "firing"}


_MAX_IN_LIST = 5_000  # bound parameters per statement stay well under SQLite's limit


def _write_alerts(session: Session, rows: dict[AlertKey, Alert], states: Iterable[tuple[AlertState, bool]],
                  at: dt.datetime) -> dict[AlertKey, Alert]:
    still_firing: list[int] = []
    for state, _notified in states:
        row = rows.get(state.key)
        if row is not None and state.state == "firing" and _unchanged(row, state):
            # The common case at every round: the same open item, seen again. One bulk UPDATE
            # below moves last_seen instead of a flush of every row.
            still_firing.append(row.id)
            continue
        if row is None:
            row = Alert(rule=state.rule, subject_type=state.subject_type, subject=state.subject, period=state.period,
                        first_seen=at, level_history=[])
            session.add(row)
            rows[state.key] = row
        if row.level != state.level or row.state != state.state:
            row.level_history = [*(row.level_history or []), {"at": at.isoformat(), "level": state.level, "state": state.state}]
        row.kind, row.level, row.state = state.kind, state.level, state.state
        row.units, row.notify_units, row.title = list(state.units), list(state.notify_units), state.title
        row.facts = dict(state.facts)
        row.last_seen = at if state.state == "firing" else (row.last_seen or at)
        row.resolved_at = at if state.state == "resolved" else None
        row.last_notified_at, row.acked_until, row.repeats = state.last_notified_at, state.acked_until, state.repeats
    session.flush()
    for start in range(0, len(still_firing), _MAX_IN_LIST):
        session.execute(update(Alert).where(Alert.id.in_(still_firing[start:start + _MAX_IN_LIST]))
                        .values(last_seen=at).execution_options(synchronize_session=False))
    return rows


def _unchanged(row: Alert, state: AlertState) -> bool:
    return (row.state == state.state and row.level == state.level and row.kind == state.kind
            and row.title == state.title and row.repeats == state.repeats
            and row.last_notified_at == state.last_notified_at and row.acked_until == state.acked_until
            and tuple(row.units or ()) == tuple(state.units) and tuple(row.notify_units or ()) == tuple(state.notify_units)
            and _without_time(row.facts or {}) == _without_time(state.facts))


def _without_time(facts: Mapping[str, Any]) -> dict[str, Any]:
    # "at" is the evaluation moment, new every round; last_seen already records it.
    return {k: v for k, v in facts.items() if k != "at"}


def _write_notices(session: Session, planned: Sequence[PlannedNotice], alerts: dict[AlertKey, Alert],
                   round_id: int, at: dt.datetime) -> list[Notice]:
    rows = []
    for notice in planned:
        alert = alerts.get(notice.alert_key)
        rule, subject_type, subject, period = notice.alert_key
        row = Notice(
            idempotency_key=notice.idempotency_key(str(round_id)), round_id=round_id,
            alert_id=alert.id if alert else None, rule=rule, subject_type=subject_type, subject=subject,
            period=period, kind=notice.kind, level=notice.level, recipient_unit=notice.recipient_unit,
            title=notice.title, facts=notice.candidate.to_json() if notice.candidate else dict(alert.facts if alert else {}),
            created_at=at,
        )
        session.add(row)
        rows.append(row)
    session.flush()
    return rows


def _link_notices(session: Session, notices: list[Notice], round_id: int) -> None:
    deliveries = {d.recipient_unit: d.id for d in session.scalars(
        select(Delivery).where(Delivery.round_id == round_id, Delivery.channel == "email"))}
    for notice in notices:
        notice.delivery_id = deliveries.get(notice.recipient_unit)


_TEMPLATE_BY_KIND = {"warning": "warning", "reminder": "reminder", "overdue": "overdue", "praise": "praise",
                     "escalation": "escalation", "revised": "revised", "resolved": "resolved"}


def build_digests(rule_set: RuleSet, snapshot: Snapshot, notices: Sequence[PlannedNotice], round_key: str,
                  title: str, at: dt.datetime, report_links: Sequence[tuple[str, str]] = (),
                  summaries: Mapping[str, Sequence[str]] | None = None, summary_title: str = "") -> list[Digest]:
    """Group a round's notices per recipient unit: one digest, one message per address.

    `summaries` (the 年度评估's assessment, per unit) give a unit a digest even without items."""
    summaries = summaries or {}
    # The 年度评估's summary cites the sentence that orders it ("年底开展综合评估……"), not only the urging one.
    assessment_source = next((c.source for c in rule_set.cadences if c.digest == "annual" and c.source), "") \
        if summaries else ""
    rules = {r.id: r for r in rule_set.rules}
    by_unit: dict[str, dict[str, NoticeItem]] = defaultdict(dict)
    for code in summaries:
        by_unit.setdefault(code, {})
    for notice in notices:
        item = _item(notice, rules.get(notice.alert_key[0]), snapshot, rule_set, round_key)
        # The same praise twice in one mail (a pace rule's 快于序时进度 and a praise rule's 提前完成年度目标
        # for one subject) reads as a mistake: one praise per subject, the praise rule's first.
        kept = by_unit[notice.recipient_unit]
        same = f"praise|{item.subject}" if item.kind == "praise" else \
            "|".join((item.kind, item.subject, item.period.split("/")[0], item.title))
        rule = rules.get(notice.alert_key[0])
        if same not in kept or (item.kind == "praise" and rule is not None and rule.kind == "praise"
                                and kept[same].rule != item.rule
                                and getattr(rules.get(kept[same].rule), "kind", "") != "praise"):
            kept[same] = item
    settings = rule_set.settings
    programme = snapshot.programme
    digests = []
    for unit_code, keyed in sorted(by_unit.items()):
        unit = snapshot.units.get(unit_code)
        if unit is None or not unit.emails:
            continue
        digests.append(Digest(
            programme_name=settings.title or settings.name or (programme.name if programme else settings.programme),
            document=settings.document or (programme.document if programme else ""),
            round_key=round_key, round_title=title, at=at,
            recipient=Recipient(unit.code, unit.name, unit.kind, unit.emails),
            items=tuple(sorted(keyed.values(), key=_item_order)), report_links=tuple(report_links),
            sender=settings.subject_prefix.strip("【】"), mechanism=settings.mechanism,
            praise_mechanism=settings.praise_mechanism, summary=tuple(summaries.get(unit_code, ())),
            summary_title=summary_title if unit_code in summaries else "",
            assessment_source=assessment_source if unit_code in summaries else "",
        ))
    return digests


_ORDER = {"red": 0, "yellow": 1, "blue": 2, "green": 3, None: 4}


def _item_order(item: NoticeItem) -> tuple[int, str, str]:
    return (_ORDER.get(item.level, 4) if item.kind != "resolved" else 5, item.rule, item.subject)


def _assesses_year(rule_set: RuleSet, jobs: set[str], at: dt.datetime) -> bool:
    """The 年度评估 (年评估), or, for a programme without one, its January quarterly meeting."""
    digests = {c.digest for c in rule_set.cadences if c.id in jobs}
    if "annual" in digests:
        return True
    has_annual = any(c.digest == "annual" for c in rule_set.cadences)
    return not has_annual and "quarterly" in digests and at.astimezone(SHANGHAI).month == 1


def annual_summaries(rule_set: RuleSet, snapshot: Snapshot, result: EvaluationResult,
                     at: dt.datetime) -> tuple[dict[str, list[str]], str]:
    """What the 年度评估 sends every unit: how the indicators and projects it leads ended the year,
    and how the year's tasks it leads ended; the working group gets the whole programme's."""
    year = at.astimezone(SHANGHAI).year - 1
    lights: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for a in result.assessments:
        if a.rule_kind not in ("threshold", "pace") or a.level not in ("red", "yellow", "green"):
            continue
        subject = a.subject
        for unit in ("", *(a.units[:1])):
            lights[unit][a.level].add(subject)
    tasks: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for task in snapshot.tasks.values():
        if task.deadline is None or task.deadline.year != year:
            continue
        outcome = ("on_time" if task.done_on is not None and task.done_on <= task.deadline
                   else "late" if task.done else "open")
        for unit in ("", *(task.units[:1])):
            tasks[unit][outcome] += 1
    # As the document names it: Lucheng's 年底开展综合评估 (附件2 五（四）), Huzhou's 工作进度评价 (四（五）).
    title = f"{year}年度{rule_set.settings.list_name('assessment')}"
    at_text = format_date_cn(at)  # the meeting's date, in either programme's words
    sentences: dict[str, list[str]] = {}
    wg = working_group_of(rule_set, snapshot)
    for unit in sorted(set(lights) | set(tasks)):
        code = unit or wg
        if code not in snapshot.units:
            continue
        who = "全部" if not unit else "贵单位牵头的"
        lines = []
        seen = lights.get(unit)
        if seen:
            # A subject judged by several rules counts once, under its worst light.
            red = seen.get("red", set())
            yellow = seen.get("yellow", set()) - red
            green = seen.get("green", set()) - red - yellow
            parts = [f"{label}{len(group)}项" for label, group in (("绿灯", green), ("黄灯", yellow), ("红灯", red)) if group]
            lines.append(f"{who}监测指标和项目共{len(red | yellow | green)}项，截至{at_text}{'、'.join(parts)}。")
        done = tasks.get(unit)
        if done:
            total = sum(done.values())
            parts = [f"{label}{done[key]}项" for key, label in (("on_time", "按时完成"), ("late", "逾期完成"),
                                                               ("open", "尚未完成")) if done.get(key)]
            lines.append(f"{'全部' if not unit else '贵单位牵头、'}{year}年到期的重点任务共{total}项，其中{'、'.join(parts)}。")
        if lines:
            # The working group reads the whole programme's year first, then what it leads itself.
            sentences.setdefault(code, []).extend(lines)
    summaries = {code: [f"{title}：{''.join(lines)}"] for code, lines in sentences.items()}
    return summaries, title


def _local_date(value: dt.datetime | None) -> dt.date | None:
    return value.astimezone(SHANGHAI).date() if value is not None else None


def _item(notice: PlannedNotice, rule: Rule | None, snapshot: Snapshot, rule_set: RuleSet, round_key: str) -> NoticeItem:
    candidate: AlertCandidate | None = notice.candidate
    rule_id, subject_type, subject, period = notice.alert_key
    units = candidate.units if candidate else ()
    facts = candidate.to_json() if candidate else {}
    template = (rule.template if rule and rule.template and notice.kind not in ("resolved", "escalation", "revised")
                else _TEMPLATE_BY_KIND.get(notice.kind, "warning"))
    days_left = candidate.days_left if candidate else None
    details = dict(candidate.details) if candidate else {}
    return NoticeItem(
        kind=notice.kind, level=notice.level, title=name_with_months(notice.title, str(facts.get("value_period") or "")),
        rule=rule_id,
        rule_file=str(rule.position) if rule else "", template=template, subject_type=subject_type,
        subject=subject, subject_name=candidate.subject_name if candidate else notice.title,
        period=period, period_label=_item_period_label(rule, period, details),
        value=candidate.value if candidate else None, threshold=candidate.threshold if candidate else None,
        expected=candidate.expected if candidate else None, measure=candidate.measure if candidate else "",
        deadline=candidate.deadline if candidate else None,
        days_left=days_left if days_left is not None and days_left >= 0 else None,
        days_overdue=-days_left if days_left is not None and days_left < 0 else None,
        units=tuple(UnitRef(code, snapshot.units[code].name if code in snapshot.units else code) for code in units),
        source=rule.source_for(str(details.get("indicator") or (subject.split("@")[0] if subject_type == "indicator" else "")),
                                  subject)
        if rule else "", document=rule_set.settings.document,
        action=rule.action if rule else "", repeat=notice.repeat,
        idempotency_key=notice.idempotency_key(round_key), details=details,
        notified_before=notice.notified_before, since=_local_date(notice.since),
        previous_level=notice.previous_level, previous=dict(notice.previous),
        closed_on=_local_date(notice.candidate.at) if notice.kind == "resolved" and notice.candidate else None,
        closing=str(details.get("closing", "")) if notice.kind == "resolved" else "",
    )


def _item_period_label(rule: Rule | None, period: str, details: Mapping[str, Any]) -> str:
    """What a notice's figure covers: 2023年6月 for a month's figure (threshold), 2023年1—6月 for a
    year's running total (pace, praise, forecast), else the alert's period (2023年, 2023年第二季度)."""
    value_period = str(details.get("value_period") or "")
    if not value_period:
        return _label(period)
    if rule is not None and rule.kind in ("pace", "praise", "forecast") and len(value_period) == 7 \
            and value_period[4] == "-" and value_period[5] != "Q":
        month = int(value_period[5:7])
        return f"{value_period[:4]}年1—{month}月" if month > 1 else f"{value_period[:4]}年1月"
    if rule is not None and rule.kind == "milestone":
        return _label(period)
    return _label(value_period)


def _closing(notices: list[PlannedNotice], alerts: Mapping[AlertKey, Alert], result: EvaluationResult,
             snapshot: Snapshot, at: dt.datetime) -> list[PlannedNotice]:
    """A 销号 says what closed the item: the figure now, or the day the task was done.

    The lifecycle closes an alert because its candidate is gone, so it has no figures; here the
    closing ones are found (the rule's assessment this round, the task's done date, the month's
    figures filed) and carried as the notice's candidate: the ledger row then shows them too.
    """
    if not any(n.kind == "resolved" for n in notices):
        return notices
    assessed = {(a.rule, a.subject_type, a.subject, a.period): a for a in result.assessments}
    out = []
    for notice in notices:
        if notice.kind != "resolved" or notice.candidate is not None:
            out.append(notice)
            continue
        alert = alerts.get(notice.alert_key)
        facts: Mapping[str, Any] = (alert.facts if alert is not None else None) or {}
        closing = _closing_candidate(notice, facts, assessed, snapshot, at)
        out.append(replace(notice, candidate=closing, title=closing.title))
    return out


# What a 销号 keeps of the judgement that closed it so its target reads as the warning's did: the
# comparison (1800人次以上, 超过2000亿元), and a programme-end target's derived amount labelled as such.
_TARGET_WORDING = ("comparison", "tolerance", "line", "shape", "strength", "derived", "derived_how", "final_year")


def _closing_candidate(notice: PlannedNotice, facts: Mapping[str, Any], assessed: Mapping[AlertKey, Any],
                       snapshot: Snapshot, at: dt.datetime) -> AlertCandidate:
    rule, subject_type, subject, period = notice.alert_key
    assessment = assessed.get(notice.alert_key)
    value_period = (assessment.details.get("value_period") if assessment is not None else None) or facts.get("value_period")
    name = name_with_months(str(facts.get("subject_name") or subject), str(value_period or ""))
    units = tuple(facts.get("units") or ())
    measure = str(facts.get("measure") or "")
    value = threshold = expected = None
    deadline = None
    details: dict[str, Any] = {"previous_title": notice.title}
    closing = "经核实已整改到位"
    if subject_type == "task":
        task = snapshot.tasks.get(subject)
        deadline = task.deadline if task else None
        if task is not None and task.done_on is not None:
            closing = f"已于{_date_cn(task.done_on)}完成"
            details["done_on"] = task.done_on.isoformat()
        elif task is not None and task.done:
            closing = "已完成"
        if task is not None:
            details.update({"goal": task.goal, "measures": task.measures})
    elif "missing_months" in facts or str(facts.get("stage", "")) in ("missing", "missing_red"):
        months = [str(m) for m in facts.get("missing_months") or [period]]
        filed = [m for m in months if _filed(snapshot, str(facts.get("indicator") or subject.split("@")[0]),
                                             str(facts.get("unit") or ""), m)]
        closing = f"{_months_cn(filed or months[:1])}数据已报送"
        details["filed_months"] = filed
    elif isinstance(facts.get("forecast"), Mapping) and assessment is None:
        # A year-end forecast stops once the year's figures are in: nothing was put right, the year
        # is over. Say how it ended (the pace rule's judgement of the same subject) — never 已整改到位.
        year = next((a for a in assessed.values() if a.subject_type == subject_type and a.subject == subject
                     and a.period == period and "completion" in a.details and a.value is not None), None)
        if year is not None:
            value, threshold, measure = year.value, year.threshold, year.measure or measure
            ran_to = str(year.details.get("value_period") or "")
            label = name_with_months("1—N月", ran_to) if ran_to else f"{period}年"
            comparison = str(year.details.get("comparison") or "")
            line = float(year.details.get("line") or threshold or 0)
            met = threshold is not None and value is not None and (
                value > threshold if comparison == "more_than" else value >= line - 1e-9)
            # The target as the document words it (超过2000亿元, 1800人次以上), never the bare figure.
            closing = (f"{label}累计完成{_num(value)}{measure}，{'已完成' if met else '未完成'}年度目标"
                       f"（{target_worded(threshold, measure, comparison)}，完成进度{_num(year.details['completion'])}%），"
                       "年度预警结束" + ("" if met else "，全年完成情况纳入年度评估"))
            details.update({k: v for k, v in year.details.items() if k in ("completion", "value_period", "months_ended",
                                                                         *_TARGET_WORDING)})
            name = name_with_months(str(facts.get("subject_name") or subject), ran_to)
        else:
            closing = "全年数据已报送，年度预警结束，全年完成情况纳入年度评估"
        details["forecast_over"] = True
    elif assessment is not None:
        value, threshold, expected = assessment.value, assessment.threshold, assessment.expected
        measure = assessment.measure or measure
        details.update({k: v for k, v in assessment.details.items() if k in ("completion", "time_progress", "value_period",
                                                                              "bound", "months_ended", *_TARGET_WORDING)})
        completion, progress = assessment.details.get("completion"), assessment.details.get("time_progress")
        forecast = assessment.details.get("forecast")
        if isinstance(forecast, Mapping) and forecast.get("percent") is not None:
            closing = (f"按当前进度预计年底完成年度目标的{_num(forecast['percent'])}%，"
                       f"已不低于预警线{_num(forecast.get('warn_below') or 0)}%")
        elif completion is not None and progress is not None:
            if float(completion) < float(progress) and value is not None and expected is not None:
                # Counts are paced in whole items: 37 of 50 by September is on pace (74% < 75%).
                closing = (f"累计完成{_num(value)}{measure}，已达到按序时进度应完成的{_num(expected)}{measure}"
                           f"（完成进度{_num(completion)}%）")
            else:
                closing = f"完成进度{_num(completion)}%，已达到序时进度{_num(progress)}%"
        elif value is not None and threshold is not None:
            value_period = str(assessment.details.get("value_period") or assessment.period)
            label = _label(value_period)
            if "1—N月" in str(facts.get("subject_name") or "") and len(value_period) == 7 and value_period[5] != "Q":
                label = name_with_months("1—N月", value_period)  # a running figure: 2023年1—8月, not 2023年8月
            closing = f"{label}为{_num(value)}{measure}，已达到{_num(threshold)}{measure}的要求"
    details["closing"] = closing
    unit = snapshot.units.get(str(facts.get("unit") or ""))
    who = f"（{unit.name}）" if unit is not None and "@" in subject else ""
    if subject_type == "task":
        title = f"重点任务“{name}”销号"
    elif details.get("forecast_over"):
        title = f"“{name}”{who}年度目标预警结束"
    elif "filed_months" in details:
        title = f"“{name}”{who}{closing}，销号"
    else:
        title = f"“{name}”{who}预警销号"
    return AlertCandidate(
        at=at, rule=rule, period=period, kind="resolved", level=None, subject_type=subject_type, subject=subject,
        subject_name=name, units=units, recipients=tuple(facts.get("recipients") or ()),
        notify_units=(notice.recipient_unit,), title=title, value=value, threshold=threshold,
        expected=expected, measure=measure, deadline=deadline, details=details,
    )


def _filed(snapshot: Snapshot, indicator: str, unit: str, month: str) -> bool:
    by_unit = snapshot.observations.get(indicator, {})
    return any(month in series for code, series in by_unit.items() if not unit or code in (unit, ""))


def _date_cn(day: dt.date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def _months_cn(months: Sequence[str]) -> str:
    return "、".join(_label(m) for m in months)


def _num(value: Any) -> str:
    return f"{float(value):.2f}".rstrip("0").rstrip(".")


def _label(period: str) -> str:
    """2023年6月, 2023年第二季度, 2023年12月31日, 规划期: never a code or an ISO date."""
    return period_cn(period.split("/")[0])


def send_outbox(engine: Engine, rule_set: RuleSet | None = None, *, limit: int | None = None,
                max_wait: dt.timedelta | None = None) -> DeliveryOutcome:
    """Send the outbox through every configured transport; failures go to programme.yaml's admin_email.

    The one sending path of `duban send`, `evaluate --send`, `run`, `run --once` and the service
    (see notifiers/service.py). `str()` of the result is the Chinese summary; `.exit_code` is
    non-zero when anything failed.
    """
    import asyncio

    from duban.notifiers.outbox import DEFAULT_MAX_WAIT
    from duban.notifiers.service import deliver
    from duban.notifiers.transports.settings import current_env

    # programme.yaml's admin_email; the configuration's [mail] admin_email only when it has none.
    admin = (rule_set.settings.admin_email if rule_set else "") or current_env().get("DUBAN_ADMIN_EMAIL", "")
    return asyncio.run(deliver(engine, admin_address=admin or None, limit=limit,
                               max_wait=DEFAULT_MAX_WAIT if max_wait is None else max_wait))


def template_problems(rule_set: RuleSet) -> list[TemplateProblem]:
    return list(DigestRenderer(Path(rule_set.templates_dir)).problems)
