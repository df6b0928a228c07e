"""Erasure against the rest of the system: a re-imported order file, other customers' and chain-wide data,
Redis clean-up that survives Redis being away, locks shared with the callback worker and with ingest."""
from __future__ import annotations

from sqlalchemy import select

from core.db import db
from customers.erasure import erase_customer
from models import Customer, Order
from tests.imports.test_import import RECORDS, run_import, write_jsonl


def test_reimporting_an_order_file_after_an_erasure_keeps_the_credit_and_does_not_store_the_mobile_again(
        app, runner, tmp_path):
    assert run_import(runner, write_jsonl(tmp_path / "all.jsonl", RECORDS)).exit_code == 0
    order = db.session.scalar(select(Order).where(Order.order_no == "POS-1"))
    cid, guide_id, attribution, commission = order.customer_id, order.guide_id, order.attribution, order.commission
    assert cid is not None and guide_id is not None and order.customer_keys == {"mobile": "13800000001"}
    erase_customer(db.session, cid, actor="cli:ops", reason="工单 PIPL-21")
    db.session.commit()

    orders_only = [r for r in RECORDS if r["type"] in ("order", "store", "product", "guide")]
    result = run_import(runner, write_jsonl(tmp_path / "again.jsonl", orders_only))
    assert result.exit_code == 0, result.output

    order = db.session.scalar(select(Order).where(Order.order_no == "POS-1"))
    assert (order.customer_id, order.guide_id, order.attribution, order.commission) == (
        cid, guide_id, attribution, commission)
    assert order.customer_keys == {}
    shell = db.session.get(Customer, cid)
    assert (shell.order_count, shell.total_spend) == (1, order.amount)
    # The order that matched nobody is still re-read from the file as before.
    assert db.session.scalar(select(Order.customer_keys).where(Order.order_no == "EC-9")) == {"unionid": "oUNKNOWN"}
