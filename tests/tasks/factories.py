"""Small builders for task tests: a store with a manager and guides, customers they follow, orders, touches."""
from __future__ import annotations

import itertools
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from core.db import db
from customers.operations import refresh_binding
from models import (Customer, CustomerIdentity, CustomerTag, Follow, Guide, Order, OrderLine, Product, Store, Tag,
                    TagGroup, Touch)

TZ = ZoneInfo("Asia/Shanghai")
D = date(2026, 6, 15)  # a Monday
_seq = itertools.count(1)


def at(d: date, hour: int = 10) -> datetime:
    return datetime.combine(d, time(hour), tzinfo=TZ)


def store(code="S1") -> Store:
    s = db.session.query(Store).filter_by(code=code).one_or_none()
    if s is None:
        s = Store(code=code, name=f"门店{code}")
        db.session.add(s)
        db.session.flush()
    return s


def guide(userid="guide01", role="guide", store_code="S1", name=None) -> Guide:
    g = Guide(userid=userid, name=name or userid, role=role, store_id=store(store_code).id)
    db.session.add(g)
    db.session.flush()
    return g


def customer(by: Guide, *, added: date = D - timedelta(days=100), name=None, **fields) -> Customer:
    n = next(_seq)
    c = Customer(name=name or f"顾客{n}", **fields)
    db.session.add(c)
    db.session.flush()
    db.session.add(CustomerIdentity(customer_id=c.id, kind="external_userid", value=f"wmT{n:04d}"))
    db.session.add(Follow(guide_id=by.id, customer_id=c.id, added_at=at(added)))
    db.session.flush()
    refresh_binding(c)
    return c


def external_userid(c: Customer) -> str:
    return db.session.query(CustomerIdentity.value).filter_by(customer_id=c.id, kind="external_userid").scalar()


def product(sku="NF-1", name="奶粉1段", category="奶粉", price="300", **attributes) -> Product:
    p = db.session.query(Product).filter_by(sku=sku).one_or_none()
    if p is None:
        p = Product(sku=sku, name=name, category=category, price=Decimal(price), attributes=attributes)
        db.session.add(p)
        db.session.flush()
    return p


def order(c: Customer, paid: datetime, *lines: tuple[Product, int]) -> Order:
    amount = sum(p.price * q for p, q in lines)
    o = Order(order_no=f"O{next(_seq):06d}", channel="pos", customer_id=c.id, guide_id=c.binding_guide_id,
              paid_at=paid, amount=amount)
    db.session.add(o)
    db.session.flush()
    for i, (p, q) in enumerate(lines, 1):
        db.session.add(OrderLine(order_id=o.id, line_no=i, sku=p.sku, name=p.name, category=p.category, qty=q,
                                 price=p.price))
    c.last_order_at = max(c.last_order_at or paid, paid)
    c.order_count = (c.order_count or 0) + 1
    c.total_spend = (c.total_spend or 0) + amount
    db.session.flush()
    return o


def tag(c: Customer, name: str, group="客户类型") -> None:
    g = db.session.query(TagGroup).filter_by(name=group).one_or_none()
    if g is None:
        g = TagGroup(name=group)
        db.session.add(g)
        db.session.flush()
    t = db.session.query(Tag).filter_by(group_id=g.id, name=name).one_or_none()
    if t is None:
        t = Tag(group_id=g.id, name=name)
        db.session.add(t)
        db.session.flush()
    db.session.add(CustomerTag(customer_id=c.id, tag_id=t.id, source="guide"))
    db.session.flush()


def touch(c: Customer, g: Guide | None, when: datetime, kind="marketing") -> None:
    db.session.add(Touch(customer_id=c.id, guide_id=g.id if g else None, kind=kind, channel="content", at=when))
    db.session.flush()
