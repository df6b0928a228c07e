"""`flask --app app sidebar audit`: who looked at which customer's profile, and when."""
from __future__ import annotations

import json

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from core.db import db
from core.timeutil import parse_date, to_local
from models import Customer, CustomerIdentity, Guide, ProfileView


@click.group("sidebar", help="The chat sidebar.")
def sidebar_cli():
    pass


@sidebar_cli.command("audit")
@click.option("--guide", "guide_userid", help="only views by this guide (WeCom userid)")
@click.option("--customer", "external_userid", help="only views of this customer (external_userid)")
@click.option("--since", help="from this local date (YYYY-MM-DD)")
@click.option("--until", help="up to and including this local date (YYYY-MM-DD)")
@click.option("--limit", default=100, show_default=True, help="newest first, at most this many")
@click.option("--json", "as_json", is_flag=True, help="one JSON object a line")
@with_appcontext
def audit(guide_userid, external_userid, since, until, limit, as_json):
    """Print the profile-view audit log, newest first."""
    from datetime import datetime, time, timedelta

    from core.timeutil import app_tz

    q = (select(ProfileView, Guide.userid, Guide.name, Customer.name)
         .join(Guide, Guide.id == ProfileView.guide_id).join(Customer, Customer.id == ProfileView.customer_id)
         .order_by(ProfileView.viewed_at.desc(), ProfileView.id.desc()).limit(max(1, limit)))
    if guide_userid:
        q = q.where(Guide.userid == guide_userid)
    if external_userid:
        q = q.where(ProfileView.customer_id.in_(select(CustomerIdentity.customer_id).where(
            CustomerIdentity.kind == "external_userid", CustomerIdentity.value == external_userid)))
    try:
        if since:
            q = q.where(ProfileView.viewed_at >= datetime.combine(parse_date(since), time(), tzinfo=app_tz()))
        if until:
            q = q.where(ProfileView.viewed_at < datetime.combine(parse_date(until) + timedelta(days=1), time(),
                                                                 tzinfo=app_tz()))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    rows = db.session.execute(q).all()
    ext = dict(db.session.execute(select(CustomerIdentity.customer_id, CustomerIdentity.value).where(
        CustomerIdentity.kind == "external_userid",
        CustomerIdentity.customer_id.in_({v.customer_id for v, *_ in rows}))).all()) if rows else {}
    for view, userid, gname, cname in rows:
        record = {"at": to_local(view.viewed_at).isoformat(timespec="seconds"), "guide": userid, "guide_name": gname,
                  "customer": ext.get(view.customer_id), "customer_name": cname, "entry": view.entry,
                  "ip": view.ip}
        if as_json:
            click.echo(json.dumps(record, ensure_ascii=False))
        else:
            click.echo(f"{record['at']}  {userid}({gname})  viewed  {record['customer'] or view.customer_id}"
                       f"({cname})  via {view.entry or '-'}")
    if not rows and not as_json:
        click.echo("no profile views match", err=True)
