"""Funnels: sent → opened → converted, per content item, per guide or per script; and each script's sends
with the orders that followed.

Definitions (docs/tracking.md):
- sent: a tracked link created in the period (one per send);
- opened: a link opened at least once (opens counts every open, repeats included);
- converted: a link whose customer paid an order within CONVERSION_DAYS after one of the link's opens (the
  link's guide and content get the credit); gmv sums those orders, each order once per group.
For scripts: a send to a known customer converts when that customer paid an order within CONVERSION_DAYS
after the send.
Computed from the tables on each call (no stored counters), so late orders count as soon as they arrive.
"""
from __future__ import annotations

import bisect
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from core.db import db
from models import Content, Guide, LinkOpen, Order, Script, ScriptSend, Store, TrackedLink

CONVERSION_DAYS = 7
GROUPINGS = ("content", "guide", "store", "script")


def _orders_by_customer(customers, since: datetime | None) -> dict[int, list[tuple]]:
    """{customer_id: [(paid_at, order_id, amount)] sorted by time} for the customers a subquery selects
    (a subquery, not a parameter list: periods hold hundreds of thousands of customers)."""
    out: dict[int, list[tuple]] = defaultdict(list)
    q = select(Order.customer_id, Order.paid_at, Order.id, Order.amount).where(
        Order.customer_id.in_(customers))
    if since is not None:
        q = q.where(Order.paid_at >= since)
    for cid, paid_at, oid, amount in db.session.execute(q):
        out[cid].append((paid_at, oid, amount))
    for rows in out.values():
        rows.sort()
    return out


def _orders_within(orders: list[tuple], starts: list[datetime], days: int = CONVERSION_DAYS) -> list[tuple]:
    """The orders paid within `days` after any of `starts`."""
    found = {}
    window = timedelta(days=days)
    for start in starts:
        i = bisect.bisect_left(orders, (start,))  # rows are sorted (paid_at, id, amount) tuples
        while i < len(orders) and orders[i][0] <= start + window:
            found[orders[i][1]] = orders[i]
            i += 1
    return list(found.values())


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def funnel(by: str = "content", *, since: datetime | None = None, until: datetime | None = None,
           store_id: int | None = None) -> list[dict]:
    """Rows {key, label, sent, opened, opens, converted, orders, gmv, open_rate, conversion_rate}, most sent
    first. `since`/`until` select the links by when they were sent; `store_id` only links sent by that
    store's guides (a store is the guide's store now)."""
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}, not {by!r}")
    period = []
    if since is not None:
        period.append(TrackedLink.created_at >= since)
    if until is not None:
        period.append(TrackedLink.created_at < until)
    if store_id is not None:
        period.append(TrackedLink.guide_id.in_(select(Guide.id).where(Guide.store_id == store_id)))
    q = (select(TrackedLink.id, TrackedLink.customer_id, TrackedLink.guide_id, TrackedLink.content_id,
                TrackedLink.script_id, Guide.store_id, LinkOpen.opened_at)
         .join(Guide, Guide.id == TrackedLink.guide_id)
         .outerjoin(LinkOpen, LinkOpen.link_id == TrackedLink.id).where(*period))
    links: dict[int, tuple] = {}
    opens: dict[int, list[datetime]] = defaultdict(list)
    for lid, cid, gid, content_id, script_id, sid, opened_at in db.session.execute(q):
        links[lid] = (cid, gid, content_id, script_id, sid)
        if opened_at is not None:
            opens[lid].append(opened_at)
    first_open = min((min(v) for v in opens.values()), default=None)
    opened_customers = (select(TrackedLink.customer_id).join(LinkOpen, LinkOpen.link_id == TrackedLink.id)
                        .where(*period).distinct())
    orders = _orders_by_customer(opened_customers, first_open) if opens else {}

    groups: dict = defaultdict(lambda: {"sent": 0, "opened": 0, "opens": 0, "converted": 0, "orders": {}})
    position = {"guide": 1, "content": 2, "script": 3, "store": 4}[by]
    for lid, link in links.items():
        g = groups[link[position]]
        g["sent"] += 1
        link_opens = opens.get(lid, [])
        if link_opens:
            g["opened"] += 1
            g["opens"] += len(link_opens)
            hits = _orders_within(orders.get(link[0], []), link_opens)
            if hits:
                g["converted"] += 1
                for o in hits:
                    g["orders"][o[1]] = o[2]
    labels = _labels(by, [k for k in groups if k is not None])
    rows = []
    for key, g in groups.items():
        rows.append({"key": labels.get(key, (None, None))[0] if key is not None else None,
                     "label": labels.get(key, (None, "（无）"))[1] if key is not None else "（无）",
                     "sent": g["sent"], "opened": g["opened"], "opens": g["opens"], "converted": g["converted"],
                     "orders": len(g["orders"]), "gmv": str(sum(g["orders"].values(), Decimal("0.00"))),
                     "open_rate": _rate(g["opened"], g["sent"]), "conversion_rate": _rate(g["converted"], g["sent"])})
    rows.sort(key=lambda r: (-r["sent"], -r["converted"], str(r["key"])))
    return rows


def _labels(by: str, ids: list[int]) -> dict[int, tuple[str, str]]:
    """{id: (key shown to operations, label)}."""
    if not ids:
        return {}
    if by == "content":
        q = select(Content.id, Content.external_id, Content.title).where(Content.id.in_(ids))
    elif by == "script":
        q = select(Script.id, Script.external_id, Script.title).where(Script.id.in_(ids))
    elif by == "store":
        q = select(Store.id, Store.code, Store.name).where(Store.id.in_(ids))
    else:
        q = select(Guide.id, Guide.userid, Guide.name).where(Guide.id.in_(ids))
    return {i: (k, label) for i, k, label in db.session.execute(q)}


def script_stats(*, since: datetime | None = None, until: datetime | None = None,
                 store_id: int | None = None) -> list[dict]:
    """Each script's sends and the orders that followed: rows {external_id, title, category, sends,
    customers, converted, orders, gmv, conversion_rate} (converted: sends to a known customer followed by an
    order of theirs within 7 days), most converting first; scripts never sent are left out. `store_id`: only
    sends by that store's guides (the guide's store now, as in funnel())."""
    period = []
    if store_id is not None:
        period.append(ScriptSend.guide_id.in_(select(Guide.id).where(Guide.store_id == store_id)))
    if since is not None:
        period.append(ScriptSend.sent_at >= since)
    if until is not None:
        period.append(ScriptSend.sent_at < until)
    sends = db.session.execute(select(ScriptSend.script_id, ScriptSend.customer_id, ScriptSend.sent_at)
                               .where(*period)).all()
    earliest = min((s.sent_at for s in sends), default=None)
    orders = _orders_by_customer(select(ScriptSend.customer_id).where(
        *period, ScriptSend.customer_id.is_not(None)).distinct(), earliest) if sends else {}
    groups: dict = defaultdict(lambda: {"sends": 0, "customers": set(), "converted": 0, "orders": {}})
    for s in sends:
        g = groups[s.script_id]
        g["sends"] += 1
        if s.customer_id is None:
            continue
        g["customers"].add(s.customer_id)
        hits = _orders_within(orders.get(s.customer_id, []), [s.sent_at])
        if hits:
            g["converted"] += 1
            for o in hits:
                g["orders"][o[1]] = o[2]
    scripts = {sid: (eid, title, cat) for sid, eid, title, cat in db.session.execute(
        select(Script.id, Script.external_id, Script.title, Script.category).where(
            Script.id.in_(select(ScriptSend.script_id).where(*period).distinct())))}
    rows = []
    for sid, g in groups.items():
        eid, title, cat = scripts.get(sid, (None, "（已删除）", ""))
        rows.append({"external_id": eid, "title": title, "category": cat, "sends": g["sends"],
                     "customers": len(g["customers"]), "converted": g["converted"], "orders": len(g["orders"]),
                     "gmv": str(sum(g["orders"].values(), Decimal("0.00"))),
                     "conversion_rate": _rate(g["converted"], g["sends"])})
    rows.sort(key=lambda r: (-r["converted"], -r["sends"], str(r["external_id"])))
    return rows


def store_id_for(code: str | None) -> int | None:
    """The id of the store with this code; None for no code; LookupError for an unknown one."""
    if not code:
        return None
    store_id = db.session.scalar(select(Store.id).where(Store.code == code))
    if store_id is None:
        raise LookupError(code)
    return store_id
