"""The chat sidebar: its pages under /sidebar/ (server-rendered) and its JSON API under /api/sidebar/.

Pages: `/sidebar/` (the chat toolbar's URL: a light page that finds the chat's customer and reloads;
`?customer=<external_userid>` renders the first screen on the server, `?tab=` the guide's workbench),
`/sidebar/login` → WeCom OAuth2 → `/sidebar/oauth` (or, in demo mode, the guide and customer picker at
`/sidebar/demo`). The API answers JSON only; `/api/openapi.json` documents it.
"""
from __future__ import annotations

import hashlib
import os
import secrets
from urllib.parse import quote, urlsplit

from flask import (Blueprint, abort, current_app, jsonify, redirect, render_template, request, session,
                   url_for)
from sqlalchemy import select

from bot.wecom_client import WeComError, get_wecom
from core.db import db
from core.http import json_error, query_date
from core.timeutil import local_today, utcnow
from knowledge import service as knowledge
from models import Customer, CustomerIdentity, Guide
from sidebar import jssdk
from sidebar import operations as ops
from sidebar.auth import (csrf_required, csrf_token, current_guide, login_required, page_login_required, sign_in,
                          visible_customer, visible_customers)

ASSET_MAX_AGE = 30 * 24 * 3600
_asset_versions: dict[str, str] = {}


class _Pages(Blueprint):
    def get_send_file_max_age(self, filename):
        # Asset URLs carry a content hash (asset_url), so the webview may keep them for long.
        return ASSET_MAX_AGE


def asset_url(filename: str) -> str:
    """The URL of a static file with its content hash, so a new release is fetched at once."""
    version = _asset_versions.get(filename)
    if version is None:
        with open(os.path.join(pages.static_folder, filename), "rb") as f:
            version = _asset_versions[filename] = hashlib.sha1(f.read()).hexdigest()[:10]
    return url_for("sidebar.static", filename=filename, v=version)


pages = _Pages("sidebar", __name__, url_prefix="/sidebar", template_folder="templates",
               static_folder="static", static_url_path="/static")
api = Blueprint("sidebar_api", __name__, url_prefix="/api")
pages.add_app_template_global(asset_url, "sidebar_asset")

# The tabs, in order: (key, label). A new tab is one entry here, one partial
# (templates/sidebar/tabs/<key>.html) and one function in static/sidebar.js (tabs.<key>).
TABS = [("customer", "客户"), ("tags", "标签"), ("scripts", "话术"), ("content", "素材"), ("tasks", "任务"),
        ("coupons", "优惠券"), ("ranking", "排行")]
# Without a customer (opened from a push's link, `/sidebar/?tab=…`) the page is the guide's workbench: these
# tabs, rendered from templates/sidebar/workbench/<key>.html (排行 shares tabs/ranking.html).
WORKBENCH_TABS = [("tasks", "任务"), ("content", "素材"), ("ranking", "排行")]


def _safe_next(value: str | None) -> str:
    """Only a path on this site (no scheme, no host) is followed after sign-in."""
    if not value or not value.startswith("/") or value.startswith("//") or urlsplit(value).netloc:
        return url_for("sidebar.index")
    return value


def _demo_session() -> bool:
    return bool(session.get("demo")) and current_app.config.get("DEMO", False)


# ------------------------------------------------------------------------------------------- pages


@pages.get("/")
@page_login_required
def index():
    guide = current_guide()
    external_userid = request.args.get("customer")
    tab = request.args.get("tab")
    ctx = {"guide": guide, "demo": _demo_session(), "csrf": csrf_token(),
           "jssdk_urls": current_app.config.get("WECOM_JSSDK_URLS", [])}
    if not external_userid:
        from tasks.views import menu_focus

        focus = menu_focus(utcnow())  # morning 素材, day 任务, evening 排行
        if not tab:
            if ctx["demo"]:
                return redirect(url_for("sidebar.demo_customers"))
            # The chat toolbar's URL: the page only learns the chat's customer and reloads (the JS-SDK
            # signature is bound to the URL); outside a customer's chat it goes on to the workbench.
            return render_template("sidebar/opening.html", workbench=url_for("sidebar.index", tab=focus), **ctx)
        keys = [k for k, _ in WORKBENCH_TABS]
        active = tab if tab in keys else focus
        return render_template("sidebar/page.html", screen=None, external_userid=None, tabs=WORKBENCH_TABS,
                               active=active, bench=ops.workbench(guide, local_today()), **ctx)
    customer = visible_customer(guide, external_userid)
    screen = ops.first_screen(guide, customer)
    ops.record_view(guide, customer, entry=request.args.get("entry") or ("demo" if ctx["demo"] else "page"),
                    ip=request.remote_addr)
    db.session.commit()
    active = tab if tab in dict(TABS) else "customer"
    return render_template("sidebar/page.html", screen=screen, external_userid=external_userid, tabs=TABS,
                           active=active, **ctx)


@pages.get("/login")
def login():
    nxt = _safe_next(request.args.get("next"))
    if current_app.config.get("DEMO"):
        return redirect(url_for("sidebar.demo", next=nxt))
    state = secrets.token_urlsafe(16)
    session["oauth_state"], session["oauth_next"] = state, nxt
    cfg = current_app.config
    redirect_uri = cfg["PUBLIC_BASE_URL"].rstrip("/") + url_for("sidebar.oauth")
    url = (f"{cfg['WECOM_OAUTH_URL']}?appid={quote(cfg['WECOM_CORP_ID'])}&redirect_uri={quote(redirect_uri, safe='')}"
           f"&response_type=code&scope=snsapi_base&state={state}&agentid={quote(str(cfg['WECOM_AGENT_ID']))}"
           "#wechat_redirect")
    return redirect(url)


def _message_page(status: int, title: str, message: str, *, retry: str | None = None):
    return render_template("sidebar/message.html", title=title, message=message, retry=retry), status


@pages.get("/oauth")
def oauth():
    expected = session.pop("oauth_state", None)
    nxt = _safe_next(session.pop("oauth_next", None))
    retry = url_for("sidebar.login", next=nxt)
    code, state = request.args.get("code"), request.args.get("state")
    if not code or not expected or not state or not secrets.compare_digest(state, expected):
        return _message_page(400, "登录已失效", "登录链接已失效或被篡改，请重新打开侧边栏。", retry=retry)
    try:
        userid = get_wecom().get_user_id_by_code(code)
    except WeComError as exc:
        if exc.errcode == 40029:
            return _message_page(400, "登录已失效", "登录凭证已过期，请重新打开侧边栏。", retry=retry)
        return _message_page(502, "暂时无法登录", exc.user_message, retry=retry)
    if not userid:
        return _message_page(403, "无法使用", "侧边栏仅限企业成员使用。")
    guide = db.session.scalar(select(Guide).where(Guide.userid == userid))
    if guide is None or guide.status != "active":
        return _message_page(403, "无法使用", "你的账号还没有开通导购助手，请联系管理员。")
    sign_in(guide)
    return redirect(nxt)


@pages.route("/demo", methods=["GET", "POST"])
def demo():
    """Demo mode only: pick a guide (stands in for WeCom OAuth2)."""
    if not current_app.config.get("DEMO"):
        abort(404)
    if request.method == "POST":
        guide = db.session.scalar(select(Guide).where(Guide.userid == request.form.get("guide", ""),
                                                      Guide.status == "active"))
        if guide is None:
            return _message_page(400, "找不到导购", "请选择一位在职导购。", retry=url_for("sidebar.demo"))
        nxt = request.form.get("next")
        sign_in(guide)
        session["demo"] = True
        return redirect(_safe_next(nxt) if nxt else url_for("sidebar.demo_customers"))
    guides = db.session.scalars(select(Guide).where(Guide.status == "active").order_by(Guide.role, Guide.userid)
                                .limit(200)).all()
    return render_template("sidebar/demo.html", guides=guides, next=request.args.get("next", ""))


@pages.get("/demo/customers")
def demo_customers():
    """Demo mode only: pick the customer whose chat is "open"."""
    if not current_app.config.get("DEMO"):
        abort(404)
    guide = current_guide()
    if guide is None:
        return redirect(url_for("sidebar.demo"))
    rows = db.session.execute(
        select(CustomerIdentity.value, Customer.name).join(Customer, Customer.id == CustomerIdentity.customer_id)
        .where(CustomerIdentity.kind == "external_userid", visible_customers(guide))
        .order_by(Customer.name, CustomerIdentity.value).limit(100)).all()
    return render_template("sidebar/demo_customers.html", guide=guide, customers=rows)


@pages.errorhandler(404)
def page_not_found(_exc):
    return _message_page(404, "找不到这位客户", "这位客户不存在，或不是你的客户。")


# ------------------------------------------------------------------------------------------- API


@api.errorhandler(WeComError)
def wecom_failed(exc: WeComError):
    db.session.rollback()  # nothing half-written: WeCom refused, so nothing of this request is kept
    current_app.logger.warning("WeCom call failed in the sidebar: %s", exc)
    return json_error(502, exc.user_message, errcode=exc.errcode)


@api.errorhandler(404)
def api_not_found(_exc):
    return json_error(404, "找不到：客户不存在或不是你的客户")


@api.errorhandler(ops.SidebarInputError)
def bad_input(exc):
    db.session.rollback()
    return json_error(400, str(exc))


def _customer(external_userid: str) -> Customer:
    return visible_customer(current_guide(), external_userid)


@api.get("/sidebar/jssdk")
@login_required
def jssdk_signatures():
    url = request.args.get("url", "")
    if not url.startswith(("http://", "https://")):
        return json_error(400, "url 必须是当前页面的完整地址（http 或 https 开头）")
    return jsonify(jssdk.signatures(url))


@api.get("/sidebar/first-screen")
@login_required
def first_screen():
    guide = current_guide()
    customer = visible_customer(guide, request.args.get("customer"))
    screen = ops.first_screen(guide, customer, query=request.args.get("q"))
    ops.record_view(guide, customer, entry=request.args.get("entry") or "api", ip=request.remote_addr)
    db.session.commit()
    return jsonify(screen)


@api.get("/sidebar/customers/<external_userid>/profile")
@login_required
def customer_profile(external_userid: str):
    guide = current_guide()
    customer = visible_customer(guide, external_userid)
    out = ops.profile(customer, guide)
    ops.record_view(guide, customer, entry=request.args.get("entry") or "api", ip=request.remote_addr)
    db.session.commit()
    return jsonify(out)


@api.get("/sidebar/customers/<external_userid>/tags")
@login_required
def customer_tags(external_userid: str):
    return jsonify(groups=ops.tag_groups(_customer(external_userid)))


@api.post("/sidebar/customers/<external_userid>/tags")
@login_required
@csrf_required
def toggle_tag(external_userid: str):
    customer = _customer(external_userid)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return json_error(400, "请求体必须是 JSON 对象")
    tag_id, on = body.get("tag"), body.get("on")
    if not isinstance(tag_id, int) or isinstance(tag_id, bool):
        return json_error(400, "tag 必须是标签编号（整数）")
    if not isinstance(on, bool):
        return json_error(400, "on 必须是 true（打上）或 false（去掉）")
    try:
        result = ops.set_tag(current_guide(), customer, external_userid, tag_id, on)
    except LookupError as exc:
        return json_error(404, str(exc))
    db.session.commit()
    return jsonify(result)


@api.post("/sidebar/customers/<external_userid>/notes")
@login_required
@csrf_required
def add_note_tag(external_userid: str):
    customer = _customer(external_userid)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return json_error(400, "请求体必须是 JSON 对象")
    try:
        result = ops.add_guide_tag(current_guide(), customer, external_userid, body.get("name"))
    except LookupError as exc:
        return json_error(404, str(exc))
    db.session.commit()
    return jsonify(result), 201


@api.get("/sidebar/customers/<external_userid>/content")
@login_required
def customer_content(external_userid: str):
    customer = _customer(external_userid)
    try:
        top = max(1, min(int(request.args.get("top", 10)), 50))
    except ValueError:
        return json_error(400, "top 必须是 1 到 50 之间的整数")
    return jsonify(content=knowledge.content_for(customer, top=top))


@api.post("/sidebar/customers/<external_userid>/content/<content_id>/send")
@login_required
@csrf_required
def send_content(external_userid: str, content_id: str):
    """Check the touch caps and count the send, then hand the page the news card (its link tracked) to send."""
    from customers.operations import record_event
    from tasks import quota
    from tracking import operations as tracking

    guide = current_guide()
    customer = visible_customer(guide, external_userid, for_write=True)
    try:
        sent = tracking.send_content(guide, customer, content_id)
    except LookupError as exc:
        db.session.rollback()
        return json_error(404, str(exc.args[0]))
    except tracking.TrackingInputError as exc:
        db.session.rollback()
        return json_error(400, str(exc))
    except quota.TouchRefused as exc:
        db.session.rollback()
        return json_error(409, exc.reason, code=exc.code, quota=quota.quota(customer))
    record_event(customer, "content_sent", channel="wecom", guide=guide,
                 payload={"title": sent["title"], "content": sent["external_id"]})
    db.session.commit()
    card = {"msgtype": "news", "enterChat": True,
            "news": {"link": sent["url"], "title": sent["title"], "desc": sent["summary"][:120],
                     "imgUrl": sent["cover_url"] or ""}}
    return jsonify(message=card, quota=quota.quota(customer)), 201


@api.get("/sidebar/scripts/categories")
@login_required
def script_categories():
    return jsonify(categories=knowledge.script_categories())


@api.get("/sidebar/scripts")
@login_required
def scripts_in_category():
    category = (request.args.get("category") or "").strip()
    if not category:
        return json_error(400, "请选择话术分类（category）")
    return jsonify(category=category, scripts=knowledge.scripts_in(category))


@api.get("/sidebar/ranking")
@login_required
def team_ranking():
    """The 排行 tab: the guide's store team's day from the leaderboard, the guide's own row marked."""
    return jsonify(ops.team_ranking(current_guide(), query_date()))


@api.get("/openapi.json")
def openapi_document():
    from sidebar.openapi import spec

    return jsonify(spec())
