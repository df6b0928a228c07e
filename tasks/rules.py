"""The red-dot rules: for a date D, which customers each guide should contact and why.

Each rule is one set-based query over the whole customer base (no Python loop over customers); only the
matching rows come back, and Python writes their plain-Chinese reasons. Times are compared against the
UTC instants of local midnights in APP_TIMEZONE, so the same SQL runs on PostgreSQL and SQLite.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import and_, exists, extract, func, or_, select, text
from sqlalchemy.orm import aliased

from core.db import db
from core.timeutil import app_tz, start_of
from models import (Coupon, CouponTemplate, Customer, CustomerTag, Follow, Guide, Order, OrderLine, Product, Tag,
                    Touch)

WEEKDAYS = "一二三四五六日"
DORMANT_HORIZON_DAYS = 730  # a customer idle for longer than two years is not brought back by a red dot


@dataclass
class Candidate:
    guide_id: int
    customer_id: int
    rule: str
    priority: int
    value: Decimal
    reason: str
    details: dict = field(default_factory=dict)
    script: str | None = None
    content: str | None = None
    coupon: str | None = None
    marketing: bool = False


def day_phrase(d: date, today: date) -> str:
    """今天 / 明天 / 后天 / 本周五 / 下周二 — how a guide says a date within the next weeks."""
    delta = (d - today).days
    if delta == 0:
        return "今天"
    if delta == 1:
        return "明天"
    if delta == 2:
        return "后天"
    week = "本周" if d.isocalendar()[1] == today.isocalendar()[1] else "下周"
    return f"{week}{WEEKDAYS[d.weekday()]}"


def _bound():
    """Customers with an active binding guide: the base of every rule but lost_contact."""
    return (select(Customer.id, Customer.binding_guide_id, Customer.total_spend)
            .join(Guide, Guide.id == Customer.binding_guide_id)
            .where(Guide.status == "active"))


def marketing_allowed(D: date, settings: dict):
    """SQL condition on Customer: no do-not-disturb tag, and under the marketing caps for D."""
    dnd = exists().where(CustomerTag.customer_id == Customer.id, CustomerTag.tag_id == Tag.id,
                         Tag.name.in_(settings["dnd_tags"]))
    week = (select(func.count()).select_from(Touch)
            .where(Touch.customer_id == Customer.id, Touch.kind == "marketing",
                   Touch.at >= start_of(D - timedelta(days=6))).scalar_subquery())
    today = (select(func.count()).select_from(Touch)
             .where(Touch.customer_id == Customer.id, Touch.kind == "marketing",
                    Touch.at >= start_of(D)).scalar_subquery())
    return and_(~dnd, week < settings["marketing_per_week"], today < settings["marketing_per_day"])


# --------------------------------------------------------------------------------------------- rules


def birthday(D: date, p: dict, settings: dict) -> list[Candidate]:
    days = [D + timedelta(days=i) for i in range(p["days_ahead"] + 1)]
    keys = {d.month * 100 + d.day for d in days}
    if any(d.month == 2 and d.day == 28 for d in days) and not _leap(D.year):
        keys.add(229)  # born on 29 February: celebrated on the 28th in a common year

    def md(col):
        return extract("month", col) * 100 + extract("day", col)

    q = (_bound().add_columns(Customer.birthday, Customer.baby_birthday)
         .where(or_(md(Customer.birthday).in_(keys), md(Customer.baby_birthday).in_(keys)),
                marketing_allowed(D, settings)))
    out = []
    for cid, gid, spend, own, baby in db.session.execute(q):
        parts, details = [], {}
        for who, born in (("baby", baby), ("self", own)):
            if born is None:
                continue
            when = _next_birthday(born, D)
            if when is None or (when - D).days > p["days_ahead"]:
                continue
            age = when.year - born.year
            phrase = day_phrase(when, D)
            if who == "baby":
                parts.append(f"宝宝{phrase}满{age}岁" if age >= 1 else f"宝宝{phrase}出生")
            else:
                parts.append(f"{phrase}是顾客生日")
            details[who] = when.isoformat()
        if parts:
            out.append(Candidate(gid, cid, "birthday", p["priority"] + (5 if D.isoformat() in details.values() else 0),
                                 spend, "，".join(parts), details, marketing=True))
    return out


def dormant(D: date, p: dict, settings: dict) -> list[Candidate]:
    anchor = func.coalesce(Customer.last_order_at, Customer.first_added_at)
    idles = range(p["days"], DORMANT_HORIZON_DAYS + 1, p["repeat_days"])
    crossing = or_(*[and_(anchor >= start_of(D - timedelta(days=n)), anchor < start_of(D - timedelta(days=n - 1)))
                     for n in idles])
    recent = exists().where(Touch.customer_id == Customer.id,
                            Touch.at >= start_of(D - timedelta(days=p["quiet_days"])))
    q = (_bound().add_columns(anchor, Customer.last_order_at)
         .where(crossing, ~recent, marketing_allowed(D, settings)))
    out = []
    tz = app_tz()
    for cid, gid, spend, at, last_order in db.session.execute(q):
        idle = (D - at.astimezone(tz).date()).days
        reason = f"{idle}天未购买" if last_order else f"添加{idle}天还未购买"
        out.append(Candidate(gid, cid, "dormant", p["priority"], spend, reason, {"idle_days": idle},
                             marketing=True))
    return out


def post_purchase(D: date, p: dict, settings: dict) -> list[Candidate]:
    day = D - timedelta(days=p["days_after"])
    orders = (select(Order.customer_id, func.min(OrderLine.name).label("item"),
                     func.count(OrderLine.id).label("lines"), func.min(OrderLine.category).label("category"))
              .join(OrderLine, OrderLine.order_id == Order.id)
              .where(Order.paid_at >= start_of(day), Order.paid_at < start_of(day + timedelta(days=1)),
                     Order.customer_id.is_not(None))
              .group_by(Order.customer_id).subquery())
    q = (_bound().add_columns(orders.c.item, orders.c.lines, orders.c.category)
         .join(orders, orders.c.customer_id == Customer.id))
    out = []
    ago = {1: "昨天", 2: "前天"}.get(p["days_after"], f"{p['days_after']}天前")
    for cid, gid, spend, item, lines, category in db.session.execute(q):
        what = item if lines == 1 else f"{item}等{lines}件"
        out.append(Candidate(gid, cid, "post_purchase", p["priority"], spend,
                             f"{ago}购买了{what}，回访使用感受", {"category": category}))
    return out


def replenish(D: date, p: dict, settings: dict) -> list[Candidate]:
    """Products with a `days_of_use` attribute (per unit): qty × days_of_use after the paid date, minus
    `days_before`, falls on D — unless the customer bought that product again since."""
    later = aliased(Order)
    later_line = aliased(OrderLine)
    bought_again = (exists().where(later_line.order_id == later.id, later_line.sku == OrderLine.sku,
                                   later.customer_id == Order.customer_id, later.paid_at > Order.paid_at))
    q = (_bound().add_columns(OrderLine.name, OrderLine.category, OrderLine.sku)
         .join(Order, Order.customer_id == Customer.id)
         .join(OrderLine, OrderLine.order_id == Order.id)
         .join(Product, Product.sku == OrderLine.sku)
         .where(Order.paid_at >= start_of(D - timedelta(days=400)), Order.paid_at < start_of(D),
                _due_on(D, p["days_before"]), ~bought_again, marketing_allowed(D, settings)))
    out, seen = [], set()
    for cid, gid, spend, name, category, sku in db.session.execute(q):
        if cid in seen:
            continue
        seen.add(cid)
        when = "今天" if p["days_before"] == 0 else f"{p['days_before']}天后"
        out.append(Candidate(gid, cid, "replenish", p["priority"], spend, f"{name}预计{when}用完，提醒回购",
                             {"sku": sku, "category": category}, marketing=True))
    return out


def _due_on(D: date, days_before: int):
    """SQL condition: local date(paid_at) + qty × days_of_use − days_before = D, for this database.
    A days_of_use that is not a whole number is ignored."""
    if db.engine.dialect.name == "postgresql":
        return text("(timezone(:tz, orders.paid_at))::date + order_lines.qty * (CASE WHEN "
                    "(products.attributes->>'days_of_use') ~ '^[0-9]{1,4}$' THEN "
                    "(products.attributes->>'days_of_use')::int END) - :days_before = :due"
                    ).bindparams(tz=str(app_tz()), days_before=days_before, due=D)
    offset = int(datetime.now(app_tz()).utcoffset().total_seconds() // 60)
    return text(f"date(orders.paid_at, '{offset:+d} minutes', '+' || (order_lines.qty * (CASE WHEN "
                "typeof(json_extract(products.attributes, '$.days_of_use')) = 'integer' THEN "
                "json_extract(products.attributes, '$.days_of_use') END) - :days_before) || ' days') = :due"
                ).bindparams(days_before=days_before, due=D.isoformat())


def new_contact(D: date, p: dict, settings: dict) -> list[Candidate]:
    day = D - timedelta(days=p["days_after"])
    added = (select(Follow.customer_id, func.min(Follow.added_at).label("added_at")).where(
        Follow.added_at >= start_of(day), Follow.added_at < start_of(day + timedelta(days=1)),
        Follow.ended_at.is_(None)).group_by(Follow.customer_id).subquery())
    messaged = exists().where(Touch.customer_id == Customer.id, Touch.at >= added.c.added_at)
    q = _bound().join(added, added.c.customer_id == Customer.id).where(~messaged)
    when = {1: "昨天", 2: "前天"}.get(p["days_after"], f"{p['days_after']}天前")
    return [Candidate(gid, cid, "new_contact", p["priority"], spend, f"{when}新添加，还没发过消息")
            for cid, gid, spend in db.session.execute(q)]


def lost_contact(D: date, p: dict, settings: dict) -> list[Candidate]:
    """Yesterday's deletions (either side), each a task for the store manager of the guide concerned."""
    manager = aliased(Guide)
    lost_by = aliased(Guide)
    first_manager = (select(func.min(manager.id)).where(manager.store_id == lost_by.store_id,
                                                        manager.role == "manager", manager.status == "active")
                     .correlate(lost_by).scalar_subquery())
    q = (select(Follow.customer_id, first_manager, Customer.total_spend, lost_by.name, Follow.ended_by,
                Customer.name)
         .join(lost_by, lost_by.id == Follow.guide_id).join(Customer, Customer.id == Follow.customer_id)
         .where(Follow.ended_at >= start_of(D - timedelta(days=1)), Follow.ended_at < start_of(D),
                Follow.ended_by.in_(("customer", "guide")), Customer.erased_at.is_(None)))  # erased: nobody to ask
    out = []
    for cid, mid, spend, guide_name, ended_by, name in db.session.execute(q):
        if mid is None:
            continue
        who = f"顾客{name or ''}删除了导购{guide_name}" if ended_by == "customer" else f"导购{guide_name}删除了顾客{name or ''}"
        out.append(Candidate(mid, cid, "lost_contact", p["priority"], spend, f"昨天{who}，请了解原因"))
    return out


def coupon_expiring(D: date, p: dict, settings: dict) -> list[Candidate]:
    """An issued, unredeemed coupon whose last valid day is D … D + days_ahead: remind the customer to use
    it (one task per customer, for the coupon that expires first)."""
    soonest = (select(Coupon.customer_id, func.min(Coupon.expires_at).label("expires_at"))
               .where(Coupon.status == "issued", Coupon.expires_at > start_of(D),
                      Coupon.expires_at <= start_of(D + timedelta(days=p["days_ahead"] + 1)))
               .group_by(Coupon.customer_id).subquery())
    q = (_bound().add_columns(Coupon.code, CouponTemplate.name, Coupon.expires_at)
         .join(soonest, soonest.c.customer_id == Customer.id)
         .join(Coupon, and_(Coupon.customer_id == Customer.id, Coupon.expires_at == soonest.c.expires_at,
                            Coupon.status == "issued"))
         .join(CouponTemplate, CouponTemplate.id == Coupon.template_id)
         .where(marketing_allowed(D, settings)))
    out, seen = [], set()
    tz = app_tz()
    for cid, gid, spend, code, name, expires_at in db.session.execute(q.order_by(Coupon.id)):
        if cid in seen:
            continue
        seen.add(cid)
        last_day = (expires_at - timedelta(microseconds=1)).astimezone(tz).date()
        phrase = day_phrase(last_day, D)
        out.append(Candidate(gid, cid, "coupon_expiring", p["priority"] + (5 if last_day == D else 0), spend,
                             f"优惠券「{name}」{phrase}到期，提醒顾客使用", {"valid_until": last_day.isoformat()},
                             coupon=code, marketing=True))
    return out


RULE_FUNCS = {
    "birthday": birthday,
    "dormant": dormant,
    "post_purchase": post_purchase,
    "replenish": replenish,
    "coupon_expiring": coupon_expiring,
    "new_contact": new_contact,
    "lost_contact": lost_contact,
}


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _next_birthday(born: date, today: date) -> date | None:
    for year in (today.year, today.year + 1):
        try:
            d = born.replace(year=year)
        except ValueError:
            d = date(year, 2, 28)
        if d >= today:
            return d
    return None
