"""Leaderboards per guide and per store, for a day, an ISO week or a month (local dates in APP_TIMEZONE).

Live: every event that moves a figure (a new contact, a task done, a message or coupon sent, a coupon
redeemed, an attributed order) calls `bump()`; the increments are kept on the database session and applied to
Redis sorted sets only after that session commits (a rolled-back request counts nothing). One sorted set per
scope (guide | store), period, period key and metric; members are ids, scores the figures.

Reconciled: `rebuild(period, D)` recomputes a period from the database and replaces its sets in one
MULTI/EXEC. A period is built lazily the first time it is read (its marker in the `lb:built` hash is
missing), after a bulk import or task generation (`invalidate()`), and by the nightly reconcile job. An
increment that lands between a rebuild's read and its write may be lost until the next rebuild: the
database stays the record, Redis is the fast view.
"""
from __future__ import annotations

import logging
import time as _time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import case, event, func, select
from sqlalchemy.orm import Session

from core.db import db
from core.redis_store import rstore
from core.timeutil import app_tz
from models import Coupon, Follow, Guide, Order, RedDot, Store, Touch

PERIODS = ("day", "week", "month")
# Stored metrics; completion_rate is derived (tasks_done / tasks_total).
METRICS = ("new_customers", "tasks_done", "tasks_total", "messages_sent", "coupons_sent", "coupons_redeemed",
           "orders", "gmv", "commission")
SORTABLE = METRICS + ("completion_rate",)
MONEY = {"gmv", "commission"}
ROW_FIELDS = ("rank", "userid", "name", "store", "new_customers", "tasks_done", "orders", "gmv", "commission",
              "coupons_redeemed")
TTL = {"day": 40 * 86400, "week": 120 * 86400, "month": 400 * 86400}
BUILT = "lb:built"

log = logging.getLogger(__name__)


class LeaderboardError(ValueError):
    """A bad period, date, metric or store; the message names it."""


@dataclass(frozen=True)
class Span:
    period: str
    key: str  # 2026-06-15 | 2026-W25 | 2026-06
    first: date  # first local day
    end: date  # first local day after

    @property
    def start_utc(self) -> datetime:
        from core.timeutil import start_of

        return start_of(self.first)

    @property
    def end_utc(self) -> datetime:
        from core.timeutil import start_of

        return start_of(self.end)


def span(period: str, D: date) -> Span:
    if period == "day":
        return Span("day", D.isoformat(), D, D + timedelta(days=1))
    if period == "week":
        first = D - timedelta(days=D.weekday())
        year, week, _ = D.isocalendar()
        return Span("week", f"{year}-W{week:02d}", first, first + timedelta(days=7))
    if period == "month":
        first = D.replace(day=1)
        end = (first + timedelta(days=32)).replace(day=1)
        return Span("month", f"{D:%Y-%m}", first, end)
    raise LeaderboardError(f"period must be one of {', '.join(PERIODS)}, not {period!r}")


def _zkey(scope: str, s: Span, metric: str) -> str:
    return f"lb:{scope}:{s.period}:{s.key}:{metric}"


# ------------------------------------------------------------------------------------------ live updates


def bump(guide: "Guide | int | None", at: datetime | date, **amounts) -> None:
    """Count `amounts` ({metric: n}) for a guide (object or id) at a time (or a local date), once the session
    commits."""
    if guide is None:
        return
    for metric in amounts:
        if metric not in METRICS:
            raise ValueError(f"unknown leaderboard metric {metric!r}")
    D = at if isinstance(at, date) and not isinstance(at, datetime) else at.astimezone(app_tz()).date()
    if not isinstance(guide, Guide):
        guide = db.session.get(Guide, guide)
        if guide is None:
            return
    guide_id, store_id = guide.id, guide.store_id
    db.session().info.setdefault("lb_pending", []).append((guide_id, store_id, D, amounts))


def invalidate(D: date | None = None) -> None:
    """Forget the built periods containing D (all periods when D is None): the next read rebuilds them."""
    if D is None:
        rstore.client.delete(BUILT)
        return
    rstore.client.hdel(BUILT, *[f"{p}:{span(p, D).key}" for p in PERIODS])


@event.listens_for(Session, "after_commit")
def _apply_pending(session) -> None:
    pending = session.info.pop("lb_pending", None)
    if not pending:
        return
    try:
        _increment(pending)
    except Exception:  # the commit stands; the next rebuild brings Redis back in line
        log.exception("leaderboard increments lost (Redis); the hourly reconcile restores them")


def _increment(pending: list) -> None:
    """One pipeline for everything a transaction counted, summed per sorted set and member first (a batch of
    orders for the same guide is one ZINCRBY per set, not one per order)."""
    sums: dict[tuple[str, int], float] = {}
    ttl: dict[str, int] = {}
    for guide_id, store_id, D, amounts in pending:
        for period in PERIODS:
            s = span(period, D)
            for metric, n in amounts.items():
                if not n:
                    continue
                for scope, member in (("guide", guide_id), ("store", store_id)):
                    if member is None:
                        continue
                    key = _zkey(scope, s, metric)
                    sums[key, member] = sums.get((key, member), 0.0) + float(n)
                    ttl[key] = TTL[period]
    with rstore.client.pipeline(transaction=False) as pipe:
        for (key, member), n in sums.items():
            pipe.zincrby(key, n, member)
        for key, seconds in ttl.items():
            pipe.expire(key, seconds)
        pipe.execute()


@event.listens_for(Session, "after_rollback")
def _drop_pending(session) -> None:
    session.info.pop("lb_pending", None)


# ----------------------------------------------------------------------------------- rebuild from the DB


def compute(s: Span) -> dict[str, dict[int, float]]:
    """{metric: {guide_id: value}} for the span, from the database."""
    lo, hi = s.start_utc, s.end_utc
    out: dict[str, dict[int, float]] = {}

    def put(metric, rows):
        out[metric] = {gid: float(v) for gid, v in rows if gid is not None and v}

    put("new_customers", db.session.execute(select(Follow.guide_id, func.count()).where(
        Follow.added_at >= lo, Follow.added_at < hi).group_by(Follow.guide_id)))
    put("tasks_total", db.session.execute(select(RedDot.guide_id, func.count()).where(
        RedDot.task_date >= s.first, RedDot.task_date < s.end).group_by(RedDot.guide_id)))
    put("tasks_done", db.session.execute(select(RedDot.guide_id, func.count()).where(
        RedDot.task_date >= s.first, RedDot.task_date < s.end, RedDot.status == "done").group_by(RedDot.guide_id)))
    put("messages_sent", db.session.execute(select(Touch.guide_id, func.count()).where(
        Touch.at >= lo, Touch.at < hi).group_by(Touch.guide_id)))
    put("coupons_sent", db.session.execute(select(Coupon.guide_id, func.count()).where(
        Coupon.issued_at >= lo, Coupon.issued_at < hi).group_by(Coupon.guide_id)))
    put("coupons_redeemed", db.session.execute(select(Coupon.guide_id, func.count()).where(
        Coupon.status == "redeemed", Coupon.redeemed_at >= lo, Coupon.redeemed_at < hi).group_by(Coupon.guide_id)))
    sums = db.session.execute(select(Order.guide_id, func.count(), func.sum(Order.amount), func.sum(Order.commission))
                              .where(Order.paid_at >= lo, Order.paid_at < hi, Order.guide_id.is_not(None))
                              .group_by(Order.guide_id)).all()
    put("orders", [(g, n) for g, n, _, _ in sums])
    put("gmv", [(g, a) for g, _, a, _ in sums])
    put("commission", [(g, c) for g, _, _, c in sums])
    return out


def rebuild(period: str, D: date) -> Span:
    """Replace the period's sorted sets (guides and stores) with figures computed from the database."""
    s = span(period, D)
    figures = compute(s)
    stores = dict(db.session.execute(select(Guide.id, Guide.store_id)).all())
    with rstore.client.pipeline(transaction=True) as pipe:
        for metric in METRICS:
            by_guide = figures.get(metric, {})
            by_store: dict[int, float] = {}
            for gid, v in by_guide.items():
                if stores.get(gid) is not None:
                    by_store[stores[gid]] = by_store.get(stores[gid], 0.0) + v
            for scope, values in (("guide", by_guide), ("store", by_store)):
                key = _zkey(scope, s, metric)
                pipe.delete(key)
                if values:
                    pipe.zadd(key, {str(k): v for k, v in values.items()})
                    pipe.expire(key, TTL[period])
        pipe.hset(BUILT, f"{period}:{s.key}", int(_time.time()) + TTL[period])
        pipe.execute()
    return s


def _ensure_built(s: Span) -> None:
    until = rstore.client.hget(BUILT, f"{s.period}:{s.key}")
    if until is None or int(until) < _time.time():
        rebuild(s.period, s.first)


# ------------------------------------------------------------------------------------------------ reading


def _read(scope: str, s: Span, members: list[int] | None = None) -> dict[str, dict[int, float]]:
    """Every member's figures, or only `members`' (one store's guides: no whole-chain read)."""
    with rstore.client.pipeline(transaction=False) as pipe:
        for metric in METRICS:
            if members is None:
                pipe.zrange(_zkey(scope, s, metric), 0, -1, withscores=True)
            else:
                pipe.zmscore(_zkey(scope, s, metric), members)
        results = pipe.execute()
    if members is not None:
        results = [[(m, v) for m, v in zip(members, scores) if v is not None] for scores in results]
    return {metric: {int(m): score for m, score in rows} for metric, rows in zip(METRICS, results)}


def _money(v: float) -> str:
    return str(Decimal(str(v)).quantize(Decimal("0.01")))


def _row(values: dict[str, dict[int, float]], member: int) -> dict:
    row = {}
    for metric in METRICS:
        v = values[metric].get(member, 0.0)
        row[metric] = _money(v) if metric in MONEY else int(round(v))
    row["completion_rate"] = round(row["tasks_done"] / row["tasks_total"], 3) if row["tasks_total"] else None
    return row


def _sort(rows: list[dict], metric: str, name_key: str) -> list[dict]:
    def key(r):
        v = r[metric]
        v = float(v) if v is not None else -1.0
        return (-v, -float(r["gmv"]), r[name_key])

    rows.sort(key=key)
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows


def guide_rows(period: str = "day", D: date | None = None, *, metric: str = "gmv",
               store_code: str | None = None, store_id: int | None = None) -> list[dict]:
    """Ranked rows per guide: every active guide and manager, plus anyone (a departed guide too) with figures."""
    from core.timeutil import local_today

    if metric not in SORTABLE:
        raise LeaderboardError(f"metric must be one of {', '.join(SORTABLE)}, not {metric!r}")
    s = span(period, D or local_today())
    if store_code is not None:
        store_id = db.session.scalar(select(Store.id).where(Store.code == store_code))
        if store_id is None:
            raise LeaderboardError(f"unknown store code {store_code!r}")
    _ensure_built(s)
    members = None if store_id is None else db.session.scalars(select(Guide.id).where(Guide.store_id == store_id)).all()
    values = _read("guide", s, members) if members is None or members else {metric: {} for metric in METRICS}
    with_figures = set().union(*[set(v) for v in values.values()])
    q = (select(Guide.id, Guide.userid, Guide.name, Guide.status, Guide.role, Store.code, Store.name)
         .outerjoin(Store, Store.id == Guide.store_id)
         .where((Guide.status == "active") & Guide.role.in_(("guide", "manager")) | Guide.id.in_(with_figures)))
    if store_id is not None:
        q = q.where(Guide.store_id == store_id)
    rows = []
    for gid, userid, name, status, role, code, store_name in db.session.execute(q):
        row = {"rank": 0, "userid": userid, "name": name, "store": code, "store_name": store_name,
               "status": status, "role": role}
        row.update(_row(values, gid))
        rows.append(row)
    return _sort(rows, metric, "userid")


def store_rows(period: str = "day", D: date | None = None, *, metric: str = "gmv") -> list[dict]:
    from core.timeutil import local_today

    if metric not in SORTABLE:
        raise LeaderboardError(f"metric must be one of {', '.join(SORTABLE)}, not {metric!r}")
    s = span(period, D or local_today())
    _ensure_built(s)
    values = _read("store", s)
    rows = []
    for sid, code, name in db.session.execute(select(Store.id, Store.code, Store.name)):
        row = {"rank": 0, "store": code, "name": name}
        row.update(_row(values, sid))
        rows.append(row)
    return _sort(rows, metric, "store")


def trend(days: int, end: date, *, store_id: int | None = None) -> list[dict]:
    """GMV, orders and commission per local day for the `days` days up to `end` (from the database), in one
    grouped query: each order falls in the day whose local midnights (as UTC instants) enclose its paid_at."""
    first = end - timedelta(days=days - 1)
    midnights = [span("day", first + timedelta(days=i)).start_utc for i in range(days + 1)]
    day = case(*((Order.paid_at < midnights[i + 1], i) for i in range(days)))
    paid = (select(day.label("day"), Order.amount, Order.commission)
            .where(Order.paid_at >= midnights[0], Order.paid_at < midnights[-1], Order.guide_id.is_not(None)))
    if store_id is not None:
        paid = paid.join(Guide, Guide.id == Order.guide_id).where(Guide.store_id == store_id)
    paid = paid.subquery()
    figures = {i: (n, gmv, commission) for i, n, gmv, commission in db.session.execute(
        select(paid.c.day, func.count(), func.sum(paid.c.amount), func.sum(paid.c.commission)).group_by(paid.c.day))}
    out = []
    for i in range(days):
        n, gmv, commission = figures.get(i, (0, 0, 0))
        out.append({"date": (first + timedelta(days=i)).isoformat(), "orders": n, "gmv": _money(float(gmv)),
                    "commission": _money(float(commission))})
    return out
