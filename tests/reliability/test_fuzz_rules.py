"""Rule files mangled at random (hypothesis, derandomized): the loader answers with a valid rule set
or with `RuleSetInvalid`, every error in Chinese at file:line:column, and never another exception.

Each case mutates one bundled Lucheng file (keys deleted, duplicated or retyped, values mangled,
the text truncated, junk bytes inserted, indentation broken) and loads it in-process next to
programme.yaml, the way `duban check` and the service load rules.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from duban.engine.calendar import WorkingCalendar
from duban.engine.loader import RuleSetInvalid, load_rule_set
from duban.engine.schedule import ScheduleError, parse_schedule

from .support import LUCHENG_RULES, RULES

CASES = 1000
FILES = sorted(p.name for p in LUCHENG_RULES.glob("*.yaml"))
ORIGINAL = {name: (LUCHENG_RULES / name).read_bytes() for name in FILES}
CHINESE = re.compile(r"[\u4e00-\u9fff]")
VALUES = ["[]", "{}", "0", "-1", "1.5e308", "true", "null", "~", "'文本'", "[1, 2]", "{a: 1}", "&anchor x",
          "*missing", "|", ">-", "!!binary AAAA", "!!python/object:os.system 'ls'", "'''", '"unterminated',
          "2023-02-30", "9999999999999999999999", "1/0", "__import__('os')", "${HOME}", "- item", "{{ x }}"]


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(FILES))
    data = ORIGINAL[name]
    for _ in range(draw(st.integers(1, 3))):
        lines = data.split(b"\n")
        index = draw(st.integers(0, max(0, len(lines) - 1)))
        operation = draw(st.sampled_from(["delete", "duplicate", "retype", "mangle", "truncate", "junk", "indent"]))
        line = lines[index]
        if operation == "delete":
            del lines[index]
        elif operation == "duplicate":
            lines.insert(index, line)
        elif operation in ("retype", "mangle") and b":" in line:
            key = line.split(b":", 1)[0]
            if operation == "retype":
                value = draw(st.sampled_from(VALUES)).encode()
            else:
                value = draw(st.text(max_size=20)).encode("utf-8", "surrogatepass")
            lines[index] = key + b": " + value
        elif operation == "truncate":
            data = data[: draw(st.integers(0, len(data)))]
            continue
        elif operation == "junk":
            cut = draw(st.integers(0, len(data)))
            data = data[:cut] + draw(st.binary(min_size=1, max_size=8)) + data[cut:]
            continue
        else:
            indent = draw(st.sampled_from([b" ", b"  ", b"\t", b"   ", b""]))
            lines[index] = indent + (line.lstrip() if draw(st.booleans()) else line)
        data = b"\n".join(lines)
    return name, data


def test_fuzz_rules_every_mutation_gives_a_rule_set_or_chinese_errors_at_file_and_line(
    tmp_path: Path, ledger
) -> None:
    shutil.copy(RULES / "calendar-overrides.yaml", tmp_path / "calendar-overrides.yaml")
    directory = tmp_path / "lucheng"
    directory.mkdir()
    tried: list[str] = []
    calendar = WorkingCalendar()
    outcomes = {"valid": 0, "invalid": 0}

    @settings(max_examples=CASES, derandomize=True, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(mutated())
    def case(mutation: tuple[str, bytes]) -> None:
        name, data = mutation
        tried.append(name)
        for path in directory.iterdir():
            path.unlink()
        (directory / "programme.yaml").write_bytes(ORIGINAL["programme.yaml"])
        (directory / name).write_bytes(data)
        lines = data.count(b"\n") + 1
        try:
            rule_set = load_rule_set(directory, display_root=tmp_path)
        except RuleSetInvalid as invalid:
            outcomes["invalid"] += 1
            assert invalid.errors
            for error in invalid.errors:
                assert error.file in (f"lucheng/{name}", "lucheng/programme.yaml"), error
                assert 1 <= error.line <= max(lines, 10) + 1 and error.column >= 1, error
                assert CHINESE.search(error.message), error
        else:
            outcomes["valid"] += 1
            for cadence in rule_set.cadences:  # what the service checks next: each `when` phrase
                try:
                    parse_schedule(cadence.when, calendar, anchor=cadence.anchor)
                except ScheduleError as exc:
                    assert CHINESE.search(exc.message), exc.message

    case()
    ledger("fuzz-rules", inputs=len(tried), faults=len(tried),
           note=f"rule files: {outcomes['invalid']} rejected with file:line errors, {outcomes['valid']} still valid")
    assert len(tried) >= CASES
    assert outcomes["invalid"] > CASES // 2


def test_fuzz_rules_an_empty_programme_file_is_a_chinese_error_not_a_crash(tmp_path: Path) -> None:
    # Found by the fuzzer: an empty programme.yaml tripped an assertion inside the loader.
    directory = tmp_path / "lucheng"
    directory.mkdir()
    (directory / "programme.yaml").write_text("# 尚未填写\n", encoding="utf-8")
    try:
        load_rule_set(directory, display_root=tmp_path)
    except RuleSetInvalid as invalid:
        [error] = invalid.errors
        assert (error.file, error.line) == ("lucheng/programme.yaml", 1)
        assert "programme.yaml 为空" in error.message
    else:
        raise AssertionError("an empty programme.yaml was accepted")
