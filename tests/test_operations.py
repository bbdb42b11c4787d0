"""Running duban as a district's IT office does: a config file, doctor, backup and restore, upgrades,
several programmes in one installation, the health endpoint, JSON logs and private files."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging
import os
import stat
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, MetaData, func, inspect, select, text

from duban.app.doctor import FAIL, OK, WARN, diagnose
from duban.cli import main
from duban.config import ConfigFileError, apply, file_mode_umask, load_config, masked
from duban.store.backup import BackupError, backup, restore
from duban.store.db import make_engine
from duban.store.migrate import upgrade

ROOT = Path(__file__).resolve().parents[1]
LUCHENG = ROOT / "examples" / "lucheng-2023"
HUZHOU = ROOT / "examples" / "huzhou-2023"
RULES = ROOT / "rules"
NOW = dt.datetime(2026, 6, 1, 2, 0, tzinfo=dt.UTC)


def run(*args: str, env: dict[str, str | None] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture(autouse=True)
def _keep_process_state() -> object:
    # `duban` copies the configuration file into its process environment and sets a private umask:
    # in-process CLI runs here must leave both as they found them for the tests that follow.
    previous = os.umask(0o022)
    os.umask(previous)
    environ = dict(os.environ)
    yield
    os.umask(previous)
    os.environ.clear()
    os.environ.update(environ)


@pytest.fixture()
def lucheng_db(tmp_path: Path) -> Path:
    path = tmp_path / "lucheng.db"
    assert run("--db", str(path), "db", "upgrade")[0] == 0
    code, output = run("--db", str(path), "import", str(LUCHENG))
    assert code == 0, output
    return path


# -- the configuration file -------------------------------------------------------------------------


def test_the_file_fills_the_environment_and_the_environment_still_wins(tmp_path: Path) -> None:
    secret = tmp_path / "smtp-password"
    secret.write_text("s3cret\n", encoding="utf-8")
    config_file = tmp_path / "duban.toml"
    config_file.write_text(
        '[database]\nurl = "/srv/duban/a.db"\n[smtp]\nhost = "smtp.zj.gov.cn"\nport = 465\n'
        'password_file = "smtp-password"\n[mail]\ntransport = "smtp,dingtalk"\n', encoding="utf-8")
    environ = {"DUBAN_SMTP_HOST": "mail.internal"}
    apply(load_config(config_file), None, environ)
    assert environ["DUBAN_SMTP_HOST"] == "mail.internal"  # the environment overrides the file
    assert environ["DUBAN_SMTP_PORT"] == "465"
    assert environ["DUBAN_SMTP_PASSWORD"] == "s3cret"  # a secret read from its own file
    assert environ["DUBAN_TRANSPORT"] == "smtp,dingtalk"


def test_a_misspelt_setting_is_named_with_its_line_and_a_suggestion(tmp_path: Path) -> None:
    config_file = tmp_path / "duban.toml"
    config_file.write_text('[smtp]\nhost = "a"\nprot = 465\n', encoding="utf-8")
    with pytest.raises(ConfigFileError) as raised:
        load_config(config_file)
    assert f"{config_file}:3" in str(raised.value)
    assert "“prot”" in str(raised.value) and "是否应为“port”" in str(raised.value)


def test_a_toml_syntax_error_is_explained_in_chinese(tmp_path: Path) -> None:
    config_file = tmp_path / "duban.toml"
    config_file.write_text("[smtp]\nhost = smtp.zj.gov.cn\n", encoding="utf-8")
    code, output = run("--config", str(config_file), "config", "show")
    assert code == 1
    assert "第 2 行" in output and "文字要加英文双引号" in output


def test_config_show_masks_secrets_and_says_where_each_value_came_from(tmp_path: Path) -> None:
    config_file = tmp_path / "duban.toml"
    config_file.write_text(
        '[database]\nurl = "postgresql+psycopg://duban:pw@db/duban"\n[dingtalk]\n'
        'webhook = "https://oapi.dingtalk.com/robot/send?access_token=abcdef123"\nsecret = "SECxyz"\n',
        encoding="utf-8")
    code, output = run("--config", str(config_file), "config", "show", env={"DUBAN_DB": "", "DUBAN_DINGTALK_SECRET": ""})
    assert code == 0, output
    assert "abcdef123" not in output and "SECxyz" not in output and ":pw@" not in output
    assert "access_token=****" in output and f"来自{config_file}" in output
    assert masked("DUBAN_SMTP_PASSWORD", "x") == "****（已设置）"


# -- doctor -----------------------------------------------------------------------------------------


def test_doctor_on_a_healthy_installation_reports_every_check_normal(lucheng_db: Path) -> None:
    report = diagnose(make_engine(str(lucheng_db)), shown_db=str(lucheng_db), rules_root=RULES, env={},
                      now=NOW)
    assert [check.name for check in report.checks] == ["数据库", "方案数据", "规则", "通知模板", "节假日日历", "发件箱"]
    assert report.status == OK, [check.line() for check in report.checks]


def test_from_november_doctor_asks_for_next_years_holiday_notice(lucheng_db: Path) -> None:
    report = diagnose(make_engine(str(lucheng_db)), shown_db="x", rules_root=RULES, env={},
                      now=dt.datetime(2026, 11, 30, 2, tzinfo=dt.UTC))
    calendar = next(check for check in report.checks if check.name == "节假日日历")
    assert calendar.status == WARN and "2027" in calendar.found and "duban calendar add 2027" in calendar.action


def test_doctor_on_a_broken_configuration_names_the_fault_and_exits_2(tmp_path: Path, lucheng_db: Path) -> None:
    code, output = run("--db", str(tmp_path / "empty.db"), "doctor", "--no-network")
    assert code == 2
    assert "[故障] 数据库" in output and "duban db upgrade" in output
    code, output = run("--db", str(lucheng_db), "doctor", env={
        "DUBAN_TRANSPORT": "smtp", "DUBAN_SMTP_HOST": "127.0.0.1", "DUBAN_SMTP_PORT": "9", "DUBAN_SMTP_TLS": "none"})
    assert code == 2
    assert "[故障] 邮件服务器" in output and "连接被拒绝" in output


def test_doctor_checks_smtp_up_to_login_and_flags_an_untrusted_certificate(lucheng_db: Path, tmp_path: Path) -> None:
    from duban.notifiers.sink import SmtpSink, make_self_signed_cert

    made = make_self_signed_cert(tmp_path)
    if made is None:
        pytest.skip("no way to make a certificate on this machine")
    cert, key = made
    engine = make_engine(str(lucheng_db))
    with SmtpSink(tls="starttls", cert=cert, key=key) as server:
        env = {"DUBAN_TRANSPORT": "smtp", "DUBAN_SMTP_HOST": "127.0.0.1", "DUBAN_SMTP_PORT": str(server.port),
               "DUBAN_SMTP_TLS": "starttls"}
        untrusted = diagnose(engine, shown_db="x", rules_root=RULES, env=env, now=NOW, network_timeout=5)
        trusted = diagnose(engine, shown_db="x", rules_root=RULES, env={**env, "DUBAN_SMTP_CA_FILE": str(cert)},
                           now=NOW, network_timeout=5)
        delivered = len(server.handler.messages())
    smtp_untrusted = next(check for check in untrusted.checks if check.name == "邮件服务器")
    smtp_trusted = next(check for check in trusted.checks if check.name == "邮件服务器")
    assert smtp_untrusted.status == FAIL and "证书校验失败" in smtp_untrusted.found
    assert "ca_file" in smtp_untrusted.action
    assert smtp_trusted.status == OK and "STARTTLS 成功" in smtp_trusted.found
    assert delivered == 0  # the check never sends mail


# -- backup, restore and upgrades --------------------------------------------------------------------


def _counts(engine: Engine) -> dict[str, int]:
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as connection:
        return {table.name: connection.scalar(select(func.count()).select_from(table)) or 0
                for table in metadata.sorted_tables if table.name != "alembic_version"}


def test_a_backup_restores_every_row_and_refuses_a_database_that_holds_data(lucheng_db: Path, tmp_path: Path) -> None:
    source = make_engine(str(lucheng_db))
    archive = tmp_path / "b.duban.gz"
    summary = backup(source, archive, now=NOW)
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    target = make_engine(str(tmp_path / "restored.db"))
    restored = restore(target, archive)
    assert restored.rows == summary.rows > 500
    assert _counts(target) == _counts(source)
    with pytest.raises(BackupError, match="已有数据"):
        restore(target, archive)
    assert restore(target, archive, replace=True).rows == summary.rows


def test_a_damaged_backup_changes_nothing(tmp_path: Path) -> None:
    archive = tmp_path / "bad.duban.gz"
    archive.write_bytes(gzip.compress(b'{"format": "duban-backup", "version": 1, "revision": null}\n[1, 2]\n'))
    engine = make_engine(str(tmp_path / "t.db"))
    with pytest.raises(BackupError):
        restore(engine, archive)
    archive.write_bytes(b"not gzip")
    with pytest.raises(BackupError, match="无法读取或已损坏"):
        restore(engine, archive)


@pytest.mark.postgres
def test_a_sqlite_backup_moves_into_a_postgresql_schema_and_back(lucheng_db: Path, tmp_path: Path,
                                                                pg_engine: Engine) -> None:
    archive = tmp_path / "b.duban.gz"
    source = make_engine(str(lucheng_db))
    backup(source, archive, now=NOW)
    restore(pg_engine, archive)
    assert _counts(pg_engine) == _counts(source)
    with pg_engine.begin() as connection:  # sequences moved past the restored ids
        next_id = connection.scalar(text("SELECT nextval(pg_get_serial_sequence('import_batches', 'id'))"))
        assert next_id > connection.scalar(text("SELECT max(id) FROM import_batches"))
    again = tmp_path / "pg.duban.gz"
    backup(pg_engine, again, now=NOW)
    back = make_engine(str(tmp_path / "back.db"))
    restore(back, again)
    assert _counts(back) == _counts(source)


def _revisions() -> list[str]:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from duban.store.migrate import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return [script.revision for script in reversed(list(ScriptDirectory.from_config(config).walk_revisions()))]


def _fill_every_table(engine: Engine) -> dict[str, int]:
    """One plausible row in every table of whatever schema the database is at (reflected)."""
    from sqlalchemy import Boolean, Date, DateTime, Float, Integer, LargeBinary, Numeric

    metadata = MetaData()
    metadata.reflect(engine)
    inserted: dict[str, int] = {}
    rows: dict[str, dict[str, object]] = {}
    with engine.begin() as connection:
        for table in metadata.sorted_tables:
            if table.name == "alembic_version":
                continue
            row: dict[str, object] = {}
            for column in table.columns:
                kind = column.type
                if column.foreign_keys:
                    target = next(iter(column.foreign_keys)).column
                    row[column.name] = rows[target.table.name][target.name]
                elif isinstance(kind, DateTime):
                    row[column.name] = dt.datetime(2023, 7, 17, 1, tzinfo=dt.UTC)
                elif isinstance(kind, Date):
                    row[column.name] = dt.date(2023, 7, 17)
                elif isinstance(kind, Boolean):
                    row[column.name] = False
                elif isinstance(kind, Integer):
                    row[column.name] = 1
                elif isinstance(kind, Float | Numeric):
                    row[column.name] = 1.5
                elif isinstance(kind, LargeBinary):
                    row[column.name] = b"x"
                else:
                    length = getattr(kind, "length", None) or 20
                    row[column.name] = "2023-06"[:length]
            for column in table.primary_key.columns:
                if column.foreign_keys:  # a key shared with its parent row (delivery_payloads.delivery_id)
                    continue
                if column.autoincrement is True or (isinstance(column.type, Integer) and len(table.primary_key.columns) == 1):
                    row.pop(column.name, None)
            result = connection.execute(table.insert().values(row))
            for column, value in zip(table.primary_key.columns, result.inserted_primary_key or (), strict=False):
                row[column.name] = value
            rows[table.name] = row
            inserted[table.name] = 1
    return inserted


@pytest.mark.parametrize("revision", _revisions()[:-1] or ["none"])
def test_an_upgrade_from_every_earlier_revision_keeps_the_data(tmp_path: Path, revision: str) -> None:
    if revision == "none":
        pytest.skip("only one revision so far")
    engine = make_engine(str(tmp_path / "old.db"))
    upgrade(engine, revision)
    inserted = _fill_every_table(engine)
    upgrade(engine)
    after = _counts(engine)
    for table, count in inserted.items():
        assert after.get(table, 0) >= count, f"{table}: rows lost upgrading from {revision}"


# -- several programmes in one installation ---------------------------------------------------------


def test_a_city_runs_its_own_programme_and_a_districts_from_one_configuration(tmp_path: Path) -> None:
    config_file = tmp_path / "duban.toml"
    config_file.write_text(
        f'[rules]\ndir = "{RULES}"\n'
        f'[programmes.huzhou]\ndb = "{tmp_path / "huzhou.db"}"\n'
        f'[programmes.lucheng]\ndb = "{tmp_path / "lucheng.db"}"\n', encoding="utf-8")
    env = {"DUBAN_CONFIG": str(config_file), "DUBAN_DB": None, "DUBAN_RULES": None}
    code, output = run("alerts", env=env)
    assert code == 1 and "huzhou、lucheng" in output and "--programme" in output
    for code_name, folder in (("huzhou", HUZHOU), ("lucheng", LUCHENG)):
        assert run("--programme", code_name, "db", "upgrade", env=env)[0] == 0
        code, output = run("--programme", code_name, "import", str(folder), env=env)
        assert code == 0, output
    assert run("config", "programmes", env=env)[1].split() == ["huzhou", "lucheng"]
    code, output = run("doctor", "--no-network", "--json", env=env)
    checked = json.loads(output)
    assert [p["programme"] for p in checked["programmes"]] == ["huzhou", "lucheng"]
    assert all(c["status"] != "fail" for p in checked["programmes"] for c in p["checks"]), output
    code, output = run("db", "backup", "--dir", str(tmp_path / "backups"), env=env)
    assert code == 0, output
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "backups").iterdir()) == ["huzhou", "lucheng"]


@pytest.mark.postgres
def test_on_postgresql_each_programme_lives_in_its_own_schema(pg_engine: Engine, tmp_path: Path) -> None:
    from tests.conftest import PG_URL

    suffix = os.urandom(3).hex()
    schemas = {"huzhou": f"p_huzhou_{suffix}", "lucheng": f"p_lucheng_{suffix}"}
    config_file = tmp_path / "duban.toml"
    config_file.write_text(
        f'[rules]\ndir = "{RULES}"\n' + "".join(
            f'[programmes.{code}]\ndb = "{PG_URL}"\nschema = "{schema}"\n' for code, schema in schemas.items()),
        encoding="utf-8")
    env = {"DUBAN_CONFIG": str(config_file), "DUBAN_DB": None, "DUBAN_DB_SCHEMA": None, "DUBAN_RULES": None}
    try:
        for code_name, folder in (("huzhou", HUZHOU), ("lucheng", LUCHENG)):
            assert run("--programme", code_name, "db", "upgrade", env=env)[0] == 0
            assert run("--programme", code_name, "import", str(folder), env=env)[0] == 0
        for code_name, schema in schemas.items():
            engine = make_engine(PG_URL, schema=schema)
            with engine.connect() as connection:
                assert connection.scalar(text("SELECT code FROM programmes")) == code_name
            assert inspect(make_engine(PG_URL)).has_table("programmes", schema=schema)
    finally:
        with make_engine(PG_URL).begin() as connection:
            for schema in schemas.values():
                connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# -- the calendar ------------------------------------------------------------------------------------


def test_calendar_add_takes_next_years_notice_and_keeps_the_admins_comments(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    overrides = rules / "calendar-overrides.yaml"
    overrides.write_text("# 节假日调整文件\n", encoding="utf-8")
    code, output = run("--rules", str(rules), "calendar", "add", "2027",
                       "--holidays", "2027-01-01..2027-01-03,2027-02-05..2027-02-11", "--workdays", "2027-02-14")
    assert code == 0, output
    assert "放假 10 天" in output and "调休上班 1 天" in output
    assert overrides.read_text(encoding="utf-8").startswith("# 节假日调整文件")
    from duban.engine.calendar import WorkingCalendar

    calendar = WorkingCalendar.load(overrides)
    assert calendar.has_data_for(2027)
    assert calendar.is_working_day(dt.date(2027, 2, 14))  # a Sunday worked in exchange
    assert not calendar.is_working_day(dt.date(2027, 2, 8))
    code, output = run("--rules", str(rules), "calendar", "add", "2027", "--holidays", "2027-10-01")
    assert code == 1 and "已有 2027 年" in output
    code, output = run("--rules", str(rules), "calendar", "add", "2028", "--holidays", "2028-02-30")
    assert code == 1 and "未修改" in output
    assert "2028" not in overrides.read_text(encoding="utf-8")


# -- the service: health endpoint, JSON logs -----------------------------------------------------------


def test_the_health_endpoint_answers_200_while_well_and_503_when_the_lock_is_lost(lucheng_db: Path) -> None:
    from duban.app.health import start_health_server

    held = {"value": True}
    server = start_health_server(make_engine(str(lucheng_db)), port=0, rules_root=RULES, shown_db="x",
                                 lock_held=lambda: held["value"], clock=lambda: NOW)
    try:
        url = f"http://127.0.0.1:{server.port}/healthz"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            body = json.loads(response.read())
        assert body["status"] == "ok" and any(c["name"] == "服务" for c in body["checks"])
        held["value"] = False
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(url, timeout=10)
        assert raised.value.code == 503
    finally:
        server.close()


def test_service_logs_are_json_lines_with_their_fields() -> None:
    import io

    from duban.app.logs import JsonLinesFormatter
    from duban.app.service import log_event

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLinesFormatter())
    logger = logging.getLogger("duban")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        log_event("round_done", cadence="monthly_dispatch", notices=12, at=NOW)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["event"] == "round_done" and line["notices"] == 12 and line["at"] == NOW.isoformat()
    assert line["level"] == "info"


# -- private files ------------------------------------------------------------------------------------


def test_files_duban_creates_are_private_by_default_and_configurable(tmp_path: Path) -> None:
    assert file_mode_umask(None) == 0o077
    assert file_mode_umask("0640") == 0o027
    with pytest.raises(ConfigFileError):
        file_mode_umask("0400")
    database = tmp_path / "new" / "duban.db"
    assert run("--db", str(database), "db", "upgrade")[0] == 0
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    assert stat.S_IMODE(database.parent.stat().st_mode) == 0o700
    shared = tmp_path / "shared" / "duban.db"
    assert run("--db", str(shared), "db", "upgrade", env={"DUBAN_FILE_MODE": "0640"})[0] == 0
    assert stat.S_IMODE(shared.stat().st_mode) == 0o640
