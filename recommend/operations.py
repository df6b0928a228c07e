"""Product recommendations (货找人): the next products for one customer, each with a reason in Chinese.

Four sources, merged by score (a product named by several keeps its best reason and gains a little):
- replenish: a replenishable item (attributes.days_of_use) she bought whose supply runs out about now;
- stage: rules from recommend/rules.json — what she bought (stage-1 formula → size S diapers and
  hand-and-mouth wipes), the baby's age (stage-appropriate formula and diapers), the due date (newborn kit);
- together: item-to-item co-occurrence in the chain's orders (product_pairs, rebuilt nightly);
- browsing: three or more views of high-priced items in a category (trajectory events `product_view`) and
  no purchase there → a mid-priced item of that category and a coupon hint.
What she bought in the last RECENT_DAYS is left out unless it is replenishable.

Everything takes `now`, and only orders paid before it count, so benchmarks/recommend_holdout.py can ask
"what would we have recommended the day before her last order".
"""
from __future__ import annotations

import json
import math
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from flask import current_app
from sqlalchemy import delete, func, insert, select

from core.db import db
from core.timeutil import to_local, utcnow
from coupons.operations import held_counts, refusal
from customers.segments import baby_age
from models import CouponTemplate, Customer, Event, Order, OrderLine, Product, ProductPair

RULES_PATH = Path(__file__).resolve().parent / "rules.json"
RECENT_DAYS = 30  # bought this recently: not recommended again unless replenishable
HISTORY_DAYS = 365
PAIR_WINDOW_DAYS = 30  # bought in the same order, or within this many days of each other
PAIRS_PER_SKU = 20
MIN_TOGETHER = 2
BROWSE_DAYS = 30
BROWSE_MIN_VIEWS = 3
CATALOG_TTL = 900  # products and their 90-day popularity, per process
SOURCE_WEIGHT = {"replenish": 1.0, "stage": 0.8, "browsing": 0.85, "together": 0.6}
SOURCE_LABELS = {"replenish": "补货", "stage": "阶段", "browsing": "浏览未购", "together": "常一起买"}


class RecommendInputError(ValueError):
    """Bad input (e.g. a malformed rules file); the message names the problem."""


# --------------------------------------------------------------------------------------------- catalog


@dataclass
class Catalog:
    products: dict[str, Product]
    popularity: Counter  # sku → order lines in the period
    by_category: dict[str, list[Product]] = field(default_factory=dict)
    built_at: float = 0.0
    # per category, from its sorted prices: where the top third starts (what counts as a high-priced view)
    # and the median (what a mid-priced offer is near); computed once per load, not per request
    high_price: dict[str, float] = field(default_factory=dict)
    median_price: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        by = defaultdict(list)
        for p in self.products.values():
            by[p.category].append(p)
        self.by_category = dict(by)
        for category, products in self.by_category.items():
            prices = sorted(float(p.price) for p in products)
            self.high_price[category] = prices[int(len(prices) * 2 / 3)] if len(prices) >= 3 else prices[-1]
            self.median_price[category] = prices[len(prices) // 2]


def load_catalog(*, until: datetime | None = None, exclude_order_ids: set[int] | None = None) -> Catalog:
    products = {p.sku: p for p in db.session.scalars(select(Product))}
    for p in products.values():
        db.session.expunge(p)  # kept across requests: detached, read-only
    until = until or utcnow()
    period = (Order.paid_at < until, Order.paid_at >= until - timedelta(days=90))
    pop: Counter = Counter()
    if exclude_order_ids:  # the benchmark's hold-out
        q = select(OrderLine.sku, OrderLine.order_id).join(Order, Order.id == OrderLine.order_id).where(*period)
        for sku, oid in db.session.execute(q):
            if oid not in exclude_order_ids:
                pop[sku] += 1
    else:
        q = (select(OrderLine.sku, func.count()).join(Order, Order.id == OrderLine.order_id).where(*period)
             .group_by(OrderLine.sku))
        pop.update(dict(db.session.execute(q).all()))
    return Catalog(products, pop, built_at=time.monotonic())


def catalog() -> Catalog:
    """The process's catalog, rebuilt every CATALOG_TTL seconds (a new product is recommended within 15
    minutes; `flask recommend rebuild` in the same process clears it)."""
    app = current_app._get_current_object()
    cached = app.extensions.get("recommend_catalog")
    if cached is None or time.monotonic() - cached.built_at > CATALOG_TTL:
        cached = load_catalog()
        app.extensions["recommend_catalog"] = cached
    return cached


def load_rules(path: Path | str | None = None) -> dict:
    path = Path(path or current_app.config.get("RECOMMEND_RULES") or RULES_PATH)
    try:
        rules = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RecommendInputError(f"{path}: {exc}") from None
    for section in ("after_purchase", "baby_age", "due"):
        for i, rule in enumerate(rules.get(section, []), 1):
            if not isinstance(rule.get("recommend"), list) or not rule.get("reason"):
                raise RecommendInputError(f"{path}: {section} rule {i} needs recommend (a list) and reason")
    return rules


def _rules() -> dict:
    app = current_app._get_current_object()
    if "recommend_rules" not in app.extensions:
        app.extensions["recommend_rules"] = load_rules()
    return app.extensions["recommend_rules"]


def _brand(name: str) -> str:
    return name.split()[0] if name else ""


def _matches(p: Product, sel: dict) -> bool:
    if sel.get("sku") and p.sku != sel["sku"]:
        return False
    if sel.get("category") and p.category != sel["category"]:
        return False
    if sel.get("name_contains") and sel["name_contains"] not in p.name:
        return False
    attrs = p.attributes or {}
    return all(attrs.get(k) == v for k, v in (sel.get("attributes") or {}).items())


def pick(cat: Catalog, sel: dict, brands: dict[str, set[str]]) -> Product | None:
    """The product a selector stands for, for this customer: her brand first, then the most popular."""
    pool = [cat.products[sel["sku"]]] if sel.get("sku") in cat.products else \
        cat.by_category.get(sel.get("category"), []) if sel.get("category") else list(cat.products.values())
    found = [p for p in pool if _matches(p, sel)]
    if not found:
        return None
    own = brands.get(found[0].category, set())
    return max(found, key=lambda p: (_brand(p.name) in own, cat.popularity[p.sku], -float(p.price), p.sku))


# --------------------------------------------------------------------------------------------- history


@dataclass
class Bought:
    sku: str
    category: str
    name: str
    qty: int
    paid_at: datetime


def history(customer_id: int, now: datetime, *, exclude_order_ids: set[int] | None = None) -> list[Bought]:
    q = (select(OrderLine.sku, OrderLine.category, OrderLine.name, OrderLine.qty, Order.paid_at, Order.id)
         .join(Order, Order.id == OrderLine.order_id)
         .where(Order.customer_id == customer_id, Order.paid_at < now,
                Order.paid_at >= now - timedelta(days=HISTORY_DAYS))
         .order_by(Order.paid_at))
    return [Bought(sku, cat, name, qty, at) for sku, cat, name, qty, at, oid in db.session.execute(q)
            if not exclude_order_ids or oid not in exclude_order_ids]


# --------------------------------------------------------------------------------------------- sources


@dataclass
class Candidate:
    sku: str
    score: float
    reason: str
    source: str
    extra: dict = field(default_factory=dict)


def _replenish(cat: Catalog, bought: list[Bought], now: datetime, stage_skus: dict[str, str]) -> list[Candidate]:
    """Replenishable items whose supply runs out within two weeks (or ran out in the last month)."""
    last: dict[str, Bought] = {}
    for b in bought:
        last[b.sku] = b
    out = []
    for sku, b in last.items():
        p = cat.products.get(sku)
        days = (p.attributes or {}).get("days_of_use") if p else None
        if not days:
            continue
        runs_out = b.paid_at + timedelta(days=days * b.qty)
        ahead = (runs_out - now).days
        if not -30 <= ahead <= 14:
            continue
        urgency = 1.0 - abs(ahead) / 45
        target = stage_skus.get(p.category) or sku
        if target != sku and target in cat.products and _same_line(p, cat.products[target]):
            name = cat.products[target].name
            reason = f"上次买的{p.name}约{'已用完' if ahead <= 0 else f'{ahead}天后用完'}，宝宝长大了，该换{name}"
        else:
            target, reason = sku, (f"上次买的{p.name}（{b.qty}件）按用量{'已用完' if ahead <= 0 else f'约{ahead}天后用完'}，"
                                   "可以提醒补货")
        out.append(Candidate(target, SOURCE_WEIGHT["replenish"] * urgency, reason, "replenish"))
    return out


def _same_line(a: Product, b: Product) -> bool:
    return a.category == b.category and _brand(a.name) == _brand(b.name)


def _age_rule(rules: dict, customer: Customer, today) -> dict | None:
    """The baby-age rule for a born baby, else the due-date rule for an expected one."""
    if customer.baby_birthday and customer.baby_birthday <= today:
        days = (today - customer.baby_birthday).days
        return next((r for r in rules.get("baby_age", []) if r["from_days"] <= days <= r["to_days"]), None)
    if customer.due_date and customer.due_date >= today:
        ahead = (customer.due_date - today).days
        return next((r for r in sorted(rules.get("due", []), key=lambda r: r["within_days"])
                     if ahead <= r["within_days"]), None)
    return None


def _stage(cat: Catalog, rules: dict, customer: Customer, bought: list[Bought], now: datetime,
           brands: dict[str, set[str]]) -> list[Candidate]:
    today = to_local(now).date()
    out = []
    rule = _age_rule(rules, customer, today)
    age = baby_age(customer, today)
    bought_categories = {b.category for b in bought}
    if rule is not None:
        for i, sel in enumerate(rule["recommend"]):
            p = pick(cat, sel, brands)
            if p is None:
                continue
            # Formula and diapers matter most to those who already buy them here.
            fit = 1.0 if p.category in bought_categories else 0.6
            out.append(Candidate(p.sku, SOURCE_WEIGHT["stage"] * fit * (1 - 0.05 * i),
                                 rule["reason"].format(age=age.label if age else "", product=p.name), "stage"))
    latest: dict[str, Bought] = {}  # the latest purchase per category: a later stage supersedes
    for b in bought:
        latest[b.category] = b
    for rule in rules.get("after_purchase", []):
        since = now - timedelta(days=rule.get("within_days", 90))
        trigger = next((b for b in latest.values() if b.paid_at >= since and b.sku in cat.products
                        and _matches(cat.products[b.sku], rule["when"])), None)
        if trigger is None:
            continue
        for i, sel in enumerate(rule["recommend"]):
            p = pick(cat, sel, brands)
            if p is not None:
                out.append(Candidate(p.sku, SOURCE_WEIGHT["stage"] * 0.9 * (1 - 0.05 * i),
                                     rule["reason"].format(age=age.label if age else "", product=p.name), "stage"))
    return out


def _together(cat: Catalog, bought: list[Bought], now: datetime) -> list[Candidate]:
    recent = {}
    for b in bought:
        if b.paid_at >= now - timedelta(days=90):
            recent[b.sku] = b
    if not recent:
        return []
    scores: dict[str, float] = defaultdict(float)
    because: dict[str, tuple[float, str]] = {}
    for sku, other, score in db.session.execute(select(ProductPair.sku, ProductPair.other_sku, ProductPair.score)
                                                .where(ProductPair.sku.in_(list(recent)))):
        scores[other] += score
        if score > because.get(other, (0, ""))[0]:
            because[other] = (score, sku)
    out = []
    for other, s in scores.items():
        if other not in cat.products:
            continue
        src = cat.products.get(because[other][1])
        out.append(Candidate(other, SOURCE_WEIGHT["together"] * min(1.0, s),
                             f"买过{src.name if src else because[other][1]}的顾客常一起买", "together"))
    return out


def _browsing(cat: Catalog, customer_id: int, bought: list[Bought], now: datetime) -> list[Candidate]:
    since = now - timedelta(days=BROWSE_DAYS)
    views = db.session.execute(select(Event.payload, Event.occurred_at).where(
        Event.customer_id == customer_id, Event.type == "product_view", Event.occurred_at >= since,
        Event.occurred_at < now)).all()
    by_category: dict[str, list[Product]] = defaultdict(list)
    first_view: dict[str, datetime] = {}
    for payload, at in views:
        p = cat.products.get((payload or {}).get("sku"))
        if p is None:
            continue
        if float(p.price) >= cat.high_price[p.category]:
            by_category[p.category].append(p)
            first_view[p.category] = min(first_view.get(p.category, at), at)
    out = []
    issuable = None  # the coupons this customer may get now, read once and only if a category needs one
    for category, seen in by_category.items():
        if len(seen) < BROWSE_MIN_VIEWS:
            continue
        if any(b.category == category and b.paid_at >= first_view[category] for b in bought):
            continue
        median = cat.median_price[category]
        viewed = {p.sku for p in seen}
        options = [p for p in cat.by_category[category] if p.sku not in viewed] or cat.by_category[category]
        mid = min(options, key=lambda p: (abs(float(p.price) - median), -cat.popularity[p.sku], p.sku))
        top = max(seen, key=lambda p: p.price)
        extra = {"coupon_hint": f"{category}品类优惠券", "viewed": sorted(viewed)}
        if issuable is None:
            issuable = issuable_coupons(customer_id, now)
        coupon = coupon_for(category, issuable)
        if coupon is not None:
            extra["coupon"] = coupon
        offer = f"配一张「{coupon['name']}」促成" if coupon else f"配一张{category}优惠券促成"
        out.append(Candidate(mid.sku, SOURCE_WEIGHT["browsing"],
                             f"最近看了{len(seen)}次高价{category}（如{top.name}）还没下单，"
                             f"可以推荐性价比更高的{mid.name}，{offer}", "browsing", extra))
    return out


def issuable_coupons(customer_id: int, now: datetime) -> list[CouponTemplate]:
    """The enabled coupon templates the guide can issue to this customer now (coupons.operations.refusal
    without the touch caps, which the issue itself checks), by external id."""
    today = to_local(now).date()
    held = held_counts(customer_id)
    return [t for t in db.session.scalars(select(CouponTemplate).where(CouponTemplate.enabled.is_(True))
                                          .order_by(CouponTemplate.external_id))
            if refusal(t, today, held.get(t.id, 0)) is None]


def coupon_for(category: str, issuable: list[CouponTemplate]) -> dict | None:
    """Of `issuable_coupons`, the one for `category`: one naming the category beats one valid for everything."""
    best = None
    for t in issuable:
        if t.categories and category not in t.categories:
            continue
        rank = 0 if t.categories else 1
        if best is None or rank < best[0]:
            best = (rank, t)
    if best is None:
        return None
    return {"template": best[1].external_id, "name": best[1].name}


# --------------------------------------------------------------------------------------------- merge


def recommend(customer: Customer, *, top: int = 5, now: datetime | None = None, cat: Catalog | None = None,
              exclude_order_ids: set[int] | None = None, sources: tuple[str, ...] | None = None) -> list[dict]:
    """The next products for `customer`, best first: [{sku, name, category, price, reason, source,
    source_label, score, also, coupon_hint?}]."""
    now = now or utcnow()
    cat = cat or catalog()
    rules = _rules()
    bought = history(customer.id, now, exclude_order_ids=exclude_order_ids)
    brands: dict[str, set[str]] = defaultdict(set)
    for b in bought:
        brands[b.category].add(_brand(b.name))
    sources = sources or tuple(SOURCE_WEIGHT)
    stage = _stage(cat, rules, customer, bought, now, brands) if "stage" in sources else []
    stage_skus = {}
    for c in stage:  # the stage's pick per category (for replenishing with the next stage)
        stage_skus.setdefault(cat.products[c.sku].category, c.sku)
    candidates = []
    if "replenish" in sources:
        candidates += _replenish(cat, bought, now, stage_skus)
    candidates += stage
    if "together" in sources:
        candidates += _together(cat, bought, now)
    if "browsing" in sources:
        candidates += _browsing(cat, customer.id, bought, now)

    recent = {b.sku for b in bought if b.paid_at >= now - timedelta(days=RECENT_DAYS)}
    merged: dict[str, dict] = {}
    for c in candidates:
        p = cat.products.get(c.sku)
        if p is None:
            continue
        if c.sku in recent and not (p.attributes or {}).get("days_of_use"):
            continue
        if c.sku in recent and c.source != "replenish":
            continue  # a replenishable bought lately is only suggested when it runs out
        m = merged.get(c.sku)
        if m is None:
            merged[c.sku] = m = {"candidate": c, "sources": {c.source}}
        else:
            m["sources"].add(c.source)
            if c.score > m["candidate"].score:
                m["candidate"] = c
    rows = []
    for sku, m in merged.items():
        c, p = m["candidate"], cat.products[sku]
        score = c.score + 0.1 * (len(m["sources"]) - 1)
        row = {"sku": sku, "name": p.name, "category": p.category, "price": str(p.price), "reason": c.reason,
               "source": c.source, "source_label": SOURCE_LABELS[c.source], "score": round(score, 4),
               "also": sorted(m["sources"] - {c.source})}
        for key in ("coupon_hint", "coupon"):
            if key in c.extra:
                row[key] = c.extra[key]
        rows.append(row)
    rows.sort(key=lambda r: (-r["score"], -cat.popularity[r["sku"]], r["sku"]))
    return rows[:top]


# --------------------------------------------------------------------------------------------- pairs


def rebuild_pairs(*, now: datetime | None = None, exclude_order_ids: set[int] | None = None) -> dict:
    """Recompute product_pairs from the last HISTORY_DAYS of orders: two products are 'bought together'
    by a customer who bought both in one order or within PAIR_WINDOW_DAYS. Score: cosine over customers.
    Replaces the table in one transaction (the caller commits). Returns {"pairs", "skus", "customers"}."""
    now = now or utcnow()
    started = time.perf_counter()
    q = (select(Order.customer_id, Order.id, Order.paid_at, OrderLine.sku)
         .join(OrderLine, OrderLine.order_id == Order.id)
         .where(Order.customer_id.is_not(None), Order.paid_at < now,
                Order.paid_at >= now - timedelta(days=HISTORY_DAYS))
         .order_by(Order.customer_id, Order.paid_at))
    per_customer: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
    for cid, oid, at, sku in db.session.execute(q):
        if not exclude_order_ids or oid not in exclude_order_ids:
            per_customer[cid].append((at, sku))
    buyers: Counter = Counter()
    together: Counter = Counter()
    window = timedelta(days=PAIR_WINDOW_DAYS)
    for items in per_customer.values():
        buyers.update({sku for _, sku in items})
        pairs = set()
        for i, (at_a, a) in enumerate(items):
            for at_b, b in items[i + 1:]:
                if at_b - at_a > window:
                    break
                if a != b:
                    pairs.add((a, b))
                    pairs.add((b, a))
        together.update(pairs)
    neighbours: dict[str, list[tuple[float, str, int]]] = defaultdict(list)
    for (a, b), n in together.items():
        if n >= MIN_TOGETHER:
            neighbours[a].append((n / math.sqrt(buyers[a] * buyers[b]), b, n))
    db.session.execute(delete(ProductPair))
    rows = []
    for a, lst in neighbours.items():
        lst.sort(key=lambda t: (-t[0], t[1]))
        rows += [{"sku": a, "other_sku": b, "together": n, "score": round(s, 6), "built_at": now}
                 for s, b, n in lst[:PAIRS_PER_SKU]]
    for i in range(0, len(rows), 5000):
        db.session.execute(insert(ProductPair), rows[i:i + 5000])
    db.session.flush()
    current_app.extensions.pop("recommend_catalog", None)
    return {"pairs": len(rows), "skus": len(neighbours), "customers": len(per_customer),
            "seconds": round(time.perf_counter() - started, 2)}


# --------------------------------------------------------------------------------------------- sending

# A short pitch per category for a product sent into the chat. The recommendation's reason is for the guide
# (it says why the system picked it, e.g. "her formula runs out"), not for the customer, so it is never sent.
PITCHES = {
    "奶粉": "店里现货，新鲜批次，需要的话我帮您留一罐～",
    "纸尿裤": "柔软透气，现在店里有货，需要我帮您留一包吗？",
    "湿巾": "日常用得多，囤一些更方便，需要我帮您留吗？",
    "辅食": "宝宝开始吃辅食可以试试，需要我帮您留一份吗？",
}
DEFAULT_PITCH = "这款店里有货，感兴趣的话我给您详细介绍～"


def product_message(product: Product) -> str:
    """The text a guide sends for one product: name, price and a short pitch (never the internal reason)."""
    return f"{product.name}\n¥{product.price}\n{PITCHES.get(product.category, DEFAULT_PITCH)}"


def product_by_sku(sku: str) -> Product | None:
    return db.session.scalar(select(Product).where(Product.sku == sku))
