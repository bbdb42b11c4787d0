"""durable-rules' real limits on this build, and 2,000 YAML rules evaluating through the adapter.

Run: .venv/bin/python -m bench durable_limits

1. Each probe compiles one C ruleset in a subprocess with a timeout (a hang is the finding, so it must
   not hang the bench): the most branches after one test (512 compile, 513 spin forever inside
   ``create_ruleset``), the most rules per ruleset (4,096 compile, 4,097 fail with code 106), and a
   long ``$and`` chain (1,000 tests in one rule compile).
2. 2,000 YAML threshold rules on one indicator (at_least 60.00 … 79.99) are loaded, compiled (the
   adapter packs them into several C rulesets) and evaluated on the Lucheng example store; every rule
   whose bound is above the latest figure must fire, and no other.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = textwrap.dedent(
    """
    import json, sys, durable_rules_engine
    shape, n = sys.argv[1], int(sys.argv[2])
    if shape == "branches":  # n distinct tests after one equality
        rules = {f"r{i}": {"all": [{"m": {"$and": [{"rule": "a"}, {"$gt": {"gap": float(i)}}]}}]} for i in range(n)}
    elif shape == "rules":  # n rules, 8 per routing value: never more than 512 branches
        rules = {f"r{i}": {"all": [{"m": {"$and": [{"rule": f"v{i // 8}"}, {"$gt": {"gap": float(i % 8)}}]}}]}
                 for i in range(n)}
    else:  # one rule, an $and chain of n tests
        rules = {"r0": {"all": [{"m": {"$and": [{"rule": "a"}] + [{"$gt": {"gap": float(i)}} for i in range(n)]}}]}}
    try:
        durable_rules_engine.create_ruleset("probe", json.dumps(rules))
        print("compiled")
    except Exception as exc:
        print(f"refused ({exc})")
    """
)
TIMEOUT = 10.0
RULES = 2000


def probe(shape: str, n: int) -> str:
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-c", PROBE, shape, str(n)], capture_output=True, text=True,
                              timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return f"still spinning after {TIMEOUT:.0f} s (killed)"
    return f"{done.stdout.strip() or done.stderr.strip()[-200:]} in {time.monotonic() - started:.2f} s"


def big_rule_set(folder: Path) -> Path:
    target = folder / "big"
    target.mkdir()
    for name in ("programme.yaml", "cadence.yaml"):
        shutil.copy(ROOT / "rules" / "lucheng" / name, target / name)
    shutil.copy(ROOT / "rules" / "calendar-overrides.yaml", folder / "calendar-overrides.yaml")
    lines = ["rules:"]
    for n in range(RULES):
        lines += [f"  - id: share_{n:04d}", "    kind: threshold", f"    title: 占比低于{60 + n / 100:.2f}",
                  "    source: 基准测试。", "    indicator: service_investment_share", f"    at_least: {60 + n / 100:.2f}"]
    (target / "big.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def evaluate_big() -> None:
    from duban.engine.evaluate import Evaluator
    from duban.engine.loader import load_rule_set
    from duban.store.db import create_all, make_engine
    from duban.store.importer import import_paths
    from duban.store.snapshot import load_snapshot

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        rule_set = load_rule_set(big_rule_set(Path(tmp)))
        loaded = time.perf_counter() - started
        engine = make_engine("sqlite://")
        create_all(engine)
        assert import_paths(engine, [ROOT / "examples" / "lucheng-2023"], now=dt.datetime(2023, 7, 1, tzinfo=dt.UTC),
                            imported_by="bench").ok
        snapshot = load_snapshot(engine, dt.datetime(2023, 7, 15, 10, tzinfo=dt.UTC))
        series = snapshot.observations["service_investment_share"][""]
        value = series[max(series)]
        started = time.perf_counter()
        evaluator = Evaluator(rule_set)
        compiled = time.perf_counter() - started
        times = []
        for _ in range(5):
            started = time.perf_counter()
            result = evaluator.evaluate(snapshot)
            times.append(time.perf_counter() - started)
        rulesets = evaluator._compiled.rulesets
        evaluator.close()
    fired = sorted(c.rule for c in result.candidates)
    expected = sorted(f"lucheng.share_{n:04d}" for n in range(RULES) if round(60 + n / 100, 2) > value)
    assert fired == expected, (len(fired), len(expected))
    print(f"  {RULES:,} YAML rules: loaded in {loaded:.1f} s, compiled into {rulesets} durable rulesets in "
          f"{compiled:.2f} s, evaluated in {sorted(times)[2] * 1000:.0f} ms (median of 5); {len(fired):,} fired, "
          f"exactly those whose bound is above {value:g}")


def main() -> None:
    for shape, sizes in (("branches", (512, 513)), ("rules", (4096, 4097)), ("chain", (1000,))):
        for n in sizes:
            print(f"  durable-rules, {shape} = {n:,}: {probe(shape, n)}", flush=True)
    evaluate_big()
    print(json.dumps({"max_branches_per_test": 512, "max_rules_per_ruleset": 4096}))


if __name__ == "__main__":
    main()
