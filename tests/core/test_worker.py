"""`flask --app app worker` as a deployment runs it: a separate process on the real Redis and PostgreSQL."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from rq.job import Job, JobStatus, Retry

from core.queue import jobs
from core.redis_store import rstore
from tests.conftest import TEST_SETTINGS
from tests.core.flaky_jobs import fail_once

ROOT = Path(__file__).resolve().parents[2]


def worker_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "WECOM_"))}
    env.update({k: str(v) for k, v in TEST_SETTINGS.items() if k not in ("DEMO", "TESTING")})
    env["DEMO"] = "0"
    return env


def test_a_job_failing_once_is_retried_by_the_worker_and_succeeds(app):
    job = jobs.queue.enqueue(fail_once, "test:fail_once:runs", retry=Retry(max=2, interval=1))
    worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "worker"], cwd=ROOT,
                              env=worker_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = Job.fetch(job.id, connection=rstore.client).get_status()
            if status == JobStatus.FINISHED:
                break
            time.sleep(0.2)
    finally:
        worker.terminate()
        output = worker.communicate(timeout=20)[0].decode(errors="replace")
    assert status == JobStatus.FINISHED, output[-3000:]
    assert int(rstore.client.get("test:fail_once:runs")) == 2  # failed once, retried once by the scheduler
    assert Job.fetch(job.id, connection=rstore.client).return_value() == 2
