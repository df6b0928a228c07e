"""`flask --app app customers find VALUE`, `customers erase CUSTOMER_ID --reason TEXT [--yes]` and
`customers audit` (the erasures done: who, when, why, which customer)."""
from __future__ import annotations

import getpass
import json

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from core.db import db
from customers import erasure
from customers.tasks import erase_and_commit, pending_cleanups
from models import AuditEntry, Customer, CustomerIdentity, IDENTITY_KINDS, Order

customers_cli = AppGroup("customers", help="Customer profiles: find one, erase one's personal data (PIPL).")


@customers_cli.command("find")
@click.option("--kind", type=click.Choice(IDENTITY_KINDS), default="mobile", show_default=True)
@click.argument("value")
def find_cmd(kind, value):
    """The ids of the customers holding identity VALUE, one a line (a mobile by default, typed or stored
    with spaces, dashes or +86): what `customers erase` takes. More than one (the same mobile stored two ways
    on two customers): each is listed, and a warning on stderr says to check which one the request is about."""
    ids = sorted({cid for cid, _ in db.session.execute(erasure.holders_query(value.strip(), kinds=[kind]))})
    if not ids:
        raise click.ClickException(f"no customer holds {kind} {value}")
    if len(ids) > 1:
        click.echo(f"warning: {len(ids)} customers hold {kind} {value}; check which one the request is about "
                   "before erasing", err=True)
    for customer_id in ids:
        click.echo(customer_id)


@customers_cli.command("erase")
@click.argument("customer_id", type=int)
@click.option("--reason", required=True, help="Why: the request's reference (工单号), kept in the audit log. "
              "Not the person's real name or contact details.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True)
def erase_cmd(customer_id, reason, yes, as_json):
    """Erase CUSTOMER_ID's personal information (name, ids, tags, remarks, notes, …); their orders and every
    figure stay. Asks for confirmation unless --yes; without a terminal to answer, refuses."""
    if not reason.strip():
        raise click.UsageError("--reason must not be empty")
    customer = db.session.get(Customer, customer_id)
    if customer is None:
        raise click.ClickException(f"customer {customer_id} not found")
    if not yes and customer.erased_at is None:
        identities = db.session.scalar(select(func.count()).select_from(CustomerIdentity)
                                       .where(CustomerIdentity.customer_id == customer_id))
        orders = db.session.scalar(select(func.count()).select_from(Order).where(Order.customer_id == customer_id))
        question = (f"Erase the personal data of customer {customer_id} ({customer.name or 'no name'}, "
                    f"{identities} identities, {orders} orders kept)? This cannot be undone")
        try:
            confirmed = click.confirm(question, default=False)
        except click.Abort:  # no stdin to answer from
            click.echo()
            confirmed = False
        if not confirmed:
            raise click.ClickException("not erased: no confirmation (answer y, or pass --yes)")
    try:
        result = erase_and_commit(customer_id, actor=f"cli:{_os_user()}", reason=reason)
    except erasure.ErasureBusy:
        raise click.ClickException("not erased: a WeCom callback or a bulk import is writing about this customer; "
                                   "run the command again") from None
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
    elif result["already_erased"]:
        click.echo(f"customer {customer_id} was already erased at {result['erased_at']}: nothing to do")
    else:
        rows = ", ".join(f"{k} {v}" for k, v in result["rows"].items() if v)
        click.echo(f"customer {customer_id} erased ({rows or 'no other rows'}); orders and figures kept")


@customers_cli.command("audit")
@click.option("--customer", "customer_id", type=int, help="Only this customer id.")
@click.option("--limit", default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
def audit_cmd(customer_id, limit, as_json):
    """The audit log of erasures, newest first: when, who, which customer, why. Then the Redis clean-ups
    still owed (with --json: one object on stderr), which `flask --app app worker --burst` drains."""
    q = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    if customer_id is not None:
        q = q.where(AuditEntry.customer_id == customer_id)
    for entry in db.session.scalars(q):
        row = {"at": entry.at.isoformat(), "action": entry.action, "actor": entry.actor,
               "customer_id": entry.customer_id, "reason": entry.reason, "rows": entry.details.get("rows", {})}
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
        else:
            click.echo(f"{row['at'][:19]}  {row['action']}  customer {row['customer_id']}  by {row['actor']}: "
                       f"{row['reason']}")
    pending = pending_cleanups()
    refilled = erasure.shells_holding_data(db.session)
    if as_json:
        if pending:
            click.echo(json.dumps({"pending_cleanups": pending}, ensure_ascii=False), err=True)
        if refilled:
            click.echo(json.dumps({"erased_holding_data": refilled}), err=True)
        return
    if refilled:
        click.echo(f"\n{len(refilled)} erased customer(s) hold personal data again (written while being erased): "
                   f"{', '.join(map(str, refilled))}; erase each again: flask --app app customers erase ID")
    if pending:
        oldest = pending[0]["age_seconds"] or 0
        click.echo(f"\n{len(pending)} Redis clean-up(s) still owed, the oldest erasure {_age(oldest)} ago: their "
                   f"rows keep the erased name and ids until done (drain: flask --app app worker --burst)")
        for p in pending:
            click.echo(f"  customer {p['customer_id']}  erased {(p['erased_at'] or '?')[:19]}  "
                       f"attempts {p['attempts']}  last error: {p['last_error'] or '-'}")


def _age(seconds: int) -> str:
    if seconds >= 86400:
        return f"{seconds // 86400} d"
    if seconds >= 3600:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min" if seconds >= 60 else f"{seconds} s"


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in a bare container
        return "unknown"
