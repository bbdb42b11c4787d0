"""The `duban` command line: thin wrappers that parse options, call the core and print results.

Errors the user can act on are raised as `UserError` (or collected as lists of messages) and
printed without a traceback; the exit code is non-zero.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click
from sqlalchemy import Engine

from duban.cli.zh import ZhGroup, install
from duban.config import Config
from duban.store.db import make_engine, resolve_url

install()  # click's own words (用法、选项、错误…) in Chinese
if TYPE_CHECKING:
    from duban.engine.rules import RuleSet


class UserError(click.ClickException):
    """An error caused by input the user can fix; printed as is, exit code 1."""

    def show(self, file: object = None) -> None:
        click.echo(self.format_message(), err=True)


@dataclass
class AppContext:
    db_url: str
    rules_dir: Path
    _engine: Engine | None = None
    config: Config | None = None
    programme: str | None = None  # the programme chosen with --programme (or the only one in the file)
    unselected: tuple[str, ...] = ()  # programmes the file lists when none was chosen and no database given

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            if self.unselected:
                raise UserError(
                    f"配置文件中有多个方案（{'、'.join(self.unselected)}），请用 --programme 指定要操作的方案，"
                    "例如 duban --programme " + self.unselected[0] + " …"
                )
            self._engine = make_engine(self.db_url)
        return self._engine


pass_app = click.make_pass_decorator(AppContext)


def database_problem(db_url: str, exc: Exception) -> str:
    """A Chinese explanation of a database failure the user can act on (never a traceback)."""
    from sqlalchemy.engine import make_url

    from duban.store.db import sqlite_busy_timeout

    try:
        shown = make_url(db_url).render_as_string(hide_password=True)
    except Exception:  # an unparseable URL is shown as the user wrote it
        shown = db_url
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    lowered = detail.lower()
    if "database is locked" in lowered or "database is busy" in lowered:
        return (f"数据库 {shown} 正被另一个进程写入（如导入或轮次），等待 {sqlite_busy_timeout():g} 秒后仍未释放。"
                "本次操作未写入任何数据，请稍后重试（可用 DUBAN_SQLITE_TIMEOUT 延长等待秒数）。")
    if "no such table" in lowered or ("does not exist" in lowered and "relation" in lowered):
        return f"数据库尚未初始化或版本过旧：请先运行 duban db upgrade（{shown}）。"
    if any(word in lowered for word in ("connect", "connection", "server closed", "terminating", "shutting down")):
        return (f"无法连接数据库 {shown}：{detail}。本次操作未完成的部分已全部回滚，"
                "请确认数据库服务正常后重试。")
    return f"数据库操作失败（{shown}）：{detail}。本次操作已全部回滚，请稍后重试。"


class _Main(ZhGroup):
    """Turns database failures that escape a command into a Chinese message and exit code 1."""

    def invoke(self, ctx: click.Context) -> object:
        from sqlalchemy.exc import DBAPIError

        try:
            return super().invoke(ctx)
        except DBAPIError as exc:
            app = ctx.find_object(AppContext)
            raise UserError(database_problem(app.db_url if app else "", exc)) from None


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", "db_url", default=None,
              help="数据库：SQLite 文件路径或 SQLAlchemy URL（环境变量 DUBAN_DB，或配置文件 [database] url）。")
@click.option(
    "--rules",
    "rules_dir",
    default=None,
    type=click.Path(path_type=Path),
    help="规则目录（DUBAN_RULES；默认当前目录下的 rules/，没有则用安装包自带的规则）。",
)
@click.option("--config", "config_path", default=None, type=click.Path(path_type=Path),
              help="配置文件 duban.toml 的路径（DUBAN_CONFIG；默认依次查找 ./duban.toml、~/.config/duban/duban.toml、"
                   "/etc/duban/duban.toml）。环境变量优先于配置文件。")
@click.option("--programme", "programme_code", envvar="DUBAN_PROGRAMME", default=None,
              help="配置文件列出多个方案时，选择要操作的方案代码（DUBAN_PROGRAMME）。")
@click.pass_context
def main(ctx: click.Context, db_url: str | None, rules_dir: Path | None, config_path: Path | None,
         programme_code: str | None) -> None:
    """duban 督办：按规则督办服务业“十百千”工程——导入数据、评估亮灯、发送督办通知、生成专报。"""
    import os

    from duban.config import ConfigFileError, apply, file_mode_umask, find_config, load_config
    from duban.paths import default_rules_dir

    try:
        config = load_config(find_config(config_path))
        programme = config.programme(programme_code)
        apply(config, programme)
        os.umask(file_mode_umask(os.environ.get("DUBAN_FILE_MODE")))
    except ConfigFileError as exc:
        raise UserError(str(exc)) from None
    if config.path is not None:
        os.environ.setdefault("DUBAN_CONFIG", str(config.path))  # children (run over several programmes) see it
    unselected: tuple[str, ...] = ()
    if programme is None and len(config.programmes) > 1 and not (db_url or os.environ.get("DUBAN_DB")):
        unselected = tuple(config.programmes)
    chosen_rules = rules_dir or Path(os.environ.get("DUBAN_RULES") or default_rules_dir())
    ctx.obj = AppContext(db_url=resolve_url(db_url), rules_dir=chosen_rules, config=config,
                         programme=programme.code if programme else None, unselected=unselected)


@main.group()
def db() -> None:
    """数据库结构管理。"""


@db.command("upgrade")
@pass_app
def db_upgrade(app: AppContext) -> None:
    """创建数据库结构，或升级到最新版本。"""
    from duban.store.migrate import current, upgrade

    upgrade(app.engine)
    click.echo(f"数据库已升级到版本 {current(app.engine)}：{app.db_url}")


@main.command("import")
@click.argument("paths", nargs=-1, required=True, metavar="文件或文件夹...", type=click.Path(path_type=Path))
@click.option("--by", "imported_by", default=None, help="记录的导入人（默认：当前系统用户名）。")
@click.option("--note", default=None, metavar="说明",
              help="审核说明：数据经核实无误时填写（如“6月起按新口径统计”）。有需核实的数据（比重超出0—100、累计数下降、"
                   "增速超出合理范围、较上月变动超过限定倍数）时，须填写说明才能导入；说明与数据一同保存，在报告中显示。")
@pass_app
def import_lists(app: AppContext, paths: tuple[Path, ...], imported_by: str | None, note: str | None) -> None:
    """导入 .csv/.xlsx/.xls 清单（文件或文件夹），一次事务完成：有任何问题则一条也不写入。"""
    import datetime as dt

    from sqlalchemy import inspect

    from duban.store.importer import import_paths

    if not inspect(app.engine).has_table("import_batches"):
        raise UserError(f"数据库尚未初始化：请先运行 duban db upgrade（{app.db_url}）")
    report = import_paths(app.engine, paths, now=dt.datetime.now(dt.UTC), imported_by=imported_by or _os_user(),
                          note=note)
    if not report.ok:
        for line in report.problem_lines():
            click.echo(line, err=True)
        raise click.exceptions.Exit(1)
    for line in report.summary_lines():
        click.echo(line)


def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers and services
        return ""


@main.command("template")
@click.argument("directory", metavar="目录", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="覆盖已有的模板文件。")
def template(directory: Path, force: bool) -> None:
    """在目录中生成空白 .xlsx 填报模板（每张清单一个工作簿，附“说明”工作表）。"""
    from duban.store.importing.lists import LISTS
    from duban.store.templates_xlsx import write_templates

    existing = [directory / f"{spec.name}.xlsx" for spec in LISTS if (directory / f"{spec.name}.xlsx").exists()]
    if existing and not force:
        names = "、".join(path.name for path in existing)
        raise UserError(f"{directory} 中已有模板文件（{names}），为免覆盖已填写的数据未写入；确需覆盖请加 --force")
    for path in write_templates(directory):
        click.echo(f"已生成模板：{path}")


@main.command("outbox")
@click.option("--retry", "retry", default=None, is_flag=False, flag_value="", metavar="[编号]",
              help="把发送失败的通知重新排队：--retry 编号 指定一封（可用逗号分隔多个），--retry --failed 全部失败的。")
@click.option("--failed", "all_failed", is_flag=True, help="与 --retry 连用：重新排队全部发送失败的通知。")
@pass_app
def outbox(app: AppContext, retry: str | None, all_failed: bool) -> None:
    """查看发件箱：待发送、发送中和发送失败的通知及最近一次错误；--retry 重新排队。"""
    from datetime import UTC, datetime

    from duban.notifiers.outbox import outbox_status, requeue
    from duban.notifiers.service import status_lines
    from duban.store.db import transaction

    if retry is not None or all_failed:
        ids = _retry_ids(retry or "")
        if not ids and not all_failed:
            raise UserError("请指明要重新排队的通知：duban outbox --retry 编号，或 duban outbox --retry --failed")
        with transaction(app.engine) as session:
            result = requeue(session, ids=ids, failed=all_failed, now=datetime.now(UTC))
        for line in result.lines():
            click.echo(line)
        if result.refused:
            raise click.exceptions.Exit(1)
        return
    with transaction(app.engine) as session:
        status = outbox_status(session)
    for line in status_lines(status):
        click.echo(line)


def _retry_ids(text: str) -> list[int]:
    ids = []
    for part in text.replace("，", ",").split(","):
        part = part.strip().lstrip("#")
        if not part:
            continue
        if not part.isdigit():
            raise UserError(f"--retry 的“{part}”不是通知编号（duban outbox 列出的 # 后的数字）")
        ids.append(int(part))
    return ids


@main.command("send")
@click.option("--limit", type=int, default=None, help="本次最多发送多少封。")
@pass_app
def send(app: AppContext, limit: int | None) -> None:
    """发送发件箱中到期的通知：DUBAN_TRANSPORT 中的每个通道（file、smtp、dingtalk，可用逗号组合）。

    失败和发送受阻的原因报告给 programme.yaml 的 admin_email；有失败时退出码为 4。
    """
    from duban.app.rounds import send_outbox

    outcome = send_outbox(app.engine, _programme_rules_or_none(app), limit=limit)
    if outcome.config_error:
        raise UserError(f"发送配置错误：{outcome.config_error}")
    for line in outcome.lines():
        click.echo(line)
    for failure in outcome.failures:
        click.echo(f"  发送失败 #{failure.delivery_id} {failure.address}：{failure.error}", err=True)
    if outcome.exit_code:
        raise click.exceptions.Exit(outcome.exit_code)


def _programme_rules_or_none(app: AppContext) -> RuleSet | None:
    """The rule set (for admin_email), or None with a warning when it cannot be loaded: sending
    what is already in the outbox must not depend on the rules being valid."""
    from duban.cli.rules import rule_set_directory
    from duban.engine.loader import RuleSetInvalid, load_rule_set

    try:
        return load_rule_set(rule_set_directory(app))
    except (RuleSetInvalid, UserError, OSError) as exc:
        detail = f"{len(exc.errors)} 处错误" if isinstance(exc, RuleSetInvalid) else str(exc)
        click.echo(f"警告：无法读取规则集（{detail}），失败情况将不报告管理员（admin_email）", err=True)
        return None


def run() -> None:  # pragma: no cover - console entry for `python -m duban`
    main(prog_name="duban")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


# Command modules register themselves on `main`; imported last so they can import from here.
import duban.cli.alerts  # noqa: E402
import duban.cli.demo  # noqa: E402
import duban.cli.ops  # noqa: E402
import duban.cli.report  # noqa: E402
import duban.cli.rules  # noqa: E402
import duban.cli.service  # noqa: E402
import duban.cli.web  # noqa: E402,F401
