"""Run every benchmark module (`bench/*_bench.py`) in name order; each exposes `main()`."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench

BENCH_SUFFIX = "_bench"


def run_all(selected: list[str]) -> int:
    names = sorted(module.name for module in pkgutil.iter_modules(bench.__path__) if module.name.endswith(BENCH_SUFFIX))
    if selected:
        names = [name for name in names if any(choice in name for choice in selected)]
    for name in names:
        print(f"== bench.{name}", flush=True)
        importlib.import_module(f"bench.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(run_all(sys.argv[1:]))
