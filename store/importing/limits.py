"""What one import may hold, and the plausibility checks (审核公式) applied to the figures.

The bounds keep an import's time bounded: a file is measured before the write lock is taken
and refused, with the limit named, when it has too many rows or columns or a cell too long.
The plausibility settings say when a figure is queried (a warning the importer confirms with
`--note`). Every value can be set in the environment; docs/data.md lists them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

__all__ = ["ImportLimits"]

# Excel itself holds at most 32,767 characters in a cell: no real sheet has a longer one.
DEFAULT_MAX_CELL_CHARS = 32_767
# 1,000,000 figures import in 13–21 s on the shared 2-core machine (docs/data.md, Volume): inside the
# 30 s other writers wait, though not by much under load.
DEFAULT_MAX_ROWS = 1_000_000
# Excel 2003 had 256 columns; duban's widest list has 8 (plus 序号/备注 and blank ones).
DEFAULT_MAX_COLUMNS = 256
# Rows times columns read: what the time under the lock really grows with (1,000,000 rows of
# 4 figures' columns is 4,000,000; a workbook reader manages roughly 1–2 million cells a second).
DEFAULT_MAX_CELLS = 10_000_000


@dataclass(frozen=True)
class ImportLimits:
    max_rows: int = DEFAULT_MAX_ROWS  # data rows in one import, all files together
    max_columns: int = DEFAULT_MAX_COLUMNS  # cells in any row
    max_cell_chars: int = DEFAULT_MAX_CELL_CHARS
    max_cells: int = DEFAULT_MAX_CELLS  # cells in one import, all files together
    # Plausibility (warnings): growth rates outside [growth_min, growth_max] (%), and a figure
    # more than jump_factor times (or less than 1/jump_factor of) the previous month's.
    growth_min: float = -50.0
    growth_max: float = 100.0
    jump_factor: float = 10.0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ImportLimits:
        """DUBAN_IMPORT_MAX_ROWS, _MAX_COLUMNS, _MAX_CELL_CHARS, _MAX_CELLS, _GROWTH_MIN, _GROWTH_MAX, _JUMP_FACTOR.

        A value that is not a positive number is ignored (the default applies): a typo in the
        environment must not switch the bounds off.
        """
        env = os.environ if environ is None else environ
        defaults = cls()

        def whole(name: str, default: int) -> int:
            try:
                value = int(env.get(f"DUBAN_IMPORT_{name}", ""))
            except ValueError:
                return default
            return value if value > 0 else default

        def number(name: str, default: float, *, positive: bool = False) -> float:
            try:
                value = float(env.get(f"DUBAN_IMPORT_{name}", ""))
            except ValueError:
                return default
            if not math.isfinite(value) or (positive and value <= 1):
                return default
            return value

        growth_min = number("GROWTH_MIN", defaults.growth_min)
        growth_max = number("GROWTH_MAX", defaults.growth_max)
        if growth_min >= growth_max:
            growth_min, growth_max = defaults.growth_min, defaults.growth_max
        return cls(
            max_rows=whole("MAX_ROWS", defaults.max_rows),
            max_columns=whole("MAX_COLUMNS", defaults.max_columns),
            max_cell_chars=whole("MAX_CELL_CHARS", defaults.max_cell_chars),
            max_cells=whole("MAX_CELLS", defaults.max_cells),
            growth_min=growth_min,
            growth_max=growth_max,
            jump_factor=number("JUMP_FACTOR", defaults.jump_factor, positive=True),
        )
