"""`POST /api/ingest/orders` for the POS and e-commerce systems, and the guide's month for the sidebar.

The ingest API is authenticated by an HMAC-SHA256 signature, not a session: the sender signs
`<X-Timestamp>.<raw body>` with the shared key INGEST_HMAC_KEY and sends the hex digest in `X-Signature`;
X-Timestamp is Unix seconds and must be within 5 minutes of our clock (so a captured request cannot be
replayed later — the timestamp is inside the signature). A bad or missing signature is 401 and nothing is
stored; without a configured key (outside demo mode) the endpoint answers 503.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time

from flask import Blueprint, current_app, jsonify, request

from config import DEMO_INGEST_KEY
from core.db import db
from core.http import json_error
from core.timeutil import local_today
from orders import operations as ops
from sidebar.auth import current_guide, login_required

log = logging.getLogger(__name__)

bp = Blueprint("orders_api", __name__, url_prefix="/api")

MAX_SKEW_SECONDS = 300
MAX_BODY = 1024 * 1024  # a batch of MAX_BATCH orders of a few lines each


def ingest_key() -> str | None:
    key = current_app.config.get("INGEST_HMAC_KEY")
    if not key and current_app.config.get("DEMO"):
        return DEMO_INGEST_KEY
    return key


def sign(key: str, timestamp: str, body: bytes) -> str:
    return hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _check_signature(key: str, body: bytes) -> str | None:
    """None when the request is authentic and fresh, else the reason (logged, never the key)."""
    ts = request.headers.get("X-Timestamp", "")
    sent = request.headers.get("X-Signature", "").strip().lower()
    if not ts.isdigit():
        return "X-Timestamp missing or not Unix seconds"
    if abs(time.time() - int(ts)) > MAX_SKEW_SECONDS:
        return "X-Timestamp is more than 5 minutes off"
    if not sent or not hmac.compare_digest(sent, sign(key, ts, body)):
        return "X-Signature does not match"
    return None


@bp.post("/ingest/orders")
def ingest_order():
    key = ingest_key()
    if not key:
        return json_error(503, "INGEST_HMAC_KEY is not configured: the orders API is off")
    if (request.content_length or 0) > MAX_BODY:
        return json_error(413, f"body larger than {MAX_BODY // 1024} KiB")
    request.max_content_length = MAX_BODY  # above the app-wide 64 KiB kept for callbacks
    body = request.get_data(cache=False)
    reason = _check_signature(key, body)
    if reason:
        log.warning("orders API: rejected a request from %s: %s", request.remote_addr, reason)
        return json_error(401, f"signature rejected: {reason}")
    try:
        payload = json.loads(body)
    except ValueError:
        return json_error(400, "the body is not JSON")
    try:
        results = ops.ingest_batch(ops.parse_batch(payload))
    except ops.OrderRejected as exc:
        db.session.rollback()
        return json_error(400, str(exc))
    db.session.commit()
    answers = [answer if created else dict(answer, duplicate=True) for answer, created in results]
    stored = any(created for _, created in results)
    if not isinstance(payload, list):
        return jsonify(answers[0]), 201 if stored else 200
    return jsonify({"orders": answers, "stored": sum(created for _, created in results),
                    "duplicates": sum(not created for _, created in results)}), 201 if stored else 200


@bp.get("/me/month")
@login_required
def my_month():
    return jsonify(ops.month_figures(current_guide(), local_today()))
