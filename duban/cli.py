"""The `duban` command line: thin wrappers that parse options, call the core and print results.

Errors the user can act on are raised as `UserError` (or collected as lists of messages) and
printed without a traceback; the exit code is non-zero.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import click
from sqlalchemy import Engine

from store.db import make_engine, resolve_url


class UserError(click.ClickException):
    """An error caused by input the user can fix; printed as is, exit code 1."""

    def show(self, file: object = None) -> None:
        click.echo(self.format_message(), err=True)


@dataclass
class AppContext:
    db_url: str
    rules_dir: Path
    _engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.db_url)
        return self._engine


pass_app = click.make_pass_decorator(AppContext)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", "db_url", envvar="DUBAN_DB", default=None, help="SQLAlchemy URL or SQLite path (DUBAN_DB).")
@click.option(
    "--rules",
    "rules_dir",
    envvar="DUBAN_RULES",
    default="rules",
    type=click.Path(path_type=Path),
    help="Rules directory (DUBAN_RULES, default rules/).",
)
@click.pass_context
def main(ctx: click.Context, db_url: str | None, rules_dir: Path) -> None:
    """duban 督办: rule-based supervision of the 十百千 programmes."""
    ctx.obj = AppContext(db_url=resolve_url(db_url), rules_dir=rules_dir)


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@pass_app
def db_upgrade(app: AppContext) -> None:
    """Create or migrate the database schema to the newest version."""
    from store.migrate import current, upgrade

    upgrade(app.engine)
    click.echo(f"数据库已升级到版本 {current(app.engine)}：{app.db_url}")


def run() -> None:  # pragma: no cover - console entry for `python -m duban`
    main(prog_name="duban")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
