"""The web portal at province scale (bench/province.py: 3,000 units, 6,000 indicators, 2,000 projects,
10,000 tasks): board and unit page latency, 50 concurrent clients (wrk), and a submission's new light.

Targets (issue 13): board first page ≤ 300 ms median, a unit's page ≤ 100 ms median; 50 concurrent
clients p95 ≤ 1 s with no errors; a submission shows its new light on the board ≤ 1 s, re-evaluating
only what it touched (the ratio to a full evaluation is printed).
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

LUA = """
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout
  io.write(string.format("RESULT requests=%d p50=%.1f p95=%.1f p99=%.1f errors=%d non2xx=%d\\n", summary.requests,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000, errors, summary.errors.status))
end
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _median_ms(client: object, path: str, cookie: str, n: int = 25) -> tuple[float, int]:
    import httpx

    assert isinstance(client, httpx.Client)
    times = []
    status = 0
    for _ in range(n):
        began = time.perf_counter()
        response = client.get(path, headers={"Cookie": cookie})
        times.append((time.perf_counter() - began) * 1000)
        status = response.status_code
    return statistics.median(times), status


def main() -> None:
    import httpx

    from bench.province import EVALUATE_AT, RULES_DIR, build_store
    from duban.app import accounts, board, portal
    from duban.engine.loader import load_rule_set
    from duban.store.db import transaction
    from duban.store.models import IndicatorUnit

    print("load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()), flush=True)
    rule_set = load_rule_set(RULES_DIR)
    with tempfile.TemporaryDirectory(prefix="duban-web-bench-") as tmp:
        db = Path(tmp) / "province.db"
        began = time.perf_counter()
        engine = build_store(db)
        print(f"province store built in {time.perf_counter() - began:.1f} s", flush=True)
        full = board.refresh_all(engine, rule_set, EVALUATE_AT)
        print(f"full evaluation → {full.lights:,} lights in {full.seconds:.2f} s", flush=True)
        with transaction(engine) as session:
            unit, indicator = session.execute(select(IndicatorUnit.unit_code, IndicatorUnit.indicator_code)
                                              .where(IndicatorUnit.position == 0).limit(1)).one()
            office = accounts.add_user(session, login="office", role="office", now=EVALUATE_AT, password="bench-password")
            officer = accounts.add_user(session, login=unit, role="unit", now=EVALUATE_AT, unit_code=unit)
            office_cookie = "duban_session=" + accounts.start_session(session, office, EVALUATE_AT, "bench").token
            unit_cookie = "duban_session=" + accounts.start_session(session, officer, EVALUATE_AT, "bench").token
            principal = accounts.principal_of(officer)
        engine.dispose()

        port = _free_port()
        # The server's clock stands where the lights were evaluated (and the sessions were started).
        env = {**os.environ, "DUBAN_DB": str(db), "DUBAN_RULES": str(RULES_DIR), "DUBAN_WEB_AT": EVALUATE_AT.isoformat()}
        # Served as `duban web --workers 2` serves it (duban.web.server.serve).
        server = subprocess.Popen([sys.executable, "-c", f"from duban.web.server import serve; serve('127.0.0.1', {port}, 2)"],
                                  env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=base, timeout=30) as client:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        if client.get("/healthz").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if time.monotonic() > deadline:
                        raise SystemExit("the web server did not start")
                    time.sleep(0.2)
                client.get("/board", headers={"Cookie": office_cookie})  # warm both workers' rule set and templates
                client.get(f"/unit/{unit}", headers={"Cookie": unit_cookie})
                board_ms, board_status = _median_ms(client, "/board", office_cookie)
                unit_ms, unit_status = _median_ms(client, f"/unit/{unit}", unit_cookie)
                filtered_ms, _ = _median_ms(client, "/board?level=red&kind=indicator&page=3", office_cookie)
            print(f"board first page: median {board_ms:.0f} ms (status {board_status}; target ≤ 300 ms)")
            print(f"board filtered, page 3: median {filtered_ms:.0f} ms")
            print(f"unit page: median {unit_ms:.0f} ms (status {unit_status}; target ≤ 100 ms)", flush=True)
            _load(base, "/board", office_cookie, "board")
            _load(base, f"/unit/{unit}", unit_cookie, "unit page")
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()

        # A submission: through the importer, then only the touched indicator's rules re-evaluated.
        from duban.store.db import make_engine

        engine = make_engine(str(db))
        # A serving worker has these loaded after its first receipt; importing them is not the submission's cost.
        import duban.app.rounds
        import duban.notifiers.message
        import duban.notifiers.outbox  # noqa: F401

        began = time.perf_counter()
        outcome = portal.submit_form(engine, principal, unit, [(indicator, "2025-06", "", "123.4")], now=EVALUATE_AT)
        submitted = time.perf_counter() - began
        assert outcome.ok, outcome.problem_lines
        incremental = board.refresh_indicators(engine, rule_set, EVALUATE_AT, outcome.touched)
        print(f"submission (import + receipt) {submitted * 1000:.0f} ms; incremental evaluation of "
              f"{sorted(outcome.touched)} {incremental.seconds * 1000:.0f} ms ({incremental.lights} lights) → "
              f"new light after {(submitted + incremental.seconds) * 1000:.0f} ms (target ≤ 1000 ms)")
        again = board.refresh_all(engine, rule_set, EVALUATE_AT)
        print(f"incremental / full evaluation: {incremental.seconds:.3f} s / {again.seconds:.2f} s = "
              f"1/{again.seconds / max(incremental.seconds, 1e-6):.0f}")
        engine.dispose()
    print("load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()), flush=True)


def _load(base: str, path: str, cookie: str, label: str) -> None:
    wrk = shutil.which("wrk")
    if wrk is None:
        print(f"{label}: wrk not installed (apt-get install wrk); 50-client load skipped")
        return
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA)
    try:
        result = subprocess.run([wrk, "-t2", "-c50", "-d15s", "--timeout", "10s", "-s", script.name,
                                 "-H", f"Cookie: {cookie}", base + path], capture_output=True, text=True, check=False)
    finally:
        Path(script.name).unlink()
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("RESULT")), result.stdout + result.stderr)
    print(f"{label}, 50 concurrent clients for 15 s: {line.removeprefix('RESULT ')} (ms; target p95 ≤ 1000, no errors)",
          flush=True)


if __name__ == "__main__":
    main()
