"""Measures CompiledRuleset.evaluate against durable's own floor: batched assert_facts on a plain Host.

Run: .venv/bin/python bench/durable_bench.py [facts] [repeats]

The floor is what durable costs by itself: the same facts (ids already added, untimed) asserted with
``Host.assert_facts`` in batches of 1,000, then the session deleted. It does less than the adapter: it
type-checks nothing, and most matched actions are not even run when it returns (a batch with an unmatched
fact raises before its actions run; the Host's timer thread runs them later) and its sessions are not
deleted (see floor_seconds), so it is a lower bound.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import json
import random
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import durable_rules_engine
from durable import engine as durable_engine

from duban.engine.durable_adapter import CompiledRuleset, FactSchema

SCHEMA = FactSchema({"rule": str, "org": str, "value": float, "bound": float, "staff": int})
CONDITIONS: dict[str, dict[str, Any]] = {
    "below": {"$and": [{"rule": "lucheng.share"}, {"$lt": {"value": {"$m": "bound"}}}]},
    "praise": {"$gte": {"value": 0.995}},
}


def province_round(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """~9.5 % of organisations below their bound, ~0.5 % praised: ~10 % of facts match."""
    rng = random.Random(seed)
    return [
        {
            "rule": "lucheng.share" if rng.random() < 0.95 else "huzhou.share",
            "org": f"浙江省温州市鹿城区服务业企业{i}",
            "value": rng.random(),
            "bound": 0.1,
            "staff": rng.randint(1, 5_000),
        }
        for i in range(count)
    ]


def best_of(repeats: int, action: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return best


def rss_mib() -> float:
    found = re.search(r"VmRSS:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(found.group(1)) / 1024 if found else float("nan")


def floor_seconds(facts: list[dict[str, Any]], repeats: int) -> float:
    """Best time of plain ``Host.assert_facts`` in batches of 1,000 (ids and sid added untimed).

    Each repeat uses a new session that is never deleted: ``delete_state`` while the Host's dispatch
    thread is inside ``complete_and_start_action`` for that session crashes the process (SIGSEGV, seen
    here). The pause lets that thread drain the previous session's actions outside the timed region.
    """
    host = durable_engine.Host()
    host.set_rulesets(
        {"floor": {name: {"all": [{"m": c}], "run": lambda _c: None} for name, c in CONDITIONS.items()}}
    )
    best = float("inf")
    for repeat in range(repeats):
        with_ids = [{"id": i, "sid": f"s{repeat}", **fact} for i, fact in enumerate(facts)]
        time.sleep(1.0)
        gc.collect()
        started = time.perf_counter()
        for start in range(0, len(with_ids), 1_000):
            with contextlib.suppress(durable_engine.MessageNotHandledException):
                host.assert_facts("floor", with_ids[start : start + 1_000])
        best = min(best, time.perf_counter() - started)
    return best


def events_drop_second_match() -> bool:
    """Do events (post) fire every rule a message matches? Same-thread drain, as in the adapter."""
    definition = {"below": {"all": [{"m": {"$lt": {"v": 5}}}]}, "small": {"all": [{"m": {"$lt": {"v": 9}}}]}}
    handle = durable_rules_engine.create_ruleset("ev", json.dumps(definition))
    _code, state = durable_rules_engine.assert_events(handle, json.dumps([{"id": 1, "v": 1}]))
    fired = []
    started = durable_rules_engine.start_action_for_state(handle, state)
    message = started[1] if started else None
    while message:
        fired.append(next(iter(json.loads(message))))
        message = durable_rules_engine.complete_and_start_action(handle, state)
    durable_rules_engine.delete_state(handle, "0")
    durable_rules_engine.delete_ruleset(handle)
    return len(fired) < 2


def main(count: int = 30_000, repeats: int = 7) -> None:
    facts = province_round(count)
    ruleset = CompiledRuleset("bench", copy.deepcopy(CONDITIONS), SCHEMA)
    matches = ruleset.evaluate(facts)
    print(f"{count} facts, {len(matches)} matches ({100 * len(matches) / count:.1f} %)")

    rss_before = rss_mib()
    adapter = best_of(repeats, lambda: ruleset.evaluate(facts))
    rss_after = rss_mib()
    floor = floor_seconds(facts, repeats)
    check = best_of(repeats, lambda: ruleset._fact_checker.check(facts))
    print(f"adapter evaluate : {adapter * 1000:7.1f} ms  {count / adapter:10,.0f} facts/s")
    print(f"floor (plain Host): {floor * 1000:7.1f} ms  {count / floor:10,.0f} facts/s")
    print(f"adapter / floor  : {adapter / floor:.2f}")
    print(f"  of which type check: {check * 1000:.1f} ms")
    print(f"RSS after the adapter runs {rss_after:.0f} MiB (+{rss_after - rss_before:.0f} MiB over them)")
    print(f"events fire only the first of two matching rules: {events_drop_second_match()}")
    ruleset.close()


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:3]))
