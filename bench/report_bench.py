"""Province-scale report: `duban report quarterly` on the province data set (bench/province.py).

Run: `make bench` (all benchmarks) or `.venv/bin/python -m bench report [scales...]`.

- **command**: wall time of `duban report quarterly --quarter 2025-Q2` as a user runs it (a fresh
  process: imports, rule loading, snapshot, evaluation, HTML, .xlsx). Target: seconds, ≤ 30 s at 1×.
- **of which**: in one process, the cut-off evaluation and the report model (`prepare_report`:
  snapshot + evaluation + ledger + build), the HTML (`render_html`) and the workbook (`write_xlsx`).
- **size**: rows in the five lists, and the two files' sizes; peak RSS of the in-process run.
- **.xlsx before/after**: the same report written by the openpyxl writer duban used before
  (`bench/xlsx_openpyxl.py`) and by today's XlsxWriter one, timed in the same process one after
  the other, their ratio, and a cell-by-cell comparison of the two workbooks (value, number format,
  bold, fill) so the speed-up is known not to have changed what the office reads.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SCALES = (1.0,)
QUARTER = "2025-Q2"  # the province data's mid-programme quarter (bench.province.EVALUATE_AT is July 2025)
TARGET_SECONDS = 30.0


def _measure(db: Path, out: Path) -> dict[str, Any]:
    """Runs in a child process: the report's phases, timed one by one."""
    from bench.province import RULES_DIR
    from duban.engine.loader import load_rule_set
    from duban.notifiers.reports.html import render_html
    from duban.notifiers.reports.produce import prepare_report
    from duban.notifiers.reports.xlsx import write_xlsx
    from duban.store.db import make_engine

    engine = make_engine(f"sqlite:///{db}")
    rule_set = load_rule_set(RULES_DIR)
    started = time.perf_counter()
    report = prepare_report(engine, rule_set, "quarterly", QUARTER)
    prepared = time.perf_counter() - started
    started = time.perf_counter()
    html = render_html(report, rule_set.templates_dir)
    rendered = time.perf_counter() - started
    (out / "inprocess.html").write_text(html, encoding="utf-8")
    from dataclasses import replace

    from bench.xlsx_openpyxl import write_xlsx as write_xlsx_openpyxl

    def timed(write: Any, target: Path, what: Any = report) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        write(what, target)
        return time.perf_counter() - wall, time.process_time() - cpu

    # Old and new on the same report, alternating; "same sheets" leaves out the quarter's analysis
    # sheets the old writer never wrote, so the two write exactly the same cells.
    five_lists = replace(report, kind="monthly")
    written_before, cpu_before = timed(write_xlsx_openpyxl, out / "openpyxl.xlsx")
    written_same, cpu_same = timed(write_xlsx, out / "same-sheets.xlsx", five_lists)
    written, cpu_now = timed(write_xlsx, out / "inprocess.xlsx")
    # The whole quarterly workbook again with XlsxWriter's own cell writers (how the rows were
    # written before they went straight into its row file): same workbook, the row path's gain.
    from duban.notifiers.reports import xlsx as report_xlsx

    direct_rows = report_xlsx._rows
    report_xlsx._rows = report_xlsx._rows_by_cell
    try:
        written_by_cell, cpu_by_cell = timed(write_xlsx, out / "by-cell.xlsx")
    finally:
        report_xlsx._rows = direct_rows
    same_by_cell = compare_workbooks(out / "by-cell.xlsx", out / "inprocess.xlsx")
    engine.dispose()
    differences = compare_workbooks(out / "openpyxl.xlsx", out / "same-sheets.xlsx")
    return {
        "prepare": prepared, "html": rendered, "xlsx": written, "xlsx_before": written_before,
        "xlsx_same": written_same, "cpu_before": cpu_before, "cpu_same": cpu_same, "cpu_now": cpu_now,
        "xlsx_by_cell": written_by_cell, "cpu_by_cell": cpu_by_cell, "differences_by_cell": same_by_cell[:5],
        "cells_same": _cell_count(out / "same-sheets.xlsx"),
        "differences": differences[:5], "cells": _cell_count(out / "inprocess.xlsx"),
        "indicators": len(report.indicators), "projects": len(report.projects), "tasks": len(report.tasks),
        "ranking": len(report.ranking), "urging": len(report.urging), "praise": len(report.praise),
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _cell_signature(cell: Any) -> tuple[Any, ...]:
    fill = cell.fill.fgColor.rgb if cell.fill is not None and cell.fill.fill_type else None
    value = cell.value
    if isinstance(value, float):
        value = round(value, 9)
    return (value if value != "" else None, cell.number_format, bool(cell.font and cell.font.b),
            fill if isinstance(fill, str) else None, cell.data_type if cell.value not in (None, "") else None)


def compare_workbooks(before: Path, after: Path) -> list[str]:
    """Where two workbooks differ: sheets, and each cell's value, number format, bold and fill."""
    from openpyxl import load_workbook

    old, new = load_workbook(before, read_only=True), load_workbook(after, read_only=True)
    found: list[str] = []
    if old.sheetnames != new.sheetnames[:len(old.sheetnames)]:
        found.append(f"sheets {old.sheetnames} != {new.sheetnames}")
    for name in old.sheetnames:  # the sheets both write; the quarter's analysis sheets are new
        if name not in new.sheetnames:
            continue
        rows_old, rows_new = old[name].iter_rows(), new[name].iter_rows()
        for number, (a, b) in enumerate(zip(rows_old, rows_new, strict=False), start=1):
            cells_a = [_cell_signature(c) for c in a]
            cells_b = [_cell_signature(c) for c in b]
            while cells_a and cells_a[-1][0] is None and not cells_a[-1][3]:
                cells_a.pop()
            while cells_b and cells_b[-1][0] is None and not cells_b[-1][3]:
                cells_b.pop()
            if cells_a != cells_b:
                found.append(f"{name} row {number}: {cells_a} != {cells_b}")
        if sum(1 for _ in old[name].iter_rows()) != sum(1 for _ in new[name].iter_rows()):
            found.append(f"{name}: row counts differ")
    old.close()
    new.close()
    return found


def _cell_count(path: Path) -> int:
    from openpyxl import load_workbook

    book = load_workbook(path, read_only=True)
    try:
        return sum(len(row) for sheet in book.worksheets for row in sheet.iter_rows())
    finally:
        book.close()


def _command(db: Path, out: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "duban", "--db", str(db), "--rules", str(Path(__file__).with_name("province_rules")),
         "report", "quarterly", "--quarter", QUARTER, "--out", str(out)],
        capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    elapsed = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"duban report failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def _child(db: Path, out: Path) -> dict[str, Any]:
    output = subprocess.run([sys.executable, "-m", "bench.report_bench", "--measure", str(db), str(out)],
                            capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    if output.returncode:
        raise SystemExit(f"measuring {db.name} failed:\n{output.stderr}")
    return dict(json.loads(output.stdout.strip().splitlines()[-1]))


def main(scales: tuple[float, ...] = SCALES) -> None:
    from bench.province import build_store, size_at

    rows = []
    with tempfile.TemporaryDirectory(prefix="duban-report-") as tmp:
        for scale in scales:
            size = size_at(scale)
            db = Path(tmp) / f"province-{scale:g}x.db"
            out = Path(tmp) / f"reports-{scale:g}x"
            out.mkdir()
            started = time.perf_counter()
            build_store(db, scale).dispose()
            print(f"{scale:g}×: {size.units:,} units, {size.indicators:,} indicators, {size.projects:,} projects, "
                  f"{size.tasks:,} tasks — generated in {time.perf_counter() - started:.1f} s", flush=True)
            command = _command(db, out)
            parts = _child(db, out)
            html = out / f"quarterly-{QUARTER}.html"
            xlsx = out / f"quarterly-{QUARTER}.xlsx"
            rows.append((scale, command, parts, html.stat().st_size, xlsx.stat().st_size))
            db.unlink()
    print()
    print("| data | `duban report quarterly` | of which evaluation + model / HTML / .xlsx | list rows "
          "(indicators, projects, tasks, units ranked) | HTML / .xlsx size | peak RSS |")
    print("|---|---:|---|---|---|---:|")
    for scale, command, p, html_size, xlsx_size in rows:
        print(f"| {scale:g}× | {command:.1f} s | {p['prepare']:.1f} / {p['html']:.1f} / {p['xlsx']:.1f} s | "
              f"{p['indicators']:,}, {p['projects']:,}, {p['tasks']:,}, {p['ranking']:,} | "
              f"{html_size / 2**20:.1f} MiB / {xlsx_size / 2**20:.1f} MiB | {p['peak_mib']:.0f} MiB |")
    print()
    print("| data | five lists: openpyxl write-only (before) | XlsxWriter constant-memory (now) | ratio "
          "wall / CPU | content | whole quarterly workbook now (with the analysis sheets) |")
    print("|---|---:|---:|---:|---|---:|")
    for scale, _, p, _, _ in rows:
        same = "same" if not p["differences"] else "DIFFERS: " + "; ".join(p["differences"])
        print(f"| {scale:g}× ({p['cells_same']:,} cells) | {p['xlsx_before']:.1f} s (CPU {p['cpu_before']:.1f} s) | "
              f"{p['xlsx_same']:.1f} s (CPU {p['cpu_same']:.1f} s) | {p['xlsx_before'] / p['xlsx_same']:.1f}× / "
              f"{p['cpu_before'] / p['cpu_same']:.1f}× | {same} | {p['xlsx']:.1f} s, {p['cells']:,} cells |")
    print()
    print("| data | whole quarterly workbook: XlsxWriter cell by cell (before) | rows straight into its row file (now) "
          "| ratio wall / CPU | content |")
    print("|---|---:|---:|---:|---|")
    for scale, _, p, _, _ in rows:
        same = "same" if not p["differences_by_cell"] else "DIFFERS: " + "; ".join(p["differences_by_cell"])
        print(f"| {scale:g}× ({p['cells']:,} cells) | {p['xlsx_by_cell']:.1f} s (CPU {p['cpu_by_cell']:.1f} s) | "
              f"{p['xlsx']:.1f} s (CPU {p['cpu_now']:.1f} s) | {p['xlsx_by_cell'] / p['xlsx']:.1f}× / "
              f"{p['cpu_by_cell'] / p['cpu_now']:.1f}× | {same} |")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} (2 cores)")
    print(f"{rows[0][0]:g}× whole quarterly .xlsx {rows[0][2]['xlsx']:.1f} s (target ≤ 5 s): "
          f"{'met' if rows[0][2]['xlsx'] <= 5.0 else 'MISSED'}")
    first = rows[0][1]
    print()
    print(f"{rows[0][0]:g}× `duban report quarterly` {first:.1f} s (target ≤ {TARGET_SECONDS:g} s): "
          f"{'met' if first <= TARGET_SECONDS else 'MISSED'}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--measure":
        print(json.dumps(_measure(Path(sys.argv[2]), Path(sys.argv[3]))))
    else:
        main(tuple(float(a) for a in sys.argv[1:]) or SCALES)
