"""Orders from the POS and e-commerce systems, one at a time through `POST /api/ingest/orders`.

An order is never dropped: the customer is matched through One-ID (external_userid, unionid, mobile,
member_no); an order whose keys match nobody is stored with the flag `unmatched_customer` and matched later
(`match_pending()`, hourly); a SKU the product catalogue does not know is stored and flagged `unknown_sku`;
coupon codes that cannot be redeemed are flagged `bad_coupon`. The order number makes it idempotent: the
second delivery of an order gets the first answer back and changes nothing.

Payload (JSON object):
  order_no, channel (pos | ecommerce | miniprogram | …), store? (store code), paid_at (ISO 8601),
  amount (what was paid), customer? {external_userid?, unionid?, mobile?, member_no?},
  items [{sku, qty, price, name?, category?}], coupons? ["CODE", …]
"""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select, tuple_, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError

from core.db import db
from core.timeutil import utcnow
from customers.operations import record_event
from imports.records import RecordError, integer, money, text, when
from models import IDENTITY_KINDS, Customer, CustomerIdentity, Guide, Order, OrderLine, Product, Store
from orders.attribution import attribute

MAX_ITEMS = 500
MAX_COUPONS = 20
MATCH_PER_RUN = 10000  # unmatched orders one run of the hourly job tries
MATCH_BATCH = 500  # orders whose identities are looked up in one query


class OrderRejected(ValueError):
    """The payload is not an order; the message names the field."""


def parse_order(payload) -> dict:
    if not isinstance(payload, dict):
        raise OrderRejected("the body must be a JSON object (one order)")
    try:
        customer = payload.get("customer") or {}
        if not isinstance(customer, dict):
            raise RecordError("customer must be an object of identity keys")
        keys = {}
        for kind in IDENTITY_KINDS:
            value = text(customer, kind, 128, required=False)
            if value:
                keys[kind] = value
        unknown = sorted(set(customer) - set(IDENTITY_KINDS))
        if unknown:
            raise RecordError(f"customer.{unknown[0]} is not an identity key ({', '.join(IDENTITY_KINDS)})")
        items = payload.get("items")
        if not isinstance(items, list) or not items:
            raise RecordError("items must be a non-empty list")
        if len(items) > MAX_ITEMS:
            raise RecordError(f"items has more than {MAX_ITEMS} lines")
        lines = []
        for i, item in enumerate(items, 1):
            if not isinstance(item, dict):
                raise RecordError(f"items[{i}] must be an object")
            try:
                lines.append({"sku": text(item, "sku", 64), "name": text(item, "name", 200, required=False),
                              "category": text(item, "category", 64, required=False),
                              "qty": integer(item, "qty", required=True, lo=1, hi=100000),
                              "price": money(item, "price")})
            except RecordError as exc:
                raise RecordError(f"items[{i}].{exc}") from None
        codes = payload.get("coupons") or []
        if not isinstance(codes, list) or len(codes) > MAX_COUPONS or \
                not all(isinstance(c, str) and 0 < len(c.strip()) <= 32 for c in codes):
            raise RecordError(f"coupons must be a list of at most {MAX_COUPONS} coupon codes")
        return {"order_no": text(payload, "order_no", 64), "channel": text(payload, "channel", 20),
                "store": text(payload, "store", 40, required=False), "paid_at": when(payload, "paid_at"),
                "amount": money(payload, "amount"), "keys": keys, "items": lines,
                "coupons": list(dict.fromkeys(c.strip().upper() for c in codes))}
    except RecordError as exc:
        raise OrderRejected(str(exc)) from None


def match_customer(keys: dict[str, str]) -> tuple[int | None, str | None]:
    """(customer id, None) when the keys name exactly one customer; (None, flag) otherwise."""
    if not keys:
        return None, "unmatched_customer"
    rows = db.session.execute(select(CustomerIdentity.kind, CustomerIdentity.value, CustomerIdentity.customer_id)
                              .where(CustomerIdentity.kind.in_(list(keys)),
                                     CustomerIdentity.value.in_(list(keys.values())))).all()
    found = {cid for kind, value, cid in rows if keys.get(kind) == value}
    if len(found) == 1:
        return found.pop(), None
    return None, "ambiguous_customer" if found else "unmatched_customer"


def find_order(order_no: str) -> Order | None:
    return db.session.scalar(select(Order).where(Order.order_no == order_no))


def ingest(payload) -> tuple[Order, bool]:
    """Store one order (see the module doc). Returns (order, created); a known order_no returns the stored
    order untouched. Raises OrderRejected for a payload that is not an order. Flushes; the caller commits."""
    rec = parse_order(payload)
    existing = find_order(rec["order_no"])
    if existing is not None:
        return existing, False
    store_id = None
    flags: list = []
    if rec["store"]:
        store_id = db.session.scalar(select(Store.id).where(Store.code == rec["store"]))
        if store_id is None:
            flags.append({"flag": "unknown_store", "store": rec["store"]})
    customer_id, problem = match_customer(rec["keys"])
    if problem:
        flags.append({"flag": problem})
    skus = {l["sku"] for l in rec["items"]}
    products = {p.sku: p for p in db.session.scalars(select(Product).where(Product.sku.in_(skus)))}
    unknown = sorted(skus - set(products))
    if unknown:
        flags.append({"flag": "unknown_sku", "skus": unknown})
    order = Order(order_no=rec["order_no"], channel=rec["channel"], store_id=store_id, customer_id=customer_id,
                  paid_at=rec["paid_at"], amount=rec["amount"], customer_keys=rec["keys"], flags=flags,
                  coupon_codes=rec["coupons"], commission=Decimal(0))
    for n, item in enumerate(rec["items"], 1):
        p = products.get(item["sku"])
        order.lines.append(OrderLine(
            line_no=n, sku=item["sku"], name=item["name"] or (p.name if p else item["sku"]),
            category=item["category"] or (p.category if p else "未知"), qty=item["qty"], price=item["price"]))
    try:
        with db.session.begin_nested():
            db.session.add(order)
            db.session.flush()
    except IntegrityError:  # the same order_no, delivered twice at once: the first one stands
        existing = find_order(rec["order_no"])
        if existing is None:
            raise
        return existing, False
    if rec["coupons"]:
        from coupons.operations import redeem_for_order

        results = redeem_for_order(order, rec["coupons"], [(l.category, l.qty, l.price) for l in order.lines])
        bad = [r for r in results if r["result"] != "redeemed"]
        if bad:
            order.flags = order.flags + [{"flag": "bad_coupon", "coupons": bad}]
    else:
        results = []
    guide = _settle(order, n_lines=len(rec["items"]))
    order.receipt = receipt(order, coupons=results, guide=guide)
    db.session.flush()
    return order, True


def _settle(order: Order, n_lines: int | None = None) -> Guide | None:
    """Credit the order (attribution + commission), then the customer's figures, trajectory and rankings."""
    from reports.leaderboard import bump

    if n_lines is None:
        n_lines = len(order.lines)
    attribute("o.id = :id", {"id": order.id})
    db.session.refresh(order, ["guide_id", "attribution", "commission"])
    if order.customer_id is None:
        return None
    customer = db.session.get(Customer, order.customer_id)
    n, total, last = db.session.execute(select(func.count(), func.coalesce(func.sum(Order.amount), 0),
                                               func.max(Order.paid_at)).where(
        Order.customer_id == customer.id)).one()
    customer.order_count, customer.total_spend, customer.last_order_at = n, total, last
    guide = db.session.get(Guide, order.guide_id) if order.guide_id else None
    record_event(customer, "order", occurred_at=order.paid_at, channel=order.channel, guide=guide,
                 payload={"amount": float(order.amount), "items": n_lines}, ref=order.order_no)
    bump(guide, order.paid_at, orders=1, gmv=order.amount, commission=order.commission)
    return guide


def receipt(order: Order, coupons: list[dict] | None = None, guide: Guide | None = None) -> dict:
    if guide is None and order.guide_id:
        guide = db.session.get(Guide, order.guide_id)
    return {"order_no": order.order_no, "status": "stored", "customer_matched": order.customer_id is not None,
            "guide": guide.userid if guide else None, "attribution": order.attribution,
            "amount": str(order.amount), "commission": str(order.commission), "flags": order.flags,
            "coupons": coupons if coupons is not None else (order.receipt or {}).get("coupons", [])}


def match_pending(limit: int | None = None, *, after: int = 0) -> dict:
    """Try up to `limit` (MATCH_PER_RUN) stored orders whose customer was unknown, those with an id above `after`
    oldest first, against the identities known now (the hourly job). One query for the orders and one for
    their identities per MATCH_BATCH. Returns {"pending": orders tried, "matched", "next_after"}: the last id
    tried, or 0 once the run reached the newest unmatched order, so that the next run starts over from the
    oldest — orders that never match cannot keep newer ones from being tried. Flushes."""
    limit = MATCH_PER_RUN if limit is None else limit
    tried = matched = 0
    cursor = after
    while tried < limit:
        size = min(MATCH_BATCH, limit - tried)
        batch = db.session.scalars(select(Order).where(Order.customer_id.is_(None), Order.id > cursor)
                                   .order_by(Order.id).limit(size)).all()
        tried += len(batch)
        matched += _match(batch)
        if len(batch) < size:
            return {"pending": tried, "matched": matched, "next_after": 0}
        cursor = batch[-1].id
    return {"pending": tried, "matched": matched, "next_after": cursor}


def match_for_identity(kind: str, value: str) -> int:
    """A customer just gained this identity: match the unmatched orders that carry it, at once. One query on
    the partial GIN index of unmatched orders' keys (PostgreSQL). Flushes."""
    carries = (type_coerce(Order.customer_keys, JSONB).contains({kind: value}) if db.is_postgres  # the GIN index
               else Order.customer_keys[kind].as_string() == value)
    pending = db.session.scalars(select(Order).where(Order.customer_id.is_(None), carries)
                                 .order_by(Order.id)).all()
    return _match(pending) if pending else 0


def _match(pending: list[Order]) -> int:
    """Match each order whose keys name exactly one customer (the rule of `match_customer`), looking up the
    identities of all of them in one query."""
    keyed = [order for order in pending if order.customer_keys]
    pairs = {(kind, value) for order in keyed for kind, value in order.customer_keys.items()}
    owners = {(kind, value): cid for kind, value, cid in db.session.execute(
        select(CustomerIdentity.kind, CustomerIdentity.value, CustomerIdentity.customer_id)
        .where(tuple_(CustomerIdentity.kind, CustomerIdentity.value).in_(pairs)))} if pairs else {}
    matched = 0
    for order in keyed:
        found = {owners[key] for key in order.customer_keys.items() if key in owners}
        if len(found) != 1:
            continue
        order.customer_id = found.pop()
        order.flags = [f for f in order.flags if f.get("flag") not in ("unmatched_customer", "ambiguous_customer")] \
            + [{"flag": "matched_later", "at": utcnow().isoformat()}]
        db.session.flush()
        _settle(order)
        matched += 1
    return matched


def month_figures(guide: Guide, D) -> dict:
    """The guide's month to date (orders credited to them, GMV, commission), for the sidebar."""
    from reports.leaderboard import span

    s = span("month", D)
    n, gmv, commission = db.session.execute(
        select(func.count(), func.coalesce(func.sum(Order.amount), 0), func.coalesce(func.sum(Order.commission), 0))
        .where(Order.guide_id == guide.id, Order.paid_at >= s.start_utc, Order.paid_at < s.end_utc)).one()
    return {"month": s.key, "orders": n, "gmv": str(Decimal(gmv).quantize(Decimal("0.01"))),
            "commission": str(Decimal(commission).quantize(Decimal("0.01")))}
