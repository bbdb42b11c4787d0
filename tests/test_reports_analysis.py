"""The 季度通报 and the 年度评估 carry their own period's analysis, and a stale figure is never green.

Read as the working group reads them: the Q2 bulletin compares each indicator and each unit's place
with the Q1 bulletin (环比, 进位/退位), lists the tasks due in the quarter and how they ended, and
names the units to visit (督导服务名单); the 2023 assessment grades the member units; a figure from
December 2023 read in July 2025 says 数据未更新 instead of lighting green.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import Engine

from duban.engine.loader import load_rule_set
from duban.notifiers.reports import generate, prepare_report
from duban.notifiers.reports.build import due_period
from duban.notifiers.reports.produce import WrittenReport
from duban.store.db import create_all, make_engine
from duban.store.importer import import_paths

RULES = load_rule_set("rules/lucheng")
SHARE = "服务业投资占全区固定资产投资比重"


@pytest.fixture(scope="module")
def lucheng(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, Path]]:
    folder = tmp_path_factory.mktemp("lucheng-analysis")
    engine = make_engine(str(folder / "duban.db"))
    create_all(engine)
    imported = import_paths(engine, ["examples/lucheng-2023"], now=dt.datetime(2023, 1, 1, tzinfo=dt.UTC),
                            imported_by="test")
    assert imported.ok, imported.problem_lines()
    yield engine, folder
    engine.dispose()


@pytest.fixture(scope="module")
def q2(lucheng: tuple[Engine, Path]) -> WrittenReport:
    engine, folder = lucheng
    return generate(engine, RULES, "quarterly", "2023-Q2", folder / "reports")


@pytest.fixture(scope="module")
def annual(lucheng: tuple[Engine, Path]) -> WrittenReport:
    engine, folder = lucheng
    return generate(engine, RULES, "annual", "2023", folder / "reports")


def test_the_q2_bulletin_compares_each_indicator_with_the_q1_bulletin(
        q2: WrittenReport, lucheng: tuple[Engine, Path]) -> None:
    q1 = prepare_report(lucheng[0], RULES, "quarterly", "2023-Q1")
    report = q2.report
    assert report.compared_label == "2023年第一季度"
    assert len(report.changes) == len(report.indicators)
    share = next(c for c in report.changes if c.name == SHARE and not c.unit_name)
    before = next(r for r in q1.indicators if r.name == SHARE and not r.sub)
    now = next(r for r in report.indicators if r.name == SHARE and not r.sub)
    assert (share.value_before, share.value_now) == (before.value, now.value)
    assert share.change == pytest.approx(now.value - before.value)  # type: ignore[operator]
    assert share.trend.startswith(f"下降{abs(share.change):.1f}个百分点")  # type: ignore[arg-type]
    assert share.trend.endswith("（绿灯转红灯）"), "the light it moved from and to"
    paced = [c for c in report.changes if c.completion_before is not None and c.completion_now is not None]
    assert paced and all(c.change == pytest.approx(c.completion_now - c.completion_before)  # type: ignore[operator]
                         for c in paced)


def test_each_unit_s_place_is_compared_with_the_previous_quarter(
        q2: WrittenReport, lucheng: tuple[Engine, Path]) -> None:
    q1 = prepare_report(lucheng[0], RULES, "quarterly", "2023-Q1")
    before = {r.code: r.rank for r in q1.ranking}
    for row in q2.report.ranking:
        assert row.previous_rank == before.get(row.code)
        if row.previous_rank is None:
            assert row.movement == "新列入排名"
        elif row.previous_rank > row.rank:
            assert row.movement == f"进位{row.previous_rank - row.rank}名"
        elif row.previous_rank < row.rank:
            assert row.movement == f"退位{row.rank - row.previous_rank}名"
        else:
            assert row.movement == "名次不变"
    assert any(r.movement.startswith("进位") for r in q2.report.ranking)


def test_the_supervision_list_names_units_with_red_items_or_overdue_tasks_and_why(q2: WrittenReport) -> None:
    items = q2.report.supervision
    assert items, "Q2 has red lights: somebody is visited"
    assert all(item.red or item.overdue or "退位" in item.focus for item in items)
    fgj = next(item for item in items if item.name == "区发改局")
    assert fgj.red >= 1 and fgj.focus.startswith("红灯：") and SHARE in fgj.focus


def test_the_bulletin_reads_as_a_quarter_not_as_the_june_report(q2: WrittenReport, lucheng: tuple[Engine, Path]) -> None:
    html = q2.html.read_text(encoding="utf-8")
    assert "本季度分析" in html and "主要指标环比变化（与2023年第一季度相比）" in html
    assert "督导服务名单" in html and "本季度到期任务完成情况" in html
    june = generate(lucheng[0], RULES, "monthly", "2023-06", lucheng[1] / "monthly").html.read_text(encoding="utf-8")
    assert "本季度分析" not in june and "环比" not in june
    sheets = load_workbook(q2.xlsx, read_only=True).sheetnames
    assert sheets[-4:] == ["环比分析", "排名进退位", "本季到期任务", "督导服务名单"]


def test_tasks_due_in_the_quarter_are_those_whose_deadline_falls_in_it(q2: WrittenReport, annual: WrittenReport) -> None:
    for written, start, end in ((q2, dt.date(2023, 4, 1), dt.date(2023, 6, 30)),
                                (annual, dt.date(2023, 1, 1), dt.date(2023, 12, 31))):
        rows = written.report.period_tasks
        assert all(r.deadline is not None and start <= r.deadline <= end for r in rows)
        due = [t for t in written.report.tasks
               if t.deadline is not None and start <= t.deadline <= end and not t.ongoing]
        assert len(rows) == len(due) == written.report.period_task_summary.total
    assert annual.report.period_task_summary.total > 0
    assert not any(r.ongoing for r in annual.report.period_tasks), "常态化 duties fall due on no date"
    ended = {r.status for r in annual.report.period_tasks}
    assert ended <= {"done", "done_late", "overdue"}, "by January every task due in 2023 has ended one way or another"


def test_the_annual_assessment_grades_every_member_unit(annual: WrittenReport) -> None:
    rows = annual.report.assessment
    assert len(rows) >= 20
    assert {r.grade for r in rows} <= {"好", "较好", "一般", "较差"}
    assert [r.rank for r in rows] == list(range(1, len(rows) + 1))
    for row in rows:
        if row.grade == "好":
            assert row.red == 0 and row.tasks_overdue == 0 and row.remark.startswith("建议通报表扬")
        if row.red >= 2 or row.tasks_overdue > row.tasks_due / 2:
            assert row.grade == "较差"
        assert row.met <= row.items, "targets met are among the unit's own items"
    html = annual.html.read_text(encoding="utf-8")
    assert "年度综合评估" in html and "等次口径" in html
    assert "年度综合评估" in load_workbook(annual.xlsx, read_only=True).sheetnames


def test_june_figures_are_due_after_the_tenth_of_july() -> None:
    assert due_period("month", dt.date(2023, 7, 10)).code == "2023-05"
    assert due_period("month", dt.date(2023, 7, 11)).code == "2023-06"
    assert due_period("quarter", dt.date(2023, 7, 20)).code == "2023-Q2"
    assert due_period("year", dt.date(2024, 1, 22)).code == "2023"


def test_a_december_2023_share_read_in_july_2025_is_not_green(lucheng: tuple[Engine, Path]) -> None:
    report = prepare_report(lucheng[0], RULES, "monthly", "2025-06")
    share = next(r for r in report.indicators if r.name == SHARE and not r.sub)
    assert share.level == "stale"
    assert share.note.startswith("数据未更新：最新数据为2023年12月，应报送至2025年6月")
    assert not any(r.level == "green" and "数据未更新" in r.note for r in report.indicators)
    assert report.indicator_count.stale >= 1
    assert report.indicator_count.total == sum(1 for r in report.indicators if not r.sub)


def test_a_stale_figure_reads_as_data_not_updated_in_the_page_and_the_workbook(
        lucheng: tuple[Engine, Path]) -> None:
    written = generate(lucheng[0], RULES, "monthly", "2025-06", lucheng[1] / "stale")
    html = written.html.read_text(encoding="utf-8")
    assert "数据未更新" in html and "不亮灯" in html
    sheet = load_workbook(written.xlsx)["主要指标进度表"]
    header = [c.value for c in sheet[3]]
    light = header.index("亮灯")
    row = next(r for r in sheet.iter_rows(min_row=4) if r[1].value == SHARE)
    assert row[light].value == "数据未更新"
    assert row[light].fill.fill_type is None, "not filled green"


def test_an_importer_s_note_on_a_queried_figure_is_shown_in_the_report(tmp_path: Path) -> None:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from duban.store import models

    if not hasattr(models, "ObservationNote"):
        pytest.skip("the import plausibility checks (observation_notes) are not in this build")
    engine = make_engine(str(tmp_path / "duban.db"))
    create_all(engine)
    assert import_paths(engine, ["examples/lucheng-2023"], now=dt.datetime(2023, 1, 1, tzinfo=dt.UTC),
                        imported_by="test").ok
    with Session(engine) as session, session.begin():
        observation = session.scalars(select(models.Observation).where(
            models.Observation.indicator_code == "service_investment_share",
            models.Observation.period == "2023-06")).one()
        batch = session.scalars(select(models.ImportBatch)).first()
        assert batch is not None
        session.add(models.ObservationNote(
            observation_id=observation.id, import_batch_id=batch.id, audit="jump", message="较上月变动超过10倍",
            note="6月起按新口径统计，经区统计局核实无误", noted_at=dt.datetime(2023, 7, 5, tzinfo=dt.UTC)))
    written = generate(engine, RULES, "quarterly", "2023-Q2", tmp_path / "reports")
    engine.dispose()
    [note] = written.report.import_notes
    assert (note.indicator, note.period_label) == (SHARE, "2023年6月")
    html = written.html.read_text(encoding="utf-8")
    assert "数据审核说明" in html and "6月起按新口径统计，经区统计局核实无误" in html
    cover = [str(c.value) for row in load_workbook(written.xlsx)["说明"].iter_rows() for c in row if c.value]
    assert "审核说明" in cover and any("6月起按新口径统计" in value for value in cover)


def _assessment(kind: str, period: str, label: str, details: dict[str, object], level: str | None,
                days_left: int | None = None) -> object:
    from duban.engine.evaluate import Assessment

    return Assessment(rule="demo.r", rule_kind=kind, subject_type="indicator", subject="brands", subject_name="品牌",
                      units=("fgj",), unit_name="", period=period, period_label=label, measure="个", value=1.0,
                      threshold=2.0, expected=None, deadline=None, days_left=days_left, level=level, decisions=(),
                      details=details)


def test_a_derived_target_and_a_milestone_read_as_what_they_are() -> None:
    from duban.notifiers.reports.build import _indicator_rows, _UnitNames
    from duban.store.snapshot import IndicatorInfo, Snapshot

    snapshot = Snapshot(at=dt.datetime(2023, 7, 17, 1, 0, tzinfo=dt.UTC), programme=None,
                        indicators={"brands": IndicatorInfo("brands", "品牌", "个", "cumulative", "up", ("fgj",))})
    names = _UnitNames(snapshot, "zhuanban")
    derived = _assessment("pace", "2023", "2023年1—6月",
                          {"completion": 40.0, "time_progress": 50.0, "derived": True}, "yellow")
    [row], _ = _indicator_rows([derived], snapshot, names)  # type: ignore[list-item]
    assert row.basis == "按规划期序时进度测算" and row.gap == pytest.approx(-10.0)
    milestone = _assessment("milestone", "final", "2025年底前", {"completion": 50.0, "shape": "milestone"}, None,
                            days_left=898)
    [row], _ = _indicator_rows([milestone], snapshot, names)  # type: ignore[list-item]
    assert row.basis == "节点目标（2025年底前）" and row.value_label == "累计至今"
    assert row.time_progress is None and row.gap is None, "a milestone is no monthly pace"
    assert row.note.startswith("距节点还有898天")
