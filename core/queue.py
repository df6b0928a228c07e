"""The job queue: RQ on Redis.

Work that calls WeCom or may be slow runs as RQ jobs, worked by `flask --app app worker` processes, so a
large chain scales by adding workers. The embedded default runs one worker thread inside the web process,
on the in-process Redis stand-in. Jobs are plain functions; the worker gives each an app context and
removes the database session afterwards.
"""
from __future__ import annotations

import logging
import threading

from rq import Queue, SimpleWorker
from rq.job import Retry
from rq.timeouts import TimerDeathPenalty

from core.redis_store import rstore

log = logging.getLogger(__name__)

# Retried with backoff: WeCom answers "busy" or times out now and then.
DEFAULT_RETRY = Retry(max=3, interval=[2, 10, 60])


class AppWorker(SimpleWorker):
    """Runs each job inside the Flask app context; no fork, so pooled connections stay valid."""

    # A signal-based timeout only works in the main thread; the embedded worker is not.
    death_penalty_class = TimerDeathPenalty

    def __init__(self, *args, app, in_thread: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.app = app
        self.in_thread = in_thread

    def _install_signal_handlers(self):
        if not self.in_thread:
            super()._install_signal_handlers()

    def perform_job(self, job, queue):
        from core.db import db

        with self.app.app_context():
            try:
                return super().perform_job(job, queue)
            finally:
                db.session.remove()


class JobQueue:
    def __init__(self) -> None:
        self.queue: Queue | None = None
        self.embedded_worker: threading.Thread | None = None

    def init_app(self, app) -> None:
        self.queue = Queue("default", connection=rstore.client, default_timeout=120)
        app.extensions["queue"] = self

    def enqueue(self, func, *args, retry: Retry | None = DEFAULT_RETRY, **kwargs):
        if rstore.embedded and self.embedded_worker is None:
            # The in-process Redis stand-in, and no worker in this process (a CLI command of the embedded
            # default): a queued job would vanish with the process, so it runs here and now.
            try:
                return func(*args, **kwargs)
            except Exception:
                log.exception("job %s failed (run inline)", getattr(func, "__name__", func))
                return None
        # One pipelined round trip instead of RQ's separate transactions: this sits on the callback's hot path.
        with rstore.client.pipeline() as pipe:
            job = self.queue.enqueue_call(func, args=args, kwargs=kwargs, retry=retry, pipeline=pipe)
            pipe.execute()
        return job

    def worker(self, app, *, in_thread: bool = False) -> AppWorker:
        return AppWorker([self.queue], connection=rstore.client, app=app, in_thread=in_thread)

    def start_embedded_worker(self, app) -> threading.Thread:
        worker = self.worker(app, in_thread=True)
        thread = threading.Thread(
            target=lambda: worker.work(logging_level="WARNING", with_scheduler=False),
            name="embedded-rq-worker",
            daemon=True,
        )
        thread.start()
        self.embedded_worker = thread
        log.info("embedded job worker started")
        return thread

    def run_burst(self, app) -> None:
        """Work every queued job, then return (tests and the `worker --burst` command)."""
        self.worker(app, in_thread=True).work(burst=True, logging_level="WARNING")


jobs = JobQueue()
