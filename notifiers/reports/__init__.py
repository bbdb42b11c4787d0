"""Reports the working group reads: 月度专报, 季度通报, 年度评估 and the five lists (HTML and Excel).

`build_report` turns one evaluation at the report's cut-off (and the alert ledger) into a
`Report`; `render_html` and `write_xlsx` only format it. `generate` is the I/O edge the CLI,
the demo and the benchmark call.
"""

from notifiers.reports.build import build_report
from notifiers.reports.generate import WrittenReport, generate, load_ledger, prepare_report, write_report
from notifiers.reports.html import ReportTemplateError, render_html
from notifiers.reports.model import KINDS, Report
from notifiers.reports.periods import ReportPeriodError, cutoff, report_links, report_period
from notifiers.reports.xlsx import write_xlsx

__all__ = [
    "KINDS", "Report", "ReportPeriodError", "ReportTemplateError", "WrittenReport", "build_report", "cutoff",
    "generate", "load_ledger", "prepare_report", "render_html", "report_links", "report_period", "write_report",
    "write_xlsx",
]
