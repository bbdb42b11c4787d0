"""`duban simulate` on the Lucheng example: 2023 (target ≤ 10 s) and 2023–2027 (target ≤ 60 s).

Run: `.venv/bin/python -m bench simulate`. Imports examples/lucheng-2023 into a temporary SQLite
file, then replays the cadence as `duban simulate --from … --to …` does (scratch copy, no
messages), REPEATS times per span; reports the median, the rounds and the notices.

The example holds 2023 figures only, so from 2024 on every month's figures are missing and the
2023 tasks not done stay overdue: the later years are the heavy ones (weekly 催办 to every unit).
"""

from __future__ import annotations

import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

from duban.app.simulate import simulate
from duban.engine.loader import load_rule_set
from duban.store.db import create_all, make_engine
from duban.store.importer import import_paths
from duban.store.periods import SHANGHAI

ROOT = Path(__file__).resolve().parent.parent
REPEATS = 3
SPANS = (("2023", 2023, 2024, 10.0), ("2023–2027", 2023, 2028, 60.0))


def main() -> None:
    rule_set = load_rule_set(ROOT / "rules" / "lucheng")
    with tempfile.TemporaryDirectory(prefix="duban-simulate-bench-") as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'lucheng.db'}")
        create_all(engine)
        import_paths(engine, [ROOT / "examples" / "lucheng-2023"], now=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
                     imported_by="bench")
        print("| span | notices | median of 3 runs | target |")
        print("|---|---:|---:|---:|")
        for label, first, last, target in SPANS:
            start = dt.datetime(first, 1, 1, tzinfo=SHANGHAI)
            end = dt.datetime(last, 1, 1, tzinfo=SHANGHAI)
            times, notices = [], 0
            for _ in range(REPEATS):
                started = time.perf_counter()
                notices = len(simulate(engine, rule_set, start, end))
                times.append(time.perf_counter() - started)
            median = statistics.median(times)
            verdict = "met" if median <= target else "MISSED"
            print(f"| {label} | {notices:,} | {median:.1f} s | ≤ {target:g} s ({verdict}) |", flush=True)
        engine.dispose()


if __name__ == "__main__":
    main()
