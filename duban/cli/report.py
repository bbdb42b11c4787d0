"""`duban report monthly|quarterly|annual`: the 月度专报, 季度通报 and 年度评估 as HTML and .xlsx."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from duban.cli import AppContext, UserError, main, pass_app
from duban.cli.rules import load_programme_rules, parse_at


@main.group()
def report() -> None:
    """Write the working group's reports (HTML with charts, and .xlsx with the five lists)."""


def _write(app: AppContext, kind: str, code: str, out: Path, at_text: str | None) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from duban.notifiers.reports import ReportPeriodError, ReportTemplateError, generate

    rule_set = load_programme_rules(app)
    at = parse_at(at_text) if at_text else None
    try:
        written = generate(app.engine, rule_set, kind, code, out, at=at)
    except ReportPeriodError as exc:
        raise UserError(str(exc)) from None
    except ReportTemplateError as exc:
        raise UserError(f"报告模板有误，未生成报告：{exc}") from None
    except SQLAlchemyError as exc:
        raise UserError(f"无法读取数据库 {app.db_url}：{str(exc).splitlines()[0]}") from None
    except OSError as exc:
        raise UserError(f"无法写入 {out}：{exc.strerror or exc}") from None
    result = written.report
    for warning in result.warnings:
        click.echo(f"警告：{warning}", err=True)
    when = result.cutoff.strftime("%Y-%m-%d %H:%M")
    if result.cutoff > dt.datetime.now(dt.UTC):
        click.echo(f"注意：评估时点 {when} 尚未到来，报告按库中现有数据生成，仅供预览。", err=True)
    click.echo(f"{result.title}（评估时点 {when}）")
    click.echo(f"  {written.html}")
    click.echo(f"  {written.xlsx}")


_OUT = click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=Path("reports"),
                    show_default=True, help="Folder for the .html and .xlsx files.")
_AT = click.option("--at", "at_text", default=None,
                   help="Evaluate at this moment instead of the reading meeting's fire time (ISO, Asia/Shanghai).")


@report.command("monthly")
@click.option("--month", required=True, help="The month reported, e.g. 2023-06.")
@_OUT
@_AT
@pass_app
def monthly(app: AppContext, month: str, out: Path, at_text: str | None) -> None:
    """月度专报: the month as the next monthly dispatch sees it."""
    _write(app, "monthly", month, out, at_text)


@report.command("quarterly")
@click.option("--quarter", required=True, help="The quarter reported, e.g. 2023-Q2.")
@_OUT
@_AT
@pass_app
def quarterly(app: AppContext, quarter: str, out: Path, at_text: str | None) -> None:
    """季度通报: the quarter as the next quarterly meeting sees it."""
    _write(app, "quarterly", quarter, out, at_text)


@report.command("annual")
@click.option("--year", required=True, help="The year assessed, e.g. 2023.")
@_OUT
@_AT
@pass_app
def annual(app: AppContext, year: str, out: Path, at_text: str | None) -> None:
    """年度评估: the year as the annual assessment sees it."""
    _write(app, "annual", year, out, at_text)
