"""Jobs of the customers package: the Redis clean-up an erasure owes once it is committed.

The erasure writes an `erasure_cleanups` row in its own transaction. Right after the commit the request or
command tries the clean-up once (`finish_erasure_now`), so the row, which holds the values erased, usually
lives milliseconds and needs no worker. The fallback: a feeder (every worker runs it, see core.queue) queues a
job for each row that is due and pushes the row's next attempt ten minutes out, and the job deletes the row
once Redis is clean. Redis away at the erasure, a failing job or a worker dying are all retried; an erasure
never fails because of Redis. A clean-up failing ALERT_AFTER times is logged as an error; `flask customers
audit` lists those pending.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update

from core.db import db
from core.queue import jobs
from core.timeutil import utcnow
from models import Customer, ErasureCleanup

log = logging.getLogger(__name__)

RETRY_AFTER = timedelta(minutes=10)
ALERT_AFTER = 6  # failed attempts (an hour of retries) before each further failure is logged as an error


def pending_cleanups() -> list[dict]:
    """The clean-ups still owed, oldest erasure first: customer, when erased, attempts, last error (never
    the terms, which are the erased values)."""
    rows = db.session.execute(select(ErasureCleanup.customer_id, Customer.erased_at, ErasureCleanup.attempts,
                                     ErasureCleanup.last_error, ErasureCleanup.due_at)
                              .join(Customer, Customer.id == ErasureCleanup.customer_id)
                              .order_by(Customer.erased_at, ErasureCleanup.id)).all()
    now = utcnow()
    return [{"customer_id": r.customer_id, "erased_at": r.erased_at.isoformat() if r.erased_at else None,
             "age_seconds": int((now - r.erased_at).total_seconds()) if r.erased_at else None,
             "attempts": r.attempts, "last_error": r.last_error, "next_attempt": r.due_at.isoformat()}
            for r in rows]


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


def erase_and_commit(customer_id: int, *, actor, reason: str) -> dict:
    """`erasure.erase_customer` on the request's session, committed, then its Redis clean-up tried at once:
    what the command and the admin API both do. On an error (ErasureBusy, CustomerNotFound, ValueError) the
    session is rolled back and the error raised for the caller to answer."""
    from customers import erasure

    try:
        result = erasure.erase_customer(db.session, customer_id, actor=actor, reason=reason)
    except Exception:
        db.session.rollback()
        raise
    db.session.commit()
    finish_erasure_now(customer_id)
    return result


def finish_erasure_now(customer_id: int) -> None:
    """Try the Redis clean-up of a just-committed erasure of `customer_id` once. Best effort: it never raises
    (the caller's erasure is committed and must be answered as done); a failure is recorded on the row, which
    a worker's job then retries. A clean-up a worker is running now is left to it."""
    try:
        for cleanup_id in db.session.scalars(select(ErasureCleanup.id)
                                             .where(ErasureCleanup.customer_id == customer_id)).all():
            finish_erasure(cleanup_id, wait=False)
    except Exception as exc:  # the database itself failing here: the row stays for the worker
        db.session.rollback()
        log.error("erasure clean-up of customer %s not tried after the commit: %s", customer_id,
                  type(exc).__name__)


def finish_erasure(cleanup_id: int, *, wait: bool = True) -> str:
    """The job: do the clean-up `cleanup_id` and delete its row, or record why it failed. `wait`: the job
    waits for a lock held by the relay that queued it (its commit is a moment away) or by another run (which
    then deleted the row); the try right after an erasure does not wait."""
    from customers.erasure import forget_in_redis

    cleanup = db.session.scalar(select(ErasureCleanup).where(ErasureCleanup.id == cleanup_id)
                                .with_for_update(skip_locked=not wait))
    if cleanup is None:
        db.session.rollback()
        return "done or running"
    try:
        forget_in_redis(cleanup)
    except Exception as exc:
        db.session.rollback()
        attempts = db.session.scalar(update(ErasureCleanup).where(ErasureCleanup.id == cleanup_id).values(
            attempts=ErasureCleanup.attempts + 1, last_error=f"{type(exc).__name__}: {exc}"[:2000],
            due_at=utcnow() + RETRY_AFTER).returning(ErasureCleanup.attempts))
        db.session.commit()
        if attempts is not None and attempts >= ALERT_AFTER:
            log.error("erasure clean-up %s failed %d times (%s): the erased customer's name and ids stay in "
                      "erasure_cleanups until it works; see `flask --app app customers audit`",
                      cleanup_id, attempts, type(exc).__name__)
        else:
            log.warning("erasure clean-up %s failed, retried later: %s", cleanup_id, type(exc).__name__)
        return "retry later"
    db.session.delete(cleanup)
    db.session.commit()
    return "done"
