"""The board and the office read the task list and the figures as the document means them
(温鹿政办〔2023〕55号, Lucheng's example at the end of the demo's replay, 31 January 2024)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select
from webkit import EXAMPLE, rule_set

from duban.app import board, portal
from duban.engine.calendar import WorkingCalendar
from duban.store.db import create_all, make_engine, transaction
from duban.store.importer import import_paths
from duban.store.models import Task, Unit
from duban.store.periods import SHANGHAI
from duban.store.web_models import BoardLight

AT = dt.datetime(2024, 1, 31, 9, 0, tzinfo=SHANGHAI)


@pytest.fixture(scope="module")
def lucheng(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    engine = make_engine(str(Path(tmp_path_factory.mktemp("board-tasks")) / "duban.db"))
    create_all(engine)
    assert import_paths(engine, [EXAMPLE], now=AT, imported_by="test").ok
    board.refresh_all(engine, rule_set(), AT)
    yield engine
    engine.dispose()


def test_a_finished_task_counts_as_done_green_on_the_board(lucheng) -> None:  # type: ignore[no-untyped-def]
    with transaction(lucheng) as session:
        done = set(session.scalars(select(Task.code).where(Task.status == "done")))
        tasks = board.level_totals(session).get("task", {})
        green = set(session.scalars(select(BoardLight.subject).where(BoardLight.subject_type == "task",
                                                                     BoardLight.level == "green")))
    assert green == done and tasks.get("green") == len(done) == 24
    # “印发实施方案、组建专班”: achieved by the document itself, issued 24 August 2023.
    assert "L2023-01-1" in green


def test_a_stretch_task_is_yellow_at_worst(lucheng) -> None:  # type: ignore[no-untyped-def]
    # “力争2023年本外币存贷款市区合计新增超2000亿元”, “2023年，力争一期工程……开工”: overdue, yellow.
    with transaction(lucheng) as session:
        levels = dict(session.execute(select(BoardLight.subject, BoardLight.level)
                                      .where(BoardLight.subject_type == "task",
                                             BoardLight.subject.in_(["L2023-08-1", "L2023-07-2"]))).all())
    assert levels == {"L2023-08-1": "yellow", "L2023-07-2": "yellow"}


def test_the_working_group_is_never_lit_nor_ranked(lucheng) -> None:  # type: ignore[no-untyped-def]
    with transaction(lucheng) as session:
        group = set(session.scalars(select(Unit.code).where(Unit.kind == "working_group")))
        led = session.scalars(select(BoardLight.subject).where(BoardLight.lead_unit.in_(group),
                                                               BoardLight.level.in_(["red", "yellow"]))).all()
        _, ranked = board.ranking(session, AT)
    assert group and not led
    assert ranked and not {r.unit_code for r in ranked} & group


def test_the_office_lists_every_figure_still_owed_not_only_last_months(lucheng) -> None:  # type: ignore[no-untyped-def]
    from duban.store.models import Observation

    with transaction(lucheng) as session:
        # 区发改局 has not filed its lead figure for October and November (due after the document).
        session.execute(Observation.__table__.delete().where(Observation.indicator_code == "service_investment_growth",
                                                             Observation.unit_code == "",
                                                             Observation.period.in_(["2023-10", "2023-11"])))
    with transaction(lucheng) as session:
        rows = {code: n for code, _, n in portal.not_reported(session, rule_set(), WorkingCalendar.load(None), AT)}
    assert rows.get("fgj", 0) >= 2
