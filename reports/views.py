"""The manager page `/manager/`, for a store manager on a phone in WeCom and for head office on a desktop,
styled with the sidebar's vendored WeUI. Five sections (`?tab=`): 排行 (rankings per guide, and per store for
admins), 趋势 (a 30-day trend chart, ECharts, vendored), 内容效果 (the funnel per content item), 话术效果 (each
script's sends and the orders that followed within 7 days) and 导购漏斗 (the funnel per guide); every table
exports as CSV (`/manager/export/<table>.csv`, UTF-8 with a BOM for Excel). A store manager sees their own
store; an admin sees every store, or one with `?store=CODE`; a guide gets 403.

Head office (admins only) also gets, under every section, 顾客信息删除: find a customer by the mobile,
external_userid or member number they gave (`POST /api/admin/customers/find`, masked) and erase their personal
data (`POST /api/admin/customers/<id>/erase`, docs/privacy.md); and 资料导入 (`/manager/import`): upload a library file (话术/素材库, 优惠券模板,
提成比例, 任务玩法) and see what the `… import` command would print (its reasons in Chinese:
`reports.import_reasons`), and download each library in the formats its import reads
(`/manager/library/<library>.<format>`); see `imports.library`."""
from __future__ import annotations

import csv
import functools
import io
import logging
import re
import tempfile
from datetime import date, timedelta
from pathlib import Path

from flask import Blueprint, Response, abort, jsonify, render_template, request, send_file
from sqlalchemy import select

from core.db import db
from core.http import query_date
from core.timeutil import local_today
from imports import library
from imports.files import ImportRejected, guard_cell
from models import Store
from reports import leaderboard as lb
from reports.import_reasons import in_chinese, place
from sidebar.auth import (StoreScope, StoreScopeRefused, csrf_required, csrf_token, current_guide, login_required,
                          page_login_required, store_scope)
from tracking import funnels

log = logging.getLogger(__name__)

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


def _viewer() -> tuple:
    """(guide, StoreScope): the manager or admin asking and the stores they may see (a manager their own
    store, an admin all or ?store=CODE); 403 for anyone else, 404 for an unknown code."""
    guide = current_guide()
    try:
        return guide, store_scope(guide, request.args.get("store"))
    except StoreScopeRefused as exc:
        abort(exc.status, str(exc))


def _params(*, page: bool = True):
    period = request.args.get("period", "day")
    metric = request.args.get("metric", "gmv")
    D = query_date(page=page)
    if period not in lb.PERIODS or metric not in lb.SORTABLE:
        abort(400, "period 或 metric 不正确")
    return period, D, metric


def _rankings(guide, period, D, metric, scope: StoreScope):
    if scope.empty:
        return [], []
    rows = lb.guide_rows(period, D, metric=metric, store_id=scope.store_id)
    stores = lb.store_rows(period, D, metric=metric) if guide.role == "admin" and scope.store_id is None else []
    return rows, stores


def _table(guide, table: str, period: str, D: date, metric: str, scope: StoreScope) -> list[dict]:
    """The rows of one table of the page, for the viewer's scope (nothing for a manager without a store).
    Funnels and script figures cover what was sent in the chosen period (a day, week or month); conversions
    may come up to 7 days later."""
    if scope.empty:
        return []
    s, store_id = lb.span(period, D), scope.store_id
    if table == "rank":
        return _rankings(guide, period, D, metric, scope)[0]
    if table == "stores":
        return _rankings(guide, period, D, metric, scope)[1]
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
@page_login_required
def page():
    guide, scope = _viewer()
    period, D, metric = _params()
    tab = request.args.get("tab", "rank")
    if tab not in TABS:
        abort(400, f"tab 只能是 {'、'.join(TABS)} 之一")
    tables = {"rank": ("rank", "stores"), "trend": ("trend",), "content": ("content",), "scripts": ("scripts",),
              "guides": ("guides",)}[tab]
    if tab == "rank":  # both tables from one ranking
        rows, stores = _rankings(guide, period, D, metric, scope)
        data = {"rank": rows, "stores": stores}
    else:
        data = {t: _table(guide, t, period, D, metric, scope) for t in tables}
    query = {"period": period, "date": D.isoformat(), "metric": metric}
    store_code = scope.code
    if guide.role == "admin" and store_code:
        query["store"] = store_code
    all_stores = (db.session.execute(select(Store.code, Store.name).order_by(Store.code)).all()
                  if guide.role == "admin" else [])
    s = lb.span(period, D)
    return render_template("manager.html", guide=guide, tab=tab, tabs=TABS, data=data, query=query,
                           period=period, date=D, metric=metric, metrics=METRIC_LABELS, periods=PERIOD_LABELS,
                           span=s, last_day=s.end - timedelta(days=1), prev_date=s.first - timedelta(days=1),
                           next_date=s.end, today=local_today(), store_code=store_code, all_stores=all_stores,
                           scope_name=_scope_name(guide, store_code, all_stores),
                           csrf=csrf_token() if guide.role == "admin" else None)


def _scope_name(guide, store_code, all_stores) -> str:
    if guide.role != "admin":
        return guide.store.name if guide.store else ""
    if not store_code:
        return "全部门店"
    return next((name for code, name in all_stores if code == store_code), store_code)


@bp.get("/data.json")
@login_required
def data():
    guide, scope = _viewer()
    period, D, metric = _params(page=False)
    rows, stores = _rankings(guide, period, D, metric, scope)
    return jsonify(period=period, key=lb.span(period, D).key, metric=metric, guides=rows, stores=stores,
                   trend=_table(guide, "trend", period, D, metric, scope))


def _csv(table: str, rows: list[dict], name: str) -> Response:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=EXPORTS[table][0], extrasaction="ignore")
    w.writeheader()
    # Names, titles and labels come from guides, WeCom and the libraries: one Excel would run as a formula
    # (= + - @ ...) is written as text. Numbers stay numbers.
    w.writerows({k: guard_cell(v) for k, v in r.items()} for r in rows)
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
    guide, scope = _viewer()
    if table not in EXPORTS:
        abort(404)
    period, D, metric = _params()
    rows = _table(guide, table, period, D, metric, scope)
    name = f"{EXPORTS[table][1]}-{period}-{lb.span(period, D).key}"
    if table == "rank":
        name += f"-{metric}"
    if scope.code:
        name += f"-{scope.code}"
    return _csv(table, rows, name + ".csv")


# ------------------------------------------------------------------------------------------ 资料导入


MAX_UPLOAD_MB = 20
MAX_UPLOAD = MAX_UPLOAD_MB * 1024 * 1024
TOO_LARGE = f"文件超过 {MAX_UPLOAD_MB} MB，请拆成几个文件分别导入；没有导入任何内容。"
EXPORT_TYPES = {"csv": "text/csv", "jsonl": "application/jsonl", "yaml": "application/yaml",
                "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def _admin_only(view):
    """Head office only, for the pages (after the sign-in check): 403 with the page's error, not JSON."""
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if current_guide().role != "admin":
            abort(403, "需要总部管理员权限")
        return view(*args, **kwargs)

    return wrapped


def _upload_limit(view):
    """Raise the app-wide 64 KiB body limit for this upload (plus room for the form around the file); it must
    come before anything reads the form, CSRF check included."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        request.max_content_length = MAX_UPLOAD + 64 * 1024
        return view(*args, **kwargs)

    return wrapped


def _library_page(status: int = 200, chosen: str = "knowledge", **outcome):
    html = render_template("manager_import.html", guide=current_guide(), tabs=TABS, libraries=library.LIBRARIES,
                           csrf=csrf_token(), max_upload=MAX_UPLOAD, max_upload_mb=MAX_UPLOAD_MB,
                           chosen=chosen, **outcome)
    return html, status


@bp.get("/import")
@page_login_required
@_admin_only
def library_page():
    return _library_page()


@bp.post("/import")
@login_required
@_admin_only
@_upload_limit
@csrf_required
def library_import():
    """One library file, imported exactly as its `… import` command would (or checked, with 只检查不导入)."""
    guide = current_guide()
    lib = library.LIBRARIES.get(request.form.get("library", ""))
    upload = request.files.get("file")
    dry_run = request.form.get("dry_run") in ("1", "on")
    page = functools.partial(_library_page, chosen=lib.key if lib else "knowledge")
    if lib is None:
        return page(400, error="请选择要导入的资料。")
    if upload is None or not upload.filename:
        return page(400, error="请选择要上传的文件。")
    if dry_run and not lib.dry_run:
        return page(400, error=f"{lib.label}不支持“只检查不导入”（命令行也没有 --dry-run）；没有导入任何内容。")
    name = _upload_name(upload.filename)
    with tempfile.TemporaryDirectory(prefix="library-import-", ignore_cleanup_errors=True) as workdir:
        path = Path(workdir) / name  # the readers go by the name: its suffix, and a CSV's kind (话术.csv)
        upload.save(path)
        size = path.stat().st_size
        if size > MAX_UPLOAD:
            return page(413, error=TOO_LARGE)
        try:
            counts = library.import_file(lib.key, path, dry_run=dry_run, guide_id=guide.id, embed="queue")
        except ImportRejected as exc:
            db.session.rollback()
            log.info("library import by %s: %s %s (%d bytes) rejected, %d bad record(s)", guide.userid, lib.key,
                     name, size, len(exc.errors))
            errors = [(place(where), in_chinese(reason)) for where, reason in exc.errors[:MAX_LISTED]]
            if len(exc.errors) > MAX_LISTED:
                errors.append(("…", f"另有 {len(exc.errors) - MAX_LISTED} 处错误没有列出（命令行导入会全部列出）"))
            return page(400, library=lib, file=name, errors=errors, bad=len(exc.errors))
        except UnicodeDecodeError:
            db.session.rollback()
            log.info("library import by %s: %s %s (%d bytes) rejected, not UTF-8", guide.userid, lib.key, name,
                     size)
            return page(400, library=lib, file=name, errors=[(
                "文件", "不是 UTF-8 编码的文本（Excel 请另存为“CSV UTF-8”，或直接上传 .xlsx）")])
    log.info("library import by %s: %s %s (%d bytes) %s: %s", guide.userid, lib.key, name, size,
             "checked (dry run, nothing kept)" if dry_run else "imported",
             ", ".join(f"{n} {k}" for k, n in counts.items()))
    return page(library=lib, file=name, dry_run=dry_run, total=sum(counts.values()),
                         counts=[(lib.counts.get(k, k), n) for k, n in counts.items()])


@bp.errorhandler(413)
def _too_large(exc):
    if request.endpoint == "manager.library_import":
        return _library_page(413, error=TOO_LARGE)
    return exc


MAX_LISTED = 500  # bad records listed on the page; a file of bad lines would otherwise make a page of megabytes


def _upload_name(filename: str) -> str:
    """The uploaded file's own name (Chinese kept: a CSV named 话术.csv holds scripts), without any folder or
    character a file system could take for one."""
    name = re.sub(r"[\x00-\x1f/\\:]", "_", filename.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    if name.strip(".") == "":
        return "upload"
    stem, dot, suffix = name.rpartition(".")
    return f"{_cut(stem, 150)}.{_cut(suffix, 10)}" if dot and stem else _cut(name, 150)


def _cut(text: str, limit: int) -> str:
    """At most `limit` bytes of UTF-8 (a file name may hold 255; a Chinese character takes 3), whole characters."""
    return text.encode()[:limit].decode(errors="ignore")


@bp.get("/library/<key>.<fmt>")
@login_required
@_admin_only
def library_export(key: str, fmt: str):
    """The whole library as its `… export` command writes it, downloaded."""
    lib = library.LIBRARIES.get(key)
    if lib is None or fmt not in lib.exports:
        abort(404)
    with tempfile.TemporaryDirectory(prefix="library-export-", ignore_cleanup_errors=True) as workdir:
        path = Path(workdir) / f"{key}.{fmt}"
        library.export_file(key, path)
        body = path.read_bytes()
    return send_file(io.BytesIO(body), mimetype=EXPORT_TYPES[fmt], as_attachment=True,
                     download_name=f"{key}-{local_today().isoformat()}.{fmt}")
