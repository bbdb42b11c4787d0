"""Province-scale evaluation: one full evaluation against its floor, at 1×, 2× and 4× the data.

Run: `make bench` (all benchmarks) or `.venv/bin/python -m bench province [scales...]`.

At scale 1 the store holds 3,000 units, 6,000 indicators × 60 months of observations, 2,000
projects and 10,000 tasks (bench/province.py); the rule set is bench/province_rules.

- **full evaluation**: `load_snapshot` + `Evaluator.evaluate`, what every round does. Median of
  REPEATS runs. Target ≤ 1 s at 1×.
- **floor**: the same work with nothing of duban's in it, measured in the same process:
  (a) the exact SQL statements the snapshot issues, replayed on a raw sqlite3 connection with
  `fetchall()`; plus (b) the very facts the evaluation derived, asserted with durable-rules' own
  `Host.assert_facts` in batches of 1,000 against the same conditions. Target: full ≤ 1.5× floor.
- **peak memory**: the child process's peak RSS (each scale runs in its own process).
- **linearity**: time per 1× of data at 2× and 4×, relative to 1×.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPEATS = 5
SCALES = (1.0, 2.0, 4.0)
TARGET_SECONDS = 1.0
TARGET_RATIO = 1.5


def _measure(db: Path) -> dict[str, Any]:
    """Runs in a child process: times the full evaluation and its floor on one store."""
    from durable import engine as durable_engine
    from sqlalchemy import event

    from bench.province import EVALUATE_AT, RULES_DIR
    from duban.engine.compile import rule_conditions
    from duban.engine.evaluate import Evaluator
    from duban.engine.loader import load_rule_set
    from duban.store.db import make_engine
    from duban.store.snapshot import load_snapshot

    engine = make_engine(f"sqlite:///{db}")
    rule_set = load_rule_set(RULES_DIR)
    evaluator = Evaluator(rule_set)

    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    snapshot = load_snapshot(engine, EVALUATE_AT)
    event.remove(engine, "before_cursor_execute", capture)
    result = evaluator.evaluate(snapshot)
    facts = evaluator.derive(snapshot).facts
    shape = {
        "candidates": len(result.candidates), "facts": len(facts),
        "observations": sum(len(s) for by_unit in snapshot.observations.values() for s in by_unit.values()),
    }
    del snapshot, result

    full: list[float] = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        evaluator.evaluate(load_snapshot(engine, EVALUATE_AT))
        full.append(time.perf_counter() - started)
    # Where the full evaluation's time goes: reading the snapshot, deriving facts, durable.
    parts: dict[str, list[float]] = {"snapshot": [], "derive": [], "durable": []}
    for _ in range(REPEATS):
        started = time.perf_counter()
        snapshot = load_snapshot(engine, EVALUATE_AT)
        parts["snapshot"].append(time.perf_counter() - started)
        started = time.perf_counter()
        derived = evaluator.derive(snapshot)
        parts["derive"].append(time.perf_counter() - started)
        started = time.perf_counter()
        evaluator._compiled.match_indices(derived.facts)
        parts["durable"].append(time.perf_counter() - started)
        del snapshot, derived
    evaluator.close()
    engine.dispose()
    # Peak RSS of the evaluation itself, before the floor's durable Host (which keeps every
    # session's facts in its C heap) inflates it.
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    reads: list[float] = []
    raw = sqlite3.connect(db)
    for _ in range(REPEATS):
        started = time.perf_counter()
        rows = [raw.execute(sql, params).fetchall() for sql, params in statements]
        reads.append(time.perf_counter() - started)
        del rows
    raw.close()

    host = durable_engine.Host()
    conditions = {name: cond for rule in rule_set.rules for name, cond in rule_conditions(rule).items()}
    host.set_rulesets({"floor": {name: {"all": [{"m": c}], "run": lambda _c: None}
                                 for name, c in conditions.items()}})
    asserts: list[float] = []
    for repeat in range(REPEATS):
        # One session per batch, as the adapter keeps sessions small: durable slows down as one
        # session grows (measured: 4× the facts in one session took 16× the time).
        with_ids = [{"id": i, "sid": f"s{repeat}-{i // 1_000}", **fact} for i, fact in enumerate(facts)]
        # Lets the Host's action thread finish the previous session outside the timed region.
        time.sleep(1.0)
        gc.collect()
        started = time.perf_counter()
        for start in range(0, len(with_ids), 1_000):
            with contextlib.suppress(durable_engine.MessageNotHandledException):
                host.assert_facts("floor", with_ids[start:start + 1_000])
        asserts.append(time.perf_counter() - started)
    return {
        **shape,
        "full": statistics.median(full),
        **{name: statistics.median(times) for name, times in parts.items()},
        "read": statistics.median(reads),
        "assert": statistics.median(asserts),
        "peak_mib": peak_mib,
    }


def _child(db: Path) -> dict[str, Any]:
    output = subprocess.run([sys.executable, "-m", "bench.province_bench", "--measure", str(db)],
                            capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    if output.returncode:
        raise SystemExit(f"measuring {db.name} failed:\n{output.stderr}")
    return dict(json.loads(output.stdout.strip().splitlines()[-1]))


def main(scales: tuple[float, ...] = SCALES) -> None:
    from bench.province import build_store, size_at

    rows: list[tuple[float, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="duban-province-") as tmp:
        for scale in scales:
            size = size_at(scale)
            db = Path(tmp) / f"province-{scale:g}x.db"
            started = time.perf_counter()
            build_store(db, scale).dispose()
            print(f"{scale:g}×: {size.units:,} units, {size.indicators:,} indicators × 60 months "
                  f"({size.observations:,} observations), {size.projects:,} projects, {size.tasks:,} tasks "
                  f"— generated in {time.perf_counter() - started:.1f} s", flush=True)
            rows.append((scale, _child(db)))
            db.unlink()
    base = rows[0][1]["full"] / rows[0][0]
    print()
    print("| data | facts | candidates | full evaluation (median) | of which snapshot / derive / durable "
          "| floor: raw read + Host assert | full / floor | time per 1× of data | peak RSS |")
    print("|---|---:|---:|---:|---|---|---:|---:|---:|")
    for scale, r in rows:
        floor = r["read"] + r["assert"]
        print(f"| {scale:g}× | {r['facts']:,} | {r['candidates']:,} | {r['full']:.3f} s | "
              f"{r['snapshot']:.3f} / {r['derive']:.3f} / {r['durable']:.3f} s | "
              f"{floor:.3f} s ({r['read']:.3f} + {r['assert']:.3f}) | {r['full'] / floor:.2f}× | "
              f"{r['full'] / scale / base:.2f}× | {r['peak_mib']:.0f} MiB |")
    first = rows[0][1]
    ratio = first["full"] / (first["read"] + first["assert"])
    print()
    print(f"1× full evaluation {first['full']:.3f} s (target ≤ {TARGET_SECONDS:g} s): "
          f"{'met' if first['full'] <= TARGET_SECONDS else 'MISSED'}; "
          f"{ratio:.2f}× the floor (target ≤ {TARGET_RATIO:g}×): {'met' if ratio <= TARGET_RATIO else 'MISSED'}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--measure":
        print(json.dumps(_measure(Path(sys.argv[2]))))
    else:
        main(tuple(float(a) for a in sys.argv[1:]) or SCALES)
