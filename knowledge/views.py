"""The suggestion API behind the sidebar: `GET /api/suggest` and `POST /api/suggest/feedback`."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from core.db import db
from core.http import json_error
from knowledge import service
from models.knowledge import SEND_SOURCES
from sidebar.auth import csrf_required, current_guide, login_required, visible_customer

bp = Blueprint("knowledge_api", __name__, url_prefix="/api")


@bp.get("/suggest")
@login_required
def suggest():
    guide = current_guide()
    customer = visible_customer(guide, request.args["customer"]) if request.args.get("customer") else None
    try:
        top = int(request.args.get("top", 5))
    except ValueError:
        return json_error(400, "top 必须是 1 到 20 之间的整数")
    try:
        result = service.suggest(request.args.get("q", ""), guide=guide, customer=customer, top=top)
    except service.EmptyQuery as exc:
        return json_error(400, str(exc))
    return jsonify(result)


@bp.post("/suggest/feedback")
@login_required
@csrf_required
def feedback():
    guide = current_guide()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return json_error(400, "请求体必须是 JSON 对象")
    script = body.get("script")
    if not isinstance(script, str) or not script.strip():
        return json_error(400, "缺少 script（发送的话术编号）")
    source = body.get("source", "suggested")
    if source not in SEND_SOURCES:
        return json_error(400, f"source 只能是 {'、'.join(SEND_SOURCES)} 之一")
    query = body.get("query")
    if query is not None and not isinstance(query, str):
        return json_error(400, "query 必须是文本")
    customer = visible_customer(guide, body["customer"], for_write=True) if body.get("customer") else None
    try:
        send = service.record_send(guide, script.strip(), query=query, customer=customer, source=source,
                                   edited=bool(body.get("edited")))
    except LookupError:
        return json_error(404, "话术不存在或已删除")
    db.session.commit()
    return jsonify(id=send.id, script=script.strip(), terms=send.terms), 201
