"""`duban test`: rule unit tests written in YAML, in the spirit of `promtool test rules`.

    rule_set: ..                      # optional; default: the folder above tests/
    data:
      files: [../../../examples/lucheng-2023]   # imported first (paths relative to this file)
      units:                           # inline lists use the canonical import columns
        - {code: fgj, name: 区发改局, email: fgj@example.org, kind: department}
      observations:
        - {indicator: service_investment_share, period: 2023-06, value: 63.5}
    tests:
      - name: service investment below 2/3 in June lights red on the July dispatch
        at: 2023-07-15T09:00+08:00
        groups: [monthly]              # optional
        expect:                         # each entry must match some candidate (listed keys only)
          - {rule: service_investment_share, level: red, units: [fgj]}
        absent:                         # no candidate may match any of these
          - {rule: service_investment_growth}

Inline data goes through the real importer, so a test's data is checked exactly as a
spreadsheet would be.
"""

from __future__ import annotations

import csv
import datetime as dt
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError

from duban.engine.evaluate import AlertCandidate, Evaluator
from duban.engine.loader import RuleSetInvalid, load_rule_set, yaml_structure_problem
from duban.engine.yaml_errors import explain as explain_yaml_error
from duban.store.db import create_all, make_engine
from duban.store.importer import import_paths
from duban.store.periods import SHANGHAI
from duban.store.snapshot import load_snapshot

_NUMERIC_KEYS = ("value", "threshold", "expected")


@dataclass
class RuleTestOutcome:
    passed: list[str] = field(default_factory=list)
    failed: list[tuple[str, list[str]]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def lines(self, verbose: bool = False) -> list[str]:
        out: list[str] = []
        if verbose:
            out += [f"通过  {name}" for name in self.passed]
        for name, reasons in self.failed:
            out.append(f"失败  {name}")
            out += [f"      {reason}" for reason in reasons]
        out.append(f"{len(self.passed)} passed, {len(self.failed)} failed")
        return out


def _as_time(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime.combine(value, dt.time(9, 0))
    else:
        text = str(value)
        moment = dt.datetime.fromisoformat(text) if "T" in text or " " in text else dt.datetime.combine(
            dt.date.fromisoformat(text), dt.time(9, 0))
    return moment if moment.tzinfo else moment.replace(tzinfo=SHANGHAI)


def _write_inline_lists(data: Mapping[str, Any], folder: Path) -> list[Path]:
    written = []
    for name, rows in data.items():
        if name == "files":
            continue
        if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
            raise ValueError(f"data.{name} 应为行的列表（每行一个映射）")
        columns: list[str] = []
        for row in rows:
            columns += [str(k) for k in row if str(k) not in columns]
        path = folder / f"{name}.csv"
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for row in rows:
                writer.writerow([_cell(row.get(c)) for c in columns])
        written.append(path)
    return written


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _matches(expected: Mapping[str, Any], candidate: AlertCandidate, programme: str) -> bool:
    actual = candidate.to_json()
    for key, want in expected.items():
        if key == "rule":
            if candidate.rule not in (want, f"{programme}.{want}"):
                return False
            continue
        have = actual.get(key)
        if key in _NUMERIC_KEYS and want is not None:
            if have is None or abs(float(have) - float(want)) > 0.01:
                return False
        elif isinstance(want, list):
            if list(have or []) != [str(w) for w in want]:
                return False
        elif str(have) != str(want) if want is not None else have is not None:
            return False
    return True


def run_rule_test_file(path: Path) -> RuleTestOutcome:
    outcome = RuleTestOutcome()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        outcome.failed.append((str(path), [f"无法读取测试文件：{getattr(exc, 'strerror', None) or exc}"]))
        return outcome
    yaml = YAML(typ="safe")
    # The same gate as rule files: no aliases (an alias bomb expands to gigabytes), no deep nesting.
    refused = yaml_structure_problem(text, yaml)
    if refused is not None:
        line, column, message = refused
        outcome.failed.append((str(path), [f"{path}:{line}:{column}: {message}"]))
        return outcome
    try:
        document = yaml.load(text)
    except MarkedYAMLError as exc:
        problem = explain_yaml_error(exc)
        outcome.failed.append((str(path), [f"{path}:{problem.line}:{problem.column}: {problem.message}"]))
        return outcome
    if not isinstance(document, Mapping) or not isinstance(document.get("tests"), list):
        outcome.failed.append((str(path), ["测试文件须包含 `tests:` 列表"]))
        return outcome
    rule_dir = (path.parent / document["rule_set"]) if "rule_set" in document else path.parent.parent
    try:
        rule_set = load_rule_set(rule_dir.resolve(), display_root=Path.cwd())
    except RuleSetInvalid as invalid:
        outcome.failed.append((str(path), [str(e) for e in invalid.errors]))
        return outcome
    with tempfile.TemporaryDirectory(prefix="duban-test-") as tmp:
        folder = Path(tmp)
        engine = make_engine(str(folder / "test.db"))
        try:
            create_all(engine)
            data = document.get("data") or {}
            paths: list[Path] = [(path.parent / p).resolve() for p in data.get("files", [])]
            inline_dir = folder / "inline"
            inline_dir.mkdir()
            try:
                inline = _write_inline_lists(data, inline_dir)
            except ValueError as exc:
                outcome.failed.append((str(path), [str(exc)]))
                return outcome
            if paths or inline:
                report = import_paths(engine, [*paths, *([inline_dir] if inline else [])],
                                      now=dt.datetime(2000, 1, 1, tzinfo=dt.UTC), imported_by="duban test",
                                      # Test data may be implausible on purpose (a share that jumps): the
                                      # import's checks (审核) query such figures; a note lets them in.
                                      note="规则测试数据")
                if not report.ok:
                    outcome.failed.append((str(path), ["测试数据导入失败：", *report.problem_lines()]))
                    return outcome
            evaluator = Evaluator(rule_set)
            try:
                for index, case in enumerate(document["tests"], start=1):
                    name = f"{path}: {case.get('name', f'第{index}项')}"
                    reasons = _run_case(evaluator, engine, case, rule_set.settings.programme)
                    if reasons:
                        outcome.failed.append((name, reasons))
                    else:
                        outcome.passed.append(name)
            finally:
                evaluator.close()
        finally:
            engine.dispose()
    return outcome


def _run_case(evaluator: Evaluator, engine: Any, case: Mapping[str, Any], programme: str) -> list[str]:
    if "at" not in case:
        return ["缺少 `at`（评估时间）"]
    at = _as_time(case["at"])
    result = evaluator.evaluate(load_snapshot(engine, at), groups=case.get("groups"))
    reasons = []
    for expected in case.get("expect") or []:
        if not any(_matches(expected, c, programme) for c in result.candidates):
            reasons.append(f"缺少预期的结果：{dict(expected)}")
    for unwanted in case.get("absent") or []:
        hits = [c for c in result.candidates if _matches(unwanted, c, programme)]
        for hit in hits:
            reasons.append(f"不应出现：{hit.title}（{hit.rule} {hit.subject} {hit.period} {hit.level}）")
    if reasons:
        reasons.append("实际结果：" + ("无" if not result.candidates else ""))
        reasons += [f"  - {c.rule} {c.subject} {c.period} {c.kind}/{c.level}: {c.title}" for c in result.candidates]
    return reasons


def run_rule_test_files(paths: list[Path]) -> RuleTestOutcome:
    total = RuleTestOutcome()
    files: list[Path] = []
    for path in paths:
        files += sorted(path.rglob("*.yaml")) if path.is_dir() else [path]
    for file in files:
        outcome = run_rule_test_file(file)
        total.passed += outcome.passed
        total.failed += outcome.failed
    return total
