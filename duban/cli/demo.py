"""`duban simulate` and `duban demo`."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from duban.cli import AppContext, UserError, main, pass_app
from duban.cli.rules import load_programme_rules, parse_at
from duban.engine.loader import RuleSetInvalid, load_rule_set

EXAMPLES = (("lucheng", "examples/lucheng-2023"), ("huzhou", "examples/huzhou-2023"))
# Where the demo's `duban web` serves each programme (its board and the reports its mails link).
WEB_PORTS = {"lucheng": 8000, "huzhou": 8001}


@main.command()
@click.option("--from", "start_text", required=True, help="起始日期或时间（默认北京时间）。")
@click.option("--to", "end_text", required=True, help="截止日期或时间（不含）。")
@click.option("--json", "as_json", is_flag=True, help="每条通知输出一个 JSON 对象（含所属轮次）。")
@click.option("--outbox", type=click.Path(path_type=Path), help="同时把每封邮件写成 .eml 文件存到该目录。")
@pass_app
def simulate(app: AppContext, start_text: str, end_text: str, as_json: bool, outbox: Path | None) -> None:
    """按库中数据回放两个日期之间的督办节奏；不修改数据，不发送任何通知。"""
    from duban.app.simulate import describe
    from duban.app.simulate import simulate as run_simulation

    start, end = _day_start(start_text), _day_start(end_text)
    if end <= start:
        raise UserError("--to 必须晚于 --from")
    rule_set = load_programme_rules(app)
    entries = run_simulation(app.engine, rule_set, start, end, outbox)
    for entry in entries:
        click.echo(json.dumps(entry.to_json(), ensure_ascii=False) if as_json else describe(entry))
    if not as_json:
        click.echo(f"模拟完成：{start.date()} 至 {end.date()}，共 {len(entries)} 条通知。", err=True)


def _day_start(text: str) -> dt.datetime:
    at = parse_at(text)
    return at.replace(hour=0, minute=0) if "T" not in text and " " not in text else at  # whole days


@main.command()
@click.option("--workspace", type=click.Path(path_type=Path), default=Path("demo-workspace"), show_default=True,
              help="演示输出目录（数据库、邮件、报告和 index.html）。")
@click.option("--from", "start_text", default="2023-01-01", show_default=True, help="回放起始日期。")
@click.option("--to", "end_text", default="2024-02-01", show_default=True,
              help="回放截止日期（不含）；含 2024 年 1 月可看到年末逾期任务和年度评估。")
@click.pass_context
def demo(ctx: click.Context, workspace: Path, start_text: str, end_text: str) -> None:
    """一条命令体验全部功能：导入两个示例，回放 2023 年，把每封邮件写成 .eml 并生成报告。"""
    from duban.app.accounts import unit_accounts
    from duban.app.simulate import replay, timeline, write_eml, write_index
    from duban.store.db import create_all, make_engine, transaction
    from duban.store.importer import import_paths

    app: AppContext = ctx.obj
    start, end = _day_start(start_text), _day_start(end_text)
    workspace.mkdir(parents=True, exist_ok=True)
    sections = []
    reports_by_programme: list[tuple[str, list[Any]]] = []
    for programme, example in EXAMPLES:
        began = time.perf_counter()
        folder = workspace / programme
        db_file = folder / "duban.db"
        if db_file.exists():
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db_file}{suffix}").unlink(missing_ok=True)
        outbox = folder / "outbox"
        for old in [*outbox.glob("*.eml"), *(folder / "reports").glob("*.*")]:
            old.unlink()
        engine = make_engine(str(db_file))
        try:
            create_all(engine)
            report = import_paths(engine, [example], now=dt.datetime.now(dt.UTC), imported_by="duban demo")
            if not report.ok:
                for line in report.problem_lines():
                    click.echo(line, err=True)
                raise UserError(f"示例数据 {example} 导入失败")
            try:
                rule_set = load_rule_set(app.rules_dir / programme)
            except RuleSetInvalid as invalid:
                for error in invalid.errors:
                    click.echo(str(error), err=True)
                raise UserError(f"规则集 {app.rules_dir / programme} 无效") from None
            # The mails link the reports their meeting reads. The demo publishes them where the web
            # serves them (`duban web --reports`, printed below): a link a recipient can open in a
            # browser, not a file on the machine that wrote the mail.
            # Each unit has a web account before the first round, so every digest carries its personal
            # links (在线报送本月数据, 查看事项并反馈) to the same web; links are one-time and last 7 days,
            # so those of the last week's mails still open on the demo web's clock.
            web = f"http://127.0.0.1:{WEB_PORTS[programme]}"
            with transaction(engine) as session:
                unit_accounts(session, start)
            with _environment(DUBAN_REPORTS_URL=f"{web}/reports/", DUBAN_WEB_URL=web):
                rounds = replay(engine, rule_set, start, end)
            write_eml(engine, outbox)
            entries = timeline(engine)
            written_reports = _write_reports(engine, rule_set, folder / "reports", _linked_reports(engine))
        finally:
            engine.dispose()
        title = rule_set.settings.name or programme
        sections.append((title, outbox, entries))
        reports_by_programme.append((title, written_reports))
        mails = len(list(outbox.glob("*.eml")))
        click.echo(f"{title}：回放 {len(rounds)} 个轮次，{len(entries)} 条通知，{mails} 封邮件"
                   f"（{time.perf_counter() - began:.1f} 秒）")
    index = write_index(workspace, sections)
    _list_reports(index, workspace, reports_by_programme)
    click.echo("")
    click.echo("演示完成。请查看：")
    click.echo(f"  通知一览（浏览器打开）：{index}")
    for _title, outbox, _entries in sections:
        click.echo(f"  邮件（.eml，可用邮件客户端打开）：{outbox}{os.sep}")
    for programme, _example in EXAMPLES:
        click.echo(f"  报告（月度、季度、年度，.html 与 .xlsx）：{workspace / programme / 'reports'}{os.sep}")
    click.echo(f"  数据库：{workspace}/<programme>/duban.db，例如 "
               f"{_command_name()} --db {workspace}/lucheng/duban.db --rules rules evaluate --at 2023-09-15")
    from duban.cli.web import demo_lines

    click.echo("  网页（挂图作战、在线报送、邮件中的报告链接；时钟固定在回放结束前一天，登录链接一次有效）：")
    for programme, _example in EXAMPLES:
        for line in demo_lines(str(workspace / programme / "duban.db"), _command_name(), "rules",
                               end - dt.timedelta(days=1), port=WEB_PORTS[programme],
                               reports_dir=str(workspace / programme / "reports")):
            click.echo(line)


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Settings the demo gives its replay, unless the reader's environment already has them."""
    saved = {name: os.environ.get(name) for name in values}
    for name, value in values.items():
        os.environ[name] = saved[name] or value
    try:
        yield
    finally:
        for name, before in saved.items():
            if before is None:
                os.environ.pop(name, None)


def _command_name() -> str:
    """How the reader can run duban from here: `make demo` installs it in .venv, not on PATH."""
    program = Path(sys.argv[0])
    if program.name != "duban" or shutil.which("duban"):
        return "duban"
    try:
        return str(program.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(program)


def _linked_reports(engine: Any) -> list[tuple[str, str]]:
    """(kind, period) of every report a round's mails link: the demo writes each, so no link is dead."""
    from sqlalchemy import select

    from duban.store.models import Round

    wanted: dict[tuple[str, str], None] = {}
    with engine.connect() as conn:
        for summary in conn.scalars(select(Round.summary).order_by(Round.at)):
            for url in (summary or {}).get("reports", []):
                stem = url.rsplit("/", 1)[-1].removesuffix(".html")
                kind, _, code = stem.partition("-")
                wanted[(kind, code)] = None
    return list(wanted)


def _write_reports(engine: Any, rule_set: Any, folder: Path, reports: list[tuple[str, str]]) -> list[Any]:
    from duban.notifiers.reports import generate

    return [generate(engine, rule_set, kind, code, folder) for kind, code in reports]


def _list_reports(index: Path, workspace: Path, by_programme: list[tuple[str, list[Any]]]) -> None:
    """Add the reports to the demo's index page, above the timeline."""
    import html

    items = []
    for title, written in by_programme:
        links = "".join(
            f"<li>{html.escape(w.report.title)}：<a href='{html.escape(w.html.relative_to(workspace).as_posix())}'>网页版</a>"
            f" · <a href='{html.escape(w.xlsx.relative_to(workspace).as_posix())}'>电子表格</a></li>" for w in written)
        items.append(f"<h3>{html.escape(title)}</h3><ul>{links}</ul>")
    block = "<h2>工作专班报告（月度、季度、年度）</h2>" + "".join(items)
    page = index.read_text(encoding="utf-8")
    index.write_text(page.replace("</h1>", "</h1>" + block, 1), encoding="utf-8")
