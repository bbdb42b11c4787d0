"""Access control on EVERY route, as a generated table: route × role → status.

The routes come from the application's own list (duban.web.app.ROUTES), so a new route without an
expectation here fails. A unit officer may open only their own unit's pages; the working group's
members and leaders read everything and change nothing; the office does everything.
Set DUBAN_WRITE_ACCESS_TABLE=1 to rewrite docs/web-access.md from the statuses observed.
"""

from __future__ import annotations

import os
import re

from webkit import ROOT, UNIT, csrf_of

from duban.app import requests as unit_requests
from duban.app.accounts import find_user, principal_of
from duban.store.db import transaction
from duban.web.app import ROUTES

TASK = "L2023-04-2"  # 区发改局's own open task (L2023-01-1 was done when the plan was issued)
ROLES = ("anonymous", "unit", "other unit", "member", "leader", "office")
DENIED = {401, 403}


def _expected_allowed(access: str, method: str, role: str, path: str = "") -> bool:
    if access == "public":
        return True
    if role == "anonymous":
        return False
    if access == "signed" and path.startswith("/reports"):
        return True  # a published 专报/通报 goes to every member unit
    if access == "signed":
        return role != "other unit"  # the other signed route taking an id is an attachment of UNIT's
    if access == "read":
        return role in ("member", "leader", "office")
    if access == "office":
        return role == "office"
    if access == "own":
        return role == "unit" or (method == "GET" and role in ("member", "leader", "office"))
    raise AssertionError(access)


def _path(template: str, site, attachment_id: int, request_id: int) -> str:
    values = {"code": UNIT, "task": TASK, "kind": "indicator", "subject": "service_investment_growth",
              "number": "HZ20230715-000001", "id:int": str(attachment_id), "request:int": str(request_id),
              "token": site.link(UNIT).removeprefix("/signin/"), "name": "monthly-2023-06.html"}
    return re.sub(r"\{([^}]+)\}", lambda m: values[m.group(1)], template)


def test_every_route_answers_each_role_as_the_table_says(site):
    with transaction(site.engine) as session:
        who = principal_of(find_user(session, UNIT))
        request = unit_requests.post_request(session, who, UNIT, TASK, "progress", "进展", now=site.clock(),
                                             uploads=[unit_requests.Upload("note.txt", "已完成".encode())])
        session.flush()
        attachment_id = unit_requests.attachments_of(session, [request.id])[request.id][0].id
        request_id = request.id
    clients = {"anonymous": site.client(), "unit": site.sign_in(UNIT), "other unit": site.sign_in("tjj"),
               "member": site.sign_in("member"), "leader": site.sign_in("leader"), "office": site.sign_in("office")}
    tokens = {}
    for role, client in clients.items():
        page = client.get("/login") if role == "anonymous" else client.get(f"/unit/{UNIT}" if role in ("unit", "other unit") else "/board")
        tokens[role] = csrf_of(page.text) if role in ("anonymous", "unit", "member", "leader", "office") else None
    tokens["other unit"] = csrf_of(clients["other unit"].get("/unit/tjj").text)

    table: list[tuple[str, str, str, dict[str, int]]] = []
    wrong = []
    for spec in sorted(ROUTES, key=lambda s: (s.path, s.methods)):
        if spec.path in ("/logout",):
            continue  # signing out would end the session the next rows use; covered in test_web_auth
        for method in spec.methods:
            row: dict[str, int] = {}
            for role in ROLES:
                client = clients[role]
                path = _path(spec.path, site, attachment_id, request_id)
                if spec.access == "public" and method == "POST":
                    # Signing in changes who the client is: a fresh client with its own form token.
                    client = site.client()
                    token = csrf_of(client.get(path if "signin" in path else "/login").text)
                    status = client.post(path, data={"csrf": token}).status_code
                    row[role] = status
                    if status in (403, 500):
                        wrong.append(f"{method} {spec.path} as {role}: {status} (access {spec.access})")
                    continue
                if method == "GET":
                    status = client.get(path).status_code
                else:
                    status = client.post(path, data={"csrf": tokens[role] or ""}).status_code
                # A GET that needs signing in redirects to /login; that is a refusal too.
                refused = status in DENIED or (status == 303 and role == "anonymous" and spec.access != "public")
                row[role] = status
                if refused == _expected_allowed(spec.access, method, role, spec.path):
                    wrong.append(f"{method} {spec.path} as {role}: {status} (access {spec.access})")
            table.append((method, spec.path, spec.access, row))
    if os.environ.get("DUBAN_WRITE_ACCESS_TABLE"):
        _write(table)
    assert not wrong, "\n".join(wrong)
    assert len(table) >= 25


def _write(table: list[tuple[str, str, str, dict[str, int]]]) -> None:
    lines = ["# Web access table (generated by tests/web/test_web_access.py)", "",
             "Status of every route for every role, with the CSRF token of the role's own session on POSTs.",
             "303 for the anonymous visitor is the redirect to /login; 422 is an allowed request whose form was empty;",
             "POST /login answers 401 to the empty credentials sent; POST /signin spends a fresh link for each cell.",
             "", "| method | route | access | " + " | ".join(ROLES) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in ROLES) + " |"]
    lines += [f"| {m} | `{p}` | {a} | " + " | ".join(str(row[r]) for r in ROLES) + " |" for m, p, a, row in table]
    (ROOT / "docs" / "web-access.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_a_published_report_opens_for_anyone_signed_in_and_nothing_else_is_served(site):
    # The link in a 月调度 mail: /reports/monthly-2023-06.html, for every member unit.
    unit = site.sign_in("tjj")
    page = unit.get("/reports/monthly-2023-06.html")
    assert page.status_code == 200 and "2023年6月月度专报" in page.text
    assert site.client().get("/reports/monthly-2023-06.html").status_code in (303, 401)  # signed out: sign in first
    for name in ("monthly-2099-01.html", "..%2Fduban.db", ".hidden.html", "monthly-2023-06.html.bak"):
        missing = unit.get(f"/reports/{name}")
        assert missing.status_code == 404, name
    assert "尚未发布" in unit.get("/reports/monthly-2099-01.html").text


def test_the_published_reports_are_listed_by_their_programmes_names(site):
    page = site.sign_in("tjj").get("/reports")
    assert page.status_code == 200 and "2023年6月月度专报" in page.text and 'href="/reports/monthly-2023-06.html"' in page.text
