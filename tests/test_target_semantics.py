"""Targets as the documents write them (issue 11): milestones, running totals, 左右/超过/力争,
whole counts, counts over the project list, forecasts, and figures seen only once reported.

Every case goes through the real importer (Chinese column words) and the real evaluator."""

from __future__ import annotations

import datetime as dt
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine

from duban.engine.evaluate import AlertCandidate, evaluate
from duban.engine.loader import check_against_store, load_rule_set
from duban.store.importer import import_paths
from duban.store.snapshot import load_snapshot

BEIJING = dt.timezone(dt.timedelta(hours=8))
IMPORTED = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # long before every evaluation: only periods matter

PROGRAMME_CSV = "代码,名称,开始日期,结束日期,文号\ndemo,示范区“十百千”工程,2023-01-01,2027-12-31,示政办〔2023〕1号\n"
UNITS_CSV = (
    "代码,名称,邮箱,类型\n"
    "fgj,区发改局,fgj@demo.example.org,部门\n"
    "rsj,区人力社保局,rsj@demo.example.org,部门\n"
    "zb,区“十百千”工作专班,zb@demo.example.org,专班\n"
)


def at(day: str) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(9), BEIJING)


Scenario = Callable[..., Callable[[str], list[AlertCandidate]]]


@pytest.fixture
def scenario(tmp_path: Path, sqlite_engine: Engine) -> Scenario:
    """Write the lists and one rule file, import them, and return `lights(day)`."""

    def build(rules: str, *, indicators: str, targets: str = "", observations: str = "", projects: str = "",
              project_plans: str = "", project_investment: str = "", programme_yaml: str = "programme: demo\n",
              now: dt.datetime = IMPORTED) -> Callable[[str], list[AlertCandidate]]:
        data = tmp_path / "data"
        data.mkdir(exist_ok=True)
        lists = {"programme": PROGRAMME_CSV, "units": UNITS_CSV, "indicators": indicators, "targets": targets,
                 "observations": observations, "projects": projects, "project_plans": project_plans,
                 "project_investment": project_investment}
        for name, text in lists.items():
            if text:
                (data / f"{name}.csv").write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        # Scenarios may hold figures the import's checks query (a running total that falls): a note lets them in.
        report = import_paths(sqlite_engine, [data], now=now, imported_by="test", note="场景测试数据")
        assert report.ok, report.problem_lines()
        build.report = report  # type: ignore[attr-defined]
        directory = tmp_path / "demo"
        directory.mkdir(exist_ok=True)
        (directory / "programme.yaml").write_text(programme_yaml, encoding="utf-8")
        (directory / "rules.yaml").write_text("rules:\n" + textwrap.indent(textwrap.dedent(rules), "  "), encoding="utf-8")
        rule_set = load_rule_set(directory)

        def lights(day: str) -> list[AlertCandidate]:
            return evaluate(rule_set, load_snapshot(sqlite_engine, at(day))).candidates

        return lights

    return build


def warnings_of(found: list[AlertCandidate]) -> list[AlertCandidate]:
    return [c for c in found if c.kind == "warning"]


# --- milestones -------------------------------------------------------------------------------

ZONE_INDICATOR = "代码,名称,计量单位,类型,责任单位\nzones,新创建省级现代服务业创新发展区,个,累计值,fgj\n"
MILESTONE_RULE = """\
- id: zones_milestone
  kind: milestone
  title: “{subject}”{period}目标未完成
  source: 2023年争创省级现代服务业创新发展区1个。
  indicators: [zones]
  notify: both
"""


def test_a_2023_milestone_gives_no_light_in_march_and_reminds_a_month_before(scenario: Scenario) -> None:
    lights = scenario(MILESTONE_RULE, indicators=ZONE_INDICATOR,
                      targets="指标,年度,数值,目标类型,完成时限\nzones,2023,1,节点,2023年底前\n",
                      observations="指标,期间,数值\nzones,2023-01,0\nzones,2023-02,0\n")
    assert lights("2023-03-15") == [], "one zone due by December is not a monthly pace"
    assert lights("2023-07-15") == []
    reminder, = lights("2023-12-01")
    assert (reminder.kind, reminder.level, reminder.period) == ("reminder", "blue", "2023/T-30")


def test_a_milestone_passed_unmet_is_red_once_december_figures_are_in(scenario: Scenario) -> None:
    lights = scenario(MILESTONE_RULE, indicators=ZONE_INDICATOR,
                      targets="指标,年度,数值,目标类型,完成时限\nzones,2023,1,节点,2023年底前\n",
                      observations="指标,期间,数值\nzones,2023-11,0\nzones,2023-12,0\n")
    red, = warnings_of(lights("2024-01-15"))
    assert (red.level, red.period, red.details["stage"]) == ("red", "2023", "missed")
    assert "zb" in red.notify_units, "the unit of kind 专班 is the working group"
    assert red.details["shape"] == "milestone" and red.details["due"] == "2023-12-31"


def test_a_milestone_met_gives_no_light(scenario: Scenario) -> None:
    lights = scenario(MILESTONE_RULE, indicators=ZONE_INDICATOR,
                      targets="指标,年度,数值,目标类型\nzones,2023,1,节点\n",
                      observations="指标,期间,数值\nzones,2023-12,1\n")
    assert lights("2024-01-15") == []


@pytest.mark.parametrize(("value", "lit"), [(96, False), (90, True)])
def test_96_against_100_about_is_met_and_90_is_not(scenario: Scenario, value: int, lit: bool) -> None:
    lights = scenario(MILESTONE_RULE.replace("zones", "firms"),
                      indicators="代码,名称,计量单位,类型,报送口径,责任单位\nfirms,市场主体,家,累计值,累计至今,fgj\n",
                      targets="指标,年度,数值,目标类型,表述\nfirms,2025,100,节点,左右\n",
                      observations=f"指标,期间,数值\nfirms,2025-12,{value}\n")
    assert bool(warnings_of(lights("2026-01-15"))) is lit


def test_a_rule_can_widen_the_tolerance_of_about(scenario: Scenario) -> None:
    lights = scenario(MILESTONE_RULE.replace("zones", "firms") + "  tolerance: 10\n",
                      indicators="代码,名称,计量单位,类型,报送口径,责任单位\nfirms,市场主体,家,累计值,累计至今,fgj\n",
                      targets="指标,年度,数值,目标类型,表述\nfirms,2025,100,节点,左右\n",
                      observations="指标,期间,数值\nfirms,2025-12,90\n")
    assert warnings_of(lights("2026-01-15")) == [], "90 is within ±10 % of 100左右"


@pytest.mark.parametrize(("value", "lit"), [(250, True), (251, False)])
def test_250_against_more_than_250_is_not_met(scenario: Scenario, value: int, lit: bool) -> None:
    lights = scenario(MILESTONE_RULE.replace("zones", "firms"),
                      indicators="代码,名称,计量单位,类型,报送口径,责任单位\nfirms,新增规上服务业企业,家,累计值,累计至今,fgj\n",
                      targets="指标,年度,数值,目标类型,表述,完成时限\nfirms,2027,250,节点,超过,2027-12-31\n",
                      observations=f"指标,期间,数值\nfirms,2027-12,{value}\n")
    assert bool(warnings_of(lights("2028-01-15"))) is lit


def test_a_soft_milestone_missed_is_yellow_not_red(scenario: Scenario) -> None:
    lights = scenario(MILESTONE_RULE, indicators=ZONE_INDICATOR,
                      targets="指标,年度,数值,目标类型,力度\nzones,2023,1,节点,力争\n",
                      observations="指标,期间,数值\nzones,2023-12,0\n")
    missed, = warnings_of(lights("2024-01-15"))
    assert missed.level == "yellow" and missed.details["strength"] == "soft"


# --- running totals and pace ------------------------------------------------------------------

PACE_RULE = """\
- id: training_pace
  kind: pace
  title: “{subject}”完成进度滞后于序时进度
  source: 开展从业人员培训。
  indicators: [training]
  yellow_gap: 10
"""
TRAINING = "代码,名称,计量单位,类型,责任单位\ntraining,服务业从业人员培训,人次,累计值,rsj\n"
RUNNING_TOTALS = "指标,期间,数值\n" + "".join(f"training,2023-{m:02d},{500 * m}\n" for m in range(1, 7))


def test_a_running_total_is_not_summed(scenario: Scenario) -> None:
    # 500, 1,000 … 3,000 by June (本年累计): 3,000 of 12,000 is 25 % against 50 % — red, not "met early".
    lights = scenario(PACE_RULE, indicators=TRAINING, targets="指标,年度,数值\ntraining,2023,12000\n",
                      observations=RUNNING_TOTALS)
    red, = warnings_of(lights("2023-07-15"))
    assert red.level == "red" and red.value == 3000
    assert red.details["completion"] == 25.0 and red.details["time_progress"] == 50.0


def test_monthly_amounts_are_added_when_the_indicator_says_so(scenario: Scenario) -> None:
    lights = scenario(PACE_RULE, indicators="代码,名称,计量单位,类型,报送口径,责任单位\ntraining,服务业从业人员培训,人次,累计值,当月值,rsj\n",
                      targets="指标,年度,数值\ntraining,2023,12000\n", observations=RUNNING_TOTALS)
    assert warnings_of(lights("2023-07-15")) == [], "10,500 of 12,000 added up is ahead of pace"


def test_a_soft_target_far_behind_is_yellow_never_red(scenario: Scenario) -> None:
    lights = scenario(PACE_RULE, indicators=TRAINING, targets="指标,年度,数值,力度\ntraining,2023,12000,力争\n",
                      observations=RUNNING_TOTALS)
    lit, = warnings_of(lights("2023-07-15"))
    assert lit.level == "yellow", "力争: 25 % against 50 % is far behind, and still yellow"


def test_expected_counts_are_whole_and_four_a_year_is_not_lit_in_february(scenario: Scenario) -> None:
    lights = scenario(PACE_RULE.replace("training", "projects"),
                      indicators="代码,名称,计量单位,类型,责任单位\nprojects,服务业重大项目开工,个,累计值,fgj\n",
                      targets="指标,年度,数值\nprojects,2023,4\n",
                      observations="指标,期间,数值\nprojects,2023-01,0\nprojects,2023-02,0\nprojects,2023-03,0\n")
    assert lights("2023-02-15") == [], "nothing is expected before the first whole project is due (4 × 1/12 < 1)"
    behind, = warnings_of(lights("2023-04-15"))
    assert behind.expected == 1.0, "one whole project by March, never 0.08个 or 1.33个"


def test_a_programme_end_target_paced_is_labelled_as_derived(scenario: Scenario) -> None:
    lights = scenario(PACE_RULE.replace("yellow_gap: 10", "target: final\n  yellow_gap: 10"),
                      indicators=TRAINING, targets="指标,年度,数值\ntraining,期末,50000\n",
                      observations="指标,期间,数值\ntraining,2023-06,1000\n")
    lit, = warnings_of(lights("2023-07-15"))
    assert lit.period == "final" and lit.details["derived"] is True
    assert lit.details["derived_how"].startswith("按规划期序时进度测算")
    assert "年度目标" not in lit.details["derived_how"]


def test_a_forecast_warns_in_september_with_the_projected_share(scenario: Scenario) -> None:
    rule = """\
    - id: training_forecast
      kind: forecast
      title: “{subject}”年度目标预计难以完成
      source: 开展从业人员培训。
      indicators: [training]
    """
    lights = scenario(rule, indicators=TRAINING, targets="指标,年度,数值\ntraining,2023,12000\n",
                      observations="指标,期间,数值\ntraining,2023-08,6560\n")
    warned, = warnings_of(lights("2023-09-15"))
    assert warned.details["forecast"]["percent"] == 82.0 and warned.details["forecast"]["method"] == "linear"
    assert warned.title.endswith("（按当前进度，预计年底完成82%）")


def test_a_forecast_follows_last_years_monthly_profile(scenario: Scenario) -> None:
    rule = """\
    - id: training_forecast
      kind: forecast
      title: “{subject}”年度目标预计难以完成
      source: 开展从业人员培训。
      indicators: [training]
    """
    # Last year half the year's training happened by August (5,000 of 10,000): 6,560 now projects 13,120.
    lights = scenario(rule, indicators=TRAINING, targets="指标,年度,数值\ntraining,2023,12000\n",
                      observations="指标,期间,数值\ntraining,2022-08,5000\ntraining,2022-12,10000\ntraining,2023-08,6560\n")
    assert warnings_of(lights("2023-09-15")) == []


# --- lists ------------------------------------------------------------------------------------

PROJECTS = """\
代码,名称,类别,级别,总投资,责任单位
p1,物流中心,战略支撑型,省级,20,fgj
p2,数字港,战略支撑型,省级,10,fgj
p3,人力资源产业园,战略支撑型,市级,5,fgj
p4,文旅街区,生活美好型,省级,40,fgj
"""


def test_counts_and_sums_over_the_project_list_by_category(scenario: Scenario) -> None:
    rules = """\
    - id: strategic_count
      kind: threshold
      title: 战略支撑型项目仅{value}个
      source: 其中战略支撑型项目4个以上、投资超过35亿元。
      projects: {category: 战略支撑型}
      aggregate: count
      at_least: 4
    - id: strategic_investment
      kind: threshold
      title: 战略支撑型项目总投资{value}亿元
      source: 其中战略支撑型项目4个以上、投资超过35亿元。
      projects: {category: 战略支撑型}
      aggregate: total_investment
      more_than: 35
    - id: provincial_rolling
      kind: threshold
      title: 本年推进省级项目{value}个
      source: 每年滚动推进4个以上省级重大服务业项目。
      projects: {level: 省级, in_year: true}
      aggregate: count
      at_least: 2
    """
    lights = scenario(rules, indicators=ZONE_INDICATOR, projects=PROJECTS,
                      project_plans="项目,年度,计划投资\np1,2023,2\np4,2023,3\n",
                      project_investment="项目,期间,数值\np2,2023-03,0.5\n")
    found = {c.rule.split(".")[1]: c for c in warnings_of(lights("2023-07-15"))}
    assert found["strategic_count"].value == 3 and found["strategic_count"].subject_type == "project_list"
    assert found["strategic_investment"].value == 35, "35 is not 超过35"
    assert "provincial_rolling" not in found, "p1, p2 and p4 are under way this year: 3 ≥ 2"


# --- when a figure is known -------------------------------------------------------------------


def test_a_replay_does_not_see_june_figures_before_they_are_due(scenario: Scenario) -> None:
    lights = scenario(PACE_RULE, indicators=TRAINING, targets="指标,年度,数值\ntraining,2023,12000\n",
                      observations="指标,期间,数值\ntraining,2023-05,5000\ntraining,2023-06,1000\n",
                      now=dt.datetime(2024, 3, 1, tzinfo=dt.UTC))
    assert warnings_of(lights("2023-07-03")) == [], "on 3 July only May's 5,000 of 12,000 (5/12) is known"
    assert warnings_of(lights("2023-07-11"))[0].value == 1000, "June's figure was due on 10 July"


def test_a_figure_is_visible_from_its_reporting_date(scenario: Scenario) -> None:
    lights = scenario(PACE_RULE, indicators=TRAINING, targets="指标,年度,数值\ntraining,2023,12000\n",
                      observations="指标,期间,数值,报送日期\ntraining,2023-05,5000,2023-06-05\ntraining,2023-06,1000,2023-07-20\n",
                      now=dt.datetime(2024, 3, 1, tzinfo=dt.UTC))
    assert warnings_of(lights("2023-07-15")) == [], "reported on 20 July: not known on the 15th"
    assert warnings_of(lights("2023-07-21"))[0].value == 1000


def test_a_falling_running_total_is_an_import_warning(scenario: Scenario) -> None:
    scenario(PACE_RULE, indicators=TRAINING, observations="指标,期间,数值\ntraining,2023-05,5000\ntraining,2023-06,1000\n")
    warnings = scenario.report.warnings  # type: ignore[attr-defined]
    assert len(warnings) == 1 and warnings[0].row == 3  # the 2023-06 row
    assert "小于2023年5月的 5,000：累计数不应下降" in warnings[0].message


# --- the working group ------------------------------------------------------------------------


def test_no_working_group_is_a_check_error(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    directory.mkdir()
    (directory / "programme.yaml").write_text("programme: demo\n", encoding="utf-8")
    rule_set = load_rule_set(directory)
    errors = check_against_store(rule_set, set(), {"fgj"}, working_group_codes=set())
    assert len(errors) == 1 and "专班" in errors[0].message
    assert check_against_store(rule_set, set(), {"fgj", "zb2"}, working_group_codes={"zb2"}) == []


# --- the bundled Lucheng example --------------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent


def test_the_lucheng_innovation_zones_give_no_light_in_march_and_are_red_in_january_when_unmet(
        tmp_path: Path, sqlite_engine: Engine) -> None:
    # "2023年争创省级现代服务业创新发展区1个" (附件1): one result due by the end of 2023.
    report = import_paths(sqlite_engine, [REPO / "examples" / "lucheng-2023"], now=IMPORTED, imported_by="test")
    assert report.ok, report.problem_lines()
    rule_set = load_rule_set(REPO / "rules" / "lucheng")

    def zone_lights(day: str) -> list[AlertCandidate]:
        found = evaluate(rule_set, load_snapshot(sqlite_engine, at(day))).candidates
        return [c for c in found if "innovation_zones" in c.subject and c.kind == "warning"]

    assert zone_lights("2023-03-15") == []
    unmet = tmp_path / "observations-unmet.csv"
    unmet.write_text("指标,期间,数值\n" + "".join(f"{code},2023-{m:02d},0\n" for code in (
        "provincial_innovation_zones", "municipal_innovation_zones") for m in range(1, 13)), encoding="utf-8")
    assert import_paths(sqlite_engine, [unmet], now=IMPORTED, imported_by="test").ok
    assert zone_lights("2023-03-15") == []
    lit = {c.subject: c.level for c in zone_lights("2024-01-15")}
    assert lit.get("provincial_innovation_zones") == "red" and lit.get("municipal_innovation_zones") == "red"


def test_a_light_decided_on_whole_counts_says_so(scenario: Scenario) -> None:
    """13 a year, 6 by July: 46.15% against 58.33% is 12 points behind (red by the percentages), but 7 whole
    items are due and 6 are done, one of 13 (7.7 points): yellow. The notice must say which basis decided."""
    lights = scenario(PACE_RULE.replace("training", "projects"),
                      indicators="代码,名称,计量单位,类型,责任单位\nprojects,服务业重大项目开工,个,累计值,fgj\n",
                      targets="指标,年度,数值\nprojects,2023,13\n",
                      observations="指标,期间,数值\n" + "".join(f"projects,2023-{m:02d},{min(m, 6)}\n" for m in range(1, 8)))
    lit, = warnings_of(lights("2023-08-15"))
    assert lit.level == "yellow" and lit.expected == 7.0 and lit.value == 6.0
    assert lit.details["whole_basis"] is True
    assert lit.details["time_progress"] - lit.details["completion"] >= 10, "the percentages alone would say red"


def test_a_light_the_percentages_agree_with_carries_no_whole_number_basis(scenario: Scenario) -> None:
    lights = scenario(PACE_RULE.replace("training", "projects"),
                      indicators="代码,名称,计量单位,类型,责任单位\nprojects,服务业重大项目开工,个,累计值,fgj\n",
                      targets="指标,年度,数值\nprojects,2023,4\n",
                      observations="指标,期间,数值\nprojects,2023-01,0\nprojects,2023-02,0\nprojects,2023-03,0\n")
    behind, = warnings_of(lights("2023-04-15"))
    assert "whole_basis" not in behind.details
