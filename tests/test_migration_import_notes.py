"""Revision 0006 gives import batches a note and adds observation_notes, keeping every earlier batch."""

from __future__ import annotations

from sqlalchemy import text

from duban.store.db import make_engine
from duban.store.migrate import upgrade


def test_upgrading_keeps_earlier_import_batches_with_an_empty_note(tmp_path) -> None:
    engine = make_engine(str(tmp_path / "old.db"))
    upgrade(engine, "0005")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO import_batches (started_at, files, inserted, updated, imported_by) "
                          "VALUES ('2023-07-15 01:00:00', '[\"units.csv\"]', 4, 0, '统计员')"))
    upgrade(engine, "0006")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT imported_by, note FROM import_batches")).all() == [("统计员", "")]
        assert conn.execute(text("SELECT COUNT(*) FROM observation_notes")).scalar_one() == 0
    engine.dispose()
