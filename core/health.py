"""GET /healthz: 200 when the database and Redis answer, 503 (with which one failed) otherwise."""
from __future__ import annotations

import logging

from flask import Blueprint, jsonify

from core.db import db
from core.redis_store import rstore

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz():
    state = {}
    try:
        db.ping()
        state["database"] = "ok"
    except Exception as exc:  # any failure means "not healthy"; say which part
        log.warning("healthz: database unreachable: %s", type(exc).__name__)
        state["database"] = "unreachable"
    try:
        rstore.client.ping()
        state["redis"] = "ok" if not rstore.embedded else "ok (embedded stand-in)"
    except Exception as exc:
        log.warning("healthz: redis unreachable: %s", type(exc).__name__)
        state["redis"] = "unreachable"
    healthy = all(v.startswith("ok") for v in state.values())
    return jsonify(status="ok" if healthy else "unhealthy", **state), 200 if healthy else 503
