"""`flask --app app worker` (RQ job worker) and `flask --app app bot replay` (re-queue stored callbacks)."""
from __future__ import annotations

from datetime import timedelta

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select, update

from bot.tasks import process_callback
from core.db import db
from core.queue import jobs
from core.redis_store import rstore
from core.timeutil import utcnow
from models import CallbackInbox


@click.command("worker")
@click.option("--burst", is_flag=True, help="Work the queued jobs, then exit.")
def worker_command(burst):
    """Run an RQ worker on the service's queue (add processes to scale).

    Each worker also relays stored callbacks to the queue, and runs RQ's scheduler (one per Redis holds
    its lock) so that jobs retried with backoff run again."""
    if rstore.embedded:
        raise click.ClickException("REDIS_URL is not set: a separate worker needs a real Redis")
    app = current_app._get_current_object()
    if burst:
        jobs.run_burst(app)
        return
    feeders = jobs.start_feeders(app)
    try:
        jobs.worker(app).work(logging_level="INFO", with_scheduler=True)
    finally:
        feeders.stop()


bot_cli = AppGroup("bot", help="WeCom callback inbox.")


@bot_cli.command("replay")
@click.option("--older-than", default=60, show_default=True, help="Seconds a pending callback must have waited.")
def replay(older_than):
    """Queue again every stored callback that is pending or failed (nothing is handled twice)."""
    cutoff = utcnow() - timedelta(seconds=older_than)
    ids = db.session.scalars(
        select(CallbackInbox.id).where(CallbackInbox.status.in_(("pending", "failed")),
                                       CallbackInbox.received_at <= cutoff).order_by(CallbackInbox.id)
    ).all()
    jobs.enqueue_many(process_callback, [(inbox_id,) for inbox_id in ids])
    if ids:
        db.session.execute(update(CallbackInbox).where(CallbackInbox.id.in_(ids)).values(queued_at=utcnow()))
        db.session.commit()
    click.echo(f"queued {len(ids)} callbacks")
