"""The sidebar's JSON API: the first screen, access control, tags synced to WeCom, content sends, bad input."""
from __future__ import annotations

import time
from urllib.parse import urlsplit

from sqlalchemy import func, select

from core.db import db
from models import CustomerTag, Event, LinkOpen, ProfileView, Tag, TagGroup, Touch, TrackedLink
from sidebar.operations import GUIDE_TAG_GROUP
from tests.knowledge.factories import LIBRARY
from tests.knowledge.test_library import load
from tests.sidebar.factories import sign_in, task_for


def _tag_id(name: str) -> int:
    return db.session.scalar(select(Tag.id).where(Tag.name == name))


def _customer_tags(customer) -> set[str]:
    return set(db.session.scalars(select(Tag.name).join(CustomerTag).where(CustomerTag.customer_id == customer.id)))


def test_first_screen_in_one_call(app, client, chain, tmp_path):
    load(tmp_path, LIBRARY + [
        {"kind": "script", "external_id": "s-huifang", "title": "回访问候", "category": "回访",
         "body": "张姐，宝宝最近奶粉喝得怎么样？", "tags": ["0-6月", "奶粉"]}])
    task_for(chain, chain.mine, script="s-huifang")
    sign_in(client, chain.guide)
    ext = chain.ext[chain.mine.id]
    resp = client.get(f"/api/sidebar/first-screen?customer={ext}")
    assert resp.status_code == 200
    body = resp.json
    c = body["customer"]
    assert c["name"] == "张女士" and c["remark"] == "张女士备注"
    assert c["mobile"] == "138****1234"  # never the whole number
    assert "13812341234" not in resp.get_data(as_text=True)
    assert c["baby"].startswith("宝宝4个月") or c["baby"].startswith("宝宝5个月")
    assert c["lifecycle"] == "active" and c["lifecycle_label"] == "活跃"
    assert c["rfm"] == "重要价值客户"  # ordered 10 days ago, 4 orders, ¥2,624
    assert c["binding_guide"] == "王丽" and c["total_spend"] == "2624.00" and c["order_count"] == 4
    assert c["member_level"] == "金卡" and c["points"] == 1280
    assert len(c["timeline"]) == 30  # the latest 30 of 39 events, newest first
    assert c["timeline"][0]["label"] == "资料更新" or c["timeline"][0]["at"] >= c["timeline"][-1]["at"]
    assert [g["name"] for g in body["tags"]] == ["宝宝月龄", "客户意向", GUIDE_TAG_GROUP]
    assert [t["id"] for t in body["tasks"]] and body["tasks"][0]["reason"].startswith("30天")
    assert "s-huifang" in body["task_scripts"]
    assert body["suggestions"], "openers for a customer with a 0-6月 baby who buys formula"
    assert body["quota"]["today_left"] >= 0
    # Every profile view is audited: who, whom, when.
    views = db.session.scalars(select(ProfileView)).all()
    assert [(v.guide_id, v.customer_id, v.entry) for v in views] == [(chain.guide.id, chain.mine.id, "api")]


def test_access_guide_own_manager_store_admin_all_else_404(app, client, chain):
    mine, colleagues, elsewhere = (chain.ext[c.id] for c in (chain.mine, chain.colleagues, chain.elsewhere))

    def status(guide, ext):
        sign_in(client, guide)
        return client.get(f"/api/sidebar/customers/{ext}/profile").status_code

    assert status(chain.guide, mine) == 200
    assert status(chain.guide, colleagues) == 404  # a colleague's customer: no hint that it exists
    assert status(chain.guide, "wmNOSUCHCUSTOMER") == 404
    assert client.get("/api/sidebar/customers/wmNOSUCH/profile").json["error"].startswith("找不到")
    assert status(chain.manager, mine) == 200 and status(chain.manager, colleagues) == 200
    assert status(chain.manager, elsewhere) == 404  # another store
    assert status(chain.admin, elsewhere) == 200
    # Writes are guarded the same way.
    headers = sign_in(client, chain.guide)
    resp = client.post(f"/api/sidebar/customers/{colleagues}/tags", json={"tag": _tag_id("高意向"), "on": True},
                       headers=headers)
    assert resp.status_code == 404


def test_expired_or_forged_session_401_with_relogin_path(app, client, chain):
    ext = chain.ext[chain.mine.id]
    resp = client.get(f"/api/sidebar/first-screen?customer={ext}")
    assert resp.status_code == 401 and resp.json["login_url"].startswith("/sidebar/login")
    sign_in(client, chain.guide, at=time.time() - 13 * 3600)
    assert client.get(f"/api/sidebar/first-screen?customer={ext}").status_code == 401
    client.set_cookie("session", "eyJndWlkZV9pZCI6MX0.forged.signature", domain="localhost")
    assert client.get(f"/api/sidebar/first-screen?customer={ext}").status_code == 401
    assert db.session.scalar(select(func.count()).select_from(ProfileView)) == 0


def test_tag_add_and_remove_sync_to_wecom(app, client, chain, standin):
    ext = chain.ext[chain.mine.id]
    headers = sign_in(client, chain.guide)
    tag_id = _tag_id("高意向")
    resp = client.post(f"/api/sidebar/customers/{ext}/tags", json={"tag": tag_id, "on": True}, headers=headers)
    assert resp.status_code == 200 and resp.json == {"id": tag_id, "name": "高意向", "on": True, "changed": True}
    call = standin.corp.calls_to("externalcontact/mark_tag")[-1]["body"]
    wecom_id = db.session.get(Tag, tag_id).wecom_id
    assert call == {"userid": "guide01", "external_userid": ext, "add_tag": [wecom_id]}
    follow = standin.corp.contacts[ext]["follow_user"][0]
    assert [t["tag_name"] for t in follow["tags"]] == ["高意向"]
    assert _customer_tags(chain.mine) == {"高意向"}
    resp = client.post(f"/api/sidebar/customers/{ext}/tags", json={"tag": tag_id, "on": False}, headers=headers)
    assert resp.json["on"] is False
    assert standin.corp.calls_to("externalcontact/mark_tag")[-1]["body"]["remove_tag"] == [wecom_id]
    assert standin.corp.contacts[ext]["follow_user"][0]["tags"] == [] and _customer_tags(chain.mine) == set()
    assert [e.type for e in db.session.scalars(select(Event).where(Event.type.like("tag_%")).order_by(Event.id))] \
        == ["tag_added", "tag_removed"]
    # A manager tags on the binding guide's relation (WeCom marks tags per member).
    headers = sign_in(client, chain.manager)
    client.post(f"/api/sidebar/customers/{ext}/tags", json={"tag": tag_id, "on": True}, headers=headers)
    assert standin.corp.calls_to("externalcontact/mark_tag")[-1]["body"]["userid"] == "guide01"


def test_wecom_errors_plain_chinese_and_nothing_half_written(app, client, chain, standin):
    ext = chain.ext[chain.mine.id]
    headers = sign_in(client, chain.guide)
    standin.corp.add_fault("externalcontact/mark_tag", 45009)
    resp = client.post(f"/api/sidebar/customers/{ext}/tags", json={"tag": _tag_id("高意向"), "on": True},
                       headers=headers)
    assert resp.status_code == 502 and resp.json["errcode"] == 45009
    assert resp.json["error"] == "调用企业微信太频繁，请过几分钟再试。"
    assert _customer_tags(chain.mine) == set()  # WeCom refused: not stored here either
    assert db.session.scalar(select(func.count()).select_from(Event).where(Event.type == "tag_added")) == 0
    # 40014 twice: the client re-fetches the token and retries once, then gives up.
    standin.corp.add_fault("externalcontact/mark_tag", 40014, times=2)
    resp = client.post(f"/api/sidebar/customers/{ext}/notes", json={"name": "送礼"}, headers=headers)
    assert resp.status_code == 502 and "凭证" in resp.json["error"]
    assert _customer_tags(chain.mine) == set()
    assert db.session.scalar(select(func.count()).select_from(Tag).where(Tag.name == "送礼")) == 0
    # The corp tag was created in WeCom before mark_tag failed; trying again finds it instead of failing.
    resp = client.post(f"/api/sidebar/customers/{ext}/notes", json={"name": "送礼"}, headers=headers)
    assert resp.status_code == 201 and _customer_tags(chain.mine) == {"送礼"}
    groups = [g for g in standin.corp.tag_groups if g["group_name"] == GUIDE_TAG_GROUP]
    assert len(groups) == 1 and [t["name"] for t in groups[0]["tag"]] == ["送礼"]


def test_free_text_guide_tag(app, client, chain, standin):
    ext = chain.ext[chain.mine.id]
    headers = sign_in(client, chain.guide)
    for bad, reason in (("", "标签名不能为空"), ("   ", "标签名不能为空"), ("券" * 31, "不能超过30个字"),
                        (None, "标签名不能为空")):
        resp = client.post(f"/api/sidebar/customers/{ext}/notes", json={"name": bad}, headers=headers)
        assert resp.status_code == 400 and reason in resp.json["error"], bad
    assert standin.corp.calls_to("externalcontact/add_corp_tag") == []  # nothing reached WeCom
    resp = client.post(f"/api/sidebar/customers/{ext}/notes", json={"name": " 企业 采购 "}, headers=headers)
    assert resp.status_code == 201 and resp.json["name"] == "企业 采购"
    resp = client.post(f"/api/sidebar/customers/{ext}/notes", json={"name": "券" * 30}, headers=headers)
    assert resp.status_code == 201
    group = db.session.scalar(select(TagGroup).where(TagGroup.name == GUIDE_TAG_GROUP))
    assert group.wecom_id and _customer_tags(chain.mine) == {"企业 采购", "券" * 30}
    follow = standin.corp.contacts[ext]["follow_user"][0]
    assert {t["tag_name"] for t in follow["tags"]} == {"企业 采购", "券" * 30}
    # The notes group lists only this customer's notes; another customer sees none of them.
    sign_in(client, chain.colleague)
    groups = client.get(f"/api/sidebar/customers/{chain.ext[chain.colleagues.id]}/tags").json["groups"]
    assert groups[-1]["name"] == GUIDE_TAG_GROUP and groups[-1]["tags"] == []


def test_bad_tag_input_and_csrf(app, client, chain):
    ext = chain.ext[chain.mine.id]
    headers = sign_in(client, chain.guide)
    url = f"/api/sidebar/customers/{ext}/tags"
    assert client.post(url, json={"tag": _tag_id("高意向"), "on": True}).status_code == 403  # no CSRF token
    assert client.post(url, json={"tag": _tag_id("高意向"), "on": True},
                       headers={"X-CSRF-Token": "wrong"}).status_code == 403
    assert client.post(url, json={"tag": "高意向", "on": True}, headers=headers).status_code == 400
    assert client.post(url, json={"tag": _tag_id("高意向"), "on": "yes"}, headers=headers).status_code == 400
    assert client.post(url, json={"tag": 999999, "on": True}, headers=headers).status_code == 404
    assert _customer_tags(chain.mine) == set()


def test_content_for_customer_sent_as_tracked_news_card(app, client, chain, tmp_path, daytime):
    load(tmp_path)
    from tests.tasks.factories import tag

    tag(chain.mine, "0-6月", group="宝宝月龄")
    db.session.commit()
    ext = chain.ext[chain.mine.id]
    headers = sign_in(client, chain.guide)
    items = client.get(f"/api/sidebar/customers/{ext}/content").json["content"]
    assert [c["external_id"] for c in items] == ["c-zhuannai", "c-all"]  # aimed at 0-6月 first
    resp = client.post(f"/api/sidebar/customers/{ext}/content/c-zhuannai/send", json={}, headers=headers)
    assert resp.status_code == 201
    msg = resp.json["message"]
    assert msg["msgtype"] == "news" and msg["news"]["title"] == "转奶七日法图解"
    # The link is the tracked one: opening it is recorded and lands on the article.
    assert msg["news"]["link"].startswith(app.config["PUBLIC_BASE_URL"].rstrip("/") + "/c/")
    opened = client.get(urlsplit(msg["news"]["link"]).path)
    assert opened.status_code == 302 and opened.headers["Location"] == "https://example.com/a/1"
    assert db.session.scalar(select(func.count()).select_from(LinkOpen)) == 1
    assert db.session.scalar(select(Touch.channel).where(Touch.customer_id == chain.mine.id)) == "content"
    # One marketing touch a day: the second is refused with the reason, and nothing more is counted.
    resp = client.post(f"/api/sidebar/customers/{ext}/content/c-all/send", json={}, headers=headers)
    assert resp.status_code == 409 and "今天已收到" in resp.json["error"]
    assert db.session.scalar(select(func.count()).select_from(Touch)) == 1
    assert db.session.scalar(select(func.count()).select_from(TrackedLink)) == 1  # the refused send left none
    assert client.post(f"/api/sidebar/customers/{ext}/content/nope/send", json={},
                       headers=headers).status_code == 404


def test_scripts_categories_search_send_feedback(app, client, chain, tmp_path):
    load(tmp_path)
    ext = chain.ext[chain.mine.id]
    headers = sign_in(client, chain.guide)
    cats = client.get("/api/sidebar/scripts/categories").json["categories"]
    assert cats[0] == {"category": "喂养", "count": 2}
    listed = client.get("/api/sidebar/scripts?category=喂养").json["scripts"]
    assert [s["external_id"] for s in listed] == ["s-bianmi", "s-zhuannai"]
    assert client.get("/api/sidebar/scripts").status_code == 400
    found = client.get(f"/api/suggest?q=宝宝拉不出粑粑&customer={ext}").json["scripts"]
    assert found[0]["external_id"] == "s-bianmi"
    resp = client.post("/api/suggest/feedback", json={"script": "s-bianmi", "customer": ext, "query": "宝宝拉不出粑粑",
                                                       "source": "searched", "edited": True}, headers=headers)
    assert resp.status_code == 201


def test_first_screen_with_typed_text(app, client, chain, tmp_path):
    load(tmp_path)
    sign_in(client, chain.guide)
    ext = chain.ext[chain.mine.id]
    body = client.get(f"/api/sidebar/first-screen?customer={ext}&q=尿不湿选几码").json
    assert body["suggestions"][0]["external_id"] == "s-chima"


def test_audit_cli(app, client, chain, runner):
    ext = chain.ext[chain.mine.id]
    sign_in(client, chain.guide)
    client.get(f"/api/sidebar/customers/{ext}/profile?entry=single_chat_tools")
    sign_in(client, chain.manager)
    client.get(f"/api/sidebar/first-screen?customer={ext}")
    result = runner.invoke(args=["sidebar", "audit", "--customer", ext])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 2 and "manager01" in lines[0] and "guide01" in lines[1]
    assert "single_chat_tools" in lines[1]
    result = runner.invoke(args=["sidebar", "audit", "--guide", "guide01", "--json"])
    import json

    rows = [json.loads(x) for x in result.output.strip().splitlines()]
    assert [(r["guide"], r["customer"], r["customer_name"]) for r in rows] == [("guide01", ext, "张女士")]
    assert runner.invoke(args=["sidebar", "audit", "--since", "not-a-date"]).exit_code != 0


def test_timeline_reads_every_payload_shape(app, client, chain):
    from datetime import datetime, timezone

    for i, payload in enumerate(({"amount": 258.0, "items": 1}, {"amount": "99", "items": [{"name": "湿巾"}]},
                                 {"items": "?"}, {})):
        db.session.add(Event(customer_id=chain.mine.id, type="order", channel="pos", payload=payload,
                             occurred_at=datetime(2026, 11, 30, 10, i, tzinfo=timezone.utc)))
    db.session.commit()
    sign_in(client, chain.guide)
    timeline = client.get(f"/api/sidebar/customers/{chain.ext[chain.mine.id]}/profile").json["timeline"]
    assert [(e["label"], e["channel"], e["text"]) for e in timeline[:4]] == [
        ("下单", "门店", ""), ("下单", "门店", ""), ("下单", "门店", "¥99 湿巾"), ("下单", "门店", "¥258.0 1件")]
