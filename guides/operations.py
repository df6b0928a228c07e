"""Staff departure (离职继承): hand a departing guide's customers to a receiver through WeCom's resigned-customer
transfer, move the binding and the open red dots, mark the guide left, keep every row of history.

The relation moves in our records when WeCom accepts the request (the receiver sees the customers and their
tasks at once; WeCom completes the takeover after 24 h). When WeCom later reports a failure (the poll of
resigned/transfer_result, or a `transfer_fail` callback: the customer refused, or the receiver is at the
cap), the move is undone — the customer stays in the departed guide's list, as in WeCom, where an admin can
hand them to someone else — and the store manager gets a red-dot task. Functions flush; the caller commits.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import and_, select

from bot.wecom_client import WeComError, get_wecom
from core.db import db
from core.timeutil import local_today, to_local, utcnow
from customers import operations as customers
from models import Customer, CustomerIdentity, CustomerTransfer, Follow, Guide, RedDot
from models.transfers import WECOM_RESULT_STATES

log = logging.getLogger(__name__)

BATCH = 100  # WeCom's limit per resigned/transfer_customer call
FAIL_REASONS = {"customer_refused": "refused", "customer_limit_exceed": "receiver_full"}
STATE_LABELS = {"waiting": "等待接替", "done": "已接替", "refused": "顾客拒绝", "receiver_full": "接替人客户数已达上限",
                "no_record": "无接替记录", "failed": "企业微信拒绝了转接请求", "erased": "顾客已注销"}
TRANSFER_STATE_PREFIX = "transfer:"


class OffboardError(ValueError):
    """Bad offboarding input; the message names the problem."""


def _guide(userid: str, what: str) -> Guide:
    guide = db.session.scalar(select(Guide).where(Guide.userid == userid))
    if guide is None:
        raise OffboardError(f"unknown {what}: {userid!r}")
    return guide


def _live_customers(guide: Guide) -> list[tuple[Follow, Customer, str]]:
    rows = db.session.execute(
        select(Follow, Customer, CustomerIdentity.value)
        .join(Customer, Customer.id == Follow.customer_id)
        .join(CustomerIdentity, and_(CustomerIdentity.customer_id == Customer.id,
                                     CustomerIdentity.kind == "external_userid"))
        .where(Follow.guide_id == guide.id, Follow.ended_at.is_(None))
        .order_by(Follow.added_at, Follow.id)).all()
    seen, out = set(), []
    for follow, customer, ext in rows:  # one WeCom identity per customer is enough
        if customer.id not in seen:
            seen.add(customer.id)
            out.append((follow, customer, ext))
    return out


def offboard(handover_userid: str, takeover_userid: str, *, now: datetime | None = None) -> dict:
    """Transfer every customer the departing guide still follows to the receiver (100 per WeCom call), move
    their binding and the open tasks, mark the departing guide left. A re-run retries only what is still
    with the departing guide. Returns {"customers", "accepted", "failed": [{external_userid, errcode,
    reason}], "calls", "tasks_moved"}."""
    now = now or utcnow()
    if handover_userid == takeover_userid:
        raise OffboardError("the receiver must be another guide (--to is the departing guide)")
    handover = _guide(handover_userid, "departing guide")
    takeover = _guide(takeover_userid, "receiver")
    if takeover.status != "active":
        raise OffboardError(f"the receiver {takeover_userid!r} has left; choose an active guide")
    wecom = get_wecom()
    todo = _live_customers(handover)
    manager = store_manager(handover) if todo else None  # who gets a task about each customer WeCom refuses
    accepted, failed, calls, moved_ids = 0, [], 0, []
    for start in range(0, len(todo), BATCH):
        batch = todo[start:start + BATCH]
        calls += 1
        received = {f.customer_id: f for f in db.session.scalars(select(Follow).where(
            Follow.guide_id == takeover.id, Follow.customer_id.in_([c.id for _, c, _ in batch])))}
        try:
            answer = wecom.resigned_transfer_customer(handover.userid, takeover.userid, [e for _, _, e in batch])
            results = {r.get("external_userid"): int(r.get("errcode", 0) or 0) for r in answer.get("customer", [])}
        except WeComError as exc:  # the whole call failed: these stay with the departing guide for a re-run
            log.warning("resigned transfer %s -> %s failed: %s", handover.userid, takeover.userid, exc.errcode)
            results = {e: exc.errcode if exc.errcode is not None else -1 for _, _, e in batch}
            whole_call = exc.user_message
        else:
            whole_call = None
        for follow, customer, ext in batch:
            errcode = results.get(ext, -1)
            row = CustomerTransfer(handover_guide_id=handover.id, takeover_guide_id=takeover.id,
                                   customer_id=customer.id, external_userid=ext, requested_at=now)
            db.session.add(row)
            if errcode == 0:
                row.status = "waiting"
                _move(follow, customer, handover, takeover, now, received=received.get(customer.id))
                moved_ids.append(customer.id)
                accepted += 1
                continue
            row.status, row.errcode, row.settled_at = "failed", errcode, now
            reason = whole_call or WeComError(errcode).user_message
            row.fail_reason = str(errcode)
            failed.append({"external_userid": ext, "errcode": errcode, "reason": reason})
            if whole_call is None:  # WeCom refused this customer: someone has to look at it
                _raise_manager_task(customer, handover, takeover, reason, now, manager)
    moved = move_open_tasks(handover, takeover, now, customer_ids=moved_ids)
    if handover.status != "left":
        handover.status, handover.left_at = "left", now
    db.session.flush()
    return {"customers": len(todo), "accepted": accepted, "failed": failed, "calls": calls, "tasks_moved": moved}


def _move(follow: Follow, customer: Customer, handover: Guide, takeover: Guide, now: datetime, *,
          received: Follow | None) -> None:
    """`received`: the receiver's own relation with the customer, if any (looked up for the whole batch)."""
    # The receiver inherits the relation's date, so the binding (earliest live relation) moves with it and
    # the inherited customers are not counted as the receiver's new customers.
    customers.end_follow(handover, customer, ended_at=now, ended_by="transfer")
    if received is None or received.ended_at is not None:
        customers.open_follow(takeover, customer, added_at=follow.added_at,
                              state=f"{TRANSFER_STATE_PREFIX}{handover.userid}", remark=follow.remark,
                              description=follow.description)
        if received is not None:
            received.added_at = min(received.added_at, follow.added_at)
            customers.refresh_binding(customer)
    customers.record_event(customer, "guide_transfer", occurred_at=now, channel="wecom", guide=takeover,
                           payload={"from": handover.userid, "to": takeover.userid})


def move_open_tasks(handover: Guide, takeover: Guide, now: datetime, *, customer_ids: list[int]) -> int:
    """Today's and later open red dots about the transferred customers go to the receiver; one the receiver
    already has is closed as handed over. Tasks about customers WeCom refused stay (the manager has one)."""
    today = local_today()
    mine = []
    for i in range(0, len(customer_ids), 1000):
        mine += db.session.scalars(select(RedDot).where(
            RedDot.guide_id == handover.id, RedDot.status == "open", RedDot.task_date >= today,
            RedDot.customer_id.in_(customer_ids[i:i + 1000]))).all()
    theirs = set(db.session.execute(select(RedDot.customer_id, RedDot.rule, RedDot.task_date).where(
        RedDot.guide_id == takeover.id, RedDot.task_date >= today)).all())
    moved = 0
    for task in mine:
        if (task.customer_id, task.rule, task.task_date) in theirs:
            task.status, task.skip_reason, task.done_at = "skipped", f"已转交{takeover.name}", now
            continue
        task.guide_id = takeover.id
        task.details = {**(task.details or {}), "handed_over_from": handover.userid}
        moved += 1
    db.session.flush()
    return moved


def store_manager(guide: Guide) -> Guide | None:
    """Who deals with a failed transfer: an active manager of the guide's store, else an active admin; never
    the guide themselves (a departing manager is still active while their customers are handed over)."""
    q = select(Guide).where(Guide.status == "active", Guide.id != guide.id)
    if guide.store_id is not None:
        found = db.session.scalar(q.where(Guide.role == "manager", Guide.store_id == guide.store_id)
                                  .order_by(Guide.id))
        if found is not None:
            return found
    return db.session.scalar(q.where(Guide.role == "admin").order_by(Guide.id))


def _raise_manager_task(customer: Customer, handover: Guide, takeover: Guide, reason: str, now: datetime,
                        manager: Guide | None) -> RedDot | None:
    """`manager`: `store_manager(handover)`, which the caller looks up (once per offboarding, once per store
    in a poll)."""
    if manager is None:
        log.warning("transfer of customer %s failed and no manager or admin can take it", customer.id)
        return None
    D = to_local(now).date()
    task = db.session.scalar(select(RedDot).where(RedDot.guide_id == manager.id, RedDot.customer_id == customer.id,
                                                  RedDot.rule == "transfer_fail", RedDot.task_date == D))
    text = f"离职继承失败：{customer.name or '顾客'}未能从{handover.name}转给{takeover.name}（{reason}），请安排导购跟进"
    if task is None:
        task = RedDot(guide_id=manager.id, customer_id=customer.id, rule="transfer_fail", task_date=D,
                      priority=95, value=customer.total_spend or 0, rank=0, visible=True, reason=text[:200],
                      details={"from": handover.userid, "to": takeover.userid})
        db.session.add(task)
    else:
        task.status, task.reason = "open", text[:200]
    db.session.flush()
    return task


def _store_managers() -> Callable[[Guide], Guide | None]:
    """`store_manager`, asked once per store: a poll settles the failures of many guides of a few stores. A
    departing manager or admin is asked for on their own (the answer is never themselves)."""
    found: dict[tuple[int | None, int], Guide | None] = {}

    def manager_of(guide: Guide) -> Guide | None:
        key = (guide.store_id, guide.id if guide.role in ("manager", "admin") else 0)
        if key not in found:
            found[key] = store_manager(guide)
        return found[key]

    return manager_of


def _settle(row: CustomerTransfer, status: str, now: datetime, manager_of: Callable[[Guide], Guide | None], *,
            reason: str | None = None) -> None:
    """Record WeCom's verdict; a failure undoes the move and raises the task of `manager_of(handover)`."""
    if row.status == status:
        return
    row.status, row.settled_at = status, now
    if status == "done":
        row.takeover_at = now
        return
    if status == "waiting":
        return
    row.fail_reason = reason or status
    customer = db.session.get(Customer, row.customer_id)
    handover, takeover = db.session.get(Guide, row.handover_guide_id), db.session.get(Guide, row.takeover_guide_id)
    received = db.session.scalar(select(Follow).where(Follow.guide_id == takeover.id,
                                                      Follow.customer_id == customer.id))
    if received is not None and (received.state or "").startswith(TRANSFER_STATE_PREFIX):
        customers.end_follow(takeover, customer, ended_at=now, ended_by="transfer")
    back = db.session.scalar(select(Follow).where(Follow.guide_id == handover.id, Follow.customer_id == customer.id))
    if back is not None and back.ended_by == "transfer":  # still in the departed guide's WeCom list
        back.ended_at, back.ended_by = None, None
        db.session.flush()
        customers.refresh_binding(customer)
    customers.record_event(customer, "guide_transfer_failed", occurred_at=now, channel="wecom", guide=takeover,
                           payload={"from": handover.userid, "to": takeover.userid, "status": status})
    _raise_manager_task(customer, handover, takeover, STATE_LABELS.get(status, status), now, manager_of(handover))


def poll_transfers(*, now: datetime | None = None) -> dict:
    """Ask WeCom how the waiting transfers went (resigned/transfer_result, following its cursor) and settle
    them. Returns {"checked", "done", "failed", "waiting"}."""
    now = now or utcnow()
    pairs = db.session.execute(select(CustomerTransfer.handover_guide_id, CustomerTransfer.takeover_guide_id)
                               .where(CustomerTransfer.status == "waiting").distinct()).all()
    wecom = get_wecom()
    out = {"checked": 0, "done": 0, "failed": 0, "waiting": 0}
    manager_of = _store_managers()
    for handover_id, takeover_id in pairs:
        handover, takeover = db.session.get(Guide, handover_id), db.session.get(Guide, takeover_id)
        waiting = {r.external_userid: r for r in db.session.scalars(select(CustomerTransfer).where(
            CustomerTransfer.handover_guide_id == handover_id, CustomerTransfer.takeover_guide_id == takeover_id,
            CustomerTransfer.status == "waiting"))}
        cursor = ""
        while True:
            answer = wecom.resigned_transfer_result(handover.userid, takeover.userid, cursor)
            for item in answer.get("customer", []):
                row = waiting.pop(item.get("external_userid"), None)
                if row is None:
                    continue
                out["checked"] += 1
                status = WECOM_RESULT_STATES.get(int(item.get("status", 2)), "waiting")
                _settle(row, status, now, manager_of)
                out["done" if status == "done" else "waiting" if status == "waiting" else "failed"] += 1
            cursor = answer.get("next_cursor") or ""
            if not cursor:
                break
        out["waiting"] += len(waiting)  # WeCom did not mention them yet
    db.session.flush()
    return out


def transfer_failed(customer: Customer, userid: str | None, fail_reason: str | None, *,
                    now: datetime | None = None) -> CustomerTransfer | None:
    """A `transfer_fail` callback: settle the customer's latest open transfer as failed (undo the move and
    raise the manager's task). Without a transfer on record, the store manager still gets a task."""
    now = now or utcnow()
    status = FAIL_REASONS.get(fail_reason or "", "refused")
    q = select(CustomerTransfer).where(CustomerTransfer.customer_id == customer.id,
                                       CustomerTransfer.status.in_(("waiting", "done")))
    row = db.session.scalar(q.order_by(CustomerTransfer.requested_at.desc(), CustomerTransfer.id.desc()))
    if row is not None:
        _settle(row, status, now, store_manager, reason=fail_reason)
        db.session.flush()
        return row
    guide = db.session.scalar(select(Guide).where(Guide.userid == userid)) if userid else None
    if guide is not None:
        _raise_manager_task(customer, guide, guide, STATE_LABELS[status], now, store_manager(guide))
    return None


def transfers_of(userid: str) -> list[dict]:
    """A departing guide's transfers, newest first (the CLI and the admin API show them)."""
    guide = _guide(userid, "guide")
    takeover = Guide.__table__.alias("takeover")
    rows = db.session.execute(
        select(CustomerTransfer, takeover.c.userid, Customer.name)
        .join(takeover, takeover.c.id == CustomerTransfer.takeover_guide_id)
        .join(Customer, Customer.id == CustomerTransfer.customer_id)
        .where(CustomerTransfer.handover_guide_id == guide.id)
        .order_by(CustomerTransfer.requested_at.desc(), CustomerTransfer.id)).all()
    return [{"external_userid": t.external_userid, "customer_name": name, "to": to, "status": t.status,
             "status_label": STATE_LABELS.get(t.status, t.status), "errcode": t.errcode,
             "requested_at": t.requested_at.isoformat(),
             "settled_at": t.settled_at.isoformat() if t.settled_at else None} for t, to, name in rows]
