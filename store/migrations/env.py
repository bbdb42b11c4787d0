"""Alembic environment: run with the connection store.migrate passes in."""

from alembic import context

from duban.store import web_models  # noqa: F401  (the web's tables join Base.metadata)
from duban.store.models import Base

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER columns or constraints; batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
