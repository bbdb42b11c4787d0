"""`duban import`: programme lists and figures from .csv/.xlsx files into the database, all or nothing.

Every list is read in dependency order (programme, units, indicators, targets, observations,
projects, project_plans, project_investment, tasks) inside ONE transaction. Every problem in
every file is collected; if there is any, the transaction is rolled back and the problems are
returned, so officials fix a file once instead of once per error. Re-importing a file changes
nothing; a corrected figure is updated and its old value kept as an ObservationRevision.

docs/data.md is the user-facing contract for the lists and columns.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Engine, Table, and_, bindparam, delete, insert, select, update

from duban.store.deadlines import DeadlineError, parse_deadline
from duban.store.importing.audit import (
    Finding,
    IndicatorInfo,
    SeriesFigures,
    check_candidates,
    check_value,
    quiet_range,
)
from duban.store.importing.limits import ImportLimits
from duban.store.importing.lists import LIST_ORDER, LISTS, list_for_name
from duban.store.importing.reading import Problem, Source, discover, measure, open_table
from duban.store.importing.reading import Table as SheetTable
from duban.store.importing.staging import STAGE, ObservationStage
from duban.store.importing.values import (
    Cell,
    CellError,
    as_date,
    is_blank,
    mojibake_hint,
    parse_code,
    parse_date,
    parse_email_list,
    parse_enum,
    parse_month,
    parse_name,
    parse_number,
    parse_period,
    parse_target_scope,
    parse_text,
    parse_text_block,
    parse_unit_codes,
    parse_year,
    plain_number,
)
from duban.store.models import (
    FINAL_TARGET,
    ImportBatch,
    Indicator,
    IndicatorUnit,
    ObservationNote,
    Programme,
    Project,
    ProjectInvestment,
    ProjectPlan,
    ProjectUnit,
    Target,
    Task,
    TaskUnit,
    Unit,
)

__all__ = [
    "MAX_LISTED_PROBLEMS",
    "MAX_NOTE_CHARS",
    "WEB_FORM_LABEL",
    "ImportLimits",
    "ImportReport",
    "ListCounts",
    "Problem",
    "import_paths",
    "import_rows",
    "unit_code_of",
    "validate_rows",
]

MAX_LISTED_PROBLEMS = 200
MAX_NOTE_CHARS = 2000
WEB_FORM_LABEL = "网页填报"
STAGE_CHUNK_ROWS = 10_000
PERCENT = "%"

T = TypeVar("T")


def _accepting(pairs: dict[str, Iterable[str]]) -> dict[str, str]:
    return {spelling.lower(): value for value, spellings in pairs.items() for spelling in (value, *spellings)}


UNIT_KIND_SPELLINGS = _accepting({
    "department": ("部门",), "street": ("街镇", "街道", "镇"), "county": ("区县", "县区", "县（市、区）"),
    "working_group": ("专班", "工作专班"),
})
INDICATOR_KIND_SPELLINGS = _accepting({
    "level": ("水平值", "水平", "时点值"), "growth": ("增速", "增长率", "增幅"), "cumulative": ("累计值", "累计"),
})
DIRECTION_SPELLINGS = _accepting({
    "at_least": ("不低于", "以上", "≥", ">="), "at_most": ("不高于", "以下", "≤", "<="),
})
REPORTED_AS_SPELLINGS = _accepting({
    "ytd": ("本年累计", "1—N月累计", "1-N月累计", "年内累计", "本年"),
    "month": ("当月值", "当月", "月度值", "当月数"),
    "to_date": ("累计至今", "开始以来累计", "自开始累计", "方案期累计"),
})
TARGET_SHAPE_SPELLINGS = _accepting({
    "annual": ("年度", "年度目标", "序时"), "milestone": ("节点", "节点目标", "里程碑", "一次性"),
    "final": ("期末", "期末目标", "规划期末"),
})
COMPARISON_SPELLINGS = _accepting({
    "at_least": ("以上", "不低于", "不少于", "≥", ">="), "more_than": ("超过", "高于", "多于", ">", "＞"),
    "about": ("左右", "约"), "at_most": ("以下", "不高于", "不超过", "≤", "<="),
})
STRENGTH_SPELLINGS = _accepting({"hard": ("确保", "硬性", "必须"), "soft": ("力争", "争取", "软性")})
CATEGORY_SPELLINGS = _accepting({name: () for name in ("战略支撑型", "产业赋能型", "生活美好型")})
LEVEL_SPELLINGS = _accepting({name: () for name in ("省级", "市级")})
STATUS_SPELLINGS = _accepting({"open": ("未完成", "进行中", "未开始"), "done": ("已完成", "完成")})
TASK_KIND_SPELLINGS = _accepting({
    "deadline": ("限时", "限时任务", "节点任务", "时限"), "ongoing": ("常态化", "常态化任务", "持续推进", "长期"),
})

LIST_LABELS = {spec.name: spec.label for spec in LISTS}



@dataclass
class ListCounts:
    new: int = 0
    changed: int = 0
    unchanged: int = 0


@dataclass
class ImportReport:
    """What an import did, or why it wrote nothing.

    `problems` are errors: any one refuses the import. `warnings` are figures to confirm
    (plausibility checks, text that looks mis-decoded): they refuse it unless a note explains
    them (`note`, `duban import --note "说明"`), which is then stored with the figures.
    Each is `file[:sheet]:row:column: message`; the web form's rows are `网页填报:row:column`.
    """

    files: list[str]
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    counts: dict[str, ListCounts] = field(default_factory=dict)
    batch_id: int | None = None
    warnings: list[Problem] = field(default_factory=list)
    warning_count: int = 0
    note: str = ""
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        """Nothing stands in the way: no error, and every warning explained by a note."""
        return self.problem_count == 0 and not self.needs_note

    @property
    def needs_note(self) -> bool:
        """Only warnings stand in the way: the same rows with a note would be accepted."""
        return self.warning_count > 0 and not self.note

    def problem_lines(self) -> list[str]:
        lines = [str(problem) for problem in self.problems]
        if self.problem_count > len(self.problems):
            lines.append(f"……另有 {self.problem_count - len(self.problems)} 个问题未列出")
        if self.problem_count or self.needs_note:
            lines += [str(warning) for warning in self.warnings]
            if self.warning_count > len(self.warnings):
                lines.append(f"……另有 {self.warning_count - len(self.warnings)} 处需核实的数据未列出")
        if self.problem_count:
            also = f"（另有 {self.warning_count} 处数据需核实）" if self.warning_count else ""
            lines.append(f"共发现 {self.problem_count} 个问题{also}，本次导入未写入任何数据。请修改后重新导入。")
        elif self.needs_note:
            lines.append(f"共有 {self.warning_count} 处数据需核实，本次导入未写入任何数据。请核对后修改；"
                         "如核实无误，请附上说明重新导入（命令行加 --note \"说明\"），说明将与数据一同保存，在报告中显示。")
        return lines

    def summary_lines(self) -> list[str]:
        lines = [f"导入完成（批次 {self.batch_id}），共读取 {len(self.files)} 个文件："]
        for name in LIST_ORDER:
            if name in self.counts:
                c = self.counts[name]
                lines.append(f"  {LIST_LABELS[name]}（{name}）：新增 {c.new}，更新 {c.changed}，未变 {c.unchanged}")
        if self.warning_count:
            lines.append(f"经核实导入的数据 {self.warning_count} 处，说明已保存：{self.note}")
            lines += [f"  {warning}" for warning in self.warnings]
        return lines


class _ProblemSink:
    """Keeps the first problems for display and counts them all: a bad million-row file must not flood memory."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.listed: list[Problem] = []
        self.count = 0

    def add(self, problem: Problem) -> None:
        self.count += 1
        if len(self.listed) < self.limit:
            self.listed.append(problem)

    def extend(self, problems: Iterable[Problem]) -> None:
        for problem in problems:
            self.add(problem)

    append = add


class _Row:
    """One data row: parses named cells and reports problems as `file:row:header`."""

    __slots__ = ("cells", "number", "ok", "sink", "table")

    def __init__(self, table: SheetTable, number: int, cells: list[Cell], sink: _ProblemSink) -> None:
        self.table, self.number, self.cells, self.sink = table, number, cells, sink
        self.ok = True

    def cell(self, column: str) -> Cell:
        located = self.table.columns.get(column)
        if located is None or located[0] >= len(self.cells):
            return None
        return self.cells[located[0]]

    def problem(self, column: str, message: str) -> None:
        self.ok = False
        self.sink.add(Problem(self.table.source.label, self.number, self.table.header(column), message))

    def warn(self, sink: _ProblemSink, column: str, message: str) -> None:
        sink.add(Problem(self.table.source.label, self.number, self.table.header(column), message, warning=True))

    def get(self, column: str, parser: Callable[[Cell], T], *, required: bool = True, default: T | None = None) -> T:
        """The parsed value; on a problem the row is marked not ok and the returned value must not be used."""
        cell = self.cell(column)
        if is_blank(cell):
            if required:
                self.problem(column, f"{self.table.source.spec.column(column).label}不能为空")
            return cast(T, default)
        try:
            return parser(cell)
        except (CellError, DeadlineError) as error:
            self.problem(column, str(error))
            return cast(T, default)


@dataclass
class _Known:
    """Codes the rows may refer to: those in the database plus those declared earlier in this import."""

    units: set[str]
    indicator_measures: dict[str, str]
    projects: set[str]
    indicators: dict[str, IndicatorInfo]
    programme_code: str | None
    programme_end: dt.date | None
    unit_names: dict[str, str] = field(default_factory=dict)  # code -> name, as stored
    programme_broken: bool = False  # the programme row of this import has a problem


@dataclass
class _Keyed:
    """Rows of one small list by key, remembering where each key was first seen."""

    records: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict)
    seen_at: dict[tuple[Any, ...], tuple[str, int]] = field(default_factory=dict)

    def add(self, key: tuple[Any, ...], record: dict[str, Any] | None, row: _Row, key_column: str) -> None:
        if key in self.seen_at:
            label, number = self.seen_at[key]
            where = f"第{number}行" if label == row.table.source.label else f"{label} 第{number}行"
            row.problem(key_column, f"与{where}重复：{_describe_key(key)}")
            return
        self.seen_at[key] = (row.table.source.label, row.number)
        if record is not None:
            self.records[key] = record


def _name_key(name: str) -> str:
    """Names compare without spaces and case: "区发改局" and "区发改局 " are the same unit."""
    return "".join(name.split()).casefold()


def unit_code_of(text: str, unit_names: Mapping[str, str]) -> str | None:
    """The unit a 单位 cell names, by its code or by its name (officials know names; names are unique,
    see `_refuse_shared_unit_names`): its code, or None when no unit is called that. A code wins."""
    text = text.strip()
    if text in unit_names:
        return text
    key = _name_key(text)
    found = [code for code, name in unit_names.items() if _name_key(name) == key]
    return found[0] if len(found) == 1 else None


def _describe_key(key: tuple[Any, ...]) -> str:
    return " / ".join(str(part) if part != "" else "（全区）" for part in key)


def import_paths(
    engine: Engine,
    paths: Sequence[str | Path],
    *,
    now: dt.datetime,
    imported_by: str,
    limits: ImportLimits | None = None,
    note: str | None = None,
) -> ImportReport:
    """Import every list found in `paths` (files or folders) in one transaction; nothing is written on any problem.

    Files beyond `limits` (default: `ImportLimits.from_env()`) are refused before the
    transaction begins, so they never hold the write lock. Figures the plausibility checks
    query refuse the import unless `note` explains them; the note is then stored with them.
    """
    sources, discovery_problems = discover(paths)
    files = list(dict.fromkeys(str(source.path) for source in sources))
    if not sources and not discovery_problems:
        discovery_problems.append(Problem(", ".join(str(p) for p in paths) or "-", None, None, "没有找到可导入的清单"))
    return _import(engine, sources, discovery_problems, files, now=now, imported_by=imported_by, limits=limits,
                   note=note, dry_run=False)


def import_rows(
    engine: Engine,
    list_name: str,
    rows: Sequence[Mapping[str, Cell]],
    *,
    now: dt.datetime,
    imported_by: str,
    note: str | None = None,
    label: str = WEB_FORM_LABEL,
    first_row: int = 1,
    dry_run: bool = False,
    limits: ImportLimits | None = None,
) -> ImportReport:
    """Import rows from any source but a file (the web form) with the same checks and messages as a file.

    `list_name` is a list's name or alias (`observations`, `月度数据`); each row maps column names
    (canonical `value`, Chinese `数值`, or any accepted alias) to cells: text as typed, numbers,
    dates. Problems and warnings name `label:row:column`, the first row being `first_row`. With
    `dry_run` nothing is kept: the report says what an import would say (use `validate_rows`).
    """
    spec = list_for_name(list_name)
    if spec is None:
        raise ValueError(f"unknown list {list_name!r}")
    header: list[str] = list(dict.fromkeys(column for row in rows for column in row))
    table = (tuple(header), *(tuple(row.get(column) for column in header) for row in rows))
    source = Source(Path(label), None, spec, rows=table, name=label, first_row=first_row)
    return _import(engine, [source], [], [label], now=now, imported_by=imported_by, limits=limits, note=note,
                   dry_run=dry_run)


def validate_rows(
    engine: Engine,
    list_name: str,
    rows: Sequence[Mapping[str, Cell]],
    *,
    note: str | None = None,
    label: str = WEB_FORM_LABEL,
    first_row: int = 1,
    limits: ImportLimits | None = None,
) -> ImportReport:
    """Every error and warning `import_rows` would give for these rows, writing nothing.

    `report.problems` (errors) and `report.warnings` (figures to confirm; `report.needs_note`)
    carry `row` and `column` for the form to mark the fields; `str(problem)` is the full line.
    """
    return import_rows(engine, list_name, rows, now=dt.datetime.now(dt.UTC), imported_by="", note=note, label=label,
                       first_row=first_row, dry_run=True, limits=limits)


def _import(
    engine: Engine,
    sources: list[Source],
    found: list[Problem],
    files: list[str],
    *,
    now: dt.datetime,
    imported_by: str,
    limits: ImportLimits | None,
    note: str | None,
    dry_run: bool,
) -> ImportReport:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    limits = limits or ImportLimits.from_env()
    sink = _ProblemSink(MAX_LISTED_PROBLEMS)
    warnings = _ProblemSink(MAX_LISTED_PROBLEMS)
    sink.extend(found)
    report = ImportReport(files=files, dry_run=dry_run)
    report.note = _checked_note(note, sink)
    oversized = measure(sources, limits)
    if oversized:
        sink.extend(oversized)
        report.problems, report.problem_count = sink.listed, sink.count
        return report

    class _Rollback(Exception):
        pass

    try:
        with engine.begin() as conn:
            run = _ImportRun(conn, sink, warnings, now=now, imported_by=imported_by, limits=limits)
            for name in LIST_ORDER:
                list_sources = [source for source in sources if source.spec.name == name]
                if list_sources:
                    run.import_list(name, list_sources)
            report.warnings, report.warning_count = warnings.listed, warnings.count
            if sink.count or report.needs_note:
                raise _Rollback
            report.counts = run.counts
            report.batch_id = conn.execute(
                insert(ImportBatch).returning(ImportBatch.id),
                {
                    "started_at": now,
                    "files": files,
                    "inserted": sum(c.new for c in run.counts.values()),
                    "updated": sum(c.changed for c in run.counts.values()),
                    "imported_by": imported_by,
                    "note": report.note,
                },
            ).scalar_one()
            run.store_notes(report.batch_id, report.note)
            if dry_run:
                raise _Rollback
    except _Rollback:
        pass
    report.problems, report.problem_count = sink.listed, sink.count
    return report


def _checked_note(note: str | None, sink: _ProblemSink) -> str:
    """The note as stored: trimmed text of a bounded length, without invisible characters."""
    if note is None or not note.strip():
        return ""
    try:
        text = parse_text_block(note)
    except CellError as error:
        sink.add(Problem("--note", None, None, f"说明{error}"))
        return ""
    if len(text) > MAX_NOTE_CHARS:
        sink.add(Problem("--note", None, None, f"说明过长：{len(text)} 个字符，最多 {MAX_NOTE_CHARS} 个"))
        return ""
    return text


class _ImportRun:
    def __init__(self, conn: Connection, sink: _ProblemSink, warnings: _ProblemSink, *, now: dt.datetime,
                 imported_by: str, limits: ImportLimits) -> None:
        self.conn, self.sink, self.warnings, self.now, self.imported_by = conn, sink, warnings, now, imported_by
        self.limits = limits
        self.counts: dict[str, ListCounts] = {}
        # Imported figures the checks queried: (stage source, row) -> finding, kept with the note.
        self.queried: dict[tuple[int, int], Finding] = {}
        self._queried_ids: dict[tuple[int, int], int] = {}
        self._headers: dict[tuple[str, str], str] = {}  # (source label, column) -> header as written
        self._names: dict[str, str] | None = None  # unit name key -> code, for a 单位 cell written as a name
        programme = conn.execute(select(Programme.code, Programme.end)).first()
        unit_names: dict[str, str] = {code: name for code, name in conn.execute(select(Unit.code, Unit.name))}
        # How a cumulative indicator is reported (本年累计, 当月值, 累计至今) says whether it may fall.
        indicators = {
            code: IndicatorInfo(name=name, measure=measure, kind=kind, reported_as=reported_as)
            for code, name, measure, kind, reported_as in conn.execute(
                select(Indicator.code, Indicator.name, Indicator.measure, Indicator.kind, Indicator.reported_as))
        }
        self.known = _Known(
            units=set(unit_names),
            indicator_measures={code: info.measure for code, info in indicators.items()},
            projects=set(conn.scalars(select(Project.code))),
            indicators=indicators,
            programme_code=programme.code if programme else None,
            programme_end=programme.end if programme else None,
            unit_names=unit_names,
        )

    def _text(self, row: _Row, column: str, parser: Callable[[Cell], str], *, required: bool = True) -> str:
        """A text cell; a warning when it looks like Chinese read with the wrong encoding (乱码)."""
        text = row.get(column, parser, required=required, default="")
        written = parse_text(row.cell(column))  # before normalising: NFKC rewrites some tell-tale characters
        if text and (hint := mojibake_hint(written)) is not None:
            likely = "含有无法识别的字符（\ufffd）" if hint == "\ufffd" else f"疑似乱码（原文可能是“{hint[:40]}”）"
            row.warn(self.warnings, column, f"文字{likely}：'{written[:40]}'。文件编码可能有误，"
                                            "请在 Excel/WPS 中另存为“CSV UTF-8”后重新导入")
        return text

    @property
    def writing(self) -> bool:
        """Once anything is wrong the transaction will be rolled back: keep checking, stop writing."""
        return self.sink.count == 0

    def import_list(self, name: str, sources: list[Source]) -> None:
        if name == "observations":
            self._import_observations(sources)
            return
        keyed = _Keyed()
        parse_row = getattr(self, f"_row_{name}")
        for source in sources:
            with open_table(source, self.sink, self.limits) as table:
                if table is None:
                    continue
                for column in source.spec.columns:
                    self._headers[(source.label, column.name)] = table.header(column.name)
                for number, cells in table.rows:
                    parse_row(_Row(table, number, cells, self.sink), keyed)
        getattr(self, f"_finish_{name}")(keyed)

    # --- programme -----------------------------------------------------------------------

    def _row_programme(self, row: _Row, keyed: _Keyed) -> None:
        code = row.get("code", parse_code)
        name = self._text(row, "name", parse_name)
        start = row.get("start", parse_date)
        end = row.get("end", parse_date)
        document = self._text(row, "document", parse_text_block, required=False)
        if row.ok and end < start:
            row.problem("end", f"结束日期 {end} 早于开始日期 {start}")
        # Tasks due "五年内" would otherwise all add "尚未导入方案": the programme row says what is wrong.
        self.known.programme_broken = not row.ok
        if keyed.seen_at:
            row.problem("code", "方案清单只能有一行：一个数据库只监管一个方案")
            return
        if self.known.programme_code not in (None, code) and row.ok:
            row.problem("code", f"数据库已监管方案“{self.known.programme_code}”，一个数据库只能监管一个方案")
        keyed.add((code,), {"code": code, "name": name, "start": start, "end": end, "document": document}
                  if row.ok else None, row, "code")
        if row.ok:
            self.known.programme_code, self.known.programme_end = code, end

    def _finish_programme(self, keyed: _Keyed) -> None:
        self._upsert("programme", Programme.__table__, ("code",), keyed.records)  # type: ignore[arg-type]

    # --- units ---------------------------------------------------------------------------

    def _row_units(self, row: _Row, keyed: _Keyed) -> None:
        code = row.get("code", parse_code)
        name = self._text(row, "name", parse_name)
        emails: list[str] = row.get("email", parse_email_list, required=False, default=[])
        kind = row.get("kind", lambda c: parse_enum(c, UNIT_KIND_SPELLINGS, "单位类型"), required=False,
                       default="department")
        if code is not None:
            self.known.units.add(code)
            keyed.add((code,), {"code": code, "name": name, "emails": emails, "kind": kind} if row.ok else None,
                      row, "code")

    def _finish_units(self, keyed: _Keyed) -> None:
        self._refuse_shared_unit_names(keyed)
        # The names of this import's units name them in later lists (月度数据's 单位) too.
        self.known.unit_names = {**self.known.unit_names,
                                 **{code: record["name"] for (code,), record in keyed.records.items() if record}}
        self._names = None
        self._upsert("units", Unit.__table__, ("code",), keyed.records)  # type: ignore[arg-type]

    def _refuse_shared_unit_names(self, keyed: _Keyed) -> None:
        """Two units may not share a name (`--unit 区发改局` must mean one unit), after this import's changes."""
        names = dict(self.known.unit_names)
        for (code,), record in keyed.records.items():
            names[code] = record["name"]
        holders: dict[str, list[str]] = defaultdict(list)
        for code, name in names.items():
            holders[_name_key(name)].append(code)
        for (code,), record in keyed.records.items():
            others = [other for other in holders[_name_key(record["name"])] if other != code]
            if others:
                label, number = keyed.seen_at[(code,)]
                self.sink.add(Problem(label, number, self._header(label, "name"),
                                      f"单位名称“{record['name']}”与单位 {'、'.join(sorted(others))} 重复："
                                      "单位名称不能相同（按名称查找单位时无法区分）"))

    def _header(self, label: str, column: str) -> str:
        return self._headers.get((label, column), column)

    # --- indicators ----------------------------------------------------------------------

    def _unit_list(self, row: _Row) -> list[str]:
        codes = row.get("units", parse_unit_codes)
        if codes == []:
            row.problem("units", "责任单位不能为空")
        for code in codes or ():
            if code not in self.known.units:
                row.problem("units", f"未知的单位代码：'{code}'（请先在单位清单中登记）")
        return codes

    def _row_indicators(self, row: _Row, keyed: _Keyed) -> None:
        code = row.get("code", parse_code)
        name = self._text(row, "name", parse_name)
        measure = self._text(row, "measure", parse_name)
        kind = row.get("kind", lambda c: parse_enum(c, INDICATOR_KIND_SPELLINGS, "指标类型"), required=False,
                       default="level")
        direction = row.get("direction", lambda c: parse_enum(c, DIRECTION_SPELLINGS, "方向"), required=False,
                            default="at_least")
        reported_as = row.get("reported_as", lambda c: parse_enum(c, REPORTED_AS_SPELLINGS, "报送口径"),
                              required=False, default="")
        if reported_as and kind != "cumulative":
            row.problem("reported_as", "报送口径只适用于累计值指标（类型为“累计值”）")
        units = self._unit_list(row)
        if code is not None:
            self.known.indicator_measures[code] = measure or ""
            self.known.indicators[code] = IndicatorInfo(name=name or "", measure=measure or "", kind=kind or "level",
                                                        reported_as=reported_as or "")
            record = {"code": code, "name": name, "measure": measure, "kind": kind, "direction": direction,
                      "reported_as": reported_as, "units": units}
            keyed.add((code,), record if row.ok else None, row, "code")

    def _finish_indicators(self, keyed: _Keyed) -> None:
        self._upsert("indicators", Indicator.__table__, ("code",), keyed.records,  # type: ignore[arg-type]
                     links=(IndicatorUnit.__table__, "indicator_code"))  # type: ignore[arg-type]

    # --- targets -------------------------------------------------------------------------

    def _indicator_value(self, row: _Row, indicator: str | None, column: str) -> float:
        parsed = row.get(column, parse_number)
        if parsed is None or indicator is None:
            return 0.0
        value, percent = parsed
        measure = self.known.indicator_measures.get(indicator)
        if percent and measure is not None and measure != PERCENT:
            row.problem(column, f"指标“{indicator}”的计量单位是“{measure}”，不能填写百分数：'{parse_text(row.cell(column))}'")
        return value

    def _known_indicator(self, row: _Row) -> str:
        code = row.get("indicator", parse_code)
        if code is not None and code not in self.known.indicator_measures:
            row.problem("indicator", f"未知的指标代码：'{code}'（请先在指标清单中登记）")
        return code

    def _optional_unit(self, row: _Row) -> str:
        """A unit by its code or by its name (区发改局); blank is the whole jurisdiction."""
        cell = row.cell("unit")
        if isinstance(cell, str) and not is_blank(cell) and (text := parse_text(cell)) not in self.known.units:
            if self._names is None:
                self._names = {_name_key(name): code for code, name in self.known.unit_names.items()}
            code = self._names.get(_name_key(text))
            if code is not None:
                return code
        code = row.get("unit", parse_code, required=False, default="")
        if code and code not in self.known.units:
            row.problem("unit", f"未知的单位：'{code}'（请填写单位清单中登记的单位名称或代码）")
        return code

    def _row_targets(self, row: _Row, keyed: _Keyed) -> None:
        indicator = self._known_indicator(row)
        scope = row.get("year", lambda c: parse_target_scope(c, FINAL_TARGET))
        value = self._indicator_value(row, indicator, "value")
        unit = self._optional_unit(row)
        shape = row.get("shape", lambda c: parse_enum(c, TARGET_SHAPE_SPELLINGS, "目标类型"), required=False, default="")
        comparison = row.get("comparison", lambda c: parse_enum(c, COMPARISON_SPELLINGS, "表述"), required=False,
                             default="")
        strength = row.get("strength", lambda c: parse_enum(c, STRENGTH_SPELLINGS, "力度"), required=False, default="")
        due = row.get("due", lambda c: parse_deadline(c if isinstance(c, dt.date) else parse_text(c),
                                                      self.known.programme_end), required=False)
        if isinstance(due, dt.datetime):
            due = due.date()
        tolerance_cell = row.get("tolerance", parse_number, required=False)
        tolerance = tolerance_cell[0] if tolerance_cell else None
        if tolerance is not None and not 0 <= tolerance < 100:
            row.problem("tolerance", f"容差应为 0 到 100 之间的百分数，实际为 {tolerance:g}")
        if scope == FINAL_TARGET and shape in ("annual", "milestone"):
            row.problem("shape", "期末目标的目标类型应为“期末”")
        if shape == "annual" and due is not None:
            row.problem("due", "年度目标按序时进度考核，不填完成时限；到期一次性考核的目标请将目标类型填为“节点”")
        if indicator is not None and scope is not None:
            record = {"indicator_code": indicator, "scope": scope, "unit_code": unit, "value": value, "shape": shape,
                      "comparison": comparison, "strength": strength, "due": due, "tolerance": tolerance}
            keyed.add((indicator, scope, unit), record if row.ok else None, row, "indicator")

    def _finish_targets(self, keyed: _Keyed) -> None:
        self._upsert("targets", Target.__table__, ("indicator_code", "scope", "unit_code"),  # type: ignore[arg-type]
                     keyed.records)

    # --- observations (streamed through a staging table) ---------------------------------

    def _import_observations(self, sources: list[Source]) -> None:
        stage = ObservationStage(self.conn)
        chunk: list[tuple[int, int, str, str, str, float, dt.date | None]] = []
        key_headers: dict[int, str] = {}
        value_header: dict[int, str] = {}
        # A million rows name a few hundred indicators, units and periods: each text is parsed once,
        # by the row that first has it, and later rows find it here. Only cells of rows that passed
        # every check are kept, and the parsers are pure, so a row found here gets what parsing
        # it would give; any other row (a miss, a non-text cell, a figure that is not a plain number)
        # takes the full path with its messages.
        indicators: dict[str, str] = {}
        periods: dict[str, str] = {}
        units: dict[str, str] = {}
        reported: dict[str, dt.date | None] = {}
        info_of = self.known.indicators.__getitem__
        limits = self.limits
        # The figures check_value passes without a word, by indicator: it is called for the others only.
        quiet = {code: quiet_range(info, limits) for code, info in self.known.indicators.items()}
        figures = SeriesFigures(self.known.indicators, limits)  # for the series checks, after the duplicates'
        add_figure = figures.add
        for index, source in enumerate(sources):
            stage.add_source(index, source.label)
            with open_table(source, self.sink, self.limits) as table:
                if table is None:
                    continue
                key_headers[index] = table.header("indicator")
                value_header[index] = table.header("value")
                columns = table.columns
                at_indicator, at_period, at_value = (columns[name][0] for name in ("indicator", "period", "value"))
                at_unit = columns["unit"][0] if "unit" in columns else None
                at_reported = columns["reported_on"][0] if "reported_on" in columns else None
                width = 1 + max(at for at in (at_indicator, at_period, at_value, at_unit, at_reported) if at is not None)
                for number, cells in table.rows:
                    if len(cells) >= width:
                        raw_indicator, raw_period, raw_value = cells[at_indicator], cells[at_period], cells[at_value]
                        raw_unit = cells[at_unit] if at_unit is not None else ""
                        raw_reported = cells[at_reported] if at_reported is not None else ""
                        if (type(raw_indicator) is str and raw_indicator in indicators
                                and type(raw_period) is str and raw_period in periods
                                and type(raw_unit) is str and raw_unit in units
                                and type(raw_reported) is str and raw_reported in reported
                                and type(raw_value) is str and (value := plain_number(raw_value)) is not None):
                            indicator = indicators[raw_indicator]
                            low, high = quiet[indicator]
                            if not low <= value <= high and (finding := check_value(
                                    info_of(indicator), value, limits)) is not None:
                                row = _Row(table, number, cells, self.sink)
                                if finding.error:
                                    row.problem("value", finding.message)
                                    continue
                                row.warn(self.warnings, "value", finding.message)
                                self.queried[(index, number)] = finding
                            period, unit = periods[raw_period], units[raw_unit]
                            chunk.append((index, number, indicator, period, unit, value, reported[raw_reported]))
                            add_figure(indicator, unit, period, value, index, number)
                            if len(chunk) >= STAGE_CHUNK_ROWS:
                                stage.write(chunk)
                                chunk.clear()
                            continue
                    staged = self._observation_row(_Row(table, number, cells, self.sink), index, at_reported is not None)
                    if staged is None:
                        continue
                    chunk.append(staged)
                    add_figure(staged[2], staged[4], staged[3], staged[5], index, number)
                    if len(chunk) >= STAGE_CHUNK_ROWS:
                        stage.write(chunk)
                        chunk.clear()
                    if len(cells) >= width:  # every cell of this row parsed: the next rows like it take the fast path
                        for cache, at, parsed in ((indicators, at_indicator, staged[2]), (periods, at_period, staged[3]),
                                                  (units, at_unit, staged[4]), (reported, at_reported, staged[6])):
                            raw = cells[at] if at is not None else ""
                            if type(raw) is str:
                                cast(dict[str, object], cache)[raw] = parsed
        stage.write(chunk)
        repeated, duplicates = stage.duplicates(MAX_LISTED_PROBLEMS)
        if repeated:
            for duplicate in duplicates:
                label = sources[duplicate.source].label
                first = sources[duplicate.first_source].label
                where = f"第{duplicate.first_row}行" if first == label else f"{first} 第{duplicate.first_row}行"
                self.sink.add(Problem(label, duplicate.row, key_headers.get(duplicate.source, "indicator"),
                                      f"与{where}重复（同一指标、期间、单位只能有一个数值）"))
            for _ in range(repeated - len(duplicates)):
                self.sink.count += 1
        if not repeated:
            candidates = figures.candidates(stage.stored_series())
            for series_row, finding in check_candidates(candidates, self.known.indicators, self.limits):
                if (series_row.source, series_row.row) in self.queried:
                    continue
                self.queried[(series_row.source, series_row.row)] = finding
                self.warnings.add(Problem(sources[series_row.source].label, series_row.row,
                                          value_header.get(series_row.source, "value"), finding.message, warning=True))
        counts = self.counts.setdefault("observations", ListCounts())
        if self.writing:
            merged = stage.merge(now=self.now, changed_by=self.imported_by)
            counts.new, counts.changed, counts.unchanged = merged.new, merged.changed, merged.unchanged
            self._queried_ids = self._observation_ids(stage) if self.queried else {}
        stage.drop()

    def _observation_row(self, row: _Row, index: int, has_reported_on: bool
                         ) -> tuple[int, int, str, str, str, float, dt.date | None] | None:
        """One figure parsed and checked cell by cell, problems and warnings reported; None if it has a problem."""
        indicator = self._known_indicator(row)
        period = row.get("period", parse_period)
        value = self._indicator_value(row, indicator, "value")
        unit = self._optional_unit(row)
        reported_on = row.get("reported_on", parse_date, required=False) if has_reported_on else None
        if row.ok and (info := self.known.indicators.get(indicator)) is not None:
            finding = check_value(info, value, self.limits)
            if finding is not None and finding.error:
                row.problem("value", finding.message)
            elif finding is not None:
                row.warn(self.warnings, "value", finding.message)
                self.queried[(index, row.number)] = finding
        if not row.ok:
            return None
        return (index, row.number, indicator, period, unit, value, reported_on)

    def _observation_ids(self, stage: ObservationStage) -> dict[tuple[int, int], int]:
        """The stored observation each queried staged row became."""
        found: dict[tuple[int, int], int] = {}
        for source, row, observation_id in self.conn.exec_driver_sql(
            f"SELECT s.source, s.src_row, o.id FROM {STAGE} s CROSS JOIN observations o WHERE o.indicator_code = s.indicator_code"
            " AND o.period = s.period AND o.unit_code = s.unit_code"
        ):
            if (source, row) in self.queried:
                found[(source, row)] = observation_id
        return found

    def store_notes(self, batch_id: int, note: str) -> None:
        """Each queried figure linked to the warning and the importer's note (ObservationNote)."""
        ids = self._queried_ids
        rows = [{"observation_id": ids[key], "import_batch_id": batch_id, "audit": finding.audit,
                 "message": finding.message, "note": note, "noted_at": self.now}
                for key, finding in self.queried.items() if key in ids]
        if rows and note:
            self.conn.execute(insert(ObservationNote), rows)

    # --- projects ------------------------------------------------------------------------

    def _row_projects(self, row: _Row, keyed: _Keyed) -> None:
        code = row.get("code", parse_code)
        name = self._text(row, "name", parse_name)
        category = row.get("category", lambda c: parse_enum(c, CATEGORY_SPELLINGS, "项目类别"))
        level = row.get("level", lambda c: parse_enum(c, LEVEL_SPELLINGS, "项目级别"))
        total = row.get("total_investment", parse_number)
        units = self._unit_list(row)
        if total is not None and total[1]:
            row.problem("total_investment", "总投资以亿元为单位，不能填写百分数")
        if code is not None:
            self.known.projects.add(code)
            record = {"code": code, "name": name, "category": category, "level": level,
                      "total_investment": total[0] if total else 0.0, "units": units}
            keyed.add((code,), record if row.ok else None, row, "code")

    def _finish_projects(self, keyed: _Keyed) -> None:
        self._upsert("projects", Project.__table__, ("code",), keyed.records,  # type: ignore[arg-type]
                     links=(ProjectUnit.__table__, "project_code"))  # type: ignore[arg-type]

    def _known_project(self, row: _Row) -> str:
        code = row.get("project", parse_code)
        if code is not None and code not in self.known.projects:
            row.problem("project", f"未知的项目代码：'{code}'（请先在项目清单中登记）")
        return code

    def _amount(self, row: _Row, column: str) -> float:
        parsed = row.get(column, parse_number)
        if parsed is None:
            return 0.0
        if parsed[1]:
            row.problem(column, "投资额以亿元为单位，不能填写百分数")
        return parsed[0]

    def _row_project_plans(self, row: _Row, keyed: _Keyed) -> None:
        project = self._known_project(row)
        year = row.get("year", parse_year)
        planned = self._amount(row, "planned_investment")
        if project is not None and year is not None:
            record = {"project_code": project, "year": year, "planned_investment": planned}
            keyed.add((project, year), record if row.ok else None, row, "project")

    def _finish_project_plans(self, keyed: _Keyed) -> None:
        self._upsert("project_plans", ProjectPlan.__table__, ("project_code", "year"),  # type: ignore[arg-type]
                     keyed.records)

    def _row_project_investment(self, row: _Row, keyed: _Keyed) -> None:
        project = self._known_project(row)
        period = row.get("period", parse_month)
        value = self._amount(row, "value")
        if project is not None and period is not None:
            record = {"project_code": project, "period": period, "value": value,
                      "source_file": row.table.source.label}
            keyed.add((project, period), record if row.ok else None, row, "project")

    def _finish_project_investment(self, keyed: _Keyed) -> None:
        self._upsert("project_investment", ProjectInvestment.__table__,  # type: ignore[arg-type]
                     ("project_code", "period"), keyed.records, compare=("value",),
                     stamp={"imported_at": self.now})

    # --- tasks ---------------------------------------------------------------------------

    def _row_tasks(self, row: _Row, keyed: _Keyed) -> None:
        code = row.get("code", parse_code)
        title = self._text(row, "title", parse_name)
        measures = self._text(row, "measures", parse_text_block, required=False)
        goal = self._text(row, "goal", parse_text_block, required=False)
        deadline_cell = row.cell("deadline")
        deadline_date = as_date(deadline_cell)  # a date cell, a serial in a General cell, "2023/12/29 0:00"
        if deadline_date is not None:
            deadline_cell = deadline_date
        deadline = self._deadline(row, deadline_cell)
        units = self._unit_list(row)
        status = row.get("status", lambda c: parse_enum(c, STATUS_SPELLINGS, "状态"), required=False, default="open")
        done_on = row.get("done_on", parse_date, required=False)
        kind = row.get("kind", lambda c: parse_enum(c, TASK_KIND_SPELLINGS, "任务类型"), required=False,
                       default="deadline")
        strength = row.get("strength", lambda c: parse_enum(c, STRENGTH_SPELLINGS, "力度"), required=False, default="")
        if row.ok and done_on is not None and status != "done":
            row.problem("status", "填写了完成日期，状态应为“已完成”")
        if code is not None:
            deadline_text = deadline_cell.isoformat() if isinstance(deadline_cell, dt.date) else parse_text(deadline_cell)
            record = {"code": code, "title": title, "measures": measures, "goal": goal, "deadline": deadline,
                      "deadline_text": deadline_text, "status": status, "done_on": done_on, "kind": kind,
                      "strength": strength, "units": units}
            keyed.add((code,), record if row.ok else None, row, "code")

    def _deadline(self, row: _Row, cell: Cell) -> dt.date | None:
        if is_blank(cell):
            return None
        try:
            return parse_deadline(cell if isinstance(cell, dt.date) else parse_text(cell), self.known.programme_end)
        except DeadlineError as error:
            if self.known.programme_end is None and self.known.programme_broken:
                row.ok = False  # the programme row's own problem is the one to fix
            else:
                row.problem("deadline", str(error))
            return None

    def _finish_tasks(self, keyed: _Keyed) -> None:
        self._upsert("tasks", Task.__table__, ("code",), keyed.records,  # type: ignore[arg-type]
                     links=(TaskUnit.__table__, "task_code"))  # type: ignore[arg-type]

    # --- writing small lists -------------------------------------------------------------

    def _upsert(
        self,
        name: str,
        table: Table,
        key: tuple[str, ...],
        records: dict[tuple[Any, ...], dict[str, Any]],
        *,
        links: tuple[Table, str] | None = None,
        compare: tuple[str, ...] | None = None,
        stamp: dict[str, Any] | None = None,
    ) -> None:
        """Insert new rows, update changed ones, leave equal ones untouched (so re-imports change nothing).

        These lists are at most a few thousand rows, so comparing in Python is simpler than SQL
        and just as fast. `units` in a record is the ordered unit list kept in `links`.
        """
        counts = self.counts.setdefault(name, ListCounts())
        if not self.writing:
            return
        conn = self.conn
        existing = {tuple(row[k] for k in key): dict(row) for row in conn.execute(select(table)).mappings()}
        current_links: dict[Any, list[str]] = defaultdict(list)
        if links is not None:
            link_table, owner = links
            for link in conn.execute(select(link_table).order_by(link_table.c[owner], link_table.c.position)).mappings():
                current_links[link[owner]].append(link["unit_code"])
        new_rows: list[dict[str, Any]] = []
        changed_rows: list[dict[str, Any]] = []
        relinked: dict[Any, list[str]] = {}
        for record_key, record in records.items():
            values = {column: value for column, value in record.items() if column != "units"}
            before = existing.get(record_key)
            if before is None:
                new_rows.append({**values, **(stamp or {})})
                if links is not None:
                    relinked[record_key[0]] = record["units"]
                continue
            compared = compare or tuple(column for column in values if column not in key)
            links_changed = links is not None and current_links[record_key[0]] != record["units"]
            if any(before[column] != values[column] for column in compared) or links_changed:
                changed_rows.append({**values, **(stamp or {})})
                if links_changed:
                    relinked[record_key[0]] = record["units"]
            else:
                counts.unchanged += 1
        if new_rows:
            conn.execute(insert(table), new_rows)
        if changed_rows:
            value_columns = [column for column in changed_rows[0] if column not in key]
            statement = (
                update(table)
                .where(and_(*(table.c[k] == bindparam(f"key_{k}") for k in key)))
                .values({column: bindparam(f"new_{column}") for column in value_columns})
            )
            conn.execute(statement, [
                {**{f"key_{k}": row[k] for k in key}, **{f"new_{c}": row[c] for c in value_columns}}
                for row in changed_rows
            ])
        if links is not None and relinked:
            link_table, owner = links
            conn.execute(delete(link_table).where(link_table.c[owner].in_(list(relinked))))
            link_rows = [{owner: code, "unit_code": unit, "position": position}
                         for code, units in relinked.items() for position, unit in enumerate(units)]
            if link_rows:
                conn.execute(insert(link_table), link_rows)
        counts.new += len(new_rows)
        counts.changed += len(changed_rows)
