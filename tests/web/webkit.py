"""Shared set-up of the web tests: Lucheng's example imported, one account per role, a frozen clock.

The clock stands at 2023-07-15 09:00 Beijing time: the June figures are due on 10 July, so the
unit owes them; the lights are those of that morning.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, select
from starlette.testclient import TestClient

from duban.app import accounts
from duban.app.board import refresh_all
from duban.engine.loader import load_rule_set
from duban.engine.rules import RuleSet
from duban.store.db import transaction
from duban.store.importer import import_paths
from duban.store.models import Observation
from duban.store.periods import SHANGHAI
from duban.web.app import WebConfig, create_app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "lucheng-2023"
RULES = ROOT / "rules" / "lucheng"
NOW = dt.datetime(2023, 7, 15, 9, 0, tzinfo=SHANGHAI)
PASSWORD = "office-pass-2023"
UNIT = "fgj"  # 区发改局: leads service_investment_growth
OTHER_UNIT = "tjj"
LEAD_INDICATOR = "service_investment_growth"

_RULE_SET: RuleSet | None = None


def rule_set() -> RuleSet:
    global _RULE_SET
    if _RULE_SET is None:
        _RULE_SET = load_rule_set(RULES)
    return _RULE_SET


class Clock:
    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at


@dataclass
class Site:
    engine: Engine
    config: WebConfig
    clock: Clock

    def client(self) -> TestClient:
        return TestClient(create_app(self.config), base_url="http://testserver", follow_redirects=False)

    def link(self, login: str, lifetime: dt.timedelta = accounts.LINK_LIFETIME) -> str:
        with transaction(self.engine) as session:
            return "/signin/" + accounts.issue_link(session, accounts.find_user(session, login), self.clock(), lifetime)

    def sign_in(self, login: str) -> TestClient:
        """A client signed in as `login` (office: by password; others: by a one-time link)."""
        client = self.client()
        if login == "office":
            page = client.get("/login")
            response = client.post("/login", data={"csrf": csrf_of(page.text), "login": "office", "password": PASSWORD})
        else:
            link = self.link(login)
            page = client.get(link)
            response = client.post(link, data={"csrf": csrf_of(page.text)})
        assert response.status_code == 303, response.text
        return client


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def make_site(engine: Engine, *, without_june: bool = True) -> Site:
    report = import_paths(engine, [EXAMPLE], now=NOW, imported_by="test")
    assert report.ok, report.problem_lines()
    if without_june:
        # The unit has not reported June yet: that is what it will submit.
        with transaction(engine) as session:
            session.execute(delete(Observation).where(Observation.period == "2023-06"))
    clock = Clock(NOW)
    with transaction(engine) as session:
        accounts.add_user(session, login="office", role="office", now=NOW, name="办公室", password=PASSWORD)
        accounts.add_user(session, login="leader", role="leader", now=NOW, name="专班领导")
        accounts.add_user(session, login="member", role="member", now=NOW, name="专班成员")
        accounts.add_user(session, login=UNIT, role="unit", now=NOW, name="区发改局", unit_code=UNIT)
        accounts.add_user(session, login=OTHER_UNIT, role="unit", now=NOW, name="区统计局", unit_code=OTHER_UNIT)
    refresh_all(engine, rule_set(), NOW)
    config = WebConfig(engine=engine, rule_set_loader=rule_set, clock=clock)
    return Site(engine, config, clock)


def stored(engine: Engine, indicator: str, period: str, unit: str = "") -> Any:
    with transaction(engine) as session:
        return session.scalar(select(Observation.value).where(Observation.indicator_code == indicator,
                                                               Observation.period == period,
                                                               Observation.unit_code == unit))
