"""The job queue: RQ on Redis.

Work that calls WeCom or may be slow runs as RQ jobs, worked by `flask --app app worker` processes, so a
large chain scales by adding workers. The embedded default runs one worker thread inside the web process,
on the in-process Redis stand-in. Jobs are plain functions; the worker gives each an app context and
removes the database session afterwards.

Feeders move work that was stored durably (e.g. the callback inbox) onto the queue: every worker process
runs them in a background thread (`FeederThread`), and a burst run calls them once first. Workers also run
RQ's scheduler, without which retries with a backoff interval would never run again.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from rq import Queue, SimpleWorker
from rq.job import Retry
from rq.scheduler import RQScheduler
from rq.timeouts import TimerDeathPenalty

from core.redis_store import rstore

log = logging.getLogger(__name__)

# Retried with backoff: WeCom answers "busy" or times out now and then.
DEFAULT_RETRY = Retry(max=3, interval=[2, 10, 60])
ENQUEUE_BATCH = 1000  # jobs per pipelined round trip in enqueue_many


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


class FeederThread(threading.Thread):
    """Calls the feeders again and again inside the app context: at once while they find work, else every
    `interval` seconds; an error (database or Redis away) is logged and retried after a pause."""

    def __init__(self, app, feeders: dict[str, Callable[[], int]], interval: float = 0.1):
        super().__init__(name="queue-feeder", daemon=True)
        self.app, self.feeders, self.interval = app, feeders, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        from core.db import db

        while not self.stopped.is_set():
            busy = False
            for name, feed in list(self.feeders.items()):
                with self.app.app_context():
                    try:
                        busy = bool(feed()) or busy
                    except Exception:
                        log.exception("feeder %s failed; retrying shortly", name)
                        self.stopped.wait(2)
                    finally:
                        db.session.remove()
            if not busy:
                self.stopped.wait(self.interval)

    def stop(self) -> None:
        self.stopped.set()


class JobQueue:
    def __init__(self) -> None:
        self.queue: Queue | None = None
        self.embedded_worker: threading.Thread | None = None
        self.feeders: dict[str, Callable[[], int]] = {}

    def add_feeder(self, name: str, feed: Callable[[], int]) -> None:
        """`feed()` queues stored work and returns how many jobs it queued; workers call it continually."""
        self.feeders[name] = feed

    def start_feeders(self, app, interval: float = 0.1) -> FeederThread:
        thread = FeederThread(app, self.feeders, interval)
        thread.start()
        return thread

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

    def enqueue_many(self, func, arg_lists: list[tuple], retry: Retry | None = DEFAULT_RETRY) -> list:
        """Queue one job per argument tuple, in one Redis round trip per ENQUEUE_BATCH jobs (run here and now,
        one after the other, where `enqueue` would run them inline)."""
        if rstore.embedded and self.embedded_worker is None:
            return [self.enqueue(func, *args, retry=retry) for args in arg_lists]
        queued = []
        for start in range(0, len(arg_lists), ENQUEUE_BATCH):
            batch = arg_lists[start:start + ENQUEUE_BATCH]
            datas = [Queue.prepare_data(func, args=args, retry=retry) for args in batch]
            with rstore.client.pipeline() as pipe:
                queued += self.queue.enqueue_many(datas, pipeline=pipe)
                pipe.execute()
        return queued

    def worker(self, app, *, in_thread: bool = False) -> AppWorker:
        return AppWorker([self.queue], connection=rstore.client, app=app, in_thread=in_thread)

    def start_embedded_worker(self, app) -> threading.Thread:
        worker = self.worker(app, in_thread=True)
        thread = threading.Thread(
            # RQ's scheduler is a forked process, which cannot share the in-process Redis: a thread instead.
            target=lambda: worker.work(logging_level="WARNING", with_scheduler=False),
            name="embedded-rq-worker",
            daemon=True,
        )
        thread.start()
        threading.Thread(target=self._embedded_scheduler, name="embedded-rq-scheduler", daemon=True).start()
        # Known before the feeders start: enqueue runs jobs inline while no worker is known, and the
        # feeders' first relay must already go to this worker's queue.
        self.embedded_worker = thread
        self.start_feeders(app)
        log.info("embedded job worker started")
        return thread

    def _embedded_scheduler(self, interval: float = 1.0) -> None:
        """Moves due scheduled jobs (retries waiting out their backoff) onto the queue."""
        scheduler = RQScheduler([self.queue], connection=rstore.client)
        while True:
            try:
                scheduler.acquire_locks()
                scheduler.enqueue_scheduled_jobs()
            except Exception:
                log.exception("embedded scheduler failed")
            time.sleep(interval)

    def run_burst(self, app) -> None:
        """Feed stored work onto the queue, then work every queued job and every retry already due, and
        return (tests and the `worker --burst` command)."""
        from core.db import db

        for feed in self.feeders.values():
            with app.app_context():
                try:
                    while feed():
                        pass
                finally:
                    db.session.remove()
        self.worker(app, in_thread=True).work(burst=True, logging_level="WARNING", with_scheduler=True)


jobs = JobQueue()
