"""`duban db backup` / `restore`: a logical copy of one programme's database, portable across engines.

The file is gzip-compressed JSON lines: a header (format, schema revision, time, source engine), then
for each table a line naming it and its columns, then one line per row. Being logical, it restores
into SQLite or PostgreSQL alike (a district moving from SQLite to PostgreSQL backs up one and
restores into the other), and into an older schema revision's database it is brought up to date by
the normal migrations afterwards.

Restore is all-or-nothing: one transaction into an empty database at the backup's revision (created
or upgraded to it first); a database that already holds data is refused unless `replace=True`.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import gzip
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine, MetaData, Table, func, inspect, select, text

__all__ = ["BackupError", "BackupSummary", "backup", "restore"]

FORMAT = "duban-backup"
FORMAT_VERSION = 1
_SKIPPED_TABLES = {"alembic_version"}
_BATCH = 1000


class BackupError(ValueError):
    """A backup or restore that cannot go ahead; the text is Chinese and says what to do."""


@dataclass(frozen=True)
class BackupSummary:
    path: Path
    revision: str | None
    tables: int
    rows: int


def _encode(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:  # SQLite hands back naive values; duban stores UTC
            value = value.replace(tzinfo=dt.UTC)
        return {"$dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$d": value.isoformat()}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$b": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, decimal.Decimal):
        return {"$n": str(value)}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        ((tag, payload),) = value.items()
        if tag == "$dt":
            return dt.datetime.fromisoformat(payload)
        if tag == "$d":
            return dt.date.fromisoformat(payload)
        if tag == "$b":
            return base64.b64decode(payload)
        if tag == "$n":
            return decimal.Decimal(payload)
    return value


def _reflect(engine: Engine) -> MetaData:
    metadata = MetaData()
    metadata.reflect(engine)
    return metadata


def _revision(engine: Engine) -> str | None:
    from duban.store.migrate import current

    return current(engine)


def _private_open(path: Path) -> IO[bytes]:
    """Create the file readable by its owner only: a backup holds addresses and notice content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(descriptor, "wb")


def backup(engine: Engine, path: Path, *, now: dt.datetime) -> BackupSummary:
    """Write every table of the database to `path` in one consistent read."""
    if not inspect(engine).has_table("alembic_version"):
        raise BackupError("数据库尚未初始化（没有 duban 的表），无需备份。")
    revision = _revision(engine)
    metadata = _reflect(engine)
    tables = [table for table in metadata.sorted_tables if table.name not in _SKIPPED_TABLES]
    rows = 0
    temporary = path.with_name(path.name + ".part")
    with _private_open(temporary) as raw, gzip.GzipFile(fileobj=raw, mode="wb") as zipped:
        def line(obj: Any) -> None:
            zipped.write(json.dumps(obj, ensure_ascii=False, default=str).encode("utf-8") + b"\n")

        line({"format": FORMAT, "version": FORMAT_VERSION, "revision": revision,
              "created": now.isoformat(), "engine": engine.dialect.name})
        # One transaction: on PostgreSQL a repeatable-read snapshot, on SQLite the read lock.
        with engine.connect() as connection:
            if engine.dialect.name == "postgresql":
                connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            for table in tables:
                columns = [column.name for column in table.columns]
                line({"table": table.name, "columns": columns})
                order = list(table.primary_key.columns) or list(table.columns)
                result = connection.execution_options(stream_results=True).execute(select(table).order_by(*order))
                for row in result:
                    line([_encode(value) for value in row])
                    rows += 1
    os.replace(temporary, path)
    return BackupSummary(path=path, revision=revision, tables=len(tables), rows=rows)


def _read(path: Path) -> Iterator[Any]:
    try:
        with gzip.open(path, "rb") as stream:
            for raw in stream:
                yield json.loads(raw)
    except (OSError, EOFError, json.JSONDecodeError) as exc:
        raise BackupError(f"备份文件 {path} 无法读取或已损坏（{exc}），未做任何修改。") from None


def restore(engine: Engine, path: Path, *, replace: bool = False) -> BackupSummary:
    """Load a backup into `engine`'s database, all or nothing, then migrate it to the newest revision."""
    from duban.store.migrate import upgrade

    if not path.is_file():
        raise BackupError(f"找不到备份文件 {path}。")
    lines = _read(path)
    header = next(lines, None)
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise BackupError(f"{path} 不是 duban 的备份文件（应由 duban db backup 生成），未做任何修改。")
    if header.get("version") != FORMAT_VERSION:
        raise BackupError(f"{path} 的备份格式版本 {header.get('version')} 不受支持，请用同版本的 duban 恢复。")
    revision = header.get("revision")
    current_revision = _revision(engine) if inspect(engine).has_table("alembic_version") else None
    if current_revision and revision and current_revision != revision:
        _recreate_empty(engine, revision, current_revision, replace=replace)
    if revision:
        upgrade(engine, revision)
    metadata = _reflect(engine)
    tables = {table.name: table for table in metadata.sorted_tables if table.name not in _SKIPPED_TABLES}
    rows = 0
    restored: list[Table] = []
    with engine.begin() as connection:
        occupied = [name for name, table in tables.items()
                    if connection.scalar(select(func.count()).select_from(table))]
        if occupied and not replace:
            raise BackupError(
                f"目标数据库已有数据（{'、'.join(occupied[:5])}{'等' if len(occupied) > 5 else ''}），未做任何修改。"
                "请恢复到一个新建的空数据库，或确认覆盖后加 --replace。"
            )
        if occupied:
            for existing in reversed(list(tables.values())):
                connection.execute(existing.delete())
        table: Table | None = None
        columns: list[str] = []
        batch: list[dict[str, Any]] = []

        def flush() -> None:
            if table is not None and batch:
                connection.execute(table.insert(), batch)
                batch.clear()

        for item in lines:
            if isinstance(item, dict):
                flush()
                name = item.get("table")
                if name not in tables:
                    raise BackupError(f"备份中的表 {name} 在目标数据库中不存在（版本 {revision}），未做任何修改。")
                table = tables[name]
                columns = list(item.get("columns", []))
                unknown = [column for column in columns if column not in table.c]
                if unknown:
                    raise BackupError(f"备份中表 {name} 的列 {'、'.join(unknown)} 在目标数据库中不存在，未做任何修改。")
                restored.append(table)
                continue
            if table is None:
                raise BackupError(f"{path} 格式有误（数据行出现在表名之前），未做任何修改。")
            batch.append({column: _decode(value) for column, value in zip(columns, item, strict=True)})
            rows += 1
            if len(batch) >= _BATCH:
                flush()
        flush()
        if engine.dialect.name == "postgresql":
            _reset_sequences(connection, restored)
    upgrade(engine)
    return BackupSummary(path=path, revision=revision, tables=len(restored), rows=rows)


def _recreate_empty(engine: Engine, revision: str, current_revision: str, *, replace: bool) -> None:
    """An empty database at another schema revision is rebuilt at the backup's revision."""
    metadata = _reflect(engine)
    with engine.begin() as connection:
        occupied = [table.name for table in metadata.sorted_tables if table.name not in _SKIPPED_TABLES
                    and connection.scalar(select(func.count()).select_from(table))]
        if occupied and not replace:
            raise BackupError(
                f"目标数据库已有数据且版本（{current_revision}）与备份（{revision}）不同，未做任何修改。"
                "请恢复到一个新建的空数据库，或确认覆盖后加 --replace。"
            )
        metadata.drop_all(connection)


def _reset_sequences(connection: Any, tables: list[Table]) -> None:
    """Rows were inserted with their ids: move each serial sequence past the largest id."""
    for table in tables:
        for column in table.primary_key.columns:
            sequence = connection.scalar(text("SELECT pg_get_serial_sequence(:t, :c)"),
                                         {"t": table.name, "c": column.name})
            if sequence:
                connection.execute(
                    text(f'SELECT setval(:s, COALESCE((SELECT MAX("{column.name}") FROM "{table.name}"), 0) + 1, false)'),
                    {"s": sequence},
                )
