"""Reports the working group reads: 月度专报, 季度通报, 年度评估 and the five lists (HTML and Excel).

`build.build_report` turns one evaluation at the report's cut-off (and the alert ledger) into a
`model.Report`; `html.render_html` and `xlsx.write_xlsx` only format it; `produce.generate` is
the I/O edge the CLI, the demo and the benchmark call. Names are resolved lazily so that a round,
which only needs `periods.report_links`, does not import openpyxl.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "build_report": "build", "Report": "model", "KINDS": "model", "render_html": "html",
    "ReportTemplateError": "html", "write_xlsx": "xlsx", "generate": "produce", "prepare_report": "produce",
    "write_report": "produce", "load_ledger": "produce", "WrittenReport": "produce",
    "ReportPeriodError": "periods", "cutoff": "periods", "report_links": "periods", "report_period": "periods",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(name)
    return getattr(importlib.import_module(f"duban.notifiers.reports.{_HOMES[name]}"), name)


__all__ = sorted(_HOMES)
