"""`GET /api/customers/<external_userid>/recommendations?top=5` for the sidebar's 客户 tab, and
`POST …/recommendations/<sku>/send`: one product into the chat, counted as a marketing touch."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from core.db import db
from core.http import json_error
from recommend import operations as ops
from sidebar.auth import csrf_required, current_guide, login_required, visible_customer

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
        return json_error(400, "top 必须是 1 到 20 之间的整数")
    return jsonify(customer=external_userid, recommendations=ops.recommend(customer, top=top))


@bp.post("/customers/<external_userid>/recommendations/<sku>/send")
@login_required
@csrf_required
def send_recommendation(external_userid: str, sku: str):
    """Check the touch caps and count a marketing touch, then hand the page the text to send into the chat."""
    from customers.operations import record_event
    from tasks import quota

    guide = current_guide()
    customer = visible_customer(guide, external_userid, for_write=True)
    product = ops.product_by_sku(sku)
    if product is None:
        return json_error(404, "商品不存在或已下架")
    try:
        quota.record_touch(customer, guide, kind="marketing", channel="product", ref=product.sku)
    except quota.TouchRefused as exc:
        db.session.rollback()
        return json_error(409, exc.reason, code=exc.code, quota=quota.quota(customer))
    record_event(customer, "product_sent", channel="wecom", guide=guide,
                 payload={"title": product.name, "sku": product.sku})
    db.session.commit()
    text = ops.product_message(product)
    return jsonify(message={"msgtype": "text", "enterChat": True, "text": {"content": text}},
                   quota=quota.quota(customer)), 201
