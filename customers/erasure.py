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
import re
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import JSON, Text, and_, cast, delete, func, literal_column, or_, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, scoped_session

from core.db import db
from core.redis_store import rstore
from core.timeutil import local_today, utcnow
from imports.records import identity_value, phone_like
from models import (IDENTITY_KINDS, AuditEntry, CallbackInbox, Customer, CustomerIdentity, CustomerTag,
                    CustomerTransfer, ErasureCleanup, Event, Follow, Guide, GuidePush, JobRun, LinkOpen, Order,
                    RedDot, ScriptSend, Store, TrackedLink)
from sidebar.operations import mask_mobile, record_view

ERASED_NAME = "已注销用户"
ERASED_REASON = "顾客已注销"  # what a guide reads on the shell's tasks
REDACTED = "[已删除]"  # stands in for an erased value inside free text
MIN_NAME_LENGTH = 2  # a one-character name would redact unrelated text
# An identity value this long (external_userid, unionid, a mobile, most member numbers, the avatar URL) names
# nobody else: it is redacted wherever it appears, and a row quoting it is about the customer. A shorter one
# (a member number "100") would hit prices, ids and URLs, so it is redacted only in the customer's own rows.
MIN_IDENTIFYING_LENGTH = 6
# Callback fields that route a stored callback (`bot replay`), never rewritten whatever the customer's name.
STRUCTURAL_FIELDS = frozenset({"ToUserName", "FromUserName", "MsgType", "Event", "ChangeType", "CreateTime",
                               "AgentID", "MsgId"})

# Free text not tied to the customer's id that may still quote their mobile or ids: the callbacks, the
# guides' questions, pushes, job results. A row found quoting an identifying value is about them, and their
# name is redacted in it too. (Tasks that name a customer carry that customer's id and are handled with
# theirs; tracked links are only ever redacted on their own links.)
FREE_TEXT = (
    (CallbackInbox, ("payload", "result", "last_error")),
    (ScriptSend, ("query",)),
    (GuidePush, ("title", "body", "last_error")),
    (JobRun, ("result", "error")),
)


class CustomerNotFound(LookupError):
    pass


class ErasureBusy(RuntimeError):
    """Someone else holds the customer's rows (a WeCom callback being handled, a bulk import running) longer
    than the erasure waits (LOCK_TIMEOUT), or PostgreSQL broke a deadlock by aborting the erasure: roll back
    and try again."""


LOCK_TIMEOUT = "5s"  # an erasure waits this long for a row someone else holds, then answers busy (409)
LOOKUP_ENTRY = "erase-lookup"  # profile_views.entry of a look from the erasure panel
MAX_LOOKUP_VALUE = 128  # the longest identity value (customer_identities.value)


def mask_name(name: str | None) -> str:
    """王* / 陈** : the first character only, enough to match the request, not enough to copy."""
    name = (name or "").strip()
    return name[:1] + "*" * (len(name) - 1) if len(name) > 1 else "*" * len(name)


def find_for_erasure(value: str, *, viewer: Guide, ip: str | None = None) -> list[dict]:
    """The customers holding identity `value`, whatever its kind (mobile, external_userid, member_no,
    unionid), masked: id, name 王*, mobile 139****5678, store (their binding guide's), order count, and
    which kind matched (a mobile typed or stored with spaces, dashes or +86 matches too), and whether they were erased already. An erased customer holds no identity, so is
    not found; one that is (something raced the erasure and wrote it back) is, flagged `erased`, to be erased
    again. Each customer shown is
    written to profile_views (entry `erase-lookup`), as a look at a profile is. Raises ValueError for an
    empty or over-long value. Flushes."""
    value = (value or "").strip()
    if not value or len(value) > MAX_LOOKUP_VALUE:
        raise ValueError("value must be 1–128 characters")
    matched = dict(db.session.execute(holders_query(value)).all())
    if not matched:
        return []
    ids = list(matched)
    customers = db.session.scalars(select(Customer).where(Customer.id.in_(ids)).order_by(Customer.id)).all()
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
                      "store": stores.get(c.id), "orders": orders.get(c.id, 0), "matched": matched[c.id],
                      "erased": c.erased_at is not None})
    db.session.flush()
    return found


def mobile_variants(value: str) -> list[str]:
    """The digits a mobile typed as `value` may be stored with: its one spelling (imports.records.identity_value:
    an admin pastes 139 8765 4321, 139-8765-4321, +86 13987654321 from the request) and, for a mainland mobile,
    that with 86 / 0086 before it, as a value stored before the one spelling may read; [] for anything not
    phone-like (a member number M-1234 is not a phone number)."""
    if not phone_like(value):
        return []
    digits = identity_value("mobile", value).lstrip("+")
    return [digits, "86" + digits, "0086" + digits] if re.fullmatch(r"1\d{10}", digits) else [digits]


def mobile_digits(column):
    """A stored value without its non-digits: on PostgreSQL the expression of the index on mobiles
    (migration b5e1d9a3c7f2), constants written out so that the planner matches it."""
    if not db.is_postgres:
        return column
    return func.regexp_replace(column, literal_column("'[^0-9]'"), literal_column("''"), literal_column("'g'"))


def holders_query(value: str, kinds=IDENTITY_KINDS):
    """(customer_id, kind) of the identities holding `value`: of any of `kinds` exactly as stored, and, when
    it looks like a phone number, of kind mobile however either side writes it (139-8765-4321 finds a
    stored +86 139 8765 4321). Only mobiles are compared by digits: a member number typed 1234-5678 never
    finds member number or unionid 12345678. The kinds are named so that the unique (kind, value) index
    answers it (on value alone PostgreSQL reads the whole table), the mobiles by their digits' index."""
    condition = and_(CustomerIdentity.kind.in_(kinds), CustomerIdentity.value == value)
    variants = mobile_variants(value) if "mobile" in kinds else []
    if variants:
        condition = or_(condition, and_(CustomerIdentity.kind == "mobile",
                                        mobile_digits(CustomerIdentity.value).in_(variants)))
    return (select(CustomerIdentity.customer_id, CustomerIdentity.kind).where(condition)
            .order_by(CustomerIdentity.customer_id, CustomerIdentity.id))


def erase_customer(session: Session | scoped_session, customer_id: int, *, actor: Guide | str,
                   reason: str) -> dict:
    """Anonymise customer `customer_id` everywhere we hold their personal data, and write the audit row.

    `actor`: the admin (a Guide) or a label such as "cli:<os user>"; `reason`: why (required, kept in the
    audit log with any erased value redacted). A customer already erased is left alone: the answer says so
    (`already_erased`) and nothing is written; unless the shell holds personal data again (an identity, a tag,
    a name …, written by something that raced the erasure): then it is erased again. Raises ErasureBusy (roll
    back, try again) when a row it needs stays locked longer than LOCK_TIMEOUT (a bulk import holding the
    customer, a callback about them being handled) rather than hang the admin's request. Raises
    CustomerNotFound or ValueError (no reason). Flushes."""
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("a reason is required")
    if db.is_postgres:
        session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    try:
        return _erase(session, customer_id, actor=actor, reason=reason)
    except OperationalError as exc:
        if _busy(exc):
            raise ErasureBusy() from exc
        raise


# Lock not available (a lock timeout, a NOWAIT refusal), deadlock detected, serialization failure: another
# transaction held what the erasure needed, and the same erasure tried again succeeds.
BUSY_SQLSTATES = frozenset({"55P03", "40P01", "40001"})


def _busy(exc: OperationalError) -> bool:
    """The erasure lost a race for a lock (BUSY_SQLSTATES), not its connection or anything else."""
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code in BUSY_SQLSTATES


def _erase(session, customer_id: int, *, actor: Guide | str, reason: str) -> dict:
    # The callback worker locks its inbox row, then the customer: the same order here, or the two deadlock.
    known = set(session.scalars(select(CustomerIdentity.value).where(CustomerIdentity.customer_id == customer_id)))
    callbacks = _lock_callbacks(session, list(known))
    customer = session.scalar(select(Customer).where(Customer.id == customer_id).with_for_update()
                              .execution_options(populate_existing=True))
    if customer is None:
        raise CustomerNotFound(customer_id)
    if customer.erased_at is not None and not _holds_data(session, customer):
        # Asked again (perhaps because Redis was away): Redis clean-up still owed is tried at once.
        session.execute(update(ErasureCleanup).where(ErasureCleanup.customer_id == customer.id)
                        .values(due_at=utcnow()))
        return {"customer_id": customer.id, "erased": False, "already_erased": True,
                "erased_at": customer.erased_at.isoformat()}

    now = utcnow()
    identities = session.execute(select(CustomerIdentity.kind, CustomerIdentity.value)
                                 .where(CustomerIdentity.customer_id == customer.id)).all()
    added = {value for _, value in identities} - known
    if added:  # while this waited for the customer: their callbacks are locked too, without waiting
        locked = {row.id for row in callbacks}
        callbacks += [row for row in _lock_callbacks(session, sorted(added), nowait=True) if row.id not in locked]
    values = _erasable_values(customer, identities)
    identifying = [v for v in values if len(v) >= MIN_IDENTIFYING_LENGTH and v != customer.name]
    guides = _guides_of(session, customer.id)
    rows = {
        "identities": _delete_identities(session, customer.id),
        "tags": _delete_tags(session, customer.id),
        "follows": _close_follows(session, customer.id, now),
        "events": _empty_events(session, customer.id, values),
        "orders": _unlink_orders(session, customer.id, identities),
        "tasks": _close_tasks(session, customer.id, now),
        "transfers": _settle_transfers(session, customer.id, now),
        "link_opens": _count(session.execute(update(LinkOpen).where(LinkOpen.customer_id == customer.id,
                                                                    LinkOpen.user_agent.is_not(None))
                                             .values(user_agent=None))),
        "script_sends": _forget_sends(session, customer.id, values),
        "tracked_links": _redact_own(session, TrackedLink, ("target_url", "coupon_ref"), customer.id, values),
        "callbacks": _forget_callbacks(session, callbacks, [value for _, value in identities], now),
        "free_text": sum(_redact_quoting(session, model, columns, identifying, values,
                                         rows=callbacks if model is CallbackInbox else None)
                         for model, columns in FREE_TEXT),
        "guides_questions": _redact_guides_questions(session, guides, customer.name, values),
    }
    customer_avatar = customer.avatar
    _anonymise(customer, now)
    actor_label, guide_id = (f"guide:{actor.userid}", actor.id) if isinstance(actor, Guide) else (str(actor), None)
    session.add(AuditEntry(action="customer_erased", actor=actor_label[:100], guide_id=guide_id,
                           customer_id=customer.id, reason=_redact_reason(reason, values, identities)[:500], at=now,
                           details={"rows": rows}))
    session.add(ErasureCleanup(customer_id=customer.id, terms=[v for v in values if v != customer_avatar]))
    session.flush()
    return {"customer_id": customer.id, "erased": True, "already_erased": False, "erased_at": now.isoformat(),
            "rows": rows}


# --------------------------------------------------------------------------------------------- the steps


def shells_holding_data(session) -> list[int]:
    """Ids of erased customers whose shell holds data again (see _holds_data): none is found by a lookup,
    since a shell may hold no identity, so `customers audit` lists them to be erased again. A few queries
    over all shells, not a few per shell."""
    shells = session.scalars(select(Customer).where(Customer.erased_at.is_not(None)).order_by(Customer.id)).all()
    with_rows = _holding_rows(session, select(Customer.id).where(Customer.erased_at.is_not(None)))
    return [c.id for c in shells if c.id in with_rows or _profile_refilled(c)]


def _holds_data(session, customer: Customer) -> bool:
    """Whether an erased shell holds anything an erasure removes (it should not; a writer that raced the
    erasure and lacked a guard could have put it back)."""
    return _profile_refilled(customer) or bool(_holding_rows(session, [customer.id]))


def _profile_refilled(customer: Customer) -> bool:
    return bool(customer.name != ERASED_NAME or customer.binding_guide_id is not None or customer.gender
                or customer.points
                or any(getattr(customer, f) is not None for f in ("avatar", "corp_name", "member_level",
                                                                   "wecom_type", "birthday", "baby_birthday",
                                                                   "due_date")))


def _holding_rows(session, ids) -> set[int]:
    """Which of the customers `ids` (a list or a subquery) hold an identity, a tag, an open follow, or an order
    that still carries identity keys."""
    found: set[int] = set()
    for query in (select(CustomerIdentity.customer_id).where(CustomerIdentity.customer_id.in_(ids)),
                  select(CustomerTag.customer_id).where(CustomerTag.customer_id.in_(ids)),
                  select(Follow.customer_id).where(Follow.customer_id.in_(ids), Follow.ended_at.is_(None)),
                  select(Order.customer_id).where(Order.customer_id.in_(ids),
                                                  cast(Order.customer_keys, Text) != "{}")):
        found.update(session.scalars(query.distinct()))
    return found


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
    # A skip reason may quote them too; a done task keeps having none (an export would read it as skipped).
    session.execute(update(RedDot).where(RedDot.customer_id == customer_id, RedDot.skip_reason.is_not(None))
                    .values(skip_reason=ERASED_REASON))
    return _count(session.execute(update(RedDot).where(RedDot.customer_id == customer_id)
                                  .values(reason=ERASED_REASON, details={})))


def _forget_sends(session, customer_id: int, values: list[str]) -> int:
    """Their sends keep script, guide and time (script statistics) without the guide's question, and lose a
    learned term that is one of their values (what `knowledge relearn` rebuilds the learned pairs from)."""
    changed = _count(session.execute(update(ScriptSend).where(ScriptSend.customer_id == customer_id,
                                                              ScriptSend.query.is_not(None))
                                     .values(query=None)))
    for send in session.scalars(select(ScriptSend).where(ScriptSend.customer_id == customer_id)):
        changed += _drop_terms(send, values)
    return changed


def _settle_transfers(session, customer_id: int, now: datetime) -> int:
    """Their transfers lose the external_userid; one still waiting is settled (`erased`): WeCom's
    transfer_result will never name the redacted id, and the departing guide's list would wait forever."""
    session.execute(update(CustomerTransfer).where(CustomerTransfer.customer_id == customer_id,
                                                   CustomerTransfer.status == "waiting")
                    .values(status="erased", settled_at=now))
    return _count(session.execute(update(CustomerTransfer).where(CustomerTransfer.customer_id == customer_id)
                                  .values(external_userid=REDACTED)))


def _drop_terms(send: ScriptSend, values: list[str]) -> int:
    kept = [t for t in send.terms or [] if t not in values]
    if kept == list(send.terms or []):
        return 0
    send.terms = kept
    return 1


def _guides_of(session, customer_id: int) -> list[tuple[int, str]]:
    """(id, userid) of every guide who followed the customer, now or before."""
    return session.execute(select(Guide.id, Guide.userid).join(Follow, Follow.guide_id == Guide.id)
                           .where(Follow.customer_id == customer_id).distinct()).all()


def _lock_callbacks(session, ids: list[str], *, nowait: bool = False) -> list[CallbackInbox]:
    """Stored callbacks about the customer, row-locked in id order: those whose dedup key holds one of their
    ids and those quoting an identifying one (the erasure rewrites both). `nowait`, once the customer is
    locked (a worker holding such a row waits for the customer: waiting for it would deadlock): a row
    locked by someone else fails at once (erase_customer turns that into ErasureBusy: the caller rolls back
    and may try again)."""
    ids = [v for v in ids if v]
    if not ids:
        return []
    query = select(CallbackInbox).order_by(CallbackInbox.id).with_for_update(nowait=nowait)
    if db.is_postgres:
        long_ids = [v for v in ids if len(v) >= MIN_IDENTIFYING_LENGTH]
        text_columns = [CallbackInbox.payload, CallbackInbox.result, CallbackInbox.last_error]
        query = query.where(or_(_contains_any([CallbackInbox.dedup_key], ids),
                                *([_contains_any(text_columns, long_ids)] if long_ids else [])))
    return session.scalars(query).all()


def _forget_callbacks(session, callbacks: list[CallbackInbox], ids: list[str], now: datetime) -> int:
    """Stored WeCom callbacks about the customer (their external_userid is a part of the dedup key): the key
    is replaced, and one not yet handled is never handled (a replay must not bring them back). Their payloads
    are redacted with the rest of the free text."""
    ids = [v for v in ids if v]
    if not ids:
        return 0
    changed = 0
    for row in callbacks:
        if not set(row.dedup_key.split(":")) & set(ids):  # whole parts: another id may contain this one
            continue
        row.dedup_key = f"erased:{row.id}"
        if row.status in ("pending", "failed"):
            row.status, row.processed_at = "ignored", now
            row.result = {"note": "customer erased"}
        changed += 1
    session.flush()
    return changed


def _redact_own(session, model, columns: tuple[str, ...], customer_id: int, values: list[str]) -> int:
    """The customer's own rows of `model` (their tracked links): every value goes."""
    changed = 0
    for row in session.scalars(select(model).where(model.customer_id == customer_id)):
        changed += _redact_row(row, columns, values)
    session.flush()
    return changed


def _redact_quoting(session, model, columns: tuple[str, ...], identifying: list[str], values: list[str],
                    rows: list | None = None) -> int:
    """Rows of `model` anyone wrote that quote one of the customer's identifying values (a long id, their
    mobile, their avatar URL) as a whole token: such a row is about them, and every value of theirs goes.
    `rows`: the candidates already locked (callbacks), instead of a search."""
    if not identifying:
        return 0
    changed = 0
    if rows is None:
        rows = _candidates(session, model, [getattr(model, c) for c in columns], identifying)
    for row in rows:
        if any(_quotes(getattr(row, c), identifying) for c in columns):
            changed += _redact_row(row, columns, values)
    session.flush()
    return changed


def _redact_guides_questions(session, guides: list[tuple[int, str]], name: str | None, values: list[str]) -> int:
    """What the customer's own guides asked the chat-bot naming them (the text message, the bot's answer,
    the send it led to, which has no customer): their name goes there too. Nobody else's text is searched
    for a name, which may be a common word (宝宝)."""
    if not guides or not name or len(name) < MIN_NAME_LENGTH or name == ERASED_NAME:
        return 0
    guide_ids, userids = [g for g, _ in guides], [u for _, u in guides]
    changed = 0
    messages = select(CallbackInbox).where(CallbackInbox.msg_type == "text",
                                           CallbackInbox.payload["FromUserName"].as_string().in_(userids))
    for row in session.scalars(_containing(messages, [CallbackInbox.payload, CallbackInbox.result], [name])):
        changed += _redact_row(row, ("payload", "result"), values)
    sends = select(ScriptSend).where(ScriptSend.guide_id.in_(guide_ids), ScriptSend.customer_id.is_(None))
    for send in session.scalars(_containing(sends, [ScriptSend.query], [name])):
        if _quotes(send.query, [name]):
            changed += _redact_row(send, ("query",), values) + _drop_terms(send, values)
    session.flush()
    return changed


def _redact_row(row, columns: tuple[str, ...], values: list[str]) -> int:
    changed = 0
    for c in columns:
        old = getattr(row, c)
        new = _redact(old, values)
        if new != old:
            setattr(row, c, new)
            changed = 1
    return changed


def _candidates(session, model, columns, values: list[str]) -> Iterable:
    """Rows of `model` whose columns may contain one of `values` (callers check each row)."""
    return session.scalars(_containing(select(model), columns, values)).all()


def _containing(query, columns, values: list[str]):
    """`query` narrowed to rows whose columns contain one of `values` as a substring. PostgreSQL answers from
    the text: JSONB as text keeps Chinese unescaped but escapes `"` and `\\`, so JSON columns are searched
    for the value as JSON spells it. SQLite's JSON text escapes Chinese too: there every row is read."""
    return query.where(_contains_any(columns, values)) if db.is_postgres else query


def _contains_any(columns, values: list[str]):
    return or_(*[cast(col, Text).contains(_as_stored(col, v), autoescape=True) for col in columns for v in values])


def _as_stored(column, value: str) -> str:
    if isinstance(column.type, JSON):
        return json.dumps(value, ensure_ascii=False)[1:-1]
    return value


def _redact_reason(reason: str, values: list[str], identities) -> str:
    """The admin's reason, with the customer's values redacted, and their mobile also as typed with spaces or
    dashes (139-8765-4321). A real name they never gave us cannot be known: the CLI and the API ask for a
    reference, not the person."""
    for kind, value in identities:
        if kind == "mobile" and value and value.isdigit():
            reason = re.sub(r"(?<!\d)" + r"[\s\-]*".join(value) + r"(?!\d)", REDACTED, reason)
    return _redact_text(reason, values)


def _redact(value, values: list[str]):
    if isinstance(value, str):
        return _redact_text(value, values)
    if isinstance(value, dict):
        return {k: v if k in STRUCTURAL_FIELDS else _redact(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, values) for v in value]
    return value


def _redact_text(text: str, values: list[str]) -> str:
    for v in values:
        text = _pattern(v).sub(REDACTED, text)
    return text


def _quotes(value, values: list[str]) -> bool:
    """Whether `value` (text or JSON) holds one of `values` as a whole token."""
    if isinstance(value, str):
        return any(_pattern(v).search(value) for v in values)
    if isinstance(value, dict):
        return any(_quotes(v, values) for k, v in value.items() if k not in STRUCTURAL_FIELDS)
    if isinstance(value, list):
        return any(_quotes(v, values) for v in value)
    return False


def _pattern(value: str) -> re.Pattern:
    """`value` as a token: an ASCII value (an id, a number) must not be part of a longer one (13987654321 in
    139876543210, M-100 in M-1000); Chinese has no word boundaries, so a name matches inside text."""
    escaped = re.escape(value)
    if value.isascii():
        escaped = rf"(?<![0-9A-Za-z_]){escaped}(?![0-9A-Za-z_])"
    return re.compile(escaped)


def _count(result) -> int:
    return max(result.rowcount or 0, 0)


# ------------------------------------------------------------------------------------------------- Redis


def forget_in_redis(cleanup: ErasureCleanup) -> None:
    """What an erasure owes Redis, once it is committed (customers.tasks runs it, and again until it works;
    every step can run twice): the customer's touch counters, the chat-bot's remembered question of a guide
    when it quotes them, and the learned pairs of their name, mobile and ids, rebuilt from the sends that
    remain (a common nickname such as 宝宝 keeps what other guides taught). Keys are built, not scanned."""
    from knowledge.service import relearn_terms
    from tasks.quota import COUNTER_TTL

    client = rstore.client
    today = local_today()
    days = COUNTER_TTL // 86400 + 2
    client.delete(*[f"touch:{{{cleanup.customer_id}}}:{today - timedelta(days=i):%Y%m%d}"
                    for i in range(-1, days)])
    terms = list(cleanup.terms or [])
    if terms:
        identifying = [t for t in terms if len(t) >= MIN_IDENTIFYING_LENGTH]
        own = {g for g, _ in _guides_of(db.session, cleanup.customer_id)}
        guide_ids = list(db.session.scalars(select(Guide.id)))
        for start in range(0, len(guide_ids), 1000):
            batch = guide_ids[start:start + 1000]
            keys = [f"bot:last:{g}" for g in batch]
            doomed = [key for g, key, raw in zip(batch, keys, client.mget(keys))
                      if raw is not None and _quotes(_remembered(raw), terms if g in own else identifying)]
            if doomed:
                client.delete(*doomed)
        relearn_terms(set(terms))


def _remembered(raw) -> str:
    """The chat-bot's remembered question and answer as text (stored as JSON with \\uXXXX escapes)."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    try:
        return json.dumps(json.loads(text), ensure_ascii=False)
    except ValueError:
        return text
