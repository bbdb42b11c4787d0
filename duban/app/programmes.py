"""Each programme of a configuration file as the commands that serve "all programmes" see it.

`duban doctor` and `duban db backup --dir` act on every programme the file lists when none is chosen;
both need the same thing per programme: its environment (its own values beat the file's shared ones,
which beat nothing already set), its database and its rules. One function builds it for both.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from duban.config import Config, apply
from duban.store.db import make_engine, resolve_url


@dataclass(frozen=True)
class ProgrammeTarget:
    code: str
    environ: dict[str, str]
    db_url: str
    schema: str
    rules_root: Path

    def engine(self) -> Engine:
        return make_engine(self.db_url, schema=self.schema)


def programme_targets(config: Config, codes: Sequence[str], rules_fallback: Path,
                      base: Mapping[str, str] | None = None) -> list[ProgrammeTarget]:
    """One target per programme code, in the file's order."""
    targets = []
    for code in codes:
        programme = config.programmes[code]
        environ = dict(os.environ if base is None else base)
        environ.update(programme.values)  # this programme's own database beats the shared settings
        apply(config, programme, environ)
        targets.append(ProgrammeTarget(
            code=code,
            environ=environ,
            db_url=resolve_url(environ.get("DUBAN_DB")),
            schema=environ.get("DUBAN_DB_SCHEMA", ""),
            rules_root=Path(environ.get("DUBAN_RULES") or rules_fallback),
        ))
    return targets
