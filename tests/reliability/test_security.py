"""Rule text and templates cannot run Python; headers cannot be injected; HTML is escaped; secrets
(SMTP password or password file, DingTalk secret and access token) appear in no log line, no
database row and no error output, even when the server refuses the credentials."""

from __future__ import annotations

import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from duban.engine.loader import RuleSetInvalid, load_rule_set
from duban.notifiers.digest import Recipient
from duban.notifiers.message import MessageError, build_email
from duban.notifiers.render import DigestRenderer
from duban.notifiers.samples import ROUND_AT, sample_digest, sample_item
from duban.store.db import make_engine
from duban.store.models import Base

from .support import (
    LUCHENG_EXAMPLE,
    LUCHENG_RULES,
    MAIL_FROM,
    RULES,
    FaultyHandler,
    assert_no_traceback,
    duban,
    duban_env,
    smtp_server,
)

CANARY = "duban-sandbox-canary"
ATTACKS = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.system('touch CANARY') }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].system('touch CANARY') }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ self.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ item.__class__.__init__.__globals__ }}",
    "{{ item.title.__class__.__base__.__subclasses__() }}",
    "{{ item|attr('__class__') }}",
    "{{ item|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
    "{{ item['__class__'] }}",
    "{{ item.title.format.__self__.__class__ }}",
    "{{ '{0.__class__.__init__.__globals__}'.format(item) }}",
    "{{ range.__self__ }}",
    "{% set c = ''.__class__ %}{{ c.__mro__ }}",
    "{% for s in ().__class__.__base__.__subclasses__() %}{{ s }}{% endfor %}",
    "{{ config }}{{ request }}{{ os }}{{ __builtins__ }}",
    "{% import 'os' as os %}{{ os }}",
    "{% include '/etc/passwd' %}",
    "{% extends '../../../../etc/passwd' %}",
]
LEAKS = ("<class", "function", "module", "globals", "subclasses", "root:x:0", "builtin", "Context")


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    target = tmp_path / "templates"
    shutil.copytree(RULES / "templates", target)
    return target


@pytest.mark.parametrize("attack", ATTACKS)
def test_security_a_template_cannot_reach_python(templates: Path, tmp_path: Path, attack: str, ledger) -> None:
    canary = tmp_path / CANARY
    attack = attack.replace("CANARY", str(canary))
    for name in ("items/warning.txt.j2", "items/warning.html.j2", "subject.txt.j2"):
        (templates / name).write_text(f"{{{{ item.title if item is defined else '督办' }}}}\n{attack}\n", encoding="utf-8")
    renderer = DigestRenderer(templates)
    rendered = renderer.render(sample_digest())
    problems = [str(p) for p in (*renderer.problems, *rendered.problems)]
    ledger("security", faults=1, inputs=1)
    assert not canary.exists()
    for output in (rendered.subject, rendered.text, rendered.html, rendered.markdown):
        assert not any(leak in output for leak in LEAKS), output
    assert any(":2" in p and ("拒绝" in p or "模板" in p) for p in problems), problems
    assert "服务业投资占全区固定资产投资比重低于2/3" in rendered.text  # the notice itself still goes out


def test_security_rule_text_is_data_never_code(tmp_path: Path, ledger) -> None:
    canary = tmp_path / CANARY
    directory = tmp_path / "lucheng"
    shutil.copytree(LUCHENG_RULES, directory, ignore=shutil.ignore_patterns("tests"))
    shutil.copy(RULES / "calendar-overrides.yaml", tmp_path / "calendar-overrides.yaml")
    investment = (directory / "investment.yaml").read_text(encoding="utf-8")
    attacks = {
        "title: 服务业投资占全区固定资产投资比重低于2/3": f"title: !!python/object/apply:os.system ['touch {canary}']",
        "at_least: 2/3": f"at_least: __import__('os').system('touch {canary}')",
        "action: 请分析服务业投资占比偏低的原因，于下次月调度会前向专班报送整改措施和重点项目推进计划。":
            "action: '{{ cycler.__init__.__globals__ }}{subject.__class__}'",
    }
    for before, after in attacks.items():
        assert before in investment
        investment = investment.replace(before, after, 1)
    (directory / "investment.yaml").write_text(investment, encoding="utf-8")
    with pytest.raises(RuleSetInvalid) as invalid:
        load_rule_set(directory, display_root=tmp_path)
    messages = [str(e) for e in invalid.value.errors]
    ledger("security", faults=len(attacks), inputs=len(attacks))
    assert not canary.exists()
    assert any("lucheng/investment.yaml:11:" in m and "at_least" in m for m in messages), messages
    assert any("lucheng/investment.yaml:8:" in m and "title" in m for m in messages), messages

    # Text that looks like a template or a format string is shown as written, never evaluated.
    item = sample_item(title="{{ 7*7 }}{subject.__class__}", action="{% for x in range(3) %}x{% endfor %}")
    rendered = DigestRenderer(RULES / "templates").render(sample_digest(items=(item,)))
    assert "{{ 7*7 }}{subject.__class__}" in rendered.text and "49" not in rendered.text
    assert "{% for x in range(3) %}" in rendered.text and "xxx" not in rendered.text


HOSTILE = ["区发改局\r\nBcc: spy@evil.example", "区发改局\nX-Injected: 1", "区发改局\r\n\r\n<html>伪造正文",
           "\x00区发改局", "区发改局\x1b[2J"]


@pytest.mark.parametrize("field", ["to_name", "subject", "to_address", "mail_from"])
@pytest.mark.parametrize("value", HOSTILE)
def test_security_header_injection_is_refused_in_chinese(field: str, value: str, ledger) -> None:
    arguments = {"idempotency_key": "inject", "mail_from": MAIL_FROM, "to_address": "fgj@lucheng.example.org",
                 "to_name": "区发改局", "subject": "督办提醒", "text": "正文", "html": None, "at": ROUND_AT}
    if field == "to_address":
        value = "fgj@lucheng.example.org" + value[value.index("\n") - 1:] if "\n" in value else value
    elif field == "mail_from":
        value = f"{value} <zhuanban@lucheng.example.org>"
    arguments[field] = value
    ledger("security", faults=1, inputs=1)
    with pytest.raises(MessageError, match=r"换行或控制字符|格式不正确|不合法"):
        build_email(**arguments)  # type: ignore[arg-type]


def test_security_a_hostile_unit_name_from_a_spreadsheet_never_reaches_a_header(tmp_path: Path, ledger) -> None:
    lists = tmp_path / "lists"
    shutil.copytree(LUCHENG_EXAMPLE, lists)
    units = (lists / "units.csv").read_text(encoding="utf-8")
    units = units.replace("fgj,区发改局,", 'fgj,"区发改局\r\nBcc: spy@evil.example",', 1)
    (lists / "units.csv").write_text(units, encoding="utf-8")
    database = tmp_path / "duban.db"
    handler = FaultyHandler()
    handler.keep_raw = True
    with smtp_server(handler) as port:
        env = duban_env(str(database), DUBAN_TRANSPORT="smtp", DUBAN_SMTP_PORT=str(port),
                        DUBAN_RULES=str(RULES))
        assert duban("db", "upgrade", env=env).returncode == 0
        imported = duban("import", str(lists), env=env)
        run = duban("run", "--once", "--at", "2023-07-15T10:00", env=env) if imported.returncode == 0 else imported
    ledger("security", faults=1, inputs=1)
    assert_no_traceback(imported.stdout, imported.stderr, run.stdout, run.stderr)
    if imported.returncode != 0:
        assert "units.csv:" in imported.stderr and "name" in imported.stderr  # refused at the door
    for raw in handler.raw.values():
        head = raw.split(b"\r\n\r\n", 1)[0]
        assert b"spy@evil.example" not in head and b"\nBcc:" not in head
    assert "spy@evil.example" not in json.dumps(sorted(handler.recipients))


def test_security_html_is_escaped_everywhere_a_value_is_shown(ledger) -> None:
    payload = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    item = sample_item(title=f"标题{payload}", subject_name=f"项目{payload}", action=f"措施{payload}",
                       source=f"依据{payload}", measure=payload)
    digest = sample_digest(recipient=Recipient("evil", f"单位{payload}", "department", ("a@example.cn",)),
                           items=(item,))
    rendered = DigestRenderer(RULES / "templates").render(digest)
    ledger("security", faults=1, inputs=6)
    assert "<script" not in rendered.html and "<img" not in rendered.html
    assert rendered.html.count("&lt;script&gt;alert(2)&lt;/script&gt;") >= 4


# -- secrets ----------------------------------------------------------------------------------------------

PASSWORD = "S3cret-口令-7f3a"
FILE_PASSWORD = "F1le-Secret-9c2e"
DINGTALK_SECRET = "SECd1ngTalkS3cretXYZ"
ACCESS_TOKEN = "t0kenAbCdEf123456"


class _Robot(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"errcode": 310000, "errmsg": "sign not match"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        return None


@pytest.fixture
def robot() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Robot)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def dump_database(engine: Engine) -> str:
    with engine.connect() as conn:
        return "\n".join(repr(tuple(row)) for table in Base.metadata.sorted_tables
                         for row in conn.execute(select(table)))


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # loopback test server only
@pytest.mark.parametrize("source", ["env", "file"])
def test_security_secrets_never_reach_logs_the_database_or_errors(
    tmp_path: Path, robot: int, source: str, ledger
) -> None:
    secret = PASSWORD if source == "env" else FILE_PASSWORD
    handler = FaultyHandler()
    attempts: list[str] = []

    def authenticator(_server: object, _session: object, _envelope: object, mechanism: str, auth_data: object) -> object:
        from aiosmtpd.smtp import AuthResult

        attempts.append(mechanism)
        return AuthResult(success=False, handled=False)

    database = tmp_path / "duban.db"
    password_file = tmp_path / "smtp-password"
    password_file.write_text(FILE_PASSWORD + "\n", encoding="utf-8")
    webhook = f"http://127.0.0.1:{robot}/robot/send?access_token={ACCESS_TOKEN}"
    with smtp_server(handler, authenticator=authenticator, auth_required=True, auth_require_tls=False) as port:
        # Both channels from the first round: DingTalk rows exist only when a transport carries them.
        settings = {"DUBAN_TRANSPORT": "smtp,dingtalk", "DUBAN_SMTP_PORT": str(port), "DUBAN_SMTP_USER": "zhuanban",
                    "DUBAN_DINGTALK_WEBHOOK": webhook, "DUBAN_DINGTALK_SECRET": DINGTALK_SECRET,
                    "DUBAN_RULES": str(RULES), "DUBAN_ADMIN_EMAIL": "admin@lucheng.example.org"}
        if source == "env":
            settings["DUBAN_SMTP_PASSWORD"] = PASSWORD
        else:
            settings["DUBAN_SMTP_PASSWORD_FILE"] = str(password_file)
        env = duban_env(str(database), **settings)
        outputs = [duban("db", "upgrade", env=env), duban("import", str(LUCHENG_EXAMPLE), env=env),
                   duban("run", "--once", "--at", "2023-07-15T10:00", env=env)]
        env["DUBAN_TRANSPORT"] = "smtp,dingtalk"
        outputs += [duban("send", env=env), duban("outbox", env=env)]
        env["DUBAN_SMTP_PASSWORD_FILE"] = str(tmp_path / "missing-password-file")
        outputs.append(duban("send", env=env))
    engine = make_engine(str(database))
    stored = dump_database(engine)
    engine.dispose()
    text = "\n".join(o.stdout + o.stderr for o in outputs)
    ledger("security", faults=len(attempts) + 1, inputs=len(outputs))
    assert attempts, "the server never saw a login attempt"
    assert handler.total == 0
    assert "SMTP认证失败" in stored and "钉钉机器人返回错误" in stored  # the failures are recorded …
    assert_no_traceback(text)
    for secret_text in (secret, PASSWORD, FILE_PASSWORD, DINGTALK_SECRET, ACCESS_TOKEN):
        assert secret_text not in text, f"{secret_text} in command output"  # … without their secrets
        assert secret_text not in stored, f"{secret_text} in the database"
