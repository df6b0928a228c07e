"""Runs the jobs of scheduler/jobs.py on cron triggers in APP_TIMEZONE (APScheduler).

Several scheduler processes (or machines) may run: each slot is claimed with a Redis lock that expires
(`SET NX EX`), so exactly one runs it, and recorded in `job_runs`. At start-up a slot of today that has no
finished run — the service was down at 09:00 — is run once. A run that crashed midway is simply run again:
every job is idempotent (unique tasks, one push per guide, kind and day).
"""
from __future__ import annotations

import logging
from datetime import date, datetime, time

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select

from core.db import db
from core.redis_store import rstore
from core.timeutil import UTC, app_tz, utcnow
from models import JobRun
from scheduler.jobs import JOBS, Job

log = logging.getLogger(__name__)

LOCK_SECONDS = 3600  # longer than any job runs; a crashed holder frees the slot after it


def slot_time(job: Job, D: date) -> datetime:
    """The UTC instant of a daily job's slot on local day D."""
    return datetime.combine(D, time(job.hour, job.minute), tzinfo=app_tz()).astimezone(UTC)


def current_slot(job: Job, now: datetime) -> datetime:
    """The slot `now` falls in: today's time for a daily job, the clock-aligned interval for an interval job."""
    if job.every_minutes is None:
        return slot_time(job, now.astimezone(app_tz()).date())
    local = now.astimezone(app_tz())
    minutes = local.hour * 60 + local.minute
    start = minutes - minutes % job.every_minutes
    aligned = datetime.combine(local.date(), time(start // 60, start % 60), tzinfo=app_tz())
    return aligned.astimezone(UTC)


def run_slot(job: Job, slot: datetime) -> str:
    """Run one slot of `job` unless it is done or another instance holds it. Returns what happened."""
    lock = f"scheduler:lock:{job.key}:{slot:%Y%m%dT%H%M}"
    if not rstore.client.set(lock, 1, nx=True, ex=LOCK_SECONDS):
        return "locked"
    try:
        run = db.session.scalar(select(JobRun).where(JobRun.job == job.key, JobRun.slot == slot))
        if run is not None and run.status == "done":
            return "done already"
        if run is None:
            run = JobRun(job=job.key, slot=slot)
            db.session.add(run)
        run.status, run.started_at, run.error, run.finished_at = "running", utcnow(), None, None
        db.session.commit()
        run_id = run.id
        try:
            result = job.func(slot.astimezone(app_tz()).date())
        except Exception as exc:
            db.session.rollback()
            run = db.session.get(JobRun, run_id)
            run.status, run.error, run.finished_at = "failed", f"{type(exc).__name__}: {exc}"[:2000], utcnow()
            db.session.commit()
            log.exception("job %s for %s failed", job.key, slot)
            return "failed"
        run = db.session.get(JobRun, run_id)
        run.status, run.result, run.finished_at = "done", result, utcnow()
        db.session.commit()
        log.info("job %s for %s done: %s", job.key, slot, result)
        return "ran"
    finally:
        rstore.client.delete(lock)
        db.session.remove()


def catch_up(now: datetime | None = None) -> dict[str, str]:
    """Run, once, each job whose slot today has passed without a finished run."""
    now = now or utcnow()
    today = now.astimezone(app_tz()).date()
    out = {}
    for job in JOBS:
        if job.every_minutes is not None:
            continue
        slot = slot_time(job, today)
        if slot > now:
            continue
        done = db.session.scalar(select(JobRun.status).where(JobRun.job == job.key, JobRun.slot == slot))
        if done != "done":
            out[job.key] = run_slot(job, slot)
    db.session.remove()
    return out


def _fire(app, job: Job) -> None:
    with app.app_context():
        run_slot(job, current_slot(job, utcnow()))


def build(app, *, blocking: bool):
    tz = app_tz()
    sched = (BlockingScheduler if blocking else BackgroundScheduler)(timezone=tz)
    for job in JOBS:
        trigger = (CronTrigger(hour=job.hour, minute=job.minute, timezone=tz) if job.every_minutes is None
                   else IntervalTrigger(minutes=job.every_minutes, timezone=tz))
        sched.add_job(_fire, trigger, args=(app, job),
                      id=job.key, name=job.description, misfire_grace_time=600, coalesce=True,
                      max_instances=1)
    return sched


def start(app, *, blocking: bool):
    """Catch up today's missed slots, then run on the cron triggers (blocking: the scheduler process)."""
    with app.app_context():
        caught = catch_up()
        if caught:
            log.info("scheduler caught up: %s", caught)
    sched = build(app, blocking=blocking)
    log.info("scheduler started: %s", ", ".join(f"{j.key} {j.when}" for j in JOBS))
    sched.start()
    return sched
