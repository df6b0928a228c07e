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

from sqlalchemy import func, select

from core.db import db
from models import Content, Guide, LinkOpen, Order, Script, ScriptSend, Store, TrackedLink

CONVERSION_DAYS = 7
GROUPINGS = ("content", "guide", "store", "script")


def _orders_by_customer(customer_ids: set[int], since: datetime | None) -> dict[int, list[tuple]]:
    """{customer_id: [(paid_at, order_id, amount)] sorted by time}."""
    out: dict[int, list[tuple]] = defaultdict(list)
    ids = sorted(customer_ids)
    for i in range(0, len(ids), 5000):
        q = select(Order.customer_id, Order.paid_at, Order.id, Order.amount).where(
            Order.customer_id.in_(ids[i:i + 5000]))
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
    times = [o[0] for o in orders]
    for start in starts:
        i = bisect.bisect_left(times, start)
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
    q = (select(TrackedLink.id, TrackedLink.customer_id, TrackedLink.guide_id, TrackedLink.content_id,
                TrackedLink.script_id, TrackedLink.created_at, Guide.store_id)
         .join(Guide, Guide.id == TrackedLink.guide_id))
    if store_id is not None:
        q = q.where(Guide.store_id == store_id)
    if since is not None:
        q = q.where(TrackedLink.created_at >= since)
    if until is not None:
        q = q.where(TrackedLink.created_at < until)
    links = db.session.execute(q).all()
    opens: dict[int, list[datetime]] = defaultdict(list)
    link_ids = [link.id for link in links]
    for i in range(0, len(link_ids), 5000):
        for lid, at in db.session.execute(select(LinkOpen.link_id, LinkOpen.opened_at).where(
                LinkOpen.link_id.in_(link_ids[i:i + 5000]))):
            opens[lid].append(at)
    first_open = min((min(v) for v in opens.values()), default=None)
    orders = _orders_by_customer({link.customer_id for link in links if opens.get(link.id)}, first_open)

    groups: dict = defaultdict(lambda: {"sent": 0, "opened": 0, "opens": 0, "converted": 0, "orders": {}})
    for link in links:
        key = {"content": link.content_id, "guide": link.guide_id, "store": link.store_id,
               "script": link.script_id}[by]
        g = groups[key]
        g["sent"] += 1
        link_opens = opens.get(link.id, [])
        if link_opens:
            g["opened"] += 1
            g["opens"] += len(link_opens)
            hits = _orders_within(orders.get(link.customer_id, []), link_opens)
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
                     "orders": len(g["orders"]), "gmv": str(sum(g["orders"].values(), Decimal("0"))),
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


def script_stats(*, since: datetime | None = None, until: datetime | None = None) -> list[dict]:
    """Each script's sends and the orders that followed: rows {external_id, title, category, sends,
    customers, converted, orders, gmv, conversion_rate} (converted: sends to a known customer followed by an
    order of theirs within 7 days), most converting first; scripts never sent are left out."""
    q = select(ScriptSend.script_id, ScriptSend.customer_id, ScriptSend.sent_at)
    if since is not None:
        q = q.where(ScriptSend.sent_at >= since)
    if until is not None:
        q = q.where(ScriptSend.sent_at < until)
    sends = db.session.execute(q).all()
    earliest = min((s.sent_at for s in sends), default=None)
    orders = _orders_by_customer({s.customer_id for s in sends if s.customer_id}, earliest)
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
        select(Script.id, Script.external_id, Script.title, Script.category).where(Script.id.in_(list(groups))))}
    rows = []
    for sid, g in groups.items():
        eid, title, cat = scripts.get(sid, (None, "（已删除）", ""))
        rows.append({"external_id": eid, "title": title, "category": cat, "sends": g["sends"],
                     "customers": len(g["customers"]), "converted": g["converted"], "orders": len(g["orders"]),
                     "gmv": str(sum(g["orders"].values(), Decimal("0"))),
                     "conversion_rate": _rate(g["converted"], g["sends"])})
    rows.sort(key=lambda r: (-r["converted"], -r["sends"], str(r["external_id"])))
    return rows


def link_count() -> int:
    return db.session.scalar(select(func.count()).select_from(TrackedLink))
