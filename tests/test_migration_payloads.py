"""Revision 0002 moves the message bytes out of the delivery rows without losing one."""

from __future__ import annotations

from sqlalchemy import Engine, text

from duban.store.migrate import current, upgrade


def test_upgrading_an_outbox_keeps_every_pending_message_byte_for_byte(tmp_path) -> None:
    from duban.store.db import make_engine

    engine: Engine = make_engine(str(tmp_path / "old.db"))
    upgrade(engine, "0001")
    payload = "【督办提醒】请于7月20日前报送。".encode() + bytes(range(256)) * 50
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO deliveries (idempotency_key, message_id, channel, recipient_unit, address, subject, payload, "
            "status, attempts, next_attempt_at, claimed_by, last_error, created_at) VALUES ('k', '<m@x>', 'email', "
            "'fgj', 'fgj@example.org', 's', :payload, 'pending', 0, '2023-07-15 01:00:00', '', '', "
            "'2023-07-15 01:00:00')"), {"payload": payload})
    upgrade(engine, "0002")  # this revision's own step; later revisions have their own tests
    assert current(engine) == "0002"
    with engine.connect() as conn:
        moved = conn.execute(text("SELECT d.idempotency_key, p.payload FROM deliveries d "
                                  "JOIN delivery_payloads p ON p.delivery_id = d.id")).all()
        columns = {row[1] for row in conn.execute(text("PRAGMA table_info(deliveries)"))}
    assert moved == [("k", payload)]
    assert "payload" not in columns
    engine.dispose()
