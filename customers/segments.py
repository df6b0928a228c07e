"""How a customer is described to a guide: lifecycle stage, RFM segment, baby's age. Pure functions of the
profile's stored fields and a date, so the sidebar, the daily rules and content targeting agree.

Thresholds are the maternal & baby trade's: formula and diapers are bought about monthly, so 30 days
without an order is dormant, and 180 days is lost.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from core.timeutil import to_local

NEW_DAYS = 30
DORMANT_DAYS = 30
LOST_DAYS = 180
LIFECYCLE_LABELS = {"new": "新客", "active": "活跃", "dormant": "沉睡", "lost": "流失"}

# RFM: recent = ordered within R_DAYS; frequent = at least F_ORDERS orders; valuable = spent at least M_SPEND.
R_DAYS = 30
F_ORDERS = 3
M_SPEND = Decimal("1000")
RFM_SEGMENTS = {
    (True, True, True): "重要价值客户",
    (False, True, True): "重要保持客户",
    (True, False, True): "重要发展客户",
    (False, False, True): "重要挽留客户",
    (True, True, False): "一般价值客户",
    (False, True, False): "一般保持客户",
    (True, False, False): "一般发展客户",
    (False, False, False): "一般挽留客户",
}


def _local_date(dt: datetime | None) -> date | None:
    return to_local(dt).date() if dt else None


def lifecycle_stage(customer, today: date, *, following: bool = True) -> str:
    """new | active | dormant | lost. `following`: someone still follows the customer in WeCom."""
    if not following:
        return "lost"
    added = _local_date(customer.first_added_at) or _local_date(customer.created_at)
    last_order = _local_date(customer.last_order_at)
    if added and (today - added).days < NEW_DAYS and (customer.order_count or 0) <= 1:
        return "new"
    anchor = last_order or added
    if anchor is None:
        return "active"
    idle = (today - anchor).days
    if idle >= LOST_DAYS:
        return "lost"
    if idle >= DORMANT_DAYS:
        return "dormant"
    return "active"


def rfm_segment(customer, today: date) -> str | None:
    """One of the eight classic RFM segments; None for a customer who never ordered."""
    last_order = _local_date(customer.last_order_at)
    if last_order is None:
        return None
    key = ((today - last_order).days <= R_DAYS,
           (customer.order_count or 0) >= F_ORDERS,
           Decimal(customer.total_spend or 0) >= M_SPEND)
    return RFM_SEGMENTS[key]


@dataclass(frozen=True)
class BabyAge:
    stage: str  # the tag-style stage: 孕期, 0-6月, 6-12月, 1-3岁, 3岁以上
    label: str  # what a guide reads: 孕28周, 宝宝5个月, 宝宝1岁2个月


def baby_age(customer, today: date) -> BabyAge | None:
    if customer.baby_birthday and customer.baby_birthday <= today:
        born = customer.baby_birthday
        months = (today.year - born.year) * 12 + today.month - born.month - (today.day < born.day)
        if months < 1:
            label = f"宝宝出生{(today - born).days}天"
        elif months < 12:
            label = f"宝宝{months}个月"
        else:
            label = f"宝宝{months // 12}岁" + (f"{months % 12}个月" if months % 12 else "")
        stage = "0-6月" if months < 6 else "6-12月" if months < 12 else "1-3岁" if months < 36 else "3岁以上"
        return BabyAge(stage, label)
    if customer.due_date and customer.due_date >= today:
        weeks = max(0, 40 - (customer.due_date - today).days // 7)
        return BabyAge("孕期", f"孕{weeks}周（预产期{customer.due_date.month}月{customer.due_date.day}日）")
    return None
