"""A unit that catches up has its alert revised, not left red; with `resolve_margin` an alert is
closed (销号) only once the figure beats its bound by that margin; acknowledgements pause 催办
but never an escalation."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import textwrap
from email.message import Message
from pathlib import Path

import pytest
from sqlalchemy import select

from duban.app.rounds import record_round
from duban.engine.evaluate import AlertCandidate
from duban.engine.lifecycle import AlertState, RoundPlan, Standing, plan
from duban.engine.loader import RuleSetInvalid, load_rule_set
from duban.store.importer import import_paths
from duban.store.models import Alert, Delivery, DeliveryPayload, Notice
from duban.store.periods import SHANGHAI

RULE = "demo.share_floor"
KEY = (RULE, "indicator", "share", "2023")
T0 = dt.datetime(2023, 7, 3, 9, tzinfo=SHANGHAI)
WEEK = dt.timedelta(days=7)


def candidate(level: str, at: dt.datetime, value: float = 60.0) -> AlertCandidate:
    return AlertCandidate(
        at=at, rule=RULE, period="2023", kind="warning", level=level, subject_type="indicator", subject="share",
        subject_name="服务业投资占比", units=("fgj",), recipients=("fgj@example.org",), notify_units=("fgj",),
        title="服务业投资占比低于2/3", value=value, threshold=66.67, measure="%",
    )


def firing(level: str, *, acked_until: dt.datetime | None = None, notified: dt.datetime = T0) -> AlertState:
    return AlertState(*KEY, kind="warning", level=level, state="firing", first_seen=T0, last_notified_at=notified,
                      acked_until=acked_until, units=("fgj",), notify_units=("fgj",), title="服务业投资占比低于2/3",
                      facts={"subject_name": "服务业投资占比", "measure": "%"})


def run(candidates: list[AlertCandidate], old: AlertState, now: dt.datetime, *, margin: float = 0.0,
        clearance: float | None = None) -> RoundPlan:
    standing = {KEY: Standing(clearance, value=66.67 + clearance, threshold=66.67)} if clearance is not None else {}
    return plan(candidates, {KEY: old}, now=now, evaluated_rules={RULE}, repeat_of={RULE: WEEK},
                resolve_margin_of={RULE: margin}, standing=standing)


def test_red_caught_up_to_yellow_sends_a_revision_notice_not_a_red_repeat() -> None:
    later = T0 + dt.timedelta(days=30)
    decided = run([candidate("yellow", later, 64.0)], firing("red"), later)
    assert [(n.kind, n.level, n.recipient_unit) for n in decided.notices] == [("revised", "yellow", "fgj")]
    state, notified = decided.alerts[0]
    assert (state.level, state.state, notified) == ("yellow", "firing", True)


def test_the_revision_reaches_a_unit_even_while_its_alert_is_acknowledged() -> None:
    later = T0 + dt.timedelta(days=1)
    decided = run([candidate("yellow", later)], firing("red", acked_until=later + WEEK), later)
    assert [n.kind for n in decided.notices] == ["revised"]


def test_an_acknowledged_alert_is_not_repeated_until_the_acknowledgement_expires() -> None:
    ack_end = T0 + 3 * WEEK
    paused = run([candidate("yellow", T0 + 2 * WEEK)], firing("yellow", acked_until=ack_end), T0 + 2 * WEEK)
    resumed = run([candidate("yellow", ack_end)], firing("yellow", acked_until=ack_end), ack_end)
    assert paused.notices == []
    assert [n.kind for n in resumed.notices] == ["warning"]
    assert resumed.notices[0].repeat == 1


def test_an_escalation_reaches_an_acknowledged_alert_and_ends_the_acknowledgement() -> None:
    later = T0 + dt.timedelta(days=1)
    decided = run([candidate("red", later)], firing("yellow", acked_until=later + 4 * WEEK), later)
    assert [(n.kind, n.level) for n in decided.notices] == [("escalation", "red")]
    assert decided.alerts[0][0].acked_until is None


def test_without_a_resolve_margin_an_alert_is_closed_as_soon_as_the_bound_is_met() -> None:
    decided = run([], firing("red"), T0 + WEEK, margin=0.0, clearance=0.1)
    assert [n.kind for n in decided.notices] == ["resolved"]
    assert decided.alerts[0][0].state == "resolved"


def test_within_the_resolve_margin_a_red_alert_stays_open_revised_to_yellow() -> None:
    decided = run([], firing("red"), T0 + WEEK, margin=1.0, clearance=0.4)
    state, _ = decided.alerts[0]
    assert (state.state, state.level) == ("firing", "yellow")
    [notice] = decided.notices
    assert (notice.kind, notice.level) == ("revised", "yellow")
    assert notice.candidate is not None and notice.candidate.value == pytest.approx(67.07)


def test_within_the_resolve_margin_a_yellow_alert_waits_quietly_without_repeats() -> None:
    decided = run([], firing("yellow", notified=T0), T0 + 5 * WEEK, margin=1.0, clearance=0.4)
    assert decided.notices == []
    assert decided.alerts[0][0].state == "firing"


def test_beyond_the_resolve_margin_the_alert_is_closed_with_a_resolution_notice() -> None:
    decided = run([], firing("yellow"), T0 + WEEK, margin=1.0, clearance=1.2)
    assert [n.kind for n in decided.notices] == ["resolved"]


def test_a_subject_no_longer_assessed_is_closed_whatever_the_margin() -> None:
    decided = run([], firing("red"), T0 + WEEK, margin=1.0, clearance=None)
    assert [n.kind for n in decided.notices] == ["resolved"]


# --- the rule language ------------------------------------------------------------------------

PROGRAMME = "programme: demo\nworking_group: zhuanban\n"


def _rules(tmp_path: Path, extra: str, kind: str = "threshold") -> Path:
    directory = tmp_path / "demo"
    directory.mkdir()
    (directory / "programme.yaml").write_text(PROGRAMME, encoding="utf-8")
    bound = "    at_least: 2/3\n" if kind == "threshold" else ""
    (directory / "rules.yaml").write_text(textwrap.dedent(f"""\
        rules:
          - id: share_floor
            kind: {kind}
            title: 服务业投资占比低于2/3
            source: 服务业投资占全区固定资产投资比重不低于 2/3。
            {'indicator' if kind != 'deadline' else 'tasks'}: {'service_investment_share' if kind != 'deadline' else 'all'}
        """) + bound + extra, encoding="utf-8")
    return directory


def test_resolve_margin_is_read_from_a_threshold_rule(tmp_path: Path) -> None:
    rule_set = load_rule_set(_rules(tmp_path, "    resolve_margin: 1.5\n"))
    assert rule_set.rules[0].resolve_margin == 1.5


def test_a_negative_resolve_margin_is_an_error_at_its_line(tmp_path: Path) -> None:
    with pytest.raises(RuleSetInvalid) as invalid:
        load_rule_set(_rules(tmp_path, "    resolve_margin: -1\n"))
    [error] = invalid.value.errors
    assert error.line == 8 and "resolve_margin" in str(error) and "非负数" in str(error)


def test_resolve_margin_on_a_deadline_rule_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuleSetInvalid) as invalid:
        load_rule_set(_rules(tmp_path, "    resolve_margin: 1\n", kind="deadline"))
    assert any("resolve_margin" in str(e) and "不适用" in str(e) for e in invalid.value.errors)


# --- end to end: Lucheng's service-investment share, June–September 2023 ----------------------


def _digest_text(payload: bytes) -> str:
    message: Message = email.message_from_bytes(payload)
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            return str(part.get_payload(decode=True).decode("utf-8"))  # type: ignore[union-attr]
    return ""


def test_lucheng_share_is_held_yellow_at_67_4_and_closed_at_68_with_a_one_point_margin(sqlite_engine) -> None:
    report = import_paths(sqlite_engine, ["examples/lucheng-2023"], now=dt.datetime(2023, 1, 1, tzinfo=dt.UTC),
                          imported_by="test")
    assert report.ok
    rule_set = load_rule_set(Path("rules/lucheng"))
    share = rule_set.rule("service_investment_share")
    rule_set.rules = [dataclasses.replace(share, resolve_margin=1.0)]
    states = []
    for month in (8, 9, 10):  # figures of July 65.8 %, August 67.4 %, September 68.0 % against 2/3
        at = dt.datetime(2023, month, 15, 9, tzinfo=SHANGHAI)
        record_round(sqlite_engine, rule_set, at, key=f"test:{month}")
        with sqlite_engine.connect() as conn:
            alert = conn.execute(select(Alert.level, Alert.state).where(Alert.rule == share.id)).one()
            kinds = sorted(set(conn.scalars(select(Notice.kind).where(Notice.created_at == at))))
        states.append((tuple(alert), kinds))
    assert states == [(("red", "firing"), ["warning"]), (("yellow", "firing"), ["revised"]),
                      (("yellow", "resolved"), ["resolved"])]
    with sqlite_engine.connect() as conn:
        payloads = conn.scalars(select(DeliveryPayload.payload).join(Delivery).where(Delivery.recipient_unit == "fgj")
                                .order_by(Delivery.id)).all()
    revision = _digest_text(payloads[1])
    assert "由红灯调整为黄灯" in revision and "67.4%" in revision


def test_an_escalation_carries_how_many_notices_went_before_and_since_when() -> None:
    """First notice on 3 July, two 催办: the escalation says three notices since 3 July."""
    old = dataclasses.replace(firing("yellow"), repeats=2)
    decided = run([candidate("red", T0 + 3 * WEEK)], old, T0 + 3 * WEEK)
    [notice] = decided.notices
    assert notice.kind == "escalation" and notice.notified_before == 3 and notice.since == T0
    assert notice.previous_level == "yellow"


def test_a_first_notice_has_nothing_before_it() -> None:
    decided = plan([candidate("red", T0)], {}, now=T0, evaluated_rules={RULE}, repeat_of={RULE: WEEK})
    [notice] = decided.notices
    assert notice.notified_before == 0 and notice.since is None
