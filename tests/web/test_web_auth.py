"""Signing in: one-time links that mail scanners cannot spend, office passwords, sessions, CSRF, rate limits."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import func, select
from webkit import PASSWORD, UNIT, csrf_of

from duban.app import accounts
from duban.store.db import transaction
from duban.store.web_models import AuditEntry, WebSession


def test_a_link_opened_by_a_mail_scanner_is_not_spent(site):
    link = site.link(UNIT)
    scanner = site.client()
    for _ in range(3):
        assert scanner.get(link).status_code == 200  # a GET shows the confirm page only
    person = site.client()
    page = person.get(link)
    assert "确认登录" in page.text and "区发改局" in page.text
    response = person.post(link, data={"csrf": csrf_of(page.text)})
    assert response.status_code == 303
    assert person.get("/unit/fgj").status_code == 200


def test_a_link_works_once_and_its_replay_is_refused(site):
    link = site.link(UNIT)
    first = site.client()
    assert first.post(link, data={"csrf": csrf_of(first.get(link).text)}).status_code == 303
    second = site.client()
    page = second.get(link)
    assert page.status_code == 410 and "只能使用一次" in page.text
    replay = second.post(link, data={"csrf": second.cookies.get("duban_pre") or "x"})
    assert replay.status_code == 410
    assert second.get("/unit/fgj").status_code == 303  # still not signed in: sent to /login


def test_an_expired_link_is_refused(site):
    link = site.link(UNIT, lifetime=dt.timedelta(hours=1))
    site.clock.at += dt.timedelta(hours=2)
    client = site.client()
    page = client.get(link)
    assert page.status_code == 410
    # The officer learns when it ran out and where a fresh one is: the latest notice, or the office.
    assert re.search(r"登录链接已于\d{4}年\d{1,2}月\d{1,2}日 \d\d:\d\d过期", page.text)
    assert "最新一封通知中的链接" in page.text and 'href="/login"' in page.text


def test_a_link_with_a_forged_signature_or_user_is_refused(site):
    link = site.link(UNIT)
    user, expiry, nonce, signature = link.removeprefix("/signin/").split(".")
    client = site.client()
    assert "签名不符" in client.get(f"/signin/{user}.{expiry}.{nonce}.{signature[:-2]}AA").text
    assert "签名不符" in client.get(f"/signin/{int(user) + 1}.{expiry}.{nonce}.{signature}").text
    assert "签名不符" in client.get(f"/signin/{user}.{int(expiry) + 86400}.{nonce}.{signature}").text


def test_the_confirm_post_needs_the_pages_token(site):
    link = site.link(UNIT)
    client = site.client()
    client.get(link)
    response = client.post(link, data={"csrf": "not-the-token"})
    assert response.status_code == 403 and "校验码" in response.text


def test_office_password_login_and_a_wrong_password(site):
    client = site.client()
    page = client.get("/login")
    wrong = client.post("/login", data={"csrf": csrf_of(page.text), "login": "office", "password": "nope-nope-nope"})
    assert wrong.status_code == 401 and "账号或密码不正确" in wrong.text
    right = client.post("/login", data={"csrf": csrf_of(wrong.text), "login": "office", "password": PASSWORD})
    assert right.status_code == 303
    cookie = right.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("samesite", "SameSite")
    assert client.get("/office").status_code == 200


def test_login_attempts_are_limited_per_account_in_the_database(site):
    client = site.client()
    for _ in range(accounts.LOGIN_FAILURES_ALLOWED):
        page = client.get("/login")
        client.post("/login", data={"csrf": csrf_of(page.text), "login": "office", "password": "wrong-password"})
    page = client.get("/login")
    # Even the right password is refused now, from a fresh client (another worker would see the same rows).
    other = site.client()
    other_page = other.get("/login")
    refused = other.post("/login", data={"csrf": csrf_of(other_page.text), "login": "office", "password": PASSWORD})
    assert refused.status_code == 401 and "失败次数过多" in refused.text
    site.clock.at += accounts.LOGIN_WINDOW + dt.timedelta(seconds=1)
    page = other.get("/login")
    assert other.post("/login", data={"csrf": csrf_of(page.text), "login": "office", "password": PASSWORD}).status_code == 303


def test_sessions_live_in_the_database_and_logout_ends_them(site):
    client = site.sign_in("office")
    with transaction(site.engine) as session:
        assert session.scalar(select(func.count()).select_from(WebSession).where(WebSession.ended_at.is_(None))) == 1
    # A second application (another worker) over the same database knows the session.
    other_worker = site.client()
    other_worker.cookies.set("duban_session", client.cookies.get("duban_session"))
    assert other_worker.get("/office").status_code == 200
    page = client.get("/office")
    assert client.post("/logout", data={"csrf": csrf_of(page.text)}).status_code == 303
    assert other_worker.get("/office").status_code == 303  # back to the login page
    with transaction(site.engine) as session:
        actions = list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert actions == ["login", "logout"]


def test_a_session_expires(site):
    client = site.sign_in("office")
    site.clock.at += accounts.SESSION_LIFETIME + dt.timedelta(minutes=1)
    assert client.get("/office").status_code == 303


def test_passwords_are_salted_scrypt_hashes():
    first, second = accounts.hash_password("secret-secret"), accounts.hash_password("secret-secret")
    assert first != second and first.startswith("scrypt$")
    assert accounts.check_password("secret-secret", first)
    assert not accounts.check_password("secret-secreT", first)


def test_a_digest_link_lands_on_its_page_and_never_elsewhere(site):
    from duban.app.links import REPORT_LABEL, TASKS_LABEL, personal_links

    with transaction(site.engine) as session:
        links = personal_links(session, UNIT, site.clock(), "https://duban.example.org/")
        assert personal_links(session, "zhuanban", site.clock(), "https://duban.example.org") == {}  # no account
    assert set(links) == {REPORT_LABEL, TASKS_LABEL}
    report = links[REPORT_LABEL].removeprefix("https://duban.example.org")
    client = site.client()
    page = client.get(report)
    assert client.post(report.split("?")[0], data={"csrf": csrf_of(page.text), "next": "/unit/fgj/report"}
                       ).headers["location"] == "/unit/fgj/report"
    tasks = links[TASKS_LABEL].removeprefix("https://duban.example.org")
    other = site.client()
    page = other.get(tasks.split("?")[0] + "?next=//evil.example.com/")
    assert 'name="next" value=""' in page.text  # an address elsewhere is dropped
    assert other.post(tasks.split("?")[0], data={"csrf": csrf_of(page.text), "next": "//evil.example.com/"}
                      ).headers["location"] == "/"


def test_a_rounds_digests_get_their_units_links_when_the_web_has_an_address(site, monkeypatch):
    import dataclasses

    from duban.app.links import REPORT_LABEL, attach_personal_links

    @dataclasses.dataclass(frozen=True)
    class Recipient:
        code: str

    @dataclasses.dataclass(frozen=True)
    class Digest:  # the shape of notifiers.digest.Digest that matters here
        recipient: Recipient
        links: dict[str, str] = dataclasses.field(default_factory=dict)

    digests = [Digest(Recipient(UNIT)), Digest(Recipient("zhuanban"))]
    with transaction(site.engine) as session:
        monkeypatch.delenv("DUBAN_WEB_URL", raising=False)
        assert attach_personal_links(session, digests, site.clock()) == digests  # no address: no links
        monkeypatch.setenv("DUBAN_WEB_URL", "https://duban.example.org")
        linked = attach_personal_links(session, digests, site.clock())
    assert linked[0].links[REPORT_LABEL].startswith("https://duban.example.org/signin/")
    assert linked[0].links[REPORT_LABEL].endswith("?next=/unit/fgj/report")
    assert linked[1].links == {}  # the working group has no unit account


def test_the_office_outbox_names_the_unit_and_the_status_in_chinese(site):
    from duban.store.models import Delivery

    with transaction(site.engine) as session:
        session.add(Delivery(idempotency_key="k-outbox-page", message_id="<m@x>", channel="email", recipient_unit=UNIT,
                             address="fgj@lucheng.example.org", subject="【督办提醒】测试", status="failed", attempts=3,
                             next_attempt_at=dt.datetime(2023, 7, 17, 1, tzinfo=dt.UTC), last_error="550 mailbox",
                             created_at=dt.datetime(2023, 7, 17, 1, tzinfo=dt.UTC)))
    client = site.client()
    page = client.get("/login")
    client.post("/login", data={"csrf": csrf_of(page.text), "login": "office", "password": PASSWORD})
    outbox = client.get("/office/outbox")
    assert outbox.status_code == 200
    assert "区发改局（fgj）" in outbox.text and "发送失败" in outbox.text
    assert ">failed<" not in outbox.text and f"<td>{UNIT}</td>" not in outbox.text
