"""The sidebar pages: WeCom OAuth2 sign-in into the session cookie, the server-rendered first screen, demo mode."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from sqlalchemy import func, select

from core.db import db
from models import ProfileView
from tests.sidebar.factories import sign_in


def test_oauth2_sign_in_sets_a_signed_httponly_samesite_cookie(app, client, chain, standin):
    ext = chain.ext[chain.mine.id]
    resp = client.get(f"/sidebar/?customer={ext}")
    assert resp.status_code == 302 and resp.location.startswith("/sidebar/login?next=")
    resp = client.get(resp.location)
    assert resp.status_code == 302
    target = urlsplit(resp.location)
    assert resp.location.startswith(app.config["WECOM_OAUTH_URL"]) and target.fragment == "wechat_redirect"
    q = parse_qs(target.query)
    assert q["appid"] == [app.config["WECOM_CORP_ID"]] and q["scope"] == ["snsapi_base"]
    assert q["redirect_uri"] == [app.config["PUBLIC_BASE_URL"] + "/sidebar/oauth"]
    state = q["state"][0]
    # WeCom sends the guide back with a code; the service swaps it for the userid.
    code = standin.corp.issue_oauth_code("guide01")
    resp = client.get(f"/sidebar/oauth?code={code}&state={state}")
    assert resp.status_code == 302 and resp.location == f"/sidebar/?customer={ext}"
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = client.get(resp.location)
    assert page.status_code == 200 and "张女士" in page.get_data(as_text=True)


def test_oauth2_rejects_wrong_state_reused_code_and_non_guides(app, client, chain, standin):
    client.get("/sidebar/login?next=/sidebar/")
    code = standin.corp.issue_oauth_code("guide01")
    resp = client.get(f"/sidebar/oauth?code={code}&state=forged")
    assert resp.status_code == 400 and "登录" in resp.get_data(as_text=True)
    assert client.get("/api/tasks").status_code == 401
    # A code is single use.
    state = parse_qs(urlsplit(client.get("/sidebar/login").location).query)["state"][0]
    assert client.get(f"/sidebar/oauth?code={code}&state={state}").status_code == 302
    state = parse_qs(urlsplit(client.get("/sidebar/login").location).query)["state"][0]
    resp = client.get(f"/sidebar/oauth?code={code}&state={state}")
    assert resp.status_code == 400 and "过期" in resp.get_data(as_text=True)
    # A WeCom member who is not a guide here.
    standin.corp.add_member("cashier01", "收银员")
    state = parse_qs(urlsplit(client.get("/sidebar/login").location).query)["state"][0]
    resp = client.get(f"/sidebar/oauth?code={standin.corp.issue_oauth_code('cashier01')}&state={state}")
    assert resp.status_code == 403 and "没有开通" in resp.get_data(as_text=True)
    # An open redirect is not followed after sign-in.
    state = parse_qs(urlsplit(client.get("/sidebar/login?next=//evil.example/x").location).query)["state"][0]
    resp = client.get(f"/sidebar/oauth?code={standin.corp.issue_oauth_code('guide01')}&state={state}")
    assert resp.location == "/sidebar/"


def test_page_renders_first_screen_and_audits(app, client, chain):
    ext = chain.ext[chain.mine.id]
    sign_in(client, chain.guide)
    resp = client.get(f"/sidebar/?customer={ext}&entry=single_chat_tools")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    for text in ("客户", "标签", "话术", "素材", "任务", "优惠券", "138****1234", "重要价值客户", "王丽", "高意向"):
        assert text in html, text
    assert "13812341234" not in html
    assert 'data-tab="coupons"' in html and "disabled" in html.split('data-tab="coupons"')[1][:80]
    views = db.session.scalars(select(ProfileView)).all()
    assert [(v.guide_id, v.entry) for v in views] == [(chain.guide.id, "single_chat_tools")]
    # Not this guide's customer: 404 with no hint, and no audit row.
    resp = client.get(f"/sidebar/?customer={chain.ext[chain.colleagues.id]}")
    assert resp.status_code == 404 and "刘先生" not in resp.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(ProfileView)) == 1
    # Outside demo mode there is no picker, and the page loads the WeCom JS-SDK.
    assert client.get("/sidebar/demo").status_code == 404
    assert app.config["WECOM_JSSDK_URLS"][0] in html


def test_demo_picker_stands_in_for_wecom(app, client, chain):
    app.config["DEMO"] = True
    try:
        resp = client.get("/sidebar/")
        assert resp.status_code == 302
        resp = client.get(resp.location, follow_redirects=True)
        assert "王丽" in resp.get_data(as_text=True)
        resp = client.post("/sidebar/demo", data={"guide": "guide01"})
        assert resp.location == "/sidebar/demo/customers"
        listing = client.get(resp.location).get_data(as_text=True)
        assert "张女士" in listing and "刘先生" not in listing
        page = client.get(f"/sidebar/?customer={chain.ext[chain.mine.id]}").get_data(as_text=True)
        assert "演示" in page and "sb-demo-sent" in page and app.config["WECOM_JSSDK_URLS"][0] not in page
    finally:
        app.config["DEMO"] = False


def test_assets_within_budget(app, client):
    import gzip

    total = 0
    for name in ("weui/weui.min.css", "sidebar.css", "sidebar.js"):
        resp = client.get(f"/sidebar/static/{name}")
        assert resp.status_code == 200
        total += len(gzip.compress(resp.get_data()))
        resp.close()
    assert total <= 150 * 1024
