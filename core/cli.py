"""`flask --app app db upgrade|downgrade|revision|current`: Alembic, pointed at the app's database."""
from __future__ import annotations

from pathlib import Path

import click
from alembic import command
from alembic.config import Config
from flask import current_app
from flask.cli import AppGroup

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"

db_cli = AppGroup("db", help="Database schema migrations (Alembic).")


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s")
    cfg.attributes["database_url"] = current_app.config["DATABASE_URL"]
    return cfg


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def upgrade(revision):
    """Build or update the schema."""
    command.upgrade(alembic_config(), revision)


@db_cli.command("downgrade")
@click.argument("revision", default="-1")
def downgrade(revision):
    command.downgrade(alembic_config(), revision)


@db_cli.command("current")
def current():
    command.current(alembic_config())


@db_cli.command("revision")
@click.option("-m", "--message", required=True, help="What the revision changes (always describe it).")
@click.option("--autogenerate", is_flag=True)
def revision(message, autogenerate):
    command.revision(alembic_config(), message=message, autogenerate=autogenerate)
