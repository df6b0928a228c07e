"""POST /api/ingest/orders with a batch (a JSON array of orders): all or nothing, per-order answers,
duplicates without double effect, and a cost in SQL statements and Redis round trips that does not grow with
the number of orders."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from core.timeutil import local_today
from core.db import db
from coupons import operations as coupon_ops
from customers.operations import ensure_identity
from models import Coupon, Customer, Event, Order, OrderLine
from reports import leaderboard as lb
from tests.commerce_helpers import daytime, ingest_key, post_order, rates, templates  # noqa: F401 (fixtures)
from tests.orders.test_ingest import count, customer_with_mobile, order, paid
from tests.statements import redis_round_trips, statements  # noqa: F401 (fixture)
from tests.tasks import factories as f


def chain(n_customers=4):
    """Two guides in S1, customers with mobiles 1390000000i (even ones a's, odd ones b's), two products."""
    a, b = f.guide("guide_a"), f.guide("guide_b")
    f.product("NF-1", "奶粉1段", "奶粉", "300")
    f.product("DP-M", "纸尿裤M", "纸尿裤", "58")
    customers = [customer_with_mobile((a, b)[i % 2], f"139{i:08d}", added=local_today() - timedelta(days=40))
                 for i in range(n_customers)]
    db.session.commit()
    return a, b, customers


def mixed(prefix: str, n: int, n_customers: int) -> list[dict]:
    """n orders: 4 in 5 by a known mobile, 1 in 5 by an unknown member card; every other one with an unknown
    SKU; each carries a coupon code nobody issued."""
    out = []
    for i in range(n):
        keys = {"member_no": f"M-{prefix}-{i}"} if i % 5 == 4 else {"mobile": f"139{i % n_customers:08d}"}
        items = [{"sku": "NF-1", "qty": 1, "price": "300"}, {"sku": "DP-M", "qty": 2, "price": "58"}]
        if i % 2:
            items.append({"sku": f"NEW-{i}", "qty": 1, "price": "10"})
        amount = sum(Decimal(x["price"]) * x["qty"] for x in items)
        out.append(order(f"{prefix}-{i}", keys=keys, items=items, amount=str(amount), coupons=[f"NOCODE{i:06d}"]))
    return out


def test_a_batch_costs_the_same_statements_and_round_trips_however_many_orders(
        app, client, ingest_key, rates, daytime, redis_round_trips):
    templates()
    a, b, customers = chain()
    coupons = [coupon_ops.issue("C-90", customers[i], a, now=paid(1, hour=12)) for i in (0, 2)]
    db.session.commit()
    costs = []
    for size, prefix, coupon in ((5, "SMALL", coupons[0]), (60, "LARGE", coupons[1])):
        batch = mixed(prefix, size, len(customers))
        batch[0 if coupon is coupons[0] else 2]["coupons"].append(coupon.code)  # one real redemption per batch
        del redis_round_trips[:]
        with statements() as sent:
            resp = post_order(client, batch)
        assert resp.status_code == 201 and resp.json["stored"] == size, resp.json
        assert {"code": coupon.code, "result": "redeemed"} in resp.json["orders"][0 if size == 5 else 2]["coupons"]
        costs.append((len(sent), len(redis_round_trips)))
    (small_sql, small_redis), (large_sql, large_redis) = costs
    assert large_sql == small_sql <= 20, costs
    assert large_redis == small_redis, costs
    # And a single order costs no more than a batch.
    with statements() as sent:
        assert post_order(client, mixed("ONE", 1, len(customers))[0]).status_code == 201
    assert len(sent) <= small_sql


def test_a_bad_record_rejects_the_batch_naming_it_and_nothing_is_written(app, client, ingest_key):
    chain()
    batch = [order("B-1"), order("B-2", items=[{"sku": "A", "price": 1}]), order("B-3")]
    resp = post_order(client, batch)
    assert resp.status_code == 400 and resp.json["error"] == "orders[2] (B-2): items[1].qty is missing"
    resp = post_order(client, [order("B-1"), "not an order"])
    assert resp.status_code == 400 and resp.json["error"] == "orders[2]: an order must be a JSON object"
    assert post_order(client, []).status_code == 400
    assert "more than 1000" in post_order(client, [order(f"B-{i}") for i in range(1001)]).json["error"]
    assert "JSON object (one order) or an array" in post_order(client, "nothing").json["error"]
    db.session.expire_all()
    assert count(Order) == 0 and count(OrderLine) == 0 and count(Event, Event.type == "order") == 0


def test_batch_answers_duplicates_matching_later_and_live_leaderboards(app, client, ingest_key, rates):
    a, b, customers = chain()
    lb.rebuild("month", local_today())  # a reconciled board, then the orders move it live
    first = post_order(client, [order("B-1", keys={"mobile": "13900000000"}),
                                order("B-2", keys={"mobile": "13900000001"}),
                                order("B-1", keys={"mobile": "13900000000"}, amount="1"),  # repeated inside
                                order("B-3", keys={"member_no": "M-LATER"})])
    assert first.status_code == 201
    answers = first.json["orders"]
    assert (first.json["stored"], first.json["duplicates"]) == (3, 1)
    assert [(x["order_no"], x["guide"], x["commission"], x.get("duplicate")) for x in answers] == [
        ("B-1", "guide_a", "11.80", None), ("B-2", "guide_b", "11.80", None), ("B-1", "guide_a", "11.80", True),
        ("B-3", None, "0.00", None)]
    assert answers[3]["flags"] == [{"flag": "unmatched_customer"}]

    # Sent again (a retry of a back-fill): the stored answers come back and nothing changes.
    again = post_order(client, [order("B-2", amount="999"), order("B-4", keys={"mobile": "13900000002"})])
    assert again.status_code == 201
    assert again.json["orders"][0] == dict(answers[1], duplicate=True)
    assert post_order(client, [order("B-1")]).status_code == 200
    db.session.expire_all()
    assert count(Order) == 4 and count(OrderLine) == 8 and count(Event, Event.type == "order") == 3
    c0 = db.session.get(Customer, customers[0].id)
    assert (c0.order_count, c0.total_spend) == (1, Decimal("416.00"))

    # The unmatched one is matched when its card is linked.
    ensure_identity(customers[3], "member_no", "M-LATER")
    db.session.commit()
    db.session.expire_all()
    b3 = db.session.scalar(select(Order).where(Order.order_no == "B-3"))
    assert (b3.customer_id, b3.guide_id, b3.commission) == (customers[3].id, b.id, Decimal("11.80"))
    assert db.session.get(Customer, customers[3].id).order_count == 1

    live = lb.guide_rows("month", local_today())
    lb.rebuild("month", local_today())
    assert lb.guide_rows("month", local_today()) == live
    assert [(r["userid"], r["orders"], r["gmv"]) for r in live] == [("guide_a", 2, "832.00"),
                                                                    ("guide_b", 2, "832.00")]


def test_a_coupon_claimed_twice_in_one_batch_goes_to_the_first_order(app, client, ingest_key, daytime):
    templates()
    a, b, customers = chain()
    coupon = coupon_ops.issue("C-90", customers[0], a, now=paid(1, hour=12))
    db.session.commit()
    resp = post_order(client, [order("C-2", keys={"mobile": "13900000000"}, coupons=[coupon.code]),
                               order("C-1", keys={"mobile": "13900000000"}, coupons=[coupon.code])])
    first, second = resp.json["orders"]  # the first in the batch, whatever the order numbers
    assert first["coupons"] == [{"code": coupon.code, "result": "redeemed"}]
    assert second["coupons"][0]["result"].startswith("already redeemed by order #")
    assert second["flags"][-1]["flag"] == "bad_coupon"
    db.session.expire_all()
    assert db.session.get(Coupon, coupon.id).order_id == db.session.scalar(
        select(Order.id).where(Order.order_no == "C-2"))
    assert db.session.scalar(select(Order.flags).where(Order.order_no == "C-1"))[-1]["flag"] == "bad_coupon"


def test_concurrent_batches_for_the_same_customers_all_succeed_and_add_up(app, ingest_key, rates):
    import threading

    a, b, customers = chain()
    statuses, barrier = [], threading.Barrier(6)

    def send(k):
        client = app.test_client()
        batch = [order(f"T{k}-{i}", keys={"mobile": f"139{i % 4:08d}"}) for i in range(20)]
        barrier.wait()
        statuses.append(post_order(client, list(reversed(batch)) if k % 2 else batch).status_code)

    threads = [threading.Thread(target=send, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [201] * 6  # no deadlock between batches locking the same customers
    db.session.expire_all()
    assert count(Order) == 120
    assert [(c.order_count, c.total_spend) for c in db.session.scalars(
        select(Customer).where(Customer.id.in_([c.id for c in customers])).order_by(Customer.id))] == [
        (30, Decimal("12480.00"))] * 4
