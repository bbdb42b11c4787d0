"""indexes for the web's pages and the importer's merge; the lights each unit is concerned by

A unit's page read every row of indicator_units, task_units and board_lights (a LIKE on
`units_text`) and the importer's series check read every observation; these indexes (and
`board_light_units`, filled from the lights already stored) make each an index lookup.
`ix_audit_log_object` serves one request's history (留痕).

Revision ID: 0007
Revises: 0006
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_observation_series", "observations", ["indicator_code", "unit_code", "period"]),
    ("ix_indicator_units_unit", "indicator_units", ["unit_code"]),
    ("ix_project_units_unit", "project_units", ["unit_code"]),
    ("ix_task_units_unit", "task_units", ["unit_code"]),
    ("ix_audit_log_object", "audit_log", ["object_type", "object_id"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)
    op.create_table(
        "board_light_units",
        sa.Column("unit_code", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.String(length=200), nullable=False),
        sa.Column("subject_type", sa.String(length=20), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("unit_code", "rule", "subject_type", "subject"),
    )
    conn = op.get_bind()
    lights = sa.table("board_lights", sa.column("rule"), sa.column("subject_type"), sa.column("subject"),
                      sa.column("units_text"))
    links = sa.table("board_light_units", sa.column("unit_code"), sa.column("rule"), sa.column("subject_type"),
                     sa.column("subject"))
    rows = [{"unit_code": unit, "rule": rule, "subject_type": kind, "subject": subject}
            for rule, kind, subject, units in conn.execute(sa.select(lights.c.rule, lights.c.subject_type,
                                                                     lights.c.subject, lights.c.units_text))
            for unit in dict.fromkeys(u for u in (units or "").split(";") if u)]
    for start in range(0, len(rows), 2000):
        conn.execute(links.insert(), rows[start:start + 2000])


def downgrade() -> None:
    op.drop_table("board_light_units")
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
