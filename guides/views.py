"""The admin API: `POST /api/admin/guides/<userid>/offboard {"to"}` and `GET /api/admin/guides/<userid>/transfers`."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from bot.wecom_client import WeComError
from core.db import db
from core.http import json_error
from guides import operations as ops
from sidebar.auth import admin_required, csrf_required, login_required

bp = Blueprint("guides_admin_api", __name__, url_prefix="/api/admin/guides")


@bp.post("/<userid>/offboard")
@login_required
@csrf_required
@admin_required
def offboard(userid: str):
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("to"), str) or not body["to"].strip():
        return json_error(400, "缺少 to（接替导购的企业微信账号）")
    try:
        result = ops.offboard(userid, body["to"].strip())
    except ops.OffboardError as exc:
        db.session.rollback()
        return json_error(404 if str(exc).startswith("unknown") else 400, str(exc))
    except WeComError as exc:
        db.session.rollback()
        return json_error(502, exc.user_message)
    db.session.commit()
    return jsonify(result)


@bp.get("/<userid>/transfers")
@login_required
@admin_required
def transfers(userid: str):
    try:
        return jsonify(transfers=ops.transfers_of(userid))
    except ops.OffboardError as exc:
        return json_error(404, str(exc))
