"""Recommendation quality on the demo chain: hold out each customer's last order, hit@5.

    python benchmarks/recommend_holdout.py [--database-url sqlite:////tmp/bench_recommend.db] [--top 5]

REBUILDS the database it is given (SQLite file deleted; PostgreSQL schema dropped), seeds the demo chain
(`demo seed`: 200 customers, a year of orders), then for every customer with at least two orders holds out
the last one and asks what we would have recommended an hour before it was paid (only earlier orders are
seen; the products-bought-together table and popularity are rebuilt without any held-out order). A hit is
any of the top 5 SKUs appearing in the held-out order. Baselines measured in the same run:
- most popular: the 5 SKUs with the most order lines in the last 90 days (held-out orders excluded);
- stage popular: the 5 most bought SKUs among orders placed at the same baby stage (孕期, 0-6月, 6-12月,
  1-3岁, none) as the customer's stage at the time;
and each of our sources alone.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def stage_at(customer, day) -> str:
    from customers.segments import baby_age

    age = baby_age(customer, day)
    return age.stage if age else "none"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL",
                                                             "sqlite:////tmp/bench_recommend.db"))
    ap.add_argument("--top", type=int, default=5)
    args = ap.parse_args()
    if args.database_url.startswith("sqlite:////"):
        Path(args.database_url[len("sqlite:///"):]).unlink(missing_ok=True)

    from alembic import command
    from sqlalchemy import select, text

    from app import create_app
    from core.cli import alembic_config
    from core.db import db
    from core.timeutil import to_local, utcnow
    from demo.cli import seed
    from models import Customer, Order, OrderLine
    from recommend import operations as ops

    app = create_app({"DATABASE_URL": args.database_url, "DEMO": True, "REDIS_URL": None})
    with app.app_context():
        if not args.database_url.startswith("sqlite"):
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        command.upgrade(alembic_config(), "head")
        t0 = time.perf_counter()
        seed()
        db.session.commit()
        print(f"demo seeded in {time.perf_counter() - t0:.1f} s")

        orders = db.session.execute(select(Order.id, Order.customer_id, Order.paid_at)
                                    .where(Order.customer_id.is_not(None)).order_by(Order.paid_at)).all()
        by_customer = defaultdict(list)
        for oid, cid, at in orders:
            by_customer[cid].append((at, oid))
        held = {cid: rows[-1] for cid, rows in by_customer.items() if len(rows) >= 2}
        exclude = {oid for _, oid in held.values()}
        lines = defaultdict(set)
        line_rows = db.session.execute(select(OrderLine.order_id, OrderLine.sku)).all()
        for oid, sku in line_rows:
            lines[oid].add(sku)

        now = utcnow()
        pairs = ops.rebuild_pairs(now=now, exclude_order_ids=exclude)
        cat = ops.load_catalog(until=now, exclude_order_ids=exclude)
        popular = [sku for sku, _ in cat.popularity.most_common(args.top)]

        customers = {c.id: c for c in db.session.scalars(select(Customer))}
        stage_pop: dict[str, Counter] = defaultdict(Counter)
        order_customer = {oid: (cid, at) for oid, cid, at in orders}
        for oid, sku in line_rows:
            if oid in exclude or oid not in order_customer:
                continue
            cid, at = order_customer[oid]
            stage_pop[stage_at(customers[cid], to_local(at).date())][sku] += 1

        variants = {"ours (all sources)": None, "  replenish only": ("replenish",), "  stage rules only": ("stage",),
                    "  bought together only": ("together",), "  browsing only": ("browsing",)}
        hits = Counter()
        served = Counter()
        elapsed = 0.0
        calls = 0
        for cid, (at, oid) in held.items():
            truth = lines[oid]
            as_of = at - timedelta(hours=1)
            customer = customers[cid]
            hits["most popular (baseline)"] += bool(truth & set(popular))
            stage = stage_at(customer, to_local(as_of).date())
            hits["stage popular (baseline)"] += bool(truth & {s for s, _ in stage_pop[stage].most_common(args.top)})
            for name, sources in variants.items():
                t0 = time.perf_counter()
                recs = ops.recommend(customer, top=args.top, now=as_of, cat=cat, exclude_order_ids=exclude,
                                     sources=sources)
                elapsed += time.perf_counter() - t0
                calls += 1
                served[name] += bool(recs)
                hits[name] += bool(truth & {r["sku"] for r in recs})
        n = len(held)
        print(f"{n} customers with a held-out last order; {pairs['pairs']} product pairs from training orders")
        print(f"{'method':<28} {'hit@' + str(args.top):>7} {'rate':>7} {'with recs':>10}")
        for name in ("most popular (baseline)", "stage popular (baseline)", *variants):
            with_recs = f"{served[name]:>10}" if name in served else f"{n:>10}"
            print(f"{name:<28} {hits[name]:>7} {hits[name] / n:>7.1%} {with_recs}")
        print(f"recommend(): {elapsed / calls * 1000:.1f} ms per customer on average ({calls} calls)")
        ours, base = hits["ours (all sources)"] / n, hits["most popular (baseline)"] / n
        print(f"ours vs most popular: {ours / base:.2f}×" if base else "baseline hit nothing")


if __name__ == "__main__":
    main()
