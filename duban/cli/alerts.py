"""`duban alerts`, `duban ack`, `duban silence`, `duban notices` (alias `ledger`): the alert commands.

The lifecycle (engine/lifecycle.py) reads what these write: `Alert.acked_until` pauses the 催办
repeats of one alert (an escalation still notifies and clears it); a `Silence` row mutes every
notice it matches until it expires. The ledger (台账) is the `notices` table with the outcome of
each notice's delivery.
"""

from __future__ import annotations

import datetime as dt
import json
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from duban.app.alerts import AlertActionError, acknowledge, create_silence, expire_silence
from duban.cli import AppContext, UserError, main, pass_app
from duban.cli.rules import parse_at
from duban.engine.lifecycle import QUIET_KINDS, SilenceRule
from duban.notifiers.render import format_number, name_with_months, period_cn
from duban.store.db import transaction
from duban.store.models import Alert, Delivery, Notice, Round, Silence, Unit
from duban.store.periods import SHANGHAI

LEVEL_LABELS = {"red": "红灯", "yellow": "黄灯", "blue": "提醒", "green": "表扬"}
STATE_LABELS = {"firing": "预警中", "resolved": "已销号"}
KIND_LABELS = {
    "warning": "预警", "reminder": "提醒", "overdue": "逾期", "praise": "表扬", "escalation": "升级督办",
    "revised": "灯色调整", "resolved": "销号", "report_due": "报送提醒",
}
DELIVERY_LABELS = {"pending": "待发送", "sending": "发送中", "sent": "已发送", "failed": "发送失败"}
CHANNEL_LABELS = {"email": "邮件", "dingtalk": "钉钉"}


def now_utc() -> dt.datetime:
    """The CLI's clock (the core never reads it); tests move it with time-machine."""
    return dt.datetime.now(dt.UTC)


def when_cn(value: dt.datetime | None) -> str:
    if value is None:
        return "—"
    local = value.astimezone(SHANGHAI)
    return f"{local:%Y-%m-%d %H:%M}"


def _future(until: dt.datetime, option: str, now: dt.datetime) -> dt.datetime:
    if until <= now:
        raise UserError(f"{option} {when_cn(until)} 已经过去（现在是 {when_cn(now)}），请给出将来的时间")
    return until


def _session(app: AppContext) -> Any:
    try:
        with app.engine.connect() as conn:
            conn.execute(select(Alert.id).limit(1))
    except SQLAlchemyError as exc:
        raise UserError(f"无法读取数据库 {app.db_url}：{str(exc).splitlines()[0]}（是否已运行 duban db upgrade？）") from None
    return transaction(app.engine)


# --- plain tables that line up with Chinese characters ----------------------------------------


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Columns padded by display width (a Chinese character takes two cells in a terminal)."""
    body = [[str(cell) for cell in row] for row in rows]
    widths = [max([_width(h), *(_width(r[i]) for r in body)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell + " " * (widths[i] - _width(cell)) for i, cell in enumerate(cells)).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in body)]


# --- lookups ----------------------------------------------------------------------------------


def _unit_names(session: Session) -> dict[str, str]:
    return {code: name for code, name in session.execute(select(Unit.code, Unit.name))}


def _unit_code(session: Session, text: str) -> str:
    """A unit given by code or by its exact name (officials know names, not codes)."""
    names = _unit_names(session)
    if text in names:
        return text
    by_name = [code for code, name in names.items() if name == text]
    if by_name:
        return by_name[0]
    similar = [f"{code}（{name}）" for code, name in names.items() if text in name or text in code][:5]
    hint = f"，是否为：{'、'.join(similar)}" if similar else "；可用 duban alerts 或单位名单核对"
    raise UserError(f"没有找到单位“{text}”{hint}")


def _rule_matches(stored: str, wanted: str) -> bool:
    return stored == wanted or stored.split(".", 1)[-1] == wanted


def alert_key(alert: Alert) -> str:
    """What `duban ack` accepts besides the number: rule|subject|period, as in the ledger."""
    return f"{alert.rule.split('.', 1)[-1]}|{alert.subject}|{alert.period}"


def _active_silences(session: Session, now: dt.datetime) -> list[Silence]:
    return list(session.scalars(select(Silence).where(Silence.until > now).order_by(Silence.id)))


def _silenced(alert: Alert, silences: Sequence[Silence], now: dt.datetime) -> str:
    units = list(alert.notify_units or alert.units or [])
    rules = [SilenceRule(s.rule, s.subject, s.unit, s.until) for s in silences]
    muted = [u for u in units if any(r.mutes(alert.rule, alert.subject, u, now) for r in rules)]
    if not muted:
        return ""
    return "全部" if len(muted) == len(units) else "部分（" + "、".join(muted) + "）"


def _history(alert: Alert) -> str:
    steps = []
    year = None
    for step in alert.level_history or []:
        try:
            at = dt.datetime.fromisoformat(step["at"]).astimezone(SHANGHAI)
        except (KeyError, TypeError, ValueError):
            continue
        label = STATE_LABELS["resolved"] if step.get("state") == "resolved" else LEVEL_LABELS.get(step.get("level") or "", "—")
        # The year only where it changes: short, yet 12/20 → 1/5 is never read backwards.
        day = f"{at.month}/{at.day}" if at.year == year else f"{at.year}/{at.month}/{at.day}"
        year = at.year
        steps.append(f"{day} {label}")
    return " → ".join(steps)


# --- duban alerts -----------------------------------------------------------------------------


@main.command("alerts")
@click.option("--state", type=click.Choice(["firing", "resolved", "all"]), default="firing", show_default=True,
              help="firing（预警中）、resolved（已销号）或 all（全部）。")
@click.option("--unit", "unit", default=None, help="只列出涉及该单位的预警（单位代码或名称）。")
@click.option("--rule", "rule", default=None, help="只列出该规则的预警（规则编号，可带或不带项目前缀）。")
@click.option("--json", "as_json", is_flag=True, help="每行输出一个 JSON 对象。")
@pass_app
def alerts(app: AppContext, state: str, unit: str | None, rule: str | None, as_json: bool) -> None:
    """列出预警（灯色、首次/最近出现时间、灯色变化、确认和静默情况）及生效中的静默。"""
    now = now_utc()
    with _session(app) as session:
        unit_code = _unit_code(session, unit) if unit else None
        query = select(Alert).order_by(Alert.state, Alert.rule, Alert.subject, Alert.period)
        if state != "all":
            query = query.where(Alert.state == state)
        rows = [a for a in session.scalars(query)
                if (rule is None or _rule_matches(a.rule, rule))
                and (unit_code is None or unit_code in (a.units or []) or unit_code in (a.notify_units or []))]
        silences = _active_silences(session, now)
        names = _unit_names(session)
        if as_json:
            for a in rows:
                click.echo(json.dumps(_alert_json(a, silences, now), ensure_ascii=False))
            for s in silences:
                click.echo(json.dumps({"silence": _silence_json(s)}, ensure_ascii=False))
            return
        scope = {"firing": "预警中的", "resolved": "已销号的", "all": "全部"}[state]
        if not rows:
            click.echo(f"没有{scope}告警。")
        else:
            click.echo(f"{scope}告警 {len(rows)} 条：")
            for line in table(
                ["编号", "规则", "对象", "期次", "灯色", "状态", "首次发现", "最近发现", "灯色变化", "确认至", "静默"],
                [[f"#{a.id}", a.rule.split(".", 1)[-1], _subject_label(a, names), a.period,
                  LEVEL_LABELS.get(a.level or "", "—"), _state_label(a), when_cn(a.first_seen),
                  when_cn(a.last_seen), _history(a) or "—", _ack_label(a, now), _silenced(a, silences, now) or "—"]
                 for a in rows],
            ):
                click.echo(line)
        click.echo("")
        _print_silences(silences, names)


def _state_label(alert: Alert) -> str:
    if alert.state == "firing" and alert.kind in QUIET_KINDS:
        return "有效"  # a reminder or a praise is not a warning: it lapses, it is never 销号
    return STATE_LABELS.get(alert.state, alert.state)


def _subject_label(alert: Alert, names: dict[str, str]) -> str:
    name = str((alert.facts or {}).get("subject_name") or alert.subject)
    if "@" in alert.subject:
        unit = alert.subject.split("@", 1)[1]
        name += f"（{names.get(unit, unit)}）"
    return name


def _ack_label(alert: Alert, now: dt.datetime) -> str:
    if alert.acked_until is None or alert.acked_until <= now:
        return "—"
    return when_cn(alert.acked_until) + (f"（{alert.acked_by}）" if alert.acked_by else "")


def _alert_json(alert: Alert, silences: Sequence[Silence], now: dt.datetime) -> dict[str, Any]:
    return {
        "id": alert.id, "key": alert_key(alert), "rule": alert.rule, "subject_type": alert.subject_type,
        "subject": alert.subject, "subject_name": (alert.facts or {}).get("subject_name", alert.subject),
        "period": alert.period, "kind": alert.kind, "level": alert.level, "state": alert.state,
        "title": alert.title, "units": list(alert.units or []), "notify_units": list(alert.notify_units or []),
        "first_seen": alert.first_seen.isoformat(), "last_seen": alert.last_seen.isoformat(),
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        "level_history": list(alert.level_history or []), "repeats": alert.repeats,
        "acked_until": alert.acked_until.isoformat() if alert.acked_until and alert.acked_until > now else None,
        "acked_by": alert.acked_by if alert.acked_until and alert.acked_until > now else "",
        "silenced": _silenced(alert, silences, now) != "",
    }


def _silence_json(silence: Silence) -> dict[str, Any]:
    return {"id": silence.id, "rule": silence.rule, "subject": silence.subject, "unit": silence.unit,
            "until": silence.until.isoformat(), "created_at": silence.created_at.isoformat(),
            "created_by": silence.created_by, "comment": silence.reason}


def _print_silences(silences: Sequence[Silence], names: dict[str, str]) -> None:
    if not silences:
        click.echo("当前没有生效的静默。")
        return
    click.echo(f"生效中的静默 {len(silences)} 条：")
    for line in table(
        ["编号", "规则", "对象", "单位", "静默至", "设置人", "设置时间", "说明"],
        [[f"#{s.id}", s.rule.split(".", 1)[-1] or "（任意）", s.subject or "（任意）",
          f"{names.get(s.unit, s.unit)}" if s.unit else "（任意）", when_cn(s.until), s.created_by or "—",
          when_cn(s.created_at), s.reason or "—"] for s in silences],
    ):
        click.echo(line)


# --- duban ack --------------------------------------------------------------------------------


def _find_alert(session: Session, ref: str) -> Alert:
    text = ref.strip().lstrip("#")
    if text.isdigit():
        alert = session.get(Alert, int(text))
        if alert is None:
            raise UserError(f"没有编号为 #{text} 的告警；请用 duban alerts 查看编号")
        return alert
    parts = text.split("|")
    if len(parts) != 3 or not all(parts):
        raise UserError(f"告警“{ref}”无法识别：请给出 duban alerts 列出的编号（如 12）或标识（规则|对象|期次，如 "
                        f"service_investment_share|service_investment_share|2023）")
    rule, subject, period = parts
    found = [a for a in session.scalars(select(Alert).where(Alert.subject == subject, Alert.period == period))
             if _rule_matches(a.rule, rule)]
    if not found:
        raise UserError(f"没有找到告警“{ref}”；请用 duban alerts 查看编号或标识")
    if len(found) > 1:
        raise UserError(f"标识“{ref}”对应多条告警（{'、'.join(f'#{a.id}' for a in found)}），请改用编号")
    return found[0]


@main.command("ack")
@click.argument("alert_ref", metavar="预警编号或键")
@click.option("--until", "until_text", required=True, help="在此之前暂停重复催办（ISO 日期或时间）。")
@click.option("--by", "by", default=None, help="确认人（默认：当前系统用户名）。")
@pass_app
def ack(app: AppContext, alert_ref: str, until_text: str, by: str | None) -> None:
    """确认一条预警：到期前不再重复催办；升级、灯色调整和销号仍会通知。"""
    from duban.cli import _os_user

    now = now_utc()
    until = _future(parse_at(until_text, "--until"), "--until", now)
    with _session(app) as session:
        alert = _find_alert(session, alert_ref)
        try:
            acknowledge(alert, until=until, by=by if by is not None else _os_user(), now=now)
        except AlertActionError as exc:
            raise UserError(str(exc)) from None
        # A red alert cannot be escalated further: promising "如升级为红灯仍会通知" to it would be wrong.
        after = "如升级为红灯仍会通知" if alert.level != "red" else "灯色或数据如有变化（调整为黄灯、销号）仍会通知"
        click.echo(f"已确认告警 #{alert.id}：{alert.title}（{LEVEL_LABELS.get(alert.level or '', '—')}）。"
                   f"{when_cn(until)} 前不再催办；{after}。")


# --- duban silence ----------------------------------------------------------------------------


def _known_rules(app: AppContext) -> set[str] | None:
    """Rule ids of the database's rule set, or None when it cannot be loaded (then any id is taken)."""
    from duban.cli.rules import rule_set_directory
    from duban.engine.loader import RuleSetInvalid, load_rule_set

    try:
        rule_set = load_rule_set(rule_set_directory(app))
    except (RuleSetInvalid, UserError, OSError):
        return None
    return {r.id for r in rule_set.rules}


@main.command("silence")
@click.option("--rule", "rule", default=None, help="规则编号（可带或不带项目前缀）。")
@click.option("--subject", "subject", default=None, help="监测对象代码：指标、项目、任务或单位。")
@click.option("--unit", "unit", default=None, help="收件单位（单位代码或名称）。")
@click.option("--until", "until_text", default=None, help="静默截止时间（ISO 日期或时间，北京时间）。")
@click.option("--comment", "comment", default="", help="静默原因（在 duban alerts 中显示）。")
@click.option("--by", "by", default=None, help="操作人（默认：当前系统用户名）。")
@click.option("--list", "list_only", is_flag=True, help="列出生效中的静默。")
@click.option("--expire", "expire_id", type=int, default=None, help="立即结束该编号的静默。")
@pass_app
def silence(app: AppContext, rule: str | None, subject: str | None, unit: str | None, until_text: str | None,
            comment: str, by: str | None, list_only: bool, expire_id: int | None) -> None:
    """在 --until 之前不发送符合 --rule/--subject/--unit（至少指定一项）的通知。"""
    from duban.cli import _os_user

    now = now_utc()
    creating = any(x is not None for x in (rule, subject, unit, until_text))
    if sum((list_only, expire_id is not None, creating)) != 1:
        raise UserError("请选择一项操作：新建静默（--rule/--subject/--unit 与 --until）、--list 或 --expire 编号")
    # Read before the write transaction: the rule set lookup opens its own connection.
    known = _known_rules(app) if rule else None
    with _session(app) as session:
        names = _unit_names(session)
        if list_only:
            _print_silences(_active_silences(session, now), names)
            return
        if expire_id is not None:
            try:
                expire_silence(session, expire_id, now)
            except AlertActionError as exc:
                raise UserError(str(exc)) from None
            click.echo(f"已解除静默 #{expire_id}，此后的轮次恢复通知。")
            return
        if not (rule or subject or unit):
            raise UserError("静默须至少指定 --rule、--subject、--unit 之一，以免误把全部通知静默")
        if until_text is None:
            raise UserError("请用 --until 给出静默的到期时间，如 --until 2023-08-01")
        until = _future(parse_at(until_text, "--until"), "--until", now)
        unit_code = _unit_code(session, unit) if unit else ""
        try:
            row = create_silence(session, rule=rule or "", subject=subject or "", unit=unit_code, until=until,
                                 by=by if by is not None else _os_user(), reason=comment, now=now, known_rules=known)
        except AlertActionError as exc:
            raise UserError(str(exc)) from None
        rule_id = row.rule
        what = "、".join(x for x in (f"规则 {rule_id.split('.', 1)[-1]}" if rule_id else "",
                                    f"对象 {subject}" if subject else "",
                                    f"单位 {names.get(unit_code, unit_code)}" if unit_code else "") if x)
        click.echo(f"已设置静默 #{row.id}：{what} 的通知在 {when_cn(until)} 前不再发送（仍记入告警）。")


# --- duban notices / ledger -------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerRow:
    id: int
    created_at: dt.datetime
    round_key: str
    rule: str
    subject: str
    subject_name: str
    period: str
    kind: str
    level: str | None
    recipient_unit: str
    recipient_name: str
    title: str
    figures: str
    delivery: str
    addresses: tuple[str, ...]
    sent_at: dt.datetime | None
    alert_id: int | None
    round_name: str = ""  # 2023年7月17日 09:00 专班会商、月调度

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id, "at": self.created_at.isoformat(), "round": self.round_key, "rule": self.rule,
            "subject": self.subject, "subject_name": self.subject_name, "period": self.period, "kind": self.kind,
            "level": self.level, "recipient_unit": self.recipient_unit, "recipient_name": self.recipient_name,
            "title": self.title, "figures": self.figures, "delivery": self.delivery,
            "addresses": list(self.addresses), "sent_at": self.sent_at.isoformat() if self.sent_at else None,
            "alert_id": self.alert_id,
        }


def _figures(facts: dict[str, Any]) -> str:
    value = facts.get("value")
    if value is None:
        return str(facts.get("closing") or "")
    measure = facts.get("measure", "")
    text = f"{format_number(value)}{measure}"
    if facts.get("threshold") is not None:
        text += f" / {format_number(facts['threshold'])}{measure}"
    if facts.get("completion") is not None and facts.get("time_progress") is not None:
        text += f"（完成 {format_number(facts['completion'])}%，序时 {format_number(facts['time_progress'])}%）"
    if facts.get("closing"):
        text = f"{text}；{facts['closing']}" if value is not None else str(facts["closing"])
    return text


def _delivery_summary(rows: Sequence[Delivery]) -> tuple[str, tuple[str, ...], dt.datetime | None]:
    if not rows:
        return "未投递（无收件地址）", (), None
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        counts[row.status] += 1
    if counts.get("sent") == len(rows):
        status = "已发送"
    else:
        status = "，".join(f"{DELIVERY_LABELS.get(k, k)}{n}" for k, n in sorted(counts.items()))
        failed = [r for r in rows if r.status == "failed" and r.last_error]
        if failed:
            status += f"（{failed[0].last_error[:60]}）"
    sent = [r.sent_at for r in rows if r.sent_at is not None]
    addresses = tuple(f"{CHANNEL_LABELS.get(r.channel, r.channel)}:{r.address}" for r in rows)
    return status, addresses, max(sent) if sent else None


def ledger_rows(session: Session, *, unit: str | None = None, rule: str | None = None,
                since: dt.datetime | None = None, kind: str | None = None) -> list[LedgerRow]:
    """Every notice decided, oldest first, with what became of its delivery."""
    query = select(Notice, Round.key, Round.summary, Round.at).join(Round, Round.id == Notice.round_id).order_by(Notice.id)
    if unit:
        query = query.where(Notice.recipient_unit == unit)
    if since is not None:
        query = query.where(Notice.created_at >= since)
    if kind:
        query = query.where(Notice.kind == kind)
    found = [(n, key, _round_cn(summary, at)) for n, key, summary, at in session.execute(query)
             if rule is None or _rule_matches(n.rule, rule)]
    rounds = sorted({n.round_id for n, *_ in found})
    deliveries: dict[tuple[int, str], list[Delivery]] = defaultdict(list)
    for start in range(0, len(rounds), 500):
        for d in session.scalars(select(Delivery).where(Delivery.round_id.in_(rounds[start:start + 500]))
                                 .order_by(Delivery.id)):
            deliveries[(d.round_id or 0, d.recipient_unit)].append(d)
    names = _unit_names(session)
    rows = []
    for notice, round_key, round_name in found:
        facts = notice.facts or {}
        status, addresses, sent_at = _delivery_summary(deliveries.get((notice.round_id, notice.recipient_unit), []))
        # "1—N月" in an indicator's name is a placeholder: the ledger, like the mail, writes the months.
        value_period = str(facts.get("value_period") or "")
        rows.append(LedgerRow(
            id=notice.id, created_at=notice.created_at, round_key=round_key, rule=notice.rule,
            subject=notice.subject,
            subject_name=name_with_months(str(facts.get("subject_name") or notice.subject), value_period),
            period=notice.period, kind=notice.kind, level=notice.level, recipient_unit=notice.recipient_unit,
            recipient_name=names.get(notice.recipient_unit, notice.recipient_unit),
            title=name_with_months(notice.title, value_period),
            figures=_figures(facts), delivery=status, addresses=addresses, sent_at=sent_at, alert_id=notice.alert_id,
            round_name=round_name,
        ))
    return rows


LEDGER_HEADERS = ("编号", "通知时间", "收件单位", "类型", "灯色", "事项", "对象", "期次", "数值", "投递状态",
                  "收件地址", "送达时间", "轮次", "告警编号")


def _ledger_cells(row: LedgerRow) -> list[Any]:
    # What an office files: Chinese periods and round names; rule ids and round keys stay in --json.
    return [row.id, _date_time_cn(row.created_at), row.recipient_name, KIND_LABELS.get(row.kind, row.kind),
            LEVEL_LABELS.get(row.level or "", "—"), row.title, row.subject_name,
            period_cn(row.period), row.figures or "—", row.delivery, "；".join(row.addresses) or "—",
            _date_time_cn(row.sent_at), row.round_name or row.round_key, row.alert_id or "—"]


def _date_time_cn(value: dt.datetime | None) -> str:
    if value is None:
        return "—"
    local = value.astimezone(SHANGHAI)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


def _round_cn(summary: Any, at: dt.datetime) -> str:
    name = str((summary or {}).get("name") or "")
    return f"{_date_time_cn(at)} {name}".strip()


def write_ledger_xlsx(rows: Sequence[LedgerRow], path: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill

    from duban.store.xlsx_text import inert_row, text_cell

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("通知台账")
    widths = (8, 18, 18, 10, 8, 60, 24, 16, 28, 14, 40, 18, 36, 10)
    for index, width in enumerate(widths):
        sheet.column_dimensions[chr(ord("A") + index)].width = width
    sheet.freeze_panes = "A2"
    bold, fill = Font(bold=True), PatternFill("solid", fgColor="F2F2F2")
    header = []
    for text in LEDGER_HEADERS:
        cell = text_cell(sheet, text)
        cell.font, cell.fill, cell.alignment = bold, fill, Alignment(horizontal="center")
        header.append(cell)
    sheet.append(header)
    for row in rows:
        sheet.append(inert_row(sheet, _ledger_cells(row)))  # names come from imported lists: never formulas
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(path)


def _ledger(app: AppContext, unit: str | None, rule: str | None, since_text: str | None, kind: str | None,
            as_json: bool, xlsx: Path | None) -> None:
    since = parse_at(since_text, "--since") if since_text else None
    if kind is not None and kind not in KIND_LABELS:
        raise UserError(f"--kind “{kind}”无效，可选值：{'、'.join(f'{k}（{v}）' for k, v in KIND_LABELS.items())}")
    with _session(app) as session:
        unit_code = _unit_code(session, unit) if unit else None
        rows = ledger_rows(session, unit=unit_code, rule=rule, since=since, kind=kind)
    if xlsx is not None:
        try:
            write_ledger_xlsx(rows, xlsx)
        except OSError as exc:
            raise UserError(f"无法写入 {xlsx}：{exc.strerror or exc}") from None
        click.echo(f"通知台账已导出：{xlsx}（{len(rows)} 条）")
        return
    if as_json:
        for row in rows:
            click.echo(json.dumps(row.json(), ensure_ascii=False))
        return
    if not rows:
        click.echo("台账中没有符合条件的通知。")
        return
    click.echo(f"通知台账 {len(rows)} 条：")
    for line in table(["编号", "通知时间", "收件单位", "类型", "灯色", "事项", "期次", "数值", "投递状态", "送达时间"],
                      [[str(c) for i, c in enumerate(_ledger_cells(r)) if i in (0, 1, 2, 3, 4, 5, 7, 8, 9, 11)]
                       for r in rows]):
        click.echo(line)


def _ledger_command(name: str, help_text: str) -> None:
    @main.command(name, help=help_text)
    @click.option("--unit", "unit", default=None, help="只列出发给该单位的通知（单位代码或名称）。")
    @click.option("--rule", "rule", default=None, help="只列出该规则的通知。")
    @click.option("--since", "since_text", default=None, help="只列出此时间之后的通知（ISO 日期或时间）。")
    @click.option("--kind", "kind", default=None, help="通知类型：warning（预警）、reminder（提醒）、overdue（逾期）、praise（表扬）、escalation（升级督办）、revised（灯色调整）、resolved（销号）。")
    @click.option("--json", "as_json", is_flag=True, help="每行输出一个 JSON 对象。")
    @click.option("--xlsx", "xlsx", default=None, type=click.Path(dir_okay=False, path_type=Path),
                  help="改为将台账导出到该 .xlsx 文件。")
    @pass_app
    def command(app: AppContext, unit: str | None, rule: str | None, since_text: str | None, kind: str | None,
                as_json: bool, xlsx: Path | None) -> None:
        _ledger(app, unit, rule, since_text, kind, as_json, xlsx)


_ledger_command("notices", "通知台账：每条通知发给谁、何时、为何，以及投递结果。")
_ledger_command("ledger", "同 duban notices。")
