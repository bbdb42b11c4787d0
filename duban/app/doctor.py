"""`duban doctor` and the service's health endpoint: is this installation able to do its job?

Each check returns a `Check` with a status (正常 / 提醒 / 故障), what was found and what to do, in
Chinese. The exit code follows the monitoring convention (Nagios, Zabbix): 0 all well, 1 a warning,
2 a failure. Nothing here sends a message: SMTP is checked up to login and then quit; the DingTalk
robot up to a TLS handshake with its host.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import Engine, func, inspect, select

__all__ = ["FAIL", "OK", "WARN", "Check", "Report", "diagnose", "exit_code"]

OK, WARN, FAIL = "ok", "warn", "fail"
STATUS_LABEL = {OK: "正常", WARN: "提醒", FAIL: "故障"}
_ORDER = {OK: 0, WARN: 1, FAIL: 2}


@dataclass(frozen=True)
class Check:
    name: str  # Chinese: 数据库, 规则, …
    status: str
    found: str
    action: str = ""

    def line(self) -> str:
        text = f"[{STATUS_LABEL[self.status]}] {self.name}：{self.found}"
        return f"{text}\n        处理办法：{self.action}" if self.action and self.status != OK else text


@dataclass
class Report:
    programme: str | None
    checks: list[Check] = field(default_factory=list)

    @property
    def status(self) -> str:
        return max((check.status for check in self.checks), key=_ORDER.__getitem__, default=OK)

    def as_dict(self) -> dict[str, object]:
        return {
            "programme": self.programme,
            "status": self.status,
            "checks": [
                {"name": c.name, "status": c.status, "found": c.found, "action": c.action} for c in self.checks
            ],
        }


def exit_code(reports: list[Report]) -> int:
    return max((_ORDER[report.status] for report in reports), default=0)


def _database(engine: Engine, shown: str) -> tuple[Check, bool]:
    from duban.store.migrate import current

    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except Exception as exc:  # any driver error: the message is what the admin needs
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return Check("数据库", FAIL, f"无法连接 {shown}：{detail}",
                     "确认数据库服务已启动、地址和账号正确（duban config show 查看生效的设置）。"), False
    head = _head_revision()
    try:
        revision = current(engine)
    except Exception as exc:
        return Check("数据库", FAIL, f"无法读取数据库版本：{exc}", "运行 duban db upgrade。"), False
    if revision is None:
        return Check("数据库", FAIL, f"{shown} 尚未初始化", "运行 duban db upgrade，再用 duban import 导入方案清单。"), False
    if revision != head:
        return Check("数据库", FAIL, f"数据库版本 {revision}，程序需要 {head}",
                     "先备份（duban db backup 文件名），再运行 duban db upgrade。"), False
    return Check("数据库", OK, f"{shown} 可连接，版本 {revision} 为最新"), True


def _head_revision() -> str | None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from duban.store.migrate import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


def _programme_and_rules(engine: Engine, rules_root: Path) -> tuple[list[Check], Path | None]:
    from duban.app.rulecheck import rules_against_store
    from duban.engine.loader import RuleSetInvalid, load_rule_set, resolve_rule_set
    from duban.store.models import Indicator, Programme, Unit

    with engine.connect() as connection:
        programme = connection.scalars(select(Programme.code)).first()
        indicators = set(connection.scalars(select(Indicator.code)))
        units = set(connection.scalars(select(Unit.code)))
    if programme is None:
        return [Check("方案数据", FAIL, "数据库中还没有方案", "用 duban import 导入方案清单（programme、units、indicators…）。")], None
    checks = [Check("方案数据", OK, f"方案 {programme}：{len(units)} 个单位，{len(indicators)} 项指标")]
    try:
        directory = resolve_rule_set(rules_root, programme)
        rule_set = load_rule_set(directory)
    except RuleSetInvalid as invalid:
        first = "；".join(str(error) for error in invalid.errors[:3])
        more = f"等 {len(invalid.errors)} 处" if len(invalid.errors) > 3 else ""
        return [*checks, Check("规则", FAIL, f"规则集无效：{first}{more}",
                               "按提示修改规则文件，再用 duban check 复查；服务会继续使用上一版有效规则。")], None
    errors = rules_against_store(engine, rule_set)
    if errors:
        first = "；".join(str(error) for error in errors[:3])
        return [*checks, Check("规则", FAIL, f"规则与数据不符：{first}",
                               "修改规则或补充导入相应指标、单位，再用 duban --db … check 复查。")], rule_set.templates_dir
    return [*checks, Check("规则", OK, f"{directory}：{len(rule_set.rules)} 条规则，与数据一致")], rule_set.templates_dir


def _templates(templates_dir: Path) -> Check:
    from duban.notifiers.render import DigestRenderer
    from duban.notifiers.samples import sample_digest

    renderer = DigestRenderer(templates_dir)
    problems = list(renderer.problems)
    try:
        rendered = renderer.render(sample_digest())
        problems += list(getattr(rendered, "problems", ()) or ())
    except Exception as exc:
        return Check("通知模板", FAIL, f"{templates_dir}：示例通知无法生成（{exc}）", "按提示修改模板文件。")
    if problems:
        first = "；".join(str(problem) for problem in problems[:3])
        return Check("通知模板", WARN, f"{len(problems)} 个模板有问题，相应通知改用内置模板：{first}",
                     "按提示修改模板文件；修改前的通知仍能正常发出。")
    return Check("通知模板", OK, f"{templates_dir}：示例通知生成正常")


def _calendar(rules_root: Path, today: dt.date) -> Check:
    from duban.engine.calendar import WorkingCalendar

    overrides = rules_root / "calendar-overrides.yaml"
    if not overrides.is_file():
        overrides = Path(rules_root).parent / "calendar-overrides.yaml"
    try:
        calendar = WorkingCalendar.load(overrides if overrides.is_file() else None)
    except Exception as exc:
        return Check("节假日日历", FAIL, f"{overrides}：{exc}", "按提示修改节假日调整文件。")
    this_year, next_year = today.year, today.year + 1
    if not calendar.has_data_for(this_year):
        return Check("节假日日历", FAIL, f"没有 {this_year} 年的法定节假日安排，工作日按周末推算",
                     f"按国务院办公厅通知运行 duban calendar add {this_year} --holidays … --workdays …")
    if not calendar.has_data_for(next_year):
        if today.month >= 11:
            return Check("节假日日历", WARN,
                         f"已有 {this_year} 年安排；{next_year} 年的法定节假日安排尚未录入",
                         f"国务院办公厅通常在 11 月前后发布《关于{next_year}年部分节假日安排的通知》，发布后运行 "
                         f"duban calendar add {next_year} --holidays 日期… --workdays 日期…")
        return Check("节假日日历", OK, f"已有 {this_year} 年安排（{next_year} 年的安排发布后再录入）")
    return Check("节假日日历", OK, f"已有 {this_year} 年和 {next_year} 年的安排")


def network_cause(exc: BaseException) -> str:
    """Why a connection failed, in Chinese, with the system's own words kept for the IT office."""
    text = str(exc)
    lowered = text.lower()
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"证书校验失败（{exc.verify_message}）"
    if isinstance(exc, TimeoutError) or "timed out" in lowered or "timeout" in lowered:
        return "连接超时"
    if isinstance(exc, socket.gaierror) or "name or service not known" in lowered or "nodename nor servname" in lowered \
            or "temporary failure in name resolution" in lowered:
        return "域名无法解析（DNS）"
    if isinstance(exc, ConnectionRefusedError) or "connect call failed" in lowered or "refused" in lowered:
        return "连接被拒绝（该端口没有服务在监听）"
    if isinstance(exc, ssl.SSLError):
        return f"加密握手失败（{exc.reason or text}）"
    return text


def _transports(env: Mapping[str, str]) -> list[str]:
    return [name.strip().lower() for name in (env.get("DUBAN_TRANSPORT") or "file").split(",") if name.strip()]


def _smtp(env: Mapping[str, str], timeout: float) -> Check:
    import aiosmtplib

    host = env.get("DUBAN_SMTP_HOST", "")
    if not host:
        return Check("邮件服务器", FAIL, "已启用 smtp 渠道，但没有设置邮件服务器地址",
                     "在配置文件 [smtp] host 或环境变量 DUBAN_SMTP_HOST 中填写。")
    mode = (env.get("DUBAN_SMTP_TLS") or "starttls").lower()
    port = int(env.get("DUBAN_SMTP_PORT") or (465 if mode == "tls" else 587 if mode == "starttls" else 25))
    context = ssl.create_default_context(cafile=env.get("DUBAN_SMTP_CA_FILE") or None)
    user, password = env.get("DUBAN_SMTP_USER", ""), env.get("DUBAN_SMTP_PASSWORD", "")
    if not password and env.get("DUBAN_SMTP_PASSWORD_FILE"):
        try:
            password = Path(env["DUBAN_SMTP_PASSWORD_FILE"]).read_text(encoding="utf-8").strip()
        except OSError as exc:
            return Check("邮件服务器", FAIL, f"无法读取密码文件：{exc}", "检查 DUBAN_SMTP_PASSWORD_FILE 的路径和权限。")

    async def probe() -> str:
        client = aiosmtplib.SMTP(hostname=host, port=port, timeout=timeout, use_tls=mode == "tls",
                                 start_tls=False, tls_context=context,
                                 local_hostname=env.get("DUBAN_SMTP_EHLO") or None)
        await client.connect()
        try:
            steps = ["已连接"]
            if mode == "starttls":
                await client.starttls(tls_context=context)
                steps.append("STARTTLS 成功")
            elif mode == "tls":
                steps.append("SSL 成功")
            if user:
                await client.login(user, password)
                steps.append(f"以 {user} 登录成功")
            return "，".join(steps)
        finally:
            try:
                await client.quit()
            except Exception:  # the check's verdict is already known
                client.close()

    where = f"{host}:{port}（{mode}）"
    try:
        found = asyncio.run(asyncio.wait_for(probe(), timeout * 3))
    except ssl.SSLCertVerificationError as exc:
        return Check("邮件服务器", FAIL, f"{where} 证书校验失败：{exc.verify_message}",
                     "邮件服务器使用自签名或内网证书时，把其 CA 证书路径填入 [smtp] ca_file（DUBAN_SMTP_CA_FILE）。")
    except aiosmtplib.SMTPAuthenticationError as exc:
        return Check("邮件服务器", FAIL, f"{where} 登录被拒绝（{exc.code}）", "核对邮箱账号和授权码（政务邮箱多用客户端授权码）。")
    except (OSError, TimeoutError, aiosmtplib.SMTPException) as exc:
        return Check("邮件服务器", FAIL, f"{where} 无法连接：{network_cause(exc)}",
                     "核对地址、端口和加密方式（465 用 tls，587 用 starttls），并确认防火墙放行。")
    return Check("邮件服务器", OK, f"{where}：{found}（未发送邮件）")


def _dingtalk(env: Mapping[str, str], timeout: float) -> Check:
    webhook = env.get("DUBAN_DINGTALK_WEBHOOK", "")
    if not webhook:
        return Check("钉钉机器人", FAIL, "已启用 dingtalk 渠道，但没有设置机器人 Webhook 地址",
                     "在配置文件 [dingtalk] webhook 或 DUBAN_DINGTALK_WEBHOOK 中填写。")
    parts = urlsplit(webhook)
    if parts.scheme not in ("https", "http") or not parts.hostname or "access_token=" not in (parts.query or ""):
        return Check("钉钉机器人", FAIL, "Webhook 地址格式不对（应为 https://…/robot/send?access_token=…）",
                     "从钉钉群机器人设置中复制完整的 Webhook 地址。")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout) as sock:
            if parts.scheme == "https":
                with ssl.create_default_context().wrap_socket(sock, server_hostname=parts.hostname):
                    pass
    except (OSError, ssl.SSLError) as exc:
        return Check("钉钉机器人", FAIL, f"无法连接 {parts.hostname}:{port}：{network_cause(exc)}",
                     "确认本机可以访问钉钉（或浙政钉）服务器，必要时请网络管理员放行。")
    signed = "已设置加签密钥" if env.get("DUBAN_DINGTALK_SECRET") else "未设置加签密钥"
    return Check("钉钉机器人", OK, f"{parts.hostname} 可连接，{signed}（未发送消息）")


def _outbox(engine: Engine, now: dt.datetime) -> Check:
    from duban.store.models import Delivery

    if not inspect(engine).has_table("deliveries"):
        return Check("发件箱", OK, "尚无待发送的通知")
    with engine.connect() as connection:
        failed = connection.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == "failed")) or 0
        pending = connection.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == "pending")) or 0
    if failed:
        return Check("发件箱", WARN, f"{failed} 条通知发送失败，{pending} 条待发送",
                     "用 duban outbox 查看失败原因，处理后用 duban outbox --retry --failed 重新发送。")
    return Check("发件箱", OK, f"无发送失败；{pending} 条待发送")


def diagnose(
    engine: Engine | None,
    *,
    shown_db: str,
    rules_root: Path,
    env: Mapping[str, str] | None = None,
    now: dt.datetime,
    programme: str | None = None,
    network_timeout: float = 5.0,
    probe_network: bool = True,
    extra: list[Callable[[], Check]] | None = None,
) -> Report:
    """Every check, in the order an admin would fix them. `now` is passed in: nothing reads the clock."""
    env = os.environ if env is None else env
    report = Report(programme=programme)
    templates_dir: Path | None = None
    if engine is not None:
        database, reachable = _database(engine, shown_db)
        report.checks.append(database)
        if reachable:
            checks, templates_dir = _programme_and_rules(engine, rules_root)
            report.checks += checks
    if templates_dir is not None:
        report.checks.append(_templates(templates_dir))
    local_day = (now + dt.timedelta(hours=8)).date()  # Asia/Shanghai has no DST
    report.checks.append(_calendar(rules_root, local_day))
    transports = _transports(env)
    if probe_network and "smtp" in transports:
        report.checks.append(_smtp(env, network_timeout))
    if probe_network and ("dingtalk" in transports or env.get("DUBAN_DINGTALK_WEBHOOK")):
        report.checks.append(_dingtalk(env, network_timeout))
    unknown = [name for name in transports if name not in ("file", "smtp", "dingtalk")]
    if unknown:
        report.checks.append(Check("发送渠道", FAIL, f"未知的发送渠道 {'、'.join(unknown)}",
                                   "DUBAN_TRANSPORT 可选 file、smtp、dingtalk，多个用逗号分隔。"))
    if engine is not None and report.checks and report.checks[0].status != FAIL:
        report.checks.append(_outbox(engine, now))
    for check in extra or ():
        report.checks.append(check())
    return report
