"""Erasure of a customer's personal information on request (PIPL art. 47), keeping the records the chain must
keep: orders (amount, time, store, credited guide) for accounting, and every figure the leaderboards and
commission are computed from.

`find_for_erasure` comes first: head office types the value the customer gave (a mobile, an external_userid, a
member number) and sees who holds it, masked, to check it is the right person before erasing.

`erase_customer` does it in the caller's transaction (it flushes; the request or command commits once): the
customer row stays as an anonymous shell (name 已注销用户, `erased_at` set) so that foreign keys and counts
hold, their identities are deleted (a later WeCom callback with the same external_userid makes a new
customer), and every other place that holds their data is emptied or redacted. What is kept and why:
docs/privacy.md.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Text, cast, delete, event, func, or_, select, update
from sqlalchemy.orm import Session, scoped_session

from core.db import db
from core.redis_store import rstore
from core.timeutil import utcnow
from models import (AuditEntry, CallbackInbox, Customer, CustomerIdentity, CustomerTag,
                    CustomerTransfer, Event, Follow, Guide, GuidePush, JobRun, LinkOpen, Order, RedDot,
                    ScriptSend, Store, TrackedLink)
from sidebar.operations import mask_mobile, record_view

ERASED_NAME = "已注销用户"
ERASED_REASON = "顾客已注销"  # what a guide reads on the shell's tasks
REDACTED = "[已删除]"  # stands in for an erased value inside free text
MIN_NAME_LENGTH = 2  # a one-character name would redact unrelated text

# Free text not tied to the customer's id that may still quote their name, mobile or ids: the chat-bot's
# messages and answers, the guides' questions, pushes, job results, link targets. (Tasks that name a customer
# — a manager's 离职继承失败 or lost-contact task — carry that customer's id and are handled with theirs;
# coupon events hold ids and order numbers only.)
FREE_TEXT = (
    (CallbackInbox, ("payload", "result", "last_error")),
    (ScriptSend, ("query",)),
    (GuidePush, ("title", "body", "last_error")),
    (JobRun, ("result", "error")),
    (TrackedLink, ("target_url", "coupon_ref")),
)


class CustomerNotFound(LookupError):
    pass


LOOKUP_ENTRY = "erase-lookup"  # profile_views.entry of a look from the erasure panel
MAX_LOOKUP_VALUE = 128  # the longest identity value (customer_identities.value)


def mask_name(name: str | None) -> str:
    """王* / 陈** : the first character only, enough to match the request, not enough to copy."""
    name = (name or "").strip()
    return name[:1] + "*" * (len(name) - 1) if len(name) > 1 else "*" * len(name)


def find_for_erasure(value: str, *, viewer: Guide, ip: str | None = None) -> list[dict]:
    """The customers holding identity `value`, whatever its kind (mobile, external_userid, member_no,
    unionid), masked: id, name 王*, mobile 139****5678, store (their binding guide's), order count, and
    which kind matched. An erased customer holds no identity, so is never found. Each customer shown is
    written to profile_views (entry `erase-lookup`), as a look at a profile is. Raises ValueError for an
    empty or over-long value. Flushes."""
    value = (value or "").strip()
    if not value or len(value) > MAX_LOOKUP_VALUE:
        raise ValueError("value must be 1–128 characters")
    matched = dict(db.session.execute(select(CustomerIdentity.customer_id, CustomerIdentity.kind)
                                      .where(CustomerIdentity.value == value)
                                      .order_by(CustomerIdentity.customer_id, CustomerIdentity.id)).all())
    if not matched:
        return []
    ids = list(matched)
    customers = db.session.scalars(select(Customer).where(Customer.id.in_(ids), Customer.erased_at.is_(None))
                                   .order_by(Customer.id)).all()
    mobiles = dict(db.session.execute(select(CustomerIdentity.customer_id, func.min(CustomerIdentity.value))
                                      .where(CustomerIdentity.customer_id.in_(ids), CustomerIdentity.kind == "mobile")
                                      .group_by(CustomerIdentity.customer_id)).all())
    orders = dict(db.session.execute(select(Order.customer_id, func.count()).where(Order.customer_id.in_(ids))
                                     .group_by(Order.customer_id)).all())
    stores = dict(db.session.execute(select(Customer.id, Store.name).join(Guide, Guide.id == Customer.binding_guide_id)
                                     .join(Store, Store.id == Guide.store_id).where(Customer.id.in_(ids))).all())
    found = []
    for c in customers:
        record_view(viewer, c, entry=LOOKUP_ENTRY, ip=ip)
        found.append({"id": c.id, "name": mask_name(c.name), "mobile": mask_mobile(mobiles.get(c.id)),
                      "store": stores.get(c.id), "orders": orders.get(c.id, 0), "matched": matched[c.id]})
    db.session.flush()
    return found


def erase_customer(session: Session | scoped_session, customer_id: int, *, actor: Guide | str,
                   reason: str) -> dict:
    """Anonymise customer `customer_id` everywhere we hold their personal data, and write the audit row.

    `actor`: the admin (a Guide) or a label such as "cli:<os user>"; `reason`: why (required, kept in the
    audit log with any erased value redacted). A customer already erased is left alone: the answer says so
    (`already_erased`) and nothing is written. Raises CustomerNotFound or ValueError (no reason). Flushes."""
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("a reason is required")
    customer = session.scalar(select(Customer).where(Customer.id == customer_id).with_for_update()
                              .execution_options(populate_existing=True))
    if customer is None:
        raise CustomerNotFound(customer_id)
    if customer.erased_at is not None:
        return {"customer_id": customer.id, "erased": False, "already_erased": True,
                "erased_at": customer.erased_at.isoformat()}

    now = utcnow()
    identities = session.execute(select(CustomerIdentity.kind, CustomerIdentity.value)
                                 .where(CustomerIdentity.customer_id == customer.id)).all()
    values = _erasable_values(customer, identities)
    rows = {
        "identities": _delete_identities(session, customer.id),
        "tags": _delete_tags(session, customer.id),
        "follows": _close_follows(session, customer.id, now),
        "events": _empty_events(session, customer.id, values),
        "orders": _unlink_orders(session, customer.id, identities),
        "tasks": _close_tasks(session, customer.id, now),
        "transfers": _count(session.execute(update(CustomerTransfer).where(CustomerTransfer.customer_id == customer.id)
                                            .values(external_userid=REDACTED))),
        "link_opens": _count(session.execute(update(LinkOpen).where(LinkOpen.customer_id == customer.id,
                                                                    LinkOpen.user_agent.is_not(None))
                                             .values(user_agent=None))),
        "script_sends": _count(session.execute(update(ScriptSend).where(ScriptSend.customer_id == customer.id,
                                                                        ScriptSend.query.is_not(None))
                                               .values(query=None))),
        "learned_terms": _drop_terms(session, values),
        "callbacks": _forget_callbacks(session, [value for _, value in identities], now),
        "free_text": sum(_redact_rows(session, model, columns, values) for model, columns in FREE_TEXT),
    }
    _anonymise(customer, now)
    actor_label, guide_id = (f"guide:{actor.userid}", actor.id) if isinstance(actor, Guide) else (str(actor), None)
    session.add(AuditEntry(action="customer_erased", actor=actor_label[:100], guide_id=guide_id,
                           customer_id=customer.id, reason=_redact_text(reason, values)[:500], at=now,
                           details={"rows": rows}))
    session.flush()
    _session(session).info.setdefault("erasure_redis", []).append((customer.id, values))
    return {"customer_id": customer.id, "erased": True, "already_erased": False, "erased_at": now.isoformat(),
            "rows": rows}


# --------------------------------------------------------------------------------------------- the steps


def _erasable_values(customer: Customer, identities) -> list[str]:
    """The strings that identify the customer, to be removed wherever free text may quote them."""
    values = {value for _, value in identities if value}
    if customer.name and len(customer.name) >= MIN_NAME_LENGTH and customer.name != ERASED_NAME:
        values.add(customer.name)
    if customer.avatar:
        values.add(customer.avatar)
    return sorted(values, key=len, reverse=True)  # longest first: a name inside an id is not cut in two


def _anonymise(customer: Customer, now: datetime) -> None:
    """The shell keeps only what counts need: when they came and what they spent (order figures)."""
    customer.name = ERASED_NAME
    customer.avatar = customer.corp_name = customer.member_level = customer.wecom_type = None
    customer.birthday = customer.baby_birthday = customer.due_date = None
    customer.gender, customer.points = 0, 0
    customer.binding_guide_id = None
    customer.erased_at = now


def _delete_identities(session, customer_id: int) -> int:
    return _count(session.execute(delete(CustomerIdentity).where(CustomerIdentity.customer_id == customer_id)))


def _delete_tags(session, customer_id: int) -> int:
    # Tags say who they are (孕期, 宝宝0-6月, a guide's note); the tag library itself is shared and stays.
    return _count(session.execute(delete(CustomerTag).where(CustomerTag.customer_id == customer_id)))


def _close_follows(session, customer_id: int, now: datetime) -> int:
    """Relations stay (new-customer counts per guide come from added_at; `state` is the acquisition channel,
    a QR code's name) without the guide's remark and description; live ones end, so no guide sees the shell
    and no rule gives it a task."""
    changed = _count(session.execute(update(Follow).where(Follow.customer_id == customer_id)
                                     .values(remark=None, description=None)))
    session.execute(update(Follow).where(Follow.customer_id == customer_id, Follow.ended_at.is_(None))
                    .values(ended_at=now, ended_by="erased"))
    return changed


def _empty_events(session, customer_id: int, values: list[str]) -> int:
    """The trajectory keeps its shape (type, time, channel, guide) and loses its content. A ref quoting an
    identity (a callback's dedup key holds the external_userid) is cleared."""
    changed = _count(session.execute(update(Event).where(Event.customer_id == customer_id)
                                     .values(payload={}, note=None)))
    if values:
        session.execute(update(Event).where(Event.customer_id == customer_id,
                                            or_(*[Event.ref.contains(v, autoescape=True) for v in values]))
                        .values(ref=None))
    return changed


def _unlink_orders(session, customer_id: int, identities) -> int:
    """Orders stay for accounting (amount, time, store, credited guide, lines) and point at the shell; the
    identity keys they arrived with go. Unmatched orders carrying one of the customer's keys lose that key,
    so they can never be matched to anyone by it."""
    changed = _count(session.execute(update(Order).where(Order.customer_id == customer_id)
                                     .values(customer_keys={})))
    for kind, value in identities:
        for order in _unmatched_orders_with(session, kind, value):
            order.customer_keys = {k: v for k, v in order.customer_keys.items() if not (k == kind and v == value)}
            changed += 1
    return changed


def _unmatched_orders_with(session, kind: str, value: str) -> list[Order]:
    from orders.operations import carries_key

    return list(session.scalars(select(Order).where(Order.customer_id.is_(None), carries_key(kind, value))))


def _close_tasks(session, customer_id: int, now: datetime) -> int:
    """Open tasks are closed (skipped); every task of theirs keeps its rule, guide, day and outcome (the
    completion figures) but not its wording, which quotes their data (宝宝生日, a coupon's name …)."""
    session.execute(update(RedDot).where(RedDot.customer_id == customer_id, RedDot.status == "open")
                    .values(status="skipped", skip_reason=ERASED_REASON, done_at=now))
    return _count(session.execute(update(RedDot).where(RedDot.customer_id == customer_id)
                                  .values(reason=ERASED_REASON, details={}, skip_reason=ERASED_REASON)))


def _drop_terms(session, values: list[str]) -> int:
    """A guide's question about the customer may have left their name or mobile among the sends' learned
    terms (what `knowledge relearn` rebuilds the learned pairs from): those terms go."""
    changed = 0
    for send in _candidates(session, ScriptSend, [ScriptSend.terms], values):
        kept = [t for t in send.terms or [] if not _mentions(t, values)]
        if kept != list(send.terms or []):
            send.terms = kept
            changed += 1
    session.flush()
    return changed


def _forget_callbacks(session, ids: list[str], now: datetime) -> int:
    """Stored WeCom callbacks about the customer (their external_userid is a part of the dedup key): the key
    is replaced, and one not yet handled is never handled (a replay must not bring them back). Their payloads
    are redacted with the rest of the free text."""
    ids = [v for v in ids if v]
    if not ids:
        return 0
    changed = 0
    for row in _candidates(session, CallbackInbox, [CallbackInbox.dedup_key], ids):
        if not set(row.dedup_key.split(":")) & set(ids):  # whole parts: another id may contain this one
            continue
        row.dedup_key = f"erased:{row.id}"
        if row.status in ("pending", "failed"):
            row.status, row.processed_at = "ignored", now
            row.result = {"note": "customer erased"}
        changed += 1
    session.flush()
    return changed


def _redact_rows(session, model, columns: tuple[str, ...], values: list[str]) -> int:
    if not values:
        return 0
    changed = 0
    for row in _candidates(session, model, [getattr(model, c) for c in columns], values):
        for c in columns:
            old = getattr(row, c)
            new = _redact(old, values)
            if new != old:
                setattr(row, c, new)
                changed += 1
    session.flush()
    return changed


def _candidates(session, model, columns, values: list[str]) -> Iterable:
    """Rows of `model` whose columns may contain one of `values`. PostgreSQL answers exactly (JSONB as
    text keeps Chinese unescaped); SQLite's JSON text escapes it, so there every row is read and checked."""
    query = select(model)
    if db.is_postgres:
        query = query.where(or_(*[cast(col, Text).contains(v, autoescape=True) for col in columns for v in values]))
    return session.scalars(query).all()


def _redact(value, values: list[str]):
    if isinstance(value, str):
        return _redact_text(value, values)
    if isinstance(value, dict):
        return {k: _redact(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, values) for v in value]
    return value


def _redact_text(text: str, values: list[str]) -> str:
    for v in values:
        text = text.replace(v, REDACTED)
    return text


def _mentions(text, values: list[str]) -> bool:
    return isinstance(text, str) and any(v in text for v in values)


def _count(result) -> int:
    return max(result.rowcount or 0, 0)


def _session(session) -> Session:
    return session() if isinstance(session, scoped_session) else session


# ------------------------------------------------------------------------------------------------- Redis


@event.listens_for(Session, "after_commit")
def _forget_in_redis(session) -> None:
    """Once the erasure is committed: the customer's touch counters, the chat-bot's remembered question when
    it quotes them (it lives half an hour), and learned pairs whose term is their name or mobile."""
    pending = session.info.pop("erasure_redis", None)
    if not pending:
        return
    from knowledge.service import LEARN_PREFIX

    client = rstore.client
    for customer_id, values in pending:
        doomed = list(client.scan_iter(match=f"touch:{{{customer_id}}}:*", count=500))
        if values:
            for key in client.scan_iter(match="bot:last:*", count=500):
                if _mentions(_unescaped(client.get(key)), values):
                    doomed.append(key)
            doomed += [key for key in client.scan_iter(match=f"{LEARN_PREFIX}*", count=1000)
                       if _mentions(_text(key)[len(LEARN_PREFIX):], values)]
        if doomed:
            client.delete(*doomed)


def _text(raw) -> str:
    return raw.decode() if isinstance(raw, bytes) else (raw or "")


def _unescaped(raw) -> str:
    """A JSON value as text with its Chinese unescaped (the chat-bot stores json.dumps' \\uXXXX form)."""
    try:
        return json.dumps(json.loads(_text(raw)), ensure_ascii=False)
    except ValueError:
        return _text(raw)


@event.listens_for(Session, "after_rollback")
def _drop_pending(session) -> None:
    session.info.pop("erasure_redis", None)
