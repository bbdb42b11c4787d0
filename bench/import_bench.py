"""Import benchmark: a million-row observations CSV into a fresh SQLite file.

Reports wall time and peak RSS for the first import, an identical re-import (must change
nothing) and a small corrected file (revisions). Target: peak RSS under 500 MB.
DUBAN_BENCH_IMPORT_ROWS changes the row count (default 1,000,000).
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select

from duban.store.db import create_all, make_engine
from duban.store.importer import ImportReport, import_paths
from duban.store.models import Observation, ObservationRevision

ROWS = int(os.environ.get("DUBAN_BENCH_IMPORT_ROWS", "1000000"))
UNITS = 200
INDICATORS = 100
CORRECTED_ROWS = 1000
PEAK_RSS_TARGET_MB = 500


def _periods(count: int) -> list[str]:
    return [f"{2023 + month // 12}-{month % 12 + 1:02d}" for month in range(count)]


def write_inputs(directory: Path, rows: int) -> Path:
    """units.csv, indicators.csv and an observations CSV of `rows` rows; returns the observations file."""
    with (directory / "units.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["code", "name", "email", "kind"])
        for unit in range(UNITS):
            writer.writerow([f"u{unit:03d}", f"单位{unit}", f"u{unit:03d}@example.org", "department"])
    with (directory / "indicators.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["code", "name", "measure", "kind", "direction", "units"])
        for indicator in range(INDICATORS):
            measure = "%" if indicator % 4 == 0 else "亿元"
            writer.writerow([f"i{indicator:03d}", f"指标{indicator}", measure, "level", "at_least", "u000;u001"])
    periods = _periods(-(-rows // (UNITS * INDICATORS)))
    observations = directory / "observations-bench.csv"
    with observations.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["indicator", "period", "value", "unit"])
        written = 0
        for period in periods:
            for indicator in range(INDICATORS):
                for unit in range(UNITS):
                    if written == rows:
                        return observations
                    # Plausible figures (10–91, a share stays under 100, no tenfold month-to-month jump):
                    # the import's checks (审核) pass them without a note.
                    value = f"{10 + (indicator * 7 + unit * 3) % 80 + (written % 97) / 100:.2f}"
                    writer.writerow([f"i{indicator:03d}", period, value, f"u{unit:03d}"])
                    written += 1
    return observations


def write_corrections(directory: Path) -> Path:
    """The first CORRECTED_ROWS figures of the big file, each with a different value."""
    corrected = directory / "observations-corrected.csv"
    with corrected.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["indicator", "period", "value", "unit"])
        for row in range(CORRECTED_ROWS):
            indicator, unit = divmod(row, UNITS)
            writer.writerow([f"i{indicator:03d}", "2023-01", "95.5", f"u{unit:03d}"])
    return corrected


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _timed(label: str, run: Callable[[], ImportReport]) -> ImportReport:
    started = time.perf_counter()
    report: ImportReport = run()
    elapsed = time.perf_counter() - started
    if not report.ok:
        raise SystemExit("\n".join(report.problem_lines()))
    observations = report.counts.get("observations")
    print(f"{label}: {elapsed:.1f} s, peak RSS so far {_peak_rss_mb():.0f} MB, observations {observations}", flush=True)
    return report


def main() -> None:
    now = dt.datetime(2024, 1, 15, 9, 0, tzinfo=dt.UTC)
    with tempfile.TemporaryDirectory(prefix="duban-import-bench-") as temp:
        directory = Path(temp)
        started = time.perf_counter()
        big = write_inputs(directory, ROWS)
        size_mb = big.stat().st_size / 1e6
        print(f"generated {ROWS:,} rows ({size_mb:.0f} MB) in {time.perf_counter() - started:.1f} s; "
              f"peak RSS before import {_peak_rss_mb():.0f} MB", flush=True)
        engine = make_engine(str(directory / "bench.db"))
        create_all(engine)
        # The units and indicators first, on their own: the row limit (DUBAN_IMPORT_MAX_ROWS, default
        # 1,000,000) counts every file of one import, and the figures alone fill it.
        lists = [directory / "units.csv", directory / "indicators.csv"]
        _timed("units and indicators", lambda: import_paths(engine, lists, now=now, imported_by="bench"))
        _timed("first import", lambda: import_paths(engine, [big], now=now, imported_by="bench"))
        _timed("identical re-import", lambda: import_paths(engine, [big], now=now, imported_by="bench"))
        corrected = write_corrections(directory)
        _timed(f"corrected {CORRECTED_ROWS} figures", lambda: import_paths(engine, [corrected], now=now, imported_by="bench"))
        with engine.connect() as conn:
            stored = conn.scalar(select(func.count()).select_from(Observation))
            revisions = conn.scalar(select(func.count()).select_from(ObservationRevision))
        engine.dispose()
        peak = _peak_rss_mb()
        verdict = "OK" if peak < PEAK_RSS_TARGET_MB else "OVER TARGET"
        print(f"stored observations {stored:,}, revisions {revisions:,}; "
              f"peak RSS {peak:.0f} MB (target < {PEAK_RSS_TARGET_MB} MB: {verdict})", flush=True)


if __name__ == "__main__":
    main()
