"""A small chain for sidebar tests: two stores, guides, a manager and an admin, customers they follow,
corp tags mirrored from the WeCom stand-in, a library, and helpers to sign in."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from core.db import db
from core.timeutil import app_tz, local_today
from models import Customer, CustomerIdentity, Event, Guide, RedDot
from tests.tasks import factories as tf

CSRF = "csrf-token-for-sidebar-tests"
TAG_GROUPS = [{"group_name": "宝宝月龄", "tags": ["孕期", "0-6月", "6-12月", "1-3岁"]},
              {"group_name": "客户意向", "tags": ["高意向", "待跟进", "券敏感"]}]


def sign_in(client, guide: Guide, *, at: float | None = None) -> dict:
    with client.session_transaction() as s:
        s["guide_id"] = guide.id
        s["signed_in_at"] = int(at or time.time())
        s["csrf"] = CSRF
    return {"X-CSRF-Token": CSRF}


def daytime() -> datetime:
    """Today 10:00 local: outside the default quiet hours, whenever the tests run."""
    return datetime.combine(local_today(), datetime.min.time(), tzinfo=app_tz()).replace(hour=10)


@dataclass
class Chain:
    guide: Guide
    colleague: Guide  # same store
    manager: Guide
    admin: Guide
    stranger: Guide  # another store
    mine: Customer  # followed by `guide`
    colleagues: Customer  # followed by `colleague`
    elsewhere: Customer  # followed by `stranger`
    ext: dict = field(default_factory=dict)  # customer id -> external_userid


def build_chain(corp=None) -> Chain:
    """The chain in the database; with a stand-in `corp`, WeCom holds the same members, contacts and tags."""
    guide = tf.guide("guide01", store_code="S1", name="王丽")
    colleague = tf.guide("guide02", store_code="S1", name="李娜")
    manager = tf.guide("manager01", role="manager", store_code="S1", name="陈店长")
    admin = tf.guide("admin01", role="admin", store_code="HQ", name="总部")
    stranger = tf.guide("guide03", store_code="S2", name="赵敏")
    today = local_today()
    mine = tf.customer(guide, added=today - timedelta(days=200), name="张女士",
                       baby_birthday=today - timedelta(days=150), member_level="金卡", points=1280)
    db.session.add(CustomerIdentity(customer_id=mine.id, kind="mobile", value="13812341234"))
    p = tf.product("NF-2", "启赋奶粉2段", "奶粉", "328")
    for days in (100, 70, 40, 10):
        tf.order(mine, tf.at(today - timedelta(days=days)), (p, 2))
    for i in range(35):
        db.session.add(Event(customer_id=mine.id, type="profile_edited", channel="wecom",
                             occurred_at=datetime.now(timezone.utc) - timedelta(days=300 - i),
                             payload={"note": f"旧记录{i}"}))
    colleagues = tf.customer(colleague, name="刘先生")
    elsewhere = tf.customer(stranger, name="孙女士")
    db.session.flush()
    for c in (mine, colleagues, elsewhere):
        for f in c.follows:
            f.remark = f"{c.name}备注"
    chain = Chain(guide, colleague, manager, admin, stranger, mine, colleagues, elsewhere)
    for c in (mine, colleagues, elsewhere):
        chain.ext[c.id] = tf.external_userid(c)
    if corp is not None:
        for g in (guide, colleague, manager, admin, stranger):
            corp.add_member(g.userid, g.name)
        for c, g in ((mine, guide), (colleagues, colleague), (elsewhere, stranger)):
            corp.add_contact(chain.ext[c.id], c.name)
            corp.add_follow(chain.ext[c.id], g.userid, remark=f"{c.name}备注")
        for group in TAG_GROUPS:
            corp.add_tag_group(group["group_name"], group["tags"])
        from bot.handlers import sync_tag_library

        sync_tag_library()
    db.session.commit()
    return chain


def task_for(chain: Chain, customer: Customer, *, script: str | None = None, rule="dormant") -> RedDot:
    dot = RedDot(guide_id=chain.guide.id, customer_id=customer.id, rule=rule, task_date=local_today(),
                 priority=50, value=Decimal("0"), rank=1, visible=True, reason="30天没有购买，问问近况",
                 script_external_id=script)
    db.session.add(dot)
    db.session.commit()
    return dot


def today() -> date:
    return local_today()
