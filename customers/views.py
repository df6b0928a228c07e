"""The admin API for personal data: `POST /api/admin/customers/<id>/erase {"reason"}` (head office only)."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from core.db import db
from core.http import json_error
from customers import erasure
from sidebar.auth import admin_required, csrf_required, current_guide, login_required

bp = Blueprint("customers_admin_api", __name__, url_prefix="/api/admin/customers")


@bp.post("/<int:customer_id>/erase")
@login_required
@csrf_required
@admin_required
def erase(customer_id: int):
    body = request.get_json(silent=True)
    reason = body.get("reason") if isinstance(body, dict) else None
    if not isinstance(reason, str) or not reason.strip():
        return json_error(400, "缺少 reason（删除原因，例如顾客的申请编号）")
    try:
        result = erasure.erase_customer(db.session, customer_id, actor=current_guide(), reason=reason)
    except erasure.CustomerNotFound:
        db.session.rollback()
        return json_error(404, "顾客不存在")
    db.session.commit()
    if result["already_erased"]:
        return jsonify({**result, "message": "该顾客的个人信息此前已删除，本次未做任何改动"})
    return jsonify({**result, "message": "已删除该顾客的个人信息；订单与业绩统计保留"})
