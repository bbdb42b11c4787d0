"""`duban report monthly|quarterly|annual`: the monthly, quarterly and annual reports (named in programme.yaml) as HTML and .xlsx."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from duban.cli import AppContext, UserError, main, pass_app
from duban.cli.rules import load_programme_rules, parse_at


@main.group()
def report() -> None:
    """生成专班报告：带图表的 HTML 和含五张清单的 .xlsx。"""


def _write(app: AppContext, kind: str, code: str, out: Path, at_text: str | None) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from duban.notifiers.render import format_datetime_cn
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
    when = format_datetime_cn(result.cutoff)  # Beijing time, as the report itself writes it
    if result.cutoff > dt.datetime.now(dt.UTC):
        click.echo(f"注意：评估时点 {when} 尚未到来，报告按库中现有数据生成，仅供预览。", err=True)
    click.echo(f"{result.title}（评估时点 {when}）")
    click.echo(f"  {written.html}")
    click.echo(f"  {written.xlsx}")


_OUT = click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=Path("reports"),
                    show_default=True, help="报告（.html 和 .xlsx）的输出文件夹。")
_AT = click.option("--at", "at_text", default=None,
                   help="按此时点评估，而不是按审阅该报告的会议时间（ISO 格式，默认北京时间）。")


@report.command("monthly")
@click.option("--month", required=True, metavar="YYYY-MM", help="报告月份，如 2023-06。")
@_OUT
@_AT
@pass_app
def monthly(app: AppContext, month: str, out: Path, at_text: str | None) -> None:
    """月度报告（如鹿城区的月度专报）：按次月月调度时的数据反映当月情况。"""
    _write(app, "monthly", month, out, at_text)


@report.command("quarterly")
@click.option("--quarter", required=True, metavar="YYYY-QN", help="报告季度，如 2023-Q2。")
@_OUT
@_AT
@pass_app
def quarterly(app: AppContext, quarter: str, out: Path, at_text: str | None) -> None:
    """季度报告（如鹿城区的季度通报）：按下一次季度会议时的数据反映本季度情况。"""
    _write(app, "quarterly", quarter, out, at_text)


@report.command("annual")
@click.option("--year", required=True, metavar="YYYY", help="评估年度，如 2023。")
@_OUT
@_AT
@pass_app
def annual(app: AppContext, year: str, out: Path, at_text: str | None) -> None:
    """年度报告（如鹿城区的年度评估）：按年度评估会议时的数据反映全年情况。"""
    _write(app, "annual", year, out, at_text)
