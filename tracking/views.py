"""`GET /c/<token>` (public: the customer's tap on a tracked link), the sidebar's
`POST /api/customers/<external_userid>/links` (a content item as a news card with a tracked link), and
`GET /api/reports/funnel` for managers and head office."""
from __future__ import annotations

from flask import Blueprint, jsonify, redirect, request

from core.db import db
from core.http import json_error, query_date
from core.timeutil import start_of
from sidebar.auth import StoreScopeRefused, current_guide, login_required, store_scope
from tracking import funnels
from tracking import operations as ops

bp = Blueprint("tracking", __name__)

NOT_FOUND_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>链接已失效</title>
<style>body{font-family:-apple-system,"PingFang SC","Microsoft YaHei",sans-serif;color:#333;text-align:center;
padding:20vh 24px 0}h1{font-size:20px;font-weight:600}p{color:#888;font-size:15px;line-height:1.6}</style>
</head><body><h1>抱歉，这个链接不存在或已失效</h1>
<p>请联系为您服务的导购，重新发送一次～</p></body></html>
"""


@bp.get("/c/<token>")
def open_link(token: str):
    if request.method == "HEAD":  # link previews probe with HEAD: not the customer
        link = ops.find_link(token)
    else:
        link = ops.record_open(token, user_agent=request.headers.get("User-Agent"))
        db.session.commit()
    if link is None:
        return NOT_FOUND_PAGE, 404, {"Content-Type": "text/html; charset=utf-8"}
    resp = redirect(link.target_url, code=302)
    resp.headers["Cache-Control"] = "no-store"  # every open must reach us
    resp.headers["Referrer-Policy"] = "no-referrer"  # the token stays out of the target's logs
    return resp


@bp.get("/api/reports/funnel")
@login_required
def funnel_report():
    """The funnel for managers (their own store) and head office (everyone, or ?store=CODE)."""
    try:
        scope = store_scope(current_guide(), request.args.get("store"))
    except StoreScopeRefused as exc:
        return json_error(exc.status, str(exc))
    if scope.empty:
        return json_error(403, "店长账号没有所属门店")
    by = request.args.get("by", "content")
    if by not in funnels.GROUPINGS:
        return json_error(400, f"by 只能是 {'、'.join(funnels.GROUPINGS)} 之一")
    bounds = {name: start_of(day) for name in ("since", "until")
              if (day := query_date(name, default=None)) is not None}
    return jsonify(by=by, rows=funnels.funnel(by, store_id=scope.store_id, **bounds))
