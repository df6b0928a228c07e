"""Jobs of the customers package: the Redis clean-up an erasure owes once it is committed.

The erasure writes an `erasure_cleanups` row in its own transaction; a feeder (every worker runs it, see
core.queue) queues a job for each row that is due and pushes the row's next attempt ten minutes out, and the
job deletes the row once Redis is clean. Redis away at the erasure, a failing job or a worker dying are all
retried; an erasure never fails because of Redis.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update

from core.db import db
from core.queue import jobs
from core.timeutil import utcnow
from models import ErasureCleanup

log = logging.getLogger(__name__)

RETRY_AFTER = timedelta(minutes=10)


def relay_erasure_cleanups(limit: int = 100) -> int:
    """Queue a job per clean-up that is due. Stamped after the jobs are queued, in the same transaction: if
    Redis is down nothing is stamped and the next pass tries again."""
    with db.engine.begin() as conn:
        ids = conn.scalars(select(ErasureCleanup.id).where(ErasureCleanup.due_at <= utcnow())
                           .order_by(ErasureCleanup.id).limit(limit).with_for_update(skip_locked=True)).all()
        if not ids:
            return 0
        jobs.enqueue_many(finish_erasure, [(cleanup_id,) for cleanup_id in ids])
        conn.execute(update(ErasureCleanup).where(ErasureCleanup.id.in_(ids))
                     .values(due_at=utcnow() + RETRY_AFTER))
    return len(ids)


def finish_erasure(cleanup_id: int) -> str:
    from customers.erasure import forget_in_redis

    cleanup = db.session.scalar(select(ErasureCleanup).where(ErasureCleanup.id == cleanup_id)
                                .with_for_update(skip_locked=True))
    if cleanup is None:
        db.session.rollback()
        return "done or running"
    try:
        forget_in_redis(cleanup)
    except Exception as exc:
        db.session.rollback()
        db.session.execute(update(ErasureCleanup).where(ErasureCleanup.id == cleanup_id).values(
            attempts=ErasureCleanup.attempts + 1, last_error=f"{type(exc).__name__}: {exc}"[:2000],
            due_at=utcnow() + RETRY_AFTER))
        db.session.commit()
        log.warning("erasure clean-up %s failed, retried later: %s", cleanup_id, type(exc).__name__)
        return "retry later"
    db.session.delete(cleanup)
    db.session.commit()
    return "done"
