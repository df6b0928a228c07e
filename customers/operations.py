"""Writes to customer profiles. Each function flushes; the caller (request, job or command) commits once."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select

from core.db import db
from core.timeutil import utcnow
from models import Customer, CustomerIdentity, Event, Follow, Guide


def find_customer(kind: str, value: str) -> Customer | None:
    return db.session.scalar(
        select(Customer).join(CustomerIdentity).where(CustomerIdentity.kind == kind, CustomerIdentity.value == value)
    )


def ensure_identity(customer: Customer, kind: str, value: str | None) -> None:
    """Attach an identity unless some customer already holds it (the first holder keeps it)."""
    if not value:
        return
    holder = db.session.scalar(
        select(CustomerIdentity.customer_id).where(CustomerIdentity.kind == kind, CustomerIdentity.value == value)
    )
    if holder is None:
        from orders.operations import match_for_identity

        db.session.add(CustomerIdentity(customer_id=customer.id, kind=kind, value=value))
        db.session.flush()
        match_for_identity(kind, value)  # orders that arrived before this identity was known


def upsert_from_wecom(contact: dict) -> Customer:
    """Create or refresh a customer from `externalcontact/get`'s `external_contact` object."""
    external_userid = contact["external_userid"]
    customer = lock_unerased(find_customer("external_userid", external_userid))
    if customer is None and contact.get("unionid"):
        customer = lock_unerased(find_customer("unionid", contact["unionid"]))
    if customer is None:
        customer = Customer(name=contact.get("name") or "")
        db.session.add(customer)
        db.session.flush()
    customer.name = contact.get("name") or customer.name
    customer.avatar = contact.get("avatar") or customer.avatar
    customer.gender = int(contact.get("gender") or customer.gender or 0)
    customer.wecom_type = contact.get("type") or customer.wecom_type
    customer.corp_name = contact.get("corp_name") or customer.corp_name
    ensure_identity(customer, "external_userid", external_userid)
    ensure_identity(customer, "unionid", contact.get("unionid"))
    db.session.flush()
    return customer


GUIDE_WRITE_LOCK = {"read": True, "key_share": True}  # with_for_update() arguments: FOR KEY SHARE


def lock_unerased(customer: Customer | None, *, key_share: bool = False) -> Customer | None:
    """The customer, row-locked and re-read, unless their data was erased meanwhile (customers.erasure holds
    FOR UPDATE, which this lock waits for): a callback handled, or a guide's tag, note or send written, during
    an erasure must not write the person back onto the shell. Every writer that checked the customer without a
    lock takes it before writing. FOR NO KEY UPDATE, like the UPDATE it stands before: it does not wait behind the
    KEY SHARE locks of transactions that only insert rows pointing at the customer. `key_share`: the writer only
    inserts such rows (a guide's tag, note, send, touch) and never UPDATEs the customer: FOR KEY SHARE, the
    weakest lock an erasure's FOR UPDATE conflicts with, so it waits for nothing else (a bulk import, order
    ingest, a callback waiting on WeCom) and blocks nothing but an erasure."""
    if customer is None:
        return None
    lock = GUIDE_WRITE_LOCK if key_share else {"key_share": True}
    customer = db.session.scalar(select(Customer).where(Customer.id == customer.id)
                                 .with_for_update(**lock).execution_options(populate_existing=True))
    return customer if customer is not None and customer.erased_at is None else None


def ensure_guide(userid: str, name: str | None = None) -> Guide:
    guide = db.session.scalar(select(Guide).where(Guide.userid == userid))
    if guide is None:
        guide = Guide(userid=userid, name=name or userid, role="guide", status="active")
        db.session.add(guide)
        db.session.flush()
    elif name and guide.name == guide.userid:
        guide.name = name
    return guide


def open_follow(guide: Guide, customer: Customer, *, added_at: datetime, state=None, remark=None,
                description=None) -> Follow:
    follow = db.session.scalar(
        select(Follow).where(Follow.guide_id == guide.id, Follow.customer_id == customer.id)
    )
    if follow is None:
        from reports.leaderboard import bump

        follow = Follow(guide_id=guide.id, customer_id=customer.id, added_at=added_at)
        db.session.add(follow)
        bump(guide.id, added_at, new_customers=1)
    elif follow.ended_at is not None:
        # Re-added after a deletion: the relation is live again; the first added_at stays for the binding rule.
        follow.ended_at = None
        follow.ended_by = None
    follow.state = state if state is not None else follow.state
    follow.remark = remark if remark is not None else follow.remark
    follow.description = description if description is not None else follow.description
    db.session.flush()
    refresh_binding(customer)
    return follow


def end_follow(guide: Guide, customer: Customer, *, ended_at: datetime, ended_by: str) -> Follow | None:
    follow = db.session.scalar(
        select(Follow).where(Follow.guide_id == guide.id, Follow.customer_id == customer.id)
    )
    if follow is None or follow.ended_at is not None:
        return follow
    follow.ended_at = ended_at
    follow.ended_by = ended_by
    db.session.flush()
    refresh_binding(customer)
    return follow


def refresh_binding(customer: Customer) -> None:
    """Binding guide: the earliest-added guide who still follows the customer (None when nobody does)."""
    live = db.session.execute(
        select(Follow.guide_id, Follow.added_at)
        .where(Follow.customer_id == customer.id, Follow.ended_at.is_(None))
        .order_by(Follow.added_at, Follow.id)
    ).first()
    first = db.session.scalar(select(Follow.added_at).where(Follow.customer_id == customer.id).order_by(Follow.added_at))
    customer.binding_guide_id = live.guide_id if live else None
    customer.first_added_at = first
    db.session.flush()


def record_event(customer: Customer, type_: str, *, occurred_at: datetime | None = None, channel: str | None = None,
                 guide: Guide | None = None, payload: dict | None = None, ref: str | None = None) -> Event | None:
    """Add a trajectory event; with a `ref`, a second event of the same type and ref is not added."""
    if ref is not None:
        existing = db.session.scalar(select(Event).where(Event.type == type_, Event.ref == ref))
        if existing is not None:
            return existing
    event = Event(
        customer_id=customer.id,
        type=type_,
        occurred_at=occurred_at or utcnow(),
        channel=channel,
        guide_id=guide.id if guide else None,
        payload=payload or {},
        ref=ref,
    )
    db.session.add(event)
    db.session.flush()
    return event


def from_timestamp(ts) -> datetime:
    return datetime.fromtimestamp(int(ts), timezone.utc)
