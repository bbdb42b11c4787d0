"""The portal in a real browser: Debian's chromium driven by Playwright (never a downloaded browser).

The application runs under uvicorn in a thread on a free loopback port, over a copy of the
example database, with the clock frozen at 15 July 2023. `make test` installs chromium
(`.ci/browser-deps.sh`); where it cannot, these tests are skipped and say why.
With DUBAN_WRITE_SCREENSHOTS=1 the board and the submission form are written to docs/.
"""

from __future__ import annotations

import io
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from webkit import LEAD_INDICATOR, PASSWORD, ROOT, UNIT, stored

from duban.app import requests as unit_requests
from duban.app.accounts import find_user, principal_of
from duban.store.db import transaction
from duban.store.models import Delivery
from duban.web.app import create_app

CHROMIUM = Path(os.environ.get("DUBAN_CHROMIUM", "/usr/bin/chromium"))
TASK = "L2023-04-2"  # 区发改局's own open task (L2023-01-1 was done when the plan was issued)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (make test installs it: .ci/browser-deps.sh)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(site) -> Iterator[str]:
    import uvicorn

    port = _free_port()
    config = uvicorn.Config(create_app(site.config), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(5)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    yield context.new_page()
    context.close()


def _screenshot(page, name: str) -> None:
    if os.environ.get("DUBAN_WRITE_SCREENSHOTS"):
        page.screenshot(path=str(ROOT / "docs" / name), full_page=True)


def _unit_signs_in(page, site, server: str) -> None:
    page.goto(server + site.link(UNIT))
    assert "确认登录" in page.inner_text("main")
    page.click("#confirm")
    page.wait_for_url(f"{server}/unit/{UNIT}")


def _office_signs_in(page, server: str) -> None:
    page.goto(server + "/login")
    page.fill("input[name=login]", "office")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/office")


def test_a_unit_signs_in_from_its_link_submits_and_gets_a_receipt(page, site, server):
    _unit_signs_in(page, site, server)
    page.click("text=在线报送")
    field = f'input[name="v:{LEAD_INDICATOR}|2023-06|"]'
    page.fill(field, "12.5")
    _screenshot(page, "web-report-form.png")
    page.click("#submit")
    page.wait_for_selector("#receipt-number")
    assert "报送成功" in page.inner_text("main")
    assert page.inner_text("#receipt-number").startswith("HZ20230715-")
    assert stored(site.engine, LEAD_INDICATOR, "2023-06") == 12.5


def test_a_wrong_figure_gets_its_error_on_the_form(page, site, server):
    _unit_signs_in(page, site, server)
    page.goto(f"{server}/unit/{UNIT}/report")
    page.fill(f'input[name="v:{LEAD_INDICATOR}|2023-06|"]', "十二")
    page.click("#submit")
    error = page.wait_for_selector("tr.invalid .field-error")
    assert "不是数值：'十二'" in error.inner_text()
    assert "本次报送未写入任何数据" in page.inner_text(".problems")
    assert stored(site.engine, LEAD_INDICATOR, "2023-06") is None


def test_a_unit_cannot_open_another_units_page(page, site, server):
    _unit_signs_in(page, site, server)
    response = page.goto(f"{server}/unit/tjj")
    assert response is not None and response.status == 403
    assert "无权访问其他单位的页面" in page.inner_text("main")
    assert page.goto(f"{server}/board").status == 403


def test_the_office_approves_a_closing_and_the_notice_lands_in_the_outbox(page, site, server):
    with transaction(site.engine) as session:
        who = principal_of(find_user(session, UNIT))
        unit_requests.post_request(session, who, UNIT, TASK, "close", "项目已开工。", now=site.clock(),
                                   uploads=[unit_requests.Upload("开工证明.pdf", b"%PDF-1.4 evidence")])
    _office_signs_in(page, server)
    assert "销号申请" in page.inner_text("main")
    page.fill("form.decide input[name=comment]", "同意销号。")
    page.click("form.decide button.approve")
    page.wait_for_url(f"{server}/office")
    assert "没有待审批的申请" in page.inner_text("main")
    with transaction(site.engine) as session:
        mail = session.scalars(select(Delivery).where(Delivery.subject.startswith("【销号通知】"))).one()
    assert mail.recipient_unit == UNIT
    page.goto(f"{server}/office/outbox")
    assert "【销号通知】" in page.inner_text("main")


def test_the_board_shows_the_new_light_after_a_submission(page, browser, site, server):
    _office_signs_in(page, server)
    board = f"{server}/board?kind=indicator&q=服务业投资增速"
    page.goto(board)
    before = page.inner_text("table.lights tbody")
    unit_page = browser.new_context(locale="zh-CN").new_page()
    _unit_signs_in(unit_page, site, server)
    unit_page.goto(f"{server}/unit/{UNIT}/report")
    unit_page.fill(f'input[name="v:{LEAD_INDICATOR}|2023-06|"]', "30")
    unit_page.click("#submit")
    unit_page.wait_for_selector("#receipt-number")
    page.goto(board)
    after = page.inner_text("table.lights tbody")
    assert after != before and "30%" in after and "2023年6月" in after
    page.goto(f"{server}/board")
    _screenshot(page, "web-board.png")


def test_an_upload_from_the_browser(page, site, server, tmp_path):
    _unit_signs_in(page, site, server)
    page.goto(f"{server}/unit/{UNIT}/report")
    sheet = tmp_path / "六月报表.csv"
    sheet.write_bytes(io.BytesIO(f"指标,期间,数值\n{LEAD_INDICATOR},2023-06,8.8\n".encode()).getvalue())
    page.set_input_files("input[name=sheet]", str(sheet))
    page.click("text=上传并报送")
    page.wait_for_selector("#receipt-number")
    assert "六月报表.csv" in page.inner_text("main")
    assert stored(site.engine, LEAD_INDICATOR, "2023-06") == 8.8
