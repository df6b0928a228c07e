"""A bulk import running alongside order ingest: both lock customers in id order, before anything else, so
neither is aborted by a deadlock (a lost import means minutes of work rolled back, and nothing imported)."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from core.db import db
from imports import operations as import_ops
from models import Customer, CustomerIdentity
from orders.operations import ingest_batch, match_pending, parse_batch
from tests.tasks import factories as f


def _order(order_no: str, external_userid: str, amount: int, kind: str = "external_userid") -> dict:
    return {"order_no": order_no, "channel": "pos", "paid_at": "2024-05-02T10:00:00+08:00", "amount": amount,
            "customer": {kind: external_userid},
            "items": [{"sku": "MILK-1", "name": "奶粉", "category": "formula", "qty": 1, "price": amount}]}


@pytest.mark.parametrize("writer", ["order batch", "hourly match"])
def test_an_import_and_an_order_writer_about_the_same_customers_both_commit(app, monkeypatch, writer):
    g = f.guide()
    first, second = f.customer(g, name="刘女士"), f.customer(g, name="王芳")
    assert first.id < second.id
    first_ext, second_ext = f.external_userid(first), f.external_userid(second)
    db.session.commit()
    if writer == "hourly match":  # orders that matched nobody, and the member numbers that name them now
        ingest_batch(parse_batch([_order("API-1", "M-1", 30, "member_no"), _order("API-2", "M-2", 40, "member_no")]))
        db.session.add_all([CustomerIdentity(customer_id=first.id, kind="member_no", value="M-1"),
                            CustomerIdentity(customer_id=second.id, kind="member_no", value="M-2")])
        db.session.commit()

    # The import updates the second customer's profile, then (its orders phase) the first one's figures.
    records = [{"type": "customer", "external_userid": second_ext, "name": "王芳芳"},
               {"type": "order", **_order("POS-IMPORT-1", first_ext, 100)}]
    in_orders_phase, resume = threading.Event(), threading.Event()
    apply_orders = import_ops._apply_orders

    def paused_apply_orders(*args, **kwargs):
        in_orders_phase.set()  # a long file: the orders phase starts a minute after the profiles
        resume.wait(10)
        return apply_orders(*args, **kwargs)

    monkeypatch.setattr(import_ops, "_apply_orders", paused_apply_orders)
    outcome = {}

    def run_import():
        with app.app_context():
            try:
                outcome["counts"] = import_ops.import_records(enumerate(records, 1))
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                outcome["error"] = exc
            finally:
                db.session.remove()

    importing = threading.Thread(target=run_import)
    importing.start()
    assert in_orders_phase.wait(10)
    # The order batch (or the hourly match) runs meanwhile, for both customers; the import goes on half a
    # second later.
    threading.Timer(0.5, resume.set).start()
    try:
        db.session.execute(text("SET LOCAL statement_timeout = '20s'"))
        if writer == "order batch":
            ingest_batch(parse_batch([_order("API-1", first_ext, 30), _order("API-2", second_ext, 40)]))
        else:
            assert match_pending()["matched"] == 2
        db.session.commit()
    finally:
        resume.set()
        importing.join(20)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["counts"] == {"customer": 1, "order": 1}
    db.session.expire_all()
    a, b = db.session.get(Customer, first.id), db.session.get(Customer, second.id)
    assert (a.order_count, a.total_spend) == (2, 130)
    assert (b.name, b.order_count, b.total_spend) == ("王芳芳", 1, 40)
