"""Bulk import speed: a realistic 1,000,000-record JSONL imported into PostgreSQL, then re-imported.

    python benchmarks/import_bulk.py [--database-url postgresql://postgres@127.0.0.1:5432/test]
                                     [--records 1000000] [--baseline 10000] [--seed 7]

DROPS AND RECREATES the schema of the database it is given (through the Alembic migrations, as the tests
do). The file is generated into a temp dir: 50 stores, 500 guides, 100 tags, 2,000 products, 150,000
customer records (135,000 WeCom contacts plus 15,000 membership records that share a mobile with one of
them: One-ID merges), 150,000 follows, 7,350 customer tags and the rest orders (~690,000, 1-3 lines,
85 % keyed by a known mobile / member_no / external_userid, 15 % by unknown keys), lines shuffled.

Prints: the first import (empty database) and a re-import (everything already there), records/s, the
rows each re-import wrote (pg_stat_user_tables: must be 0), the process's peak RSS (the file is generated
in a child process, so the peak is the import's own), and a baseline: a naive per-record ORM upsert
of the file's first --baseline records (new orders and customers: insert path), extrapolated to the file.
"""
from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import random
import resource
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CITIES = ["上海", "北京", "杭州", "南京", "苏州", "成都", "武汉", "广州", "深圳", "西安"]
CATEGORIES = ["formula", "diaper", "wipes", "feeding", "toy", "clothing", "skincare", "food"]
CHANNELS = ["pos", "pos", "pos", "ecommerce", "miniprogram"]
TAG_GROUPS = {"宝宝阶段": ["孕期", "0-6月", "6-12月", "1-3岁", "3岁以上"], "偏好": [f"偏好{i}" for i in range(95)]}


def generate(path: Path, total: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    scale = total / 1_000_000
    n_stores, n_guides, n_products = 50, 500, 2000
    n_wecom = int(135_000 * scale)
    n_member = int(15_000 * scale)
    n_follows = int(150_000 * scale)
    n_ctags = int(7_350 * scale)
    n_tags = sum(len(v) for v in TAG_GROUPS.values())
    n_orders = total - (n_stores + n_guides + n_tags + n_products + n_wecom + n_member + n_follows + n_ctags)
    lines: list[str] = []
    dump = lambda r: json.dumps(r, ensure_ascii=False, separators=(",", ":"))  # noqa: E731

    stores = [f"S{i:03d}" for i in range(n_stores)]
    for i, code in enumerate(stores):
        lines.append(dump({"type": "store", "code": code, "name": f"{CITIES[i % 10]}{i}号店", "city": CITIES[i % 10]}))
    guides = [f"guide{i:04d}" for i in range(n_guides)]
    for i, g in enumerate(guides):
        lines.append(dump({"type": "guide", "userid": g, "name": f"导购{i}", "store": stores[i % n_stores],
                           "role": "manager" if i % 10 == 0 else "guide"}))
    for group, names in TAG_GROUPS.items():
        for name in names:
            lines.append(dump({"type": "tag", "group": group, "name": name}))
    products = []
    for i in range(n_products):
        cat = CATEGORIES[i % len(CATEGORIES)]
        price = round(rng.uniform(9, 500), 1)
        products.append((f"SKU{i:05d}", f"{cat} 商品 {i}", cat, price))
        lines.append(dump({"type": "product", "sku": f"SKU{i:05d}", "name": f"{cat} 商品 {i}", "category": cat,
                           "price": price, "attributes": {"stage": i % 4, "days_of_use": 7 + i % 30}}))
    base = datetime(2023, 1, 1)
    customers = []  # (external_userid, mobile, member_no)
    for i in range(n_wecom):
        ext = f"wm{i:08d}x"
        mobile = f"139{i:08d}" if i % 5 < 3 else None
        member = f"M{i:08d}" if i % 5 >= 2 else None
        customers.append((ext, mobile, member))
        rec = {"type": "customer", "external_userid": ext, "name": f"顾客{i}", "gender": i % 3}
        if mobile:
            rec["mobile"] = mobile
        if member:
            rec["member_no"] = member
        if i % 4 == 0:
            rec["baby_birthday"] = (base + timedelta(days=i % 700)).date().isoformat()
        lines.append(dump(rec))
    with_mobile = [c for c in customers if c[1]]
    for i in range(n_member):
        ext, mobile, member = with_mobile[i * len(with_mobile) // max(n_member, 1)]
        lines.append(dump({"type": "customer", "mobile": mobile, "member_no": member or f"MM{i:08d}",
                           "name": f"会员{i}", "member_level": ["silver", "gold", "platinum"][i % 3],
                           "points": i % 5000}))
    pairs = set()
    while len(pairs) < n_follows:
        pairs.add((rng.randrange(n_guides), rng.randrange(n_wecom)))
    for g, c in pairs:
        added = base + timedelta(minutes=rng.randrange(600 * 24 * 60))
        lines.append(dump({"type": "follow", "userid": guides[g], "external_userid": customers[c][0],
                           "added_at": added.isoformat(timespec="seconds"), "state": f"qr-{g % 50}"}))
    seen = set()
    while len(seen) < n_ctags:
        c, (group, names) = rng.randrange(n_wecom), rng.choice(list(TAG_GROUPS.items()))
        seen.add((customers[c][0], group + "/" + rng.choice(names)))
    for ext, tag in seen:
        lines.append(dump({"type": "customer_tag", "external_userid": ext, "tag": tag}))
    for i in range(n_orders):
        c = customers[rng.randrange(n_wecom)]
        r = rng.random()
        if r < 0.15:
            keys = {"unionid": f"oU{i:09d}"}  # unknown: kept unmatched
        elif c[1] and r < 0.6:
            keys = {"mobile": c[1]}
        elif c[2] and r < 0.8:
            keys = {"member_no": c[2]}
        else:
            keys = {"external_userid": c[0]}
        items = []
        for _ in range(rng.randint(1, 3)):
            sku, name, cat, price = products[rng.randrange(n_products)]
            items.append({"sku": sku, "name": name, "category": cat, "qty": rng.randint(1, 3), "price": price})
        amount = round(sum(it["qty"] * it["price"] for it in items), 2)
        paid = base + timedelta(seconds=rng.randrange(700 * 86400))
        order = {"type": "order", "order_no": f"O{i:09d}", "channel": rng.choice(CHANNELS), "paid_at":
                 paid.isoformat(timespec="seconds"), "amount": amount, "customer": keys, "items": items}
        if order["channel"] == "pos":
            order["store"] = stores[rng.randrange(n_stores)]
        lines.append(dump(order))
    rng.shuffle(lines)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
        f.write("\n")
    return {"stores": n_stores, "guides": n_guides, "customers": n_wecom + n_member, "follows": n_follows,
            "orders": n_orders}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def writes(conn) -> int:
    """Rows inserted, updated or deleted so far in the app's tables (cumulative statistics)."""
    from sqlalchemy import text

    time.sleep(1.2)  # backends flush their statistics about once a second
    conn.execute(text("SELECT pg_stat_clear_snapshot()"))
    return conn.execute(text(
        "SELECT COALESCE(SUM(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables "
        "WHERE relname <> 'alembic_version'")).scalar()


def naive_upsert(records: list[tuple[int, dict]]) -> None:
    """The obvious way: per record, look up by natural key through the ORM, update or insert, flush."""
    from sqlalchemy import func, select

    from core.db import db
    from imports.records import TYPE_ORDER, parse_record
    from models import (Customer, CustomerIdentity, CustomerTag, Event, Follow, Guide, Order, OrderLine,
                        Product, Store, Tag, TagGroup)

    s = db.session

    def customer_by(keys):
        for kind, value in keys.items():
            ident = s.scalar(select(CustomerIdentity).where(CustomerIdentity.kind == kind,
                                                            CustomerIdentity.value == value))
            if ident:
                return s.get(Customer, ident.customer_id)
        return None

    parsed = sorted((TYPE_ORDER.index(t), ln, t, r) for ln, raw in records for t, r in [parse_record(raw)])
    for _, _, rtype, r in parsed:
        if rtype == "store":
            st = s.scalar(select(Store).where(Store.code == r["code"])) or Store(code=r["code"])
            st.name, st.city = r["name"], r["city"]
            s.add(st)
        elif rtype == "guide":
            g = s.scalar(select(Guide).where(Guide.userid == r["userid"])) or Guide(userid=r["userid"])
            g.name, g.role = r["name"], r["role"]
            g.store_id = s.scalar(select(Store.id).where(Store.code == r["store"]))
            s.add(g)
        elif rtype == "tag":
            grp = s.scalar(select(TagGroup).where(TagGroup.name == r["group"]))
            if grp is None:
                grp = TagGroup(name=r["group"])
                s.add(grp)
                s.flush()
            if not s.scalar(select(Tag).where(Tag.group_id == grp.id, Tag.name == r["name"])):
                s.add(Tag(group_id=grp.id, name=r["name"]))
        elif rtype == "product":
            p = s.scalar(select(Product).where(Product.sku == r["sku"])) or Product(sku=r["sku"])
            p.name, p.category, p.price = r["name"], r["category"], r["price"]
            p.attributes = json.loads(r["attributes"] or "{}")
            s.add(p)
        elif rtype == "customer":
            keys = {k: v + "-B" for k, v in r["keys"].items()}  # new customers: the insert path
            c = customer_by(keys) or Customer(name=r["name"])
            for f in ("name", "gender", "birthday", "baby_birthday", "due_date", "member_level", "points"):
                if r[f] is not None:
                    setattr(c, f, r[f])
            s.add(c)
            s.flush()
            for kind, value in keys.items():
                if not s.scalar(select(CustomerIdentity).where(CustomerIdentity.kind == kind,
                                                              CustomerIdentity.value == value)):
                    s.add(CustomerIdentity(customer_id=c.id, kind=kind, value=value))
        elif rtype == "follow":
            g = s.scalar(select(Guide).where(Guide.userid == r["userid"]))
            c = customer_by({"external_userid": r["external_userid"]})
            f = s.scalar(select(Follow).where(Follow.guide_id == g.id, Follow.customer_id == c.id))
            f = f or Follow(guide_id=g.id, customer_id=c.id, added_at=r["added_at"])
            f.added_at, f.state = r["added_at"], r["state"] or f.state
            s.add(f)
            s.flush()
            first = s.scalars(select(Follow).where(Follow.customer_id == c.id, Follow.ended_at.is_(None))
                              .order_by(Follow.added_at)).first()
            c.binding_guide_id = first.guide_id if first else None
            c.first_added_at = s.scalar(select(func.min(Follow.added_at)).where(Follow.customer_id == c.id))
        elif rtype == "customer_tag":
            c = customer_by({"external_userid": r["external_userid"]})
            tag = s.scalar(select(Tag).join(TagGroup).where(TagGroup.name == r["group"], Tag.name == r["name"]))
            if not s.get(CustomerTag, (c.id, tag.id)):
                s.add(CustomerTag(customer_id=c.id, tag_id=tag.id, source="import"))
        elif rtype == "order":
            order_no = r["order_no"] + "-B"  # new orders: the insert path
            c = customer_by(r["keys"])
            o = s.scalar(select(Order).where(Order.order_no == order_no)) or Order(order_no=order_no)
            o.channel, o.paid_at, o.amount, o.customer_keys = r["channel"], r["paid_at"], r["amount"], r["keys"]
            o.store_id = s.scalar(select(Store.id).where(Store.code == r["store"])) if r["store"] else None
            o.customer_id = c.id if c else None
            o.guide_id = c.binding_guide_id if c else None
            o.lines = [OrderLine(line_no=n, sku=a, name=b, category=cat, qty=q, price=p)
                       for n, (a, b, cat, q, p) in enumerate(r["items"], 1)]
            s.add(o)
            s.flush()
            if c:
                if not s.scalar(select(Event).where(Event.type == "order", Event.ref == order_no)):
                    s.add(Event(customer_id=c.id, type="order", occurred_at=o.paid_at, channel=o.channel,
                                guide_id=o.guide_id, ref=order_no,
                                payload={"amount": float(o.amount), "items": len(o.lines)}))
                n, total, last = s.execute(select(func.count(), func.sum(Order.amount), func.max(Order.paid_at))
                                           .where(Order.customer_id == c.id)).one()
                c.order_count, c.total_spend, c.last_order_at = n, total, last
        s.flush()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--baseline", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    if not args.database_url.startswith("postgresql"):
        sys.exit("this benchmark is for PostgreSQL")

    from alembic import command
    from sqlalchemy import text

    from app import create_app
    from core.cli import alembic_config
    from core.db import db
    from imports.operations import import_file, read_jsonl
    from models import Base

    logging.basicConfig(format="  %(message)s")
    logging.getLogger("imports.operations").setLevel(logging.DEBUG)
    app = create_app({"DATABASE_URL": args.database_url, "DEMO": True, "REDIS_URL": None})
    progress = sys.stderr.isatty()
    with tempfile.TemporaryDirectory() as tmp, app.app_context():
        path = Path(tmp) / "import.jsonl"
        t0 = time.perf_counter()
        with multiprocessing.get_context("fork").Pool(1) as pool:  # keeps the generator's memory out of the peak
            shape = pool.apply(generate, (path, args.records, args.seed))
        print(f"generated {args.records:,} records ({path.stat().st_size / 2**20:.0f} MiB) in "
              f"{time.perf_counter() - t0:.1f} s: {shape}")

        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        command.upgrade(alembic_config(), "head")

        print(f"peak RSS before importing: {peak_rss_mib():,.0f} MiB")
        runs = []
        for label in ("first import (empty database)", "re-import (same file)"):
            with db.engine.connect() as conn:
                before = writes(conn)
            t0 = time.perf_counter()
            counts = import_file(path, progress=progress)
            seconds = time.perf_counter() - t0
            db.session.remove()
            with db.engine.connect() as conn:
                written = writes(conn) - before
            runs.append(seconds)
            print(f"{label}: {seconds:.1f} s, {sum(counts.values()) / seconds:,.0f} records/s, "
                  f"rows written {written:,}, peak RSS so far {peak_rss_mib():,.0f} MiB")
        print("counts:", counts)
        with db.engine.connect() as conn:
            rows = {t.name: conn.execute(text(f"SELECT count(*) FROM {t.name}")).scalar()
                    for t in Base.metadata.sorted_tables}
        print("rows:", rows)

        sample = []
        for lineno, rec in read_jsonl(path):
            sample.append((lineno, rec))
            if len(sample) >= args.baseline:
                break
        t0 = time.perf_counter()
        try:
            naive_upsert(sample)
        finally:
            db.session.rollback()
            db.session.remove()
        naive = time.perf_counter() - t0
        per_file = naive / len(sample) * args.records
        print(f"baseline, naive per-record ORM upsert: {len(sample):,} records in {naive:.1f} s "
              f"({len(sample) / naive:,.0f} records/s) -> {per_file / 60:.0f} min for {args.records:,} "
              f"({per_file / runs[0]:.0f}x slower than the set-based import)")


if __name__ == "__main__":
    os.environ.setdefault("DEMO", "1")
    main()
