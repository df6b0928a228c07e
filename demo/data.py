"""A deterministic maternal & baby (母婴) chain: stores, staff, customers, follows, products, orders, tags.

Everything comes from one fixed random seed; only the calendar is relative to today (Asia/Shanghai), as
offsets in days, so the set of records — and every order number — is the same on any day, and feeding it to
the bulk import twice changes nothing. Pure Python: no Flask, no database.

- 2 stores in Shanghai, 1 manager and 4 guides;
- 200 mothers (mobiles like 138 0000 0001, member numbers, levels 普通/银卡/金卡/钻石 from their spend, points),
  some pregnant (due_date), newborns and babies up to 3 years (baby_birthday); 8 have a birthday in the next
  7 days; each is followed in WeCom by one guide (external_userid wmDemo0001…), 8 by two;
- 60 products in 10 categories; 奶粉 has attributes {"stage", "days_of_use"}, 纸尿裤 {"size", "days_of_use"};
- a year of orders (POS and e-commerce): formula and diapers bought again on their cycles (stage and size
  follow the baby's age), extras, big items around the birth; POS orders carry only the mobile or the member
  number, as a till does; 10 customers dormant (no order for 60+ days), 8 with their last order 3 days ago,
  and 6 new contacts with no order yet;
- tag groups 宝宝阶段 / 客户类型 / 兴趣 and each customer's tags, derived from the data above.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

SEED = 20240618
TZ = ZoneInfo("Asia/Shanghai")
N_CUSTOMERS = 200

STORES = [
    {"code": "XH01", "name": "上海徐汇店", "city": "上海"},
    {"code": "PD01", "name": "上海浦东店", "city": "上海"},
]
# (userid, name, store, role)
STAFF = [
    ("chenjing", "陈静", "XH01", "manager"),
    ("wangli", "王丽", "XH01", "guide"),
    ("lina", "李娜", "XH01", "guide"),
    ("zhangmin", "张敏", "PD01", "guide"),
    ("liuyang", "刘洋", "PD01", "guide"),
]
TAG_GROUPS = {
    "宝宝阶段": ["孕期", "0-6月", "6-12月", "1-3岁"],
    "客户类型": ["新客", "老客", "VIP", "券敏感"],
    "兴趣": ["奶粉", "纸尿裤", "辅食", "出行"],
}
LEVELS = [(Decimal("15000"), "钻石"), (Decimal("6000"), "金卡"), (Decimal("1500"), "银卡"), (Decimal("0"), "普通")]

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾萧田董潘袁蔡蒋余于杜叶程魏苏吕丁沈"
GIVEN = ["晓燕", "丽娟", "静怡", "雅婷", "梦瑶", "欣怡", "佳慧", "婉清", "思雨", "雨萱", "诗涵", "嘉怡", "若曦", "慧敏",
         "晓雯", "丹丹", "婷婷", "芳芳", "倩", "蕾", "颖", "洁", "琳", "莉", "敏", "娜", "悦", "璐", "瑶", "菲",
         "雪梅", "海燕", "春燕", "秀英", "玉兰", "美玲", "文静", "晓琳", "佳琪", "梓涵"]
MOBILE_PREFIXES = ["138", "139", "136", "137", "135", "150", "151", "158", "159", "186", "187", "188", "177",
                   "189", "133", "180", "183", "199"]


def demo_tag_id(group: str, name: str | None = None) -> str:
    """The corp tag id (or, without a name, the group id) the demo chain and the local WeCom share, so a tag
    tapped in the demo sidebar goes through `mark_tag` like a real corp's."""
    digest = hashlib.sha1(f"{group}/{name or ''}".encode()).hexdigest()[:16]
    return f"etDEMO{'g' if name is None else 't'}{digest}"


def _products() -> list[dict]:
    out = []
    formula = [("FH", "飞鹤星飞帆", (278, 268, 258)), ("AT", "爱他美卓萃", (428, 418, 398)),
               ("QF", "惠氏启赋", (398, 388, 368)), ("A2", "a2至初", (358, 348, 328))]
    for code, brand, prices in formula:
        for stage in (1, 2, 3):
            out.append({"sku": f"NF-{code}-{stage}", "name": f"{brand} {stage}段 800g", "category": "奶粉",
                        "price": prices[stage - 1], "attributes": {"stage": stage, "days_of_use": 10}})
    diapers = [("HW", "花王妙而舒纸尿裤", (139, 139, 129, 129, 129)), ("BS", "帮宝适一级帮纸尿裤", (159, 159, 149, 149, 149))]
    sizes = [("NB", 84, 8), ("S", 82, 10), ("M", 64, 11), ("L", 54, 11), ("XL", 44, 10)]
    for code, brand, prices in diapers:
        for (size, pieces, days), price in zip(sizes, prices):
            out.append({"sku": f"ND-{code}-{size}", "name": f"{brand} {size}码 {pieces}片", "category": "纸尿裤",
                        "price": price, "attributes": {"size": size, "days_of_use": days}})

    def add(prefix, category, items):
        for n, (name, price, attributes) in enumerate(items, 1):
            out.append({"sku": f"{prefix}-{n:02d}", "name": name, "category": category, "price": price,
                        "attributes": attributes})

    add("SJ", "湿巾", [("全棉时代 婴儿棉柔巾 100抽×6包", 89, {"days_of_use": 20}),
                     ("贝亲 婴儿湿巾 80抽×6包", 69, {"days_of_use": 20}),
                     ("好奇 纯水婴儿湿巾 80抽×5包", 59, {"days_of_use": 15}),
                     ("babycare 手口湿巾 25抽×10包", 49, {"days_of_use": 15})])
    add("FS", "辅食", [("嘉宝 原味高铁米粉 225g", 69, {"from_months": 6, "days_of_use": 15}),
                     ("亨氏 有机高铁米粉 250g", 79, {"from_months": 6, "days_of_use": 15}),
                     ("小皮 苹果香蕉果泥 100g×6", 89, {"from_months": 6, "days_of_use": 6}),
                     ("秋田满满 婴儿面条 200g", 39, {"from_months": 8, "days_of_use": 10}),
                     ("英氏 磨牙棒 64g", 35, {"from_months": 6}),
                     ("爷爷的农场 有机米饼", 42, {"from_months": 8}),
                     ("窝小芽 儿童肉松 100g", 59, {"from_months": 10}),
                     ("禾泱泱 稻鸭原生米饼", 39, {"from_months": 7})])
    add("TC", "推车", [("好孩子 轻便可坐躺婴儿推车", 1299, {"from_months": 0}),
                     ("Bugaboo Fox 5 高景观推车", 7980, {"from_months": 0}),
                     ("宝宝好 V18 一键收车遛娃神器", 699, {"from_months": 6})])
    add("ZY", "安全座椅", [("好孩子 新生儿提篮式安全座椅", 1599, {"from_months": 0}),
                       ("宝得适 双面骑士 i-Size 安全座椅", 3980, {"from_months": 0}),
                       ("感恩 旅行者 儿童安全座椅", 1280, {"from_months": 9})])
    add("NP", "奶瓶", [("贝亲 宽口径玻璃奶瓶 160ml", 99, {}), ("贝亲 PPSU 奶瓶 240ml", 139, {}),
                     ("可么多么 硅胶奶瓶 250ml", 269, {}), ("Hegen 多功能奶瓶 240ml", 329, {})])
    add("XH", "洗护", [("红色小象 婴儿洗发沐浴二合一 530ml", 79, {"days_of_use": 45}),
                     ("启初 婴儿倍润面霜 50g", 69, {"days_of_use": 45}),
                     ("贝亲 婴儿洗衣液 1.2L", 59, {"days_of_use": 40}),
                     ("松达 婴儿山茶油润肤油", 128, {"days_of_use": 60}),
                     ("青蛙王子 婴儿护臀膏", 39, {"days_of_use": 45}),
                     ("海龟爸爸 儿童防晒乳 SPF25", 139, {})])
    add("WJ", "玩具", [("费雪 脚踏钢琴健身架", 399, {"from_months": 0}), ("澳贝 婴儿手摇铃套装", 59, {"from_months": 0}),
                     ("乐高 得宝 大颗粒积木桶", 299, {"from_months": 18}), ("弘智 婴儿撕不烂布书", 49, {"from_months": 3}),
                     ("小黄鸭 洗澡玩具 3只装", 39, {"from_months": 6})])
    add("YM", "孕妈", [("美素佳儿 孕妈妈配方奶粉 900g", 258, {"days_of_use": 20}),
                     ("爱乐维 复合维生素片 30片", 258, {"days_of_use": 30}),
                     ("十月结晶 防溢乳垫 100片", 59, {"days_of_use": 20}),
                     ("嫚熙 U型孕妇枕", 199, {}), ("十月结晶 待产包 全套", 299, {})])
    return out


PRODUCTS = _products()
BY_SKU = {p["sku"]: p for p in PRODUCTS}


def _skus(category: str) -> list[str]:
    return [p["sku"] for p in PRODUCTS if p["category"] == category]


def formula_sku(brand: str, baby_age_days: int) -> str:
    return f"NF-{brand}-{1 if baby_age_days < 183 else 2 if baby_age_days < 366 else 3}"


def diaper_sku(brand: str, baby_age_days: int) -> str:
    size = "NB" if baby_age_days < 30 else "S" if baby_age_days < 90 else "M" if baby_age_days < 210 \
        else "L" if baby_age_days < 400 else "XL"
    return f"ND-{brand}-{size}"


@dataclass
class _Customer:
    n: int
    name: str
    mobile: str
    member_no: str
    unionid: str
    external_userid: str
    store: str
    birthday: date
    age_days: int | None  # the baby's age today in days; negative while pregnant; None: no baby on record
    join_days: int  # days ago the customer was added in WeCom
    coupon_sensitive: bool
    online_ratio: float
    kind: str = "regular"  # regular | dormant | recent3 | new
    follows: list = field(default_factory=list)  # [(userid, days_ago, hour, minute, state)]
    events: list = field(default_factory=list)  # [(days_ago, [(sku, qty)])]
    spend: Decimal = Decimal("0")
    order_count: int = 0
    bought: set = field(default_factory=set)  # categories


def _unique_names(rng: random.Random, n: int) -> list[str]:
    pool = [s + g for s in SURNAMES for g in GIVEN]
    return rng.sample(pool, n)


def _birthday(rng: random.Random, today: date, n_in_window: bool, days_ahead: int = 0) -> date:
    age = rng.randint(24, 38)
    if n_in_window:
        target = today + timedelta(days=days_ahead)
        year = target.year - age
        if (target.month, target.day) == (2, 29):
            while not (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)):
                year -= 1
        return target.replace(year=year)
    born = date(today.year - age, 1, 1) + timedelta(days=rng.randint(0, 364))
    # Keep the 'birthday this week' list to the chosen few.
    for _ in range(3):
        try:
            this_year = born.replace(year=today.year)
        except ValueError:  # 29 February
            this_year = date(today.year, 3, 1)
        ahead = (this_year - today).days % 365
        if ahead > 8:
            break
        born += timedelta(days=20)
    return born


def _simulate_orders(rng: random.Random, c: _Customer) -> None:
    """Fill c.events with (days_ago, items) between the customer's joining and the end of their activity."""
    end = {"dormant": rng.randint(62, 120), "recent3": 3}.get(c.kind, 1)
    # Most were members (buying at the till) before a guide added them in WeCom.
    start = min(364, c.join_days + rng.choice([0, 30, 90, 180, 365]))
    if c.kind == "new":
        return
    events: list[tuple[int, list]] = []

    def age_at(days_ago: int) -> int | None:
        return None if c.age_days is None else c.age_days - days_ago

    if c.age_days is not None:
        # Formula: 60% of the mothers feed formula, bought 2–4 cans at a time, again when they run out.
        if rng.random() < 0.6:
            brand = rng.choice(["FH", "FH", "AT", "QF", "A2"])
            t = start - rng.randint(0, 6)
            while t >= end:
                age = age_at(t)
                if age is None or age < 0 or age > 1100:
                    t -= 7
                    continue
                cans = rng.choice([2, 2, 3, 3, 4])
                if rng.random() < 0.85:  # sometimes she buys elsewhere
                    events.append((t, [(formula_sku(brand, age), cans)]))
                t -= 10 * cans + rng.randint(-2, 4)
        # Diapers: 75%, 2–3 packs at a time, the size following the baby's age, until potty training.
        if rng.random() < 0.75:
            brand = rng.choice(["HW", "HW", "BS"])
            t = start - rng.randint(0, 10)
            while t >= end:
                age = age_at(t)
                if age is None or age < 0 or age > 900:
                    t -= 7
                    continue
                packs = rng.choice([2, 2, 3])
                sku = diaper_sku(brand, age)
                if rng.random() < 0.8:
                    events.append((t, [(sku, packs)]))
                t -= BY_SKU[sku]["attributes"]["days_of_use"] * packs + rng.randint(-2, 5)
        # Pregnancy: vitamins and maternity formula; big items shortly before the birth.
        t = start - rng.randint(0, 10)
        while t >= end:
            age = age_at(t)
            if age is not None and -250 <= age < 0:
                if rng.random() < 0.6:
                    events.append((t, [(rng.choice(["YM-01", "YM-02", "YM-03"]), rng.choice([1, 2]))]))
                t -= rng.randint(25, 40)
            else:
                t -= 10
        birth_days_ago = c.age_days  # the birth was this many days ago (negative: still to come)
        before = birth_days_ago + rng.randint(10, 40)
        if start >= before >= end and rng.random() < 0.6:
            items = [(rng.choice(["TC-01", "TC-01", "TC-02", "TC-03"]), 1), (rng.choice(_skus("奶瓶")), rng.choice([1, 2]))]
            if rng.random() < 0.6:
                items.append((rng.choice(["ZY-01", "ZY-02"]), 1))
            if rng.random() < 0.5:
                items.append(("YM-05", 1))
            events.append((before, items))
        # Later a convertible seat or a toy for the toddler.
        for d in range(start, end - 1, -1):
            age = age_at(d)
            if age == 300 and rng.random() < 0.25:
                events.append((d, [("ZY-03", 1)]))
            if age == 540 and rng.random() < 0.3:
                events.append((d, [("WJ-03", 1)]))
    else:
        t = start - rng.randint(0, 20)
        while t >= end:
            events.append((t, [(rng.choice(_skus("洗护") + _skus("玩具") + _skus("湿巾")), 1)]))
            t -= rng.randint(40, 90)

    if c.kind == "recent3":
        age = age_at(3)
        if age is not None and 0 <= age <= 900:
            events.append((3, [(diaper_sku("HW", age), 2)]))
        else:
            events.append((3, [("SJ-01", 1)]))
    elif c.kind == "regular" and not any(d <= 50 for d, _ in events):
        events.append((rng.randint(4, 40), [(rng.choice(_skus("湿巾")), rng.choice([1, 2]))]))

    # Orders on days close together are one visit; extras go into the basket.
    events.sort(key=lambda e: -e[0])
    merged: list[tuple[int, list]] = []
    for d, items in events:
        if merged and merged[-1][0] - d <= 3:
            merged[-1] = (d, merged[-1][1] + items)
        else:
            merged.append((d, list(items)))
    for i, (d, items) in enumerate(merged):
        age = age_at(d)
        if rng.random() < 0.3:
            items.append((rng.choice(_skus("湿巾")), rng.choice([1, 1, 2])))
        if rng.random() < 0.12:
            items.append((rng.choice(_skus("洗护")), 1))
        if age is not None and age >= 180 and rng.random() < 0.35:
            items.append((rng.choice([s for s in _skus("辅食")
                                      if BY_SKU[s]["attributes"].get("from_months", 0) * 30 <= age]), rng.choice([1, 2])))
        if age is not None and age >= 0 and rng.random() < 0.05:
            items.append((rng.choice(_skus("玩具")[:4]), 1))
        # one line per sku
        lines: dict[str, int] = {}
        for sku, qty in items:
            lines[sku] = lines.get(sku, 0) + qty
        merged[i] = (d, list(lines.items()))
    c.events = merged


def _level(spend: Decimal) -> str:
    return next(name for floor, name in LEVELS if spend >= floor)


@dataclass
class DemoData:
    records: list[dict]
    corp: dict


def _iso(day: date, hour: int, minute: int) -> str:
    return datetime.combine(day, time(hour, minute), TZ).isoformat()


def build(today: date | None = None) -> DemoData:
    today = today or datetime.now(TZ).date()
    rng = random.Random(SEED)
    guides_by_store = {s["code"]: [u for u, _, st, role in STAFF if st == s["code"] and role == "guide"] for s in STORES}
    manager = next(u for u, _, _, role in STAFF if role == "manager")

    names = _unique_names(rng, N_CUSTOMERS)
    birthday_soon = set(rng.sample(range(1, N_CUSTOMERS + 1), 8))
    customers: list[_Customer] = []
    for n in range(1, N_CUSTOMERS + 1):
        r = rng.random()
        if r < 0.14:
            age = -rng.randint(10, 240)  # pregnant, due in 10–240 days
        elif r < 0.24:
            age = rng.randint(0, 60)  # newborn
        elif r < 0.45:
            age = rng.randint(61, 182)
        elif r < 0.65:
            age = rng.randint(183, 365)
        elif r < 0.95:
            age = rng.randint(366, 1095)
        else:
            age = None
        soon = n in birthday_soon
        customers.append(_Customer(
            n=n, name=names[n - 1],
            mobile=f"{MOBILE_PREFIXES[n % len(MOBILE_PREFIXES)]}0000{n:04d}",
            member_no=f"M2310{n:04d}",
            unionid=f"oDemoUnion{n:04d}",
            external_userid=f"wmDemo{n:04d}",
            store=STORES[0]["code"] if rng.random() < 0.55 else STORES[1]["code"],
            birthday=_birthday(rng, today, soon, (n % 7) + 1),
            age_days=age,
            join_days=rng.randint(20, 365) if rng.random() < 0.8 else rng.randint(60, 200),
            coupon_sensitive=rng.random() < 0.15,
            online_ratio=rng.choice([0.1, 0.2, 0.2, 0.3, 0.6]),
        ))

    # Special cases, chosen among the customers that fit.
    pool = [c for c in customers if c.age_days is not None and c.age_days > 150 and c.join_days >= 180]
    for c in rng.sample(pool, 10):
        c.kind = "dormant"
    pool = [c for c in customers if c.kind == "regular" and c.join_days >= 40]
    for c in rng.sample(pool, 8):
        c.kind = "recent3"
    pool = [c for c in customers if c.kind == "regular"]
    for c in rng.sample(pool, 6):
        c.kind = "new"
        c.join_days = rng.randint(1, 14)

    # Follows: the store's guide who added her first; 8 followed by a second guide (or the manager).
    for c in customers:
        guide = rng.choice(guides_by_store[c.store])
        state = rng.choices([f"store-{c.store}", "activity-618", "coupon-newmember", None], [60, 15, 15, 10])[0]
        c.follows.append((guide, c.join_days, rng.randint(10, 20), rng.randint(0, 59), state))
    for c in rng.sample([c for c in customers if c.join_days >= 30], 8):
        first = c.follows[0][0]
        other = rng.choice([u for u in guides_by_store[c.store] if u != first] + [manager])
        c.follows.append((other, rng.randint(1, c.join_days - 10), rng.randint(10, 20), rng.randint(0, 59),
                          f"store-{c.store}"))

    for c in customers:
        _simulate_orders(rng, c)

    # Orders, numbered in time order (stable: only day offsets and the seed decide it).
    raw_orders = []
    for c in customers:
        for d, lines in c.events:
            raw_orders.append((d, c, lines))
    staged = []
    for d, c, lines in raw_orders:
        online = rng.random() < c.online_ratio
        hour = rng.randint(8, 23) if online else rng.randint(10, 21)
        minute = rng.randint(0, 59)
        staged.append((d, hour, minute, c, lines, online))
    staged.sort(key=lambda o: (-o[0], o[1], o[2], o[3].n))

    orders = []
    counters = {"XH01": 0, "PD01": 0, "ecommerce": 0}
    for d, hour, minute, c, lines, online in staged:
        items = []
        discount = c.coupon_sensitive and rng.random() < 0.5
        for sku, qty in lines:
            p = BY_SKU[sku]
            price = Decimal(p["price"])
            if discount and p["category"] in ("奶粉", "纸尿裤"):
                price = (price * Decimal("0.9")).quantize(Decimal("1"))
            items.append({"sku": sku, "name": p["name"], "category": p["category"], "qty": qty, "price": str(price)})
        amount = sum(Decimal(i["price"]) * i["qty"] for i in items)
        if online:
            counters["ecommerce"] += 1
            order = {"type": "order", "order_no": f"EC{counters['ecommerce']:07d}", "channel": "ecommerce"}
            keys = {"unionid": c.unionid} if rng.random() < 0.5 else {"mobile": c.mobile}
        else:
            store = c.store
            counters[store] += 1
            order = {"type": "order", "order_no": f"POS-{store}-{counters[store]:06d}", "channel": "pos",
                     "store": store}
            keys = {"mobile": c.mobile} if rng.random() < 0.7 else {"member_no": c.member_no}
        order.update({"paid_at": _iso(today - timedelta(days=d), hour, minute), "amount": str(amount),
                      "customer": keys, "items": items})
        orders.append(order)
        c.spend += amount
        c.order_count += 1
        c.bought.update(i["category"] for i in items)

    # Records, in dependency order.
    records: list[dict] = []
    records += [{"type": "store", **s} for s in STORES]
    records += [{"type": "guide", "userid": u, "name": name, "store": st, "role": role} for u, name, st, role in STAFF]
    records += [{"type": "tag", "group": g, "name": t} for g, tags in TAG_GROUPS.items() for t in tags]
    records += [{"type": "product", **p, "price": str(p["price"])} for p in PRODUCTS]
    customer_tags: dict[str, list[str]] = {}
    for c in customers:
        baby = {}
        if c.age_days is not None:
            if c.age_days < 0:
                baby["due_date"] = (today - timedelta(days=c.age_days)).isoformat()
            else:
                baby["baby_birthday"] = (today - timedelta(days=c.age_days)).isoformat()
        level = _level(c.spend)
        points = int(c.spend) - (int(c.spend * Decimal(rng.choice([0, 0, 10, 20, 30])) / 100))
        records.append({"type": "customer", "external_userid": c.external_userid, "unionid": c.unionid,
                        "mobile": c.mobile, "member_no": c.member_no, "name": c.name, "gender": 2,
                        "birthday": c.birthday.isoformat(), **baby, "member_level": level, "points": points})
        tags = []
        if c.age_days is not None:
            tags.append("宝宝阶段/" + ("孕期" if c.age_days < 0 else "0-6月" if c.age_days < 183
                                     else "6-12月" if c.age_days < 366 else "1-3岁"))
        tags.append("客户类型/" + ("新客" if c.order_count <= 1 or c.join_days <= 30 else "老客"))
        if level in ("金卡", "钻石"):
            tags.append("客户类型/VIP")
        if c.coupon_sensitive:
            tags.append("客户类型/券敏感")
        for category, tag in (("奶粉", "奶粉"), ("纸尿裤", "纸尿裤"), ("辅食", "辅食")):
            if category in c.bought:
                tags.append("兴趣/" + tag)
        if c.bought & {"推车", "安全座椅"}:
            tags.append("兴趣/出行")
        customer_tags[c.external_userid] = tags
    for c in customers:
        for userid, days_ago, hour, minute, state in c.follows:
            rec = {"type": "follow", "userid": userid, "external_userid": c.external_userid,
                   "added_at": _iso(today - timedelta(days=days_ago), hour, minute),
                   "remark": f"{c.name} {c.mobile[-4:]}"}
            if state:
                rec["state"] = state
            records.append(rec)
    for ext, tags in customer_tags.items():
        records += [{"type": "customer_tag", "external_userid": ext, "tag": t} for t in tags]
    records += orders

    corp = {
        "members": {u: {"name": name, "department": [1 if st == "XH01" else 2],
                        "position": "店长" if role == "manager" else "导购"} for u, name, st, role in STAFF},
        "tag_groups": [{"group_name": g, "group_id": demo_tag_id(g),
                        "tags": [{"name": t, "id": demo_tag_id(g, t)} for t in tags]}
                       for g, tags in TAG_GROUPS.items()],
        "contacts": {},
    }
    for c in customers:
        follow_user = []
        for i, (userid, days_ago, hour, minute, state) in enumerate(c.follows):
            added = datetime.combine(today - timedelta(days=days_ago), time(hour, minute), TZ)
            f = {"userid": userid, "createtime": int(added.timestamp()), "remark": f"{c.name} {c.mobile[-4:]}",
                 "state": state or ""}
            if i == 0:
                f["tags"] = [t.split("/", 1)[1] for t in customer_tags[c.external_userid]]
            follow_user.append(f)
        corp["contacts"][c.external_userid] = {"name": c.name, "gender": 2, "unionid": c.unionid,
                                               "follow_user": follow_user}
    return DemoData(records=records, corp=corp)


def build_records(today: date | None = None) -> list[dict]:
    """The import records (see docs/import-format.md), stores first and orders last."""
    return build(today).records


def demo_corp_seed(today: date | None = None) -> dict:
    """The WeCom corp matching the seeded data, for `wecom_standin.corp.Corp.from_dict`:
    {"members": {userid: {name, department, position}}, "tag_groups": [{group_name, tags}],
     "contacts": {external_userid: {name, gender, unionid, follow_user: [{userid, createtime, remark, state,
     tags?}]}}} — the binding guide's follow carries the customer's tags by name."""
    return build(today).corp


# --- tracked links, product views and script sends (docs/tracking.md) -------------------------------------

_TOKEN_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def tracking_plan(content_ids: list[str], script_ids: list[str], today: date | None = None) -> dict:
    """What the demo's guides sent and what customers did with it, for `demo seed`: tracked links (some
    opened, some twice; many sent a few days before an order the customer placed anyway, as guides time
    content to a replenishment), browsing of high-priced strollers without buying, and script sends.

    {"links": [{token, userid, external_userid, content, sent_at, opens: [iso]}],
     "product_views": [{ref, external_userid, sku, at}],
     "script_sends": [{userid, external_userid, script, sent_at}]}
    Tokens are fixed (a second seed adds nothing), so they are guessable: demo only."""
    today = today or datetime.now(TZ).date()
    data = build(today)
    rng = random.Random(SEED + 7)
    customers = {r["external_userid"]: r for r in data.records if r["type"] == "customer"}
    key_to_ext = {}
    for ext, r in customers.items():
        for k in ("mobile", "member_no", "unionid"):
            key_to_ext[r[k]] = ext
    guide_of: dict[str, str] = {}
    for r in sorted((r for r in data.records if r["type"] == "follow"), key=lambda r: r["added_at"]):
        guide_of.setdefault(r["external_userid"], r["userid"])
    order_days: dict[str, list[int]] = {}
    bought: dict[str, set] = {}
    for r in data.records:
        if r["type"] != "order":
            continue
        ext = key_to_ext[next(iter(r["customer"].values()))]
        order_days.setdefault(ext, []).append((today - date.fromisoformat(r["paid_at"][:10])).days)
        bought.setdefault(ext, set()).update(i["category"] for i in r["items"])

    def at(days_ago: int, hour: int, minute: int = 0) -> str:
        return _iso(today - timedelta(days=days_ago), hour, minute)

    exts = sorted(guide_of)
    # Some content is simply better read: the first items open more often.
    open_rate = {cid: 0.8 - 0.4 * i / max(len(content_ids) - 1, 1) for i, cid in enumerate(content_ids)}
    links = []
    for n, ext in enumerate(rng.sample(exts, min(90, len(exts)))):
        content = rng.choice(content_ids)
        recent = [d for d in order_days.get(ext, []) if 2 <= d <= 50]
        sent = (rng.choice(recent) + rng.randint(1, 5)) if recent and rng.random() < 0.5 else rng.randint(1, 50)
        opens = []
        if rng.random() < open_rate[content]:
            opens.append(at(sent, rng.randint(19, 21), rng.randint(0, 59)))
            if rng.random() < 0.25 and sent > 1:
                opens.append(at(sent - 1, rng.randint(9, 12), rng.randint(0, 59)))
        links.append({"token": "".join(rng.choices(_TOKEN_ALPHABET, k=22)), "userid": guide_of[ext],
                      "external_userid": ext, "content": content, "sent_at": at(sent, 19), "opens": opens})

    views = []
    babies = [e for e in exts if customers[e].get("baby_birthday") and "推车" not in bought.get(e, set())
              and (today - date.fromisoformat(customers[e]["baby_birthday"])).days <= 200]
    for ext in rng.sample(babies, min(4, len(babies))):
        for k in range(rng.choice([3, 4])):
            views.append({"ref": f"demo-view-{len(views) + 1}", "external_userid": ext,
                          "sku": rng.choice(["TC-02", "TC-02", "ZY-02"]) if k else "TC-02",
                          "at": at(rng.randint(1, 10), rng.randint(20, 22), rng.randint(0, 59))})

    sends = []
    for _ in range(120):
        ext = rng.choice(exts)
        script = rng.choice(script_ids[:10])
        recent = [d for d in order_days.get(ext, []) if 2 <= d <= 60]
        # The first scripts are the ones that work: guides sent them shortly before purchases more often.
        ahead = script_ids.index(script) < 3 and recent and rng.random() < 0.7
        day = (rng.choice(recent) + rng.randint(1, 4)) if ahead else rng.randint(1, 60)
        sends.append({"userid": guide_of[ext], "external_userid": ext, "script": script,
                      "sent_at": at(day, rng.randint(10, 20), rng.randint(0, 59))})
    return {"links": links, "product_views": views, "script_sends": sends}
