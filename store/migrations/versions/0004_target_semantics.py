"""targets as the documents state them; when a figure was reported

`indicators.reported_as` (报送口径: ytd 本年累计, month 当月值, to_date 累计至今; '' = ytd),
`observations.reported_on` (报送日期), and per target its `shape` (annual / milestone / final),
`comparison` (at_least 以上 / more_than 超过 / about 左右 / at_most), `strength` (hard 确保 /
soft 力争), `due` (a milestone's date) and `tolerance` (左右, percent). Existing rows keep their
meaning: empty strings and NULLs are the defaults.

Revision ID: 0004
Revises: 0003
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (SQLite and PostgreSQL): no batch copy of tables others reference.
    op.add_column("indicators", sa.Column("reported_as", sa.String(10), nullable=False, server_default=""))
    op.add_column("observations", sa.Column("reported_on", sa.Date(), nullable=True))
    op.add_column("targets", sa.Column("shape", sa.String(10), nullable=False, server_default=""))
    op.add_column("targets", sa.Column("comparison", sa.String(10), nullable=False, server_default=""))
    op.add_column("targets", sa.Column("strength", sa.String(10), nullable=False, server_default=""))
    op.add_column("targets", sa.Column("due", sa.Date(), nullable=True))
    op.add_column("targets", sa.Column("tolerance", sa.Float(), nullable=True))


def downgrade() -> None:
    for column in ("tolerance", "due", "strength", "comparison", "shape"):
        op.execute(f"ALTER TABLE targets DROP COLUMN {column}")
    op.execute("ALTER TABLE observations DROP COLUMN reported_on")
    op.execute("ALTER TABLE indicators DROP COLUMN reported_as")
