"""Coupons: templates imported by operations, issued by guides to customers, redeemed by orders, expired by
the scheduler. Every state change writes a `coupon_events` row.

Template records (JSONL, or CSV with one template per row), upserted by external_id:
  external_id, name, kind (amount_off | percent_off | gift), amount (amount_off), threshold? (minimum spend),
  percent (percent_off: 10 = 10 % off), gift (gift: what is given), total_stock? (empty: unlimited),
  per_customer_limit? (default 1), valid_from? + valid_to? (fixed local dates, inclusive) or valid_days (days
  from the day of issue), categories? (applicable product categories, "奶粉|纸尿裤"; empty: all),
  description?, enabled? (default true)
A file with any bad record imports nothing: `ImportRejected` lists every bad line with its reason.

Stock never oversells: issuing raises `issued_count` with one conditional UPDATE (`… WHERE issued_count <
total_stock`), whose row lock also serialises the per-customer limit check for that template.
"""
from __future__ import annotations

import csv
import json
import secrets
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from flask import current_app
from sqlalchemy import func, select, update

from core.db import db
from core.timeutil import app_tz, utcnow
from imports.files import ImportRejected, guard_formula, parse_each
from imports.records import RecordError, day, integer, money
from imports.records import text as text_field
from models import COUPON_KINDS, Coupon, CouponEvent, CouponTemplate, Customer, Guide

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read aloud at a till
CODE_LENGTH = 12
COLUMNS = ["external_id", "name", "kind", "amount", "threshold", "percent", "gift", "total_stock",
           "per_customer_limit", "valid_from", "valid_to", "valid_days", "categories", "description", "enabled"]
# The free-text CSV cells, written with guard_formula (so Excel shows them as text) and read back without it.
GUARDED = ("external_id", "name", "gift", "categories", "description")
KIND_LABELS = {"amount_off": "满减券", "percent_off": "折扣券", "gift": "赠品券"}
STATUS_LABELS = {"issued": "未使用", "redeemed": "已使用", "expired": "已过期"}
SOLD_OUT = "这张券已经发完了"


class CouponRefused(Exception):
    """This coupon cannot be issued to this customer now; `reason` is for the guide (Chinese)."""

    def __init__(self, code: str, reason: str):
        self.code, self.reason = code, reason
        super().__init__(reason)


# ------------------------------------------------------------------------------------------------ parsing


def _flag(rec: dict, field: str) -> bool:
    from knowledge.operations import _flag as knowledge_flag

    return knowledge_flag(rec, field)


def _categories(rec: dict) -> list[str]:
    from knowledge.operations import _list

    return _list(rec, "categories", maxlen=64)


def parse_template(rec: dict) -> dict:
    if not isinstance(rec, dict):
        raise RecordError("a record must be a JSON object")
    kind = text_field(rec, "kind", 16)
    if kind not in COUPON_KINDS:
        raise RecordError(f"kind must be one of {'|'.join(COUPON_KINDS)}, not {kind!r}")
    out = {
        "external_id": text_field(rec, "external_id", 64),
        "name": text_field(rec, "name", 100),
        "kind": kind,
        "amount": money(rec, "amount", required=kind == "amount_off"),
        "threshold": money(rec, "threshold", required=False) or Decimal("0.00"),
        "percent": integer(rec, "percent", required=kind == "percent_off", lo=1, hi=99),
        "gift": text_field(rec, "gift", 200, required=kind == "gift"),
        "total_stock": integer(rec, "total_stock", lo=0, hi=10**9),
        "per_customer_limit": integer(rec, "per_customer_limit", lo=1, hi=1000) or 1,
        "valid_from": day(rec, "valid_from"),
        "valid_to": day(rec, "valid_to"),
        "valid_days": integer(rec, "valid_days", lo=1, hi=3650),
        "categories": _categories(rec),
        "description": text_field(rec, "description", 500, required=False) or "",
        "enabled": _flag(rec, "enabled"),
    }
    if kind == "amount_off" and out["amount"] <= 0:
        raise RecordError("amount must be more than 0")
    if kind == "amount_off" and out["threshold"] and out["amount"] >= out["threshold"]:
        raise RecordError(f"amount {out['amount']} must be less than threshold {out['threshold']}")
    if kind != "amount_off" and rec.get("amount") not in (None, ""):
        raise RecordError(f"amount is only for amount_off coupons (this one is {kind})")
    if kind != "percent_off" and rec.get("percent") not in (None, ""):
        raise RecordError(f"percent is only for percent_off coupons (this one is {kind})")
    if out["valid_days"] is None and out["valid_to"] is None:
        raise RecordError("validity is missing: give valid_to (fixed dates) or valid_days (days after issue)")
    if out["valid_days"] is not None and out["valid_to"] is not None:
        raise RecordError("give either valid_to (fixed dates) or valid_days (days after issue), not both")
    if out["valid_from"] and out["valid_to"] and out["valid_to"] < out["valid_from"]:
        raise RecordError(f"valid_to {out['valid_to']} is before valid_from {out['valid_from']}")
    return out


def import_templates(lines: Iterable[tuple[int, object]], *, dry_run: bool = False,
                     guide_id: int | None = None) -> dict[str, int]:
    """Validate every record, then upsert by external_id in this session; {"created", "updated", "unchanged"}.
    Raises ImportRejected (every bad line) with nothing written. Flushes; the caller commits. `guide_id`:
    the admin who imported through the manager page, kept on each template's audit event (None: the CLI)."""
    errors, parsed, seen = [], [], {}
    def parse(raw):  # a JSONL line may still carry the bulk format's "type"
        return parse_template({k: v for k, v in raw.items() if k != "type"} if isinstance(raw, dict) else raw)

    for lineno, rec in parse_each(lines, parse, errors, catch=RecordError, prefix="coupon: "):
        if rec["external_id"] in seen:
            errors.append((lineno, f"coupon: external_id {rec['external_id']!r} is also on line "
                                   f"{seen[rec['external_id']]}"))
            continue
        seen[rec["external_id"]] = lineno
        parsed.append((lineno, rec))
    if not parsed and not errors:
        errors.append((0, "the file has no coupon records"))
    existing = {t.external_id: t for t in db.session.scalars(
        select(CouponTemplate).where(CouponTemplate.external_id.in_(list(seen))))} if seen else {}
    for lineno, rec in parsed:
        tpl = existing.get(rec["external_id"])
        if tpl is not None and rec["total_stock"] is not None and rec["total_stock"] < tpl.issued_count:
            errors.append((lineno, f"coupon: total_stock {rec['total_stock']} is below the {tpl.issued_count} "
                                   f"already issued"))
    if errors:
        raise ImportRejected(errors)
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    for lineno, rec in parsed:
        tpl = existing.get(rec["external_id"])
        if tpl is None:
            tpl = CouponTemplate(**rec, issued_count=0)
            db.session.add(tpl)
            db.session.flush()
            _audit(tpl, None, "template_created", guide_id=guide_id, details={"record": _jsonable(rec)})
            counts["created"] += 1
            continue
        changes = {k: v for k, v in rec.items() if getattr(tpl, k) != v}
        if not changes:
            counts["unchanged"] += 1
            continue
        for k, v in changes.items():
            setattr(tpl, k, v)
        _audit(tpl, None, "template_updated", guide_id=guide_id, details={"changed": _jsonable(changes)})
        counts["updated"] += 1
    db.session.flush()
    if dry_run:
        db.session.rollback()
    return counts


def _jsonable(rec: dict) -> dict:
    return {k: (v.isoformat() if isinstance(v, date) else str(v) if isinstance(v, Decimal) else v)
            for k, v in rec.items()}


def template_record(t: CouponTemplate) -> dict:
    """The template as an import record (None fields left out), so an export imports back unchanged."""
    rec = {"external_id": t.external_id, "name": t.name, "kind": t.kind, "amount": t.amount,
           "threshold": t.threshold if t.threshold else None, "percent": t.percent, "gift": t.gift,
           "total_stock": t.total_stock, "per_customer_limit": t.per_customer_limit, "valid_from": t.valid_from,
           "valid_to": t.valid_to, "valid_days": t.valid_days, "categories": t.categories or None,
           "description": t.description or None, "enabled": t.enabled}
    return {k: (str(v) if isinstance(v, Decimal) else v.isoformat() if isinstance(v, date) else v)
            for k, v in rec.items() if v is not None}


def export_templates(path) -> int:
    path = Path(path)
    templates = db.session.scalars(select(CouponTemplate).order_by(CouponTemplate.external_id)).all()
    records = [template_record(t) for t in templates]
    if path.suffix.lower() == ".csv":
        with open(path, "w", encoding="utf-8-sig", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS)
            w.writeheader()
            for r in records:
                r = dict(r)
                if "categories" in r:
                    r["categories"] = "|".join(r["categories"])
                r["enabled"] = "true" if r["enabled"] else "false"
                w.writerow({k: guard_formula(v) if k in GUARDED else v for k, v in r.items()})
    elif path.suffix.lower() == ".jsonl":
        with open(path, "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    else:
        raise ValueError(f"{path.name}: export to .jsonl or .csv")
    return len(records)


# ------------------------------------------------------------------------------------------ describing


def value_text(t: CouponTemplate) -> str:
    """满199减30 / 9折 / 赠：湿巾一包 — what the coupon is worth, as a guide says it."""
    if t.kind == "amount_off":
        return f"满{_n(t.threshold)}减{_n(t.amount)}" if t.threshold else f"立减{_n(t.amount)}元"
    if t.kind == "percent_off":
        off = _n(Decimal(100 - t.percent) / 10)
        return f"{off}折" if not t.threshold else f"满{_n(t.threshold)}享{off}折"
    return f"赠：{t.gift}"


def _n(d: Decimal) -> str:
    """199.00 → 199, 29.90 → 29.9."""
    return f"{Decimal(d).normalize():f}"


def day_text(d: date, today: date) -> str:
    """1月20日, or 2099年1月20日 when not this year."""
    return f"{d.month}月{d.day}日" if d.year == today.year else f"{d.year}年{d.month}月{d.day}日"


def _local_date(dt: datetime) -> date:
    return dt.astimezone(app_tz()).date()


def last_valid_day(c: Coupon) -> date:
    return _local_date(c.expires_at - timedelta(microseconds=1))


def template_json(t: CouponTemplate) -> dict:
    return {"external_id": t.external_id, "name": t.name, "kind": t.kind, "kind_label": KIND_LABELS[t.kind],
            "value": value_text(t), "description": t.description, "categories": t.categories,
            "stock_left": None if t.total_stock is None else max(t.total_stock - t.issued_count, 0),
            "total_stock": t.total_stock, "issued": t.issued_count, "per_customer_limit": t.per_customer_limit,
            "valid_from": t.valid_from.isoformat() if t.valid_from else None,
            "valid_to": t.valid_to.isoformat() if t.valid_to else None, "valid_days": t.valid_days,
            "enabled": t.enabled}


def coupon_link(code: str) -> str:
    return f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}/coupons/{code}"


def coupon_json(c: Coupon) -> dict:
    t = c.template
    return {"code": c.code, "template": t.external_id, "name": t.name, "value": value_text(t),
            "status": c.status, "status_label": STATUS_LABELS.get(c.status, c.status),
            "issued_at": c.issued_at.isoformat(), "valid_until": last_valid_day(c).isoformat(),
            "redeemed_at": c.redeemed_at.isoformat() if c.redeemed_at else None, "link": coupon_link(c.code)}


def chat_text(c: Coupon, link: str | None = None) -> str:
    """The message the guide sends with the coupon (`link`: the tracked address of the coupon page)."""
    t = c.template
    until = day_text(last_valid_day(c), _local_date(utcnow()))
    return (f"送您一张【{t.name}】（{value_text(t)}），{until}前有效，"
            f"券码 {c.code}，到店出示或点击领取：{link or coupon_link(c.code)}")


# --------------------------------------------------------------------------------------------- issuing


def _audit(tpl: CouponTemplate, coupon: Coupon | None, type_: str, *, from_status=None, to_status=None,
           guide_id=None, order_id=None, details=None, at=None) -> None:
    db.session.add(CouponEvent(template_id=tpl.id, coupon_id=coupon.id if coupon else None, type=type_,
                               from_status=from_status, to_status=to_status, guide_id=guide_id,
                               order_id=order_id, details=details or {}, at=at or utcnow()))


def _window_refusal(t: CouponTemplate, today: date) -> str | None:
    if not t.enabled:
        return "这张券已停用"
    if t.valid_from and today < t.valid_from:
        return f"这张券{day_text(t.valid_from, today)}起才能发放"
    if t.valid_to and today > t.valid_to:
        return "这张券的活动已结束"
    return None


def _limit_refusal(t: CouponTemplate, held: int) -> CouponRefused | None:
    if held >= t.per_customer_limit:
        return CouponRefused("limit", f"每位顾客限领{t.per_customer_limit}张，这位顾客已领{held}张")
    return None


def refusal(t: CouponTemplate, today: date, held: int, quota: dict | None = None) -> CouponRefused | None:
    """Why template `t` cannot go on `today` (local date) to a customer who already holds `held` of it, or
    None when it can. The one place the rules live: issuing raises what this returns, the sidebar's tab
    shows its reason, recommendations skip what it refuses. The lasting reasons come before the passing
    one: window, stock, per-customer limit, then the touch caps (`quota`: tasks.quota.quota() of the
    customer; None leaves them out)."""
    reason = _window_refusal(t, today)
    if reason:
        return CouponRefused("not_valid", reason)
    if t.total_stock is not None and t.issued_count >= t.total_stock:
        return CouponRefused("out_of_stock", SOLD_OUT)
    limit = _limit_refusal(t, held)
    if limit:
        return limit
    if quota is not None and not quota["allowed"]:
        return CouponRefused("quota", quota["reason"])
    return None


def held_counts(customer_id: int) -> dict[int, int]:
    """{template id: coupons of it this customer has ever been issued}."""
    return dict(db.session.execute(select(Coupon.template_id, func.count()).where(
        Coupon.customer_id == customer_id).group_by(Coupon.template_id)).all())


def customer_count(template_id: int, customer_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(Coupon).where(
        Coupon.template_id == template_id, Coupon.customer_id == customer_id))


def available_for(customer: Customer, now: datetime | None = None) -> dict:
    """What the sidebar's 优惠券 tab shows: every current template with whether it can be issued to this
    customer now (and why not), and the customer's own coupons."""
    from tasks import quota

    now = now or utcnow()
    today = _local_date(now)
    q = quota.quota(customer, now)
    held = held_counts(customer.id)
    templates = []
    for t in db.session.scalars(select(CouponTemplate).where(CouponTemplate.enabled.is_(True))
                                .order_by(CouponTemplate.external_id)):
        if t.valid_to and today > t.valid_to:
            continue
        item = template_json(t)
        item["held"] = held.get(t.id, 0)
        refused = refusal(t, today, item["held"], q)
        item["can_issue"], item["reason"] = refused is None, refused.reason if refused else None
        templates.append(item)
    coupons = db.session.scalars(select(Coupon).where(Coupon.customer_id == customer.id)
                                 .order_by(Coupon.issued_at.desc(), Coupon.id.desc())).all()
    return {"templates": templates, "coupons": [coupon_json(c) for c in coupons], "quota": q}


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def issue(template_external_id: str, customer: Customer, guide: Guide, *, now: datetime | None = None) -> Coupon:
    """Issue one coupon to `customer` from `guide`. Raises LookupError (no such template) or CouponRefused
    (window, stock, per-customer limit, touch caps) and then writes nothing the caller keeps: the caller
    rolls back. The issue is a marketing touch. Flushes; the caller commits (which releases the row lock)."""
    from reports.leaderboard import bump
    from tasks import quota

    now = now or utcnow()
    t = db.session.scalar(select(CouponTemplate).where(CouponTemplate.external_id == template_external_id))
    if t is None:
        raise LookupError(f"no coupon template {template_external_id!r}")
    today = _local_date(now)
    # Checked without a lock first; stock and the per-customer limit are settled again under the lock.
    refused = refusal(t, today, customer_count(t.id, customer.id), quota.quota(customer, now))
    if refused:
        raise refused
    # The stock: one conditional UPDATE; concurrent issues of this template queue on its row lock.
    taken = db.session.execute(
        update(CouponTemplate).where(CouponTemplate.id == t.id, (CouponTemplate.total_stock.is_(None))
                                     | (CouponTemplate.issued_count < CouponTemplate.total_stock))
        .values(issued_count=CouponTemplate.issued_count + 1).returning(CouponTemplate.issued_count)
        .execution_options(synchronize_session=False)).scalar()
    if taken is None:
        raise CouponRefused("out_of_stock", SOLD_OUT)
    db.session.refresh(t)
    # Under the row lock a concurrent issue to this customer has committed by now.
    refused = _limit_refusal(t, customer_count(t.id, customer.id))
    if refused:
        raise refused
    code = new_code()
    try:
        quota.record_touch(customer, guide, kind="marketing", channel="coupon", ref=code, now=now)
    except quota.TouchRefused as exc:
        raise CouponRefused("quota", exc.reason) from None
    if t.valid_days:
        expires = datetime.combine(today + timedelta(days=t.valid_days), datetime.min.time(), tzinfo=app_tz())
    else:
        expires = datetime.combine(t.valid_to + timedelta(days=1), datetime.min.time(), tzinfo=app_tz())
    coupon = Coupon(code=code, template_id=t.id, customer_id=customer.id, guide_id=guide.id, status="issued",
                    issued_at=now, expires_at=expires)
    coupon.template = t
    db.session.add(coupon)
    db.session.flush()
    _audit(t, coupon, "issued", to_status="issued", guide_id=guide.id, at=now,
           details={"customer_id": customer.id})
    db.session.flush()
    bump(guide.id, now, coupons_sent=1)
    return coupon


# ---------------------------------------------------------------------------------- redeeming, expiring


def redeem_for_orders(claims: list[tuple[object, list[str], list[tuple[str, int, Decimal]]]]) -> list[list[dict]]:
    """Redeem the coupon codes each (order, codes, lines) carries, in order; `lines` are (category, qty,
    price). One locking read for all the codes, so a batch of orders costs the same few statements as one;
    a code claimed twice goes to the first. A code that cannot be redeemed (unknown, used, expired, another
    customer's, not applicable) is reported, not redeemed. Returns, per order, [{"code", "result":
    "redeemed" | reason}]. Flushes."""
    from reports.leaderboard import bump

    wanted = sorted({code for _, codes, _ in claims for code in codes})
    found = {c.code: c for c in db.session.scalars(
        select(Coupon).where(Coupon.code.in_(wanted)).order_by(Coupon.id).with_for_update(of=Coupon))}
    templates = {t.id: t for t in db.session.scalars(select(CouponTemplate).where(
        CouponTemplate.id.in_({c.template_id for c in found.values()})))} if found else {}
    issuers = {c.guide_id for c in found.values() if c.guide_id}  # held, so that bump() finds them in the session
    issuers = db.session.scalars(select(Guide).where(Guide.id.in_(issuers))).all() if issuers else []
    answers = []
    for order, codes, lines in claims:
        out = []
        for code in codes:
            coupon = found.get(code)
            problem = None
            if coupon is None:
                problem = "unknown code"
            elif coupon.status == "redeemed":
                problem = f"already redeemed by order #{coupon.order_id}"
            elif coupon.status == "expired" or coupon.expires_at <= order.paid_at:
                problem = "expired"
            elif order.customer_id is not None and coupon.customer_id != order.customer_id:
                problem = "issued to another customer"
            else:
                t = templates[coupon.template_id]
                eligible = [(qty * price) for category, qty, price in lines
                            if not t.categories or category in t.categories]
                if t.categories and not eligible:
                    problem = f"not applicable: only for {'/'.join(t.categories)}"
                elif t.threshold and sum(eligible, Decimal(0)) < t.threshold:
                    problem = f"below the threshold of {t.threshold}"
            if problem:
                out.append({"code": code, "result": problem})
                continue
            coupon.status, coupon.redeemed_at, coupon.order_id = "redeemed", order.paid_at, order.id
            _audit(templates[coupon.template_id], coupon, "redeemed", from_status="issued", to_status="redeemed",
                   guide_id=coupon.guide_id, order_id=order.id, at=utcnow(), details={"order_no": order.order_no})
            bump(coupon.guide_id, order.paid_at, coupons_redeemed=1)
            out.append({"code": code, "result": "redeemed"})
        answers.append(out)
    db.session.flush()
    return answers


def expire(now: datetime | None = None) -> int:
    """Mark every issued coupon past its validity as expired (set-based, audited). Flushes; returns the count."""
    now = now or utcnow()
    ids = db.session.execute(
        update(Coupon).where(Coupon.status == "issued", Coupon.expires_at <= now)
        .values(status="expired").returning(Coupon.id, Coupon.template_id)
        .execution_options(synchronize_session=False)).all()
    if ids:
        db.session.execute(CouponEvent.__table__.insert(), [
            {"template_id": tid, "coupon_id": cid, "type": "expired", "from_status": "issued",
             "to_status": "expired", "details": {}, "at": now} for cid, tid in ids])
    db.session.flush()
    return len(ids)


def events_for(code: str) -> list[dict]:
    return [{"type": e.type, "from": e.from_status, "to": e.to_status, "at": e.at.isoformat(),
             "order_id": e.order_id, "guide_id": e.guide_id}
            for e in db.session.scalars(select(CouponEvent).join(Coupon, Coupon.id == CouponEvent.coupon_id)
                                        .where(Coupon.code == code).order_by(CouponEvent.id))]
