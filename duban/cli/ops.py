"""Commands for the IT office: config show, doctor, db backup/restore, calendar add."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path

import click
from sqlalchemy import Engine

from duban.cli import AppContext, UserError, db, main, pass_app


@main.group("config")
def config_group() -> None:
    """查看生效的配置（配置文件 duban.toml 与环境变量合并后的结果）。"""


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="以 JSON 输出。")
@pass_app
def config_show(app: AppContext, as_json: bool) -> None:
    """列出每项设置的生效值和来源；密码、密钥、Webhook 令牌以 **** 显示。"""
    from duban.config import SETTINGS, masked

    config = app.config
    sources = config.sources if config else {}
    rows = []
    for setting in SETTINGS:
        value = os.environ.get(setting.env)
        if value is None:
            source = "未设置（使用默认值）"
        elif setting.env in sources:
            source = sources[setting.env]
        else:
            source = "环境变量"
        rows.append({
            "section": setting.section, "key": setting.key, "env": setting.env,
            "value": masked(setting.env, value or ""), "source": source, "meaning": setting.meaning,
        })
    if as_json:
        click.echo(json.dumps({"config_file": str(config.path) if config and config.path else None,
                               "programme": app.programme, "settings": rows}, ensure_ascii=False, indent=2))
        return
    click.echo(f"配置文件：{config.path if config and config.path else '未使用（只读取环境变量）'}")
    if config and config.programmes:
        chosen = app.programme or "未选择（请用 --programme）"
        click.echo(f"方案：{'、'.join(config.programmes)}；当前：{chosen}")
    click.echo(f"数据库：{_shown_db(app)}")
    click.echo(f"规则目录：{app.rules_dir}")
    for row in rows:
        if row["value"]:
            click.echo(f"  [{row['section']}] {row['key']} = {row['value']}    （{row['env']}，来自{row['source']}）")
    unset = [f"{row['section']}.{row['key']}" for row in rows if not row["value"]]
    if unset:
        click.echo("未设置：" + "、".join(unset))


@config_group.command("programmes")
@pass_app
def config_programmes(app: AppContext) -> None:
    """列出配置文件中的方案代码（每行一个），供脚本逐个处理。"""
    for code in (app.config.programmes if app.config else {}):
        click.echo(code)


def _shown_db(app: AppContext) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(app.db_url).render_as_string(hide_password=True)
    except Exception:  # shown as written when it cannot be parsed
        return app.db_url


@main.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="以 JSON 输出（供监控系统读取）。")
@click.option("--no-network", is_flag=True, help="不检查邮件服务器和钉钉机器人的连接。")
@click.option("--timeout", type=float, default=5.0, show_default=True, help="每项网络检查的超时秒数。")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool, no_network: bool, timeout: float) -> None:
    """体检：数据库、规则、模板、节假日日历、邮件服务器、钉钉机器人、发件箱。

    退出码供监控使用：0 全部正常，1 有提醒，2 有故障。配置文件列出多个方案而未用 --programme
    选择时，逐个检查每个方案。
    """
    from duban.app.doctor import diagnose, exit_code
    from duban.app.programmes import programme_targets

    app: AppContext = ctx.obj
    now = dt.datetime.now(dt.UTC)
    reports = []

    def examine(code: str | None, engine: Engine, db_url: str, rules_root: Path, environ: dict[str, str]) -> None:
        shown = _shown_db(AppContext(db_url=db_url, rules_dir=rules_root))
        reports.append(diagnose(engine, shown_db=shown, rules_root=rules_root, env=environ, now=now,
                                programme=code, network_timeout=timeout, probe_network=not no_network))

    if app.unselected and app.config is not None:
        for target in programme_targets(app.config, app.unselected, app.rules_dir):
            examine(target.code, target.engine(), target.db_url, target.rules_root, target.environ)
    else:
        examine(app.programme, app.engine, app.db_url, app.rules_dir, dict(os.environ))
    code = exit_code(reports)
    if as_json:
        click.echo(json.dumps({"status": ["ok", "warn", "fail"][code], "programmes": [r.as_dict() for r in reports]},
                              ensure_ascii=False, indent=2))
    else:
        for report in reports:
            if report.programme:
                click.echo(f"== 方案 {report.programme} ==")
            for check in report.checks:
                click.echo(check.line())
        verdict = {0: "体检结果：全部正常。", 1: "体检结果：有需要关注的提醒。", 2: "体检结果：有故障，请按提示处理。"}[code]
        click.echo(verdict)
    sys.exit(code)


@db.command("backup")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=None,
              help="写入此目录，文件名自动生成（方案代码-日期时间.duban.gz）；配置文件列出多个方案时逐个备份。")
@click.option("--keep-days", type=int, default=None, help="与 --dir 同用：删除该目录中早于此天数的旧备份。")
@click.pass_context
def db_backup(ctx: click.Context, path: Path | None, directory: Path | None, keep_days: int | None) -> None:
    """备份数据库到一个文件（gzip 压缩的 JSON，SQLite 与 PostgreSQL 通用，文件权限 0600）。"""
    from duban.store.backup import BackupError, backup

    app: AppContext = ctx.obj
    if (path is None) == (directory is None):
        raise UserError("请指定备份文件名，或用 --dir 指定备份目录（二选一）。")
    now = dt.datetime.now(dt.UTC)
    stamp = (now + dt.timedelta(hours=8)).strftime("%Y%m%d-%H%M")
    for code, engine in _each_programme(app):
        target = path if path is not None else directory / f"{code or 'duban'}-{stamp}.duban.gz"  # type: ignore[operator]
        try:
            summary = backup(engine, target, now=now)
        except BackupError as exc:
            raise UserError(f"{code + '：' if code else ''}{exc}") from None
        size = target.stat().st_size
        click.echo(f"{'方案 ' + code + '：' if code else ''}已备份到 {target}：{summary.tables} 张表，{summary.rows} 行，"
                   f"数据库版本 {summary.revision}，{size / 1024:.1f} KB。")
    if directory is not None and keep_days is not None:
        cutoff = now.timestamp() - keep_days * 86400
        removed = [old for old in directory.glob("*.duban.gz") if old.stat().st_mtime < cutoff]
        for old in removed:
            old.unlink()
        if removed:
            click.echo(f"已删除 {len(removed)} 个超过 {keep_days} 天的旧备份。")


def _each_programme(app: AppContext) -> list[tuple[str | None, Engine]]:
    """The selected programme's engine, or every programme's when the file lists several and none is chosen."""
    from duban.app.programmes import programme_targets

    if not (app.unselected and app.config is not None):
        return [(app.programme, app.engine)]
    return [(target.code, target.engine()) for target in programme_targets(app.config, app.unselected, app.rules_dir)]


@db.command("restore")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--replace", is_flag=True, help="目标数据库已有数据时，确认用备份覆盖（默认拒绝）。")
@pass_app
def db_restore(app: AppContext, path: Path, replace: bool) -> None:
    """从备份文件恢复（文件由 backup 命令生成）：全部成功或全部不变；恢复后自动升级到最新数据库版本。"""
    from duban.store.backup import BackupError, restore

    try:
        summary = restore(app.engine, path, replace=replace)
    except BackupError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"已从 {path} 恢复：{summary.tables} 张表，{summary.rows} 行（备份时版本 {summary.revision}，"
               "已升级到最新版本）。")


@main.group("calendar")
def calendar_group() -> None:
    """节假日日历：查看覆盖情况，录入国务院办公厅公布的下一年安排。"""


def _overrides_path(app: AppContext) -> Path:
    return app.rules_dir / "calendar-overrides.yaml"


@calendar_group.command("add")
@click.argument("year", type=int)
@click.option("--holidays", "holidays", multiple=True, required=True,
              help="放假日期或区间，可重复或用逗号分隔，如 2027-01-01 或 2027-02-05..2027-02-11。")
@click.option("--workdays", "workdays", multiple=True,
              help="调休上班的周末日期，可重复或用逗号分隔，如 2027-02-14。")
@click.option("--replace", is_flag=True, help="该年已录入时，用本次内容替换。")
@pass_app
def calendar_add(app: AppContext, year: int, holidays: tuple[str, ...], workdays: tuple[str, ...],
                 replace: bool) -> None:
    """按《国务院办公厅关于某年部分节假日安排的通知》录入一年的放假和调休上班日期。"""
    from duban.engine.calendar_file import CalendarAddError, add_year

    path = _overrides_path(app)
    try:
        summary = add_year(path, year, _split(holidays), _split(workdays), replace=replace)
    except CalendarAddError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"已写入 {path}：{year} 年放假 {summary.holidays} 天，调休上班 {summary.workdays} 天，"
               f"全年工作日 {summary.working_days} 天。正在运行的服务会在下次检查规则目录时载入。")


@calendar_group.command("show")
@click.option("--year", type=int, default=None, help="要查看的年份（默认今年和明年）。")
@pass_app
def calendar_show(app: AppContext, year: int | None) -> None:
    """显示某年是否已有法定节假日安排，以及全年工作日天数。"""
    from duban.engine.calendar import WorkingCalendar

    path = _overrides_path(app)
    calendar = WorkingCalendar.load(path if path.is_file() else None)
    today = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=8)).date()
    for shown_year in [year] if year else [today.year, today.year + 1]:
        if calendar.has_data_for(shown_year):
            days = sum(1 for month in range(1, 13) for _ in calendar.working_days_of_month(shown_year, month))
            click.echo(f"{shown_year} 年：已有安排，全年工作日 {days} 天。")
        else:
            click.echo(f"{shown_year} 年：尚无安排（工作日暂按周一至周五推算）。"
                       f"通知发布后运行 duban calendar add {shown_year} --holidays … --workdays …")


def _split(values: tuple[str, ...]) -> list[str]:
    return [part.strip() for value in values for part in value.replace("，", ",").split(",") if part.strip()]
