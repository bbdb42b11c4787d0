"""报送 and requests: what a unit does through the web, and how the office decides on it.

A submission goes through the very import `duban import` runs (store/importer.py): the form's
rows are written as a 月度数据 sheet and imported with the same parsers, the same Chinese
row/column problems and the same all-or-nothing transaction. Uploaded sheets are imported as
they are, after a check that they hold only 月度数据 rows the unit is responsible for.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from duban.app import audit
from duban.app.accounts import Principal
from duban.engine.calendar import WorkingCalendar
from duban.engine.rules import RuleSet
from duban.store.db import transaction
from duban.store.importer import import_paths
from duban.store.importing.reading import Problem, discover, open_table
from duban.store.importing.values import CellError, parse_code, parse_period
from duban.store.models import (
    Indicator,
    IndicatorUnit,
    Observation,
    ObservationRevision,
    Programme,
    Target,
    Unit,
)
from duban.store.periods import SHANGHAI, last_ended_month, local_date, month_code
from duban.store.web_models import Submission

UPLOAD_SUFFIXES = (".csv", ".xlsx")
UPLOAD_MAX_BYTES = 5 * 1024 * 1024


class PortalError(ValueError):
    """A Chinese message for the person who asked."""


class Forbidden(PortalError):
    """The principal may not do this (the web answers 403)."""


# --- what a unit owes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OwedFigure:
    indicator: str
    indicator_name: str
    measure: str
    period: str
    period_label: str
    unit_code: str  # '' for the jurisdiction's figure the lead unit reports
    due: dt.date | None
    value: float | None  # what the store holds now (a correction replaces it)
    entry: str = ""  # what to enter: 2023年12月当月值, 2023年1—12月累计, 截至2023年12月底累计 (the 报送口径)
    last: str = ""  # the last figure reported before this period, for reference: 2023年11月：55家（1—11月累计）

    @property
    def key(self) -> str:
        return f"{self.indicator}|{self.period}|{self.unit_code}"

    @property
    def display_name(self) -> str:
        """The name with "1—N月" made the months this figure covers ("2023年1—6月")."""
        from duban.notifiers.render import name_with_months

        return name_with_months(self.indicator_name, self.period)

    def overdue(self, today: dt.date) -> bool:
        return self.value is None and self.due is not None and self.due < today


def _report_rules(rule_set: RuleSet) -> list[Any]:
    return [rule for rule in rule_set.rules if rule.kind == "report_due"]


def owed_figures(session: Session, rule_set: RuleSet, calendar: WorkingCalendar, unit_code: str,
                 at: dt.datetime) -> list[OwedFigure]:
    """The months the unit still owes for each indicator it reports, and the month last ended
    (filled in if already reported, so it can be corrected), with the due dates of the calendar."""
    today = local_date(at)
    programme = session.execute(select(Programme.start)).first()
    start = programme[0] if programme else dt.date(today.year, 1, 1)
    last_y, last_m = last_ended_month(at)
    months: list[tuple[int, int]] = []
    year, month = start.year, start.month
    while (year, month) <= (last_y, last_m):
        months.append((year, month))
        year, month = (year, month + 1) if month < 12 else (year + 1, 1)
    links = session.execute(select(IndicatorUnit.indicator_code, IndicatorUnit.position)
                            .where(IndicatorUnit.unit_code == unit_code)).all()
    if not links or not months:
        return []
    position = dict(links)
    indicators = {row.code: row for row in session.execute(
        select(Indicator.code, Indicator.name, Indicator.measure, Indicator.kind, Indicator.reported_as)
        .where(Indicator.code.in_(list(position))))}
    shares = set(session.scalars(select(Target.indicator_code).where(Target.unit_code == unit_code,
                                                                     Target.indicator_code.in_(list(position)))))
    observed: dict[tuple[str, str], dict[str, float]] = {}
    for indicator, unit, period, value in session.execute(
            select(Observation.indicator_code, Observation.unit_code, Observation.period, Observation.value)
            .where(Observation.indicator_code.in_(list(position)), Observation.unit_code.in_(["", unit_code]))):
        observed.setdefault((indicator, unit), {})[period] = value
    rules = _report_rules(rule_set)
    owed: dict[str, OwedFigure] = {}
    for code, info in sorted(indicators.items(), key=lambda item: (position[item[0]], item[0])):
        for rule in rules or [None]:
            if rule is not None and not rule.selector.matches(code, info.kind):
                continue
            per_unit = bool(rule and rule.per_unit)
            if per_unit:
                if code not in shares and not observed.get((code, unit_code)):
                    continue
                series_unit = unit_code
            else:
                if position[code] != 0:
                    continue  # the lead unit reports the jurisdiction's figure
                series_unit = ""
            series = observed.get((code, series_unit), {})
            due_day = rule.due_day if rule else 10
            for y, m in months:
                period = month_code(y, m)
                quarter = f"{y}-Q{(m - 1) // 3 + 1}" if m % 3 == 0 else ""
                have = series.get(period, series.get(quarter) if quarter else None)
                if have is not None and (y, m) != (last_y, last_m):
                    continue
                figure = OwedFigure(code, info.name, info.measure, period, f"{y}年{m}月", series_unit,
                                    calendar.due_date_for_month(y, m, due_day), have,
                                    entry_label(info.kind, info.reported_as, y, m),
                                    last_reported(series, period, info.kind, info.reported_as, info.measure))
                owed.setdefault(figure.key, figure)
    return sorted(owed.values(), key=lambda f: (f.period, position.get(f.indicator, 0), f.indicator, f.unit_code))


def entry_label(kind: str, reported_as: str, year: int, month: int) -> str:
    """What a unit types for one month of an indicator, as its 报送口径 says (docs/data.md)."""
    if kind == "cumulative":
        if reported_as == "month":
            return f"{year}年{month}月当月值（仅本月新增）"
        if reported_as == "to_date":
            return f"截至{year}年{month}月底累计（自工程启动以来）"
        return f"{year}年1—{month}月累计" if month > 1 else f"{year}年1月数值（1月累计）"
    if kind == "growth":
        return f"{year}年1—{month}月同比增速" if month > 1 else f"{year}年1月同比增速"
    return f"{year}年{month}月末数值"


def last_reported(series: dict[str, float], period: str, kind: str, reported_as: str, measure: str) -> str:
    """The latest figure before `period`, with what it was (当月值 or 1—N月累计), for the unit to compare."""
    from duban.notifiers.render import format_figure

    before = sorted(p for p in series if len(p) == 7 and p[4] == "-" and p[5:].isdigit() and p < period)
    if not before:
        return ""
    last = before[-1]
    y, m = int(last[:4]), int(last[5:])
    text = f"{y}年{m}月：{format_figure(series[last], measure)}"
    if kind == "cumulative" and reported_as == "month":
        months = [p for p in before if p.startswith(f"{y}-")]
        total = sum(series[p] for p in months)
        return f"{text}（当月值；{y}年1—{m}月合计{format_figure(total, measure)}）"
    if kind == "cumulative" and reported_as == "to_date":
        return f"{text}（累计至今）"
    if kind == "cumulative":
        return f"{text}（1—{m}月累计）" if m > 1 else text
    return text


def not_reported(session: Session, rule_set: RuleSet, calendar: WorkingCalendar, at: dt.datetime,
                 *, limit: int = 500) -> list[tuple[str, str, int]]:
    """Units that still owe figures: (code, name, figures owed), most owed first.

    Every month the rules chase up to the month last ended, not only the last one: a June figure still
    missing in September is outstanding too. Once notices have begun (programme.yaml `issued`/`start`),
    months whose due date came before that day are not chased (as the report_due rules read it), so the
    office's list and the board's 催报 lights agree. Live: one pass over the links and the figures."""
    today = local_date(at)
    last_y, last_m = last_ended_month(at)
    programme = session.execute(select(Programme.start)).first()
    start = programme[0] if programme else dt.date(today.year, 1, 1)
    begins = rule_set.settings.notices_from
    chase_from = begins if begins is not None and begins <= today else None
    kinds = dict(session.execute(select(Indicator.code, Indicator.kind)).all())
    rules = _report_rules(rule_set)
    month_list: list[tuple[int, int]] = []
    year, month = start.year, start.month
    while (year, month) <= (last_y, last_m):
        month_list.append((year, month))
        year, month = (year, month + 1) if month < 12 else (year + 1, 1)

    def chased(due_day: int) -> list[tuple[str, str]]:
        """(month code, quarter code or '') of the months chased under a rule with this due day."""
        out = []
        for y, m in month_list:
            if chase_from is not None and calendar.due_date_for_month(y, m, due_day) < chase_from:
                continue
            out.append((month_code(y, m), f"{y}-Q{(m - 1) // 3 + 1}" if m % 3 == 0 else ""))
        return out

    def periods(code: str, per_unit: bool) -> list[tuple[str, str]] | None:
        """The periods chased for this indicator, None when no report rule covers it."""
        if not rules:
            return None if per_unit else chased(10)
        found: dict[tuple[str, str], None] = {}
        covered = False
        for rule in rules:
            if rule.per_unit == per_unit and rule.selector.matches(code, kinds.get(code, "")):
                covered = True
                found.update(dict.fromkeys(chased(rule.due_day)))
        return list(found) if covered else None

    def owed(series: set[str], wanted: list[tuple[str, str]]) -> int:
        return sum(1 for period, quarter in wanted if period not in series and not (quarter and quarter in series))

    codes = sorted({code for y, m in month_list for code in (month_code(y, m), f"{y}-Q{(m - 1) // 3 + 1}")})
    filed: dict[tuple[str, str], set[str]] = defaultdict(set)
    for indicator, unit, period in session.execute(select(Observation.indicator_code, Observation.unit_code,
                                                          Observation.period).where(Observation.period.in_(codes))):
        filed[(indicator, unit)].add(period)
    missing: dict[str, int] = {}
    for unit, indicator in session.execute(select(IndicatorUnit.unit_code, IndicatorUnit.indicator_code)
                                           .where(IndicatorUnit.position == 0)):
        wanted = periods(indicator, False)
        if wanted:
            # Figures filed per unit still count as the jurisdiction's report (as the rules read it).
            series = set(filed.get((indicator, ""), set()))
            if not series:
                series = {p for (i, _), ps in filed.items() if i == indicator for p in ps}
            n = owed(series, wanted)
            if n:
                missing[unit] = missing.get(unit, 0) + n
    if any(rule.per_unit for rule in rules):
        shares = session.execute(select(Target.unit_code, Target.indicator_code).where(Target.unit_code != "")
                                 .distinct()).all()
        for unit, indicator in shares:
            wanted = periods(indicator, True)
            if wanted:
                n = owed(filed.get((indicator, unit), set()), wanted)
                if n:
                    missing[unit] = missing.get(unit, 0) + n
    names = dict(session.execute(select(Unit.code, Unit.name)).all())
    rows = sorted(((code, names.get(code, code), count) for code, count in missing.items()), key=lambda r: (-r[2], r[0]))
    return rows[:limit]


# --- submitting figures ----------------------------------------------------------------------------


@dataclass
class SubmissionOutcome:
    ok: bool
    problems: list[Problem] = field(default_factory=list)
    field_problems: dict[str, str] = field(default_factory=dict)  # owed key -> message (form only)
    submission: Submission | None = None
    touched: set[str] = field(default_factory=set)  # indicators written

    @property
    def problem_lines(self) -> list[str]:
        return [str(p) for p in self.problems]


def values_hash(values: list[list[Any]]) -> str:
    canonical = json.dumps(sorted(values), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _allowed(session: Session, unit_code: str) -> tuple[set[str], set[str]]:
    """Indicators whose jurisdiction figure the unit reports (it leads), and those it reports per unit."""
    rows = session.execute(select(IndicatorUnit.indicator_code, IndicatorUnit.position)
                           .where(IndicatorUnit.unit_code == unit_code)).all()
    return {code for code, pos in rows if pos == 0}, {code for code, _ in rows}


def _relabel(problems: list[Problem], label: str) -> list[Problem]:
    return [Problem(label, p.row, p.column, p.message) for p in problems]


def submit_form(engine: Engine, who: Principal, unit_code: str, entries: list[tuple[str, str, str, str]],
                *, now: dt.datetime, address: str = "", explanations: dict[str, str] | None = None) -> SubmissionOutcome:
    """Entries are (indicator, period, unit, value as typed); blanks are skipped. All or nothing.

    The rows go through `store.importer.import_rows`: the parsers, the plausibility checks and the
    messages of `duban import`. A figure the checks query (a warning) is accepted only with a 说明
    on its own row; the 说明 are kept with the figures (the import's note) and on the receipt.
    """
    from duban.store.importer import WEB_FORM_LABEL, import_rows, validate_rows

    if not who.is_unit or who.unit_code != unit_code:
        raise Forbidden("只有本单位的填报人员可以报送本单位数据")
    explanations = {k: v.strip() for k, v in (explanations or {}).items() if v.strip()}
    filled = [(i, p, u, v.strip()) for i, p, u, v in entries if v.strip()]
    if not filled:
        return SubmissionOutcome(False, [Problem(WEB_FORM_LABEL, None, None, "没有填写任何数值")])
    lead, member = _allowed_session(engine, unit_code)
    refused = [Problem(WEB_FORM_LABEL, n, "指标", f"本单位不能报送指标“{i}”{'（本单位）' if u else '的全区数据'}")
               for n, (i, _p, u, _v) in enumerate(filled, start=1)
               if (u and (u != unit_code or i not in member)) or (not u and i not in lead)]
    if refused:
        return SubmissionOutcome(False, refused)
    rows = [{"指标": i, "期间": p, "单位": u, "数值": v} for i, p, u, v in filled]
    keys = [f"{i}|{p}|{u}" for i, p, u, _ in filled]
    note = "；".join(f"{i} {p}{'（' + u + '）' if u else ''}：{explanations[k]}"
                     for k, (i, p, u, _v) in zip(keys, filled, strict=True) if k in explanations)
    if note:
        # Checked first, writing nothing: one row's 说明 must not let another row's queried figure in.
        # Without any 说明 the import itself refuses every queried figure, so it needs no rehearsal.
        checked = _outcome(validate_rows(engine, "observations", rows, note=note), keys, explanations)
        if not checked.ok:
            return checked
    report = import_rows(engine, "observations", rows, now=now, imported_by=_by(who), note=note or None)
    outcome = _outcome(report, keys, explanations)
    if not outcome.ok:
        return outcome
    values = [[i, p, u, _stored(engine, i, p, u)] for i, p, u, _v in filled]
    return _receipt(engine, who, unit_code, report, values, "form", WEB_FORM_LABEL, now=now, address=address,
                    explanations={k: explanations[k] for k in keys if k in explanations})


def _outcome(report: Any, keys: list[str], explanations: dict[str, str]) -> SubmissionOutcome:
    """Form problems by field; a queried figure (warning) without its own 说明 blocks the submission."""
    unexplained = [w for w in report.warnings
                   if w.row is None or not 1 <= w.row <= len(keys) or keys[w.row - 1] not in explanations]
    outcome = SubmissionOutcome(report.problem_count == 0 and not unexplained and not report.needs_note)
    for problem in [*report.problems, *unexplained]:
        if problem.row is not None and 1 <= problem.row <= len(keys):
            text = f"【需核实】{problem.message}（如核实无误，请在“说明”栏写明原因）" if problem.warning else problem.message
            outcome.field_problems.setdefault(keys[problem.row - 1], text)
    if not outcome.ok:
        outcome.problems = [*report.problems, *unexplained]
        if report.problem_count > len(report.problems):
            outcome.problems.append(Problem(report.files[0] if report.files else "", None, None,
                                            f"……另有 {report.problem_count - len(report.problems)} 个问题未列出"))
    return outcome


def _by(who: Principal) -> str:
    return f"{who.login}（{who.name}）" if who.name and who.name != who.login else who.login


def _allowed_session(engine: Engine, unit_code: str) -> tuple[set[str], set[str]]:
    with transaction(engine) as session:
        return _allowed(session, unit_code)


def _stored(engine: Engine, indicator: str, period: str, unit: str) -> float | None:
    with transaction(engine) as session:
        return session.scalar(select(Observation.value).where(
            Observation.indicator_code == indicator, Observation.period == period, Observation.unit_code == unit))


def submit_upload(engine: Engine, who: Principal, unit_code: str, filename: str, data: bytes, *, now: dt.datetime,
                  address: str = "", note: str = "") -> SubmissionOutcome:
    """An uploaded 月度数据 sheet, imported as `duban import` would (`note` is its --note)."""
    if not who.is_unit or who.unit_code != unit_code:
        raise Forbidden("只有本单位的填报人员可以报送本单位数据")
    name = Path(filename or "").name
    if not name.lower().endswith(UPLOAD_SUFFIXES):
        return SubmissionOutcome(False, [Problem(name or "上传文件", None, None, "只能上传 .csv 或 .xlsx 文件")])
    if len(data) > UPLOAD_MAX_BYTES:
        return SubmissionOutcome(False, [Problem(name, None, None,
                                                 f"文件过大（{len(data) // 1024} KB），上限 {UPLOAD_MAX_BYTES // 1024 // 1024} MB")])
    with tempfile.TemporaryDirectory(prefix="duban-web-") as folder:
        # Whatever the unit called its file, it is a 月度数据 sheet (problems carry the unit's own file name).
        path = Path(folder) / f"月度数据{Path(name).suffix.lower()}"
        path.write_bytes(data)
        return _import(engine, who, unit_code, path, name, now=now, address=address, note=note)


def _check_rights(engine: Engine, path: Path, label: str, unit_code: str) -> tuple[list[Problem], list[list[Any]]]:
    """Only 月度数据, and only rows the unit answers for: the office imports everything else."""
    sources, problems = discover([path])
    problems = _relabel(problems, label)
    from duban.store.importer import unit_code_of

    with transaction(engine) as session:
        lead, member = _allowed(session, unit_code)
        names = dict(session.execute(select(Unit.code, Unit.name)).all())
    values: list[list[Any]] = []
    for source in sources:
        where = f"{label}:{source.sheet}" if source.sheet else label
        if source.spec.name != "observations":
            problems.append(Problem(where, None, None, f"在线报送只接受“月度数据”，不能包含“{source.spec.label}”清单"))
            continue
        found: list[Problem] = []
        with open_table(source, found) as table:
            problems += _relabel(found, where)
            if table is None:
                continue
            for number, cells in table.rows:
                def cell(name: str, row: list[Any] = cells) -> Any:
                    located = table.columns.get(name)
                    return row[located[0]] if located is not None and located[0] < len(row) else None
                try:
                    indicator = parse_code(cell("indicator"))
                except CellError:
                    continue  # the import reports it with its row and column
                unit_cell = cell("unit")
                unit = "" if unit_cell in (None, "") else str(unit_cell).strip()
                typed, unit = unit, (unit_code_of(unit, names) or unit) if unit else ""  # a name, as the import reads it
                if unit not in ("", unit_code):
                    problems.append(Problem(where, number, table.header("unit"),
                                            f"只能报送本单位的数据，不能报送单位“{typed}”的数据"))
                elif unit == "" and indicator not in lead:
                    problems.append(Problem(where, number, table.header("indicator"),
                                            f"指标“{indicator}”的全区数据由牵头单位报送，本单位不能报送"))
                elif unit and indicator not in member:
                    problems.append(Problem(where, number, table.header("indicator"),
                                            f"本单位不是指标“{indicator}”的责任单位"))
                else:
                    try:
                        period = parse_period(cell("period"))
                    except CellError:
                        period = str(cell("period") or "")
                    values.append([indicator, period, unit, str(cell("value") or "").strip()])
    return problems, values


def _import(engine: Engine, who: Principal, unit_code: str, path: Path, label: str, *, now: dt.datetime,
            address: str, note: str) -> SubmissionOutcome:
    problems, wanted = _check_rights(engine, path, label, unit_code)
    if problems:
        return SubmissionOutcome(False, problems)
    report = import_paths(engine, [path], now=now, imported_by=_by(who), note=note.strip() or None)
    if not report.ok:
        problems = _relabel([*report.problems, *report.warnings], label)
        if report.problem_count > len(report.problems):
            problems.append(Problem(label, None, None, f"……另有 {report.problem_count - len(report.problems)} 个问题未列出"))
        if report.needs_note and not report.problem_count:
            problems.append(Problem(label, None, None, f"共有 {report.warning_count} 处数据需核实，本次未写入任何数据。"
                                                       "请核对后修改；如核实无误，请在“说明”中写明原因后重新上传。"))
        return SubmissionOutcome(False, problems)
    values = [[i, p, u, _stored(engine, i, p, u)] for i, p, u, _text in wanted]
    return _receipt(engine, who, unit_code, report, values, "upload", label, now=now, address=address,
                    explanations={"": report.note} if report.note else {})


def _receipt(engine: Engine, who: Principal, unit_code: str, report: Any, values: list[list[Any]], method: str,
             label: str, *, now: dt.datetime, address: str, explanations: dict[str, str]) -> SubmissionOutcome:
    """The receipt (回执): the values as stored, their hash, who and when; audited and mailed."""
    with transaction(engine) as session:
        submission = Submission(
            number="", unit_code=unit_code, user_id=who.user_id, submitted_by=who.login, submitted_at=now,
            method=method, source_name=label, values=values, explanations=dict(explanations),
            values_hash=values_hash(values), batch_id=report.batch_id, address=address[:64],
        )
        session.add(submission)
        session.flush()
        local = now.astimezone(SHANGHAI)
        submission.number = f"HZ{local:%Y%m%d}-{submission.id:06d}"
        audit.record(session, who, "submit" if method == "form" else "upload", at=now, address=address,
                     object_type="submission", object_id=submission.number, unit_code=unit_code,
                     figures=len(values), hash=submission.values_hash, batch=report.batch_id,
                     warnings=report.warning_count)
        _mail_receipt(session, submission, now)
    return SubmissionOutcome(True, submission=submission, touched={v[0] for v in values})


def submitter_name(session: Session, login: str) -> str:
    """Who filed, as the receipt names them: the account's name (区发改局), not its login."""
    from duban.store.web_models import WebUser

    name = session.scalar(select(WebUser.name).where(WebUser.login == login))
    return name or login


def _mail_receipt(session: Session, submission: Submission, now: dt.datetime) -> int:
    """The receipt (回执) by mail to the unit's addresses, through the outbox."""
    from duban.app.rounds import mail_from
    from duban.notifiers.message import MessageError, build_email
    from duban.notifiers.outbox import enqueue

    unit = session.get(Unit, submission.unit_code)
    if unit is None or not unit.emails:
        return 0
    from duban.notifiers.render import format_datetime_cn, format_figure, name_with_months, period_cn

    indicators = {code: (name, measure) for code, name, measure in session.execute(
        select(Indicator.code, Indicator.name, Indicator.measure)
        .where(Indicator.code.in_([v[0] for v in submission.values])))}
    unit_names = dict(session.execute(select(Unit.code, Unit.name)).all())
    # Read as the officer who filed it reads: names with their months, Chinese periods and dates, no codes.
    lines = [f"{unit.name}：", "",
             f"贵单位于{format_datetime_cn(submission.submitted_at)}在线报送数据{len(submission.values)}项，已全部入库。", "",
             f"回执编号：{submission.number}", f"报送人：{submitter_name(session, submission.submitted_by)}",
             f"数值校验码（SHA-256）：{submission.values_hash}", ""]
    for code, period, unit_code, value in submission.values:
        if not isinstance(value, int | float):
            continue
        name, measure = indicators.get(code, (code, ""))
        when = period_cn(period)
        whose = f"（{unit_names.get(unit_code, unit_code)}）" if unit_code else ""
        lines.append(f"  {name_with_months(name, period)}{whose}，{when}：{format_figure(value, measure or '')}")
    lines += ["", "如需更正，请在报送页面重新填报，原值将保留在修改记录中。"]
    messages = []
    for address in unit.emails:
        try:
            messages.append(build_email(
                idempotency_key=f"receipt|{submission.number}|{address}", mail_from=mail_from(), to_address=address,
                to_name=unit.name, subject=f"【报送回执】{submission.number}", text="\n".join(lines), html=None,
                at=now, recipient_unit=unit.code))
        except MessageError:
            continue
    return enqueue(session, messages, now=now)


def revisions(session: Session, unit_code: str, limit: int = 50) -> list[tuple[Any, ...]]:
    """Corrections of the unit's figures as a reader names them: indicator (its name, "1—N月" made the
    months), period ("2023年6月"), unit, old, new, by, when."""
    from duban.notifiers.render import name_with_months, period_cn

    lead, member = _allowed(session, unit_code)
    query = (select(Observation.indicator_code, Observation.period, Observation.unit_code, ObservationRevision.old_value,
                    ObservationRevision.new_value, ObservationRevision.changed_by, ObservationRevision.changed_at)
             .join(Observation, Observation.id == ObservationRevision.observation_id)
             .where(Observation.indicator_code.in_(list(member)))
             .order_by(ObservationRevision.id.desc()).limit(limit))
    rows = [tuple(row) for row in session.execute(query) if row[2] == unit_code or (row[2] == "" and row[0] in lead)]
    names: dict[str, str] = dict(session.execute(select(Indicator.code, Indicator.name)
                                                 .where(Indicator.code.in_({row[0] for row in rows}))).all()) if rows else {}
    return [(name_with_months(names.get(str(row[0]), str(row[0])), str(row[1])), period_cn(str(row[1])), *row[2:])
            for row in rows]


def submission_count(session: Session, unit_code: str) -> int:
    return int(session.scalar(select(func.count()).select_from(Submission).where(Submission.unit_code == unit_code)) or 0)
