"""Observations go through a temporary staging table so a million rows never sit in Python memory.

Rows are validated in Python, written to the staging table in chunks, checked for duplicate
keys with one indexed GROUP BY, and merged into `observations` with set-based SQL that runs
unchanged on SQLite and PostgreSQL. Everything happens inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Connection, bindparam, text

from duban.store.models import UTCDateTime

__all__ = ["Duplicate", "MergeCounts", "ObservationStage", "SeriesRow"]

STAGE = "duban_stage_observations"
STAGE_SOURCES = "duban_stage_sources"
_KEYS_MATCH = "o.indicator_code = s.indicator_code AND o.period = s.period AND o.unit_code = s.unit_code"


@dataclass(frozen=True)
class Duplicate:
    source: int
    row: int
    first_source: int
    first_row: int


class SeriesRow(NamedTuple):
    indicator: str
    unit: str
    period: str
    value: float
    source: int  # -1: stored, not in this import
    row: int


@dataclass(frozen=True)
class MergeCounts:
    new: int
    changed: int
    unchanged: int


class ObservationStage:
    """Created on construction; gone at commit (PostgreSQL ON COMMIT DROP) or by `drop()` (SQLite)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.sqlite = conn.dialect.name == "sqlite"
        self.rows = 0
        # The staged rows come first in every join with observations, so each costs one index lookup
        # whatever the size of the store: SQLite keeps the left table of a CROSS JOIN outside (its
        # temporary table has no statistics to plan by); PostgreSQL plans a CROSS JOIN + WHERE freely.
        self._then = "CROSS JOIN"
        marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        self._insert_sql = (f"INSERT INTO {STAGE} (seq, source, src_row, indicator_code, period, unit_code, value, "
                            f"reported_on) VALUES ({', '.join([marker] * 8)})")
        self._insert_source_sql = f"INSERT INTO {STAGE_SOURCES} (source, label) VALUES ({marker}, {marker})"
        if self.sqlite:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{STAGE}")
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{STAGE_SOURCES}")
            suffix, integer, real, date = "", "INTEGER", "REAL", "TEXT"
        else:
            suffix, integer, real, date = " ON COMMIT DROP", "BIGINT", "DOUBLE PRECISION", "DATE"
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {STAGE} (seq {integer} PRIMARY KEY, source INTEGER NOT NULL, "
            f"src_row {integer} NOT NULL, indicator_code TEXT NOT NULL, period TEXT NOT NULL, "
            f"unit_code TEXT NOT NULL, value {real} NOT NULL, reported_on {date}){suffix}"
        )
        conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {STAGE_SOURCES} (source INTEGER PRIMARY KEY, label TEXT NOT NULL){suffix}")

    def add_source(self, source: int, label: str) -> None:
        self.conn.exec_driver_sql(self._insert_source_sql, (source, label))

    def write(self, chunk: Sequence[tuple[int, int, str, str, str, float, dt.date | None]]) -> None:
        """Rows as (source, row number, indicator, period, unit, value, reported_on)."""
        if not chunk:
            return
        start = self.rows
        text_dates = self.sqlite  # SQLite stores dates as ISO text, as SQLAlchemy's Date does
        self.conn.exec_driver_sql(self._insert_sql, [
            (start + i, *row[:6], row[6].isoformat() if text_dates and row[6] is not None else row[6])
            for i, row in enumerate(chunk)])
        self.rows += len(chunk)

    def duplicates(self, limit: int) -> tuple[int, list[Duplicate]]:
        """How many rows repeat an earlier row's key, and the first `limit` of them with the row they repeat."""
        # In series order (indicator, unit, period): the same index serves `stored_series`' lookups.
        self.conn.exec_driver_sql(f"CREATE INDEX {STAGE}_key ON {STAGE} (indicator_code, unit_code, period, seq)")
        repeated = self.conn.exec_driver_sql(
            f"SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM {STAGE} "
            "GROUP BY indicator_code, unit_code, period HAVING COUNT(*) > 1) AS d"
        ).scalar_one()
        if not repeated:
            return 0, []
        found = self.conn.execute(
            text(
                "SELECT source, src_row, first_source, first_row FROM ("
                " SELECT seq, source, src_row,"
                "  FIRST_VALUE(source) OVER w AS first_source, FIRST_VALUE(src_row) OVER w AS first_row,"
                "  ROW_NUMBER() OVER w AS n"
                f" FROM {STAGE} WINDOW w AS (PARTITION BY indicator_code, unit_code, period ORDER BY seq)"
                ") AS ranked WHERE n > 1 ORDER BY seq LIMIT :limit"
            ),
            {"limit": limit},
        ).all()
        return int(repeated), [Duplicate(*row) for row in found]

    def stored_series(self) -> Iterator[Sequence[Any]]:
        """The stored figures of every series this import touches that it does not replace, series by series.

        Rows are (indicator, unit, period, value), those of one series (indicator, unit) together,
        in no particular period order. Driven by the staged series: each is looked up in
        observations' series index (ix_observation_series), never a scan of the whole table.
        Streamed in blocks: memory does not grow with the store.
        """
        result = self.conn.exec_driver_sql(
            "SELECT o.indicator_code, o.unit_code, o.period, o.value"
            f" FROM (SELECT DISTINCT indicator_code, unit_code FROM {STAGE}) t {self._then} observations o"
            " WHERE o.indicator_code = t.indicator_code AND o.unit_code = t.unit_code"
            f" AND NOT EXISTS (SELECT 1 FROM {STAGE} s WHERE s.indicator_code = o.indicator_code"
            " AND s.unit_code = o.unit_code AND s.period = o.period)"
            " ORDER BY 1, 2",
            execution_options={"yield_per": 10_000},
        )
        for rows in result.partitions(10_000):
            yield from rows

    def merge(self, *, now: dt.datetime, changed_by: str) -> MergeCounts:
        """Insert new figures; for corrected ones record a revision and update. Unchanged rows are not touched."""
        conn = self.conn
        differs = ("(o.value <> s.value OR (s.reported_on IS NOT NULL"
                   " AND (o.reported_on IS NULL OR o.reported_on <> s.reported_on)))")
        unchanged, changed = conn.exec_driver_sql(
            f"SELECT COALESCE(SUM(CASE WHEN {differs} THEN 0 ELSE 1 END), 0),"
            f" COALESCE(SUM(CASE WHEN {differs} THEN 1 ELSE 0 END), 0)"
            f" FROM {STAGE} s {self._then} observations o WHERE {_KEYS_MATCH}"
        ).one()
        stamp = {"now": now, "by": changed_by}
        now_param = bindparam("now", type_=UTCDateTime())
        if changed:
            conn.execute(
                text(
                    "INSERT INTO observation_revisions"
                    " (observation_id, old_value, new_value, changed_by, source_file, changed_at)"
                    " SELECT o.id, o.value, s.value, :by, src.label, :now"
                    f" FROM {STAGE} s {self._then} observations o JOIN {STAGE_SOURCES} src ON src.source = s.source"
                    f" WHERE {_KEYS_MATCH} AND o.value <> s.value ORDER BY s.seq"
                ).bindparams(now_param),
                stamp,
            )
            match_outer = ("s.indicator_code = observations.indicator_code AND s.period = observations.period"
                           " AND s.unit_code = observations.unit_code")
            conn.execute(
                text(
                    f"UPDATE observations SET"
                    f" value = (SELECT s.value FROM {STAGE} s WHERE {match_outer}),"
                    f" source_file = (SELECT src.label FROM {STAGE} s JOIN {STAGE_SOURCES} src"
                    f"  ON src.source = s.source WHERE {match_outer}),"
                    f" reported_on = COALESCE((SELECT s.reported_on FROM {STAGE} s WHERE {match_outer}),"
                    "  observations.reported_on),"
                    " imported_at = :now"
                    # The rows to change, found from the staged keys (a lookup each), not by testing every stored row.
                    f" WHERE observations.id IN (SELECT o.id FROM {STAGE} s {self._then} observations o"
                    f"  WHERE {_KEYS_MATCH} AND {differs})"
                ).bindparams(now_param),
                stamp,
            )
        inserted = conn.execute(
            text(
                "INSERT INTO observations (indicator_code, period, unit_code, value, source_file, imported_at, reported_on)"
                " SELECT s.indicator_code, s.period, s.unit_code, s.value, src.label, :now, s.reported_on"
                f" FROM {STAGE} s JOIN {STAGE_SOURCES} src ON src.source = s.source"
                f" WHERE NOT EXISTS (SELECT 1 FROM observations o WHERE {_KEYS_MATCH}) ORDER BY s.seq"
            ).bindparams(now_param),
            {"now": now},
        ).rowcount
        return MergeCounts(new=int(inserted), changed=int(changed), unchanged=int(unchanged))

    def series_touched(self) -> list[tuple[str, str]]:
        """(indicator, unit) of every staged row, once each."""
        return [(i, u) for i, u in self.conn.exec_driver_sql(
            f"SELECT DISTINCT indicator_code, unit_code FROM {STAGE}").all()]

    def drop(self) -> None:
        if self.sqlite:
            self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{STAGE}")
            self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{STAGE_SOURCES}")
