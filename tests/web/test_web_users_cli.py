"""`duban users …`: accounts from the command line, and a one-time link that signs a unit in."""

from __future__ import annotations

from click.testing import CliRunner
from webkit import EXAMPLE, NOW, csrf_of, rule_set

from duban.cli import main
from duban.store.db import create_all, make_engine
from duban.store.importer import import_paths
from duban.web.app import WebConfig, create_app


def _run(db, *args):
    return CliRunner().invoke(main, ["--db", str(db), "users", *args], catch_exceptions=False)


def test_accounts_are_made_listed_linked_and_disabled(tmp_path, monkeypatch):
    db = tmp_path / "duban.db"
    engine = make_engine(str(db))
    create_all(engine)
    assert import_paths(engine, [EXAMPLE], now=NOW, imported_by="test").ok
    monkeypatch.setenv("DUBAN_WEB_URL", "https://duban.example.org/")
    made = _run(db, "units")
    assert made.exit_code == 0 and "已为 32 个单位新建账号" in made.output  # 33 units; the working group has none
    assert "所有单位都已有账号" in _run(db, "units").output
    office = _run(db, "add", "wang", "--role", "office", "--name", "王主任", "--password", "long-enough-pw")
    assert office.exit_code == 0 and "已新建账号 wang" in office.output
    short = _run(db, "add", "li", "--role", "office", "--password", "short")
    assert short.exit_code == 1 and "密码至少10个字符" in short.output
    orphan = _run(db, "add", "x", "--role", "unit", "--unit", "nowhere")
    assert orphan.exit_code == 1 and "没有找到单位“nowhere”" in orphan.output
    listing = _run(db, "list").output
    assert "区发改局" in listing and "办公室" in listing
    link = _run(db, "link", "fgj").output.strip()
    assert link.startswith("https://duban.example.org/signin/")
    client = _client(engine)
    path = link.removeprefix("https://duban.example.org")
    page = client.get(path)
    assert client.post(path, data={"csrf": csrf_of(page.text)}).status_code == 303
    assert client.get("/unit/fgj").status_code == 200
    assert _run(db, "disable", "fgj").exit_code == 0
    assert client.get("/unit/fgj").status_code == 303  # its session ended with the account
    assert "已停用" in _run(db, "link", "fgj").output


def _client(engine):
    from starlette.testclient import TestClient

    return TestClient(create_app(WebConfig(engine=engine, rule_set_loader=rule_set, clock=lambda: NOW)),
                      follow_redirects=False)
