"""`duban check` is the gate (issue 15, item 3): every value evaluation would reject is rejected when the
rules are loaded — by `duban check` and by a reload in the running service — as a Chinese
`file:line:column` error, never a traceback, and an alias bomb is refused before it can expand.

Each case below was found on the main branch of 2026-11-30: the rule passed `duban check` and then broke
evaluation, or `duban check` itself crashed.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from duban.engine.loader import RuleSetInvalid, load_rule_set

from .support import LUCHENG_RULES, assert_no_traceback, duban, duban_env

CHINESE = re.compile(r"[\u4e00-\u9fff]")
ORIGINAL = (LUCHENG_RULES / "investment.yaml").read_text(encoding="utf-8")


def _rules_with(tmp_path: Path, old: str, new: str, *, file: str = "investment.yaml") -> Path:
    directory = _copy(tmp_path)
    path = directory / file
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return directory


def _copy(tmp_path: Path) -> Path:
    directory = tmp_path / "lucheng"
    shutil.copytree(LUCHENG_RULES, directory, ignore=shutil.ignore_patterns("tests"))
    shutil.copy(LUCHENG_RULES.parent / "calendar-overrides.yaml", tmp_path / "calendar-overrides.yaml")
    return directory


def _refused(directory: Path, root: Path) -> list[str]:
    with pytest.raises(RuleSetInvalid) as caught:
        load_rule_set(directory, display_root=root)
    lines = [str(e) for e in caught.value.errors]
    for line in lines:
        assert re.match(r"^lucheng/\w+\.yaml:\d+:\d+: ", line), line
        assert CHINESE.search(line), line
    return lines


# (what the rule file says, the text replaced, its replacement, a word the error must contain)
CASES = [
    ("at_least: .nan", "at_least: 2/3", "at_least: .nan", "at_least"),
    ("at_least: -.inf", "at_least: 2/3", "at_least: -.inf", "at_least"),
    ("at_least: .inf", "at_least: 2/3", "at_least: .inf", "at_least"),
    ("yellow_margin: .nan", "level: red", "yellow_margin: .nan", "yellow_margin"),
    ("yellow_margin: 1e400", "level: red", "yellow_margin: 1e400", "yellow_margin"),
    ("at_least: 1/0", "at_least: 2/3", "at_least: 1/0", "除数为零"),
    ("at_least: 2/(1-1)", "at_least: 2/3", "at_least: 2/(1-1)", "除数为零"),
    ("a 400-digit integer bound", "at_least: 2/3", "at_least: " + "9" * 400, "位的整数"),
    ("a 400-digit literal in an expression", "at_least: 2/3", "at_least: '1 + " + "9" * 180 + "'", "数字过大"),
    ("repeat: 99999999999d", "repeat: 7d", "repeat: 99999999999d", "repeat"),
    ("repeat: 0d", "repeat: 7d", "repeat: 0d", "repeat"),
    ("a bound nested 10,000 deep", "at_least: 2/3", "at_least: '" + "(" * 10_000 + "1" + ")" * 10_000 + "'",
     "at_least"),
    ("a bound nested 30 deep", "at_least: 2/3", "at_least: '" + "(" * 30 + "1" + ")" * 30 + "'", "嵌套过深"),
    ("a bound of 5,000 minus signs", "at_least: 2/3", "at_least: '" + "-" * 5000 + "1'", "at_least"),
    ("a YAML list nested 10,000 deep", "at_least: 2/3", "at_least: " + "[" * 10_000 + "1" + "]" * 10_000,
     "嵌套层级过深"),
]


@pytest.mark.parametrize(("what", "old", "new", "word"), CASES, ids=[c[0] for c in CASES])
def test_gate_a_value_evaluation_cannot_use_is_refused_at_file_line_column(tmp_path: Path, ledger, what: str,
                                                                            old: str, new: str, word: str) -> None:
    lines = _refused(_rules_with(tmp_path, old, new), tmp_path)
    assert any(word in line and line.startswith("lucheng/investment.yaml:") for line in lines), lines
    ledger("gate", inputs=1, faults=1)


DUE_DAYS = [("due_day: 40", 40), ("due_day: 0", 0), ("due_day: 32", 32), ("due_day: -1", -1)]


@pytest.mark.parametrize(("what", "day"), DUE_DAYS, ids=[d[0] for d in DUE_DAYS])
def test_gate_a_due_day_outside_1_to_31_is_refused(tmp_path: Path, ledger, what: str, day: int) -> None:
    lines = _refused(_rules_with(tmp_path, "due_day: 10", f"due_day: {day}", file="reporting.yaml"), tmp_path)
    assert any("due_day" in line and "1 到 31" in line for line in lines), lines
    ledger("gate", inputs=1, faults=1)


def test_gate_due_days_1_and_31_still_load(tmp_path: Path) -> None:
    for day in (1, 31):
        directory = _rules_with(tmp_path / str(day), "due_day: 10", f"due_day: {day}", file="reporting.yaml")
        assert load_rule_set(directory, display_root=tmp_path)


def _alias_bomb(ways: int = 9, depth: int = 8) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, depth + 1):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * ways) + "]")
    return "\n".join(lines)


def test_gate_an_alias_bomb_is_refused_in_a_second_without_expanding(tmp_path: Path, ledger) -> None:
    # 2.6 KB that took `duban check` 97 s and 12.6 GB: nine-way aliases eight deep used as a rule's kind.
    bomb = _alias_bomb()
    directory = _copy(tmp_path)
    text = ORIGINAL.replace("rules:\n", "x-bomb:\n" + "\n".join("  " + line for line in bomb.splitlines()) + "\nrules:\n", 1)
    text = text.replace("kind: threshold", "kind: *a8", 1)
    (directory / "investment.yaml").write_text(text, encoding="utf-8")
    started = time.monotonic()
    lines = _refused(directory, tmp_path)
    elapsed = time.monotonic() - started
    assert elapsed < 5, elapsed
    assert any("别名" in line for line in lines), lines
    assert all(len(line) < 400 for line in lines), max(map(len, lines))
    ledger("gate", inputs=1, faults=1, note=f"alias bomb ({len(text.encode()):,} bytes): refused in {elapsed:.2f} s")


def test_gate_duban_check_prints_chinese_errors_and_no_traceback(tmp_path: Path, ledger) -> None:
    directory = _rules_with(tmp_path, "at_least: 2/3", "at_least: '" + "(" * 10_000 + "1" + ")" * 10_000 + "'")
    text = (directory / "investment.yaml").read_text(encoding="utf-8")
    text = text.replace("level: red", "yellow_margin: .nan", 1).replace("repeat: 7d", "repeat: 99999999999d", 1)
    (directory / "investment.yaml").write_text(text, encoding="utf-8")
    done = duban("check", str(directory), env=duban_env(str(tmp_path / "unused.db")))
    assert done.returncode == 1, done.stdout + done.stderr
    assert_no_traceback(done.stdout, done.stderr)
    errors = [line for line in done.stderr.splitlines() if line.startswith(str(directory))
              or "investment.yaml:" in line]
    assert len(errors) >= 3, done.stderr
    assert "规则检查未通过" in done.stderr
    ledger("gate", inputs=1, faults=3)


def test_gate_an_alias_bomb_in_the_calendar_file_is_refused_too(tmp_path: Path, ledger) -> None:
    directory = _copy(tmp_path)
    bomb = _alias_bomb()
    (tmp_path / "calendar-overrides.yaml").write_text(
        "x-bomb:\n" + "\n".join("  " + line for line in bomb.splitlines()) + "\n2027:\n  holidays: *a8\n",
        encoding="utf-8")
    started = time.monotonic()
    with pytest.raises(RuleSetInvalid) as caught:
        load_rule_set(directory, display_root=tmp_path)
    elapsed = time.monotonic() - started
    text = "\n".join(str(e) for e in caught.value.errors)
    assert elapsed < 5 and "别名" in text and len(text) < 1000, (elapsed, text[:500])
    ledger("gate", inputs=1, faults=1)
