"""Failures stay local, rounds are serialized (issue 15, items 1 and 2).

One unusable figure (a 400-digit value stored as -inf, two 1e308 rows whose sum overflows) leaves out
that one subject: the round sends everything else and the admin is told once, in Chinese, naming the
rule, the subject and file:line. A round that keeps failing is recorded as failed after
MAX_ROUND_ATTEMPTS and the admin told, instead of `run --once` retrying it under cron forever. Two
rounds at once never both decide on the same alert (PostgreSQL: an advisory lock per programme), and
a manual round earlier than the latest recorded one is refused unless `--force`.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, update

from duban.app import service as service_module
from duban.app.service import MAX_ROUND_ATTEMPTS, Service
from duban.store.db import transaction
from duban.store.importer import import_paths
from duban.store.models import Delivery, Notice, Observation, ProjectInvestment, Round, Setting

from .support import (
    ADMIN,
    LUCHENG_EXAMPLE,
    RULES,
    FaultyHandler,
    assert_no_traceback,
    database_url,
    duban,
    duban_env,
    smtp_server,
    spawn_duban,
)


def _imported(engine: Engine) -> Engine:
    report = import_paths(engine, [LUCHENG_EXAMPLE], now=dt.datetime(2023, 7, 1, tzinfo=dt.UTC),
                          imported_by="reliability")
    assert report.ok
    return engine


def _mails(folder: Path) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for p in sorted(folder.rglob("*.eml"))]


def _body(message: email.message.EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def test_local_a_non_finite_figure_skips_one_subject_and_the_round_sends_the_rest(
    sqlite_engine: Engine, tmp_path: Path, ledger
) -> None:
    # A 400-digit value in observations.csv was stored as -inf; every round then ended in FactTypeError
    # and `run --once` retried the monthly dispatch forever without sending it.
    engine = _imported(sqlite_engine)
    with transaction(engine) as session:
        session.execute(update(Observation).where(Observation.indicator_code == "service_investment_share")
                        .values(value=float("-inf")))
        session.execute(update(ProjectInvestment).where(ProjectInvestment.project_code == "LC2023-ZC1",
                                                        ProjectInvestment.period.in_(["2023-01", "2023-02"]))
                        .values(value=1e308))  # two 1e308 rows: the yearly sum overflows to inf
    outbox = tmp_path / "outbox"
    env = duban_env(str(engine.url.database), DUBAN_TRANSPORT="file", DUBAN_OUTBOX_DIR=str(outbox),
                    DUBAN_RULES=str(RULES))
    first = duban("run", "--once", "--at", "2023-07-15T10:00", env=env)
    assert_no_traceback(first.stdout, first.stderr)
    assert first.returncode == 0, first.stderr
    again = duban("run", "--once", "--at", "2023-07-15T10:05", env=env)
    assert again.returncode == 0 and "没有到期的轮次" in again.stdout, again.stdout + again.stderr

    with transaction(engine) as session:
        rounds = list(session.scalars(select(Round)))
        notices = session.scalar(select(func.count()).select_from(Notice))
    assert rounds and all(not r.summary.get("failed") for r in rounds)
    assert notices and notices > 0
    mails = _mails(outbox)
    admin = [m for m in mails if ADMIN in str(m["To"])]
    assert len(admin) == 1, [str(m["Subject"]) for m in admin]  # told once, not once per round
    body = _body(admin[0])
    assert "rules/lucheng/investment.yaml:" in body and "service_investment_share" in body, body
    assert "LC2023-ZC1" in body and "数据不是有限数值" in body, body
    others = [m for m in mails if ADMIN not in str(m["To"])]
    assert others, "the rest of the round was not sent"
    ledger("local", inputs=2, faults=2, rounds=len(rounds), note=f"non-finite figures: {len(others)} messages sent, "
                                             f"the 2 unusable subjects reported to the admin once")


def test_local_a_round_failing_again_and_again_is_given_up_after_n_attempts(
    sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch, ledger
) -> None:
    engine = _imported(sqlite_engine)
    sent: list[str] = []
    service = Service(engine, RULES / "lucheng", send=lambda _e, _r: sent.append("drain") or "")
    service.start()

    def broken(*_args: object, **_kwargs: object) -> None:
        raise ZeroDivisionError("a value nothing foresaw")

    monkeypatch.setattr(service_module, "record_round", broken)
    now = dt.datetime(2023, 7, 15, 10, 0, tzinfo=dt.UTC)
    due = len(service.due(now))
    assert due > 0
    for attempt in range(1, MAX_ROUND_ATTEMPTS + 1):
        service.retry_due = False
        service.tick(now + dt.timedelta(minutes=attempt))
        assert service.retry_due == (attempt < MAX_ROUND_ATTEMPTS), attempt
    assert service.due(now + dt.timedelta(hours=1)) == []  # no longer retried
    with transaction(engine) as session:
        failed = [r for r in session.scalars(select(Round)) if r.summary.get("failed")]
        told = list(session.scalars(select(Delivery).where(Delivery.idempotency_key.like("admin:%round-failed%"))))
        counters = list(session.scalars(select(Setting).where(Setting.key.like("round_failures:%"))))
    assert len(failed) == due and all(r.summary["attempts"] == MAX_ROUND_ATTEMPTS for r in failed)
    assert len(told) == due and all(c.value == str(MAX_ROUND_ATTEMPTS) for c in counters)
    ledger("local", inputs=1, faults=MAX_ROUND_ATTEMPTS * due, rounds=0,
           note=f"a round failing every time: given up after {MAX_ROUND_ATTEMPTS} attempts, admin told")


def test_serial_a_manual_round_earlier_than_the_latest_is_refused_unless_forced(
    sqlite_engine: Engine, tmp_path: Path, ledger
) -> None:
    # `evaluate --send` at 10-16 then at 07-17 re-sent 9 warnings and 3 "升级督办" in the wrong order.
    engine = _imported(sqlite_engine)
    env = duban_env(str(engine.url.database), DUBAN_TRANSPORT="file", DUBAN_OUTBOX_DIR=str(tmp_path / "outbox"),
                    DUBAN_RULES=str(RULES))
    later = duban("evaluate", "--at", "2023-10-16T10:00", "--send", env=env)
    assert later.returncode == 0, later.stderr
    with transaction(engine) as session:
        before = session.scalar(select(func.count()).select_from(Delivery))
    earlier = duban("evaluate", "--at", "2023-07-17T10:00", "--send", env=env)
    assert_no_traceback(earlier.stdout, earlier.stderr)
    assert earlier.returncode == 1 and "早于已记录的最近一轮" in earlier.stderr and "--force" in earlier.stderr
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == before
        assert session.scalar(select(func.count()).select_from(Round)) == 1
    forced = duban("evaluate", "--at", "2023-07-17T10:00", "--send", "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    ledger("serial", inputs=3, faults=1, duplicated=0, rounds=2)


@pytest.mark.postgres
def test_serial_two_rounds_at_once_on_postgresql_decide_each_alert_once(
    pg_engine: Engine, tmp_path: Path, ledger
) -> None:
    # On main two concurrent `evaluate --send` recorded the same 10 催办 in each round: 6 + 6 mails.
    engine = _imported(pg_engine)
    handler = FaultyHandler()
    with smtp_server(handler) as port:
        env = duban_env(database_url(engine), DUBAN_TRANSPORT="smtp", DUBAN_SMTP_HOST="127.0.0.1",
                        DUBAN_SMTP_PORT=str(port), DUBAN_SMTP_TIMEOUT="10", DUBAN_RULES=str(RULES))
        first = duban("evaluate", "--at", "2023-07-17T10:00", "--send", env=env)
        assert first.returncode == 0, first.stderr
        attempts = 2
        for attempt in range(attempts):
            ats = [f"2023-07-{24 + attempt}T10:00", f"2023-07-{24 + attempt}T10:00:01"]
            runners = [spawn_duban("evaluate", "--at", at, "--send", env=env) for at in ats]
            outputs = [r.communicate(timeout=180) for r in runners]
            for runner, (out, err) in zip(runners, outputs, strict=True):
                assert_no_traceback(out, err)
                assert runner.returncode in (0, 1), err
    with transaction(engine) as session:
        # A notice decided twice: the same alert, kind and recipient in both rounds of one day.
        repeats = Counter((n.rule, n.subject, n.period, n.kind, n.recipient_unit, n.created_at.date())
                          for n in session.scalars(select(Notice)) if n.created_at.day >= 24)
        deliveries = session.scalar(select(func.count()).select_from(Delivery).where(Delivery.channel == "email"))
        recorded = session.scalar(select(func.count()).select_from(Round))
    duplicated = sum(count - 1 for count in repeats.values() if count > 1)
    assert repeats, "the concurrent rounds decided nothing: the test proves nothing"
    ids, copies = handler.ids, handler.copies
    # Each outbox row (one message to one mailbox) arrived once: no mailbox got a message twice.
    assert sum(copies.values()) == deliveries and all(count == 1 for count in copies.values()), copies
    assert duplicated == 0, [key for key, count in repeats.items() if count > 1]
    ledger("serial", inputs=2 * attempts + 1, faults=attempts, duplicated=duplicated, rounds=recorded,
           note=f"PostgreSQL, two `evaluate --send` at once ×{attempts}: {len(ids)} Message-IDs, "
                f"{sum(copies.values())} copies (one per mailbox), none twice")


def test_local_a_bound_whose_divisor_of_indicators_is_zero_is_reported_not_silently_skipped(
    sqlite_engine: Engine, tmp_path: Path, ledger
) -> None:
    # On main `at_least: 1/0` was skipped every round as "缺少比较指标数据": the rule silently never fired.
    # A constant zero divisor is now refused by `duban check`; one made of figures is reported when met.
    import shutil

    from duban.engine.evaluate import Evaluator
    from duban.engine.loader import load_rule_set
    from duban.store.snapshot import load_snapshot

    engine = _imported(sqlite_engine)
    rules = tmp_path / "lucheng"
    shutil.copytree(RULES / "lucheng", rules, ignore=shutil.ignore_patterns("tests"))
    shutil.copy(RULES / "calendar-overrides.yaml", tmp_path / "calendar-overrides.yaml")
    text = (rules / "investment.yaml").read_text(encoding="utf-8")
    (rules / "investment.yaml").write_text(text.replace(
        "at_least: 2/3", "at_least: 'service_investment_growth / (service_investment_growth - service_investment_growth)'",
        1), encoding="utf-8")
    rule_set = load_rule_set(rules, display_root=tmp_path)
    evaluator = Evaluator(rule_set)
    try:
        result = evaluator.evaluate(load_snapshot(engine, dt.datetime(2023, 7, 15, 2, tzinfo=dt.UTC)))
    finally:
        evaluator.close()
    [failure] = [f for f in result.failures if "service_investment_share" in f]
    assert failure.startswith("lucheng/investment.yaml:") and "除数为零" in failure, failure
    assert not [w for w in result.warnings if "service_investment_share" in w and "缺少" in w]
    assert result.candidates  # the other rules still decide
    ledger("local", inputs=1, faults=1, rounds=1)
