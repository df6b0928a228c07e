"""Tracked links: create one for what a guide sends, record the customer's opens. Flush only; the request or
command commits once."""
from __future__ import annotations

import secrets
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import exists, select

from core.db import db
from core.timeutil import local_today, utcnow
from customers.operations import record_event
from models import Content, Customer, Event, Guide, LinkOpen, Script, TrackedLink

TOKEN_BYTES = 16  # 128 bits: token_urlsafe gives 22 characters
MAX_USER_AGENT = 300


class TrackingInputError(ValueError):
    """Bad input for a tracked link; the message names the problem in words a guide understands."""


def _check_target(url: str | None) -> str:
    if not url or not isinstance(url, str):
        raise TrackingInputError("这条素材没有链接，不能生成追踪链接")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise TrackingInputError(f"链接必须以 http:// 或 https:// 开头：{url[:80]}")
    if len(url) > 1000:
        raise TrackingInputError("链接太长（最多1000个字符）")
    return url.strip()


def create_tracked_link(guide: Guide, customer: Customer, content: Content | None = None, coupon: str | None = None,
                        script: Script | None = None, *, url: str | None = None,
                        now: datetime | None = None) -> TrackedLink:
    """A tracked redirect to `content`'s url (or to `url`, e.g. a coupon page) for one customer. The link's
    `.url` is what the guide sends. Flushes; the caller commits."""
    if content is None and url is None:
        raise TrackingInputError("追踪链接需要素材或目标链接")
    if content is not None and not content.enabled:
        raise TrackingInputError(f"素材「{content.title}」已停用")
    target = _check_target(url if url is not None else content.url)
    if coupon is not None and (not isinstance(coupon, str) or not coupon.strip() or len(coupon) > 64):
        raise TrackingInputError("优惠券编号必须是不超过64字的文本")
    link = TrackedLink(token=secrets.token_urlsafe(TOKEN_BYTES), guide_id=guide.id, customer_id=customer.id,
                       content_id=content.id if content else None, script_id=script.id if script else None,
                       coupon_ref=coupon.strip() if coupon else None, target_url=target,
                       created_at=now or utcnow())
    db.session.add(link)
    db.session.flush()
    return link


def record_open(token: str, *, user_agent: str | None = None, now: datetime | None = None) -> TrackedLink | None:
    """The customer opened a link: one row per open (repeat opens counted). None for an unknown token. An
    erased customer's link redirects and records nothing.
    The first open also goes on the customer's trajectory (the guide sees what she read); a repeat open
    loads nothing beyond the link itself (the redirect target and the ids its open row carries)."""
    link = find_link(token)
    if link is None:
        return None
    if db.session.scalar(select(Customer.erased_at).where(Customer.id == link.customer_id)) is not None:
        return link  # her links stay in WeCom chats: they still redirect, but record nothing about her phone
    now = now or utcnow()
    ref = f"link:{link.id}"
    opened_before = db.session.scalar(select(exists().where(Event.type == "link_opened", Event.ref == ref)))
    db.session.add(LinkOpen(link_id=link.id, customer_id=link.customer_id, guide_id=link.guide_id,
                            content_id=link.content_id, opened_at=now,
                            user_agent=(user_agent or "")[:MAX_USER_AGENT] or None))
    db.session.flush()
    if opened_before:
        return link
    customer = db.session.get(Customer, link.customer_id)
    content = db.session.get(Content, link.content_id) if link.content_id else None
    record_event(customer, "link_opened", occurred_at=now, channel="link",
                 guide=db.session.get(Guide, link.guide_id), ref=ref,
                 payload={"content": content.external_id if content else None,
                          "title": content.title if content else None, "coupon": link.coupon_ref})
    return link


def find_content(ref) -> Content | None:
    """A content item by its id (a number) or its operations `external_id` (text)."""
    if isinstance(ref, bool) or ref is None:
        return None
    if isinstance(ref, int):
        return db.session.get(Content, ref)
    if isinstance(ref, str) and ref.strip():
        ref = ref.strip()
        found = db.session.scalar(select(Content).where(Content.external_id == ref))
        if found is None and ref.isdigit():
            found = db.session.get(Content, int(ref))
        return found
    return None


def send_content(guide: Guide, customer: Customer, content_ref, *, now: datetime | None = None) -> dict:
    """A guide sends a content item from the sidebar (as a news card): check the item and its link, record the
    marketing touch (the customer's caps), create the tracked link. Raises LookupError (no such content), TrackingInputError, or
    tasks.quota.TouchRefused (over a cap: nothing is written)."""
    from tasks import quota

    content = find_content(content_ref)
    if content is None:
        raise LookupError("素材不存在或已删除")
    today = local_today()
    if not content.enabled or (content.valid_from and content.valid_from > today) or \
            (content.valid_to and content.valid_to < today):
        raise TrackingInputError(f"素材「{content.title}」已停用或不在有效期内")
    _check_target(content.url)  # before the touch is counted
    quota.record_touch(customer, guide, kind="marketing", channel="content", ref=content.external_id, now=now)
    link = create_tracked_link(guide, customer, content, now=now)
    return {"url": link.url, "token": link.token, "title": content.title, "summary": content.summary or "",
            "cover_url": content.cover_url, "content_id": content.id, "external_id": content.external_id,
            "kind": content.kind, "link_id": link.id}


def find_link(token: str) -> TrackedLink | None:
    if not token or len(token) > 64:
        return None
    return db.session.scalar(select(TrackedLink).where(TrackedLink.token == token))
