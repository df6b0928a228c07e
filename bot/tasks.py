"""Jobs for inbound callbacks: each stored callback takes effect exactly once.

The job locks its inbox row, skips it when already done, runs the handler and marks the row done in the
same transaction, so a re-delivered job (or a second worker) changes nothing. Trajectory events carry the
inbox key as their `ref` for the same reason.

The request that receives a callback only stores it; `relay_inbox` (run continually by every worker process,
see core.queue feeders) queues a job for each stored row and stamps its `queued_at`.
"""
from __future__ import annotations

import logging

from sqlalchemy import select, update

from bot import handlers
from core.db import db
from core.queue import jobs
from core.timeutil import utcnow
from models import CallbackInbox

log = logging.getLogger(__name__)


RELAY_BATCH = 500


def relay_inbox(limit: int = RELAY_BATCH) -> int:
    """Queue a job for each stored callback not yet queued; returns how many were queued.

    The rows are claimed with FOR UPDATE SKIP LOCKED, so relays in many workers share the work without
    waiting on each other, and stamped in the same transaction after the jobs are on the queue: if Redis is
    down nothing is stamped and the next pass tries again; if this process dies between the enqueue and the
    commit, the rows are queued twice, which the job's row lock and status make harmless. A stored callback
    is never left unqueued.
    """
    with db.engine.begin() as conn:
        ids = conn.scalars(
            select(CallbackInbox.id).where(CallbackInbox.queued_at.is_(None)).order_by(CallbackInbox.id)
            .limit(limit).with_for_update(skip_locked=True)
        ).all()
        if not ids:
            return 0
        jobs.enqueue_many(process_callback, [(inbox_id,) for inbox_id in ids])
        conn.execute(update(CallbackInbox).where(CallbackInbox.id.in_(ids)).values(queued_at=utcnow()))
    return len(ids)


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
    # Conditional: whatever settled the row meanwhile (an erasure marks a callback about the erased customer
    # `ignored`) is not turned back into a failure that RQ and `bot replay` would handle again.
    db.session.execute(update(CallbackInbox).where(CallbackInbox.id == inbox_id,
                                                   CallbackInbox.status.not_in(("done", "ignored")))
                       .values(status="failed", attempts=CallbackInbox.attempts + 1,
                               last_error=f"{type(exc).__name__}: {exc}"[:2000]))
    db.session.commit()
    log.warning("callback %s failed: %s", inbox_id, type(exc).__name__)
