"""`flask --app app demo seed`: the demo chain lands whole, and seeding again changes nothing."""
from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import func, select

from core.db import db
from core.timeutil import local_today, to_local
from demo.data import build_records, demo_corp_seed
from models import Customer, CustomerTag, Follow, Guide, Order, OrderLine, Product, Store, Tag

TABLES = (Store, Guide, Customer, Follow, Product, Order, OrderLine, Tag, CustomerTag)


def _counts() -> dict[str, int]:
    return {m.__tablename__: db.session.scalar(select(func.count()).select_from(m)) for m in TABLES}


def _days_to_birthday(born: date, today: date) -> int:
    for year in (today.year, today.year + 1):
        try:
            day = born.replace(year=year)
        except ValueError:  # 29 February
            day = date(year, 3, 1)
        if day >= today:
            return (day - today).days
    raise AssertionError("unreachable")


def _seed(runner, *args):
    result = runner.invoke(args=["demo", "seed", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    db.session.remove()
    return result


def test_seed_builds_the_chain(app, runner):
    result = _seed(runner)
    assert "customer" in result.output and "order" in result.output

    assert db.session.scalar(select(func.count()).select_from(Store)) == 2
    roles = db.session.execute(select(Guide.role, func.count()).group_by(Guide.role)).all()
    assert dict(roles) == {"manager": 1, "guide": 4}

    customers = db.session.scalars(select(Customer)).all()
    assert 180 <= len(customers) <= 220
    assert all(c.binding_guide_id is not None for c in customers)
    assert db.session.scalar(select(func.count()).select_from(Follow)) > len(customers)  # a few have two
    assert {c.member_level for c in customers} == {"普通", "银卡", "金卡", "钻石"}

    # Babies of varied ages: expecting, newborn, under 1, toddlers.
    today = local_today()
    ages = [(today - c.baby_birthday).days for c in customers if c.baby_birthday]
    assert sum(1 for c in customers if c.due_date and c.due_date > today) >= 10
    assert any(a <= 60 for a in ages) and any(60 < a <= 365 for a in ages) and any(a > 365 for a in ages)
    soon = [c for c in customers if c.birthday and 1 <= _days_to_birthday(c.birthday, today) <= 7]
    assert len(soon) >= 5

    # A year of orders from both channels, most matched to a customer by One-ID.
    n_orders = db.session.scalar(select(func.count()).select_from(Order))
    assert 1200 <= n_orders <= 1800
    assert set(db.session.scalars(select(Order.channel).distinct())) == {"pos", "ecommerce"}
    first, last = db.session.execute(select(func.min(Order.paid_at), func.max(Order.paid_at))).one()
    assert (last - first).days >= 330
    matched = db.session.scalar(select(func.count()).select_from(Order).where(Order.customer_id.is_not(None)))
    assert matched == n_orders
    assert db.session.scalar(select(func.count()).select_from(Product)) == 60

    # Dormant customers and customers who bought 3 days ago, for the daily tasks.
    last_days = [(today - to_local(c.last_order_at).date()).days for c in customers if c.last_order_at]
    assert sum(1 for d in last_days if d >= 60) >= 5
    assert sum(1 for d in last_days if d == 3) >= 5
    assert db.session.scalar(select(func.count()).select_from(CustomerTag)) >= len(customers)


def test_seeding_twice_changes_nothing(app, runner):
    _seed(runner)
    before = _counts()
    spend = db.session.scalar(select(func.sum(Customer.total_spend)))
    _seed(runner)
    assert _counts() == before
    assert db.session.scalar(select(func.sum(Customer.total_spend))) == spend


def test_if_empty_skips_a_seeded_database(app, runner):
    _seed(runner, "--if-empty")  # empty: seeds
    before = _counts()
    assert before["customers"] > 0
    result = _seed(runner, "--if-empty")
    assert "skipped" in result.output
    assert _counts() == before


def test_generator_is_deterministic_and_matches_the_corp():
    records = build_records()
    assert records == build_records()
    # Order numbers do not depend on the day the demo is generated.
    other_day = build_records(local_today() - timedelta(days=40))
    assert [r.get("order_no") for r in records] == [r.get("order_no") for r in other_day]

    corp = demo_corp_seed()
    customers = {r["external_userid"]: r for r in records if r["type"] == "customer"}
    assert set(corp["contacts"]) == set(customers)
    assert set(corp["members"]) == {r["userid"] for r in records if r["type"] == "guide"}
    follows = {(r["userid"], r["external_userid"]) for r in records if r["type"] == "follow"}
    assert {(f["userid"], ext) for ext, c in corp["contacts"].items() for f in c["follow_user"]} == follows


def test_seed_brings_the_demo_library(app, runner):
    from knowledge import service
    from models import Content, Script

    _seed(runner)
    _seed(runner)
    assert db.session.scalar(select(func.count()).select_from(Script)) == 40
    assert db.session.scalar(select(func.count()).select_from(Content)) == 10
    result = service.suggest("星飞帆一段的宝宝便秘了要换奶吗")
    assert result["scripts"] and result["products"]
    assert any("飞鹤" in p["name"] for p in result["products"])


def test_demo_tags_carry_the_local_wecom_ids_so_sidebar_taps_reach_mark_tag(app, runner):
    from wecom_standin.corp import Corp

    _seed(runner)
    corp = Corp.from_dict(demo_corp_seed())
    tags = db.session.scalars(select(Tag)).all()
    assert tags and all(t.wecom_id for t in tags)
    for tag in tags:
        group, found = corp.find_tag(tag.wecom_id)
        assert found["name"] == tag.name and group["group_id"] == tag.group.wecom_id
    _seed(runner)  # a second seed keeps the same ids
    assert sorted(t.wecom_id for t in db.session.scalars(select(Tag))) == sorted(t.wecom_id for t in tags)
