"""Signed orders posted over loopback to `POST /api/ingest/orders` under gunicorn, against a bare endpoint
measured the same way in the same run; then leaderboard reads from Redis against rebuilding from PostgreSQL.

Each order is distinct (no duplicate shortcut): 1–3 lines of the demo catalogue, 80 % keyed by a demo
customer's mobile (matched, attributed, priced, customer figures and trajectory updated, leaderboards
incremented), 20 % by an unknown member_no (stored and flagged). The database is seeded with the demo chain.

    .venv/bin/python benchmarks/orders_ingest.py [--requests 3000] [--concurrency 8] [--batch 1]

`--batch N` sends N orders per request (a JSON array; the figure to compare is then orders/s). `--database`,
`--redis-db` and `--port` let two runs on one machine keep apart.

DROPS the benchmark's orders from the database it is given (default: its own bench_orders).
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.callback_throughput import SETTINGS, ensure_database, start_gunicorn, summary  # noqa: E402

KEY = "benchmark-ingest-key-0123456789"
ENV = {**SETTINGS, "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/bench_orders",
       "REDIS_URL": "redis://127.0.0.1:6379/12", "INGEST_HMAC_KEY": KEY}


def load(port: int, bodies: list[bytes], concurrency: int) -> dict:
    from orders.views import sign

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    chunks = [bodies[i::concurrency] for i in range(concurrency)]

    def run(chunk):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        for body in chunk:
            ts = str(int(time.time()))
            headers = {"Content-Type": "application/json", "X-Timestamp": ts, "X-Signature": sign(KEY, ts, body)}
            t0 = time.perf_counter()
            conn.request("POST", "/api/ingest/orders", body=body, headers=headers)
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
    return summary(latencies, time.perf_counter() - t0, statuses)


def orders(n: int, prefix: str, mobiles: list[str], products: list[tuple[str, str]], rng) -> list[dict]:
    out = []
    now = time.time()
    for i in range(n):
        items = [{"sku": sku, "qty": rng.randint(1, 3), "price": price} for sku, price in rng.sample(products, rng.randint(1, 3))]
        amount = sum(int(x["qty"]) * float(x["price"]) for x in items)
        keys = {"mobile": rng.choice(mobiles)} if rng.random() < 0.8 else {"member_no": f"BENCH-{prefix}-{i}"}
        paid = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now - rng.randint(0, 20 * 86400)))
        out.append({"order_no": f"{prefix}-{i:07d}", "channel": "pos", "paid_at": paid,
                    "amount": f"{amount:.2f}", "customer": keys, "items": items})
    return out


def bodies(records: list[dict], batch: int) -> list[bytes]:
    """One order per body (a JSON object), or `batch` of them per body (a JSON array)."""
    if batch == 1:
        return [json.dumps(r).encode() for r in records]
    return [json.dumps(records[i:i + batch]).encode() for i in range(0, len(records), batch)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1, help="orders per request")
    parser.add_argument("--database", default="bench_orders")
    parser.add_argument("--redis-db", type=int, default=12)
    parser.add_argument("--port", type=int, default=5821, help="the bare endpoint's; the app gets the next one")
    args = parser.parse_args()
    ENV["DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:5432/{args.database}"
    ENV["REDIS_URL"] = f"redis://127.0.0.1:6379/{args.redis_db}"
    print(f"load average at start {os.getloadavg()}", flush=True)
    env = {**os.environ, **ENV}
    ensure_database(ENV["DATABASE_URL"])
    for cmd in (["db", "upgrade"], ["demo", "seed", "--if-empty"]):
        subprocess.run([str(ROOT / ".venv/bin/flask"), "--app", "app", *cmd], cwd=ROOT, env=env, check=True,
                       capture_output=True)
    import redis
    import sqlalchemy

    redis.Redis.from_url(ENV["REDIS_URL"]).flushdb()
    engine = sqlalchemy.create_engine(ENV["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("DELETE FROM events WHERE type = 'order' AND ref LIKE 'BENCH%'"))
        conn.execute(sqlalchemy.text("DELETE FROM orders WHERE order_no LIKE 'BENCH%'"))
        mobiles = [r[0] for r in conn.execute(sqlalchemy.text(
            "SELECT value FROM customer_identities WHERE kind = 'mobile'"))]
        products = [(r[0], str(r[1])) for r in conn.execute(sqlalchemy.text("SELECT sku, price FROM products"))]
    rng = random.Random(7)
    warm = bodies(orders(200, "BENCHW", mobiles, products, rng), args.batch)
    reqs = bodies(orders(args.requests, "BENCH", mobiles, products, rng), args.batch)

    results = {}
    for name, target, port in (("bare Flask endpoint", "benchmarks.bare_ingest:app", args.port),
                               ("/api/ingest/orders", "app:app", args.port + 1)):
        proc = start_gunicorn(target, port, ENV, 2, 8, "gthread")
        try:
            load(port, warm, args.concurrency)
            results[name] = load(port, reqs, args.concurrency)
        finally:
            proc.terminate()
            proc.wait(10)
    with engine.connect() as conn:
        stored = conn.execute(sqlalchemy.text("SELECT count(*) FROM orders WHERE order_no LIKE 'BENCH-%'")).scalar()
        total = conn.execute(sqlalchemy.text("SELECT count(*) FROM orders")).scalar()

    print(f"{args.requests} distinct signed orders, {args.batch} per request, {args.concurrency} client connections, "
          f"gunicorn 2 workers x 8 threads, PostgreSQL + Redis on loopback; load average at end {os.getloadavg()}")
    for name, r in results.items():
        print(f"  {name:22s} {r['rps']:8.0f} req/s {r['rps'] * args.batch:8.0f} orders/s   p50 {r['p50_ms']:6.2f} ms   "
              f"p99 {r['p99_ms']:6.2f} ms   statuses {r['statuses']}")
    ratio = results["/api/ingest/orders"]["rps"] / results["bare Flask endpoint"]["rps"]
    print(f"  ingest throughput = {ratio:.0%} of the bare endpoint; orders stored: {stored}")

    # Leaderboards: the month read from the live sorted sets vs recomputed from the database.
    os.environ.update(ENV)
    from app import create_app
    from core.timeutil import local_today
    from reports import leaderboard as lb

    app = create_app({"DATABASE_URL": ENV["DATABASE_URL"], "REDIS_URL": ENV["REDIS_URL"], "DEMO": True})
    with app.app_context():
        D = local_today()
        lb.rebuild("month", D)
        reads = []
        for _ in range(50):
            t0 = time.perf_counter()
            lb.guide_rows("month", D)
            reads.append(time.perf_counter() - t0)
        builds = []
        for _ in range(10):
            t0 = time.perf_counter()
            lb.rebuild("month", D)
            lb.guide_rows("month", D)
            builds.append(time.perf_counter() - t0)
    print(f"  month leaderboard over {total} orders: read from Redis p50 {statistics.median(reads) * 1000:.2f} ms; "
          f"rebuilt from PostgreSQL then read p50 {statistics.median(builds) * 1000:.2f} ms")


if __name__ == "__main__":
    main()
