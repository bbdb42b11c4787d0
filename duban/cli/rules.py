"""`duban check`, `duban test`, `duban evaluate`: the rule commands."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import click
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from duban.cli import AppContext, UserError, database_problem, main, pass_app
from duban.engine.loader import RuleError, RuleSetInvalid, find_rule_sets, load_rule_set
from duban.engine.rules import RuleSet
from duban.store.models import Programme


def parse_at(text: str, option: str = "--at") -> dt.datetime:
    """An ISO time; without a zone it is Asia/Shanghai time, the programmes' clock."""
    from duban.store.periods import SHANGHAI

    try:
        # A bare date means 09:00 that day, when the office's rounds run.
        value = dt.datetime.combine(dt.date.fromisoformat(text), dt.time(9, 0))
    except ValueError:
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError:
            raise UserError(f"{option} 时间格式不正确：“{text}”，应为 ISO 格式，如 2023-07-15 或 2023-07-15T09:00+08:00") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=SHANGHAI)
    return value


def _print_errors(errors: list[RuleError]) -> None:
    for error in errors:
        click.echo(str(error), err=True)


@main.command()
@click.argument("directory", required=False, metavar="[规则目录]", type=click.Path(path_type=Path))
@click.pass_context
def check(ctx: click.Context, directory: Path | None) -> None:
    """检查规则目录（其下每个规则集）；指定 --db 时还核对数据库中的指标代码和单位。"""
    app: AppContext = ctx.obj
    root = directory or app.rules_dir
    sets = find_rule_sets(root)
    if not sets:
        raise UserError(f"{root}: 没有找到规则集（含 programme.yaml 的目录）")
    check_store = ctx.parent is not None and ctx.parent.params.get("db_url") is not None
    errors: list[RuleError] = []
    total = 0
    for rule_set_dir in sets:
        try:
            rule_set = load_rule_set(rule_set_dir)
        except RuleSetInvalid as invalid:
            errors += invalid.errors
            continue
        total += len(rule_set.rules)
        if check_store:
            errors += _store_errors(app, rule_set)
    if errors:
        _print_errors(errors)
        click.echo(f"规则检查未通过：共 {len(errors)} 处错误。", err=True)
        if not check_store:
            click.echo(NOT_CHECKED_WITHOUT_DB, err=True)
        sys.exit(1)
    click.echo(f"规则检查通过：{len(sets)} 个规则集，{total} 条规则。")
    if not check_store:
        click.echo(NOT_CHECKED_WITHOUT_DB)


NOT_CHECKED_WITHOUT_DB = ("注意：未指定 --db，未核对规则引用的指标代码、专班单位代码和通知模板是否存在于数据库中；"
                          "加 --db（或设置 DUBAN_DB）可一并核对，如 duban --db duban.db check。")


def _store_errors(app: AppContext, rule_set: object) -> list[RuleError]:
    from duban.app.rulecheck import rules_against_store
    from duban.engine.rules import RuleSet

    assert isinstance(rule_set, RuleSet)
    try:
        return rules_against_store(app.engine, rule_set)
    except SQLAlchemyError as exc:
        raise UserError(database_problem(app.db_url, exc)) from None


def rule_set_directory(app: AppContext) -> Path:
    """The rule set folder for the database's programme (`--rules rules/` picks `rules/<programme>/`)."""
    from duban.engine.loader import resolve_rule_set

    try:
        with app.engine.connect() as conn:
            programme = conn.scalars(select(Programme.code)).first()
    except SQLAlchemyError as exc:
        raise UserError(database_problem(app.db_url, exc)) from None
    try:
        return resolve_rule_set(app.rules_dir, programme)
    except RuleSetInvalid as invalid:
        raise UserError("\n".join(str(e) for e in invalid.errors)) from None


def load_programme_rules(app: AppContext) -> RuleSet:
    """The rule set for the database's programme, or a UserError listing what is wrong."""
    try:
        return load_rule_set(rule_set_directory(app))
    except RuleSetInvalid as invalid:
        _print_errors(invalid.errors)
        raise UserError(f"规则集无效（{len(invalid.errors)} 处错误），未执行。") from None


@main.command()
@click.option("--at", "at_text", required=True, help="评估时点（ISO 格式，如 2023-07-17 或 2023-07-17T09:00；默认北京时间）。")
@click.option("--json", "as_json", is_flag=True, help="每行输出一个 JSON 对象。")
@click.option("--group", "groups", multiple=True, help="只评估这些节奏分组中的规则（可多次指定）。")
@click.option("--send", is_flag=True, help="记录预警和通知，并通过发件箱投递。")
@click.option("--force", is_flag=True,
              help="与 --send 同用：即使 --at 早于已记录的最近一轮也补记（默认拒绝，以免重发已处理的预警）。")
@pass_app
def evaluate(app: AppContext, at_text: str, as_json: bool, groups: tuple[str, ...], send: bool, force: bool) -> None:
    """列出某一时点应发出的提醒和预警；加 --send 则记录并投递。"""
    from duban.engine.evaluate import evaluate as run_evaluation
    from duban.store.snapshot import load_snapshot

    at = parse_at(at_text)
    rule_set = load_programme_rules(app)
    snapshot = load_snapshot(app.engine, at)
    result = run_evaluation(rule_set, snapshot, groups=groups or None)
    for warning in result.warnings:
        click.echo(f"警告：{warning}", err=True)
    for skipped in result.failures:
        click.echo(f"已跳过：{skipped}", err=True)
    if send:
        from duban.app.rounds import RoundError, record_round, send_outbox
        from duban.notifiers.transports import ConfigError
        from duban.notifiers.transports.settings import delivery_settings

        try:  # a wrong delivery setting is reported before the round is recorded, not after
            delivery_settings()
        except ConfigError as exc:
            raise UserError(f"发送配置错误：{exc}；本轮未记录") from None
        try:
            report = record_round(app.engine, rule_set, at, key=f"manual:{at.isoformat()}", groups=groups or None,
                                  result=result, refuse_earlier=not force)
        except RoundError as exc:
            raise UserError(str(exc)) from None
        click.echo(str(report))
        for problem in report.problems:
            click.echo(f"模板或地址问题：{problem}", err=True)
        outcome = send_outbox(app.engine, rule_set)
        click.echo(str(outcome))
        for failure in outcome.failures:
            click.echo(f"  发送失败 #{failure.delivery_id} {failure.address}：{failure.error}", err=True)
        if outcome.exit_code:
            raise click.exceptions.Exit(outcome.exit_code)
        return
    if as_json:
        for candidate in result.candidates:
            click.echo(json.dumps(candidate.to_json(), ensure_ascii=False))
        return
    from duban.notifiers.render import format_datetime_cn, format_number, period_cn

    if not result.candidates:
        click.echo(f"{format_datetime_cn(at)}：无提醒或预警。")
        return
    names = {"red": "红灯", "yellow": "黄灯", "blue": "提醒", "green": "表扬"}
    for candidate in result.candidates:
        level = names.get(candidate.level or "", "")
        # Unit names, not codes; numbers as an office writes them (66.67, never 66.6667).
        units = "、".join(snapshot.units[c].name if c in snapshot.units else c for c in candidate.units)
        figures = ""
        if candidate.value is not None:
            figures = f" 数值 {format_number(candidate.value)}{candidate.measure}"
            if candidate.threshold is not None:
                figures += f" / 标准 {format_number(candidate.threshold)}{candidate.measure}"
        click.echo(f"[{level}] {candidate.title}（{period_cn(candidate.period)}；责任单位：{units}）{figures}"
                   f"  [{candidate.rule.split('.', 1)[-1]}]")


@main.command("test")
@click.argument("files", nargs=-1, required=True, metavar="测试文件...", type=click.Path(exists=True, path_type=Path))
@click.option("-v", "--verbose", is_flag=True, help="逐条列出每个测试用例的结果。")
def test_rules(files: tuple[Path, ...], verbose: bool) -> None:
    """运行用 YAML 编写的规则单元测试（类似 promtool test rules）。"""
    from duban.app.ruletest import run_rule_test_files

    outcome = run_rule_test_files(list(files))
    for line in outcome.lines(verbose=verbose):
        click.echo(line)
    if not outcome.ok:
        sys.exit(1)
