"""Tasks as the document lists them: a result by a date (限时) or an ongoing duty (常态化)."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

from sqlalchemy import select

from duban.store.db import transaction
from duban.store.importer import import_paths
from duban.store.models import Task

NOW = dt.datetime(2023, 7, 10, 1, 0, tzinfo=dt.UTC)
UNITS = [["代码", "名称", "邮箱", "类型"], ["swj", "区商务局", "swj@lucheng.example.org", "部门"],
         ["zjj", "区住建局", "zjj@lucheng.example.org", "部门"]]
HEADER = ["代码", "任务", "具体内容举措", "主要目标及时间节点", "时间节点", "责任单位", "任务类型"]


def write(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


def test_the_task_list_says_which_tasks_are_ongoing_duties_in_chinese(engine, tmp_path):
    write(tmp_path / "units.csv", UNITS)
    write(tmp_path / "tasks.csv", [
        [h if h != "主要目标及时间节点" else "主要目标" for h in HEADER],
        ["L06-3", "现代商贸业", "继续坚持“房住不炒”定位", "2023全年", "2023全年", "zjj", "常态化"],
        ["L06-5", "现代商贸业", "实施推动国际贸易高质量发展政策。", "2023年，确保出口占全国份额2.331%", "2023年", "swj", "限时"],
        ["L06-6", "现代商贸业", "开展新型消费城市试点", "", "2023全年", "swj", ""],
    ])
    report = import_paths(engine, [tmp_path], now=NOW, imported_by="统计员")
    assert report.ok, report.problem_lines()
    with transaction(engine) as session:
        kinds = {code: kind for code, kind in session.execute(select(Task.code, Task.kind))}
    assert kinds == {"L06-3": "ongoing", "L06-5": "deadline", "L06-6": "deadline"}


def test_an_unknown_task_kind_is_refused_with_the_accepted_words(engine, tmp_path):
    write(tmp_path / "units.csv", UNITS)
    bad = write(tmp_path / "tasks.csv", [
        ["代码", "任务", "时间节点", "责任单位", "任务类型"],
        ["L06-3", "现代商贸业", "2023全年", "zjj", "看情况"],
    ])
    report = import_paths(engine, [tmp_path], now=NOW, imported_by="统计员")
    assert not report.ok
    problem = next(str(p) for p in report.problems if str(bad) in str(p))
    assert ":2:任务类型: " in problem and "看情况" in problem and "ongoing" in problem


def test_tasks_stored_before_revision_0003_keep_their_deadlines(tmp_path):
    from sqlalchemy import text

    from duban.store.db import make_engine
    from duban.store.migrate import current, upgrade

    engine = make_engine(str(tmp_path / "old.db"))
    upgrade(engine, "0002")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO tasks (code, title, measures, goal, deadline, deadline_text, status) "
                          "VALUES ('L01', '高规格推进', '', '', '2023-12-31', '2023全年', 'open')"))
    upgrade(engine, "0003")
    assert current(engine) == "0003"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT kind FROM tasks WHERE code = 'L01'")).scalar() == "deadline"
    engine.dispose()


def test_the_task_lists_liduo_column_says_outright_what_the_goal_only_suggests(engine, tmp_path):
    # 力度 filled: it wins over the reading of the goal; empty: 力争/争取 in the goal makes it a stretch goal.
    from duban.store.snapshot import load_snapshot

    write(tmp_path / "units.csv", UNITS)
    write(tmp_path / "tasks.csv", [
        ["代码", "任务", "具体内容举措", "主要目标", "时间节点", "责任单位", "力度"],
        ["L06-5", "现代商贸业", "实施推动国际贸易高质量发展政策。", "2023年，出口占全国份额2.331%", "2023年", "swj", "力争"],
        ["L06-6", "现代商贸业", "开展新型消费城市试点", "力争打造1个新型消费新场景", "2023全年", "swj", "确保"],
        ["L06-7", "现代商贸业", "加快海外仓建设", "力争新增海外仓2个", "2023全年", "swj", ""],
        ["L06-8", "现代商贸业", "推进夜间经济", "打造夜间经济街区1个", "2023全年", "swj", ""],
    ])
    report = import_paths(engine, [tmp_path], now=NOW, imported_by="统计员")
    assert report.ok, report.problem_lines()
    tasks = load_snapshot(engine, NOW).tasks
    assert {code: task.strength for code, task in tasks.items()} == {
        "L06-5": "soft", "L06-6": "hard", "L06-7": "soft", "L06-8": "hard"}
