"""Acknowledging and silencing alerts: one implementation for `duban ack`/`duban silence` and the web.

`Alert.acked_until` pauses the 催办 repeats of one alert (an escalation still notifies and clears
it); a `Silence` row mutes every notice it matches until it expires. Both record who and why.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy.orm import Session

from duban.store.models import Alert, Silence
from duban.store.periods import SHANGHAI


class AlertActionError(ValueError):
    """A Chinese message the user can act on."""


def when_cn(value: dt.datetime | None) -> str:
    if value is None:
        return "—"
    return f"{value.astimezone(SHANGHAI):%Y-%m-%d %H:%M}"


def future(until: dt.datetime, option: str, now: dt.datetime) -> dt.datetime:
    if until <= now:
        raise AlertActionError(f"{option} {when_cn(until)} 已经过去（现在是 {when_cn(now)}），请给出将来的时间")
    return until


def rule_matches(stored: str, wanted: str) -> bool:
    return stored == wanted or stored.split(".", 1)[-1] == wanted


def acknowledge(alert: Alert, *, until: dt.datetime, by: str, now: dt.datetime, reason: str = "") -> Alert:
    """No 催办 repeats of `alert` until `until`; an escalation still notifies."""
    if alert.state != "firing":
        raise AlertActionError(f"告警 #{alert.id}（{alert.title}）已于 {when_cn(alert.resolved_at)} 销号，无需确认")
    future(until, "确认期限", now)
    alert.acked_until = until
    alert.acked_by = f"{by}：{reason}" if reason else by
    return alert


def create_silence(session: Session, *, rule: str, subject: str, unit: str, until: dt.datetime, by: str,
                   reason: str, now: dt.datetime, known_rules: Iterable[str] | None = None) -> Silence:
    """Mute notices matching rule/subject/unit (at least one) until `until`."""
    if not (rule or subject or unit):
        raise AlertActionError("静默须至少指定规则、对象、单位之一，以免误把全部通知静默")
    future(until, "静默期限", now)
    rule_id = rule
    if rule and known_rules is not None:
        known = list(known_rules)
        matching = sorted(r for r in known if rule_matches(r, rule))
        if not matching:
            similar = sorted(r.split(".", 1)[-1] for r in known if rule in r)[:5]
            hint = f"，是否为：{'、'.join(similar)}" if similar else "；可用 duban check 或 duban alerts 查看规则"
            raise AlertActionError(f"规则集中没有规则“{rule}”{hint}")
        rule_id = matching[0]
    row = Silence(rule=rule_id, subject=subject, unit=unit, until=until, created_at=now, created_by=by, reason=reason)
    session.add(row)
    session.flush()
    return row


def expire_silence(session: Session, silence_id: int, now: dt.datetime) -> Silence:
    row = session.get(Silence, silence_id)
    if row is None:
        raise AlertActionError(f"没有编号为 #{silence_id} 的静默；请用 duban silence --list 查看")
    if row.until <= now:
        raise AlertActionError(f"静默 #{silence_id} 已于 {when_cn(row.until)} 到期，无需解除")
    row.until = now
    return row
