"""The JSON API of the sidebar's 任务 tab and of the touch caps: today's tasks, done / skip in one tap, the
customer's remaining marketing quota, and recording a touch (refused with the reason when over a cap)."""
from __future__ import annotations

from datetime import datetime

from flask import Blueprint, jsonify, request

from core.db import db
from core.http import json_error, query_date
from core.timeutil import app_tz, utcnow
from sidebar.auth import csrf_required, current_guide, login_required, visible_customer
from tasks import operations as ops
from tasks import quota

bp = Blueprint("tasks_api", __name__, url_prefix="/api")

CHANNELS = ("script", "content", "coupon", "product", "task", "mass", "other")


def menu_focus(now: datetime) -> str:
    """What leads the guide's menu now: morning tools and content, red dots from 09:00, the ranking at night."""
    local = now.astimezone(app_tz())
    if local.hour < 9:
        return "content"
    if local.hour < 18:
        return "tasks"
    return "ranking"


@bp.get("/tasks")
@login_required
def tasks_today():
    guide = current_guide()
    D = query_date()
    customer = visible_customer(guide, request.args["customer"]) if request.args.get("customer") else None
    tasks = ops.list_tasks(D, guide=guide, customer_id=customer.id if customer else None)
    # The summary is of the guide's whole day: counted from the list when that is what it holds.
    summary = ops.summary(D, guide) if customer else ops.summary_of(tasks)
    return jsonify(date=D.isoformat(), summary=summary, tasks=tasks, focus=menu_focus(utcnow()))


@bp.post("/tasks/<int:task_id>/<any(done, skip):action>")
@login_required
@csrf_required
def close(task_id: int, action: str):
    body = request.get_json(silent=True) or {}
    try:
        task = ops.close_task(task_id, current_guide(), status="done" if action == "done" else "skipped",
                              reason=body.get("reason") if isinstance(body, dict) else None)
    except LookupError:
        return json_error(404, "任务不存在")
    except ops.TaskInputError as exc:
        return json_error(400, str(exc))
    except ops.TaskClosed as exc:
        return json_error(409, str(exc), id=task_id, status=exc.status)  # the task's state, for the screen
    db.session.commit()
    return jsonify(id=task.id, status=task.status, skip_reason=task.skip_reason)


@bp.get("/customers/<external_userid>/quota")
@login_required
def customer_quota(external_userid: str):
    customer = visible_customer(current_guide(), external_userid)
    return jsonify(quota.quota(customer))


@bp.post("/customers/<external_userid>/touches")
@login_required
@csrf_required
def record_touch(external_userid: str):
    guide = current_guide()
    customer = visible_customer(guide, external_userid, for_write=True)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return json_error(400, "请求体必须是 JSON 对象")
    kind, channel = body.get("kind", "marketing"), body.get("channel", "other")
    if kind not in ("marketing", "service"):
        return json_error(400, "kind 只能是 marketing（营销）或 service（服务）")
    if channel not in CHANNELS:
        return json_error(400, f"channel 只能是 {'、'.join(CHANNELS)} 之一")
    ref = body.get("ref")
    if ref is not None and (not isinstance(ref, str) or len(ref) > 100):
        return json_error(400, "ref 必须是不超过100字的文本")
    try:
        touch = quota.record_touch(customer, guide, kind=kind, channel=channel, ref=ref)
    except quota.TouchRefused as exc:
        db.session.rollback()
        return json_error(409, exc.reason, code=exc.code, quota=quota.quota(customer))
    db.session.commit()
    return jsonify(id=touch.id, quota=quota.quota(customer)), 201
