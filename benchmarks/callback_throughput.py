"""Encrypted add_external_contact callbacks posted over loopback to the service under gunicorn.

Measures accepted callbacks per second and p50/p99 latency for the real endpoint (signature check,
decryption, defusedxml, Redis dedup, PostgreSQL inbox insert, RQ enqueue) and, in the same run and the same
way, for a bare Flask endpoint, then prints the ratio. Every callback is distinct (no dedup shortcut).

    .venv/bin/python benchmarks/callback_throughput.py [--requests 4000] [--concurrency 8]
"""
from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.bot.signing import envelope, event_xml  # noqa: E402

SETTINGS = {
    "DEMO": "0",
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/bench_callbacks",
    "REDIS_URL": "redis://127.0.0.1:6379/14",
    "SECRET_KEY": "benchmark-secret-key-0123456789",
    "WECOM_CORP_ID": "wwbenchcorp",
    "WECOM_AGENT_ID": "1000002",
    "WECOM_SECRET": "bench-secret",
    "WECOM_TOKEN": "benchtoken",
    "WECOM_AES_KEY": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    "WECOM_API_BASE": "http://127.0.0.1:5998/cgi-bin/",
}


def start_gunicorn(target: str, port: int, env: dict) -> subprocess.Popen:
    proc = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "-w", "2", "-k", "gthread", "--threads", "8", "-b", f"127.0.0.1:{port}",
         "--log-level", "warning", target],
        cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    for _ in range(100):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"gunicorn {target} did not start: {proc.stderr.read().decode()[-2000:]}")


def load(port: int, requests: list[tuple[str, str]], concurrency: int) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    chunks = [requests[i::concurrency] for i in range(concurrency)]

    def run(chunk):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine = []
        for url, body in chunk:
            t0 = time.perf_counter()
            conn.request("POST", url, body=body.encode(), headers={"Content-Type": "text/xml"})
            resp = conn.getresponse()
            resp.read()
            mine.append(time.perf_counter() - t0)
            with lock:
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=run, args=(c,)) for c in chunks]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "statuses": statuses,
    }


def ensure_database(url: str) -> None:
    """The benchmark gets its own database, so it never races the test suite's."""
    import sqlalchemy

    base, name = url.rsplit("/", 1)
    engine = sqlalchemy.create_engine(base.replace("postgresql://", "postgresql+psycopg://") + "/postgres",
                                      isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if not conn.execute(sqlalchemy.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first():
            conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--database-url", default=SETTINGS["DATABASE_URL"])
    args = parser.parse_args()
    env = {**SETTINGS, "DATABASE_URL": args.database_url}

    ensure_database(env["DATABASE_URL"])
    subprocess.run([str(ROOT / ".venv/bin/flask"), "--app", "app", "db", "upgrade"], cwd=ROOT,
                   env={**os.environ, **env}, check=True, capture_output=True)
    import redis
    import sqlalchemy

    redis.Redis.from_url(env["REDIS_URL"]).flushdb()
    engine = sqlalchemy.create_engine(env["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("TRUNCATE callback_inbox"))

    base = int(time.time())
    reqs = [envelope(env, event_xml("add_external_contact", external_userid=f"wmBench{i:07d}",
                                    create_time=base + i, WelcomeCode=f"code{i}"), nonce=f"n{i}")
            for i in range(args.requests)]
    warm = [envelope(env, event_xml("add_external_contact", external_userid=f"wmWarm{i:05d}",
                                    create_time=base - i - 1), nonce=f"w{i}") for i in range(200)]

    results = {}
    for name, target, port in (("bare Flask endpoint", "benchmarks.bare_app:app", 5811),
                               ("/wecom/callback", "app:app", 5812)):
        proc = start_gunicorn(target, port, env)
        try:
            load(port, warm, args.concurrency)
            results[name] = load(port, reqs, args.concurrency)
        finally:
            proc.terminate()
            proc.wait(10)
    with engine.connect() as conn:
        stored = conn.execute(sqlalchemy.text("SELECT count(*) FROM callback_inbox")).scalar()

    print(f"{args.requests} distinct encrypted callbacks, {args.concurrency} client connections, "
          "gunicorn 2 workers x 8 threads, PostgreSQL + Redis on loopback")
    for name, r in results.items():
        print(f"  {name:22s} {r['rps']:8.0f} req/s   p50 {r['p50_ms']:6.2f} ms   p99 {r['p99_ms']:6.2f} ms   "
              f"statuses {r['statuses']}")
    ratio = results["/wecom/callback"]["rps"] / results["bare Flask endpoint"]["rps"]
    print(f"  callback throughput = {ratio:.0%} of the bare endpoint; inbox rows stored: {stored}")


if __name__ == "__main__":
    main()
