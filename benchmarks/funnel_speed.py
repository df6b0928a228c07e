"""How long the funnel report takes on a large period, in PostgreSQL.

    python benchmarks/funnel_speed.py [--database-url postgresql://postgres@127.0.0.1:5432/bench_tracking]
                                      [--links 100000]

DROPS AND RECREATES the schema of the database it is given. Seeds with set-based SQL 1,000 guides, 200
content items, N customers with one tracked link each (sent in the last 30 days), an open for 60 % of them
(a third opened twice), and two orders per customer spread over 60 days. Then times `funnel("content")`,
`funnel("guide")` and the script stats over as many sends, against the baseline measured in the same run:
one plain read of every (link, open) row the report needs (`SELECT … FROM tracked_links LEFT JOIN link_opens`).
Then what the manager page (`/manager/`) does for one store (10 guides, 1 % of the links): the same three
reports with `store_id`, and the page's three funnel tabs rendered through the app (test client, a signed-in
store manager, this month's period).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SEED_SQL = """
INSERT INTO stores (id, code, name, created_at) SELECT s, 'S' || s, '门店' || s, now() FROM generate_series(1, 100) s;
INSERT INTO guides (id, userid, name, store_id, role, status, created_at)
  SELECT g, 'guide' || g, '导购' || g, 1 + g % 100, 'guide', 'active', now() FROM generate_series(1, 1000) g;
INSERT INTO contents (id, external_id, kind, title, category, summary, url, tags, keywords, target_tags,
                      target_stages, enabled, created_at, updated_at)
  SELECT c, 'c-' || c, 'article', '素材' || c, '', '', 'https://example.com/' || c, '[]', '[]', '[]', '[]', true,
         now(), now() FROM generate_series(1, 200) c;
INSERT INTO scripts (id, external_id, title, category, body, tags, keywords, enabled, created_at, updated_at)
  SELECT s, 's-' || s, '话术' || s, '', '正文', '[]', '[]', true, now(), now() FROM generate_series(1, 200) s;
INSERT INTO customers (id, name, gender, points, order_count, total_spend, created_at, updated_at)
  SELECT c, '顾客' || c, 2, 0, 2, 0, now(), now() FROM generate_series(1, :n) c;
INSERT INTO tracked_links (id, token, guide_id, customer_id, content_id, target_url, created_at)
  SELECT c, 'tok' || c, 1 + c % 1000, c, 1 + c % 200, 'https://example.com/', now() - (c % 30) * interval '1 day'
  FROM generate_series(1, :n) c;
INSERT INTO link_opens (link_id, customer_id, guide_id, content_id, opened_at)
  SELECT c, c, 1 + c % 1000, 1 + c % 200, now() - (c % 30) * interval '1 day' + interval '2 hours'
  FROM generate_series(1, :n) c WHERE c % 5 < 3;
INSERT INTO link_opens (link_id, customer_id, guide_id, content_id, opened_at)
  SELECT c, c, 1 + c % 1000, 1 + c % 200, now() - (c % 30) * interval '1 day' + interval '5 hours'
  FROM generate_series(1, :n) c WHERE c % 5 = 0;
INSERT INTO script_sends (script_id, guide_id, customer_id, source, terms, edited, sent_at)
  SELECT 1 + c % 200, 1 + c % 1000, c, 'suggested', '[]', false, now() - (c % 30) * interval '1 day'
  FROM generate_series(1, :n) c;
INSERT INTO orders (order_no, channel, customer_id, paid_at, amount, customer_keys, created_at)
  SELECT 'O' || c || '-' || k, 'pos', c, now() - ((c * 7 + k * 13) % 60) * interval '1 day', 100 + c % 300, '{}', now()
  FROM generate_series(1, :n) c, generate_series(1, 2) k;
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL",
                                                             "postgresql://postgres@127.0.0.1:5432/bench_tracking"))
    ap.add_argument("--links", type=int, default=100_000)
    args = ap.parse_args()

    from alembic import command
    from sqlalchemy import text

    from app import create_app
    from core.cli import alembic_config
    from core.db import db
    from tracking import funnels

    if args.database_url.startswith("postgresql"):
        from benchmarks.callback_throughput import ensure_database

        ensure_database(args.database_url)  # its own database, as the other benchmarks have
    app = create_app({"DATABASE_URL": args.database_url, "DEMO": True, "REDIS_URL": None})
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        command.upgrade(alembic_config(), "head")
        t0 = time.perf_counter()
        with db.engine.begin() as conn:
            for stmt in SEED_SQL.split(";\n"):
                if stmt.strip():
                    conn.execute(text(stmt), {"n": args.links})
            conn.execute(text("ANALYZE"))
        print(f"seeded {args.links:,} links in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        with db.engine.connect() as conn:
            rows = conn.execute(text("SELECT l.id, l.customer_id, l.content_id, o.opened_at FROM tracked_links l "
                                     "LEFT JOIN link_opens o ON o.link_id = l.id")).all()
        base = time.perf_counter() - t0
        print(f"baseline: read {len(rows):,} link/open rows in {base:.2f} s")
        def timed(name, run, count, what):
            """Time one report against the baseline read; print its rows and the sum of `count` over them."""
            t0 = time.perf_counter()
            out = run()
            took = time.perf_counter() - t0
            print(f"{name:<18} {took:>6.2f} s ({took / base:.2f}× baseline), {len(out)} rows, "
                  f"{sum(count(r) for r in out):,} {what}")
            db.session.remove()

        converted = lambda r: r.get("converted", 0)  # noqa: E731
        timed("funnel by content", lambda: funnels.funnel("content"), converted, "converted")
        timed("funnel by guide", lambda: funnels.funnel("guide"), converted, "converted")
        timed("script stats", funnels.script_stats, converted, "converted")

        # The manager page for one store, and head office's for every store: the month of 15 days ago (the
        # seeded 30 days hold from 15 up to 30 of its days).
        from datetime import date, timedelta

        month = (date.today() - timedelta(days=15)).isoformat()
        admin = db.session.execute(text("SELECT id FROM guides WHERE store_id = 2 LIMIT 1")).scalar()
        db.session.execute(text("UPDATE guides SET role = 'admin' WHERE id = :g"), {"g": admin})
        manager = db.session.execute(text("SELECT id FROM guides WHERE store_id = 1 LIMIT 1")).scalar()
        db.session.execute(text("UPDATE guides SET role = 'manager' WHERE id = :g"), {"g": manager})
        db.session.commit()
        sent = lambda r: r.get("sent", r.get("sends", 0))  # noqa: E731
        timed("store: by content", lambda: funnels.funnel("content", store_id=1), sent, "sent")
        timed("store: by guide", lambda: funnels.funnel("guide", store_id=1), sent, "sent")
        timed("store: scripts", lambda: funnels.script_stats(store_id=1), sent, "sent")
        for who, gid in (("manager", manager), ("admin", admin)):
            client = app.test_client()
            with client.session_transaction() as s:
                s["guide_id"], s["signed_in_at"], s["csrf"] = gid, int(time.time()), "x"
            for tab in ("rank", "content", "scripts", "guides"):
                times = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    resp = client.get(f"/manager/?tab={tab}&period=month&date={month}")
                    times.append(time.perf_counter() - t0)
                    assert resp.status_code == 200, resp.status_code
                print(f"{who:<7} page ?tab={tab:<8} median {sorted(times)[1] * 1000:>6.0f} ms of 3 "
                      f"({len(resp.data) // 1024} KiB html)")


if __name__ == "__main__":
    main()
