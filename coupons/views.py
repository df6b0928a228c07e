"""The sidebar's 优惠券 tab (JSON) and the page a customer opens from the coupon link."""
from __future__ import annotations

from flask import Blueprint, abort, jsonify, render_template, request
from sqlalchemy import select

from core.db import db
from core.http import json_error
from coupons import operations as ops
from models import Coupon
from sidebar.auth import csrf_required, current_guide, login_required, visible_customer

bp = Blueprint("coupons", __name__, template_folder="templates")


@bp.get("/api/customers/<external_userid>/coupons")
@login_required
def customer_coupons(external_userid: str):
    customer = visible_customer(current_guide(), external_userid)
    return jsonify(ops.available_for(customer))


@bp.post("/api/customers/<external_userid>/coupons")
@login_required
@csrf_required
def issue_coupon(external_userid: str):
    guide = current_guide()
    customer = visible_customer(guide, external_userid, for_write=True)
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("template"), str) or not body["template"].strip():
        return json_error(400, "请求体需要 template（券模板编号）")
    try:
        coupon = ops.issue(body["template"].strip(), customer, guide)
    except LookupError:
        db.session.rollback()
        return json_error(404, "没有这个优惠券")
    except ops.CouponRefused as exc:
        db.session.rollback()
        return json_error(409, exc.reason, code=exc.code)
    from tracking.operations import create_tracked_link

    # The link sent is a tracked redirect to the coupon page: its opens count in the funnels (tracking/).
    link = create_tracked_link(guide, customer, coupon=coupon.code, url=ops.coupon_link(coupon.code)).url
    out = ops.coupon_json(coupon)
    out["link"], out["page"] = link, ops.coupon_link(coupon.code)
    out["text"] = ops.chat_text(coupon, link)
    db.session.commit()
    return jsonify(out), 201


@bp.get("/coupons/<code>")
def coupon_page(code: str):
    """Public: whoever holds the code sees the coupon (the code is the secret, as on a paper coupon)."""
    if not code.isalnum() or len(code) > 32:
        abort(404)
    coupon = db.session.scalar(select(Coupon).where(Coupon.code == code.upper()))
    if coupon is None:
        abort(404)
    return render_template("coupon.html", c=ops.coupon_json(coupon), t=coupon.template)
