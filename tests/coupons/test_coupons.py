"""Coupons: import all-or-nothing, stock under concurrency, per-customer limit, touch caps, the sidebar API,
expiry, the audit trail and the coupon_expiring red dot."""
from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta

from sqlalchemy import func, select

from core.db import db
from core.timeutil import local_today
from coupons import operations as ops
from models import Coupon, CouponEvent, CouponTemplate, RedDot, Touch
from tasks import operations as task_ops
from tests.commerce_helpers import TEMPLATES, daytime, templates  # noqa: F401 (fixtures)
from tests.knowledge.test_api import sign_in
from tests.tasks import factories as f
from tests.tasks.factories import TZ


def noon(days=0):
    return datetime.combine(local_today() + timedelta(days=days), datetime.min.time().replace(hour=12), tzinfo=TZ)


def count(model, *where):
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def write_jsonl(path, records):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records)
                    + "\n", encoding="utf-8")
    return path


def test_import_is_all_or_nothing_and_lists_every_bad_line(app, runner, tmp_path):
    bad = [
        TEMPLATES[0],
        {"external_id": "X1", "name": "坏券", "kind": "cash_back", "valid_days": 3},
        {"external_id": "X2", "name": "缺金额", "kind": "amount_off", "valid_days": 3},
        "{not json",
        {"external_id": "X3", "name": "无有效期", "kind": "gift", "gift": "勺子"},
        {"external_id": "X4", "name": "减太多", "kind": "amount_off", "amount": 50, "threshold": 30, "valid_days": 3},
        {"external_id": "C-199-30", "name": "重复", "kind": "gift", "gift": "x", "valid_days": 3},
    ]
    result = runner.invoke(args=["coupons", "import", str(write_jsonl(tmp_path / "c.jsonl", bad))])
    assert result.exit_code == 1
    out = result.output
    assert "line 2: coupon: kind must be one of amount_off|percent_off|gift, not 'cash_back'" in out
    assert "line 3: coupon: amount is missing" in out
    assert "line 4: JSON syntax error" in out
    assert "line 5: coupon: validity is missing" in out
    assert "line 6: coupon: amount 50.00 must be less than threshold 30.00" in out
    assert "line 7: coupon: external_id 'C-199-30' is also on line 1" in out
    assert "6 bad record(s): nothing imported" in out
    db.session.remove()
    assert count(CouponTemplate) == 0


def test_import_upserts_and_export_imports_back_unchanged(app, runner, tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", TEMPLATES)
    assert "3 created" in runner.invoke(args=["coupons", "import", str(path)]).output
    changed = dict(TEMPLATES[0], total_stock=200)
    result = runner.invoke(args=["coupons", "import", str(write_jsonl(tmp_path / "c2.jsonl", [changed]))])
    assert "1 updated" in result.output, result.output
    db.session.remove()
    assert db.session.scalar(select(CouponTemplate.total_stock).where(CouponTemplate.external_id == "C-199-30")) == 200
    for name in ("out.jsonl", "out.csv"):
        out = tmp_path / name
        assert runner.invoke(args=["coupons", "export", str(out)]).exit_code == 0
        again = runner.invoke(args=["coupons", "import", str(out)])
        assert "0 created, 0 updated, 3 unchanged" in again.output, (name, again.output)
    listing = runner.invoke(args=["coupons", "list"]).output
    assert "C-199-30\t满199减30\t满199减30\t200/200 left\tlimit 1\t14 days from issue" in listing
    assert "C-90\t全场9折\t9折\tunlimited" in listing
    events = db.session.scalars(select(CouponEvent.type).order_by(CouponEvent.id)).all()
    assert events == ["template_created"] * 3 + ["template_updated"]


def test_fifty_concurrent_issues_against_a_stock_of_ten_give_exactly_ten(app):
    templates()
    g = f.guide()
    customers = [f.customer(g) for _ in range(50)]
    db.session.commit()
    ids = [c.id for c in customers]
    outcomes, barrier = [], threading.Barrier(50)

    def issue(customer_id):
        with app.app_context():
            from models import Customer, Guide

            barrier.wait()
            try:
                ops.issue("C-GIFT", db.session.get(Customer, customer_id), db.session.get(Guide, g.id), now=noon())
                db.session.commit()
                outcomes.append("issued")
            except ops.CouponRefused as exc:
                db.session.rollback()
                outcomes.append(exc.code)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=issue, args=(cid,)) for cid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("issued") == 10 and outcomes.count("out_of_stock") == 40
    db.session.expire_all()
    assert count(Coupon) == 10
    assert db.session.scalar(select(CouponTemplate.issued_count).where(CouponTemplate.external_id == "C-GIFT")) == 10
    assert count(CouponEvent, CouponEvent.type == "issued") == 10
    assert count(Touch, Touch.channel == "coupon") == 10  # refused issues left no touch behind


def test_per_customer_limit_is_409_with_the_reason_even_when_racing(app):
    templates()
    g = f.guide()
    c = f.customer(g)
    db.session.commit()
    outcomes, barrier = [], threading.Barrier(6)

    def issue(days):
        with app.app_context():
            from models import Customer, Guide

            barrier.wait()
            try:  # on six different days, so the daily touch cap is not what stops them
                ops.issue("C-90", db.session.get(Customer, c.id), db.session.get(Guide, g.id), now=noon(-days * 2))
                db.session.commit()
                outcomes.append("issued")
            except ops.CouponRefused as exc:
                db.session.rollback()
                outcomes.append(exc.reason)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=issue, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("issued") == 2
    assert sorted(set(outcomes) - {"issued"}) == ["每位顾客限领2张，这位顾客已领2张"]
    assert count(Coupon, Coupon.customer_id == c.id) == outcomes.count("issued")


def test_sidebar_lists_issues_and_refuses_with_reasons(app, client, daytime):
    templates()
    g, other = f.guide("guide01"), f.guide("guide02")
    c = f.customer(g)
    db.session.commit()
    headers = sign_in(client, g)
    ext = f.external_userid(c)
    listing = client.get(f"/api/customers/{ext}/coupons").json
    assert [t["external_id"] for t in listing["templates"]] == ["C-199-30", "C-90", "C-GIFT"]
    assert all(t["can_issue"] for t in listing["templates"]) and listing["coupons"] == []
    assert listing["templates"][0]["value"] == "满199减30" and listing["templates"][2]["stock_left"] == 10

    assert client.post(f"/api/customers/{ext}/coupons", json={"template": "C-GIFT"}).status_code == 403  # no CSRF
    resp = client.post(f"/api/customers/{ext}/coupons", json={"template": "C-GIFT"}, headers=headers)
    assert resp.status_code == 201, resp.json
    code = resp.json["code"]
    assert len(code) == 12 and resp.json["page"].endswith(f"/coupons/{code}")
    # The link sent is a tracked redirect (its opens count in the funnels) to the coupon's page.
    assert "/c/" in resp.json["link"] and resp.json["link"] in resp.json["text"]
    assert code in resp.json["text"] and "新客礼" in resp.json["text"]
    token_path = resp.json["link"][resp.json["link"].index("/c/"):]
    hop = client.get(token_path)
    assert hop.status_code in (302, 303) and hop.headers["Location"].endswith(f"/coupons/{code}")
    page = client.get(f"/coupons/{code}")
    assert page.status_code == 200 and code in page.get_data(as_text=True) and "未使用" in page.get_data(as_text=True)
    assert client.get("/coupons/NOSUCHCODE12").status_code == 404

    # The same customer again: the per-customer limit, then (for another template) today's touch cap.
    again = client.post(f"/api/customers/{ext}/coupons", json={"template": "C-GIFT"}, headers=headers)
    assert again.status_code == 409 and again.json["code"] == "limit"
    assert again.json["error"] == "每位顾客限领1张，这位顾客已领1张"
    capped = client.post(f"/api/customers/{ext}/coupons", json={"template": "C-90"}, headers=headers)
    assert capped.status_code == 409 and capped.json["code"] == "quota" and "今天已收到1条营销消息" in capped.json["error"]
    assert count(Coupon) == 1
    assert db.session.scalar(select(CouponTemplate.issued_count).where(CouponTemplate.external_id == "C-90")) == 0

    listing = client.get(f"/api/customers/{ext}/coupons").json
    gift = next(t for t in listing["templates"] if t["external_id"] == "C-GIFT")
    assert not gift["can_issue"] and gift["reason"].startswith("每位顾客限领1张") and gift["stock_left"] == 9
    assert [(x["code"], x["status"]) for x in listing["coupons"]] == [(code, "issued")]

    assert client.post(f"/api/customers/{ext}/coupons", json={"template": "NOPE"}, headers=headers).status_code == 404
    assert client.post(f"/api/customers/{ext}/coupons", json={}, headers=headers).status_code == 400
    sign_in(client, other)  # not their customer
    assert client.get(f"/api/customers/{ext}/coupons").status_code == 404
    assert client.post(f"/api/customers/{ext}/coupons", json={"template": "C-90"}, headers=headers).status_code == 404


def test_window_and_disabled_templates_refuse_with_reasons(app):
    templates({"external_id": "LATER", "name": "春节券", "kind": "gift", "gift": "红包", "valid_from": "2099-01-20",
               "valid_to": "2099-02-10"},
              {"external_id": "OFF", "name": "停用券", "kind": "gift", "gift": "x", "valid_days": 3, "enabled": "否"})
    g = f.guide()
    c = f.customer(g)
    db.session.commit()
    for external_id, reason in (("LATER", "这张券2099年1月20日起才能发放"), ("OFF", "这张券已停用")):
        try:
            ops.issue(external_id, c, g, now=noon())
            raise AssertionError(f"{external_id} was issued")
        except ops.CouponRefused as exc:
            assert (exc.code, exc.reason) == ("not_valid", reason)
    listing = ops.available_for(c, noon())
    assert [(t["external_id"], t["can_issue"], t["reason"]) for t in listing["templates"]] == [
        ("LATER", False, "这张券2099年1月20日起才能发放")]  # a disabled template is not offered at all
    assert count(Coupon) == 0 and count(Touch) == 0


def test_expiry_job_and_audit_trail(app, runner):
    from scheduler.jobs import coupon_expire

    templates()
    g = f.guide()
    c1, c2 = f.customer(g), f.customer(g)
    db.session.commit()
    old = ops.issue("C-90", c1, g, now=noon(-10))  # 7 days: expired three days ago
    fresh = ops.issue("C-90", c2, g, now=noon())
    db.session.commit()
    assert coupon_expire(local_today()) == {"expired": 1}
    assert coupon_expire(local_today()) == {"expired": 0}
    db.session.expire_all()
    assert (db.session.get(Coupon, old.id).status, db.session.get(Coupon, fresh.id).status) == ("expired", "issued")
    assert [(e["type"], e["from"], e["to"]) for e in ops.events_for(old.code)] == [
        ("issued", None, "issued"), ("expired", "issued", "expired")]
    assert "expired 1" in runner.invoke(args=["coupons", "list"]).output
    shown = runner.invoke(args=["coupons", "show", old.code.lower()]).output
    assert "\texpired\t" in shown and "issued    - -> issued" in shown and "expired   issued -> expired" in shown
    assert runner.invoke(args=["coupons", "show", "NOPE"]).exit_code != 0


def test_coupon_expiring_red_dot(app):
    templates()
    g = f.guide()
    soon, later, used = f.customer(g), f.customer(g), f.customer(g)
    db.session.commit()
    D = local_today()
    # 7-day coupons issued 5 days ago: last valid day is D+1 (within D…D+2); 2 days ago: D+4 (not yet).
    c_soon = ops.issue("C-90", soon, g, now=noon(-5))
    ops.issue("C-90", later, g, now=noon(-2))
    c_used = ops.issue("C-90", used, g, now=noon(-5))
    c_used.status = "redeemed"
    db.session.commit()
    task_ops.generate(D)
    tasks = db.session.scalars(select(RedDot).where(RedDot.rule == "coupon_expiring")).all()
    assert [(t.customer_id, t.coupon_ref) for t in tasks] == [(soon.id, c_soon.code)]
    assert tasks[0].reason == "优惠券「全场9折」明天到期，提醒顾客使用"


def test_a_csv_export_never_hands_excel_a_formula_and_imports_back_unchanged(app, runner, tmp_path):
    import csv

    risky = {"external_id": "+C-1", "name": "=HYPERLINK(\"http://x\",\"领券\")", "kind": "gift", "gift": "@湿巾一包",
             "description": "-仅限新客", "categories": ["=奶粉", "纸尿裤"], "valid_days": 7}
    assert "1 created" in runner.invoke(args=["coupons", "import", str(write_jsonl(tmp_path / "c.jsonl", [risky]))]
                                        ).output
    out = tmp_path / "out.csv"
    assert runner.invoke(args=["coupons", "export", str(out)]).exit_code == 0
    with open(out, encoding="utf-8-sig", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert [c for c in row.values() if c and c[0] in "=+-@"] == []  # Excel shows every cell as text
    assert row["name"] == "'=HYPERLINK(\"http://x\",\"领券\")" and row["categories"] == "'=奶粉|纸尿裤"
    again = runner.invoke(args=["coupons", "import", str(out)])
    assert "0 created, 0 updated, 1 unchanged" in again.output, again.output
    t = db.session.scalar(select(CouponTemplate))
    assert (t.external_id, t.name, t.gift, t.description, t.categories) == (
        "+C-1", risky["name"], "@湿巾一包", "-仅限新客", ["=奶粉", "纸尿裤"])
