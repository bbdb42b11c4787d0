"""A running total is named by the months it covers, in the notice as in the report.

The 月调度 of 17 July 2023 reads the figures filed by 10 July: 人力资源服务业营业收入 runs from
January to June, so its notice says "（2023年1—6月）", never "（累计）" or "（1—N月）"."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import email.policy

from sqlalchemy import select

from duban.app.simulate import replay
from duban.engine.evaluate import evaluate
from duban.engine.loader import load_rule_set
from duban.store.importer import import_paths
from duban.store.models import Delivery, DeliveryPayload
from duban.store.periods import SHANGHAI
from duban.store.snapshot import load_snapshot


def _lucheng(sqlite_engine):
    report = import_paths(sqlite_engine, ["examples/lucheng-2023"], now=dt.datetime(2023, 1, 1, tzinfo=dt.UTC),
                          imported_by="test")
    assert report.ok, report.problem_lines()
    rule_set = load_rule_set("rules/lucheng")
    # The document is dated 24 August 2023; this July round is replayed with an explicit start.
    rule_set.settings = dataclasses.replace(rule_set.settings, start=dt.date(2023, 1, 1))
    return rule_set


def _texts(sqlite_engine, unit: str) -> list[str]:
    with sqlite_engine.connect() as conn:
        payloads = conn.scalars(select(DeliveryPayload.payload).join(Delivery, Delivery.id == DeliveryPayload.delivery_id)
                                .where(Delivery.recipient_unit == unit)).all()
    texts = []
    for payload in payloads:
        message = email.message_from_bytes(payload, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        assert body is not None
        texts.append(f"{message['Subject']}\n{body.get_content()}")
    return texts


def test_a_1_to_6_month_running_total_is_named_1_to_6_in_the_monthly_dispatch_notice(sqlite_engine):
    rule_set = _lucheng(sqlite_engine)
    replay(sqlite_engine, rule_set, dt.datetime(2023, 7, 17, tzinfo=SHANGHAI), dt.datetime(2023, 7, 18, tzinfo=SHANGHAI))
    texts = [t for t in _texts(sqlite_engine, "rsj") if "月调度" in t.splitlines()[0]]
    assert len(texts) == 1
    text = texts[0]
    assert "全区“人力资源服务业营业收入（2023年1—6月）”完成进度滞后于序时进度" in text
    assert "监测对象：人力资源服务业营业收入（2023年1—6月）" in text
    assert "（累计）" not in text and "1—N月" not in text


def test_the_evaluation_records_the_month_a_pace_figure_runs_to(sqlite_engine):
    """The candidate carries the period of its figure; the evaluation reads no clock to find it."""
    rule_set = _lucheng(sqlite_engine)
    at = dt.datetime(2023, 9, 15, 9, tzinfo=SHANGHAI)
    result = evaluate(rule_set, load_snapshot(sqlite_engine, at))
    paces = {(c.rule, c.subject): c for c in result.candidates if c.rule == "lucheng.district_pace"}
    deposit = paces[("lucheng.district_pace", "deposit_loan_increase")]
    assert deposit.details["value_period"] == "2023-08" and deposit.details["months_ended"] == 8
