"""The rule engine within its limits (issue 15, item 4).

durable-rules 2.0.28 spins forever inside `create_ruleset` once a test has more than 512 branches
(duban's compilation hit it at about 560 YAML rules) and refuses more than 4,096 rules per ruleset.
The adapter packs conditions into several C rulesets below both limits and routes each fact to the
one holding its rule; what cannot be split is refused with a DurableError, never handed to durable.
Every case runs in a subprocess with a timeout, so a hang fails the test instead of the suite.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from .support import ROOT
from .support import RULES as RULES_TREE

RULE_COUNT = 700  # above the ~560 YAML rules that hung main; bench/durable_limits_bench.py runs 2,000


def _run(script: str, timeout: float = 240) -> dict[str, object]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    result["elapsed"] = time.monotonic() - started
    return result


def test_engine_700_yaml_rules_beyond_the_old_hang_load_compile_and_evaluate_each_as_alone(tmp_path: Path, ledger) -> None:
    # On main: create_ruleset spun at 100 % CPU forever for this rule set (and SIGTERM was not acted on).
    script = f"""
    import datetime as dt, json, shutil
    from pathlib import Path
    from duban.engine.evaluate import Evaluator
    from duban.engine.loader import load_rule_set
    from duban.store.db import create_all, make_engine
    from duban.store.importer import import_paths
    from duban.store.snapshot import load_snapshot

    folder = Path({str(tmp_path)!r}) / "big"
    folder.mkdir()
    for name in ("programme.yaml", "cadence.yaml"):
        shutil.copy("rules/lucheng/" + name, folder / name)
    shutil.copy("rules/calendar-overrides.yaml", folder.parent / "calendar-overrides.yaml")
    lines = ["rules:"]
    for n in range({RULE_COUNT}):
        lines += [f"  - id: share_{{n:04d}}", "    kind: threshold", f"    title: 占比低于{{60 + n / 100:.2f}}",
                  "    source: 测试。", "    indicator: service_investment_share", f"    at_least: {{60 + n / 100:.2f}}"]
    (folder / "big.yaml").write_text("\\n".join(lines) + "\\n", encoding="utf-8")
    rule_set = load_rule_set(folder)
    engine = make_engine("sqlite://")
    create_all(engine)
    assert import_paths(engine, ["examples/lucheng-2023"], now=dt.datetime(2023, 7, 1, tzinfo=dt.UTC),
                        imported_by="t").ok
    snapshot = load_snapshot(engine, dt.datetime(2023, 7, 15, 10, tzinfo=dt.UTC))
    latest = snapshot.observations["service_investment_share"][""]
    value = latest[max(latest)]
    evaluator = Evaluator(rule_set)
    result = evaluator.evaluate(snapshot)
    fired = sorted(c.rule for c in result.candidates)
    expected = sorted(f"lucheng.share_{{n:04d}}" for n in range({RULE_COUNT}) if round(60 + n / 100, 2) > value)
    print(json.dumps({{"rules": len(rule_set.rules), "rulesets": evaluator._compiled.rulesets,
                      "fired": len(fired), "same": fired == expected, "value": value}}))
    """
    result = _run(script)
    assert result["rules"] == RULE_COUNT
    assert isinstance(result["rulesets"], int) and result["rulesets"] >= 2
    assert result["same"] is True and result["fired"], result
    ledger("engine", inputs=RULE_COUNT, rounds=1, note=f"{RULE_COUNT:,} YAML rules: {result['rulesets']} durable rulesets, "
                                       f"{result['fired']} fired as expected, {result['elapsed']:.1f} s in all")


def test_engine_a_condition_beyond_durables_branch_limit_is_refused_not_hung(ledger) -> None:
    script = """
    import json
    from duban.engine.durable_adapter import CompiledRuleset, DurableError, FactSchema
    schema = FactSchema({"rule": str, "gap": float})
    wide = {"$and": [{"rule": "a"}, {"$or": [{"$gt": {"gap": float(j)}} for j in range(600)]}]}
    try:
        CompiledRuleset("t", {"a#wide": wide}, schema)
        outcome = "compiled"
    except DurableError as error:
        outcome = error.zh
    roots = {f"r{n}": {"$gt": {"gap": float(n)}} for n in range(600)}  # 600 branches at the root, no routing
    try:
        CompiledRuleset("t", roots, schema)
        unrouted = "compiled"
    except DurableError as error:
        unrouted = error.zh
    many = {f"x{n}": {"$and": [{"rule": f"v{n}"}, {"$gt": {"gap": 0.0}}]} for n in range(5000)}
    with CompiledRuleset("t", many, schema) as compiled:
        facts = [{"rule": f"v{n}", "gap": 1.0 if n % 2 else -1.0} for n in range(5000)]
        matched = compiled.evaluate(facts)
        print(json.dumps({"wide": outcome, "unrouted": unrouted, "rulesets": compiled.rulesets,
                          "matched": sorted(m.index for m in matched) == list(range(1, 5000, 2))}))
    """
    result = _run(script, timeout=120)
    assert "512" in str(result["wide"]) and "规则引擎" in str(result["wide"]), result
    assert "512" in str(result["unrouted"]), result
    assert result["matched"] is True and isinstance(result["rulesets"], int) and result["rulesets"] >= 10
    ledger("engine", inputs=5602, faults=2, note="an $or of 600 and 600 unroutable roots: refused with the "
                                                   "limit named; 5,000 routed rules: evaluated exactly")


def test_engine_sigterm_mid_round_is_answered_within_seconds(big_programme_db: Path, tmp_path: Path, ledger) -> None:
    # On main `run --once` ran its rounds on the main thread: a SIGTERM waited for the whole round (and
    # for ever when durable's C code spun). Rounds now run on a worker; the main thread answers at once.
    import os
    import signal
    import threading

    from sqlalchemy import func, select

    from duban.store.db import make_engine, transaction
    from duban.store.models import Delivery, Notice, Round

    from .support import BIG_ROUND_AT, assert_no_traceback, copy_database, duban, duban_env, spawn_duban

    path = copy_database(big_programme_db, tmp_path / "duban.db")
    env = duban_env(str(path), DUBAN_TRANSPORT="file", DUBAN_OUTBOX_DIR=str(tmp_path / "outbox"),
                    DUBAN_RULES=str(RULES_TREE), DUBAN_STOP_GRACE="0.5")
    runner = spawn_duban("run", "--once", "--at", BIG_ROUND_AT, env=env)
    started = threading.Event()
    lines: list[str] = []

    def read() -> None:
        assert runner.stderr is not None
        for line in runner.stderr:
            lines.append(line)
            if "event=round_started" in line:
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert started.wait(120), "".join(lines)
    time.sleep(0.3)  # inside the round: evaluating 1,000 tasks, writing 1,000 notices
    sent = time.monotonic()
    os.kill(runner.pid, signal.SIGTERM)
    runner.wait(timeout=60)
    answered = time.monotonic() - sent
    reader.join(5)
    output = "".join(lines)
    assert_no_traceback(output)
    assert answered < 5, (answered, output)
    engine = make_engine(str(path))
    with transaction(engine) as session:  # whole or nothing
        for round_row in session.scalars(select(Round)):
            assert session.scalar(select(func.count()).select_from(Notice).where(
                Notice.round_id == round_row.id)) == round_row.summary.get("notices", 0)
    again = duban("run", "--once", "--at", BIG_ROUND_AT, env=env)
    assert again.returncode == 0, again.stderr
    with transaction(engine) as session:
        messages = session.scalar(select(func.count()).select_from(Delivery).where(Delivery.channel == "email"))
        recorded = session.scalar(select(func.count()).select_from(Round))
    engine.dispose()
    assert messages and messages >= 1000
    ledger("engine", faults=1, inputs=1, lost=0, rounds=recorded,
           note=f"SIGTERM mid-round (1,000 notices): answered in {answered:.1f} s (exit {runner.returncode}); "
                "the rerun sent every notice")
