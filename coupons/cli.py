"""`flask --app app coupons import|export|list|expire`."""
from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from core.db import db
from coupons import operations as ops
from imports import library
from imports.cli import exit_rejected, export_or_usage
from imports.files import ImportRejected
from models import Coupon, CouponTemplate

coupons_cli = AppGroup("coupons", help="Coupon templates and issued coupons.")


@coupons_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Check every record, then roll back: nothing is kept.")
def import_cmd(path, dry_run):
    """Import coupon templates from FILE (.jsonl or .csv). All or nothing; upserts by external_id."""
    try:
        counts = library.import_file("coupons", path, dry_run=dry_run)
    except ImportRejected as exc:
        exit_rejected(exc)
    verb = "checked (dry run, nothing kept)" if dry_run else "imported"
    click.echo(f"coupon templates {verb}: " + ", ".join(f"{n} {k}" for k, n in counts.items()))


@coupons_cli.command("export")
@click.argument("path", type=click.Path(dir_okay=False, writable=True))
def export_cmd(path):
    """Write every template to PATH (.jsonl or .csv); the file imports back unchanged."""
    n = export_or_usage(ops.export_templates, path)
    click.echo(f"{n} coupon templates written to {path}")


@coupons_cli.command("list")
def list_cmd():
    """Templates with their stock and how many coupons are issued, redeemed and expired."""
    counts = {}
    for tid, status, n in db.session.execute(select(Coupon.template_id, Coupon.status, func.count())
                                             .group_by(Coupon.template_id, Coupon.status)):
        counts.setdefault(tid, {})[status] = n
    templates = db.session.scalars(select(CouponTemplate).order_by(CouponTemplate.external_id)).all()
    if not templates:
        click.echo("no coupon templates")
    for t in templates:
        c = counts.get(t.id, {})
        stock = "unlimited" if t.total_stock is None else f"{max(t.total_stock - t.issued_count, 0)}/{t.total_stock} left"
        validity = f"{t.valid_days} days from issue" if t.valid_days else \
            f"{t.valid_from or '…'} to {t.valid_to}"
        state = "" if t.enabled else " [disabled]"
        click.echo(f"{t.external_id}\t{t.name}\t{ops.value_text(t)}\t{stock}\tlimit {t.per_customer_limit}\t"
                   f"{validity}\tissued {c.get('issued', 0)} redeemed {c.get('redeemed', 0)} "
                   f"expired {c.get('expired', 0)}{state}")


@coupons_cli.command("show")
@click.argument("code")
def show_cmd(code):
    """One coupon: who has it, its state, and its audit trail."""
    coupon = db.session.scalar(select(Coupon).where(Coupon.code == code.strip().upper()))
    if coupon is None:
        raise click.UsageError(f"no coupon with code {code!r}")
    c = ops.coupon_json(coupon)
    click.echo(f"{c['code']}\t{c['name']} ({c['value']})\t{c['status']}\tcustomer #{coupon.customer_id}\t"
               f"valid until {c['valid_until']}")
    for e in ops.events_for(coupon.code):
        move = f"{e['from'] or '-'} -> {e['to']}" if e["to"] else ""
        order = f" order #{e['order_id']}" if e["order_id"] else ""
        click.echo(f"  {e['at']}  {e['type']:<9} {move}{order}")


@coupons_cli.command("expire")
def expire_cmd():
    """Expire every issued coupon past its validity (the scheduler does this nightly)."""
    n = ops.expire()
    db.session.commit()
    click.echo(f"{n} coupons expired")
