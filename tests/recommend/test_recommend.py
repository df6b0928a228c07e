"""Recommendations from each source: stage rules (purchase, baby's age, due date), products bought together,
browsing without buying, replenishment; the exclusions; the API and the CLI."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from core.db import db
from core.timeutil import local_today, utcnow
from customers.operations import record_event
from models import ProductPair
from recommend import operations as ops
from tests.knowledge.test_api import sign_in
from tests.tasks import factories as f


@pytest.fixture(autouse=True)
def _fresh_catalog(app):
    app.extensions.pop("recommend_catalog", None)
    yield
    app.extensions.pop("recommend_catalog", None)


def catalog():
    P = {}
    for sku, name, cat, price, attrs in [
        ("NF-FH-1", "飞鹤星飞帆 1段 800g", "奶粉", "278", {"stage": 1, "days_of_use": 10}),
        ("NF-FH-2", "飞鹤星飞帆 2段 800g", "奶粉", "268", {"stage": 2, "days_of_use": 10}),
        ("NF-AT-2", "爱他美卓萃 2段 800g", "奶粉", "418", {"stage": 2, "days_of_use": 10}),
        ("ND-HW-NB", "花王妙而舒纸尿裤 NB码 84片", "纸尿裤", "139", {"size": "NB", "days_of_use": 8}),
        ("ND-HW-S", "花王妙而舒纸尿裤 S码 82片", "纸尿裤", "139", {"size": "S", "days_of_use": 10}),
        ("ND-HW-M", "花王妙而舒纸尿裤 M码 64片", "纸尿裤", "129", {"size": "M", "days_of_use": 11}),
        ("SJ-01", "全棉时代 婴儿棉柔巾 100抽×6包", "湿巾", "89", {"days_of_use": 20}),
        ("SJ-04", "babycare 手口湿巾 25抽×10包", "湿巾", "49", {"days_of_use": 15}),
        ("FS-01", "嘉宝 原味高铁米粉 225g", "辅食", "69", {"from_months": 6}),
        ("TC-01", "好孩子 轻便可坐躺婴儿推车", "推车", "1299", {"from_months": 0}),
        ("TC-02", "Bugaboo Fox 5 高景观推车", "推车", "7980", {"from_months": 0}),
        ("TC-03", "宝宝好 V18 一键收车遛娃神器", "推车", "699", {"from_months": 6}),
        ("TC-04", "Cybex Priam 高景观推车", "推车", "9980", {"from_months": 0}),
        ("ZY-01", "好孩子 新生儿提篮式安全座椅", "安全座椅", "1599", {"from_months": 0}),
        ("NP-01", "贝亲 宽口径玻璃奶瓶 160ml", "奶瓶", "99", {}),
        ("YM-05", "十月结晶 待产包 全套", "孕妈", "299", {}),
        ("WJ-01", "费雪 脚踏钢琴健身架", "玩具", "399", {"from_months": 0}),
    ]:
        P[sku] = f.product(sku, name, cat, price, **attrs)
    return P


def ago(days: float) -> datetime:
    return utcnow() - timedelta(days=days)


def by_sku(rows):
    return {r["sku"]: r for r in rows}


def test_stage_one_formula_brings_size_s_diapers_and_hand_and_mouth_wipes(app):
    P = catalog()
    g = f.guide()
    c = f.customer(g)  # no baby on record: only what she bought speaks
    f.order(c, ago(5), (P["NF-FH-1"], 1))
    db.session.commit()
    rows = by_sku(ops.recommend(c))
    assert "ND-HW-S" in rows and "SJ-04" in rows
    assert rows["ND-HW-S"]["source"] == "stage" and "1段奶粉" in rows["ND-HW-S"]["reason"]


def test_baby_age_moves_her_to_the_next_stage_of_her_own_brand(app):
    P = catalog()
    g = f.guide()
    c = f.customer(g, baby_birthday=local_today() - timedelta(days=200))
    f.order(c, ago(60), (P["NF-FH-1"], 3))
    db.session.commit()
    rows = ops.recommend(c)
    top = by_sku(rows)
    assert "NF-FH-2" in top and "NF-AT-2" not in top  # her brand, not the more popular or pricier one
    assert "该转2段奶粉" in top["NF-FH-2"]["reason"] and "宝宝6个月" in top["NF-FH-2"]["reason"]
    assert all(r["reason"] for r in rows)


def test_due_date_brings_the_newborn_kit(app):
    catalog()
    g = f.guide()
    c = f.customer(g, due_date=local_today() + timedelta(days=30))
    db.session.commit()
    rows = by_sku(ops.recommend(c))
    assert {"YM-05", "ND-HW-NB", "NP-01"} <= set(rows)
    assert "新生儿用品清单" in rows["YM-05"]["reason"]


def test_products_bought_together_come_from_the_rebuilt_pairs(app, runner):
    P = catalog()
    g = f.guide()
    for _ in range(4):  # four mothers bought the play gym within weeks of a stroller
        m = f.customer(g)
        f.order(m, ago(100), (P["TC-01"], 1))
        f.order(m, ago(90), (P["WJ-01"], 1))
    c = f.customer(g)
    f.order(c, ago(40), (P["TC-01"], 1))
    db.session.commit()
    out = runner.invoke(args=["recommend", "rebuild"])
    assert out.exit_code == 0 and "pair(s)" in out.output, out.output
    pair = db.session.scalar(select(ProductPair).where(ProductPair.sku == "TC-01", ProductPair.other_sku == "WJ-01"))
    assert pair.together == 4 and pair.score == pytest.approx(4 / (5 * 4) ** 0.5, abs=1e-4)
    rows = by_sku(ops.recommend(c))
    assert rows["WJ-01"]["source"] == "together" and "常一起买" in rows["WJ-01"]["reason"]
    assert "TC-01" not in rows  # bought, not replenishable: never again


def test_three_high_priced_strollers_viewed_none_bought_gives_a_mid_priced_one_and_a_coupon(app):
    P = catalog()
    g = f.guide()
    c = f.customer(g)
    for sku in ("TC-02", "TC-04", "TC-02"):
        record_event(c, "product_view", occurred_at=ago(3), payload={"sku": sku})
    looker = f.customer(g)  # two views only: not enough
    for sku in ("TC-02", "TC-04"):
        record_event(looker, "product_view", occurred_at=ago(3), payload={"sku": sku})
    buyer = f.customer(g)  # viewed three, then bought one: no nudge
    for sku in ("TC-02", "TC-04", "TC-02"):
        record_event(buyer, "product_view", occurred_at=ago(3), payload={"sku": sku})
    f.order(buyer, ago(1), (P["TC-02"], 1))
    db.session.commit()
    rows = by_sku(ops.recommend(c))
    stroller = [r for r in rows.values() if r["category"] == "推车"]
    assert len(stroller) == 1 and stroller[0]["sku"] == "TC-01"  # the mid-priced one, not viewed
    assert stroller[0]["source"] == "browsing" and stroller[0]["coupon_hint"] == "推车品类优惠券"
    assert "看了3次高价推车" in stroller[0]["reason"]
    assert not [r for r in ops.recommend(looker) if r["source"] == "browsing"]
    assert not [r for r in ops.recommend(buyer) if r["source"] == "browsing"]


def test_replenishable_items_come_back_when_they_run_out_and_not_before(app):
    P = catalog()
    g = f.guide()
    running_out, just_bought = f.customer(g), f.customer(g)
    f.order(running_out, ago(18), (P["SJ-01"], 1))  # 20 days of use: runs out in 2 days
    f.order(just_bought, ago(2), (P["SJ-01"], 1))
    db.session.commit()
    rows = by_sku(ops.recommend(running_out))
    assert rows["SJ-01"]["source"] == "replenish" and "补货" in rows["SJ-01"]["reason"]
    assert "SJ-01" not in by_sku(ops.recommend(just_bought))


def test_recommendations_api_and_cli(app, client, runner):
    P = catalog()
    a, b = f.guide("a"), f.guide("b")
    mine, theirs = f.customer(a), f.customer(b)
    f.order(mine, ago(5), (P["NF-FH-1"], 1))
    db.session.commit()
    url = f"/api/customers/{f.external_userid(mine)}/recommendations"
    assert client.get(url).status_code == 401
    sign_in(client, a)
    resp = client.get(url, query_string={"top": 3})
    assert resp.status_code == 200 and 1 <= len(resp.json["recommendations"]) <= 3
    first = resp.json["recommendations"][0]
    assert {"sku", "name", "price", "reason", "source", "source_label"} <= set(first)
    assert client.get(f"/api/customers/{f.external_userid(theirs)}/recommendations").status_code == 404
    assert client.get("/api/customers/wmNobody/recommendations").status_code == 404
    assert client.get(url, query_string={"top": "lots"}).status_code == 400
    out = runner.invoke(args=["recommend", "for", f.external_userid(mine), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output.splitlines()[0])["reason"]
    out = runner.invoke(args=["recommend", "for", "wmNobody"])
    assert out.exit_code != 0 and "no customer with external_userid 'wmNobody'" in out.output


def test_browsing_names_a_coupon_she_can_still_receive(app):
    from models import Coupon, CouponTemplate

    catalog()
    g = f.guide()
    c = f.customer(g)
    for sku in ("TC-02", "TC-04", "TC-02"):
        record_event(c, "product_view", occurred_at=ago(2), payload={"sku": sku})
    everything = CouponTemplate(external_id="all-20", name="全场满200减20", kind="amount_off", amount=20,
                                threshold=200, categories=[], per_customer_limit=1)
    used = CouponTemplate(external_id="tc-100", name="推车满1000减100", kind="amount_off", amount=100,
                          threshold=1000, categories=["推车"], per_customer_limit=1)
    other = CouponTemplate(external_id="nf-30", name="奶粉立减30", kind="amount_off", amount=30,
                           categories=["奶粉"], per_customer_limit=1)
    db.session.add_all([everything, used, other])
    db.session.flush()
    db.session.add(Coupon(code="TC100USED", template_id=used.id, customer_id=c.id, guide_id=g.id,
                          issued_at=ago(1), expires_at=utcnow() + timedelta(days=10)))
    db.session.commit()
    row = next(r for r in ops.recommend(c) if r["source"] == "browsing")
    # Her stroller coupon is used up (limit 1), the formula one does not apply: the chain-wide one is offered.
    assert row["coupon"] == {"template": "all-20", "name": "全场满200减20"}
    assert "「全场满200减20」" in row["reason"]
