"""Red-dot generation speed on a large chain in PostgreSQL.

    python benchmarks/tasks_generate.py [--database-url postgresql://postgres@127.0.0.1:5432/bench_tasks]
                                        [--customers 1000000 10000] [--guides 1000]

DROPS AND RECREATES the schema of the database it is given. For each size it seeds, with set-based SQL
(generate_series), a chain of `--guides` guides in guides/10 stores (one manager each), N customers each
followed by one guide (binding), birthdays and babies spread over the year, a year of orders for 60 % of
them (lines of products that have days_of_use), marketing touches in the last week, do-not-disturb tags,
deletions yesterday. Then it times `tasks generate` for one day (all rules, ranking and cap), a re-run
(idempotent: must create 0), and, as the baseline measured in the same run, one sequential scan of the
customers table (`SELECT count(*) … WHERE total_spend >= 0`): the floor any pass over all customers pays.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SEED_SQL = """
INSERT INTO stores (id, code, name, city, created_at)
  SELECT s, 'S' || s, '门店' || s, '上海', now() FROM generate_series(1, :stores) s;
INSERT INTO guides (id, userid, name, store_id, role, status, created_at)
  SELECT g, 'guide' || g, '导购' || g, 1 + (g - 1) % :stores,
         CASE WHEN g <= :stores THEN 'manager' ELSE 'guide' END, 'active', now()
  FROM generate_series(1, :guides) g;
INSERT INTO products (id, sku, name, category, price, attributes, created_at)
  SELECT p, 'SKU' || p, '商品' || p, (ARRAY['奶粉','纸尿裤','湿巾','辅食'])[1 + p % 4], 50 + p % 300,
         CASE WHEN p % 2 = 0 THEN jsonb_build_object('days_of_use', 5 + p % 25) ELSE '{}'::jsonb END, now()
  FROM generate_series(1, 200) p;
INSERT INTO customers (id, name, gender, birthday, baby_birthday, due_date, points, binding_guide_id,
                       first_added_at, last_order_at, order_count, total_spend, created_at, updated_at)
  SELECT c, '顾客' || c, 2,
         CASE WHEN c % 3 = 0 THEN DATE '1985-01-01' + CAST((CAST(c AS bigint) * 7919) % 5000 AS int) END,
         CASE WHEN c % 2 = 0 THEN CAST(:d AS date) - CAST((CAST(c AS bigint) * 104729) % 1100 AS int) END,
         CASE WHEN c % 11 = 0 THEN CAST(:d AS date) + (c % 200) END,
         0, :stores + 1 + c % (:guides - :stores),
         CAST(:d AS date) - (CAST((CAST(c AS bigint) * 31) % 700 AS int)) * interval '1 day' - interval '3 hours',
         CASE WHEN c % 5 < 3 THEN CAST(:d AS date) - (CAST((CAST(c AS bigint) * 13) % 400 AS int)) * interval '1 day' + interval '2 hours' END,
         CASE WHEN c % 5 < 3 THEN 1 + c % 6 ELSE 0 END,
         CASE WHEN c % 5 < 3 THEN (c % 97) * 37 ELSE 0 END, now(), now()
  FROM generate_series(1, :n) c;
INSERT INTO customer_identities (customer_id, kind, value, created_at)
  SELECT c, 'external_userid', 'wmB' || c, now() FROM generate_series(1, :n) c;
INSERT INTO follows (guide_id, customer_id, added_at, ended_at, ended_by)
  SELECT binding_guide_id, id, first_added_at,
         CASE WHEN id % 500 = 0 THEN CAST(:d AS date) - interval '10 hours' END,
         CASE WHEN id % 500 = 0 THEN 'customer' END
  FROM customers;
INSERT INTO orders (id, order_no, channel, customer_id, guide_id, paid_at, amount, customer_keys, created_at)
  SELECT id, 'O' || id, 'pos', id, binding_guide_id, last_order_at, total_spend, '{}'::jsonb, now()
  FROM customers WHERE last_order_at IS NOT NULL;
INSERT INTO order_lines (order_id, line_no, sku, name, category, qty, price)
  SELECT o.id, 1, p.sku, p.name, p.category, 1 + o.id % 3, p.price
  FROM orders o JOIN products p ON p.id = 1 + o.id % 200;
INSERT INTO tag_groups (id, name, "order", deleted) VALUES (1, '客户类型', 0, false);
INSERT INTO tags (id, group_id, name, "order", deleted) VALUES (1, 1, '免打扰', 0, false);
INSERT INTO customer_tags (customer_id, tag_id, source, created_at)
  SELECT c, 1, 'guide', now() FROM generate_series(37, :n, 37) c;
INSERT INTO touches (customer_id, guide_id, kind, channel, at)
  SELECT c, :stores + 1 + c % (:guides - :stores), 'marketing', 'content', CAST(:d AS date) - (c % 7) * interval '1 day'
  FROM generate_series(13, :n, 13) c;
"""


def seed(conn, n: int, guides: int, D: date) -> float:
    from sqlalchemy import text

    t0 = time.perf_counter()
    for stmt in SEED_SQL.split(";\n"):
        if stmt.strip():
            conn.execute(text(stmt), {"n": n, "guides": guides, "stores": max(guides // 10, 1), "d": D})
    conn.execute(text("SELECT setval(pg_get_serial_sequence(t, 'id'), (SELECT coalesce(max(id), 1) FROM "
                      "customers)) FROM (VALUES ('customers')) v(t)"))
    conn.execute(text("ANALYZE"))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL",
                                                             "postgresql://postgres@127.0.0.1:5432/bench_tasks"))
    ap.add_argument("--customers", type=int, nargs="+", default=[10_000, 1_000_000])
    ap.add_argument("--guides", type=int, default=1000)
    args = ap.parse_args()

    from alembic import command
    from sqlalchemy import text

    from app import create_app
    from core.cli import alembic_config
    from core.db import db
    from tasks.operations import generate

    if args.database_url.startswith("postgresql"):
        from benchmarks.callback_throughput import ensure_database

        ensure_database(args.database_url)  # its own database, as the other benchmarks have
    app = create_app({"DATABASE_URL": args.database_url, "DEMO": True, "REDIS_URL": None})
    D = date(2026, 6, 15)
    print(f"{'customers':>10} {'seed s':>8} {'generate s':>11} {'tasks':>8} {'re-run s':>9} {'re-run new':>10}"
          f" {'scan s':>7} {'× scan':>7}")
    for n in args.customers:
        with app.app_context():
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
            command.upgrade(alembic_config(), "head")
            with db.engine.begin() as conn:
                seeded = seed(conn, n, args.guides, D)
            t0 = time.perf_counter()
            with db.engine.connect() as conn:
                conn.execute(text("SELECT count(*) FROM customers WHERE total_spend >= 0")).scalar()
            scan = time.perf_counter() - t0
            from knowledge.service import library

            t0 = time.perf_counter()
            library()  # the scheduler process loads jieba and the library once, not per run
            warmup = time.perf_counter() - t0
            first = generate(D)
            again = generate(D)
            print(f"{n:>10,} {seeded:>8.1f} {first['seconds']:>11.2f} {first['total_created']:>8,} "
                  f"{again['seconds']:>9.2f} {again['total_created']:>10} {scan:>7.2f} "
                  f"{first['seconds'] / max(scan, 1e-6):>7.1f}", flush=True)
            print(f"   per rule: {first['created']}; library load before the run (once per process): "
                  f"{warmup:.2f} s", flush=True)
            db.session.remove()


if __name__ == "__main__":
    main()
