"""Fixtures of the web tests: the example imported and evaluated once per session, copied per test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from webkit import NOW, Clock, Site, make_site, rule_set

from duban.web.app import WebConfig


@pytest.fixture(scope="session")
def web_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from duban.store.db import create_all, make_engine

    path = tmp_path_factory.mktemp("web-template") / "duban.db"
    engine = make_engine(str(path))
    create_all(engine)
    make_site(engine)
    engine.dispose()  # the last connection closing checkpoints the WAL into the file
    return path


@pytest.fixture
def site(web_template: Path, tmp_path: Path) -> Iterator[Site]:
    from duban.store.db import make_engine

    copy = tmp_path / "duban.db"
    shutil.copyfile(web_template, copy)
    engine = make_engine(str(copy))
    clock = Clock(NOW)
    reports = tmp_path / "reports"  # published 专报/通报, served at /reports/
    reports.mkdir()
    (reports / "monthly-2023-06.html").write_text("<h1>2023年6月月度专报</h1>", encoding="utf-8")
    yield Site(engine, WebConfig(engine=engine, rule_set_loader=rule_set, clock=clock, reports_dir=reports), clock)
    engine.dispose()
