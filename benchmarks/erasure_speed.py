"""How long one personal-data erasure (customers.erasure.erase_customer, committed) takes on a large chain.

    python benchmarks/erasure_speed.py [--database-url postgresql://postgres@127.0.0.1:5432/bench_erase]
        [--redis-url redis://127.0.0.1:6379/12] [--customers 100000] [--events 1000000] [--inbox 1000000]
        [--sends 300000] [--erasures 20] [--keep]

CREATES the database if missing and DROPS AND RECREATES its schema (unless --keep and it is already seeded).
Seeds the chain of benchmarks/sidebar_first_screen.py (customers with a mobile, follows, orders, tags, events,
red dots, scripts), plus the tables an erasure scans as free text: a callback inbox (an add callback for every
customer, the rest chat-bot text messages quoting a customer's name), script sends whose query quotes a
customer, and tracked links. Then erases `--erasures` random customers one by one, each in its own
transaction, and prints the median and worst time and what the first one changed.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

FREE_TEXT_SQL = """
INSERT INTO callback_inbox (dedup_key, received_at, msg_type, event, change_type, payload, status, attempts)
  SELECT 'evt:change_external_contact:add_external_contact:guide' || (101 + c % 900) || ':' || 'wmB' || c || ':' || ':' || c,
         now(), 'event', 'change_external_contact', 'add_external_contact',
         jsonb_build_object('MsgType', 'event', 'Event', 'change_external_contact', 'ExternalUserID', 'wmB' || c,
                            'UserID', 'guide' || (101 + c % 900)), 'done', 1
  FROM generate_series(1, :n) c;
INSERT INTO callback_inbox (dedup_key, received_at, msg_type, event, change_type, payload, status, attempts, result)
  SELECT 'msg:' || m, now(), 'text', NULL, NULL,
         jsonb_build_object('MsgType', 'text', 'FromUserName', 'guide' || (101 + m % 900),
                            'Content', '顾客' || (1 + m % :n) || '问宝宝吐奶怎么办'), 'done', 1,
         jsonb_build_object('kind', 'answer', 'reply', '推荐话术：少量多次喂养')
  FROM generate_series(1, GREATEST(:inbox - :n, 0)) m;
INSERT INTO script_sends (script_id, guide_id, store_id, customer_id, source, query, terms, edited, sent_at)
  SELECT 1 + s % 10000, 101 + s % 900, 1 + s % 100, 1 + s % :n, 'suggested',
         '顾客' || (1 + s % :n) || '问吐奶', '["吐奶"]'::jsonb, false, now() - (s % 300) * interval '1 day'
  FROM generate_series(1, :sends) s;
INSERT INTO tracked_links (token, guide_id, customer_id, coupon_ref, target_url, created_at)
  SELECT 'tok' || t, 101 + t % 900, 1 + t % :n, NULL, 'https://example.com/article/' || (t % 500), now()
  FROM generate_series(1, :n) t;
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=os.environ.get(
        "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/bench_erase"))
    ap.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"))
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--inbox", type=int, default=1_000_000)
    ap.add_argument("--sends", type=int, default=300_000)
    ap.add_argument("--scripts", type=int, default=10_000)
    ap.add_argument("--erasures", type=int, default=20)
    ap.add_argument("--keep", action="store_true", help="reuse an already seeded database")
    args = ap.parse_args()

    import logging

    logging.basicConfig(level=logging.WARNING)
    from callback_throughput import ensure_database
    from sidebar_first_screen import seed
    from sqlalchemy import func, select, text

    ensure_database(args.database_url)
    from app import create_app
    from core.db import db
    from customers.erasure import erase_customer
    from models import Customer

    app = create_app({"DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url, "DEMO": False,
                      "SECRET_KEY": "bench-secret-key-0123456789", "WECOM_CORP_ID": "wwbench",
                      "WECOM_AGENT_ID": "1000002", "WECOM_SECRET": "bench", "WECOM_TOKEN": "bench",
                      "WECOM_AES_KEY": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
                      "WECOM_API_BASE": "http://127.0.0.1:9/cgi-bin/"})
    with app.app_context():
        seeded = None
        try:
            kept = args.keep and db.session.scalar(select(func.count()).select_from(Customer)) == args.customers
        except Exception:
            db.session.rollback()
            kept = False
        if not kept:
            seeded = seed(app, args)
            t0 = time.perf_counter()
            with db.engine.begin() as conn:
                for stmt in FREE_TEXT_SQL.split(";\n"):
                    if stmt.strip():
                        conn.execute(text(stmt), {"n": args.customers, "inbox": args.inbox, "sends": args.sends})
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
            seeded += time.perf_counter() - t0
        counts = db.session.execute(text(
            "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM events), "
            "(SELECT count(*) FROM callback_inbox), (SELECT count(*) FROM script_sends), "
            "(SELECT count(*) FROM tracked_links)")).one()
        print(f"data: {counts[0]:,} customers, {counts[1]:,} events, {counts[2]:,} stored callbacks, "
              f"{counts[3]:,} script sends, {counts[4]:,} tracked links"
              + (f" (seeded in {seeded:.1f} s)" if seeded else " (kept)"))
        load = os.getloadavg()
        print(f"load average before timing: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")

        candidates = db.session.scalars(select(Customer.id).where(Customer.erased_at.is_(None),
                                                                  Customer.id >= 10_000)).all()
        rng = random.Random(5)
        times, first = [], None
        for customer_id in rng.sample(candidates, min(args.erasures, len(candidates))):
            t0 = time.perf_counter()
            result = erase_customer(db.session, customer_id, actor="cli:bench", reason="benchmark")
            db.session.commit()
            times.append(time.perf_counter() - t0)
            first = first or result
        print(f"erasures: {len(times)}, median {statistics.median(times) * 1000:.0f} ms, "
              f"worst {max(times) * 1000:.0f} ms")
        print(f"rows changed by the first: {first['rows']}")


if __name__ == "__main__":
    main()
