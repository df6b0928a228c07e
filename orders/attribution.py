"""Which guide an order is credited to, and the commission it earns them. Set-based, for one order or millions.

Modes (ATTRIBUTION_MODE):
- `binding` (default): the customer's binding guide at the time the order was paid — the earliest-added guide
  whose WeCom relation was live then (the same rule as `customers.binding_guide_id`, applied to the follows'
  history). An order paid before any guide added the customer is credited to nobody (`attribution = none`).
- `last_touch`: the last guide who sent the customer a message (the `touches` table) in the
  ATTRIBUTION_WINDOW_DAYS (default 30) before payment; without such a touch, the binding guide as above.

Commission: each line earns price × qty × the rate of its category (`commission_rates`; `*` for every
category not listed; no rate, no commission), scaled by amount / Σ line totals so discounts (coupons) reduce it
in proportion. An order credited to nobody earns none. It is computed when the order is attributed and kept:
a later change of rates does not rewrite past months (`flask commission recompute` does, on request).

The statements only rewrite rows whose values change (IS DISTINCT FROM), so re-importing a file is cheap.
"""
from __future__ import annotations

from flask import current_app
from sqlalchemy import text

from core.db import db


def binding_sql(customer: str = "o.customer_id", paid_at: str = "o.paid_at") -> str:
    """SQL: the binding guide of `customer` at `paid_at` (the earliest-added guide whose relation was live)."""
    return (f"(SELECT f.guide_id FROM follows f WHERE f.customer_id = {customer} AND f.added_at <= {paid_at} "
            f"AND (f.ended_at IS NULL OR f.ended_at > {paid_at}) ORDER BY f.added_at, f.id LIMIT 1)")


def binding_credit_sql(guide_id: str) -> str:
    """SQL: how an order whose binding guide is `guide_id` (an expression, e.g. `binding_sql()` or a column
    holding it) is credited: 'binding', or 'none' when the customer had no binding guide then."""
    return f"CASE WHEN {guide_id} IS NOT NULL THEN 'binding' ELSE 'none' END"


_BINDING = binding_sql()
_LAST_TOUCH = """(SELECT t.guide_id FROM touches t WHERE t.customer_id = o.customer_id AND t.guide_id IS NOT NULL
                  AND t.at <= o.paid_at AND t.at > {since} ORDER BY t.at DESC, t.id DESC LIMIT 1)"""


def settings() -> tuple[str, int]:
    mode = current_app.config.get("ATTRIBUTION_MODE") or "binding"
    days = int(current_app.config.get("ATTRIBUTION_WINDOW_DAYS") or 30)
    return mode, days


def attribute(where: str, params: dict | None = None) -> int:
    """Attribute the orders matching `where` (SQL over `orders o`), then set their commission.
    Returns the number of orders whose guide changed. Flushes nothing ORM-side: callers holding an Order
    object refresh it."""
    mode, days = settings()
    params = dict(params or {})
    db.session.flush()
    if mode == "last_touch":
        if db.is_postgres:
            since = "o.paid_at - make_interval(days => :window_days)"
        else:
            since = "strftime('%Y-%m-%d %H:%M:%f', o.paid_at, '-' || :window_days || ' days')"
        params["window_days"] = days
        touch = _LAST_TOUCH.format(since=since)
        guide = f"COALESCE({touch}, {_BINDING})"
        how = f"CASE WHEN {touch} IS NOT NULL THEN 'last_touch' ELSE {binding_credit_sql(_BINDING)} END"
    else:
        guide = _BINDING
        how = binding_credit_sql(_BINDING)
    changed = db.session.execute(text(f"""
        UPDATE orders SET guide_id = x.guide_id, attribution = x.how
        FROM (SELECT o.id, {guide} AS guide_id, {how} AS how FROM orders o WHERE {where}) x
        WHERE orders.id = x.id AND (orders.guide_id IS DISTINCT FROM x.guide_id
                                    OR orders.attribution IS DISTINCT FROM x.how)"""), params).rowcount
    set_commission(where, params)
    return changed


def set_commission(where: str, params: dict | None = None) -> int:
    """Price the orders matching `where` (one grouped join, so a bulk import pays hash joins, not a
    subquery per order); rewrites only orders whose commission changes."""
    return db.session.execute(text(f"""
        UPDATE orders SET commission = x.commission
        FROM (SELECT o.id, CASE WHEN o.guide_id IS NULL OR COALESCE(SUM(l.price * l.qty), 0) <= 0 THEN 0
                     ELSE ROUND(SUM(l.price * l.qty * COALESCE(r.rate, d.rate, 0)) * o.amount
                                / SUM(l.price * l.qty), 2) END AS commission
              FROM orders o LEFT JOIN order_lines l ON l.order_id = o.id
                   LEFT JOIN commission_rates r ON r.category = l.category
                   LEFT JOIN commission_rates d ON d.category = '*'
              WHERE {where} GROUP BY o.id, o.guide_id, o.amount) x
        WHERE orders.id = x.id AND orders.commission IS DISTINCT FROM x.commission"""), params or {}).rowcount
