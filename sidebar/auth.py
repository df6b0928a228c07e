"""Who is asking, and what they may see.

A guide is identified once (WeCom OAuth2, or the demo picker) into Flask's signed, HttpOnly, SameSite
session cookie. `login_required` answers 401 with a re-login path when that session is missing, expired or
forged; `csrf_required` guards state-changing calls; `visible_customer` answers 404 for any customer the
guide may not see, so the answer gives no hint that the customer exists.

Access: a guide sees the customers they follow (a live relation); a store manager, the customers followed
by anyone in their store; an admin, everyone. Store figures (the manager page, the funnel API): a store
manager sees their own store, an admin every store or the one they pick (`store_scope`).
"""
from __future__ import annotations

import functools
import hmac
import secrets
import time
from dataclasses import dataclass

from flask import abort, jsonify, redirect, request, session, url_for
from sqlalchemy import and_, exists, select

from core.db import db
from core.http import json_error
from models import Customer, CustomerIdentity, Follow, Guide

SESSION_MAX_AGE = 12 * 3600  # a working day; then WeCom OAuth again (silent inside WeCom)


def sign_in(guide: Guide) -> None:
    session.clear()
    session["guide_id"] = guide.id
    session["signed_in_at"] = int(time.time())
    session["csrf"] = secrets.token_urlsafe(24)
    session.permanent = False


def sign_out() -> None:
    session.clear()


def current_guide() -> Guide | None:
    cached = getattr(request, "_current_guide", False)  # per request, not per app context
    if cached is not False:
        return cached
    guide = None
    gid, at = session.get("guide_id"), session.get("signed_in_at")
    if gid and at and time.time() - at < SESSION_MAX_AGE:
        guide = db.session.get(Guide, gid)
        if guide is not None and guide.status != "active":
            guide = None
    request._current_guide = guide
    return guide


def _login_path() -> str:
    try:
        return url_for("sidebar.login", next=request.full_path.rstrip("?"))
    except Exception:  # the sidebar pages are not registered (e.g. an API-only deployment)
        return "/sidebar/login"


def login_required(view):
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if current_guide() is None:
            resp = jsonify(error="登录已过期，请重新进入侧边栏", login_url=_login_path())
            resp.status_code = 401
            return resp
        return view(*args, **kwargs)

    return wrapped


def page_login_required(view):
    """For pages (not the JSON API): without a valid session the browser goes to sign in, and comes back."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if current_guide() is None:
            return redirect(_login_path())
        return view(*args, **kwargs)

    return wrapped


def admin_required(view):
    """Head office only (after `login_required`): a store manager or a guide gets 403."""
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if current_guide().role != "admin":
            return json_error(403, "需要总部管理员权限")
        return view(*args, **kwargs)

    return wrapped


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def csrf_required(view):
    """State-changing calls carry the session's token in the X-CSRF-Token header (or a csrf_token field)."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token") or ""
        expected = session.get("csrf") or ""
        if not expected or not hmac.compare_digest(sent, expected):
            resp = jsonify(error="页面已过期，请刷新后再试（CSRF 校验失败）")
            resp.status_code = 403
            return resp
        return view(*args, **kwargs)

    return wrapped


def visible_customers(guide: Guide):
    """A SQL condition on Customer: the customers `guide` may see. Nobody sees an erased customer's shell."""
    kept = Customer.erased_at.is_(None)
    if guide.role == "admin":
        return kept
    if guide.role == "manager" and guide.store_id is not None:
        return and_(kept, exists().where(
            Follow.customer_id == Customer.id, Follow.ended_at.is_(None),
            Follow.guide_id.in_(select(Guide.id).where(Guide.store_id == guide.store_id))))
    return and_(kept, exists().where(Follow.customer_id == Customer.id, Follow.guide_id == guide.id,
                                     Follow.ended_at.is_(None)))


def visible_customer(guide: Guide, external_userid: str | None, *, for_write: bool = False) -> Customer:
    """The customer with this WeCom external_userid if `guide` may see them; 404 otherwise. `for_write`: the
    request writes about the customer, so they are also row-locked until it commits; an erasure running now
    finishes first and the write is refused (404), instead of landing on the erased shell."""
    if not external_userid:
        abort(404)
    query = (select(Customer).join(CustomerIdentity)
             .where(CustomerIdentity.kind == "external_userid", CustomerIdentity.value == external_userid,
                    visible_customers(guide)))
    if for_write:
        # The lock of lock_for_write, taken by the lookup itself: a row an erasure changed meanwhile is read
        # again once it commits, and its erased_at no longer passes visible_customers, so the answer is 404.
        from customers.operations import GUIDE_WRITE_LOCK

        query = query.with_for_update(**GUIDE_WRITE_LOCK, of=Customer).execution_options(populate_existing=True)
    customer = db.session.scalar(query)
    if customer is None:
        abort(404)
    return customer


def lock_for_write(customer: Customer) -> Customer:
    """`customer`, row-locked until the request commits; 404 if an erasure got there first. FOR KEY SHARE:
    guide writes only insert rows about the customer, so the lock waits for an erasure and for nothing else (a
    bulk import, order ingest or a callback holding the customer)."""
    from customers.operations import lock_unerased

    customer = lock_unerased(customer, key_share=True)
    if customer is None:
        abort(404)
    return customer


class StoreScopeRefused(Exception):
    """The viewer may not see store figures, or picked a store that does not exist (`status`, a message in
    Chinese)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class StoreScope:
    """The store figures a manager or admin may see."""

    store_id: int | None  # one store; None: every store (an admin) unless `empty`
    code: str | None
    empty: bool = False  # a store manager without a store: nothing


def store_scope(guide: Guide, store_code: str | None = None) -> StoreScope:
    """The stores whose figures `guide` may see: a store manager their own store, whatever `store_code` asks
    (nothing without a store); an admin every store, or the one `store_code` names. Raises StoreScopeRefused:
    403 for a guide, 404 for an unknown code."""
    from tracking.funnels import store_id_for

    if guide.role not in ("manager", "admin"):
        raise StoreScopeRefused(403, "需要店长或总部权限")
    if guide.role == "manager":
        if guide.store_id is None:
            return StoreScope(None, None, empty=True)
        return StoreScope(guide.store_id, guide.store.code)
    try:
        return StoreScope(store_id_for(store_code), store_code or None)
    except LookupError:
        raise StoreScopeRefused(404, f"门店 {store_code} 不存在") from None
