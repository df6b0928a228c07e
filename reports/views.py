"""The manager page `/manager/`: rankings per guide (and per store for admins), a 30-day trend chart
(ECharts, vendored) and CSV export. A store manager sees their own store; an admin sees every store; a guide
gets 403."""
from __future__ import annotations

import csv
import io
from datetime import date

from flask import Blueprint, Response, abort, jsonify, render_template, request

from core.timeutil import local_today
from reports import leaderboard as lb
from sidebar.auth import current_guide, login_required

bp = Blueprint("manager", __name__, url_prefix="/manager", template_folder="templates",
               static_folder="static", static_url_path="/static")

METRIC_LABELS = {"gmv": "业绩", "orders": "订单数", "commission": "提成", "new_customers": "新客",
                 "tasks_done": "完成任务", "completion_rate": "任务完成率", "messages_sent": "发送消息",
                 "coupons_sent": "发券", "coupons_redeemed": "核销券"}
PERIOD_LABELS = {"day": "日", "week": "周", "month": "月"}
CSV_FIELDS = ("rank", "userid", "name", "store", "new_customers", "tasks_done", "tasks_total", "completion_rate",
              "messages_sent", "coupons_sent", "coupons_redeemed", "orders", "gmv", "commission", "status")


def _manager():
    guide = current_guide()
    if guide.role not in ("manager", "admin"):
        abort(403)
    return guide


def _params():
    period = request.args.get("period", "day")
    metric = request.args.get("metric", "gmv")
    try:
        D = date.fromisoformat(request.args["date"]) if request.args.get("date") else local_today()
    except ValueError:
        abort(400, "date 不是有效日期（YYYY-MM-DD）")
    if period not in lb.PERIODS or metric not in lb.SORTABLE:
        abort(400, "period 或 metric 不正确")
    return period, D, metric


def _rankings(guide, period, D, metric):
    store_id = None if guide.role == "admin" else guide.store_id
    if guide.role != "admin" and store_id is None:
        return [], []
    rows = lb.guide_rows(period, D, metric=metric, store_id=store_id)
    stores = lb.store_rows(period, D, metric=metric) if guide.role == "admin" else []
    return rows, stores


@bp.get("/")
@login_required
def page():
    guide = _manager()
    period, D, metric = _params()
    rows, stores = _rankings(guide, period, D, metric)
    trend = lb.trend(30, D, store_id=None if guide.role == "admin" else guide.store_id)
    return render_template("manager.html", guide=guide, rows=rows, stores=stores, trend=trend, period=period,
                           date=D, metric=metric, metrics=METRIC_LABELS, periods=PERIOD_LABELS,
                           span=lb.span(period, D))


@bp.get("/data.json")
@login_required
def data():
    guide = _manager()
    period, D, metric = _params()
    rows, stores = _rankings(guide, period, D, metric)
    return jsonify(period=period, key=lb.span(period, D).key, metric=metric, guides=rows, stores=stores,
                   trend=lb.trend(30, D, store_id=None if guide.role == "admin" else guide.store_id))


@bp.get("/export.csv")
@login_required
def export():
    guide = _manager()
    period, D, metric = _params()
    rows, _ = _rankings(guide, period, D, metric)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    name = f"leaderboard-{period}-{lb.span(period, D).key}-{metric}.csv"
    # A BOM so Excel opens the Chinese names correctly.
    return Response("\ufeff" + buf.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
