"""`flask --app app data import FILE [--type T] [--dry-run]`: bulk import of a JSONL or CSV file."""
from __future__ import annotations

import sys
import time

from typing import NoReturn

import click
from flask.cli import AppGroup

from imports.files import ImportRejected
from imports.operations import ORDERS_MATCHED, import_file
from imports.records import CSV_TYPES, TYPE_ORDER

data_cli = AppGroup("data", help="Bulk data import (see docs/import-format.md).")


def exit_rejected(exc: ImportRejected, *, what: str = "record", outcome: str = "nothing imported") -> NoReturn:
    """What every `… import FILE` command prints for a rejected file (`line N: reason` per bad record, then
    `N bad record(s): nothing imported`, on stderr), then exit status 1. `what` names the records in that
    last line where the command has always said something else ("playbook"); `outcome` is what did not
    happen, for a command that reads a file without importing it (`knowledge evaluate`)."""
    for where, reason in exc.errors:
        if isinstance(where, int):
            where = f"line {where}" if where else None
        click.echo(f"{where}: {reason}" if where else reason, err=True)
    click.echo(f"{len(exc.errors)} bad {what}(s): {outcome}", err=True)
    sys.exit(1)


def export_or_usage(export, path: str):
    """Run an `export(path)` of one of the `… export FILE` commands; a file type it cannot write (its
    ValueError) is a usage error (exit status 2) naming the problem."""
    try:
        return export(path)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


@data_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--type", "record_type", type=click.Choice(CSV_TYPES),
              help="Record type of a CSV file (default: from the file name, e.g. stores.csv).")
@click.option("--dry-run", is_flag=True, help="Validate and apply, then roll back: nothing is kept.")
def import_cmd(path, record_type, dry_run):
    """Import FILE (.jsonl, one record per line with a "type"; or .csv of one type). All or nothing."""
    started = time.perf_counter()
    try:
        counts = import_file(path, record_type=record_type, progress=sys.stderr.isatty(), dry_run=dry_run)
    except ImportRejected as exc:
        exit_rejected(exc)
    if not dry_run and "product" in counts:
        from knowledge.service import library_changed

        library_changed()  # products are suggested too: every process re-reads them
    seconds = time.perf_counter() - started
    matched = counts.pop(ORDERS_MATCHED, 0)
    total = sum(counts.values())
    verb = "checked (dry run, nothing kept)" if dry_run else "imported"
    click.echo(f"{total} records {verb} in {seconds:.1f} s")
    for rtype in TYPE_ORDER:
        if rtype in counts:
            click.echo(f"  {rtype:<13}{counts[rtype]:>10}")
    if matched:
        click.echo(f"{matched} order(s) that were waiting for their customer matched and credited")
