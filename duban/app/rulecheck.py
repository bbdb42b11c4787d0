"""Rules against the data: the cross-checks `duban check --db`, `duban doctor` and the service share."""

from __future__ import annotations

from sqlalchemy import Engine, select

from duban.engine.loader import RuleError, check_against_store
from duban.engine.rules import RuleSet
from duban.store.models import Indicator, Unit

__all__ = ["rules_against_store"]


def rules_against_store(engine: Engine, rule_set: RuleSet) -> list[RuleError]:
    """Indicator codes, the working group and item templates the rules name, checked against the store."""
    with engine.connect() as conn:
        indicators = set(conn.scalars(select(Indicator.code)))
        units = set(conn.scalars(select(Unit.code)))
        groups = set(conn.scalars(select(Unit.code).where(Unit.kind == "working_group")))
    templates = rule_set.templates_dir / "items"
    return check_against_store(rule_set, indicators, units, lambda name: (templates / f"{name}.txt.j2").is_file(),
                               working_group_codes=groups)
