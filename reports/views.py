"""The manager page `/manager/`, for a store manager on a phone in WeCom and for head office on a desktop,
styled with the sidebar's vendored WeUI. Five sections (`?tab=`): 排行 (rankings per guide, and per store for
admins), 趋势 (a 30-day trend chart, ECharts, vendored), 内容效果 (the funnel per content item), 话术效果 (each
script's sends and the orders that followed within 7 days) and 导购漏斗 (the funnel per guide); every table
exports as CSV (`/manager/export/<table>.csv`, UTF-8 with a BOM for Excel). A store manager sees their own
store; an admin sees every store, or one with `?store=CODE`; a guide gets 403."""
from __future__ import annotations

import csv
import io
from datetime import date, timedelta

from flask import Blueprint, Response, abort, jsonify, redirect, render_template, request
from sqlalchemy import select

from core.db import db
from core.http import query_date
from core.timeutil import local_today
from models import Store
from reports import leaderboard as lb
from sidebar.auth import current_guide, login_required
from tracking import funnels

bp = Blueprint("manager", __name__, url_prefix="/manager", template_folder="templates",
               static_folder="static", static_url_path="/static")

METRIC_LABELS = {"gmv": "业绩", "orders": "订单数", "commission": "提成", "new_customers": "新客",
                 "tasks_done": "完成任务", "completion_rate": "任务完成率", "messages_sent": "发送消息",
                 "coupons_sent": "发券", "coupons_redeemed": "核销券"}
PERIOD_LABELS = {"day": "日", "week": "周", "month": "月"}
TABS = {"rank": "排行", "trend": "趋势", "content": "内容效果", "scripts": "话术效果", "guides": "导购漏斗"}
CSV_FIELDS = ("rank", "userid", "name", "store", "new_customers", "tasks_done", "tasks_total", "completion_rate",
              "messages_sent", "coupons_sent", "coupons_redeemed", "orders", "gmv", "commission", "status")
FUNNEL_FIELDS = ("key", "label", "sent", "opened", "opens", "converted", "orders", "gmv", "open_rate",
                 "conversion_rate")
# The tables the page shows, as CSV: {table: (fields, file name prefix)}.
EXPORTS = {"rank": (CSV_FIELDS, "leaderboard"),
           "stores": (("rank", "store", "name", "new_customers", "tasks_done", "tasks_total", "completion_rate",
                       "messages_sent", "coupons_sent", "coupons_redeemed", "orders", "gmv", "commission"),
                      "stores"),
           "trend": (("date", "orders", "gmv", "commission"), "trend"),
           "content": (FUNNEL_FIELDS, "content-funnel"),
           "scripts": (("external_id", "title", "category", "sends", "customers", "converted", "orders", "gmv",
                        "conversion_rate"), "scripts"),
           "guides": (FUNNEL_FIELDS, "guide-funnel")}


def _manager():
    guide = current_guide()
    if guide.role not in ("manager", "admin"):
        abort(403)
    return guide


def _params(*, page: bool = True):
    period = request.args.get("period", "day")
    metric = request.args.get("metric", "gmv")
    D = query_date(page=page)
    if period not in lb.PERIODS or metric not in lb.SORTABLE:
        abort(400, "period 或 metric 不正确")
    return period, D, metric


def _store_scope(guide) -> tuple[int | None, str | None]:
    """(store id, store code) the viewer looks at: a manager their own store, whatever the URL says; an admin
    every store (None) or the one ?store=CODE names (404 for an unknown code)."""
    if guide.role != "admin":
        return guide.store_id, guide.store.code if guide.store else None
    code = request.args.get("store") or None
    try:
        return funnels.store_id_for(code), code
    except LookupError:
        abort(404, f"门店 {code} 不存在")


def _rankings(guide, period, D, metric, store_id):
    if guide.role != "admin" and store_id is None:
        return [], []
    rows = lb.guide_rows(period, D, metric=metric, store_id=store_id)
    stores = lb.store_rows(period, D, metric=metric) if guide.role == "admin" and store_id is None else []
    return rows, stores


def _table(guide, table: str, period: str, D: date, metric: str, store_id: int | None) -> list[dict]:
    """The rows of one table of the page, for the viewer's scope. Funnels and script figures cover what was
    sent in the chosen period (a day, week or month); conversions may come up to 7 days later."""
    if guide.role != "admin" and store_id is None:  # a manager without a store sees nothing
        return []
    s = lb.span(period, D)
    if table == "rank":
        return _rankings(guide, period, D, metric, store_id)[0]
    if table == "stores":
        return _rankings(guide, period, D, metric, store_id)[1]
    if table == "trend":
        return lb.trend(30, D, store_id=store_id)
    if table == "content":
        return funnels.funnel("content", since=s.start_utc, until=s.end_utc, store_id=store_id)
    if table == "guides":
        return funnels.funnel("guide", since=s.start_utc, until=s.end_utc, store_id=store_id)
    if table == "scripts":
        return funnels.script_stats(since=s.start_utc, until=s.end_utc, store_id=store_id)
    abort(404)


@bp.get("/")
def page():
    if current_guide() is None:  # a page, not an API: send the browser to sign in
        from sidebar.auth import _login_path

        return redirect(_login_path())
    guide = _manager()
    period, D, metric = _params()
    tab = request.args.get("tab", "rank")
    if tab not in TABS:
        abort(400, f"tab 只能是 {'、'.join(TABS)} 之一")
    store_id, store_code = _store_scope(guide)
    tables = {"rank": ("rank", "stores"), "trend": ("trend",), "content": ("content",), "scripts": ("scripts",),
              "guides": ("guides",)}[tab]
    if tab == "rank" and (guide.role == "admin" or store_id is not None):  # both tables from one ranking
        rows, stores = _rankings(guide, period, D, metric, store_id)
        data = {"rank": rows, "stores": stores}
    else:
        data = {t: _table(guide, t, period, D, metric, store_id) for t in tables}
    query = {"period": period, "date": D.isoformat(), "metric": metric}
    if guide.role == "admin" and store_code:
        query["store"] = store_code
    all_stores = (db.session.execute(select(Store.code, Store.name).order_by(Store.code)).all()
                  if guide.role == "admin" else [])
    s = lb.span(period, D)
    return render_template("manager.html", guide=guide, tab=tab, tabs=TABS, data=data, query=query,
                           period=period, date=D, metric=metric, metrics=METRIC_LABELS, periods=PERIOD_LABELS,
                           span=s, last_day=s.end - timedelta(days=1), prev_date=s.first - timedelta(days=1),
                           next_date=s.end, today=local_today(), store_code=store_code, all_stores=all_stores,
                           scope_name=_scope_name(guide, store_code, all_stores))


def _scope_name(guide, store_code, all_stores) -> str:
    if guide.role != "admin":
        return guide.store.name if guide.store else ""
    if not store_code:
        return "全部门店"
    return next((name for code, name in all_stores if code == store_code), store_code)


@bp.get("/data.json")
@login_required
def data():
    guide = _manager()
    period, D, metric = _params(page=False)
    store_id, _ = _store_scope(guide)
    rows, stores = _rankings(guide, period, D, metric, store_id)
    return jsonify(period=period, key=lb.span(period, D).key, metric=metric, guides=rows, stores=stores,
                   trend=_table(guide, "trend", period, D, metric, store_id))


def _csv(table: str, rows: list[dict], name: str) -> Response:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=EXPORTS[table][0], extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    # A BOM so Excel opens the Chinese names correctly.
    return Response("\ufeff" + buf.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.get("/export.csv")
@login_required
def export():
    return export_table("rank")


@bp.get("/export/<table>.csv")
@login_required
def export_table(table: str):
    guide = _manager()
    if table not in EXPORTS:
        abort(404)
    period, D, metric = _params()
    store_id, store_code = _store_scope(guide)
    rows = _table(guide, table, period, D, metric, store_id)
    name = f"{EXPORTS[table][1]}-{period}-{lb.span(period, D).key}"
    if table == "rank":
        name += f"-{metric}"
    if store_code:
        name += f"-{store_code}"
    return _csv(table, rows, name + ".csv")
