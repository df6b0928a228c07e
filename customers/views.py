"""The admin API for personal data (head office only): `POST /api/admin/customers/find {"q"}` (who holds a
mobile, external_userid or member number, masked) and `POST /api/admin/customers/<id>/erase {"reason"}`."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from core.db import db
from core.http import json_error
from customers import erasure
from customers.tasks import erase_and_commit
from sidebar.auth import admin_required, csrf_required, current_guide, login_required

bp = Blueprint("customers_admin_api", __name__, url_prefix="/api/admin/customers")


@bp.post("/find")
@login_required
@csrf_required
@admin_required
def find():
    """The manager page's 顾客信息删除 panel looks the customer up here before erasing: masked data only, and
    each customer shown is audited in profile_views as a profile view is. A POST: the value (the mobile of
    the person asking to be erased) must not be in a URL, which access logs and browser history keep."""
    body = request.get_json(silent=True)
    q = body.get("q") if isinstance(body, dict) else None
    try:
        customers = erasure.find_for_erasure(q if isinstance(q, str) else "", viewer=current_guide(),
                                             ip=request.remote_addr)
    except ValueError:
        return json_error(400, "请输入顾客的手机号、external_userid 或会员号")
    db.session.commit()
    return jsonify(customers=customers)


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
        result = erase_and_commit(customer_id, actor=current_guide(), reason=reason)
    except erasure.CustomerNotFound:
        return json_error(404, "顾客不存在")
    except erasure.ErasureBusy:
        return json_error(409, "该顾客的资料正在被处理（企业微信消息或数据导入），请稍后重试删除")
    if result["already_erased"]:
        return jsonify({**result, "message": "该顾客的个人信息此前已删除，本次未做任何改动"})
    return jsonify({**result, "message": "已删除该顾客的个人信息；订单与业绩统计保留"})
