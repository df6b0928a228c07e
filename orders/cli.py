"""`flask --app app commission import|export|list|recompute` and `flask --app app orders match`."""
from __future__ import annotations

import click
from flask.cli import AppGroup

from core.db import db
from core.timeutil import parse_date
from imports import library
from imports.cli import exit_rejected, export_or_usage
from imports.files import ImportRejected
from orders import commission as rates
from orders import operations as ops

commission_cli = AppGroup("commission", help="Commission rates per product category.")
orders_cli = AppGroup("orders", help="Orders: match the ones whose customer was unknown.")


@commission_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def import_cmd(path):
    """Import FILE (.jsonl or .csv: category, rate). All or nothing; upserts by category."""
    try:
        counts = library.import_file("commission", path)
    except ImportRejected as exc:
        exit_rejected(exc)
    click.echo(", ".join(f"{n} {k}" for k, n in counts.items()))


@commission_cli.command("export")
@click.argument("path", type=click.Path(dir_okay=False, writable=True))
def export_cmd(path):
    """Write every rate to PATH (.jsonl or .csv: category, rate as a percentage); it imports back unchanged."""
    n = export_or_usage(rates.export_rates, path)
    click.echo(f"{n} commission rates written to {path}")


@commission_cli.command("list")
def list_cmd():
    for category, rate in rates.list_rates():
        click.echo(f"{category}\t{rate * 100:.2f}%")


@commission_cli.command("recompute")
@click.option("--since", required=True, help="Re-price orders paid on or after this date (YYYY-MM-DD).")
def recompute_cmd(since):
    """Recompute the commission of orders paid since a date with today's rates."""
    from orders.attribution import set_commission
    from reports.leaderboard import invalidate
    from core.timeutil import start_of

    try:
        D = parse_date(since)
    except ValueError:
        raise click.UsageError(f"--since is not a date: {since!r}") from None
    n = set_commission("o.paid_at >= :since", {"since": start_of(D)})
    db.session.commit()
    invalidate()
    click.echo(f"{n} orders re-priced")


@orders_cli.command("match")
def match_cmd():
    """Match stored orders whose customer was unknown (also run hourly by the scheduler)."""
    result = ops.match_pending()
    db.session.commit()
    click.echo(f"{result['matched']} of {result['pending']} unmatched orders matched")
