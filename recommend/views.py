"""`GET /api/customers/<external_userid>/recommendations?top=5` for the sidebar's 客户 tab."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from recommend import operations as ops
from sidebar.auth import current_guide, login_required, visible_customer

bp = Blueprint("recommend_api", __name__, url_prefix="/api")


@bp.get("/customers/<external_userid>/recommendations")
@login_required
def recommendations(external_userid: str):
    customer = visible_customer(current_guide(), external_userid)
    try:
        top = int(request.args.get("top", 5))
        if not 1 <= top <= 20:
            raise ValueError
    except ValueError:
        resp = jsonify(error="top 必须是 1 到 20 之间的整数")
        resp.status_code = 400
        return resp
    return jsonify(customer=external_userid, recommendations=ops.recommend(customer, top=top))
