"""delivery payloads in their own table

Marking a delivery claimed or sent rewrote the whole row, message bytes included (several
overflow pages in SQLite per mark). The bytes move to `delivery_payloads`, one row per delivery.

Revision ID: 0002
Revises: 0001
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "delivery_payloads",
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["delivery_id"], ["deliveries.id"]),
        sa.PrimaryKeyConstraint("delivery_id"),
    )
    op.execute("INSERT INTO delivery_payloads (delivery_id, payload) SELECT id, payload FROM deliveries")
    # Plain ALTER TABLE (SQLite >= 3.35, PostgreSQL): a batch copy of `deliveries` would drop
    # the table that notices and payloads reference.
    op.execute("ALTER TABLE deliveries DROP COLUMN payload")


def downgrade() -> None:
    op.add_column("deliveries", sa.Column("payload", sa.LargeBinary(), nullable=True))
    op.execute(
        "UPDATE deliveries SET payload = "
        "(SELECT payload FROM delivery_payloads WHERE delivery_payloads.delivery_id = deliveries.id)"
    )
    op.drop_table("delivery_payloads")
