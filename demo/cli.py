"""`flask --app app demo seed [--if-empty]`: load the demo chain through the bulk import (idempotent)."""
from __future__ import annotations

import sys
from pathlib import Path

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from core.db import db
from demo.data import build_records, demo_corp_seed
from imports.operations import ImportRejected, import_records
from imports.records import TYPE_ORDER
from knowledge.operations import import_library, read_library_file

ROOT = Path(__file__).resolve().parent.parent
DEMO_LIBRARY = [ROOT / "benchmarks" / "data" / "kb_baby.jsonl", ROOT / "demo" / "content.jsonl"]

__all__ = ["demo_cli", "demo_corp_seed", "seed"]

demo_cli = AppGroup("demo", help="Demo data: a maternal & baby chain with 2 stores, 200 customers, a year of orders.")


def seed(*, if_empty: bool = False) -> dict[str, int] | None:
    """Import the demo records; None when `if_empty` and customers already exist. Re-seeding changes nothing."""
    from models import Customer

    if if_empty and db.session.scalar(select(func.count()).select_from(Customer)):
        return None
    records = build_records()
    counts = import_records(enumerate(records, 1), progress=sys.stderr.isatty())
    counts.update(seed_library())
    return counts


def seed_library() -> dict[str, int]:
    """The demo chain's knowledge library: the maternal & baby scripts (also the evaluation set of
    benchmarks/suggest_quality.py) and the demo content and vocabulary."""
    lines = []
    for path in DEMO_LIBRARY:
        lines.extend(read_library_file(path))
    return import_library(lines)


@demo_cli.command("seed")
@click.option("--if-empty", is_flag=True, help="Do nothing when the database already has customers.")
def seed_command(if_empty):
    """Generate the demo chain (fixed seed, dates relative to today) and import it."""
    try:
        counts = seed(if_empty=if_empty)
    except ImportRejected as exc:
        for lineno, reason in exc.errors[:20]:
            click.echo(f"record {lineno}: {reason}", err=True)
        click.echo(f"{len(exc.errors)} bad demo record(s): nothing imported", err=True)
        sys.exit(1)
    if counts is None:
        click.echo("customers already exist: demo seed skipped")
        return
    click.echo(f"demo data seeded: {sum(counts.values())} records")
    for rtype in (*TYPE_ORDER, "script", "content", "synonym"):
        if rtype in counts:
            click.echo(f"  {rtype:<13}{counts[rtype]:>6}")
