"""`import_paths`: lists go in whole or not at all, re-imports change nothing, corrections leave history.

Runs on a real SQLite file and on PostgreSQL (the `engine` fixture).
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from duban.store.db import transaction
from duban.store.importer import MAX_LISTED_PROBLEMS, ImportReport, import_paths
from duban.store.models import (
    Base,
    ImportBatch,
    Indicator,
    Observation,
    ObservationRevision,
    Programme,
    Project,
    ProjectInvestment,
    Target,
    Task,
    Unit,
)

JULY = dt.datetime(2023, 7, 10, 1, 0, tzinfo=dt.UTC)
AUGUST = dt.datetime(2023, 8, 10, 1, 0, tzinfo=dt.UTC)
DATA_TABLES = [table for name, table in Base.metadata.tables.items()
               if name in {"programmes", "units", "indicators", "indicator_units", "targets", "observations",
                           "observation_revisions", "projects", "project_units", "project_plans",
                           "project_investment", "tasks", "task_units", "import_batches"}]

PROGRAMME = [["code", "name", "start", "end", "document"],
             ["lucheng", "鹿城区服务业高质量发展“十百千”工程", "2023-01-01", "2027-12-31", "温鹿政办〔2023〕55号"]]
UNITS = [["code", "name", "email", "kind"],
         ["fgj", "区发改局", "fgj@lucheng.gov.cn", "department"],
         ["sw", "区商务局", "sw@lucheng.gov.cn; sw2@lucheng.gov.cn", "department"],
         ["wjd", "五马街道", "wm@lucheng.gov.cn", "street"],
         ["zb", "工作专班", "", "working_group"]]
INDICATORS = [["code", "name", "measure", "kind", "direction", "units"],
              ["fw_share", "服务业从业人员占比", "%", "level", "at_least", "fgj;sw"],
              ["fw_invest", "服务业投资", "亿元", "cumulative", "at_least", "fgj"]]
OBSERVATIONS = [["indicator", "period", "value", "unit"],
                ["fw_share", "2023-06", "66.1", ""],
                ["fw_invest", "2023-06", "12.5", "wjd"]]
PROJECTS = [["code", "name", "category", "level", "total_investment", "units"],
            ["p1", "温州中央绿轴", "生活美好型", "省级", "35.2", "fgj;wjd"]]
PROJECT_INVESTMENT = [["project", "period", "value"], ["p1", "2023-06", "1.2"]]
TASKS = [["code", "title", "measures", "goal", "deadline", "units", "status", "done_on"],
         ["t01", "培育领军企业", "开展首批服务业领军企业培育工作", "", "2023年12月底前，培育1家领军企业。", "fgj", "未完成", ""],
         ["t02", "青蓝接力", "", "", "五年内", "zb;fgj", "已完成", "2023-09-01"]]


def write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8") -> Path:
    with path.open("w", newline="", encoding=encoding) as handle:
        csv.writer(handle).writerows(rows)
    return path


def basics(folder: Path) -> Path:
    """A folder with the lists every figure refers to."""
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(folder / "programme.csv", PROGRAMME)
    write_csv(folder / "units.csv", UNITS)
    write_csv(folder / "indicators.csv", INDICATORS)
    return folder


def run(engine: Engine, *paths: Path, now: dt.datetime = JULY, by: str = "统计员") -> ImportReport:
    return import_paths(engine, list(paths), now=now, imported_by=by)


def row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {table.name: conn.scalar(select(func.count()).select_from(table)) or 0 for table in DATA_TABLES}


@pytest.fixture
def loaded(engine: Engine, tmp_path: Path) -> Engine:
    report = run(engine, basics(tmp_path / "basics"))
    assert report.ok, report.problem_lines()
    return engine


def assert_rejected(engine: Engine, report: ImportReport, before: dict[str, int], *expected: str) -> None:
    """Nothing written, and each expected `file:row:column: message` fragment is among the problems."""
    assert not report.ok
    assert row_counts(engine) == before
    lines = [str(problem) for problem in report.problems]
    for fragment in expected:
        assert any(fragment in line for line in lines), f"{fragment!r} not in {lines}"


# --- a clean import ---------------------------------------------------------------------


def test_a_folder_is_imported_in_dependency_order_whatever_the_file_names(engine, tmp_path):
    folder = basics(tmp_path / "lists")
    # Alphabetically "a_observations" would come before units and indicators.
    write_csv(folder / "observations-2023-06.csv", OBSERVATIONS)
    write_csv(folder / "projects.csv", PROJECTS)
    write_csv(folder / "project_investment-2023-06.csv", PROJECT_INVESTMENT)
    write_csv(folder / "tasks.csv", TASKS)

    report = run(engine, folder)

    assert report.ok, report.problem_lines()
    assert report.counts["observations"].new == 2
    with transaction(engine) as s:
        assert s.get(Programme, "lucheng").end == dt.date(2027, 12, 31)
        assert s.get(Unit, "sw").emails == ["sw@lucheng.gov.cn", "sw2@lucheng.gov.cn"]
        assert s.get(Indicator, "fw_share").unit_codes == ["fgj", "sw"]
        assert s.get(Project, "p1").unit_codes == ["fgj", "wjd"]
        assert s.get(ProjectInvestment, ("p1", "2023-06")).value == 1.2
        led = s.get(Task, "t01")
        assert (led.deadline, led.deadline_text) == (dt.date(2023, 12, 31), "2023年12月底前，培育1家领军企业。")
        assert s.get(Task, "t02").deadline == dt.date(2027, 12, 31)  # 五年内 = the programme's last day
        assert s.get(Task, "t02").status == "done"
        batch = s.scalars(select(ImportBatch)).one()
        assert (batch.imported_by, batch.inserted, batch.started_at) == ("统计员", report_total(report), JULY)


def report_total(report: ImportReport) -> int:
    return sum(counts.new for counts in report.counts.values())


def test_reimporting_the_same_files_changes_nothing(engine, tmp_path):
    folder = basics(tmp_path / "lists")
    write_csv(folder / "observations.csv", OBSERVATIONS)
    write_csv(folder / "projects.csv", PROJECTS)
    write_csv(folder / "project_investment.csv", PROJECT_INVESTMENT)
    write_csv(folder / "tasks.csv", TASKS)
    assert run(engine, folder, now=JULY).ok
    with engine.connect() as conn:
        stamps_before = conn.execute(select(Observation.id, Observation.imported_at)).all()
    before = row_counts(engine)

    again = run(engine, folder, now=AUGUST)

    assert again.ok
    assert all(counts.new == counts.changed == 0 for counts in again.counts.values())
    after = row_counts(engine)
    assert after.pop("import_batches") == before.pop("import_batches") + 1  # the audit trail records the attempt
    assert after == before
    with engine.connect() as conn:
        assert conn.execute(select(Observation.id, Observation.imported_at)).all() == stamps_before


def test_a_corrected_figure_is_updated_and_its_old_value_kept_as_a_revision(loaded, tmp_path):
    first = write_csv(tmp_path / "observations-june.csv", OBSERVATIONS)
    assert run(loaded, first, now=JULY).ok
    corrected = write_csv(tmp_path / "observations-june-corrected.csv",
                          [OBSERVATIONS[0], ["fw_share", "2023-06", "67.3", ""], OBSERVATIONS[2]])

    report = run(loaded, corrected, now=AUGUST, by="张科长")

    assert (report.counts["observations"].changed, report.counts["observations"].unchanged) == (1, 1)
    with transaction(loaded) as s:
        figure = s.scalars(select(Observation).where(Observation.indicator_code == "fw_share")).one()
        assert (figure.value, figure.imported_at, figure.source_file) == (67.3, AUGUST, str(corrected))
        revision = s.scalars(select(ObservationRevision)).one()
        assert (revision.observation_id, revision.old_value, revision.new_value) == (figure.id, 66.1, 67.3)
        assert (revision.changed_by, revision.changed_at, revision.source_file) == ("张科长", AUGUST, str(corrected))


def test_a_later_units_list_replaces_a_units_name_and_addresses(loaded, tmp_path):
    renamed = write_csv(tmp_path / "units-2.csv", [UNITS[0], ["sw", "区商务局（新）", "new@lucheng.gov.cn", "department"]])

    report = run(loaded, renamed)

    assert (report.counts["units"].changed, report.counts["units"].new) == (1, 0)
    with transaction(loaded) as s:
        unit = s.get(Unit, "sw")
        assert (unit.name, unit.emails) == ("区商务局（新）", ["new@lucheng.gov.cn"])


def test_changing_an_indicators_responsible_units_replaces_them_in_order(loaded, tmp_path):
    changed = write_csv(tmp_path / "indicators.csv",
                        [INDICATORS[0], ["fw_share", "服务业从业人员占比", "%", "level", "at_least", "sw;wjd;fgj"]])

    assert run(loaded, changed).counts["indicators"].changed == 1

    with transaction(loaded) as s:
        assert s.get(Indicator, "fw_share").unit_codes == ["sw", "wjd", "fgj"]


def test_chinese_headers_and_values_are_accepted_as_aliases(engine, tmp_path):
    folder = tmp_path / "中文"
    folder.mkdir()
    write_csv(folder / "单位.csv", [["代码", "名称", "邮箱", "类型"], ["fgj", "区发改局", "a@b.cn；c@d.cn", "部门"],
                                    ["wjd", "五马街道", "wm@b.cn", "街镇"], ["zb", "工作专班", "", "专班"]])
    write_csv(folder / "指标.csv", [["代码", "名称", "计量单位", "类型", "方向", "责任单位"],
                                    ["rev", "营业收入", "亿元", "累计值", "不低于", "fgj、wjd"]])
    write_csv(folder / "目标.csv", [["指标", "年度", "数值", "单位"], ["rev", "2023", "8", ""], ["rev", "期末", "600", ""]])
    write_csv(folder / "月度数据.csv", [["指标", "期间", "数值", "填报单位"], ["rev", "2023年6月", "1,234.5", "wjd"],
                                        ["rev", "2023年第2季度", "3", ""]])
    write_csv(folder / "任务.csv", [["代码", "任务", "具体内容举措", "主要目标", "时间节点", "责任单位", "状态", "完成日期"],
                                    ["t1", "成立专班", "制定专班工作方案", "", "2023 全年", "zb", "进行中", ""]])

    report = run(engine, folder)

    assert report.ok, report.problem_lines()
    with transaction(engine) as s:
        assert s.get(Unit, "fgj").emails == ["a@b.cn", "c@d.cn"]
        assert (s.get(Unit, "zb").kind, s.get(Unit, "wjd").kind) == ("working_group", "street")
        assert s.get(Indicator, "rev").kind == "cumulative"
        assert s.get(Target, ("rev", "final", "")).value == 600
        periods = {period: value for period, value in s.execute(select(Observation.period, Observation.value))}
        assert periods == {"2023-06": 1234.5, "2023-Q2": 3.0}
        assert (s.get(Task, "t1").status, s.get(Task, "t1").deadline) == ("open", dt.date(2023, 12, 31))


def test_percent_figures_are_percent_numbers_whether_written_66_5_or_66_5_percent(loaded, tmp_path):
    figures = write_csv(tmp_path / "observations.csv", [OBSERVATIONS[0], ["fw_share", "2023-05", "66.5%", ""],
                                                         ["fw_share", "2023-06", "66.5", ""]])
    assert run(loaded, figures).ok
    with loaded.connect() as conn:
        assert conn.scalars(select(Observation.value)).all() == [66.5, 66.5]


def test_targets_are_stored_per_year_or_for_the_programme_end(loaded, tmp_path):
    targets = write_csv(tmp_path / "targets.csv", [["indicator", "year", "value", "unit"],
                                                   ["fw_share", "2023", "66.5%", ""], ["fw_share", "final", "70", ""],
                                                   ["fw_invest", "2023", "4", "fgj"]])
    assert run(loaded, targets).ok
    with transaction(loaded) as s:
        scopes = {(t.indicator_code, t.scope, t.unit_code): t.value for t in s.scalars(select(Target))}
    assert scopes == {("fw_share", "2023", ""): 66.5, ("fw_share", "final", ""): 70, ("fw_invest", "2023", "fgj"): 4}


# --- bad input: whole import refused, every problem named file:row:column ---------------


def test_an_unknown_indicator_or_unit_code_refuses_the_whole_import(loaded, tmp_path):
    before = row_counts(loaded)
    good = write_csv(tmp_path / "units-new.csv", [UNITS[0], ["jyj", "区教育局", "jy@lucheng.gov.cn", "department"]])
    bad = write_csv(tmp_path / "observations.csv", [OBSERVATIONS[0], ["fw_share", "2023-06", "1", ""],
                                                     ["no_such", "2023-06", "1", ""], ["fw_share", "2023-06", "1", "xxx"]])

    report = run(loaded, good, bad)

    assert_rejected(loaded, report, before,
                    f"{bad}:3:indicator: 未知的指标代码：'no_such'", f"{bad}:4:unit: 未知的单位：'xxx'（请填写单位清单中登记的单位名称或代码）")


def test_a_figures_unit_may_be_written_by_its_name_or_its_code(loaded, tmp_path):
    # Officials know units by name: 区发改局 (also with a stray space) is fgj, as fgj itself is.
    named = write_csv(tmp_path / "observations.csv", [OBSERVATIONS[0], ["fw_invest", "2023-05", "3", "区发改局"],
                                                       ["fw_invest", "2023-06", "4", " 五马 街道 "],
                                                       ["fw_invest", "2023-04", "2", "sw"]])
    report = run(loaded, named)
    assert report.ok, report.problem_lines()
    with transaction(loaded) as session:
        stored = set(session.execute(select(Observation.unit_code, Observation.period, Observation.value)
                                     .where(Observation.indicator_code == "fw_invest")).all())
    assert stored == {("fgj", "2023-05", 3.0), ("wjd", "2023-06", 4.0), ("sw", "2023-04", 2.0)}


def test_a_unit_named_in_the_same_import_may_be_named_in_its_figures(engine, tmp_path):
    folder = basics(tmp_path / "all")
    write_csv(folder / "units.csv", [*UNITS, ["jyj", "区教育局", "jy@lucheng.gov.cn", "department"]])
    write_csv(folder / "observations.csv", [OBSERVATIONS[0], ["fw_invest", "2023-06", "1", "区教育局"]])
    report = run(engine, folder)
    assert report.ok, report.problem_lines()
    with transaction(engine) as session:
        assert session.scalar(select(Observation.unit_code).where(Observation.period == "2023-06")) == "jyj"


def test_a_unit_declared_in_the_same_import_may_be_referred_to(loaded, tmp_path):
    new_unit = write_csv(tmp_path / "units-new.csv", [UNITS[0], ["jyj", "区教育局", "jy@lucheng.gov.cn", "department"]])
    figures = write_csv(tmp_path / "observations.csv", [OBSERVATIONS[0], ["fw_share", "2023-06", "1", "jyj"]])
    assert run(loaded, figures, new_unit).ok


def test_an_unknown_responsible_unit_is_named_with_its_column(loaded, tmp_path):
    before = row_counts(loaded)
    bad = write_csv(tmp_path / "指标.csv", [["代码", "名称", "计量单位", "责任单位"], ["x", "X", "个", "fgj;ghost"]])
    assert_rejected(loaded, run(loaded, bad), before, f"{bad}:2:责任单位: 未知的单位代码：'ghost'")


@pytest.mark.parametrize("period", ["2023-13", "2023-6-31x", "六月", "2023H1", "1999-06"])
def test_a_bad_period_refuses_the_import(loaded, tmp_path, period):
    before = row_counts(loaded)
    bad = write_csv(tmp_path / "observations.csv", [OBSERVATIONS[0], ["fw_share", period, "1", ""]])
    assert_rejected(loaded, run(loaded, bad), before, f"{bad}:2:period: ")


@pytest.mark.parametrize("value", ["abc", "1,2", "66.5%%", "nan", "1_000", "1e5"])
def test_a_non_numeric_value_refuses_the_import(loaded, tmp_path, value):
    before = row_counts(loaded)
    bad = write_csv(tmp_path / "observations.csv", [OBSERVATIONS[0], ["fw_invest", "2023-06", value, ""]])
    assert_rejected(loaded, run(loaded, bad), before, f"{bad}:2:value: 不是")


def test_a_percentage_for_an_indicator_measured_in_yuan_is_refused(loaded, tmp_path):
    before = row_counts(loaded)
    bad = write_csv(tmp_path / "observations.csv", [OBSERVATIONS[0], ["fw_invest", "2023-06", "12%", ""]])
    assert_rejected(loaded, run(loaded, bad), before, f"{bad}:2:value: 指标“fw_invest”的计量单位是“亿元”")


def test_a_key_repeated_within_one_import_is_refused_even_across_files(loaded, tmp_path):
    before = row_counts(loaded)
    first = write_csv(tmp_path / "observations-a.csv", OBSERVATIONS)
    second = write_csv(tmp_path / "observations-b.csv", [OBSERVATIONS[0], ["fw_share", "2023-06", "70", ""]])
    units = write_csv(tmp_path / "units.csv", [UNITS[0], UNITS[1], UNITS[1]])

    report = run(loaded, first, second, units)

    assert_rejected(loaded, report, before, f"{second}:2:indicator: 与{first} 第2行重复",
                    f"{units}:3:code: 与第2行重复")


def test_a_missing_required_column_is_reported_on_the_header_row(loaded, tmp_path):
    before = row_counts(loaded)
    bad = write_csv(tmp_path / "units.csv", [["code", "name"], ["x", "X"]])
    assert_rejected(loaded, run(loaded, bad), before, f"{bad}:1:email: 缺少必填列：email（邮箱）")


def test_an_unknown_column_is_reported_rather_than_silently_dropped(loaded, tmp_path):
    before = row_counts(loaded)
    bad = write_csv(tmp_path / "units.csv", [["code", "name", "email", "emial"], ["x", "X", "", ""]])
    assert_rejected(loaded, run(loaded, bad), before, f"{bad}:1:emial: 无法识别的列名")


@pytest.mark.parametrize("address", ["abc@", "a b@c.cn", "a@b", "a@@b.cn", "a@b.cn\r\nBcc: x@y.cn", ".a@b.cn"])
def test_a_malformed_email_address_is_refused(loaded, tmp_path, address):
    before = row_counts(loaded)
    bad = write_csv(tmp_path / "units.csv", [UNITS[0], ["x", "X", address, "department"]])
    assert_rejected(loaded, run(loaded, bad), before, f"{bad}:2:email: 邮箱地址格式不正确")


def test_the_email_message_quotes_the_address(loaded, tmp_path):
    bad = write_csv(tmp_path / "units.csv", [UNITS[0]] + [["x", "X", "ok@b.cn", ""]] * 5 + [["y", "Y", "abc@", ""]])
    assert f"{bad}:7:email: 邮箱地址格式不正确：'abc@'" in [str(p) for p in run(loaded, bad).problems]


@pytest.mark.parametrize(("file", "row", "column"), [
    ("units.csv", ["x", "X", "", "科室"], "kind"),
    ("indicators.csv", ["x", "X", "个", "level", "more", "fgj"], "direction"),
    ("projects.csv", ["p9", "P", "好项目", "省级", "1", "fgj"], "category"),
    ("projects.csv", ["p9", "P", "生活美好型", "县级", "1", "fgj"], "level"),
    ("tasks.csv", ["t9", "T", "", "", "2023年", "fgj", "搁置", ""], "status"),
])
def test_a_bad_enum_value_is_refused_and_the_accepted_values_listed(loaded, tmp_path, file, row, column):
    before = row_counts(loaded)
    header = {"units.csv": UNITS, "indicators.csv": INDICATORS, "projects.csv": PROJECTS, "tasks.csv": TASKS}[file][0]
    bad = write_csv(tmp_path / file, [header, row])
    assert_rejected(loaded, run(loaded, bad), before, f"{bad}:2:{column}: ")
    assert "应为" in str(run(loaded, bad).problems[0])


def test_an_unparseable_deadline_is_refused_not_guessed(loaded, tmp_path):
    before = row_counts(loaded)
    bad = write_csv(tmp_path / "tasks.csv", [TASKS[0], ["t9", "T", "", "", "下半年", "fgj", "", ""]])
    assert_rejected(loaded, run(loaded, bad), before, f"{bad}:2:deadline: 无法识别的时间节点：'下半年'")


def test_within_five_years_needs_a_programme(engine, tmp_path):
    write_csv(tmp_path / "units.csv", UNITS)
    write_csv(tmp_path / "tasks.csv", [TASKS[0], TASKS[2]])
    report = run(engine, tmp_path / "units.csv", tmp_path / "tasks.csv")
    assert_rejected(engine, report, {name: 0 for name in row_counts(engine)}, f"{tmp_path / 'tasks.csv'}:2:deadline: ")


def test_a_file_that_is_neither_utf8_nor_gbk_is_refused_with_a_clear_message(loaded, tmp_path):
    before = row_counts(loaded)
    bad = tmp_path / "units.csv"
    bad.write_bytes("code,name,email,kind\nx,区发改局,,\n".encode() + b"y,\xff\xfe\xfa\xff,,\n")
    assert_rejected(loaded, run(loaded, bad), before, f"{bad}:3: 文件编码无法识别")


def test_every_problem_is_listed_at_once_and_a_huge_list_is_capped(loaded, tmp_path):
    rows = [OBSERVATIONS[0]] + [["fw_share", "2023-06", "bad", ""]] * (MAX_LISTED_PROBLEMS + 50)
    report = run(loaded, write_csv(tmp_path / "observations.csv", rows))
    assert report.problem_count == MAX_LISTED_PROBLEMS + 50
    assert len(report.problems) == MAX_LISTED_PROBLEMS
    assert "另有 50 个问题未列出" in "\n".join(report.problem_lines())


def test_an_unknown_list_name_or_missing_path_is_refused(loaded, tmp_path):
    before = row_counts(loaded)
    stray = write_csv(tmp_path / "budget.csv", [["a"], ["b"]])
    report = run(loaded, stray, tmp_path / "nowhere")
    assert_rejected(loaded, report, before)
    messages = [str(problem) for problem in report.problems]
    assert any(line.startswith(f"{stray}: 无法从文件名“budget”判断") for line in messages)
    assert f"{tmp_path / 'nowhere'}: 文件或文件夹不存在" in messages
