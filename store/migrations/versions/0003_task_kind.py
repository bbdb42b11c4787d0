"""task kind: deadline (a result by a date) or ongoing (常态化/持续推进)

An ongoing duty is never overdue; the engine asks for its progress each quarter instead.
Every task stored before this revision keeps the old behaviour: kind 'deadline'.

Revision ID: 0003
Revises: 0002
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("kind", sa.String(length=10), nullable=False, server_default="deadline"))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("kind")
