"""`render_html(report)`: one self-contained HTML file from the admin-editable report template.

The template (rules/templates/reports/report.html.j2) runs in jinja2's sandbox with autoescape,
like the digests (notifiers/render.py): admins change the wording, never the figures.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from jinja2 import (
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
    select_autoescape,
)
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from duban.notifiers.render import chinese_ordinal, format_date_cn, format_datetime_cn, format_number
from duban.notifiers.reports.build import GRADE_RULES
from duban.notifiers.reports.charts import indicator_chart, project_chart
from duban.notifiers.reports.model import LEVEL_NAMES, Report
from duban.paths import BUNDLED_TEMPLATES
from duban.store.periods import SHANGHAI

# The bundled templates, beside the package: used by rule sets that keep no reports/ folder of their own.
DEFAULT_TEMPLATES_DIR = BUNDLED_TEMPLATES
TEMPLATE = "reports/report.html.j2"


class ReportTemplateError(Exception):
    """The report template cannot be used; the message names the file and line, in Chinese."""


def _pct(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{format_number(value, digits)}%"


def _signed(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "—"
    text = format_number(value, digits)
    return text if text.startswith("-") or text == "0" else f"+{text}"


def _iso_date(value: dt.datetime | dt.date | None) -> str:
    """2023-07-17: the compact date of table cells (the text uses 2023年7月17日)."""
    if value is None:
        return "—"
    if isinstance(value, dt.datetime):
        value = value.astimezone(SHANGHAI).date()
    return value.isoformat()


def _environment(templates_dir: Path) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=FileSystemLoader(str(templates_dir)),
        autoescape=select_autoescape(enabled_extensions=("html.j2", "html"), default_for_string=True),
        undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, auto_reload=False,
    )
    # Filters are the digests' own names: DigestRenderer also compiles every *.j2 under the
    # templates folder, so a report-only filter would read there as a broken template.
    env.filters.update({"num": format_number, "date_cn": format_date_cn, "datetime_cn": format_datetime_cn,
                        "cn": chinese_ordinal})
    env.globals.update({"pct": _pct, "signed": _signed, "light": lambda level: LEVEL_NAMES.get(level or "", ""),
                        "iso_date": _iso_date})
    return env


def render_html(report: Report, templates_dir: str | os.PathLike[str] = DEFAULT_TEMPLATES_DIR) -> str:
    folder = Path(templates_dir)
    if not (folder / "reports").is_dir():
        folder = DEFAULT_TEMPLATES_DIR
    env = _environment(folder)
    where = folder / TEMPLATE
    try:
        template = env.get_template(TEMPLATE)
    except TemplateNotFound:
        raise ReportTemplateError(f"{where}: 报告模板文件不存在") from None
    except TemplateSyntaxError as exc:
        raise ReportTemplateError(f"{exc.filename or where}:{exc.lineno}: 报告模板语法错误（{exc.message}）") from None
    chart, chart_note = indicator_chart(report.indicators)
    context: dict[str, Any] = {
        "report": report,
        "indicator_chart": chart,
        "indicator_chart_note": chart_note,
        "project_chart": project_chart(report.categories),
        "level_names": LEVEL_NAMES,
        "grade_rules": GRADE_RULES,
        # 季度通报: units that rose (进位) and fell (退位) against the previous quarter, largest moves first
        "moved_up": sorted((row for row in report.ranking if row.movement.startswith("进位")),
                           key=lambda row: (row.rank - (row.previous_rank or row.rank), row.rank)),
        "moved_down": sorted((row for row in report.ranking if row.movement.startswith("退位")),
                             key=lambda row: ((row.previous_rank or row.rank) - row.rank, row.rank)),
    }
    try:
        return template.render(context)
    except (UndefinedError, SecurityError, TypeError, ValueError) as exc:
        raise ReportTemplateError(f"{where}: 报告模板渲染出错（{type(exc).__name__}: {exc}）") from None


__all__ = ["ReportTemplateError", "render_html"]
