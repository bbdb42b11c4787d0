"""`duban web` (the portal) and `duban users …` (its accounts)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import click
from sqlalchemy import inspect, select

from duban.cli import AppContext, UserError, main, pass_app
from duban.store.db import transaction


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _ready(app: AppContext) -> None:
    if not inspect(app.engine).has_table("web_users"):
        raise UserError(f"数据库尚未升级到网页版所需的版本：请先运行 duban db upgrade（{app.db_url}）")


@main.command("web")
@click.option("--host", default="127.0.0.1", show_default=True, help="监听地址。")
@click.option("--port", default=8000, show_default=True, type=int, help="监听端口。")
@click.option("--workers", default=1, show_default=True, type=int,
              help="工作进程数（会话与限流都在数据库中，多进程或多台机器可共用一个数据库）。")
@click.option("--no-refresh", is_flag=True, help="启动时不重新计算挂图作战的灯色。")
@click.option("--at", "at_text", default=None,
              help="演示用：把网页的时钟固定在这一时刻（如 2024-01-31），灯色、应报数据和时限都按此计算。")
@click.option("--reports", "reports_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="专报、通报所在文件夹（duban report 的输出），在 /reports/ 下提供给已登录用户；"
                   "通知中的报告链接设 DUBAN_REPORTS_URL=本网址/reports/。也可用 DUBAN_REPORTS_DIR 设置。")
@pass_app
def web(app: AppContext, host: str, port: int, workers: int, no_refresh: bool, at_text: str | None,
        reports_dir: Path | None) -> None:
    """启动督办网页：挂图作战 /board，单位页面 /unit/…，健康检查 /healthz。

    地址写入邮件链接时用 DUBAN_WEB_URL；经反向代理部署时设 DUBAN_WEB_TRUST_PROXY=1（取 X-Forwarded-For）
    和 DUBAN_WEB_SECURE_COOKIES=1（仅 HTTPS 发送 Cookie）。
    """
    from duban.app.board import refresh_all
    from duban.cli.rules import load_programme_rules, parse_at
    from duban.store.migrate import upgrade
    from duban.web.server import serve

    at = parse_at(at_text, "--at") if at_text else None
    upgrade(app.engine)
    if not no_refresh:
        report = refresh_all(app.engine, load_programme_rules(app), at or _now())
        click.echo(f"挂图作战灯色已更新：{report.lights} 项（{report.seconds:.1f} 秒）")
    os.environ["DUBAN_DB"] = app.db_url
    os.environ["DUBAN_RULES"] = str(app.rules_dir)
    if at is not None:
        os.environ["DUBAN_WEB_AT"] = at.isoformat()
    if reports_dir is not None:
        os.environ["DUBAN_REPORTS_DIR"] = str(reports_dir.resolve())
    click.echo(f"督办网页：http://{host}:{port}/board （Ctrl+C 停止）")
    serve(host, port, workers)


@main.group("users")
def users() -> None:
    """管理网页账号：办公室、专班领导与成员（只读）、责任单位（仅本单位）。"""


@users.command("add")
@click.argument("login")
@click.option("--role", required=True, type=click.Choice(["office", "leader", "member", "unit"]),
              help="office 办公室；leader 专班领导、member 专班成员（只读）；unit 责任单位。")
@click.option("--unit", "unit_code", default="", help="责任单位账号所属单位的代码。")
@click.option("--name", default="", help="显示的姓名或单位名称。")
@click.option("--email", default="", help="接收登录链接的邮箱。")
@click.option("--password", default=None, help="办公室账号的密码（不给则提示输入）。")
@pass_app
def users_add(app: AppContext, login: str, role: str, unit_code: str, name: str, email: str,
              password: str | None) -> None:
    """新建账号 LOGIN。"""
    from duban.app.accounts import AccountError, add_user

    _ready(app)
    if role == "office" and password is None:
        password = click.prompt("密码（至少10个字符）", hide_input=True, confirmation_prompt="再输入一次")
    try:
        with transaction(app.engine) as session:
            user = add_user(session, login=login, role=role, now=_now(), name=name, unit_code=unit_code, email=email,
                            password=password)
            click.echo(f"已新建账号 {user.login}（{user.name}，{role}）。")
    except AccountError as exc:
        raise UserError(str(exc)) from None


@users.command("units")
@pass_app
def users_units(app: AppContext) -> None:
    """为每个尚无账号的责任单位新建账号（账号即单位代码，邮箱取单位清单的第一个邮箱）。"""
    from duban.app.accounts import unit_accounts

    _ready(app)
    with transaction(app.engine) as session:
        made = unit_accounts(session, _now())
    click.echo(f"已为 {len(made)} 个单位新建账号。" if made else "所有单位都已有账号。")


@users.command("list")
@pass_app
def users_list(app: AppContext) -> None:
    """列出全部账号。"""
    from duban.cli.alerts import table
    from duban.store.web_models import ROLE_LABELS, WebUser

    _ready(app)
    with transaction(app.engine) as session:
        rows = list(session.scalars(select(WebUser).order_by(WebUser.role, WebUser.login)))
        if not rows:
            click.echo("还没有账号：可用 duban users add 或 duban users units 新建。")
            return
        for line in table(["账号", "名称", "角色", "单位", "邮箱", "状态"],
                          [[u.login, u.name, ROLE_LABELS.get(u.role, u.role), u.unit_code or "—", u.email or "—",
                            "启用" if u.active else "停用"] for u in rows]):
            click.echo(line)


@users.command("link")
@click.argument("login")
@click.option("--days", default=7, show_default=True, type=int, help="链接有效天数。")
@pass_app
def users_link(app: AppContext, login: str, days: int) -> None:
    """生成账号 LOGIN 的一次性登录链接（DUBAN_WEB_URL 为网址前缀）。"""
    from duban.app.accounts import AccountError, find_user, issue_link
    from duban.web.server import base_url

    _ready(app)
    if not 1 <= days <= 31:
        raise UserError("--days 须在 1 到 31 之间")
    try:
        with transaction(app.engine) as session:
            token = issue_link(session, find_user(session, login), _now(), dt.timedelta(days=days))
    except AccountError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"{base_url()}/signin/{token}")


@users.command("passwd")
@click.argument("login")
@click.option("--password", default=None, help="新密码（不给则提示输入）。")
@pass_app
def users_passwd(app: AppContext, login: str, password: str | None) -> None:
    """修改账号 LOGIN 的密码。"""
    from duban.app.accounts import AccountError, set_password

    _ready(app)
    if password is None:
        password = click.prompt("新密码（至少10个字符）", hide_input=True, confirmation_prompt="再输入一次")
    try:
        with transaction(app.engine) as session:
            set_password(session, login, password)
    except AccountError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"已修改 {login} 的密码。")


@users.command("disable")
@click.argument("login")
@pass_app
def users_disable(app: AppContext, login: str) -> None:
    """停用账号 LOGIN，并结束它的全部会话。"""
    from duban.app.accounts import AccountError, deactivate

    _ready(app)
    try:
        with transaction(app.engine) as session:
            deactivate(session, login, _now())
    except AccountError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"已停用账号 {login}。")


def demo_lines(db_file: str, command: str, rules_dir: str, at: dt.datetime, port: int = 8000,
               reports_dir: str = "") -> list[str]:
    """For `duban demo`: web accounts on a demo database, and how to open the web with sign-in links
    for the office and for one unit (the clock frozen at `at`, so the links are valid there)."""
    import secrets

    from duban.app.accounts import (
        LINK_LIFETIME,
        OFFICE_NAME,
        AccountError,
        add_user,
        find_user,
        issue_link,
        unit_accounts,
    )
    from duban.store.db import make_engine
    from duban.store.migrate import upgrade
    from duban.store.web_models import WebUser

    engine = make_engine(db_file)
    base = f"http://127.0.0.1:{port}"
    try:
        upgrade(engine)
        with transaction(engine) as session:
            unit_accounts(session, at)
            try:
                office = find_user(session, "office")
            except AccountError:
                office = add_user(session, login="office", role="office", now=at, name=OFFICE_NAME,
                                  password=secrets.token_urlsafe(12))
            unit = session.scalar(select(WebUser).where(WebUser.role == "unit")
                                  .order_by((WebUser.login != "fgj"), WebUser.id).limit(1))
            reports = f" --reports {reports_dir}" if reports_dir else ""
            lines = [f"  {command} --db {db_file} --rules {rules_dir} web --at {at.date().isoformat()} --port {port}"
                     f"{reports}",
                     f"    办公室登录链接：{base}/signin/{issue_link(session, office, at, LINK_LIFETIME)}"]
            if unit is not None:
                lines.append(f"    {unit.name}登录链接：{base}/signin/{issue_link(session, unit, at, LINK_LIFETIME)}")
    finally:
        engine.dispose()
    return lines
