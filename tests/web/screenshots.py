"""Retake docs/web-board.png and docs/web-report-form.png from the demo's Lucheng database.

    make demo && .venv/bin/python tests/web/screenshots.py

Serves a copy of demo-workspace/lucheng/duban.db with `duban web --at 2024-01-31` (the demo's
clock), signs the office and 区发改局 in with one-time links, and photographs the board and the
submission form in Debian's chromium (Playwright's `executable_path`; never a downloaded browser).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("DUBAN_CHROMIUM", "/usr/bin/chromium"))
AT = "2024-01-31"
UNIT = "fgj"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    import httpx
    from playwright.sync_api import sync_playwright

    from duban.app.accounts import LINK_LIFETIME, find_user, issue_link
    from duban.cli.rules import parse_at
    from duban.store.db import make_engine, transaction
    from duban.store.migrate import upgrade

    source = ROOT / "demo-workspace" / "lucheng" / "duban.db"
    if not source.exists():
        raise SystemExit("先运行 make demo")
    at = parse_at(AT)
    with tempfile.TemporaryDirectory(prefix="duban-shots-") as folder:
        db = Path(folder) / "duban.db"
        shutil.copyfile(source, db)
        engine = make_engine(str(db))
        upgrade(engine)
        with transaction(engine) as session:
            office = issue_link(session, find_user(session, "office"), at, LINK_LIFETIME)
            unit = issue_link(session, find_user(session, UNIT), at, LINK_LIFETIME)
        engine.dispose()
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([str(Path(sys.executable).parent / "duban"), "--db", str(db), "--rules",
                                   str(ROOT / "rules"), "web", "--at", AT, "--port", str(port)], cwd=ROOT)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(base + "/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("duban web did not start")
                time.sleep(0.3)
            with sync_playwright() as playwright:
                # Chinese browser chrome too (the file picker's button), as an official's browser shows it.
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--lang=zh-CN"],
                                                     env={**os.environ, "LANGUAGE": "zh_CN", "LANG": "zh_CN.UTF-8"})
                for link, path, shot in ((office, "/board", "web-board.png"),
                                         (unit, f"/unit/{UNIT}/report", "web-report-form.png")):
                    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
                    page = context.new_page()
                    page.goto(f"{base}/signin/{link}")
                    page.click("#confirm")
                    page.wait_for_load_state()
                    page.goto(base + path)
                    page.screenshot(path=str(ROOT / "docs" / shot), full_page=True)
                    print(f"docs/{shot}")
                    context.close()
                browser.close()
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
