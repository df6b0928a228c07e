"""Jobs for inbound callbacks: each stored callback takes effect exactly once.

The job locks its inbox row, skips it when already done, runs the handler and marks the row done in the
same transaction, so a re-delivered job (or a second worker) changes nothing. Trajectory events carry the
inbox key as their `ref` for the same reason.
"""
from __future__ import annotations

import logging

from sqlalchemy import select

from bot import handlers
from core.db import db
from core.timeutil import utcnow
from models import CallbackInbox

log = logging.getLogger(__name__)


def process_callback(inbox_id: int) -> str:
    row = db.session.scalar(select(CallbackInbox).where(CallbackInbox.id == inbox_id).with_for_update())
    if row is None:
        return "missing"
    if row.status in ("done", "ignored"):
        db.session.rollback()
        return row.status
    row.attempts += 1
    handler = handlers.find(row.payload)
    try:
        if handler is None:
            row.status = "ignored"
            row.result = {"note": "no handler for this callback type"}
        else:
            row.result = handler(row.payload, ref=row.dedup_key) or {}
            row.status = "done"
        row.processed_at = utcnow()
        row.last_error = None
        db.session.commit()
    except Exception as exc:
        db.session.rollback()
        _record_failure(inbox_id, exc)
        raise  # RQ retries with backoff
    return row.status


def _record_failure(inbox_id: int, exc: Exception) -> None:
    row = db.session.get(CallbackInbox, inbox_id)
    if row is not None:
        row.status = "failed"
        row.attempts += 1
        row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        db.session.commit()
    log.warning("callback %s failed: %s", inbox_id, type(exc).__name__)
