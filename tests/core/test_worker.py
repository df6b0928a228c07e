"""`flask --app app worker` as a deployment runs it: a separate process on the real Redis and PostgreSQL."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from rq.job import Job, JobStatus, Retry
from sqlalchemy import select

from core.db import db
from core.queue import jobs
from core.redis_store import rstore
from models import CallbackInbox
from tests.bot.signing import envelope
from tests.conftest import TEST_SETTINGS
from tests.core.flaky_jobs import fail_once

ROOT = Path(__file__).resolve().parents[2]


def worker_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "WECOM_"))}
    env.update({k: str(v) for k, v in TEST_SETTINGS.items() if k not in ("DEMO", "TESTING")})
    env["DEMO"] = "0"
    return env


def inbox_row():
    db.session.remove()
    return db.session.scalar(select(CallbackInbox))


def test_the_worker_relays_stored_callbacks_and_retries_a_failed_job(app, client):
    """One worker process: a callback that was only stored gets queued by the worker's relay and handled;
    a job that fails once is retried by RQ's scheduler after its backoff and succeeds."""
    xml = ("<xml><ToUserName>c</ToUserName><FromUserName>sys</FromUserName><CreateTime>1700000001</CreateTime>"
           "<MsgType>event</MsgType><Event>some_future_event</Event></xml>")
    url, body = envelope(app.config, xml)
    assert client.post(url, data=body).status_code == 200
    assert inbox_row().queued_at is None and jobs.queue.count == 0  # stored only: nothing queued yet
    job = jobs.queue.enqueue(fail_once, "test:fail_once:runs", retry=Retry(max=2, interval=1))
    worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "worker"], cwd=ROOT,
                              env=worker_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = Job.fetch(job.id, connection=rstore.client).get_status()
            if status == JobStatus.FINISHED and inbox_row().status != "pending":
                break
            time.sleep(0.2)
    finally:
        worker.terminate()
        output = worker.communicate(timeout=20)[0].decode(errors="replace")
    assert status == JobStatus.FINISHED, output[-3000:]
    assert int(rstore.client.get("test:fail_once:runs")) == 2  # failed once, retried once by the scheduler
    assert Job.fetch(job.id, connection=rstore.client).return_value() == 2
    row = inbox_row()
    assert row.status == "ignored" and row.queued_at is not None  # relayed, handled (no handler: ignored)
