"""Speed of the sidebar's first screen on a large chain in PostgreSQL, against a trivial endpoint.

    python benchmarks/sidebar_first_screen.py [--database-url postgresql://postgres@127.0.0.1:5432/bench_sidebar]
        [--redis-url redis://127.0.0.1:6379/13] [--customers 100000] [--events 1000000] [--scripts 10000]
        [--requests 1000] [--browser-loads 20] [--keep]

CREATES the database if missing and DROPS AND RECREATES its schema (unless --keep and it is already seeded).
Seeds, set-based (INSERT … SELECT generate_series), 100 stores, 1,000 guides, N customers (each followed by one
guide, with a baby, a mobile, orders for 60 %, two corp tags), M trajectory events spread over the customers,
today's red dots for 1 in 20 customers; and COPYs in the scripts (built from the domain lexicon like
benchmarks/suggest_speed.py). Then, in one process and one run:

1. the first-screen API (`GET /api/sidebar/first-screen?customer=…`, a different random customer and its own
   guide each request, audit row written and committed) and, as the baseline, a trivial endpoint of the same
   app through the same WSGI client; median and p99 of each;
1b. what loads after the first paint or without a customer, 200 random customers and their guides: the 客户
   tab's recommendations, the workbench page (`/sidebar/?tab=tasks`) and the 排行 tab's API;
2. the page's own assets, gzipped (WeUI css, sidebar css and js);
3. headless Chromium (Debian's package, via Playwright) loading `/sidebar/?customer=…` over loopback from a
   werkzeug server in a thread: time from navigation start until the first screen is painted (the profile is
   in the DOM and the load event has fired), median and worst.
"""
from __future__ import annotations

import argparse
import gzip
import os
import random
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

SEED_SQL = """
INSERT INTO stores (id, code, name, city, created_at)
  SELECT s, 'S' || s, '门店' || s, '上海', now() FROM generate_series(1, 100) s;
INSERT INTO guides (id, userid, name, store_id, role, status, created_at)
  SELECT g, 'guide' || g, '导购' || g, 1 + (g - 1) % 100,
         CASE WHEN g <= 100 THEN 'manager' ELSE 'guide' END, 'active', now()
  FROM generate_series(1, 1000) g;
INSERT INTO products (id, sku, name, category, price, attributes, created_at)
  SELECT p, 'SKU' || p, '商品' || p, (ARRAY['奶粉','纸尿裤','湿巾','辅食'])[1 + p % 4], 50 + p % 300, '{}'::jsonb, now()
  FROM generate_series(1, 200) p;
INSERT INTO customers (id, name, gender, baby_birthday, due_date, member_level, points, binding_guide_id,
                       first_added_at, last_order_at, order_count, total_spend, created_at, updated_at)
  SELECT c, '顾客' || c, 2,
         CASE WHEN c % 4 <> 0 THEN current_date - CAST((CAST(c AS bigint) * 104729) % 1100 AS int) END,
         CASE WHEN c % 4 = 0 THEN current_date + (c % 200) END,
         (ARRAY['普卡','银卡','金卡'])[1 + c % 3], c % 5000, 101 + c % 900,
         now() - (CAST((CAST(c AS bigint) * 31) % 700 AS int)) * interval '1 day',
         CASE WHEN c % 5 < 3 THEN now() - (CAST((CAST(c AS bigint) * 13) % 400 AS int)) * interval '1 day' END,
         CASE WHEN c % 5 < 3 THEN 1 + c % 6 ELSE 0 END,
         CASE WHEN c % 5 < 3 THEN (c % 97) * 37 ELSE 0 END, now(), now()
  FROM generate_series(1, :n) c;
INSERT INTO customer_identities (customer_id, kind, value, created_at)
  SELECT c, 'external_userid', 'wmB' || c, now() FROM generate_series(1, :n) c;
INSERT INTO customer_identities (customer_id, kind, value, created_at)
  SELECT c, 'mobile', '138' || lpad(CAST(c AS text), 8, '0'), now() FROM generate_series(1, :n) c;
INSERT INTO follows (guide_id, customer_id, added_at, remark)
  SELECT binding_guide_id, id, first_added_at, name || '备注' FROM customers;
INSERT INTO orders (id, order_no, channel, customer_id, guide_id, paid_at, amount, customer_keys, created_at)
  SELECT id, 'O' || id, 'pos', id, binding_guide_id, last_order_at, total_spend, '{}'::jsonb, now()
  FROM customers WHERE last_order_at IS NOT NULL;
INSERT INTO order_lines (order_id, line_no, sku, name, category, qty, price)
  SELECT o.id, 1, p.sku, p.name, p.category, 1 + o.id % 3, p.price
  FROM orders o JOIN products p ON p.id = 1 + o.id % 200;
INSERT INTO tag_groups (id, name, wecom_id, "order", deleted)
  SELECT g, (ARRAY['宝宝月龄','客户意向','购买偏好','活动','渠道'])[g], 'etG' || g, g, false FROM generate_series(1, 5) g;
INSERT INTO tags (id, group_id, name, wecom_id, "order", deleted)
  SELECT t, 1 + (t - 1) / 6, (ARRAY['孕期','0-6月','6-12月','1-3岁','3岁以上','新手妈妈'])[1 + (t - 1) % 6] || t,
         'etT' || t, t, false FROM generate_series(1, 30) t;
INSERT INTO customer_tags (customer_id, tag_id, source, created_at)
  SELECT c, 1 + c % 30, 'wecom', now() FROM generate_series(1, :n) c;
INSERT INTO customer_tags (customer_id, tag_id, source, created_at)
  SELECT c, 1 + (c * 7 + 3) % 30, 'wecom', now() FROM generate_series(1, :n) c WHERE (c * 7 + 3) % 30 <> c % 30;
INSERT INTO events (customer_id, type, occurred_at, channel, guide_id, payload, ref)
  SELECT 1 + CAST((CAST(e AS bigint) * 2654435761) % :n AS int),
         (ARRAY['order','profile_edited','tag_added','contact_added','content_sent'])[1 + e % 5],
         now() - (e % 720) * interval '12 hours', 'wecom', NULL,
         jsonb_build_object('amount', e % 500, 'note', '记录' || e), 'ev' || e
  FROM generate_series(1, :events) e;
INSERT INTO red_dots (guide_id, customer_id, rule, task_date, priority, value, rank, visible, reason, status, details,
                      created_at)
  SELECT binding_guide_id, id, 'dormant', current_date, 50, total_spend, 1, true, '30天没有购买，问问近况', 'open',
         '{}'::jsonb, now()
  FROM customers WHERE id % 20 = 0;
"""


def copy_scripts(conn, n: int, rng: random.Random) -> None:
    from suggest_speed import make_library

    stages = ["孕期", "0-6月", "6-12月", "1-3岁", "奶粉", "纸尿裤"]
    raw = conn.connection.driver_connection
    with raw.cursor() as cur:
        with cur.copy("COPY scripts (external_id, title, category, body, tags, keywords, enabled, created_at, "
                      "updated_at) FROM STDIN") as copy:
            import json

            for d in make_library(n, rng):
                tags = list(d.tags) + ([rng.choice(stages)] if rng.random() < 0.3 else [])
                copy.write_row((d.external_id, d.title[:100], d.category, d.body, json.dumps(tags, ensure_ascii=False),
                                "[]", True, "now", "now"))


def seed(app, args) -> float:
    from alembic import command
    from sqlalchemy import text

    from core.cli import alembic_config
    from core.db import db

    t0 = time.perf_counter()
    with db.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    command.upgrade(alembic_config(), "head")
    with db.engine.begin() as conn:
        for stmt in SEED_SQL.split(";\n"):
            if stmt.strip():
                conn.execute(text(stmt), {"n": args.customers, "events": args.events})
        copy_scripts(conn, args.scripts, random.Random(7))
        for table in ("stores", "guides", "customers", "orders", "tag_groups", "tags"):
            conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                              f"(SELECT coalesce(max(id), 1) FROM {table}))"))
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    return time.perf_counter() - t0


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def assets_gzipped() -> dict[str, int]:
    static = REPO / "sidebar" / "static"
    out = {}
    for name in ("weui/weui.min.css", "sidebar.css", "sidebar.js"):
        out[name] = len(gzip.compress((static / name).read_bytes(), compresslevel=6))
    return out


def session_cookie(app, guide_id: int) -> str:
    serializer = app.session_interface.get_signing_serializer(app)
    return serializer.dumps({"guide_id": guide_id, "signed_in_at": int(time.time()), "csrf": "bench"})


def time_api(app, args, rng) -> tuple[list[float], list[float]]:
    from sqlalchemy import text

    from core.db import db

    with app.app_context():
        pairs = db.session.execute(text(
            "SELECT c.binding_guide_id, i.value FROM customers c JOIN customer_identities i "
            "ON i.customer_id = c.id AND i.kind = 'external_userid' "
            "WHERE c.id = ANY(:ids)"), {"ids": rng.sample(range(1, args.customers + 1), args.requests)}).all()
        db.session.remove()
    client = app.test_client()
    cookies = {}
    for _ in range(20):  # warm: jieba, the 10,000-script index, connection pool
        gid, ext = pairs[0]
        client.set_cookie("session", session_cookie(app, gid))
        assert client.get(f"/api/sidebar/first-screen?customer={ext}").status_code == 200
        client.get("/bench/noop")
    first, base = [], []
    for gid, ext in pairs:
        client.set_cookie("session", cookies.setdefault(gid, session_cookie(app, gid)))
        t0 = time.perf_counter()
        resp = client.get(f"/api/sidebar/first-screen?customer={ext}")
        first.append(time.perf_counter() - t0)
        assert resp.status_code == 200, resp.get_data(as_text=True)[:200]
        t0 = time.perf_counter()
        client.get("/bench/noop")
        base.append(time.perf_counter() - t0)
    return first, base


def time_lazy(app, args, rng, n: int = 200) -> dict[str, list[float]]:
    """What loads after the first paint or without a customer: the 客户 tab's recommendations, the workbench
    page (a push's link, `/sidebar/?tab=tasks`: all the guide's tasks by rule and today's content) and the 排行
    tab's API; n random customers / guides each, same client."""
    from sqlalchemy import text

    from core.db import db

    with app.app_context():
        pairs = db.session.execute(text(
            "SELECT c.binding_guide_id, i.value FROM customers c JOIN customer_identities i "
            "ON i.customer_id = c.id AND i.kind = 'external_userid' "
            "WHERE c.id = ANY(:ids)"), {"ids": rng.sample(range(1, args.customers + 1), n)}).all()
        db.session.remove()
    client = app.test_client()
    out: dict[str, list[float]] = {"GET …/recommendations?top=5": [], "GET /sidebar/?tab=tasks (page)": [],
                                   "GET /api/sidebar/ranking": []}
    for i, (gid, ext) in enumerate(pairs):
        client.set_cookie("session", session_cookie(app, gid))
        for (label, times), url in zip(out.items(), (f"/api/customers/{ext}/recommendations?top=5",
                                                      "/sidebar/?tab=tasks", "/api/sidebar/ranking")):
            t0 = time.perf_counter()
            resp = client.get(url)
            if i >= 5:  # the first few warm the catalog cache and the leaderboard
                times.append(time.perf_counter() - t0)
            assert resp.status_code == 200, (url, resp.get_data(as_text=True)[:200])
    return out


def time_browser(app, args, rng) -> list[float] | None:
    chromium = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if chromium is None:
        return None
    from sqlalchemy import text
    from werkzeug.serving import make_server

    from core.db import db

    with app.app_context():
        pairs = db.session.execute(text(
            "SELECT c.binding_guide_id, i.value FROM customers c JOIN customer_identities i "
            "ON i.customer_id = c.id AND i.kind = 'external_userid' WHERE c.id = ANY(:ids)"),
            {"ids": rng.sample(range(1, args.customers + 1), args.browser_loads + 2)}).all()
        db.session.remove()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    times = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            context = browser.new_context(viewport={"width": 360, "height": 740})
            page = context.new_page()
            # Outside WeCom the page would try to load WeCom's JS-SDK from the internet: answer those locally.
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base)
                       else route.fulfill(status=200, body="", content_type="application/javascript"))
            for i, (gid, ext) in enumerate(pairs):
                context.add_cookies([{"name": "session", "value": session_cookie(app, gid), "url": base}])
                page.goto(f"{base}/sidebar/?customer={ext}", wait_until="load")
                page.wait_for_selector("#tab-customer .sb-profile")
                t = page.evaluate("() => { const n = performance.getEntriesByType('navigation')[0];"
                                  " const paint = performance.getEntriesByName('first-contentful-paint')[0];"
                                  " return Math.max(n.loadEventEnd, paint ? paint.startTime : 0); }")
                if i >= 2:  # the first loads warm the browser's cache of the assets, like a guide's second chat
                    times.append(t / 1000)
            browser.close()
    finally:
        server.shutdown()
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=os.environ.get(
        "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/bench_sidebar"))
    ap.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"))
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--scripts", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--browser-loads", type=int, default=20)
    ap.add_argument("--keep", action="store_true", help="reuse an already seeded database")
    args = ap.parse_args()

    import logging

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from callback_throughput import ensure_database

    ensure_database(args.database_url)
    from sqlalchemy import text

    from app import create_app
    from core.db import db

    app = create_app({"DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url, "DEMO": False,
                      "SECRET_KEY": "bench-secret-key-0123456789", "WECOM_CORP_ID": "wwbench",
                      "WECOM_AGENT_ID": "1000002", "WECOM_SECRET": "bench", "WECOM_TOKEN": "bench",
                      "WECOM_AES_KEY": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
                      "WECOM_API_BASE": "http://127.0.0.1:9/cgi-bin/"})

    @app.get("/bench/noop")
    def noop():  # the baseline: routing, the WSGI stack, a JSON answer
        return {"ok": True}

    with app.app_context():
        seeded = None
        counts = None
        if args.keep:
            try:
                counts = db.session.execute(text("SELECT (SELECT count(*) FROM customers), "
                                                 "(SELECT count(*) FROM events), (SELECT count(*) FROM scripts)")).one()
            except Exception:
                db.session.rollback()
        if not counts or counts[0] != args.customers:
            seeded = seed(app, args)
            counts = db.session.execute(text("SELECT (SELECT count(*) FROM customers), "
                                             "(SELECT count(*) FROM events), (SELECT count(*) FROM scripts)")).one()
        db.session.remove()
        from core.redis_store import rstore

        rstore.client.flushdb()
    load = os.getloadavg()
    print(f"data: {counts[0]:,} customers, {counts[1]:,} events, {counts[2]:,} scripts"
          + (f" (seeded in {seeded:.1f} s)" if seeded else " (kept)"))
    print(f"load average before timing: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")

    rng = random.Random(11)
    with app.app_context():
        t0 = time.perf_counter()
        from knowledge.service import library

        library()
        print(f"library index build (once per process): {time.perf_counter() - t0:.2f} s")
        db.session.remove()
    first, base = time_api(app, args, rng)
    ms = lambda v: f"{v * 1000:7.2f} ms"  # noqa: E731
    print(f"\n{'endpoint':<34} {'median':>10} {'p99':>10} {'n':>6}")
    print(f"{'trivial endpoint (baseline)':<34} {ms(statistics.median(base)):>10} {ms(percentile(base, 99)):>10} "
          f"{len(base):>6}")
    print(f"{'GET /api/sidebar/first-screen':<34} {ms(statistics.median(first)):>10} "
          f"{ms(percentile(first, 99)):>10} {len(first):>6}")
    print(f"first screen minus baseline (median): {ms(statistics.median(first) - statistics.median(base))}; "
          f"aims: median ≤ 30 ms, p99 ≤ 100 ms")

    print("after the first paint / without a customer:")
    for label, times in time_lazy(app, args, rng).items():
        print(f"{label:<34} {ms(statistics.median(times)):>10} {ms(percentile(times, 99)):>10} {len(times):>6}")

    sizes = assets_gzipped()
    print("\nassets gzipped: " + ", ".join(f"{k} {v / 1024:.1f} KB" for k, v in sizes.items())
          + f"; total {sum(sizes.values()) / 1024:.1f} KB (aim ≤ 150 KB)")

    times = time_browser(app, args, rng)
    if times is None:
        print("\nheadless Chromium: not available (run scripts/browser.sh; pip install playwright)")
    else:
        print(f"\nheadless Chromium, /sidebar/?customer=… over loopback, {len(times)} loads: "
              f"median {statistics.median(times) * 1000:.0f} ms, worst {max(times) * 1000:.0f} ms (aim ≤ 1 s)")
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
