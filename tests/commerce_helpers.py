"""Shared builders for the commerce tests: coupon templates, signed order posts, settings for a test."""
from __future__ import annotations

import json
import time

import pytest

from core.db import db
from coupons import operations as coupon_ops
from orders.views import sign
from tasks.settings import load_rule_settings

INGEST_KEY = "test-ingest-key-0123456789"

TEMPLATES = [
    {"external_id": "C-199-30", "name": "满199减30", "kind": "amount_off", "amount": 30, "threshold": 199,
     "total_stock": 100, "per_customer_limit": 1, "valid_days": 14, "categories": ["奶粉", "纸尿裤"]},
    {"external_id": "C-90", "name": "全场9折", "kind": "percent_off", "percent": 10, "valid_days": 7,
     "per_customer_limit": 2},
    {"external_id": "C-GIFT", "name": "新客礼", "kind": "gift", "gift": "湿巾一包", "total_stock": 10,
     "valid_from": "2020-01-01", "valid_to": "2099-12-31"},
]


def templates(*records) -> None:
    coupon_ops.import_templates(list(enumerate(records or TEMPLATES, 1)))
    db.session.commit()


def post_order(client, payload, *, key=INGEST_KEY, ts=None, signature=None):
    body = json.dumps(payload, ensure_ascii=False).encode()
    ts = str(int(ts if ts is not None else time.time()))
    sig = signature if signature is not None else sign(key, ts, body)
    return client.post("/api/ingest/orders", data=body, content_type="application/json",
                       headers={"X-Timestamp": ts, "X-Signature": sig})


@pytest.fixture
def ingest_key(app, monkeypatch):
    monkeypatch.setitem(app.config, "INGEST_HMAC_KEY", INGEST_KEY)
    return INGEST_KEY


@pytest.fixture
def daytime(app, monkeypatch):
    """Quiet hours out of the way for API calls made at the real clock (tests run at any hour)."""
    monkeypatch.setitem(app.extensions, "task_rules", load_rule_settings({"quiet_hours": "03:00-03:01"}))


@pytest.fixture
def rates(app):
    from orders.commission import import_rates

    import_rates([(1, {"category": "奶粉", "rate": "2%"}), (2, {"category": "*", "rate": "0.05"})])
    db.session.commit()
