"""POST /api/ingest/orders: signature, idempotency, One-ID matching, flags, attribution, commission, coupons;
the hourly matching of unmatched orders; the bulk import through the same attribution; the guide's month."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from core.db import db
from core.timeutil import local_today
from coupons import operations as coupon_ops
from customers.operations import ensure_identity
from models import Coupon, Customer, CustomerIdentity, Event, JobRun, Order, OrderLine
from tests.commerce_helpers import TEMPLATES, daytime, ingest_key, post_order, rates, templates  # noqa: F401 (fixtures)
from tests.knowledge.test_api import sign_in
from tests.tasks import factories as f
from tests.tasks.factories import TZ


def count(model, *where):
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def paid(days=0, hour=15):
    return datetime.combine(local_today() - timedelta(days=days), datetime.min.time().replace(hour=hour),
                            tzinfo=TZ)


def order(no="POS-1", *, keys=None, items=None, amount="416", when=None, **extra):
    return {"order_no": no, "channel": "pos", "store": "S1", "paid_at": (when or paid()).isoformat(),
            "amount": amount, "customer": keys if keys is not None else {"mobile": "13900000001"},
            "items": items if items is not None else [{"sku": "NF-1", "qty": 1, "price": "300"},
                               {"sku": "DP-M", "qty": 2, "price": "58", "name": "纸尿裤M", "category": "纸尿裤"}],
            **extra}


def customer_with_mobile(g, mobile="13900000001", **kw):
    c = f.customer(g, **kw)
    ensure_identity(c, "mobile", mobile)
    return c


def test_signature_is_required_and_bad_ones_store_nothing(app, client, ingest_key):
    f.store("S1")
    db.session.commit()
    payload = order()
    assert post_order(client, payload, key="wrong-key-0123456789").status_code == 401
    assert post_order(client, payload, signature="").status_code == 401
    stale = post_order(client, payload, ts=time.time() - 400)
    assert stale.status_code == 401 and "5 minutes" in stale.json["error"]
    # A signature over another body (the amount changed in transit) is refused too.
    body = json.dumps(payload).encode()
    ts = str(int(time.time()))
    from orders.views import sign

    forged = client.post("/api/ingest/orders", data=body.replace(b'"416"', b'"1"'), content_type="application/json",
                         headers={"X-Timestamp": ts, "X-Signature": sign(ingest_key, ts, body)})
    assert forged.status_code == 401
    assert count(Order) == 0 and count(OrderLine) == 0


def test_no_key_configured_is_503(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "INGEST_HMAC_KEY", None)
    resp = post_order(client, order(), key="anything-at-all-123")
    assert resp.status_code == 503 and "INGEST_HMAC_KEY" in resp.json["error"]
    assert count(Order) == 0


def test_bad_payloads_are_400_naming_the_field(app, client, ingest_key):
    cases = {
        "items must be a non-empty list": order(items=[]),
        "items[1].qty is missing": order(items=[{"sku": "A", "price": 1}]),
        "paid_at is not an ISO 8601 time": order(when=None, paid_at="yesterday"),
        "amount is not a number": order(amount="lots"),
        "customer.phone is not an identity key": order(keys={"phone": "1"}),
        "coupons must be a list": order(coupons="ABC"),
    }
    for expected, payload in cases.items():
        if "paid_at" in expected:
            payload["paid_at"] = "yesterday"
        resp = post_order(client, payload)
        assert resp.status_code == 400 and expected in resp.json["error"], (expected, resp.json)
    assert post_order(client, "not an object").status_code == 400
    assert count(Order) == 0


def test_matched_order_is_credited_priced_and_idempotent(app, client, ingest_key, rates):
    g = f.guide("guide01")
    f.product("NF-1", "奶粉1段", "奶粉", "300")
    f.product("DP-M", "纸尿裤M", "纸尿裤", "58")
    c = customer_with_mobile(g)
    db.session.commit()
    resp = post_order(client, order())
    assert resp.status_code == 201, resp.json
    # Commission: 300 × 2 % (奶粉) + 116 × 5 % (* for every other category) = 6 + 5.80.
    assert resp.json == {"order_no": "POS-1", "status": "stored", "customer_matched": True, "guide": "guide01",
                         "attribution": "binding", "amount": "416.00", "commission": "11.80", "flags": [],
                         "coupons": []}
    again = post_order(client, order(amount="999"))  # a retry, even a changed one, changes nothing
    assert again.status_code == 200 and again.json == dict(resp.json, duplicate=True)
    db.session.expire_all()
    assert count(Order) == 1 and count(OrderLine) == 2
    assert count(Event, Event.type == "order", Event.ref == "POS-1") == 1
    c = db.session.get(Customer, c.id)
    assert (c.order_count, c.total_spend) == (1, Decimal("416.00"))


def test_unknown_customer_and_sku_are_stored_flagged_then_matched_later(app, client, ingest_key, runner):
    g = f.guide("guide01")
    f.product("NF-1", "奶粉1段", "奶粉", "300")
    db.session.commit()
    resp = post_order(client, order(keys={"member_no": "M-777"},
                                    items=[{"sku": "NF-1", "qty": 1, "price": "300"},
                                           {"sku": "NEW-9", "qty": 1, "price": "116"}]))
    assert resp.status_code == 201
    assert resp.json["customer_matched"] is False and resp.json["guide"] is None
    assert resp.json["flags"] == [{"flag": "unmatched_customer"}, {"flag": "unknown_sku", "skus": ["NEW-9"]}]
    stored = db.session.scalar(select(Order).where(Order.order_no == "POS-1"))
    assert stored.customer_id is None and [l.category for l in stored.lines] == ["奶粉", "未知"]

    # The member's card is linked to her WeCom profile later: the order is matched and credited at once.
    c = f.customer(g, added=local_today() - timedelta(days=30))
    ensure_identity(c, "member_no", "M-777")
    db.session.commit()
    db.session.expire_all()
    stored = db.session.scalar(select(Order).where(Order.order_no == "POS-1"))
    assert stored.customer_id == c.id and stored.guide_id == g.id and stored.attribution == "binding"
    assert [x["flag"] for x in stored.flags] == ["unknown_sku", "matched_later"]
    assert db.session.get(Customer, c.id).order_count == 1
    assert "0 of 0" in runner.invoke(args=["orders", "match"]).output


def test_the_hourly_job_matches_identities_that_arrived_without_the_hook(app, client, ingest_key, runner):
    g = f.guide("guide01")
    db.session.commit()
    post_order(client, order(keys={"unionid": "oUNION-1"}))
    post_order(client, order("POS-2", keys={"unionid": "oNOBODY"}))
    c = f.customer(g, added=local_today() - timedelta(days=30))
    db.session.add(CustomerIdentity(customer_id=c.id, kind="unionid", value="oUNION-1"))  # e.g. a bulk import
    db.session.commit()
    result = runner.invoke(args=["orders", "match"])
    assert "1 of 2 unmatched orders matched" in result.output
    db.session.expire_all()
    assert db.session.scalar(select(Order.guide_id).where(Order.order_no == "POS-1")) == g.id
    assert db.session.scalar(select(Order.customer_id).where(Order.order_no == "POS-2")) is None


def test_a_customer_import_matches_and_credits_the_orders_waiting_for_its_customers_at_once(
        app, client, ingest_key, runner, tmp_path, monkeypatch):
    """The POS sent orders before the CRM's member list was imported: the import matches them (to the customer and
    to her binding guide, with her figures) as soon as it commits, not an hour later; orders whose keys the file
    does not name stay waiting; beyond the per-import limit the hourly job takes the rest."""
    from imports import operations as imports_ops
    from orders import operations as ops
    from tests.imports.test_import import write_jsonl

    g = f.guide("guide01")
    db.session.commit()
    for no, keys in (("POS-1", {"member_no": "M-1"}), ("POS-2", {"mobile": "+86 139 0000 0002"}),
                     ("POS-3", {"member_no": "M-1"}), ("POS-4", {"member_no": "M-NOBODY"})):
        assert post_order(client, order(no, keys=keys)).json["customer_matched"] is False
    records = [{"type": "customer", "external_userid": "wmA", "member_no": "M-1", "name": "王女士"},
               {"type": "customer", "external_userid": "wmB", "mobile": "13900000002", "name": "李女士"},
               {"type": "follow", "userid": "guide01", "external_userid": "wmA",
                "added_at": (datetime.now(TZ) - timedelta(days=30)).isoformat()}]
    path = write_jsonl(tmp_path / "crm.jsonl", records)
    monkeypatch.setattr(ops, "MATCH_PER_RUN", 2)  # the per-import limit, made small
    result = runner.invoke(args=["data", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert "3 records imported" in result.output
    assert "2 order(s) that were waiting for their customer matched and credited" in result.output
    db.session.expire_all()
    rows = {o.order_no: o for o in db.session.scalars(select(Order))}
    wang = db.session.scalar(select(CustomerIdentity.customer_id).where(CustomerIdentity.value == "M-1"))
    assert rows["POS-1"].customer_id == wang and rows["POS-1"].guide_id == g.id
    assert rows["POS-1"].attribution == "binding" and rows["POS-1"].commission is not None
    assert "matched_later" in [x["flag"] for x in rows["POS-1"].flags]
    assert rows["POS-2"].customer_id is not None and rows["POS-2"].guide_id is None  # no guide follows her
    assert rows["POS-3"].customer_id is None and rows["POS-4"].customer_id is None  # over the limit; nobody's
    assert db.session.get(Customer, wang).order_count == 1
    assert "1 of 2 unmatched orders matched" in runner.invoke(args=["orders", "match"]).output  # the rest
    assert imports_ops.ORDERS_MATCHED not in imports_ops.import_file(path)  # a re-import: nothing waits


def test_the_hourly_job_looks_up_identities_per_batch_and_old_unmatchable_orders_do_not_starve_new_ones(
        app, client, ingest_key, monkeypatch):
    from orders import operations as ops
    from scheduler import runner
    from scheduler.jobs import JOBS
    from tests.statements import statements

    monkeypatch.setattr(ops, "MATCH_PER_RUN", 4)
    monkeypatch.setattr(ops, "MATCH_BATCH", 3)
    monkeypatch.setattr(ops, "EVENTS_PER_INSERT", 1)  # a run's trajectory events go in chunks
    g = f.guide("guide01")
    db.session.commit()
    for i in range(6):  # the six oldest will never match anybody
        post_order(client, order(f"OLD-{i}", keys={"member_no": f"M-NOBODY-{i}", "mobile": f"1370000000{i}"}))
    post_order(client, order("NEW-1", keys={"unionid": "oUNION-1"}))
    post_order(client, order("NEW-2", keys={"member_no": "M-2"}))
    for no, kind, value in (("NEW-1", "unionid", "oUNION-1"), ("NEW-2", "member_no", "M-2")):
        c = f.customer(g, added=local_today() - timedelta(days=30))
        db.session.add(CustomerIdentity(customer_id=c.id, kind=kind, value=value))  # e.g. a bulk import
    db.session.commit()

    job = next(j for j in JOBS if j.key == "orders_match")
    slot = runner.slot_time(job, local_today())
    with statements("from customer_identities") as lookups:
        assert runner.run_slot(job, slot) == "ran"  # the 4 oldest, in batches of 3 and 1: two lookups
    assert len(lookups) == 2
    assert count(Order, Order.customer_id.is_(None)) == 8
    assert runner.run_slot(job, slot + timedelta(hours=1)) == "ran"  # goes on after them, not from the oldest
    assert count(Order, Order.customer_id.is_(None)) == 6
    assert count(Event, Event.type == "order", Event.ref.in_(["NEW-1", "NEW-2"])) == 2
    results = db.session.scalars(select(JobRun.result).order_by(JobRun.slot)).all()
    # The second run reached the newest unmatched order: it says so, and the next starts from the oldest
    # at once (no empty pass in between).
    assert [(r["pending"], r["matched"], r["next_after"]) for r in results] == [
        (4, 0, results[0]["next_after"]), (4, 2, 0)]
    assert results[0]["next_after"] > 0
    assert runner.run_slot(job, slot + timedelta(hours=2)) == "ran"
    assert db.session.scalars(select(JobRun.result).order_by(JobRun.slot)).all()[-1]["pending"] == 4


def test_an_order_matched_elsewhere_after_the_hourly_job_read_it_is_not_matched_twice(app, client, ingest_key):
    from sqlalchemy import update

    from orders import operations as ops

    g = f.guide("guide01")
    db.session.commit()
    post_order(client, order("RACE-1", keys={"member_no": "M-RACE"}, amount="100"))
    c = f.customer(g, added=local_today() - timedelta(days=30))
    db.session.add(CustomerIdentity(customer_id=c.id, kind="member_no", value="M-RACE"))
    db.session.commit()
    pending = db.session.scalars(select(Order).where(Order.customer_id.is_(None))).all()
    found = ops._matches(pending)  # the hourly job has read the order and found its customer ...
    oid = pending[0].id
    assert found == {oid: c.id}
    with db.engine.connect() as callback:  # ... when a callback linking the identity matches it and commits
        callback.execute(update(Order).where(Order.id == oid).values(customer_id=c.id))
        callback.commit()
    assert ops._claim(found) == 0  # the job finds it matched: it does not settle it a second time
    db.session.commit()
    assert db.session.get(Customer, c.id).order_count == 0  # (the callback's own settling is not simulated)
    assert db.session.scalar(select(func.count()).select_from(Event).where(Event.ref == "RACE-1")) == 0


def test_binding_at_paid_time_and_last_touch_mode(app, client, ingest_key, monkeypatch):
    a, b = f.guide("guide_a"), f.guide("guide_b")
    c = customer_with_mobile(a, added=local_today() - timedelta(days=10))  # a added her 10 days ago
    db.session.commit()
    # Paid 20 days ago, before anyone added her: nobody is credited.
    early = post_order(client, order("EARLY", when=paid(20)))
    assert (early.json["guide"], early.json["attribution"]) == (None, "none")
    assert early.json["customer_matched"] is True
    # b messaged her yesterday; binding mode still credits a, last_touch credits b.
    f.touch(c, b, paid(1, hour=11))
    db.session.commit()
    assert post_order(client, order("BIND")).json["guide"] == "guide_a"
    monkeypatch.setitem(app.config, "ATTRIBUTION_MODE", "last_touch")
    touch = post_order(client, order("TOUCH")).json
    assert (touch["guide"], touch["attribution"]) == ("guide_b", "last_touch")
    monkeypatch.setitem(app.config, "ATTRIBUTION_WINDOW_DAYS", "1")  # the touch is outside a 1-day window?
    f.touch(c, b, paid(3, hour=11))
    old = post_order(client, order("OLD", when=paid(2))).json  # last touch before it was 3 days ago
    assert (old["guide"], old["attribution"]) == ("guide_a", "binding")


def test_order_redeems_its_coupons_and_flags_bad_ones(app, client, ingest_key, daytime):
    templates()
    g = f.guide("guide01")
    f.product("NF-1", "奶粉1段", "奶粉", "300")  # 300 of 奶粉 + 116 of 纸尿裤: over the 199 threshold
    c = customer_with_mobile(g)
    other = f.customer(g)
    db.session.commit()
    mine = coupon_ops.issue("C-199-30", c, g, now=paid(1, hour=12))
    theirs = coupon_ops.issue("C-199-30", other, g, now=paid(1, hour=12))
    db.session.commit()
    resp = post_order(client, order(coupons=[mine.code.lower(), theirs.code, "NOSUCHCODE00"]))
    assert resp.status_code == 201
    assert resp.json["coupons"] == [{"code": mine.code, "result": "redeemed"},
                                    {"code": theirs.code, "result": "issued to another customer"},
                                    {"code": "NOSUCHCODE00", "result": "unknown code"}]
    assert resp.json["flags"][-1]["flag"] == "bad_coupon"
    db.session.expire_all()
    assert db.session.get(Coupon, mine.id).status == "redeemed"
    assert db.session.get(Coupon, theirs.id).status == "issued"
    assert [e["type"] for e in coupon_ops.events_for(mine.code)] == ["issued", "redeemed"]
    second = post_order(client, order("POS-2", coupons=[mine.code]))
    assert second.json["coupons"][0]["result"].startswith("already redeemed")
    # Only the applicable categories count towards the threshold: 116 of 纸尿裤 is not 199.
    templates({**TEMPLATES[0], "external_id": "C-2"})
    fresh = coupon_ops.issue("C-2", c, g, now=paid(9, hour=12))
    db.session.commit()
    small = post_order(client, order("POS-3", items=[{"sku": "DP-M", "qty": 2, "price": "58", "category": "纸尿裤"}],
                                     amount="116", coupons=[fresh.code]))
    assert small.json["coupons"] == [{"code": fresh.code, "result": "below the threshold of 199.00"}]


def test_bulk_import_uses_the_same_attribution(app, runner, tmp_path, rates):
    g = f.guide("guide01")
    c = customer_with_mobile(g, added=local_today() - timedelta(days=10))
    db.session.commit()
    records = [
        {"type": "order", "order_no": "IMP-OLD", "channel": "pos", "paid_at": paid(20).isoformat(), "amount": 100,
         "customer": {"mobile": "13900000001"},
         "items": [{"sku": "X", "name": "x", "category": "玩具", "qty": 1, "price": 100}]},
        {"type": "order", "order_no": "IMP-NEW", "channel": "pos", "paid_at": paid(2).isoformat(), "amount": 100,
         "customer": {"mobile": "13900000001"},
         "items": [{"sku": "X", "name": "x", "category": "玩具", "qty": 1, "price": 100}]},
    ]
    path = tmp_path / "orders.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records), encoding="utf-8")
    assert runner.invoke(args=["data", "import", str(path)]).exit_code == 0
    db.session.remove()
    got = {o.order_no: (o.guide_id, o.attribution, o.commission) for o in db.session.scalars(select(Order))}
    assert got == {"IMP-OLD": (None, "none", Decimal("0.00")), "IMP-NEW": (g.id, "binding", Decimal("5.00"))}


def test_the_bulk_import_and_the_api_credit_the_same_guide(app, client, runner, tmp_path, ingest_key, rates):
    """The same order, imported in bulk or posted to the API, goes to the same binding guide (or to nobody)."""
    from models import Follow

    first, second, late = f.guide("guide_a"), f.guide("guide_b"), f.guide("guide_c")
    c = customer_with_mobile(first, added=local_today() - timedelta(days=60))
    c.follows[0].ended_at = paid(30)  # the first guide's relation ended 30 days ago
    db.session.add_all([Follow(guide_id=second.id, customer_id=c.id, added_at=paid(40)),
                        Follow(guide_id=late.id, customer_id=c.id, added_at=paid(5))])
    db.session.commit()
    ages = {"before-any": 70, "first-live": 50, "after-first-left": 20, "all-three": 2}
    items = [{"sku": "DP-M", "qty": 2, "price": "58", "name": "纸尿裤M", "category": "纸尿裤"}]
    records = [{"type": "order", **order(f"IMP-{name}", when=paid(days, hour=12), items=items, amount="116")}
               for name, days in ages.items()]
    path = tmp_path / "orders.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records), encoding="utf-8")
    result = runner.invoke(args=["data", "import", str(path)])
    assert result.exit_code == 0, result.output
    for name, days in ages.items():
        resp = post_order(client, order(f"API-{name}", when=paid(days, hour=12), items=items, amount="116"))
        assert resp.status_code == 201, resp.json
    db.session.remove()
    credited = {o.order_no: (o.guide_id, o.attribution) for o in db.session.scalars(select(Order))}
    expected = {"before-any": (None, "none"), "first-live": (first.id, "binding"),
                "after-first-left": (second.id, "binding"), "all-three": (second.id, "binding")}
    assert {name: credited[f"IMP-{name}"] for name in ages} == expected
    assert {name: credited[f"API-{name}"] for name in ages} == expected


def test_my_month_for_the_sidebar(app, client, ingest_key, rates):
    g, other = f.guide("guide01"), f.guide("guide02")
    f.product("NF-1", "奶粉1段", "奶粉", "300")
    customer_with_mobile(g, added=local_today() - timedelta(days=40))
    customer_with_mobile(other, "13900000002")
    db.session.commit()
    post_order(client, order("M-1", items=[{"sku": "NF-1", "qty": 1, "price": "300"}], amount="300"))
    post_order(client, order("M-2", keys={"mobile": "13900000002"}))
    if local_today().day > 1:  # last month's order does not count (skip on the 1st: no "earlier this month")
        post_order(client, order("M-0", when=paid(local_today().day)))
    assert client.get("/api/me/month").status_code == 401
    sign_in(client, g)
    body = client.get("/api/me/month").json
    assert body == {"month": f"{local_today():%Y-%m}", "orders": 1, "gmv": "300.00", "commission": "6.00"}


def test_the_same_order_posted_concurrently_is_stored_once(app, ingest_key):
    import threading

    g = f.guide("guide01")
    customer_with_mobile(g)
    db.session.commit()
    statuses, barrier = [], threading.Barrier(8)

    def send():
        client = app.test_client()
        barrier.wait()
        statuses.append(post_order(client, order("RACE-1")).status_code)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] * 7 + [201]
    db.session.expire_all()
    assert count(Order) == 1 and count(OrderLine) == 2 and count(Event, Event.type == "order") == 1


def test_bulk_import_in_last_touch_mode(app, runner, tmp_path, monkeypatch, rates):
    a, b = f.guide("guide_a"), f.guide("guide_b")
    c = customer_with_mobile(a, added=local_today() - timedelta(days=10))
    f.touch(c, b, paid(3, hour=11))
    db.session.commit()
    monkeypatch.setitem(app.config, "ATTRIBUTION_MODE", "last_touch")
    record = {"type": "order", "order_no": "IMP-T", "channel": "pos", "paid_at": paid(2).isoformat(), "amount": 100,
              "customer": {"mobile": "13900000001"},
              "items": [{"sku": "X", "name": "x", "category": "玩具", "qty": 1, "price": 100}]}
    path = tmp_path / "orders.jsonl"
    path.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
    assert runner.invoke(args=["data", "import", str(path)]).exit_code == 0
    db.session.remove()
    o = db.session.scalar(select(Order).where(Order.order_no == "IMP-T"))
    assert (o.guide_id, o.attribution, o.commission) == (b.id, "last_touch", Decimal("5.00"))
