"""`flask --app app demo seed [--if-empty]`: load the demo chain through the bulk import (idempotent)."""
from __future__ import annotations

import sys
from pathlib import Path

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from core.db import db
from demo.data import TAG_GROUPS, build_records, demo_corp_seed, demo_tag_id
from imports.files import ImportRejected, read_records
from imports.operations import import_records
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
    seed_commission()  # before the orders, so they are priced as they are imported
    records = build_records()
    counts = import_records(enumerate(records, 1), progress=sys.stderr.isatty())
    seed_tag_ids()
    counts.update(seed_library())
    counts.update(seed_coupons())
    counts.update(seed_tracking())
    return counts


def seed_tag_ids() -> None:
    """Give the demo's tags the corp tag ids the local WeCom uses for them (a bulk import carries none)."""
    from models import Tag, TagGroup

    for group in db.session.scalars(select(TagGroup).where(TagGroup.name.in_(TAG_GROUPS))):
        group.wecom_id = group.wecom_id or demo_tag_id(group.name)
        for tag in db.session.scalars(select(Tag).where(Tag.group_id == group.id)):
            if tag.name in TAG_GROUPS[group.name]:
                tag.wecom_id = tag.wecom_id or demo_tag_id(group.name, tag.name)
    db.session.commit()


def seed_commission() -> None:
    from orders.commission import GUARDED, import_rates

    import_rates(read_records(ROOT / "demo" / "commission.csv", "commission", what="a rates file",
                              unguard=GUARDED))
    db.session.commit()


def seed_coupons(today=None) -> dict[str, int]:
    """The demo coupon templates, and coupons already given to a few customers by their guides: some
    expiring in the next days (red dots), some used in the customer's last order. Fixed codes, so a second
    seed adds nothing."""
    from datetime import datetime, time, timedelta

    from coupons.operations import _audit, import_templates
    from core.timeutil import app_tz, local_today
    from models import Coupon, CouponTemplate, Customer, Order
    from reports.leaderboard import invalidate

    import_templates(read_records(ROOT / "demo" / "coupons.jsonl", "coupon", what="a coupon file"))
    today = today or local_today()
    tz = app_tz()
    templates = {t.external_id: t for t in db.session.scalars(select(CouponTemplate))}
    bound = db.session.execute(select(Customer.id, Customer.binding_guide_id)
                               .where(Customer.binding_guide_id.is_not(None)).order_by(Customer.id).limit(16)).all()
    plan = ["DEMO-NF-199-30", "DEMO-ND-95", "DEMO-NEW-GIFT", "DEMO-BDAY-50"]
    added = 0
    for n, (customer_id, guide_id) in enumerate(bound):
        code = f"DEMOCPN{n + 1:05d}"
        if db.session.scalar(select(Coupon.id).where(Coupon.code == code)) is not None:
            continue
        t = templates[plan[n % len(plan)]]
        # Issued 1–12 days ago; with 7–30 days of validity, several run out in the next days.
        issued_day = today - timedelta(days=t.valid_days - 1 - n % 3) if n < 8 else today - timedelta(days=1 + n % 5)
        issued_at = datetime.combine(issued_day, time(11, n % 60), tzinfo=tz)
        expires = datetime.combine(issued_day + timedelta(days=t.valid_days), time.min, tzinfo=tz)
        coupon = Coupon(code=code, template_id=t.id, customer_id=customer_id, guide_id=guide_id,
                        status="issued", issued_at=issued_at, expires_at=expires)
        db.session.add(coupon)
        t.issued_count += 1
        db.session.flush()
        _audit(t, coupon, "issued", to_status="issued", guide_id=guide_id, at=issued_at,
               details={"customer_id": customer_id, "demo": True})
        last = db.session.scalar(select(Order).where(Order.customer_id == customer_id, Order.paid_at > issued_at)
                                 .order_by(Order.paid_at.desc()).limit(1))
        if last is not None and last.paid_at < expires:
            coupon.status, coupon.redeemed_at, coupon.order_id = "redeemed", last.paid_at, last.id
            last.coupon_codes = [code]
            _audit(t, coupon, "redeemed", from_status="issued", to_status="redeemed", guide_id=guide_id,
                   order_id=last.id, at=last.paid_at, details={"order_no": last.order_no, "demo": True})
        added += 1
    db.session.commit()
    invalidate()
    return {"coupon": added} if added else {}


def seed_tracking(today=None) -> dict[str, int]:
    """Tracked links with their opens, browsing (product_view events) and script sends from
    `demo.data.tracking_plan`, so `report funnel`, `knowledge stats` and the browsing recommendation show
    something in the demo. Fixed tokens: a second seed adds nothing."""
    from core.timeutil import parse_datetime
    from customers.operations import find_customer, record_event
    from demo.data import tracking_plan
    from models import Content, Guide, LinkOpen, Script, ScriptSend, TrackedLink

    content = {c.external_id: c for c in db.session.scalars(
        select(Content).where(Content.url.is_not(None)).order_by(Content.external_id))}
    scripts = {s.external_id: s for s in db.session.scalars(select(Script).order_by(Script.external_id))}
    if not content or not scripts:
        return {}
    plan = tracking_plan(list(content), list(scripts), today)
    if db.session.scalar(select(TrackedLink.id).where(TrackedLink.token == plan["links"][0]["token"])):
        return {}
    guides = {g.userid: g for g in db.session.scalars(select(Guide))}
    customers = {}

    def customer(ext):
        if ext not in customers:
            customers[ext] = find_customer("external_userid", ext)
        return customers[ext]

    for item in plan["links"]:
        c, g, piece = customer(item["external_userid"]), guides[item["userid"]], content[item["content"]]
        link = TrackedLink(token=item["token"], guide_id=g.id, customer_id=c.id, content_id=piece.id,
                           target_url=piece.url, created_at=parse_datetime(item["sent_at"]))
        db.session.add(link)
        db.session.flush()
        db.session.add_all([LinkOpen(link_id=link.id, customer_id=c.id, guide_id=g.id, content_id=piece.id,
                                     opened_at=parse_datetime(o), user_agent="demo") for o in item["opens"]])
    for v in plan["product_views"]:
        record_event(customer(v["external_userid"]), "product_view", occurred_at=parse_datetime(v["at"]),
                     channel="miniprogram", payload={"sku": v["sku"]}, ref=v["ref"])
    for s in plan["script_sends"]:
        g = guides[s["userid"]]
        db.session.add(ScriptSend(script_id=scripts[s["script"]].id, guide_id=g.id, store_id=g.store_id,
                                  customer_id=customer(s["external_userid"]).id, source="suggested",
                                  terms=[], sent_at=parse_datetime(s["sent_at"])))
    db.session.commit()
    return {"tracked_link": len(plan["links"]), "product_view": len(plan["product_views"]),
            "script_send": len(plan["script_sends"])}


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
    for rtype in (*TYPE_ORDER, "script", "content", "synonym", "coupon", "tracked_link", "product_view",
                  "script_send"):
        if rtype in counts:
            click.echo(f"  {rtype:<13}{counts[rtype]:>6}")
