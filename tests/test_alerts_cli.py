"""`duban alerts`, `duban ack`, `duban silence`, `duban notices`: what an officer of the working group
types, on Lucheng's example after the rounds of 15 July and 15 August 2023."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest
import time_machine
from click.testing import CliRunner, Result
from sqlalchemy import select

from duban.app.rounds import record_round
from duban.cli import main
from duban.engine.loader import load_rule_set
from duban.notifiers.outbox import drain
from duban.notifiers.transports.file import FileTransport
from duban.store.db import create_all, make_engine
from duban.store.importer import import_paths
from duban.store.models import Alert, Notice, Silence
from duban.store.periods import SHANGHAI

NOW = dt.datetime(2023, 8, 20, 10, tzinfo=SHANGHAI)
SHARE = "lucheng.service_investment_share"


@pytest.fixture(scope="module")
def lucheng_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Lucheng after two rounds (15 July, 15 August), July's messages sent as .eml files."""
    directory = tmp_path_factory.mktemp("lucheng")
    path = directory / "duban.db"
    engine = make_engine(str(path))
    create_all(engine)
    report = import_paths(engine, ["examples/lucheng-2023"], now=dt.datetime(2023, 1, 1, tzinfo=dt.UTC), imported_by="t")
    assert report.ok
    rule_set = load_rule_set(Path("rules/lucheng"))
    record_round(engine, rule_set, dt.datetime(2023, 7, 15, 9, tzinfo=SHANGHAI), key="r1")
    asyncio.run(drain(engine, FileTransport(directory / "outbox", fsync=False),
                      now=lambda: dt.datetime(2023, 7, 15, 9, 5, tzinfo=SHANGHAI), worker="t"))
    record_round(engine, rule_set, dt.datetime(2023, 8, 15, 9, tzinfo=SHANGHAI), key="r2")
    engine.dispose()
    return path


@pytest.fixture
def db(lucheng_db: Path, tmp_path: Path) -> Iterator[Path]:
    copy = tmp_path / "duban.db"
    shutil.copy(lucheng_db, copy)
    with time_machine.travel(NOW, tick=False):
        yield copy


def duban(db: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--db", str(db), "--rules", "rules", *args])


def _alert_id(db: Path, rule: str, subject: str) -> int:
    engine = make_engine(str(db))
    with engine.connect() as conn:
        found = conn.scalar(select(Alert.id).where(Alert.rule == rule, Alert.subject == subject))
    engine.dispose()
    assert found is not None
    return int(found)


def _round(db: Path, when: dt.datetime, key: str) -> list[tuple[str, str, str]]:
    """Record one more round; return its notices as (rule, recipient unit, kind)."""
    engine = make_engine(str(db))
    record_round(engine, load_rule_set(Path("rules/lucheng")), when, key=key)
    with engine.connect() as conn:
        rows = conn.execute(select(Notice.rule, Notice.recipient_unit, Notice.kind).where(Notice.created_at == when))
        notices = [tuple(r) for r in rows]
    engine.dispose()
    return notices  # type: ignore[return-value]


# --- duban alerts -----------------------------------------------------------------------------


def test_alerts_lists_the_firing_alerts_with_level_first_and_last_seen_in_chinese(db: Path) -> None:
    result = duban(db, "alerts")
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if line.startswith("编号"))
    for column in ("规则", "对象", "期次", "灯色", "状态", "首次发现", "最近发现", "灯色变化", "确认至", "静默"):
        assert column in header
    share = next(line for line in result.output.splitlines() if "服务业投资占全区固定资产投资比重" in line)
    assert "红灯" in share and "2023-07-15 09:00" in share and "2023-08-15 09:00" in share
    assert "当前没有生效的静默。" in result.output


def test_alerts_for_one_unit_given_by_its_chinese_name(db: Path) -> None:
    result = duban(db, "alerts", "--unit", "区教育局", "--json")
    assert result.exit_code == 0, result.output
    alerts = [json.loads(line) for line in result.output.splitlines()]
    assert alerts and all("jyj" in a["units"] + a["notify_units"] for a in alerts)
    assert {a["subject"] for a in alerts} == {"training_person_times@jyj"}
    assert alerts[0]["level_history"][0]["level"] == "yellow"


def test_alerts_for_an_unknown_unit_is_a_chinese_error(db: Path) -> None:
    result = duban(db, "alerts", "--unit", "区不存在局")
    assert result.exit_code == 1
    assert "没有找到单位“区不存在局”" in result.output


def test_an_alert_closed_by_a_later_round_is_listed_as_resolved_and_no_longer_firing(db: Path) -> None:
    assert duban(db, "alerts", "--state", "resolved").output.startswith("没有已销号的告警。")
    _round(db, dt.datetime(2023, 10, 16, 9, tzinfo=SHANGHAI), "r3")  # September's share: 68.0 % ≥ 2/3
    resolved = duban(db, "alerts", "--state", "resolved").output
    share = next(line for line in resolved.splitlines() if "服务业投资占全区固定资产投资比重" in line)
    assert "已销号" in share and "2023/7/15 红灯 → 10/16 已销号" in share
    assert "服务业投资占全区固定资产投资比重" not in duban(db, "alerts").output


# --- duban ack --------------------------------------------------------------------------------


def test_an_acknowledged_alert_gets_no_reminder_until_the_expiry_while_others_are_reminded(db: Path) -> None:
    alert = _alert_id(db, SHARE, "service_investment_share")
    result = duban(db, "ack", str(alert), "--until", "2023-09-30", "--by", "王科长")
    assert result.exit_code == 0, result.output
    assert "2023-09-30 09:00 前不再催办" in result.output
    listed = json.loads(next(line for line in duban(db, "alerts", "--json", "--rule", "service_investment_share")
                             .output.splitlines() if line.startswith('{"id"')))
    assert listed["acked_by"] == "王科长" and listed["acked_until"].startswith("2023-09-30T01:00")
    notices = _round(db, dt.datetime(2023, 8, 25, 9, tzinfo=SHANGHAI), "r3")
    assert not [n for n in notices if n[0] == SHARE]
    assert [n for n in notices if n[0] == "lucheng.service_investment_growth" and n[2] == "warning"]  # 催办 of others


def test_ack_accepts_the_rule_subject_period_key(db: Path) -> None:
    result = duban(db, "ack", "service_investment_share|service_investment_share|2023", "--until", "2023-09-01")
    assert result.exit_code == 0, result.output
    assert "已确认告警" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["999", "--until", "2023-09-01"], "没有编号为 #999 的告警"),
    (["abc", "--until", "2023-09-01"], "无法识别"),
    (["1", "--until", "2023-08-01"], "已经过去"),
    (["1", "--until", "下周一"], "--until 时间格式不正确"),
])
def test_ack_mistakes_are_explained_in_chinese_with_a_non_zero_exit(db: Path, args: list[str], message: str) -> None:
    result = duban(db, "ack", *args)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


# --- duban silence ----------------------------------------------------------------------------


def test_a_silence_on_a_rule_for_a_unit_mutes_its_notices_to_that_unit_only(db: Path) -> None:
    result = duban(db, "silence", "--rule", "district_pace", "--unit", "区商务局", "--until", "2023-12-31",
                   "--comment", "展会延期，已书面说明")
    assert result.exit_code == 0, result.output
    assert "已设置静默 #1" in result.output
    notices = _round(db, dt.datetime(2023, 8, 30, 9, tzinfo=SHANGHAI), "r3")  # district_pace repeats every 14 days
    pace = [n for n in notices if n[0] == "lucheng.district_pace"]
    assert pace and not [n for n in pace if n[1] == "swj"]
    listed = duban(db, "silence", "--list").output
    assert "district_pace" in listed and "区商务局" in listed and "展会延期" in listed


def test_an_expired_silence_lets_notices_through_again(db: Path) -> None:
    assert duban(db, "silence", "--unit", "swj", "--until", "2023-12-31").exit_code == 0
    result = duban(db, "silence", "--expire", "1")
    assert result.exit_code == 0 and "已解除静默 #1" in result.output
    notices = _round(db, dt.datetime(2023, 8, 30, 9, tzinfo=SHANGHAI), "r3")
    assert [n for n in notices if n[1] == "swj"]
    assert "当前没有生效的静默。" in duban(db, "silence", "--list").output


@pytest.mark.parametrize(("args", "message"), [
    (["--until", "2023-12-31"], "至少指定 --rule、--subject、--unit 之一"),
    (["--rule", "district_pace"], "请用 --until"),
    (["--rule", "district_pase", "--until", "2023-12-31"], "规则集中没有规则“district_pase”"),
    (["--unit", "区不存在局", "--until", "2023-12-31"], "没有找到单位"),
    (["--unit", "swj", "--until", "2023-01-01"], "已经过去"),
    (["--expire", "42"], "没有编号为 #42 的静默"),
    (["--list", "--expire", "1"], "请选择一项操作"),
])
def test_silence_mistakes_are_explained_in_chinese_and_nothing_is_written(db: Path, args: list[str], message: str) -> None:
    result = duban(db, "silence", *args)
    assert result.exit_code == 1
    assert message in result.output
    engine = make_engine(str(db))
    with engine.connect() as conn:
        assert conn.scalar(select(Silence.id)) is None
    engine.dispose()


# --- duban notices (台账) ---------------------------------------------------------------------


def test_the_ledger_says_who_was_told_what_when_why_and_whether_it_arrived(db: Path) -> None:
    result = duban(db, "notices", "--unit", "fgj", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    share = [r for r in rows if r["rule"] == SHARE]
    assert [r["at"][:10] for r in share] == ["2023-07-15", "2023-08-15"]
    first = share[0]
    assert first["recipient_name"] == "区发改局" and first["kind"] == "warning" and first["level"] == "red"
    assert "62.7%" in first["figures"] and "低于2/3" in first["title"]
    assert first["delivery"] == "已发送" and first["addresses"] == ["邮件:fgj@lucheng.example.org"]
    assert share[1]["delivery"] == "待发送1"


def test_the_ledger_filters_by_rule_and_time(db: Path) -> None:
    rows = [json.loads(line) for line in duban(db, "ledger", "--rule", "service_investment_share",
                                                "--since", "2023-08-01", "--json").output.splitlines()]
    assert rows and {r["rule"] for r in rows} == {SHARE}
    assert all(r["at"] >= "2023-08-01" for r in rows)


def test_the_ledger_exports_to_excel_with_chinese_headers(db: Path, tmp_path: Path) -> None:
    target = tmp_path / "台账.xlsx"
    result = duban(db, "notices", "--xlsx", str(target))
    assert result.exit_code == 0, result.output
    sheet = openpyxl.load_workbook(target, read_only=True)["通知台账"]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:6] == ("编号", "通知时间", "收件单位", "类型", "灯色", "事项")
    listed = duban(db, "notices", "--json").output.splitlines()
    assert len(rows) - 1 == len(listed) > 0


def test_the_ledger_plain_table_lines_up_chinese_columns(db: Path) -> None:
    result = duban(db, "notices", "--unit", "区教育局")
    lines = result.output.splitlines()
    assert lines[0].startswith("通知台账")
    header, rule = lines[1], lines[2]
    assert header.startswith("编号") and set(rule.replace(" ", "")) == {"-"}
