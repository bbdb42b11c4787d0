"""import notes: why queried figures are right

`import_batches.note` keeps `duban import --note "说明"`; `observation_notes` links each figure the
plausibility checks (audit: share, growth, shrink, jump) queried to the warning and the note, so reports
can show them beside the figure.

Revision ID: 0006
Revises: 0005
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import duban.store.models

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("import_batches", sa.Column("note", sa.Text(), nullable=False, server_default=""))
    op.create_table(
        "observation_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("observation_id", sa.Integer(), nullable=False),
        sa.Column("import_batch_id", sa.Integer(), nullable=False),
        sa.Column("audit", sa.String(length=20), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("noted_at", duban.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["observation_id"], ["observations.id"]),
        sa.ForeignKeyConstraint(["import_batch_id"], ["import_batches.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_observation_notes_observation_id", "observation_notes", ["observation_id"])


def downgrade() -> None:
    op.drop_index("ix_observation_notes_observation_id", table_name="observation_notes")
    op.drop_table("observation_notes")
    op.execute("ALTER TABLE import_batches DROP COLUMN note")
