"""Plausibility checks on import (审核公式, issue 12 item 7), the note that lets queried figures in, and
the row validation the web form shares with spreadsheet imports.

A share (比重) outside 0–100 is refused outright; a percentage outside 0–100 for other indicators, a
growth rate out of range, a running total that falls within its year and a figure ten times the
previous month's are queried: refused unless `--note` explains them, the note then kept with them.
"""

from __future__ import annotations

from itertools import groupby
from pathlib import Path

from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from test_import import JULY, basics, row_counts, run, write_csv

from duban.cli import main
from duban.store.db import transaction
from duban.store.importer import ImportLimits, import_paths, import_rows, validate_rows
from duban.store.importing.audit import (
    IndicatorInfo,
    SeriesFigures,
    check_candidates,
    check_series,
    check_value,
    quiet_range,
)
from duban.store.importing.staging import SeriesRow
from duban.store.models import ImportBatch, Observation, ObservationNote

INDICATORS = [["code", "name", "measure", "kind", "direction", "units"],
              ["fw_share", "服务业从业人员占比", "%", "level", "at_least", "fgj"],
              ["fw_invest", "服务业投资", "亿元", "cumulative", "at_least", "fgj"],
              ["va_growth", "服务业增加值增速", "%", "growth", "at_least", "fgj"],
              ["done_rate", "项目开工完成率", "%", "level", "at_least", "fgj"],
              ["firms", "规上服务业企业数", "家", "level", "at_least", "fgj"]]
HEADER = ["indicator", "period", "value", "unit"]


def lists(folder: Path) -> Path:
    basics(folder)
    write_csv(folder / "indicators.csv", INDICATORS)
    return folder


def figures(path: Path, *rows: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_csv(path, [HEADER, *rows])


def test_a_share_above_100_is_refused_even_with_a_note(sqlite_engine, tmp_path):
    folder = lists(tmp_path / "lists")
    path = figures(folder / "observations.csv", ["fw_share", "2023-06", "120", ""])
    report = import_paths(sqlite_engine, [folder], now=JULY, imported_by="统计员", note="已核实")
    assert not report.ok
    assert f"{path}:2:value: “服务业从业人员占比”是比重，应在 0 到 100 之间，实际为 120%" in report.problem_lines()


def test_a_completion_rate_above_100_is_queried_and_imported_with_a_note_kept_beside_it(sqlite_engine, tmp_path):
    folder = lists(tmp_path / "lists")
    path = figures(folder / "observations.csv", ["done_rate", "2023-06", "112.5", ""])

    queried = run(sqlite_engine, folder)

    assert not queried.ok and queried.needs_note and queried.problem_count == 0
    assert queried.problem_lines() == [
        f"{path}:2:value: 【需核实】百分比 112.5% 超出 0 至 100，请核实",
        "共有 1 处数据需核实，本次导入未写入任何数据。请核对后修改；如核实无误，请附上说明重新导入"
        "（命令行加 --note \"说明\"），说明将与数据一同保存，在报告中显示。",
    ]
    with transaction(sqlite_engine) as s:
        assert s.scalars(select(Observation)).all() == []

    noted = import_paths(sqlite_engine, [folder], now=JULY, imported_by="统计员", note="超额完成：年内新开工项目提前")

    assert noted.ok, noted.problem_lines()
    with transaction(sqlite_engine) as s:
        figure = s.scalars(select(Observation).where(Observation.indicator_code == "done_rate")).one()
        note = s.scalars(select(ObservationNote)).one()
        batch = s.get(ImportBatch, noted.batch_id)
        assert (note.observation_id, note.import_batch_id, note.audit) == (figure.id, noted.batch_id, "percent")
        assert note.message == "百分比 112.5% 超出 0 至 100，请核实"
        assert note.note == batch.note == "超额完成：年内新开工项目提前"


def _series(*rows: tuple[str, float, int]) -> list[SeriesRow]:
    """(period, value, source) rows of one series; source -1 is a stored figure."""
    return [SeriesRow("fw_invest", "", period, value, source, number) for number, (period, value, source)
            in enumerate(rows, start=2)]


def _queried(reported_as: str | None, rows: list[SeriesRow]) -> list[str]:
    info = IndicatorInfo(name="服务业投资", measure="亿元", kind="cumulative", reported_as=reported_as)
    return [finding.message for _, finding in check_series(rows, {"fw_invest": info}, ImportLimits())]


def test_a_running_total_that_falls_within_the_year_is_queried_against_the_stored_month():
    rows = _series(("2023-05", 12.5, -1), ("2023-06", 10, 0), ("2023-12", 40, -1), ("2024-01", 3.2, 0))
    # January starts a new year's total: only June is queried.
    assert _queried("ytd", rows) == _queried("", rows) == [
        "本年累计数 10 小于2023年5月（已入库）的 12.5：累计数不应下降，请核实是否误填了当月值"
        "（如为当月值，请将指标的报送口径改为“当月值”）"]


def test_a_total_to_date_may_not_fall_across_years_and_a_monthly_figure_may_fall():
    rows = _series(("2023-12", 40, -1), ("2024-01", 38, 0))
    assert _queried("to_date", rows) == [
        "累计至今数 38 小于2023年12月（已入库）的 40：累计数不应下降，请核实是否误填了当月值"
        "（如为当月值，请将指标的报送口径改为“当月值”）"]
    assert _queried("month", _series(("2023-05", 12.5, 0), ("2023-06", 10, 0))) == []


def test_without_a_reporting_basis_in_the_store_no_cumulative_figure_is_taken_for_a_running_total():
    assert _queried(None, _series(("2023-05", 12.5, 0), ("2023-06", 10, 0))) == []


def test_a_growth_rate_outside_the_configured_range_is_queried(sqlite_engine, tmp_path):
    folder = lists(tmp_path / "lists")
    path = figures(folder / "observations.csv", ["va_growth", "2023-06", "150", ""], ["va_growth", "2023-07", "-8.5", ""])
    report = run(sqlite_engine, folder)
    assert [str(w) for w in report.warnings] == [
        f"{path}:2:value: 【需核实】增速 150% 超出 -50% 至 100% 的合理范围，请核实"
        "（范围可用 DUBAN_IMPORT_GROWTH_MIN、DUBAN_IMPORT_GROWTH_MAX 调整）"]
    wider = import_paths(sqlite_engine, [folder], now=JULY, imported_by="统计员", limits=ImportLimits(growth_max=200))
    assert wider.ok, wider.problem_lines()


def test_a_figure_ten_times_the_previous_month_is_queried_within_one_file(sqlite_engine, tmp_path):
    folder = lists(tmp_path / "lists")
    path = figures(folder / "observations.csv", ["firms", "2023-05", "52", "fgj"], ["firms", "2023-06", "5,300", "fgj"],
                   ["firms", "2023-08", "9", "fgj"])  # July missing: August is not compared with June
    report = run(sqlite_engine, folder)
    assert [str(w) for w in report.warnings] == [
        f"{path}:3:value: 【需核实】5,300 是上月（2023年5月的 52）的 101.9 倍，超过 10 倍："
        "请核实计量单位（如万元与亿元）或是否多填了数位"]


def test_a_drop_to_under_a_tenth_is_queried_too(sqlite_engine, tmp_path):
    folder = lists(tmp_path / "lists")
    path = figures(folder / "observations.csv", ["firms", "2023-Q1", "520", ""], ["firms", "2023-Q2", "0.52", ""])
    report = run(sqlite_engine, folder)
    assert [str(w) for w in report.warnings] == [
        f"{path}:3:value: 【需核实】0.52 不足上季度（2023年第1季度的 520）的 1/10：请核实计量单位（如万元与亿元）或是否少填了数位"]


def test_the_command_refuses_queried_figures_without_a_note_and_keeps_the_note_with_them(tmp_path):
    db = tmp_path / "duban.db"
    cli = CliRunner()
    assert cli.invoke(main, ["--db", str(db), "db", "upgrade"]).exit_code == 0
    folder = lists(tmp_path / "lists")
    figures(folder / "observations.csv", ["done_rate", "2023-06", "130", ""])

    refused = cli.invoke(main, ["--db", str(db), "import", str(folder)])
    accepted = cli.invoke(main, ["--db", str(db), "import", str(folder), "--note", "含跨年结转项目"])

    assert refused.exit_code == 1 and "--note" in refused.stderr
    assert accepted.exit_code == 0, accepted.output
    assert "经核实导入的数据 1 处，说明已保存：含跨年结转项目" in accepted.output


def test_text_that_looks_mis_decoded_is_queried(sqlite_engine, tmp_path):
    mangled = "区商务局".encode("gbk").decode("latin-1")  # a GBK name read as Latin-1: 'Çø...'
    path = write_csv(tmp_path / "units.csv", [["code", "name", "email"], ["sw", mangled, ""]])
    report = run(sqlite_engine, path)
    assert report.needs_note
    assert str(report.warnings[0]) == (f"{path}:2:name: 【需核实】文字疑似乱码（原文可能是“区商务局”）：'{mangled}'。"
                                       "文件编码可能有误，请在 Excel/WPS 中另存为“CSV UTF-8”后重新导入")


# --- one validation for every source: the web form --------------------------------------------------


def test_web_form_rows_are_validated_with_the_same_messages_and_nothing_is_written(sqlite_engine, tmp_path):
    assert run(sqlite_engine, lists(tmp_path / "lists")).ok
    before = row_counts(sqlite_engine)
    rows = [{"指标": "fw_share", "期间": "2023年6月", "数值": "66.1%"},
            {"指标": "fw_shar", "期间": "2023-13", "数值": "很多"},
            {"指标": "done_rate", "期间": "2023-06", "数值": "130"}]

    report = validate_rows(sqlite_engine, "月度数据", rows)

    assert [(p.row, p.column, p.message) for p in report.problems] == [
        (2, "指标", "未知的指标代码：'fw_shar'（请先在指标清单中登记）"),
        (2, "期间", "月份不存在：'2023-13'"),
        (2, "数值", "不是数值：'很多'"),
    ]
    assert [(w.row, w.column, w.message) for w in report.warnings] == [(3, "数值", "百分比 130% 超出 0 至 100，请核实")]
    assert str(report.problems[0]).startswith("网页填报:2:指标: ")
    assert row_counts(sqlite_engine) == before


def test_web_form_rows_with_a_note_are_imported_like_a_file(sqlite_engine, tmp_path):
    assert run(sqlite_engine, lists(tmp_path / "lists")).ok
    rows = [{"indicator": "done_rate", "period": "2023-06", "value": 130.0, "unit": ""}]
    assert validate_rows(sqlite_engine, "observations", rows, note="含结转").ok
    report = import_rows(sqlite_engine, "observations", rows, now=JULY, imported_by="区发改局 张三", note="含结转")
    assert report.ok, report.problem_lines()
    with transaction(sqlite_engine) as s:
        figure = s.scalars(select(Observation)).one()
        assert (figure.value, figure.source_file) == (130.0, "网页填报")
        assert s.scalars(select(ObservationNote.note)).one() == "含结转"


_PERIODS = [f"{year}-{month:02d}" for year in (2023, 2024) for month in range(1, 13)] + \
    [f"{year}-Q{quarter}" for year in (2023, 2024) for quarter in range(1, 5)] + ["2023", "2024"]
_SERIES_INFO = {
    "ytd": IndicatorInfo("服务业投资", "亿元", "cumulative", "ytd"),
    "to_date": IndicatorInfo("累计开工", "个", "cumulative", "to_date"),
    "month": IndicatorInfo("当月投资", "亿元", "cumulative", "month"),
    "level": IndicatorInfo("企业数", "家", "level", ""),
    "growth": IndicatorInfo("增速", "%", "growth", ""),
}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(sorted(_SERIES_INFO)), st.sampled_from(["", "fgj", "sw"]),
                          st.sampled_from(_PERIODS), st.sampled_from([-5.0, 0.0, 0.5, 1.0, 3.0, 9.9, 10.0, 12.0, 150.0]),
                          st.booleans()),
                unique_by=lambda figure: figure[:3], max_size=40),
       st.randoms(use_true_random=False))
def test_the_import_walks_each_series_as_check_series_does(figures, shuffle):
    """SeriesFigures (the import's walk, staged figures kept as read, stored ones streamed series by
    series in any period order) judges exactly the figures check_series judges over the sorted series."""
    limits = ImportLimits()
    staged = [(indicator, unit, period, value, 0 if not stored else -1, number)
              for number, (indicator, unit, period, value, stored) in enumerate(figures, start=2)]
    reference_rows = sorted((SeriesRow(i, u, p, v, s, r if s >= 0 else 0) for i, u, p, v, s, r in staged),
                            key=lambda row: (row.indicator, row.unit, row.period, row.source))
    expected = [(row, finding) for row, finding in check_series(reference_rows, _SERIES_INFO, limits)]

    walk = SeriesFigures(_SERIES_INFO, limits)
    read = [figure for figure in staged if figure[4] >= 0]
    shuffle.shuffle(read)
    for indicator, unit, period, value, source, row in read:
        walk.add(indicator, unit, period, value, source, row)
    stored = sorted(((i, u, p, v) for i, u, p, v, s, _ in staged if s < 0), key=lambda figure: figure[:2])
    by_series = [list(group) for _, group in groupby(stored, key=lambda figure: figure[:2])]
    for group in by_series:
        shuffle.shuffle(group)
    actual = list(check_candidates(walk.candidates([figure for group in by_series for figure in group]),
                                   _SERIES_INFO, limits))
    assert actual == expected


def test_rows_that_repeat_checked_cells_are_still_checked_one_by_one(sqlite_engine, tmp_path):
    """The import parses each indicator, period and unit text once (the first row that passes with it);
    rows after it with the same texts still get every check of their own, and their own row numbers."""
    folder = lists(tmp_path / "lists")
    path = figures(folder / "observations.csv",
                   ["fw_invest", "2023-06", "12.5", "nope"],   # 2: unknown unit, nothing remembered
                   ["fw_invest", "2023-06", "12.5", "wjd"],    # 3: passes: its texts are remembered
                   ["fw_invest", "2023-07", "x", "wjd"],       # 4: not a number
                   ["fw_invest", "2023-08", "13", "nope"],     # 5: unknown unit again
                   ["fw_share", "2023-06", "66", ""],          # 6: passes
                   ["fw_share", "2023-07", "120", ""],         # 7: a share above 100
                   ["fw_invest", "2023-07", "1", "wjd"],       # 8: a running total falling: queried
                   ["done_rate", "2023-06", "112.5", ""],      # 9: queried
                   ["done_rate", "2023-07", "112.5%", ""],     # 10: queried
                   ["firms", "2023-06", "5", "区发改局"],        # 11: a unit by its name: remembered as fgj
                   ["firms", "2023-07", "60", "区发改局"])       # 12: ten times June: queried
    report = import_paths(sqlite_engine, [folder], now=JULY, imported_by="统计员")
    lines = report.problem_lines()
    assert [line for line in lines if line.startswith(str(path))] == [
        f"{path}:2:unit: 未知的单位：'nope'（请填写单位清单中登记的单位名称或代码）",
        f"{path}:4:value: 不是数值：'x'",
        f"{path}:5:unit: 未知的单位：'nope'（请填写单位清单中登记的单位名称或代码）",
        f"{path}:7:value: “服务业从业人员占比”是比重，应在 0 到 100 之间，实际为 120%",
        f"{path}:9:value: 【需核实】百分比 112.5% 超出 0 至 100，请核实",
        f"{path}:10:value: 【需核实】百分比 112.5% 超出 0 至 100，请核实",
        f"{path}:12:value: 【需核实】60 是上月（2023年6月的 5）的 12.0 倍，超过 10 倍：请核实计量单位（如万元与亿元）"
        "或是否多填了数位",
        f"{path}:8:value: 【需核实】本年累计数 1 小于2023年6月的 12.5：累计数不应下降，请核实是否误填了当月值"
        "（如为当月值，请将指标的报送口径改为“当月值”）",
    ]
    fixed = figures(folder / "observations.csv",
                    ["fw_invest", "2023-06", "12.5", "wjd"], ["fw_invest", "2023-07", "1", "wjd"],
                    ["done_rate", "2023-06", "112.5", ""], ["done_rate", "2023-07", "99", ""])
    report = import_paths(sqlite_engine, [folder], now=JULY, imported_by="统计员")
    assert report.needs_note and report.problem_count == 0
    assert [str(warning) for warning in report.warnings] == [
        f"{fixed}:4:value: 【需核实】百分比 112.5% 超出 0 至 100，请核实",
        f"{fixed}:3:value: 【需核实】本年累计数 1 小于2023年6月的 12.5：累计数不应下降，请核实是否误填了当月值"
        "（如为当月值，请将指标的报送口径改为“当月值”）",
    ]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([*sorted(_SERIES_INFO), "share", "percent"]),
       st.floats(min_value=-1e15, max_value=1e15, allow_nan=False) | st.sampled_from([-50.0, 0.0, 100.0, -50.01, 100.01]))
def test_check_value_finds_nothing_within_the_quiet_range_and_something_outside(kind, value):
    infos = {**_SERIES_INFO, "share": IndicatorInfo("服务业从业人员占比", "%", "level", ""),
             "percent": IndicatorInfo("项目开工完成率", "%", "level", "")}
    low, high = quiet_range(infos[kind], ImportLimits())
    assert (check_value(infos[kind], value, ImportLimits()) is None) == (low <= value <= high)
