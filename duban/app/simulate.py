"""Replaying the cadence over a span of time, as if the clock had run: `duban simulate` and `duban demo`.

`simulate` copies the programme lists into a scratch SQLite file and replays there, so the
real alerts, notices and outbox are never touched and nothing is sent. `demo` replays on its
own workspace database and writes every message as a `.eml` file.
"""

from __future__ import annotations

import datetime as dt
import heapq
import html
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, insert, select

from duban.app.rounds import Companion, RoundReport, record_round
from duban.engine.evaluate import Evaluator
from duban.engine.rules import Cadence, RuleSet
from duban.engine.schedule import Schedule, parse_schedule
from duban.notifiers.render import DigestRenderer, name_with_months
from duban.store.db import create_all, make_engine
from duban.store.models import (
    Delivery,
    Indicator,
    IndicatorUnit,
    Notice,
    Observation,
    ObservationRevision,
    Programme,
    Project,
    ProjectInvestment,
    ProjectPlan,
    ProjectUnit,
    Round,
    Target,
    Task,
    TaskUnit,
    Unit,
)
from duban.store.periods import SHANGHAI
from duban.store.snapshot import read_rows

# Copied into the scratch database, parents before children.
PROGRAMME_TABLES = (Programme, Unit, Indicator, IndicatorUnit, Target, Observation, ObservationRevision,
                    Project, ProjectUnit, ProjectPlan, ProjectInvestment, Task, TaskUnit)


@dataclass(frozen=True)
class TimelineEntry:
    at: dt.datetime
    round_key: str
    round_name: str
    recipient_unit: str
    recipient_name: str
    kind: str
    level: str | None
    title: str
    facts: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        data = dict(self.facts)
        data.update({"round": self.round_key, "round_name": self.round_name, "at": self.at.astimezone(SHANGHAI).isoformat(),
                     "notice": self.kind, "level": self.level, "recipient_unit": self.recipient_unit,
                     "title": self.title})
        data.setdefault("kind", self.kind)
        return data


def fire_schedule(rule_set: RuleSet, start: dt.datetime, end: dt.datetime,
                  evaluator: Evaluator) -> Iterator[tuple[dt.datetime, Cadence]]:
    """Every cadence fire time in [start, end), in time order (ties: the order of the rule files)."""
    # No notice cites a document before it was issued: the cadence starts on the document's date
    # (or programme.yaml's `start`).
    starts = rule_set.settings.notices_from
    if starts is not None:
        start = max(start, dt.datetime.combine(starts, dt.time(), SHANGHAI))
    if start >= end:
        return
    schedules: list[tuple[Cadence, Schedule]] = [
        (cadence, parse_schedule(cadence.when, evaluator.calendar, anchor=cadence.anchor)) for cadence in rule_set.cadences
    ]
    def stream(index: int, cadence: Cadence, schedule: Schedule) -> Iterator[tuple[dt.datetime, int, Cadence]]:
        for at in schedule.fire_times(start, end):
            yield at, index, cadence

    streams = [stream(index, cadence, schedule) for index, (cadence, schedule) in enumerate(schedules)]
    for at, _index, cadence in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
        yield at, cadence


def replay(engine: Engine, rule_set: RuleSet, start: dt.datetime, end: dt.datetime, *,
           compose: bool = True) -> list[RoundReport]:
    """Run every cadence round between start and end against `engine`, as the service would have.

    With `compose=False` rounds record alerts and notices but build no messages: the timeline
    needs only the notices, and rendering is a third of a replay's time."""
    evaluator = Evaluator(rule_set)
    renderer = DigestRenderer(rule_set.templates_dir)
    reports: list[RoundReport] = []
    # Nothing imports during a replay: the programme lists are read once, and each round's
    # snapshot is cut from them in memory.
    with engine.connect() as connection:
        rows = read_rows(connection, None)
    try:
        for at, cadences in _moments(fire_schedule(rule_set, start, end, evaluator)):
            # Cadences firing at one moment make one round: one message per unit per moment.
            first, *others = cadences
            companions = [Companion(f"{c.id}@{at.isoformat()}", c.id, c.name, c.groups) for c in others]
            reports.append(record_round(engine, rule_set, at, key=f"{first.id}@{at.isoformat()}", job=first.id,
                                        name=first.name, groups=first.groups, evaluator=evaluator, renderer=renderer,
                                        rows=rows, compose=compose, companions=companions))
    finally:
        evaluator.close()
    return reports


def _moments(fires: Iterator[tuple[dt.datetime, Cadence]]) -> Iterator[tuple[dt.datetime, list[Cadence]]]:
    current: list[Cadence] = []
    moment: dt.datetime | None = None
    for at, cadence in fires:
        if moment is not None and at != moment:
            yield moment, current
            current = []
        moment = at
        current.append(cadence)
    if moment is not None and current:
        yield moment, current


def copy_programme(source: Engine, target: Engine) -> None:
    with source.connect() as reader, target.begin() as writer:
        for model in PROGRAMME_TABLES:
            table: Any = model.__table__
            batch: list[dict[str, Any]] = []
            for row in reader.execute(select(table)).mappings():
                batch.append(dict(row))
                if len(batch) >= 5000:
                    writer.execute(insert(table), batch)
                    batch = []
            if batch:
                writer.execute(insert(table), batch)


def timeline(engine: Engine) -> list[TimelineEntry]:
    with engine.connect() as conn:
        units = {code: name for code, name in conn.execute(select(Unit.code, Unit.name)).all()}
        rounds = {r.id: r for r in conn.execute(select(Round.id, Round.key, Round.at, Round.job, Round.summary)).all()}
        entries = []
        for notice in conn.execute(select(Notice).order_by(Notice.round_id, Notice.id)).mappings():
            r = rounds[notice["round_id"]]
            name = str((r.summary or {}).get("name") or r.key.split("@")[0].split(".", 1)[-1])
            entries.append(TimelineEntry(r.at, r.key, name, notice["recipient_unit"],
                                         units.get(notice["recipient_unit"], notice["recipient_unit"]),
                                         notice["kind"], notice["level"],
                                         name_with_months(notice["title"], str((notice["facts"] or {}).get("value_period") or "")),
                                         dict(notice["facts"] or {})))
    return entries


def simulate(source: Engine, rule_set: RuleSet, start: dt.datetime, end: dt.datetime,
             outbox: Path | None = None) -> list[TimelineEntry]:
    with tempfile.TemporaryDirectory(prefix="duban-simulate-") as tmp:
        scratch = make_engine(str(Path(tmp) / "scratch.db"))
        # A scratch copy thrown away at the end needs no fsync per round.
        event.listen(scratch, "connect", _no_sync)
        try:
            create_all(scratch)
            copy_programme(source, scratch)
            replay(scratch, rule_set, start, end, compose=outbox is not None)
            if outbox is not None:
                write_eml(scratch, outbox)
            return timeline(scratch)
        finally:
            scratch.dispose()


def _no_sync(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA synchronous=OFF")


def _fixed(moment: dt.datetime) -> Callable[[], dt.datetime]:
    return lambda: moment


def write_eml(engine: Engine, folder: Path) -> int:
    """Write every e-mail in the outbox as a .eml file (the file transport's format), sending nothing."""
    import asyncio

    from duban.notifiers.outbox import drain
    from duban.notifiers.transports.file import FileTransport

    folder.mkdir(parents=True, exist_ok=True)
    with engine.connect() as conn:
        moments = sorted(set(conn.scalars(select(Delivery.next_attempt_at).where(Delivery.status == "pending"))))
    if not moments:
        return 0
    transport = FileTransport(str(folder))

    async def send_in_order() -> int:
        # Each round's messages are sent at that round's moment, as the service would have: the
        # ledger's 送达时间 is each notice's own, not the moment the demo ran.
        sent = 0
        for moment in moments:
            report = await drain(engine, transport, now=_fixed(moment + dt.timedelta(seconds=1)), worker="simulate")
            sent += report.sent
        return sent

    return asyncio.run(send_in_order())


_LEVEL_NAMES = {"red": "红灯", "yellow": "黄灯", "blue": "提醒", "green": "表扬", None: ""}
_NOTICE_NAMES = {"warning": "预警", "reminder": "提醒", "overdue": "逾期", "praise": "表扬",
                 "escalation": "升级督办", "revised": "灯色调整", "resolved": "销号"}


def _kind_cn(kind: str, level: str | None) -> str:
    """预警（红灯）, 灯色调整（调整为黄灯）, 表扬, 销号: never an English word or a bare slash."""
    name = _NOTICE_NAMES.get(kind, "通知")
    light = _LEVEL_NAMES.get(level, "")
    if not light or kind in ("praise", "resolved"):
        return name
    if kind == "revised":
        return f"{name}（调整为{light}）"
    return f"{name}（{light}）"


def _when_cn(at: dt.datetime) -> str:
    local = at.astimezone(SHANGHAI)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


def _mail_label(path: Path) -> str:
    """A message as its recipient sees it in the inbox: recipient and subject, not a file name."""
    from email import policy
    from email.header import decode_header, make_header
    from email.parser import BytesHeaderParser

    from duban.notifiers.message import decoded_mailboxes

    with path.open("rb") as handle:
        headers = BytesHeaderParser(policy=policy.compat32).parse(handle)
    # Decoded as RFC 2047 says (policy.default would put a space where a long name is split in two).
    to = headers.get("To")
    names = "、".join(dict.fromkeys(name or address for name, address in decoded_mailboxes(str(to)))) if to else ""
    subject = str(make_header(decode_header(str(headers.get("Subject", "")))))
    return f"{names}：{subject}"


def describe(entry: TimelineEntry) -> str:
    when = _when_cn(entry.at)
    return f"{when} {entry.round_name:<20} → {entry.recipient_name}：[{_kind_cn(entry.kind, entry.level)}] {entry.title}"


def write_index(folder: Path, sections: list[tuple[str, Path, list[TimelineEntry]]]) -> Path:
    """An HTML page listing every message sent in the demo, when and to whom, linking the .eml files."""
    rows = []
    for title, outbox, entries in sections:
        rows.append(f"<h2>{html.escape(title)}</h2>")
        files = sorted(outbox.glob("*.eml"))
        rows.append(f"<p>共 {len(entries)} 条通知，合并为 {len(files)} 封邮件（见下方邮件列表）。</p>")
        rows.append("<table><tr><th>时间</th><th>轮次</th><th>收件单位</th><th>类别</th><th>事项</th></tr>")
        for e in entries:
            when = _when_cn(e.at)
            level = e.level or ""
            rows.append(
                f"<tr class='{html.escape(level)}'><td>{when}</td><td>{html.escape(e.round_name)}</td>"
                f"<td>{html.escape(e.recipient_name)}</td><td>{html.escape(_kind_cn(e.kind, e.level))}</td>"
                f"<td>{html.escape(e.title)}</td></tr>"
            )
        rows.append("</table><h3>邮件（点击用邮件客户端打开）</h3><ul>")
        rows += [f"<li><a href='{html.escape(f.relative_to(folder).as_posix())}'>{html.escape(_mail_label(f))}</a></li>"
                 for f in files]
        rows.append("</ul>")
    page = (
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'><title>督办演示：已发送通知一览</title>"
        "<style>body{font-family:'Microsoft YaHei','PingFang SC',sans-serif;margin:2em;}"
        "table{border-collapse:collapse;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px}"
        "tr.red td:nth-child(4){color:#b00;font-weight:bold}tr.yellow td:nth-child(4){color:#a60}"
        "tr.green td:nth-child(4){color:#070}</style></head><body><h1>督办演示：2023年通知时间线</h1>"
        + "\n".join(rows) + "</body></html>"
    )
    index = folder / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
