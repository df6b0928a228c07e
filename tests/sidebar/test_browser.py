"""The sidebar in a real browser: headless Chromium (Debian's package, `scripts/browser.sh` installs it) driven
by Playwright against a live server (werkzeug in a thread) on PostgreSQL and Redis, in demo mode.
Screenshots go to tests/screenshots/ (not committed)."""
from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import threading
from urllib.parse import parse_qs, urlsplit
from pathlib import Path

import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from core.db import db
from core.timeutil import local_today
from models import CustomerTag, ProfileView, RedDot, ScriptSend, Tag
from tests.knowledge.factories import LIBRARY
from tests.knowledge.test_library import load
from tests.sidebar.factories import task_for

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium: run scripts/browser.sh")
SHOTS = Path(__file__).resolve().parent.parent / "screenshots"


@contextlib.contextmanager
def serve(app, *, demo: bool):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    saved = {k: app.config[k] for k in ("DEMO", "PUBLIC_BASE_URL")}
    app.config.update(DEMO=demo, PUBLIC_BASE_URL=url)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        thread.join(5)
        app.config.update(saved)


@pytest.fixture
def live_server(app):
    with serve(app, demo=True) as url:
        yield url


@pytest.fixture
def live_wecom_server(app):
    with serve(app, demo=False) as url:
        yield url


@contextlib.contextmanager
def phone(**context_options):
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        context = browser.new_context(viewport={"width": 360, "height": 740}, device_scale_factor=2,
                                      locale="zh-CN", **context_options)
        pg = context.new_page()
        pg.set_default_timeout(10_000)
        try:
            yield pg
        finally:
            context.close()
            browser.close()


@pytest.fixture
def page():
    with phone() as pg:
        yield pg


@pytest.fixture
def touch_page():
    with phone(has_touch=True) as pg:
        yield pg


def _fresh():
    db.session.rollback()  # see what the server's threads committed
    db.session.expire_all()


def test_demo_sidebar_tabs_tags_scripts_tasks_content(app, chain, standin, live_server, page, tmp_path, daytime):
    load(tmp_path, LIBRARY)
    from tests.tasks.factories import tag

    tag(chain.mine, "0-6月", group="宝宝月龄")
    db.session.commit()
    dot = task_for(chain, chain.mine, script="s-zhuannai")
    SHOTS.mkdir(exist_ok=True)
    ext = chain.ext[chain.mine.id]

    # Outside WeCom: the picker stands in for OAuth2 and for the open chat.
    page.goto(f"{live_server}/sidebar/")
    page.click('[data-guide="guide01"]')
    page.click(f'[data-customer="{ext}"]')
    page.wait_for_selector("#tab-customer.is-active")
    assert page.inner_text("#sb-customer-name") == "张女士"
    profile = page.inner_text("#tab-customer")
    assert "138****1234" in profile and "重要价值客户" in profile and "王丽" in profile
    page.screenshot(path=str(SHOTS / "sidebar-customer.png"), full_page=True)

    # 任务: done in one tap.
    page.click('.sb-tab[data-tab="tasks"]')
    page.wait_for_selector("#tab-tasks.is-active")
    page.click(f'#sb-customer-tasks [data-action="task-done"][data-task="{dot.id}"]')
    page.wait_for_selector(f'#sb-customer-tasks .sb-task_done[data-task="{dot.id}"]')
    page.wait_for_selector("#sb-all-tasks .sb-task")
    _fresh()
    assert db.session.get(RedDot, dot.id).status == "done"
    page.screenshot(path=str(SHOTS / "sidebar-tasks.png"), full_page=True)

    # 标签: one tap adds (synced to WeCom), another removes.
    page.click('.sb-tab[data-tab="tags"]')
    chip = page.locator("#tab-tags .sb-chip", has_text="高意向")
    chip.click()
    page.wait_for_selector('#tab-tags .sb-chip.is-on:has-text("高意向")')
    _fresh()
    tag_id = db.session.scalar(select(Tag.id).where(Tag.name == "高意向"))
    assert db.session.get(CustomerTag, (chain.mine.id, tag_id)) is not None
    assert [t["tag_name"] for t in standin.corp.contacts[ext]["follow_user"][0]["tags"]] == ["高意向"]
    assert "高意向" in page.locator("#sb-profile-tags").text_content()  # the 客户 tab follows
    page.screenshot(path=str(SHOTS / "sidebar-tags.png"), full_page=True)
    chip.click()
    page.wait_for_selector('#tab-tags .sb-chip:not(.is-on):has-text("高意向")')
    _fresh()
    assert db.session.get(CustomerTag, (chain.mine.id, tag_id)) is None
    # A free-text note, and a too-long one refused with the reason.
    page.fill("#sb-note-input", "送礼")
    page.click("#sb-note-form button")
    page.wait_for_selector('#sb-note-tags .sb-chip.is-on:has-text("送礼")')

    # 话术: search, tap, edit, send (shown on the page in demo mode), feedback recorded.
    page.click('.sb-tab[data-tab="scripts"]')
    page.wait_for_selector('#sb-script-categories [data-action="category"]')
    page.fill("#sb-script-q", "宝宝拉不出粑粑")
    page.click("#sb-script-search button")
    first = page.locator('#sb-script-results [data-action="script"]').first
    first.wait_for()
    assert first.get_attribute("data-script") == "s-bianmi"
    first.click()
    page.wait_for_selector("#sb-editor:not([hidden])")
    page.fill("#sb-editor-text", "张姐，宝宝大便干可以多喝水，再做做腹部按摩～")
    page.click("#sb-editor-send")
    page.wait_for_selector('#sb-demo-sent-list li:has-text("腹部按摩")')
    page.wait_for_timeout(300)  # the feedback POST follows the send
    page.screenshot(path=str(SHOTS / "sidebar-scripts.png"), full_page=True)
    _fresh()
    send = db.session.scalar(select(ScriptSend))
    assert send is not None and send.source == "searched" and send.edited and send.customer_id == chain.mine.id

    # 素材: a news card whose link is the tracked link.
    page.click('.sb-tab[data-tab="content"]')
    assert "今天还能收 1 条营销消息" in page.inner_text("#sb-quota")
    page.click('[data-action="content-send"][data-content="c-zhuannai"]')
    page.wait_for_selector('#sb-demo-sent-list li:has-text("转奶七日法图解")')
    assert "/c/" in page.inner_text("#sb-demo-sent-list")  # the tracked link, not the article's own
    page.wait_for_selector('#sb-quota:has-text("暂不能发营销素材")')  # one a day: the tab says so at once
    page.screenshot(path=str(SHOTS / "sidebar-content.png"), full_page=True)

    # 优惠券 (tests/coupons/test_sidebar_tab.py issues one): open, and nothing to list without templates.
    page.click('.sb-tab[data-tab="coupons"]')
    page.wait_for_selector('#sb-coupon-templates:has-text("暂时没有可发的券")')


def test_tasks_tab_is_fetched_once_then_on_a_closed_task_a_pull_or_after_five_minutes(app, chain, standin,
                                                                                      live_server, touch_page):
    page = touch_page
    dot = task_for(chain, chain.mine)
    asked = []
    page.on("request", lambda req: asked.append(urlsplit(req.url).path))

    def fetched():
        return asked.count("/api/tasks"), asked.count("/api/me/month")

    def until(expected):
        for _ in range(50):
            if fetched() == expected:
                return
            page.wait_for_timeout(100)
        assert fetched() == expected

    page.clock.install()
    page.goto(f"{live_server}/sidebar/")
    page.click('[data-guide="guide01"]')
    page.click(f'[data-customer="{chain.ext[chain.mine.id]}"]')
    page.wait_for_selector("#tab-customer.is-active")
    page.click('.sb-tab[data-tab="tasks"]')
    page.wait_for_selector("#sb-all-tasks .sb-task")
    page.wait_for_selector('#sb-my-month:has-text("本月业绩")')
    until((1, 1))
    # Back and forth between tabs, and the 排行 tab's month: nothing asked again.
    page.click('.sb-tab[data-tab="customer"]')
    page.click('.sb-tab[data-tab="tasks"]')
    page.click('.sb-tab[data-tab="ranking"]')
    page.wait_for_selector('#sb-rank-month:has-text("我的本月")')
    page.click('.sb-tab[data-tab="tasks"]')
    page.wait_for_timeout(500)
    assert fetched() == (1, 1)
    # Closing a task refreshes the day's list and summary.
    page.click(f'#sb-customer-tasks [data-action="task-done"][data-task="{dot.id}"]')
    page.wait_for_selector('#sb-task-summary:has-text("待办 0 / 共 1")')
    until((2, 1))
    # Pulling the tab down refreshes both.
    page.evaluate("window.scrollTo(0, 0)")
    cdp = page.context.new_cdp_session(page)
    for kind, y in (("touchStart", 250), ("touchMove", 300), ("touchMove", 360), ("touchEnd", None)):
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": 180, "y": y}] if y else []})
    until((3, 2))
    # Opened again more than five minutes later: asked again.
    page.clock.fast_forward("05:01")
    page.click('.sb-tab[data-tab="customer"]')
    page.click('.sb-tab[data-tab="tasks"]')
    until((4, 3))
    # Any write on another tab (a note here; a send completes tasks the same way) makes what was kept stale.
    page.click('.sb-tab[data-tab="tags"]')
    page.fill("#sb-note-input", "周末到店")
    page.click("#sb-note-form button")
    page.wait_for_selector('#sb-note-tags .sb-chip.is-on:has-text("周末到店")')
    page.click('.sb-tab[data-tab="tasks"]')
    until((5, 4))
    # 刷新, for desktops where there is no pull: both again.
    page.click('[data-action="tasks-refresh"]')
    until((6, 5))


def test_wecom_error_shown_in_plain_chinese(app, chain, standin, live_server, page):
    ext = chain.ext[chain.mine.id]
    page.goto(f"{live_server}/sidebar/")
    page.click('[data-guide="guide01"]')
    page.click(f'[data-customer="{ext}"]')
    page.click('.sb-tab[data-tab="tags"]')
    standin.corp.add_fault("externalcontact/mark_tag", 45009)
    page.locator("#tab-tags .sb-chip", has_text="待跟进").click()
    page.wait_for_selector('#sb-toast.is-error:has-text("调用企业微信太频繁")')
    assert page.locator('#tab-tags .sb-chip.is-on:has-text("待跟进")').count() == 0
    # Too long a note: the reason, and nothing sent.
    page.fill("#sb-note-input", "券" * 30)
    page.evaluate("document.getElementById('sb-note-input').removeAttribute('maxlength')")
    page.fill("#sb-note-input", "券" * 31)
    page.click("#sb-note-form button")
    page.wait_for_selector('#sb-toast.is-error:has-text("不能超过30个字")')
    page.screenshot(path=str(SHOTS / "sidebar-error.png"), full_page=True)
    _fresh()
    assert db.session.scalar(select(CustomerTag)) is None


# A stand-in for WeCom's JS-SDK inside the webview: records what the page asks and answers like WeCom does.
FAKE_WX = """
window.__wx = [];
window.wx = {
  config: function (c) { __wx.push(["config", c]); },
  ready: function (f) { setTimeout(f, 0); },
  error: function () {},
  agentConfig: function (c) { __wx.push(["agentConfig", c]); setTimeout(function () { c.success({}); }, 0); },
  invoke: function (name, args, cb) {
    __wx.push(["invoke", name, args]);
    if (name === "getContext") cb({err_msg: "getContext:ok", entry: "single_chat_tools"});
    else if (name === "getCurExternalContact") cb({err_msg: "getCurExternalContact:ok", userId: "%s"});
    else if (name === "sendChatMessage") cb({err_msg: "sendChatMessage:ok"});
  }
};
"""


def test_inside_wecom_oauth_jssdk_context_and_send(app, chain, standin, live_wecom_server, page, tmp_path,
                                                   daytime):
    load(tmp_path, LIBRARY)
    from tests.recommend.test_recommend import catalog

    catalog()
    from tests.tasks.factories import tag

    tag(chain.mine, "0-6月", group="宝宝月龄")
    db.session.commit()
    ext = chain.ext[chain.mine.id]
    oauth_base, jssdk_urls = app.config["WECOM_OAUTH_URL"], app.config["WECOM_JSSDK_URLS"]

    page.route(jssdk_urls[0], lambda route: route.fulfill(status=200, content_type="application/javascript",
                                                          body=FAKE_WX % ext))
    for src in jssdk_urls[1:]:
        page.route(src, lambda route: route.fulfill(status=200, content_type="application/javascript", body=""))

    # Opened from the chat's toolbar without a session: the sidebar sends the guide to WeCom's OAuth2 page,
    # which (the member being known) comes back with a code. Playwright cannot route a redirect's target,
    # so the WeCom hop is played through the context's request API, which shares the browser's cookies.
    resp = page.request.get(f"{live_wecom_server}/sidebar/", max_redirects=0)
    assert resp.status == 302 and "/sidebar/login" in resp.headers["location"]
    resp = page.request.get(live_wecom_server + resp.headers["location"], max_redirects=0)
    assert resp.headers["location"].startswith(oauth_base)
    q = parse_qs(urlsplit(resp.headers["location"]).query)
    assert q["appid"] == [app.config["WECOM_CORP_ID"]] and q["scope"] == ["snsapi_base"]
    code = standin.corp.issue_oauth_code("guide01")
    page.goto(f"{q['redirect_uri'][0]}?code={code}&state={q['state'][0]}")
    # Signed in: the page configures the JS-SDK and asks WeCom which customer's chat is open.
    page.wait_for_url(f"**/sidebar/?customer={ext}&entry=single_chat_tools")
    page.wait_for_selector("#tab-customer.is-active")
    assert page.inner_text("#sb-customer-name") == "张女士"
    cookie = next(c for c in page.context.cookies() if c["name"] == "session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    _fresh()
    assert [(v.guide_id, v.entry) for v in db.session.scalars(select(ProfileView))] == \
        [(chain.guide.id, "single_chat_tools")]

    # The signatures the page configured with are WeCom's algorithm over this very URL.
    page.wait_for_function("window.__wx.some(c => c[0] === 'agentConfig')")
    calls = page.evaluate("window.__wx")
    config = next(c[1] for c in calls if c[0] == "config")
    agent = next(c[1] for c in calls if c[0] == "agentConfig")
    from core.redis_store import rstore

    tickets = {k.decode(): json.loads(rstore.client.get(k)) for k in rstore.client.keys("wecom:*ticket*")}
    url = page.url.split("#")[0]
    for conf, kind in ((config, "_jsapi_"), (agent, "agent_config")):
        ticket = next(v for k, v in tickets.items() if kind in k)
        raw = f"jsapi_ticket={ticket}&noncestr={conf['nonceStr']}&timestamp={conf['timestamp']}&url={url}"
        assert conf["signature"] == hashlib.sha1(raw.encode()).hexdigest()
    assert agent["agentid"] == app.config["WECOM_AGENT_ID"] and "sendChatMessage" in agent["jsApiList"]

    # Tap a suggested script, send it unchanged through sendChatMessage; the send is reported back.
    script = page.locator('#sb-top-suggestions [data-action="script"]').first
    script_id = script.get_attribute("data-script")
    script.click()
    body = page.input_value("#sb-editor-text")
    page.click("#sb-editor-send")
    page.wait_for_function("window.__wx.some(c => c[1] === 'sendChatMessage')")
    sent = next(c[2] for c in page.evaluate("window.__wx") if c[1] == "sendChatMessage")
    assert sent == {"msgtype": "text", "enterChat": True, "text": {"content": body.strip()}}
    page.wait_for_timeout(300)
    _fresh()
    send = db.session.scalar(select(ScriptSend))
    assert send is not None and send.source == "suggested" and not send.edited
    assert page.locator("#sb-demo-sent").count() == 0  # not demo mode: nothing is shown as sent on the page
    page.screenshot(path=str(SHOTS / "sidebar-wecom.png"), full_page=True)

    # A recommended product goes through the same sendChatMessage, as text: name and price, not the reason.
    rec = page.locator("#sb-recs .sb-rec").first
    rec.wait_for()
    name, reason = rec.locator(".sb-rec__name").inner_text(), rec.locator(".sb-rec__reason").inner_text()
    rec.click()
    page.wait_for_function("window.__wx.filter(c => c[1] === 'sendChatMessage').length === 2")
    sent = [c[2] for c in page.evaluate("window.__wx") if c[1] == "sendChatMessage"][1]
    assert sent["msgtype"] == "text" and name in sent["text"]["content"] and "¥" in sent["text"]["content"]
    assert reason.split(" ", 1)[-1] not in sent["text"]["content"]

    # A push's deep link opens the workbench in WeCom's webview: no chat to look up, no reload to a customer.
    page.goto(f"{live_wecom_server}/sidebar/?tab=ranking")
    page.wait_for_function("window.__wx.some(c => c[0] === 'agentConfig')")
    page.wait_for_selector("#tab-ranking.is-active #sb-ranking tr.is-me")
    assert page.url.endswith("/sidebar/?tab=ranking")
    assert not any(c[1] == "getCurExternalContact" for c in page.evaluate("window.__wx"))

    # From the workbench to a customer's page: WeCom's webview is not a chat (getContext says "normal"), so a
    # send is refused before anything is counted, and the page says why.
    from models import Touch

    page.unroute(jssdk_urls[0])
    page.route(jssdk_urls[0], lambda route: route.fulfill(
        status=200, content_type="application/javascript",
        body=(FAKE_WX % ext).replace('entry: "single_chat_tools"', 'entry: "normal"')))
    page.goto(f"{live_wecom_server}/sidebar/?customer={ext}")
    page.wait_for_selector("#sb-not-in-chat:not([hidden])")
    page.locator("#sb-recs .sb-rec").first.click()
    page.wait_for_selector('#sb-toast.is-error:has-text("请在与这位客户的聊天中打开侧边栏再发送")')
    assert not any(c[1] == "sendChatMessage" for c in page.evaluate("window.__wx"))
    _fresh()
    assert db.session.scalar(select(func.count()).select_from(Touch).where(Touch.kind == "marketing")) == 1
    # (the product sent from the chat above; the script was a service touch)

    # Opened from the app's menu (no chat, so WeCom has no current contact): the light page goes on to the
    # workbench, which stays (its ?tab= says it is not a chat).
    page.unroute(jssdk_urls[0])
    page.route(jssdk_urls[0], lambda route: route.fulfill(
        status=200, content_type="application/javascript",
        body=(FAKE_WX % ext).replace('entry: "single_chat_tools"', 'entry: "normal"').replace(
            'cb({err_msg: "getCurExternalContact:ok", userId: "%s"})' % ext,
            'cb({err_msg: "getCurExternalContact:fail"})')))
    page.goto(f"{live_wecom_server}/sidebar/")
    page.wait_for_url("**/sidebar/?tab=*")
    page.wait_for_selector("#sb-workbench-title")
    page.wait_for_timeout(300)
    assert "/sidebar/?tab=" in page.url and page.locator(".sb-tab.is-active").count() == 1


def test_demo_workbench_deep_links_ranking_and_product_send(app, chain, standin, live_server, page, daytime):
    from models import Touch
    from tests.recommend.test_recommend import catalog
    from tests.tasks import factories as tf

    P = catalog()
    second = tf.customer(chain.guide, name="周女士")
    tf.order(chain.mine, tf.at(local_today(), 11), (P["NF-AT-2"], 1))  # today's ¥418 for 王丽's row in the ranking
    db.session.commit()
    dot1 = task_for(chain, chain.mine, rule="dormant")
    dot2 = task_for(chain, second, rule="birthday")
    ext = chain.ext[chain.mine.id]
    SHOTS.mkdir(exist_ok=True)

    # A push's link: /sidebar/?tab=tasks, without a customer; sign-in (the demo picker) comes back to it.
    page.goto(f"{live_server}/sidebar/?tab=tasks")
    page.click('[data-guide="guide01"]')
    page.wait_for_selector("#tab-tasks.is-active")
    assert page.inner_text("#sb-workbench-title") == "我的工作台"
    assert page.locator("[data-rule-group]").count() == 2
    assert "今天待办 2 项" in page.inner_text("#sb-bench-summary")
    page.click(f'#tab-tasks [data-action="task-done"][data-task="{dot2.id}"]')
    page.wait_for_selector(f'#tab-tasks .sb-task_done[data-task="{dot2.id}"]')
    _fresh()
    assert db.session.get(RedDot, dot2.id).status == "done" and db.session.get(RedDot, dot1.id).status == "open"
    page.screenshot(path=str(SHOTS / "sidebar-workbench-tasks.png"), full_page=True)

    # 排行: the team's day with my row highlighted, and my month.
    page.click('.sb-tab[data-tab="ranking"]')
    page.wait_for_selector("#sb-ranking tr.is-me")
    assert "王丽（我）" in page.inner_text("#sb-ranking tr.is-me") and "¥418.00" in page.inner_text("#sb-ranking")
    page.wait_for_selector('#sb-rank-month:has-text("我的本月")')
    assert page.locator("#sb-manager-link").count() == 0  # a guide: no manager page
    page.screenshot(path=str(SHOTS / "sidebar-workbench-ranking.png"), full_page=True)

    # A task row opens that customer's sidebar; the 客户 tab loads recommended products after the first paint.
    page.click('.sb-tab[data-tab="tasks"]')
    page.click(f'#tab-tasks a[href="/sidebar/?customer={ext}"]')
    page.wait_for_selector("#tab-customer.is-active")
    page.wait_for_selector("#sb-recs .sb-rec")
    recs = page.locator("#sb-recs .sb-rec")
    assert 1 <= recs.count() <= 5
    name = page.inner_text("#sb-recs .sb-rec >> nth=0 >> .sb-rec__name")
    assert page.inner_text("#sb-recs .sb-rec >> nth=0 >> .sb-rec__reason").strip()  # the reason, in Chinese
    page.screenshot(path=str(SHOTS / "sidebar-recommendations.png"), full_page=True)
    recs.first.click()
    page.wait_for_selector(f'#sb-demo-sent-list li:has-text("{name}")')
    assert "¥" in page.inner_text("#sb-demo-sent-list")
    _fresh()
    touch = db.session.scalar(select(Touch))
    assert (touch.channel, touch.customer_id) == ("product", chain.mine.id)
    # A second product the same day: refused over the cap, with the reason.
    recs.last.click()
    page.wait_for_selector('#sb-toast.is-error:has-text("今天已收到")')
    assert page.locator("#sb-demo-sent-list li").count() == 1

    # With a customer, ?tab= selects the tab too.
    page.goto(f"{live_server}/sidebar/?customer={ext}&tab=ranking")
    page.wait_for_selector("#tab-ranking.is-active #sb-ranking tr.is-me")

    # A box that cannot load says why, in the box (the server's message, else 「加载失败」).
    page.route("**/api/sidebar/ranking*", lambda route: route.fulfill(
        status=503, content_type="application/json", body=json.dumps({"error": "排行暂时不可用"})))
    page.goto(f"{live_server}/sidebar/?tab=ranking")
    page.wait_for_selector('#sb-ranking p.sb-muted:has-text("排行暂时不可用")')
    page.unroute("**/api/sidebar/ranking*")
    page.route("**/api/sidebar/ranking*", lambda route: route.fulfill(status=502, body="bad gateway"))
    page.goto(f"{live_server}/sidebar/?tab=ranking")
    page.wait_for_selector('#sb-ranking p.sb-muted:has-text("加载失败")')
