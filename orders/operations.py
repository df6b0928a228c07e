"""Orders from the POS and e-commerce systems through `POST /api/ingest/orders`, one or a batch per request.

An order is never dropped: the customer is matched through One-ID (external_userid, unionid, mobile,
member_no); an order whose keys match nobody is stored with the flag `unmatched_customer` and matched later
(`match_pending()`, hourly); a SKU the product catalogue does not know is stored and flagged `unknown_sku`;
coupon codes that cannot be redeemed are flagged `bad_coupon`. The order number makes it idempotent: the
second delivery of an order gets the first answer back and changes nothing.

Payload (a JSON object, or an array of up to MAX_BATCH of them):
  order_no, channel (pos | ecommerce | miniprogram | …), store? (store code), paid_at (ISO 8601),
  amount (what was paid), customer? {external_userid?, unionid?, mobile?, member_no?},
  items [{sku, qty, price, name?, category?}], coupons? ["CODE", …]
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import case, func, literal, select, tuple_, type_coerce, update
from sqlalchemy import text as sql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from core.db import db
from core.timeutil import utcnow
from imports.records import RecordError, identity_value, integer, money, text, when
from models import IDENTITY_KINDS, Customer, CustomerIdentity, Event, Guide, Order, OrderLine, Product, Store
from orders.attribution import attribute

MAX_ITEMS = 500
MAX_COUPONS = 20
MAX_BATCH = 1000  # orders in one request
LINES_PER_INSERT = 2000  # order lines per INSERT statement (7 parameters each, well under PostgreSQL's 65,535)
EVENTS_PER_INSERT = 1000  # an hourly run may settle 10,000 matches: PostgreSQL takes 65,535 parameters
MATCH_PER_RUN = 10000  # unmatched orders one run of the hourly job tries
MATCH_BATCH = 500  # orders whose identities are looked up in one query


class OrderRejected(ValueError):
    """The payload is not an order; the message names the field."""


def parse_order(payload) -> dict:
    if not isinstance(payload, dict):
        raise OrderRejected("an order must be a JSON object")
    try:
        customer = payload.get("customer") or {}
        if not isinstance(customer, dict):
            raise RecordError("customer must be an object of identity keys")
        keys = {}
        for kind in IDENTITY_KINDS:
            value = text(customer, kind, 128, required=False)
            if value:
                keys[kind] = identity_value(kind, value)
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


def parse_batch(payload) -> list[dict]:
    """The orders of a request body: a JSON object is one order, a JSON array is a batch of them. A bad record
    rejects the whole batch, and the message names it: `orders[3] (POS-3): items[1].qty is missing`."""
    if isinstance(payload, dict):
        return [parse_order(payload)]
    if not isinstance(payload, list):
        raise OrderRejected("the body must be a JSON object (one order) or an array of orders")
    if not payload:
        raise OrderRejected("the array of orders is empty")
    if len(payload) > MAX_BATCH:
        raise OrderRejected(f"the array has more than {MAX_BATCH} orders")
    records = []
    for i, item in enumerate(payload, 1):
        try:
            records.append(parse_order(item))
        except OrderRejected as exc:
            no = item.get("order_no") if isinstance(item, dict) else None
            named = f" ({no})" if isinstance(no, str) and no.strip() else ""
            raise OrderRejected(f"orders[{i}]{named}: {exc}") from None
    return records


def match_customers(key_sets: list[dict[str, str]]) -> list[tuple[int | None, str | None]]:
    """For each order's keys: (customer id, None) when they name exactly one customer, else (None, flag:
    unmatched_customer or ambiguous_customer). One query for the identities of all of them."""
    pairs = {(kind, value) for keys in key_sets for kind, value in keys.items()}
    owners: dict[tuple[str, str], set[int]] = {}
    if pairs:
        for kind, value, cid in db.session.execute(
                select(CustomerIdentity.kind, CustomerIdentity.value, CustomerIdentity.customer_id)
                .where(tuple_(CustomerIdentity.kind, CustomerIdentity.value).in_(pairs))):
            owners.setdefault((kind, value), set()).add(cid)
    out = []
    for keys in key_sets:
        if not keys:
            out.append((None, "unmatched_customer"))
            continue
        found = set().union(*(owners.get(key, set()) for key in keys.items()))
        if len(found) == 1:
            out.append((found.pop(), None))
        else:
            out.append((None, "ambiguous_customer" if found else "unmatched_customer"))
    return out


@dataclass
class Placed:
    """What settling needs of an order just stored or just matched, and what settling decides."""
    id: int
    order_no: str
    channel: str
    paid_at: datetime
    amount: Decimal
    customer_id: int | None
    n_lines: int
    guide_id: int | None = None
    attribution: str | None = None
    commission: Decimal = Decimal(0)


def ingest_batch(records: list[dict]) -> list[tuple[dict, bool]]:
    """Store parsed orders (`parse_batch`) in a number of statements that does not grow with the orders: one
    lookup each for known order numbers, stores, identities and products, one multi-row INSERT … ON CONFLICT
    DO NOTHING for the orders (and one per 2,000 lines for their lines), then `_settle` in bulk and one UPDATE
    for the receipts. Coupon codes are redeemed with one locking read for all of them. Returns
    (receipt, created) per record, in order; a known order_no (also one repeated inside the batch) gets the
    first receipt back. Flushes; the caller commits."""
    nos = list(dict.fromkeys(r["order_no"] for r in records))
    receipts: dict[str, dict] = {o.order_no: o.receipt or receipt(o) for o in
                                 db.session.scalars(select(Order).where(Order.order_no.in_(nos)))}
    fresh = {}
    for rec in records:
        if rec["order_no"] not in receipts:
            fresh.setdefault(rec["order_no"], rec)
    created: set[str] = set()
    if fresh:
        created = _store(list(fresh.values()), receipts)
        raced = [no for no in fresh if no not in created]
        if raced:  # the same order_no, delivered at once by another request: the first one stands
            receipts.update((o.order_no, o.receipt or receipt(o)) for o in
                            db.session.scalars(select(Order).where(Order.order_no.in_(raced))))
    out, answered = [], set()
    for rec in records:
        no = rec["order_no"]
        first = no in created and no not in answered
        answered.add(no)
        out.append((receipts[no], first))
    return out


def _insert(model):
    """INSERT for the session's dialect (both have ON CONFLICT … DO NOTHING)."""
    return (pg_insert if db.is_postgres else sqlite_insert)(model)


def _store(records: list[dict], receipts: dict[str, dict]) -> set[str]:
    """Insert the new orders and settle those this transaction inserted, in the batch's order (a coupon code
    two of them carry goes to the first). Fills `receipts`; returns the order numbers inserted."""
    codes = {r["store"] for r in records if r["store"]}
    stores = dict(db.session.execute(select(Store.code, Store.id).where(Store.code.in_(codes))).all()) if codes else {}
    matches = match_customers([r["keys"] for r in records])
    _lock_customers({customer_id for customer_id, _ in matches if customer_id is not None})
    skus = {l["sku"] for r in records for l in r["items"]}
    products = {p.sku: p for p in db.session.scalars(select(Product).where(Product.sku.in_(skus)))}
    now = utcnow()
    rows = []
    for rec, (customer_id, problem) in zip(records, matches):
        flags: list = []
        if rec["store"] and rec["store"] not in stores:
            flags.append({"flag": "unknown_store", "store": rec["store"]})
        if problem:
            flags.append({"flag": problem})
        unknown = sorted({l["sku"] for l in rec["items"]} - set(products))
        if unknown:
            flags.append({"flag": "unknown_sku", "skus": unknown})
        rows.append({"order_no": rec["order_no"], "channel": rec["channel"], "store_id": stores.get(rec["store"]),
                     "customer_id": customer_id, "paid_at": rec["paid_at"], "amount": rec["amount"],
                     "customer_keys": rec["keys"], "flags": flags, "coupon_codes": rec["coupons"],
                     "commission": Decimal(0), "created_at": now})
    db.session.flush()
    ids = dict((no, id_) for id_, no in db.session.execute(
        # Sorted by order_no, so two batches take the unique key's locks in the same order.
        _insert(Order).values(sorted(rows, key=lambda r: r["order_no"])).on_conflict_do_nothing(
            index_elements=["order_no"])
        .returning(Order.id, Order.order_no)))
    if not ids:
        return set()
    placed, lines, claims, flags = [], [], [], {}
    for rec, row in zip(records, rows):
        order_id = ids.get(rec["order_no"])
        if order_id is None:
            continue
        mine = []
        for n, item in enumerate(rec["items"], 1):
            p = products.get(item["sku"])
            mine.append({"order_id": order_id, "line_no": n, "sku": item["sku"],
                         "name": item["name"] or (p.name if p else item["sku"]),
                         "category": item["category"] or (p.category if p else "未知"),
                         "qty": item["qty"], "price": item["price"]})
        lines += mine
        flags[order_id] = row["flags"]
        order = Placed(order_id, rec["order_no"], rec["channel"], rec["paid_at"], rec["amount"],
                       row["customer_id"], len(mine))
        placed.append(order)
        if rec["coupons"]:
            claims.append((order, rec["coupons"], [(l["category"], l["qty"], l["price"]) for l in mine]))
    for i in range(0, len(lines), LINES_PER_INSERT):
        db.session.execute(OrderLine.__table__.insert().values(lines[i:i + LINES_PER_INSERT]))
    coupons: dict[int, list[dict]] = {}
    if claims:
        from coupons.operations import redeem_for_orders

        for (order, _, _), results in zip(claims, redeem_for_orders(claims)):
            coupons[order.id] = results
            bad = [r for r in results if r["result"] != "redeemed"]
            if bad:
                flags[order.id] = flags[order.id] + [{"flag": "bad_coupon", "coupons": bad}]
    guides = _settle(placed)
    answers = {}
    for order in placed:
        guide = guides.get(order.guide_id)
        answers[order.id] = receipts[order.order_no] = _receipt(order, guide, flags[order.id],
                                                                coupons.get(order.id, []))
    json_type = Order.__table__.c.receipt.type
    values = {"receipt": case({i: literal(a, json_type) for i, a in answers.items()}, value=Order.id)}
    if claims:
        values["flags"] = case({i: literal(f, Order.__table__.c.flags.type) for i, f in flags.items()},
                               value=Order.id)
    db.session.execute(update(Order).where(Order.id.in_(list(answers))).values(**values)
                       .execution_options(synchronize_session=False))
    return set(ids)


def _lock_customers(customer_ids: set[int]) -> set[int]:
    """Lock the customers a batch is about, in id order, before anything else: customers (by id) before orders,
    as the bulk import, the hourly match (`_claim`) and the erasure lock them. Two batches sharing customers
    would otherwise deadlock in `_settle`'s UPDATE (it visits rows in no set order), and a batch that inserted
    its orders first could wait for a customer an import holds while the import waits for one of those orders
    (the same order number in its file). The figures are then summed after the other writer committed.
    FOR NO KEY UPDATE, as the UPDATE itself takes: FOR UPDATE would wait on the KEY SHARE locks of
    transactions inserting rows that point at these customers (a guide's tag or touch). An erasure in flight
    is waited for; `_unmatch_erased` then finds it committed. Returns those of them that are erased, read by
    the locking statement itself (on SQLite, which locks nothing, as they are now)."""
    if not customer_ids:
        return set()
    rows = db.session.execute(select(Customer.id, Customer.erased_at.is_not(None))
                              .where(Customer.id.in_(sorted(customer_ids))).order_by(Customer.id)
                              .with_for_update(key_share=True))
    return {customer_id for customer_id, erased in rows if erased}


def _settle(orders: list[Placed]) -> dict[int, Guide]:
    """Credit the orders (attribution + commission), then their customers' figures, trajectories and the
    rankings: a fixed number of statements however many orders. Fills each Placed's guide, attribution and
    commission; returns the credited guides by id."""
    from reports.leaderboard import bump

    if not orders:
        return {}
    _unmatch_erased(orders)
    ids = ", ".join(str(int(o.id)) for o in orders)  # database ids, not input
    attribute(f"o.id IN ({ids})")
    credited = {id_: (guide_id, how, commission) for id_, guide_id, how, commission in db.session.execute(
        select(Order.id, Order.guide_id, Order.attribution, Order.commission)
        .where(Order.id.in_([o.id for o in orders])))}
    for o in orders:
        o.guide_id, o.attribution, o.commission = credited[o.id]
    matched = [o for o in orders if o.customer_id is not None]
    guide_ids = {o.guide_id for o in matched if o.guide_id}
    guides = {g.id: g for g in db.session.scalars(select(Guide).where(Guide.id.in_(guide_ids)))} if guide_ids else {}
    if not matched:
        return guides
    # The customers are locked already, in id order, by the caller (`_store`, `_claim`): see `_lock_customers`.
    customer_ids = ", ".join(str(int(i)) for i in sorted({o.customer_id for o in matched}))
    db.session.execute(sql(f"""
        UPDATE customers SET order_count = x.n, total_spend = x.total, last_order_at = x.last
        FROM (SELECT customer_id, count(*) AS n, COALESCE(SUM(amount), 0) AS total, MAX(paid_at) AS last
              FROM orders WHERE customer_id IN ({customer_ids}) GROUP BY customer_id) x
        WHERE customers.id = x.customer_id"""))
    events = [{"customer_id": o.customer_id, "type": "order", "occurred_at": o.paid_at, "channel": o.channel,
               "guide_id": o.guide_id, "payload": {"amount": float(o.amount), "items": o.n_lines}, "ref": o.order_no}
              for o in matched]
    for start in range(0, len(events), EVENTS_PER_INSERT):  # 7 parameters a row: under the drivers' limits
        db.session.execute(_insert(Event).values(events[start:start + EVENTS_PER_INSERT])
                           .on_conflict_do_nothing(index_elements=["type", "ref"]))
    for o in matched:
        bump(guides.get(o.guide_id), o.paid_at, orders=1, gmv=o.amount, commission=o.commission)
    return guides


def _unmatch_erased(orders: list[Placed]) -> None:
    """Orders matched to a customer whose erasure committed meanwhile (the order's INSERT waited for it: its
    foreign key's lock against the erasure's) stay unmatched, without the keys that named the person, as the
    erasure leaves their unmatched orders. An erasure starting later waits for this transaction instead, and
    finds these orders on the customer."""
    customer_ids = {o.customer_id for o in orders if o.customer_id is not None}
    erased = set(db.session.scalars(select(Customer.id).where(Customer.id.in_(customer_ids),
                                                              Customer.erased_at.is_not(None)))) if customer_ids else ()
    lost = [o for o in orders if o.customer_id in erased]
    if not lost:
        return
    db.session.execute(update(Order).where(Order.id.in_([o.id for o in lost]))
                       .values(customer_id=None, customer_keys={}).execution_options(synchronize_session=False))
    for o in lost:
        o.customer_id = None


def receipt(order: Order, coupons: list[dict] | None = None) -> dict:
    """A stored order's answer (a duplicate's is its first answer; `_store` builds a new batch's in bulk)."""
    guide = db.session.get(Guide, order.guide_id) if order.guide_id else None
    return _receipt(order, guide, order.flags,
                    coupons if coupons is not None else (order.receipt or {}).get("coupons", []))


def _receipt(order, guide: Guide | None, flags: list, coupons: list[dict]) -> dict:
    """The answer for `order` (an Order, or a batch's Placed: order_no, customer_id, attribution, amount,
    commission), settled to `guide`."""
    return {"order_no": order.order_no, "status": "stored", "customer_matched": order.customer_id is not None,
            "guide": guide.userid if guide else None, "attribution": order.attribution,
            "amount": str(order.amount), "commission": str(order.commission), "flags": flags, "coupons": coupons}


def match_pending(limit: int | None = None, *, after: int = 0) -> dict:
    """Try up to `limit` (MATCH_PER_RUN) stored orders whose customer was unknown, those with an id above `after`
    oldest first, against the identities known now (the hourly job). One query for the orders and one for
    their identities per MATCH_BATCH; the matches of the whole run are claimed and settled together at the
    end (see `_claim`). Returns {"pending": orders tried, "matched", "next_after"}: the last id tried, or 0
    once the run reached the newest unmatched order, so that the next run starts over from the oldest —
    orders that never match cannot keep newer ones from being tried. Flushes."""
    limit = MATCH_PER_RUN if limit is None else limit
    tried = 0
    found: dict[int, int] = {}  # order id -> the customer its keys name
    cursor, next_after = after, 0
    while tried < limit:
        size = min(MATCH_BATCH, limit - tried)
        # One row more than is tried tells whether any remain, so a run that reached the newest order
        # says so (next_after 0) instead of leaving the next run an empty pass.
        batch = db.session.execute(select(Order.id, Order.customer_keys)
                                   .where(Order.customer_id.is_(None), Order.id > cursor)
                                   .order_by(Order.id).limit(size + 1)).all()
        more, batch = len(batch) > size, batch[:size]
        tried += len(batch)
        found.update(_matches(batch))
        if not more:
            next_after = 0
            break
        cursor = next_after = batch[-1].id
    return {"pending": tried, "matched": _claim(found), "next_after": next_after}


def carries_key(kind: str, value: str):
    """SQL condition on Order: it arrived with this identity key (with customer_id IS NULL, the partial GIN
    index of unmatched orders' keys on PostgreSQL)."""
    return (type_coerce(Order.customer_keys, JSONB).contains({kind: value}) if db.is_postgres
            else Order.customer_keys[kind].as_string() == value)


def match_for_identity(kind: str, value: str) -> int:
    """A customer just gained this identity: match the unmatched orders that carry it, at once. One query on
    the partial GIN index of unmatched orders' keys (PostgreSQL). Flushes."""
    pending = db.session.execute(select(Order.id, Order.customer_keys)
                                 .where(Order.customer_id.is_(None), carries_key(kind, value))
                                 .order_by(Order.id)).all()
    return _claim(_matches(pending)) if pending else 0


def match_for_identities(keys, limit: int | None = None) -> int:
    """Customers just gained these (kind, value) identities in bulk (a customer import): match at once the
    unmatched orders that carry any of them, oldest first, up to `limit` (MATCH_PER_RUN); the hourly job takes
    any rest. One query per identity kind (on PostgreSQL a scan of the unmatched orders, each key looked up in
    a hash of the values). Flushes."""
    limit = MATCH_PER_RUN if limit is None else limit
    by_kind: dict[str, set[str]] = {}
    for kind, value in keys:
        by_kind.setdefault(kind, set()).add(value)
    found = {}
    for kind, values in sorted(by_kind.items()):
        values = sorted(values)
        if db.is_postgres:
            # = ANY of the values: PostgreSQL hashes a long array, one probe per unmatched order (a join
            # with unnest() was planned as a nested loop over both: minutes at 100,000 values).
            rows = db.session.execute(sql(
                "SELECT o.id, o.customer_keys FROM orders o WHERE o.customer_id IS NULL"
                " AND o.customer_keys ->> :kind = ANY(:values) ORDER BY o.id LIMIT :limit"),
                {"kind": kind, "values": values, "limit": limit}).all()
        else:  # the embedded default: small data, the values in chunks
            rows = [row for start in range(0, len(values), MATCH_BATCH) for row in db.session.execute(
                select(Order.id, Order.customer_keys).where(
                    Order.customer_id.is_(None),
                    Order.customer_keys[kind].as_string().in_(values[start:start + MATCH_BATCH]))).all()]
        found.update((row.id, row) for row in rows)
    pending = [found[order_id] for order_id in sorted(found)[:limit]]
    return _claim(_matches(pending)) if pending else 0


def _matches(pending) -> dict[int, int]:
    """{order id: customer id} for each of `pending` (rows or orders with `id` and `customer_keys`) whose keys
    name exactly one customer (the rule of `match_customers`), all identities looked up in one query. Reads
    only: `_claim` loads the orders it takes."""
    keyed = [order for order in pending if order.customer_keys]
    return {order.id: customer_id
            for order, (customer_id, _) in zip(keyed, match_customers([o.customer_keys for o in keyed]))
            if customer_id is not None}


def _claim(found: dict[int, int]) -> int:
    """Match the orders of `found` that are still unmatched now, and settle them together. The hourly job and a
    callback linking an identity may reach one order at once: each locks its customers in id order, then the
    orders it found in id order (customers before orders, as ingest and the bulk import do: one global order,
    no deadlock), and the
    re-checked `customer_id IS NULL` lets only the first match it — the other finds it matched, never
    settles it twice. On SQLite (one writer) the claim is the UPDATE's own condition."""
    if not found:
        return 0
    # Customers first, as everywhere else (ingest, the bulk import): a callback that already holds its
    # customer (a name changed) and then claims an order must not meet a job holding that order and waiting
    # for it. A customer erased since the identities were read (the lock waited for the erasure): their
    # orders are never matched to the shell (the erasure took its keys off them).
    erased = _lock_customers(set(found.values()))
    found = {order_id: customer_id for order_id, customer_id in found.items() if customer_id not in erased}
    if not found:
        return 0
    claimed = db.session.scalars(select(Order).where(Order.id.in_(sorted(found)), Order.customer_id.is_(None))
                                 .order_by(Order.id).with_for_update(key_share=True)
                                 .execution_options(populate_existing=True)).all()
    now = utcnow().isoformat()
    matched = []
    for order in claimed:
        # The UPDATE re-checks it: on SQLite nothing was locked, and only the writer that still finds the
        # order unmatched may take it.
        won = db.session.execute(update(Order).where(Order.id == order.id, Order.customer_id.is_(None))
                                 .values(customer_id=found[order.id])
                                 .execution_options(synchronize_session=False)).rowcount if not db.is_postgres else 1
        if not won:
            continue
        order.customer_id = found[order.id]
        order.flags = [f for f in order.flags if f.get("flag") not in ("unmatched_customer", "ambiguous_customer")] \
            + [{"flag": "matched_later", "at": now}]
        matched.append(order)
    if not matched:
        return 0
    db.session.flush()
    n_lines = dict(db.session.execute(select(OrderLine.order_id, func.count()).where(
        OrderLine.order_id.in_([o.id for o in matched])).group_by(OrderLine.order_id)).all())
    _settle([Placed(o.id, o.order_no, o.channel, o.paid_at, o.amount, o.customer_id, n_lines.get(o.id, 0))
             for o in matched])
    for order in matched:  # written by SQL behind the ORM's back
        db.session.expire(order, ["guide_id", "attribution", "commission"])
    return len(matched)


def month_figures(guide: Guide, D) -> dict:
    """The guide's month to date (orders credited to them, GMV, commission), for the sidebar."""
    from reports.leaderboard import span

    s = span("month", D)
    n, gmv, commission = db.session.execute(
        select(func.count(), func.coalesce(func.sum(Order.amount), 0), func.coalesce(func.sum(Order.commission), 0))
        .where(Order.guide_id == guide.id, Order.paid_at >= s.start_utc, Order.paid_at < s.end_utc)).one()
    return {"month": s.key, "orders": n, "gmv": str(Decimal(gmv).quantize(Decimal("0.01"))),
            "commission": str(Decimal(commission).quantize(Decimal("0.01")))}
