"""Numbers and bounds in rule files mutated at random (hypothesis, derandomized): whatever `duban check`
accepts evaluates (issue 15, items 3 and 8).

Each case rewrites the numeric settings of one bundled Lucheng rule file (bounds, margins, gaps, due
days, reminder days, repeat intervals) with values drawn from the edges: NaN and infinities, 400-digit
integers, zero divisors, deep parentheses, negative and absurd durations, expressions naming
indicators. The loader must answer with Chinese `file:line:column` errors, or the rule set must
evaluate on the Lucheng example store without an exception: nothing passes the gate and then breaks a
round.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from duban.engine.evaluate import Evaluator
from duban.engine.loader import RuleSetInvalid, load_rule_set
from duban.store.db import create_all, make_engine
from duban.store.importer import import_paths
from duban.store.snapshot import load_snapshot

from .support import LUCHENG_EXAMPLE, LUCHENG_RULES, RULES

CASES = 200
FILES = ["investment.yaml", "reporting.yaml", "talent.yaml", "tasks.yaml", "praise.yaml"]
ORIGINAL = {name: (LUCHENG_RULES / name).read_text(encoding="utf-8") for name in FILES}
KEYS = ("at_least", "at_most", "yellow_margin", "resolve_margin", "yellow_gap", "praise_margin", "margin",
        "due_day", "remind_days_before", "escalate_after_days", "remind_days", "repeat")
SETTING = re.compile(r"^(\s+)(" + "|".join(KEYS) + r"): .*$", re.M)
CHINESE = re.compile(r"[\u4e00-\u9fff]")
EDGES = [".nan", ".NaN", ".inf", "-.inf", "+.inf", "1e308", "-1e308", "1.7976931348623157e308", "1e-320", "0", "-0",
         "-1", "1/0", "0/0", "2/(1-1)", "1/3", "100%", "-50%", "2/3", "1e12", "1000000000001", "9" * 400,
         "-" + "9" * 400, "'" + "(" * 40 + "1" + ")" * 40 + "'", "'" + "-" * 300 + "1'", "'1 + 2 * 3 / 4'",
         "fixed_asset_investment_growth - 1", "'service_investment_growth / (1 - 1)'", "'service_investment_growth * 1e308'",
         "[7, 1]", "[0]", "[99999]", "[-1]", "[]", "7d", "0d", "99999999999d", "1h", "2w", "999999w", "never", "40",
         "31", "1", "32", "true", "null", "'x'"]


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, str]:
    name = draw(st.sampled_from(FILES))
    text = ORIGINAL[name]
    settings_found = list(SETTING.finditer(text))
    chosen = draw(st.lists(st.sampled_from(settings_found), min_size=1, max_size=2)) if settings_found else []
    for match in sorted(set(chosen), key=lambda m: -m.start()):
        value = draw(st.one_of(
            st.sampled_from(EDGES),
            st.sampled_from(EDGES),
            st.integers(-3, 35).map(str),  # ordinary values too, so that many cases pass and are evaluated
            st.floats(-200, 200, allow_nan=False).map(lambda x: f"{x:.2f}"),
            st.floats(allow_nan=True, allow_infinity=True).map(repr),
            st.integers(min_value=-(10**30), max_value=10**30).map(str),
            st.integers(0, 60).map(lambda depth: "'" + "(" * depth + "1 / 3" + ")" * depth + "'"),
        ))
        value = value.replace("nan", ".nan").replace("inf", ".inf") if value in ("nan", "inf", "-inf") else value
        text = text[:match.start()] + f"{match.group(1)}{match.group(2)}: {value}" + text[match.end():]
    return name, text


def test_fuzz_bounds_what_the_gate_accepts_evaluates(tmp_path: Path, ledger) -> None:
    shutil.copy(RULES / "calendar-overrides.yaml", tmp_path / "calendar-overrides.yaml")
    directory = tmp_path / "lucheng"
    directory.mkdir()
    engine = make_engine("sqlite://")
    create_all(engine)
    assert import_paths(engine, [LUCHENG_EXAMPLE], now=dt.datetime(2023, 7, 1, tzinfo=dt.UTC),
                        imported_by="reliability").ok
    snapshots = [load_snapshot(engine, dt.datetime(2023, month, 15, 2, tzinfo=dt.UTC)) for month in (3, 7, 12)]
    outcomes = {"refused": 0, "evaluated": 0, "rounds": 0}

    @settings(max_examples=CASES, derandomize=True, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(mutated())
    def case(mutation: tuple[str, str]) -> None:
        name, text = mutation
        for path in directory.iterdir():
            path.unlink()
        shutil.copy(LUCHENG_RULES / "programme.yaml", directory / "programme.yaml")
        (directory / name).write_text(text, encoding="utf-8")
        try:
            rule_set = load_rule_set(directory, display_root=tmp_path)
        except RuleSetInvalid as invalid:
            outcomes["refused"] += 1
            for error in invalid.errors:
                assert error.file in (f"lucheng/{name}", "lucheng/programme.yaml"), error
                assert error.line >= 1 and error.column >= 1 and CHINESE.search(error.message), error
            return
        outcomes["evaluated"] += 1
        evaluator = Evaluator(rule_set)
        try:
            for snapshot in snapshots:  # must not raise: the gate let it through
                result = evaluator.evaluate(snapshot)
                for candidate in result.candidates:
                    candidate.to_json()
                outcomes["rounds"] += 1
        finally:
            evaluator.close()

    case()
    total = outcomes["refused"] + outcomes["evaluated"]
    ledger("fuzz-bounds", inputs=total, faults=total, rounds=outcomes["rounds"],
           note=f"numbers and bounds: {outcomes['refused']} refused at file:line, {outcomes['evaluated']} accepted "
                f"and evaluated without an error ({outcomes['rounds']} evaluations)")
    assert total >= CASES and outcomes["refused"] > CASES // 4 and outcomes["evaluated"] > CASES // 20
