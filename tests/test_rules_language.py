"""The rule language: every class of bad input is reported as `file:line:column: 中文`, all at once;
bounds mean what docs/rules.md says; the bound grammar cannot run code."""

from __future__ import annotations

import ast
import datetime as dt
import json
import re
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from duban.cli import main
from duban.engine.expr import ExpressionError, parse_bound
from duban.store.db import create_all, make_engine
from duban.store.importer import import_paths

PROGRAMME = """\
programme: demo
working_group: zhuanban
"""

GOOD_RULE = """\
  - id: share_floor
    kind: threshold
    title: 服务业投资占比低于2/3
    source: 服务业投资占全区固定资产投资比重不低于 2/3。
    indicator: service_investment_share
    at_least: 2/3
"""

ERROR_LINE = re.compile(r"^(?P<file>[^:\n]+\.yaml):(?P<line>\d+):(?P<column>\d+): (?P<message>.*[\u4e00-\u9fff].*)$")


def rule_set(tmp_path: Path, files: dict[str, str], name: str = "demo") -> Path:
    directory = tmp_path / name
    directory.mkdir()
    (directory / "programme.yaml").write_text(PROGRAMME, encoding="utf-8")
    for file_name, text in files.items():
        (directory / file_name).write_text(textwrap.dedent(text), encoding="utf-8")
    return directory


def check(directory: Path, *options: str) -> Result:
    return CliRunner().invoke(main, [*options, "check", str(directory)])


def errors_of(result: Result) -> list[tuple[str, int, int, str]]:
    found = []
    for line in result.output.splitlines():
        match = ERROR_LINE.match(line)
        if match:
            found.append((Path(match["file"]).name, int(match["line"]), int(match["column"]), match["message"]))
    return found


def only_error(tmp_path: Path, rules_text: str) -> tuple[str, int, int, str]:
    result = check(rule_set(tmp_path, {"rules.yaml": rules_text}))
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    errors = errors_of(result)
    assert len(errors) == 1, result.output
    return errors[0]


def test_a_yaml_syntax_error_is_reported_with_its_line_and_column(tmp_path: Path) -> None:
    file, line, column, message = only_error(tmp_path, "rules:\n  - id: x\n    kind: [threshold\n    title: t\n")
    assert file == "rules.yaml" and line >= 3 and column >= 1
    assert message.startswith("YAML 语法错误")


def test_an_unknown_key_suggests_the_key_meant(tmp_path: Path) -> None:
    text = "rules:\n" + GOOD_RULE.replace("at_least: 2/3", "at_lest: 2/3")
    result = check(rule_set(tmp_path, {"rules.yaml": text}))
    assert result.exit_code == 1
    typo, missing = errors_of(result)
    assert typo[1:3] == (7, 5), "the position of the misspelt key itself"
    assert "未知的键 `at_lest`" in typo[3] and "是否应为 `at_least`" in typo[3]
    assert "须有 `at_least`、`more_than` 或 `at_most` 之一" in missing[3], "the bound the typo lost is missed as well"


def test_a_value_of_the_wrong_type_names_the_field_and_the_expected_type(tmp_path: Path) -> None:
    text = """\
    rules:
      - id: task_deadline
        kind: deadline
        title: 重点任务“{subject}”
        source: 编制重点任务攻坚表。
        tasks: all
        remind_days: seven
    """
    _, line, _, message = only_error(tmp_path, text)
    assert line == 7
    assert "`remind_days` 应为非负整数列表" in message and "'seven'" in message


def test_a_bound_in_words_names_the_field_and_says_number_or_fraction(tmp_path: Path) -> None:
    text = "rules:\n" + GOOD_RULE.replace("at_least: 2/3", "at_least: two thirds")
    _, line, _, message = only_error(tmp_path, text)
    assert line == 7
    assert "`at_least`" in message and "数字" in message and "分数" in message and "'two thirds'" in message


def test_an_unknown_kind_is_an_error_with_a_suggestion(tmp_path: Path) -> None:
    text = "rules:\n" + GOOD_RULE.replace("kind: threshold", "kind: thresold").replace("    at_least: 2/3\n", "")
    _, line, _, message = only_error(tmp_path, text)
    assert line == 3
    assert "`kind`" in message and "是否应为 `threshold`" in message


def test_a_duplicate_id_across_files_points_at_the_first_definition(tmp_path: Path) -> None:
    result = check(rule_set(tmp_path, {"a.yaml": "rules:\n" + GOOD_RULE, "b.yaml": "rules:\n" + GOOD_RULE}))
    assert result.exit_code != 0
    [(file, line, _, message)] = errors_of(result)
    assert (file, line) == ("b.yaml", 2)
    assert "`share_floor` 重复" in message and "a.yaml:2" in message


def test_a_missing_required_key_is_named(tmp_path: Path) -> None:
    text = "rules:\n" + GOOD_RULE.replace("    source: 服务业投资占全区固定资产投资比重不低于 2/3。\n", "")
    _, line, _, message = only_error(tmp_path, text)
    assert line == 2
    assert "缺少必填键 `source`" in message


def test_every_error_of_a_rule_set_is_reported_at_once_with_a_non_zero_exit(tmp_path: Path) -> None:
    directory = rule_set(tmp_path, {
        "a_syntax.yaml": "rules:\n  - id: x\n    kind: [threshold\n",
        "b_typo.yaml": "rules:\n" + GOOD_RULE.replace("at_least: 2/3", "at_lest: 2/3"),
        "c_bound.yaml": "rules:\n" + GOOD_RULE.replace("share_floor", "other").replace("2/3", "two thirds"),
        "d_missing.yaml": "rules:\n" + GOOD_RULE.replace("share_floor", "third").replace("    title: 服务业投资占比低于2/3\n", ""),
    })
    result = check(directory)
    assert result.exit_code == 1
    files = sorted({file for file, *_ in errors_of(result)})
    assert files == ["a_syntax.yaml", "b_typo.yaml", "c_bound.yaml", "d_missing.yaml"]
    # the typo costs two errors: the unknown key and the missing bound
    assert len(errors_of(result)) == 5
    assert "规则检查未通过：共 5 处错误。" in result.output


# --- against the database: unknown indicator codes -------------------------------------------------


def _database(tmp_path: Path) -> str:
    data = tmp_path / "data"
    data.mkdir()
    (data / "programme.csv").write_text("code,name,start,end\ndemo,示例工程,2023-01-01,2027-12-31\n", encoding="utf-8")
    (data / "units.csv").write_text(
        "code,name,email,kind\nfgj,区发改局,fgj@example.org,department\nzhuanban,工作专班,zb@example.org,working_group\n",
        encoding="utf-8")
    (data / "indicators.csv").write_text(
        "code,name,measure,kind,units\n"
        "service_investment_share,服务业投资占比,%,level,fgj\n"
        "service_investment_growth,服务业投资增速,%,growth,fgj\n"
        "fixed_asset_investment_growth,固定资产投资增速,%,growth,fgj\n", encoding="utf-8")
    (data / "observations.csv").write_text(
        "indicator,period,value\n"
        "service_investment_share,2023-06,60\n"
        "service_investment_growth,2023-04,8.4\n"
        "fixed_asset_investment_growth,2023-04,9.9\n"
        "fixed_asset_investment_growth,2023-05,7.0\n", encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    engine = make_engine(url)
    try:
        create_all(engine)
        report = import_paths(engine, [data], now=dt.datetime(2023, 7, 1, tzinfo=dt.UTC), imported_by="test")
        assert report.ok, report.problem_lines()
    finally:
        engine.dispose()
    return url


UNKNOWN_CODE_RULE = GOOD_RULE.replace("share_floor", "typo_rule").replace(
    "indicator: service_investment_share", "indicator: service_investment_shar")


def test_an_unknown_indicator_code_is_an_error_in_check_with_a_database(tmp_path: Path) -> None:
    url = _database(tmp_path)
    directory = rule_set(tmp_path, {"rules.yaml": "rules:\n" + GOOD_RULE + UNKNOWN_CODE_RULE})
    assert check(directory).exit_code == 0, "without a database the code cannot be checked"
    result = check(directory, "--db", url)
    assert result.exit_code == 1
    [(_, line, _, message)] = errors_of(result)
    assert line == 12, "the line of the `indicator:` field, not the rule's first line"
    assert "不存在的指标代码 `service_investment_shar`" in message


def test_an_unknown_indicator_code_during_evaluate_skips_that_rule_with_a_warning(tmp_path: Path) -> None:
    url = _database(tmp_path)
    directory = rule_set(tmp_path, {"rules.yaml": "rules:\n" + GOOD_RULE + UNKNOWN_CODE_RULE})
    result = CliRunner().invoke(main, ["--db", url, "--rules", str(directory), "evaluate", "--at", "2023-07-15T09:00+08:00", "--json"])
    assert result.exit_code == 0, result.output
    assert "警告：" in result.output and "`typo_rule` 引用了未知指标 service_investment_shar，本次跳过该规则" in result.output
    candidates = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [(c["rule"], c["level"], c["threshold"]) for c in candidates] == [("demo.share_floor", "red", 66.67)]


def test_a_relative_bound_resolves_against_the_same_period_of_the_other_indicator(tmp_path: Path) -> None:
    # Service growth is known for April only; fixed-asset growth for April (9.9) and May (7.0).
    # The bound is April's 9.9 − 1 = 8.9 (same period), not May's 7.0 − 1 = 6.0.
    url = _database(tmp_path)
    rule = """\
    rules:
      - id: level_with_fixed_assets
        kind: threshold
        title: 服务业投资增速与固定资产投资增速未基本持平
        source: 确保服务业投资增速与全市固定资产投资增速基本持平。
        indicator: service_investment_growth
        at_least: fixed_asset_investment_growth - 1
    """
    directory = rule_set(tmp_path, {"rules.yaml": rule})
    result = CliRunner().invoke(main, ["--db", url, "--rules", str(directory), "evaluate", "--at", "2023-06-15T09:00+08:00", "--json"])
    assert result.exit_code == 0, result.output
    candidates = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    relative = [c for c in candidates if c["rule"] == "demo.level_with_fixed_assets"]
    assert [(c["value"], c["threshold"], c["value_period"]) for c in relative] == [(8.4, 8.9, "2023-04")]


# --- the bound grammar ------------------------------------------------------------------------------


def _no_lookup(code: str) -> float | None:
    raise AssertionError(f"no indicator should be looked up, got {code}")


def test_a_fraction_against_a_percent_indicator_is_a_ratio_two_thirds_means_66_67() -> None:
    assert parse_bound("2/3").resolve("%", _no_lookup) == pytest.approx(66.6667, abs=1e-3)


def test_a_fraction_against_a_count_stays_a_fraction() -> None:
    assert parse_bound("2/3").resolve("个", _no_lookup) == pytest.approx(0.6667, abs=1e-3)


def test_fifty_percent_is_fifty_in_a_percent_indicator_and_a_number_is_taken_as_written() -> None:
    assert parse_bound("50%").resolve("%", _no_lookup) == 50
    assert parse_bound("50％").resolve("%", _no_lookup) == 50
    assert parse_bound(8).resolve("%", _no_lookup) == 8


def test_an_expression_with_another_indicator_uses_its_value() -> None:
    bound = parse_bound("fixed_asset_investment_growth - 1")
    assert bound.references == frozenset({"fixed_asset_investment_growth"})
    figures: dict[str, float] = {"fixed_asset_investment_growth": 9.4}
    assert bound.resolve("%", lambda code: figures.get(code)) == pytest.approx(8.4)
    assert bound.resolve("%", lambda code: None) is None, "a missing comparison figure gives no bound, not zero"


@pytest.mark.parametrize("text", ["__import__('os')", "__import__('os').system('true')", "open('x')", "1; 2", "[1]", "lambda: 1"])
def test_the_grammar_refuses_code(text: str) -> None:
    with pytest.raises(ExpressionError):
        parse_bound(text)


def test_code_in_a_rule_file_is_a_bound_error_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = "rules:\n" + GOOD_RULE.replace("at_least: 2/3", f"at_least: \"__import__('os').system('touch {marker}')\"")
    _, line, _, message = only_error(tmp_path, text)
    assert line == 7 and "`at_least`" in message
    assert not marker.exists()


def test_the_bound_grammar_has_no_eval() -> None:
    source = (Path(__file__).resolve().parent.parent / "engine" / "expr.py").read_text(encoding="utf-8")
    called = {node.func.id for node in ast.walk(ast.parse(source))
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert called & {"eval", "exec", "compile", "__import__", "getattr"} == set()
