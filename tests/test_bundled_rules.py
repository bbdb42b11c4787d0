"""The bundled rule sets (rules/lucheng, rules/huzhou) load, are covered by their YAML rule tests, and pass them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from duban.app.ruletest import run_rule_test_files
from duban.cli import main
from duban.engine.loader import load_rule_set
from duban.engine.schema import PROGRAMME_SCHEMA_FILE, RULE_SCHEMA_FILE, programme_schema, render, rule_schema

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules"
PROGRAMMES = ("lucheng", "huzhou")
TEST_FILES = sorted(p for name in PROGRAMMES for p in (RULES / name / "tests").glob("*.yaml"))


def test_duban_check_passes_on_the_bundled_rules() -> None:
    result = CliRunner().invoke(main, ["check", str(RULES)])
    assert result.exit_code == 0, result.output
    assert "规则检查通过：" in result.output


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_yaml_rule_tests_pass(path: Path) -> None:
    outcome = run_rule_test_files([path])
    assert outcome.ok, "\n".join(outcome.lines())
    assert outcome.passed, f"{path} ran no cases"


@pytest.mark.parametrize("programme", PROGRAMMES)
def test_every_bundled_rule_has_a_case_that_fires_and_one_that_does_not(programme: str) -> None:
    rule_set = load_rule_set(RULES / programme)
    fires: set[str] = set()
    silent: set[str] = set()
    for path in (RULES / programme / "tests").glob("*.yaml"):
        for case in YAML(typ="safe").load(path.read_text(encoding="utf-8"))["tests"]:
            fires |= {str(e["rule"]) for e in case.get("expect") or [] if "rule" in e}
            silent |= {str(e["rule"]) for e in case.get("absent") or [] if "rule" in e}
    ids = {rule.short_id for rule in rule_set.rules}
    assert ids - fires == set(), f"rules without a firing case: {sorted(ids - fires)}"
    assert ids - silent == set(), f"rules without a non-firing case: {sorted(ids - silent)}"


def test_a_wrong_expectation_fails_the_rule_test(tmp_path: Path) -> None:
    # The runner must be able to fail: the same data with the light reversed.
    folder = tmp_path / "lucheng" / "tests"
    folder.mkdir(parents=True)
    (tmp_path / "calendar-overrides.yaml").write_text((RULES / "calendar-overrides.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    for item in (RULES / "lucheng").glob("*.yaml"):
        (tmp_path / "lucheng" / item.name).write_text(item.read_text(encoding="utf-8"), encoding="utf-8")
    source = (RULES / "lucheng" / "tests" / "investment.yaml").read_text(encoding="utf-8")
    wrong = source.replace("{rule: service_investment_share, level: red,", "{rule: service_investment_share, level: yellow,")
    assert wrong != source
    (folder / "investment.yaml").write_text(wrong, encoding="utf-8")
    outcome = run_rule_test_files([folder / "investment.yaml"])
    assert [name for name, _ in outcome.failed] == [
        f"{folder / 'investment.yaml'}: service investment below 2/3 in June lights red for 区发改局 on the July dispatch"
    ]


def test_the_committed_rule_schema_is_the_generated_one() -> None:
    assert (RULES / RULE_SCHEMA_FILE).read_text(encoding="utf-8") == render(rule_schema()), \
        "rules/schema.json is stale: run python -m engine.schema rules"
    assert (RULES / PROGRAMME_SCHEMA_FILE).read_text(encoding="utf-8") == render(programme_schema())


def test_the_schema_accepts_every_bundled_file_and_rejects_a_misspelt_key() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    rules = jsonschema.Draft202012Validator(json.loads((RULES / RULE_SCHEMA_FILE).read_text(encoding="utf-8")))
    programme = jsonschema.Draft202012Validator(json.loads((RULES / PROGRAMME_SCHEMA_FILE).read_text(encoding="utf-8")))
    for name in PROGRAMMES:
        for path in (RULES / name).glob("*.yaml"):
            # Editors read YAML 1.2, where an unquoted 2023-01-02 is a string, not a date.
            document = json.loads(json.dumps(YAML(typ="safe").load(path.read_text(encoding="utf-8")), default=str))
            validator = programme if path.name == "programme.yaml" else rules
            assert [e.message for e in validator.iter_errors(document)] == [], path
    misspelt = {"rules": [{"id": "x", "kind": "threshold", "title": "t", "source": "s", "indicator": "a", "at_lest": 1}]}
    messages = [e.message for e in rules.iter_errors(misspelt)]
    assert any("at_lest" in m for m in messages)
    wrong_kind_key = {"rules": [{"id": "x", "kind": "deadline", "title": "t", "source": "s", "tasks": "all", "at_least": 1}]}
    assert list(rules.iter_errors(wrong_kind_key)), "at_least is not a deadline key"


def test_a_rule_test_file_with_an_alias_bomb_is_refused_at_its_line_without_expanding(tmp_path: Path) -> None:
    # Rule test files pass the same gate as rule files: an alias is refused before anything is built.
    import time

    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]" for n in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\ntests: *a8\n", encoding="utf-8")
    started = time.monotonic()
    outcome = run_rule_test_files([path])
    assert time.monotonic() - started < 5
    assert not outcome.ok
    problems = [line for _name, lines_ in outcome.failed for line in lines_]
    assert any(f"{path}:1:" in line and "别名" in line for line in problems), problems


_SHAPES = {"pace": "年度", "milestone": "节点"}


def _figures(value: float) -> set[str]:
    """How a document may write a target figure: 2000, 2.331, 1.2万 (12000), 2/3 (66.67)."""
    shown = {f"{value:g}", f"{value:.10g}"}
    if value >= 10000:
        shown.add(f"{value / 10000:g}万")
    if abs(value - 66.67) < 0.01:
        shown.add("2/3")
    return shown


@pytest.mark.parametrize("programme,example", [("lucheng", "lucheng-2023"), ("huzhou", "huzhou-2023")])
def test_each_target_is_cited_by_the_sentence_that_states_it(programme: str, example: str) -> None:
    """A light on a target quotes the document's sentence with that target's figure, not a mechanism sentence
    ("编制主要指标进度表……") nor another target's: 存贷款新增额 cites "……新增超2000亿元". Per-unit shares
    are checked where the document states them per unit (Lucheng's 附件1); Huzhou's county splits are the
    example's own and have no sentence of their own."""
    import csv

    rule_set = load_rule_set(RULES / programme)
    folder = ROOT / "examples" / example
    kinds = {row["code"]: row["kind"] for row in csv.DictReader((folder / "indicators.csv").open(encoding="utf-8"))}
    targets = list(csv.DictReader((folder / "targets.csv").open(encoding="utf-8")))
    missing: list[str] = []
    for rule in rule_set.rules:
        if rule.kind not in ("pace", "milestone") or rule.selector.subject_type == "project":
            continue
        shape = "期末" if rule.kind == "pace" and rule.target == "final" else _SHAPES[rule.kind]
        for row in targets:
            code, unit = row["indicator"], row["unit"]
            if row["shape"] != shape or code not in kinds or not rule.selector.matches(code, kinds[code]):
                continue
            if bool(unit) != rule.per_unit or (unit and programme != "lucheng"):
                continue
            if rule.kind == "pace" and kinds[code] != "cumulative":
                continue
            source = rule.source_for(code, f"{code}@{unit}" if unit else code)
            if not any(figure in source for figure in _figures(float(row["value"]))):
                missing.append(f"{rule.short_id} · {code}{'@' + unit if unit else ''} {row['year']}={row['value']}: {source}")
            # Its own sentence, not the rule's bundle of every target it reads: a figure of another target
            # of the same rule may stand in it only where the rule names that sentence for both (`sources`),
            # the document stating them in one clause ("培育“品字标浙江服务”品牌企业5家以上，新增……质量奖3个").
            # Huzhou only: Lucheng's 附件1 counts (1个, 2家, 12月底前) collide with each other's figures.
            if programme != "huzhou":
                continue
            own, sentence = dict(rule.sources), re.sub(r"（[^（）]*(?:（[^（）]*）[^（）]*)*）\s*$", "", source)
            for other in targets:
                if other["indicator"] == code or other["shape"] != shape or other["unit"] != unit \
                        or float(other["value"]) == float(row["value"]) \
                        or other["indicator"] not in kinds or not rule.selector.matches(other["indicator"], kinds[other["indicator"]]):
                    continue
                if code in own and own.get(other["indicator"]) == source:
                    continue
                if any(re.search(rf"(?<![\d.]){re.escape(f)}(?![\d.])", sentence) for f in _figures(float(other["value"])) if f not in _figures(float(row["value"]))):
                    missing.append(f"{rule.short_id} · {code} cites {other['indicator']}'s {other['value']} too: {source}")
    assert not missing, "\n".join(sorted(set(missing)))


@pytest.mark.parametrize("programme", PROGRAMMES)
def test_no_citation_has_text_after_its_closing_quote_but_its_section(programme: str) -> None:
    """“……企业超过800家。”（二（二））；到2027年，累计培育……（三（二）2） reads as if the second sentence were the
    notice's own words: every source a notice may cite is one quotation and then where it stands."""
    from duban.notifiers.render import cite_source

    rule_set = load_rule_set(RULES / programme)
    document = rule_set.settings.document
    wrong: list[str] = []
    for rule in rule_set.rules:
        for key, source in (("", rule.source), *rule.sources):
            cited = cite_source(source, document)
            if not re.fullmatch(r"[^“”]*“[^“”]*(?:“[^“”]*”[^“”]*)*”（[^“”（）；]*(?:（[^（）]*）[^“”（）；]*)*）", cited):
                wrong.append(f"{rule.short_id}{' · ' + key if key else ''}: {cited}")
    assert not wrong, "\n".join(wrong)
