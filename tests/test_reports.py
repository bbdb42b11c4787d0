"""月度专报, 季度通报 and 年度评估: built from the evaluation the notices come from, read back as a reader would.

The HTML is parsed with the standard library's html.parser, the workbooks with openpyxl; the
examples are imported into real SQLite files.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy import Engine, select

from duban.app.simulate import replay
from duban.cli import main
from duban.engine.loader import load_rule_set
from duban.notifiers.reports import generate, prepare_report
from duban.notifiers.reports.model import Report
from duban.notifiers.reports.produce import WrittenReport
from duban.store.db import create_all, make_engine
from duban.store.importer import import_paths
from duban.store.models import Delivery, DeliveryPayload, Round
from duban.store.periods import SHANGHAI

LIST_SHEETS = ["主要指标进度表", "重大项目实施表", "重点任务攻坚表", "争先创优晾晒表", "表扬督促", "督导服务销号表"]
# Huzhou's document names no lists of Lucheng's kind: programme.yaml gives them plain names.
HUZHOU_LIST_SHEETS = ["主要指标进度表", "重大项目实施表", "重点任务推进表", "工作进度评价表", "表扬督促", "督促事项办理表"]
RED, YELLOW, GREEN = "FFFFC7CE", "FFFFEB9C", "FFC6EFCE"


def _store(folder: Path, programme: str) -> Engine:
    engine = make_engine(str(folder / "duban.db"))
    create_all(engine)
    report = import_paths(engine, [f"examples/{programme}-2023"], now=dt.datetime(2023, 1, 1, tzinfo=dt.UTC),
                          imported_by="test")
    assert report.ok, report.problem_lines()
    return engine


@pytest.fixture(scope="module")
def lucheng(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, Path]]:
    folder = tmp_path_factory.mktemp("lucheng")
    engine = _store(folder, "lucheng")
    yield engine, folder
    engine.dispose()


@pytest.fixture(scope="module")
def huzhou(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, Path]]:
    folder = tmp_path_factory.mktemp("huzhou")
    engine = _store(folder, "huzhou")
    yield engine, folder
    engine.dispose()


@pytest.fixture(scope="module")
def lucheng_q2(lucheng: tuple[Engine, Path]) -> WrittenReport:
    engine, folder = lucheng
    return generate(engine, load_rule_set("rules/lucheng"), "quarterly", "2023-Q2", folder / "reports")


@pytest.fixture(scope="module")
def huzhou_q2(huzhou: tuple[Engine, Path]) -> WrittenReport:
    engine, folder = huzhou
    return generate(engine, load_rule_set("rules/huzhou"), "quarterly", "2023-Q2", folder / "reports")


class Page(HTMLParser):
    """Tables as lists of rows of (text, classes) cells; every tag with its attributes; the SVG count."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.tables: list[tuple[str, list[list[tuple[str, str]]]]] = []
        self.style = ""
        self._in_style = False
        self._cell: list[str] | None = None
        self._cell_class = ""
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "table":
            self.tables.append((attributes.get("class") or "", []))
        elif tag == "tr" and self.tables:
            self.tables[-1][1].append([])
        elif tag in ("td", "th"):
            self._cell, self._cell_class = [], attributes.get("class") or ""
        elif tag == "style":
            self._in_style = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.tables:
            self.tables[-1][1][-1].append(("".join(self._cell).strip(), self._cell_class))
            self._cell = None
        elif tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._in_style:
            self.style += data

    def table(self, name: str) -> list[list[tuple[str, str]]]:
        return next(rows for cls, rows in self.tables if cls == name)


def _page(written: WrittenReport) -> Page:
    return Page(written.html.read_text(encoding="utf-8"))


def _row(rows: list[list[tuple[str, str]]], starts: str) -> list[tuple[str, str]]:
    return next(row for row in rows if len(row) > 1 and row[1][0].startswith(starts))


# --- the HTML report ------------------------------------------------------------------------------


def test_lucheng_quarterly_report_lights_the_service_investment_share_red_with_june_figures(lucheng_q2):
    row = _row(_page(lucheng_q2).table("indicators"), "服务业投资占全区固定资产投资比重")
    texts = [text for text, _cls in row]
    assert texts[2] == "底线标准"
    assert texts[3] == "66.67%以上"  # 不低于 2/3: the comparison stays with the target
    assert texts[4].startswith("62.7%") and "2023年6月" in texts[4]
    assert texts[7] == "-3.97"
    assert row[8] == ("红灯", "light red")


def test_indicator_rows_show_completion_against_time_progress_and_units_shares_underneath(lucheng_q2):
    rows = _page(lucheng_q2).table("indicators")
    # The example gives training only its programme-end target (5万人次, 二（四）) — no invented yearly
    # figure — so the row is that target paced by the programme's elapsed share (6 of 60 months).
    training = _row(rows, "服务业从业人员培训")
    assert training[2][0] == "按规划期序时进度测算"
    assert [text for text, _ in training[5:9]] == ["17.56%", "10%", "+7.56", "绿灯"]
    stores = _row(rows, "新引进品牌首店")
    assert stores[2][0] == "年度目标" and [text for text, _ in stores[5:9]] == ["50%", "50%", "0", "绿灯"]


def test_project_table_groups_by_category_and_lights_the_hr_park_red(lucheng_q2):
    rows = _page(lucheng_q2).table("projects")
    groups = [row[0][0] for row in rows if row and row[0][0].endswith("个）") and "项目（" in row[0][0]]
    assert groups == ["战略支撑型项目（4个）", "产业赋能型项目（7个）", "生活美好型项目（9个）"]  # the registered list
    park = _row(rows, "中国·温州人力资源服务产业园提升项目")
    assert [text for text, _ in park[3:9]] == ["14.5", "1.5", "0.18", "12%", "50%", "红灯"]
    total = next(row for row in rows if row[0][0].startswith("合计"))
    assert [text for text, _ in total[1:4]] == ["357.3", "15.6", "7.36"]


def test_units_are_ranked_by_completion_against_time_progress(lucheng_q2):
    report: Report = lucheng_q2.report
    gaps = [unit.gap for unit in report.ranking]
    assert gaps == sorted(gaps, reverse=True)
    assert report.ranking[0].name == "区金融办" and report.ranking[0].level == "green"
    last = report.ranking[-1]
    assert (last.name, last.completion, last.level) == ("区委宣传部", 20.0, "red")
    assert "区服务业高质量发展" not in " ".join(unit.name for unit in report.ranking)  # the working group is not ranked


def test_praise_and_urging_lists_are_the_evaluations_praise_and_lights(lucheng_q2):
    page = _page(lucheng_q2)
    praise = [row[1][0] for row in page.table("praise")[1:]]
    assert "“‘金蓝领’培训”（区人力社保局）完成进度快于序时进度10个百分点以上" in praise  # 附件1 第5项 names it
    urging = page.table("urging")[1:]
    assert urging[0][1] == ("红灯", "light red")
    assert urging[0][2][0].startswith("服务业投资占全区固定资产投资比重低于2/3")
    assert "2023年6月为62.7%，标准66.67%" in urging[0][2][0]
    levels = [row[1][0] for row in urging]
    assert levels == sorted(levels, key=["红灯", "黄灯"].index)


def test_the_report_is_self_contained_with_no_script_and_no_external_resource(lucheng_q2):
    page = _page(lucheng_q2)
    assert not [tag for tag, _ in page.tags if tag in ("script", "link", "img", "iframe", "object", "embed")]
    for tag, attributes in page.tags:
        for name, value in attributes.items():
            assert not name.startswith("on"), (tag, name)
            if name in ("src", "href") or name.endswith(":href"):
                raise AssertionError(f"<{tag} {name}={value}> points outside the file")
    assert "url(" not in page.style and "@import" not in page.style
    assert "@page" in page.style and "size: A4" in page.style
    assert '"Noto Sans CJK SC"' in page.style and '"Microsoft YaHei"' in page.style and '"SimSun"' in page.style


def test_charts_are_inline_svg_with_the_time_progress_line_and_the_categories(lucheng_q2):
    html = lucheng_q2.html.read_text(encoding="utf-8")
    assert [tag for tag, _ in _page(lucheng_q2).tags].count("svg") == 2
    assert 'aria-label="主要指标完成进度与序时进度"' in html
    for category in ("战略支撑型（4个）", "产业赋能型（7个）", "生活美好型（9个）"):
        assert category in html


def test_without_recorded_rounds_the_closing_list_is_empty_and_says_why(lucheng_q2):
    assert not lucheng_q2.report.rounds_recorded
    assert "系统尚未记录督办轮次" in lucheng_q2.html.read_text(encoding="utf-8")
    sheet = load_workbook(lucheng_q2.xlsx)["督导服务销号表"]
    assert "系统尚未记录督办轮次" in str(sheet["A4"].value)


def test_huzhou_quarterly_report_renders_with_the_smart_computing_centre_red(huzhou_q2):
    page = _page(huzhou_q2)
    centre = _row(page.table("projects"), "南太湖新区智算中心项目")
    assert [text for text, _ in centre[4:9]] == ["4", "0.52", "13%", "50%", "红灯"]
    growth = _row(page.table("indicators"), "服务业投资增速")
    assert growth[8] == ("绿灯", "light green")
    assert huzhou_q2.report.cutoff == dt.datetime(2023, 7, 20, 9, 0, tzinfo=SHANGHAI)  # the 季度例会


# --- the workbook ---------------------------------------------------------------------------------


def test_the_workbook_has_a_cover_and_one_sheet_per_list(lucheng_q2):
    book = load_workbook(lucheng_q2.xlsx)
    assert book.sheetnames[:7] == ["说明", *LIST_SHEETS], "the five lists first; the quarter's analysis after them"
    assert book["说明"]["A1"].value == lucheng_q2.report.title


def test_every_list_sheet_freezes_its_header_rows(lucheng_q2, huzhou_q2):
    for written, names in ((lucheng_q2, LIST_SHEETS), (huzhou_q2, HUZHOU_LIST_SHEETS)):
        book = load_workbook(written.xlsx)
        for name in names:
            sheet = book[name]
            assert sheet.freeze_panes == "A4", name
            assert sheet["A3"].value in ("序号", "名次", "类别"), name
            assert sheet.column_dimensions["B"].width >= 6, name


def test_the_share_row_in_the_workbook_carries_its_figures_and_a_red_fill(lucheng_q2):
    sheet = load_workbook(lucheng_q2.xlsx)["主要指标进度表"]
    headers = [cell.value for cell in sheet[3]]
    row = next(r for r in sheet.iter_rows(min_row=4) if r[1].value == "服务业投资占全区固定资产投资比重")
    cells = dict(zip(headers, row, strict=True))
    assert cells["目标/标准"].value == pytest.approx(66.6667, abs=1e-3)
    assert cells["完成值"].value == pytest.approx(62.7)
    assert cells["数据期"].value == "2023年6月"
    assert cells["亮灯"].value == "红灯"
    assert cells["亮灯"].fill.fgColor.rgb == RED


def test_workbook_fills_follow_the_lights_in_every_list(lucheng_q2):
    book = load_workbook(lucheng_q2.xlsx)
    fills = {"红灯": RED, "黄灯": YELLOW, "绿灯": GREEN}
    seen = set()
    for name in LIST_SHEETS:
        sheet = book[name]
        column = [cell.value for cell in sheet[3]].index("亮灯")
        for row in sheet.iter_rows(min_row=4):
            light = row[column].value
            if light in fills:
                assert row[column].fill.fgColor.rgb == fills[light], (name, light)
                seen.add(light)
    assert seen == {"红灯", "黄灯", "绿灯"}
    park = next(r for r in book["重大项目实施表"].iter_rows(min_row=4) if r[1].value == "中国·温州人力资源服务产业园提升项目")
    assert [c.value for c in park[5:7]] == [1.5, pytest.approx(0.18)] and park[10].fill.fgColor.rgb == RED


def test_the_ranking_sheet_puts_the_best_unit_first(lucheng_q2):
    sheet = load_workbook(lucheng_q2.xlsx)["争先创优晾晒表"]
    first = [cell.value for cell in sheet[4]]
    assert first[:2] == [1, "区金融办"] and first[-1] == "绿灯"


# --- the cut-off, the ledger, the digests ---------------------------------------------------------


def test_each_report_is_cut_off_at_the_meeting_that_reads_it(lucheng):
    engine, _folder = lucheng
    rules = load_rule_set("rules/lucheng")
    # 15 July 2023 was a Saturday: the July dispatch ran on Monday the 17th; 20 January 2024 too.
    assert prepare_report(engine, rules, "monthly", "2023-06").cutoff == dt.datetime(2023, 7, 17, 9, tzinfo=SHANGHAI)
    assert prepare_report(engine, rules, "quarterly", "2023-Q2").cutoff == dt.datetime(2023, 7, 20, 9, tzinfo=SHANGHAI)
    annual = prepare_report(engine, rules, "annual", "2023")
    assert annual.cutoff == dt.datetime(2024, 1, 22, 9, tzinfo=SHANGHAI)
    assert annual.time_progress == 100.0 and annual.progress_label == "2023年1—12月"


def test_after_a_replay_the_closing_list_shows_what_opened_closed_and_carried_over(tmp_path):
    engine = _store(tmp_path, "lucheng")
    rules = _from_january(load_rule_set("rules/lucheng"))
    replay(engine, rules, dt.datetime(2023, 1, 1, tzinfo=SHANGHAI), dt.datetime(2023, 7, 21, tzinfo=SHANGHAI))
    written = generate(engine, rules, "quarterly", "2023-Q2", tmp_path / "reports")
    report = written.report
    assert report.since == dt.datetime(2023, 4, 20, 9, tzinfo=SHANGHAI)
    opened = {row.title: row for row in report.opened}
    share = opened["服务业投资占全区固定资产投资比重低于2/3"]
    assert (share.level, share.status_label, share.first_seen.astimezone(SHANGHAI).date()) == \
        ("red", "督办中", dt.date(2023, 6, 5))
    # Nothing closes in Q2 since counts expect whole items (10 brand stores a year expect none in
    # January): the brand-store yellow that used to light in February and close in July never lights.
    assert "全区“新引进品牌首店”完成进度滞后于序时进度" not in {r.title for r in [*report.closed, *report.still_open]}
    assert "重大项目“中国·温州人力资源服务产业园提升项目”投资进度滞后于序时进度" in {r.title for r in report.still_open}
    # What closes at the July analysis: the new-generation entrepreneurs caught up with the programme's
    # pace (a June cohort), and the April forecast for brand stores no longer holds.
    closed = {row.title for row in report.closed}
    assert "“新生代企业家培育”规划期累计完成进度滞后于规划期序时进度" in closed
    sheet = load_workbook(written.xlsx)["督导服务销号表"]
    kinds = {row[0].value for row in sheet.iter_rows(min_row=4)}
    assert kinds == {"本期新增", "本期销号", "上期结转督办中"}
    engine.dispose()


def _bodies(engine: Engine, round_key: str) -> list[str]:
    with engine.connect() as conn:
        payloads = conn.scalars(select(DeliveryPayload.payload).join(Delivery, Delivery.id == DeliveryPayload.delivery_id)
                                .join(Round, Round.id == Delivery.round_id).where(Round.key == round_key)).all()
    texts = []
    for payload in payloads:
        message = email.message_from_bytes(payload)
        for part in message.walk():
            if part.get_content_type() == "text/plain":
                texts.append(part.get_payload(decode=True).decode("utf-8"))
    return texts


def _from_january(rules):
    """The Lucheng document is dated 24 August 2023; these replays run its cadence from January."""
    rules.settings = dataclasses.replace(rules.settings, start=dt.date(2023, 1, 1))
    return rules


def test_the_monthly_dispatch_and_quarterly_digests_name_the_report_they_read(tmp_path, monkeypatch):
    engine = _store(tmp_path, "lucheng")
    rules = _from_january(load_rule_set("rules/lucheng"))
    monkeypatch.setenv("DUBAN_REPORTS_URL", "https://duban.example.org/reports")
    replay(engine, rules, dt.datetime(2023, 7, 17, tzinfo=SHANGHAI), dt.datetime(2023, 7, 21, tzinfo=SHANGHAI))
    # 17 July: the 专班会商 and the 月调度 fire together; their one round is keyed by the first.
    dispatch = _bodies(engine, "lucheng.consultation@2023-07-17T09:00:00+08:00")
    assert dispatch and all("2023年6月月度专报：https://duban.example.org/reports/monthly-2023-06.html" in text
                            for text in dispatch)
    quarterly = _bodies(engine, "lucheng.quarterly_analysis@2023-07-20T09:00:00+08:00")
    assert quarterly and all("2023年第二季度季度通报" in text for text in quarterly)
    daily = _bodies(engine, "lucheng.daily_check@2023-07-18T08:30:00+08:00")
    assert not any("相关报告" in text for text in daily)
    engine.dispose()


# --- the command ----------------------------------------------------------------------------------


def test_report_commands_write_html_and_xlsx_and_print_their_paths(tmp_path):
    db = tmp_path / "duban.db"
    runner = CliRunner()
    assert runner.invoke(main, ["--db", str(db), "db", "upgrade"]).exit_code == 0
    assert runner.invoke(main, ["--db", str(db), "import", "examples/huzhou-2023"]).exit_code == 0
    out = tmp_path / "out"
    for args, stem in ((["monthly", "--month", "2023-06"], "monthly-2023-06"),
                       (["quarterly", "--quarter", "2023-Q2"], "quarterly-2023-Q2"),
                       (["annual", "--year", "2023"], "annual-2023")):
        result = runner.invoke(main, ["--db", str(db), "report", *args, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert str(out / f"{stem}.html") in result.stdout and str(out / f"{stem}.xlsx") in result.stdout
        assert (out / f"{stem}.html").stat().st_size > 0 and (out / f"{stem}.xlsx").stat().st_size > 0
        if stem == "monthly-2023-06":  # reviewed at the July dispatch, in Beijing time and Chinese dates
            assert "（评估时点 2023年7月" in result.stdout and "2023-07" not in result.stdout.split("（评估时点")[1]
    # Huzhou's document names no 年度评估, 月度专报 or 季度通报: its reports carry programme.yaml's plain names.
    annual = (out / "annual-2023.html").read_text(encoding="utf-8")
    assert "2023年度湖州市服务业高质量发展“十百千”工程年度评价报告" in annual
    monthly = (out / "monthly-2023-06.html").read_text(encoding="utf-8")
    assert "2023年6月湖州市服务业高质量发展“十百千”工程推进情况月度监测报告" in monthly
    for text in (annual, monthly, (out / "quarterly-2023-Q2.html").read_text(encoding="utf-8")):
        for lucheng_only in ("月度专报", "季度通报", "争先创优晾晒表", "督导服务销号表", "重点任务攻坚表", "督导服务名单"):
            assert lucheng_only not in text, lucheng_only
    assert "工作进度评价表" in monthly and "督促事项办理表" in monthly
    sheets = load_workbook(out / "quarterly-2023-Q2.xlsx", read_only=True).sheetnames
    assert {"工作进度评价表", "督促事项办理表", "重点任务推进表", "重点督促单位名单"} <= set(sheets)


def test_a_malformed_period_is_a_chinese_message_not_a_traceback(tmp_path):
    db = tmp_path / "duban.db"
    runner = CliRunner()
    assert runner.invoke(main, ["--db", str(db), "db", "upgrade"]).exit_code == 0
    assert runner.invoke(main, ["--db", str(db), "import", "examples/lucheng-2023"]).exit_code == 0
    result = runner.invoke(main, ["--db", str(db), "report", "quarterly", "--quarter", "2023-06"])
    assert result.exit_code == 1
    assert "--quarter 的值“2023-06”格式不正确，应如 2023-Q2" in result.output
    assert "Traceback" not in result.output


def test_the_demo_writes_the_reports_its_replay_reached_and_lists_them_in_its_index(tmp_path):
    workspace = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--workspace", str(workspace), "--from", "2023-06-01",
                                       "--to", "2023-07-21"])
    assert result.exit_code == 0, result.output
    # Huzhou's document is dated 3 April 2023: its June and July dispatches and its July meeting link
    # these reports, and the demo writes every report a mail links.
    names = sorted(path.name for path in (workspace / "huzhou" / "reports").iterdir())
    # The annual assessment runs in January 2024, after this replay: no annual report yet.
    assert names == ["monthly-2023-05.html", "monthly-2023-05.xlsx", "monthly-2023-06.html", "monthly-2023-06.xlsx",
                     "quarterly-2023-Q2.html", "quarterly-2023-Q2.xlsx"]
    # Lucheng's is dated 24 August 2023: no round before it, so no report is linked or written.
    assert not list((workspace / "lucheng" / "reports").glob("*.html"))
    index = (workspace / "index.html").read_text(encoding="utf-8")
    assert "<a href='huzhou/reports/quarterly-2023-Q2.html'>网页版</a>" in index
    assert "2023年第二季度湖州市服务业高质量发展“十百千”工程推进情况季度分析报告" in index


def test_a_lizheng_standard_is_not_called_a_floor_in_the_report(lucheng_q2):
    # "力争服务业投资同比增长 8.0% 以上": a stretch goal (yellow at worst), not 底线标准.
    row = _row(_page(lucheng_q2).table("indicators"), "服务业投资增速")
    assert row[2][0] == "力争目标" and row[3][0] == "8%以上"
