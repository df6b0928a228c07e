"""Tracked links: the open and redirect, conversions from orders, the funnels, the sidebar's send API."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import func, select

from core.db import db
from core.timeutil import local_today
from models import Content, Event, LinkOpen, Script, ScriptSend, TrackedLink, Touch
from tests.knowledge.test_api import sign_in
from tests.tasks import factories as f
from tests.tasks.factories import TZ
from tracking import funnels
from tracking import operations as ops


def content(eid="c-zhuannai", title="转奶七日法图解", url="https://example.com/a/1", **kw) -> Content:
    c = Content(external_id=eid, title=title, summary="一图看懂转奶节奏", url=url,
                cover_url="https://example.com/cover.png", **kw)
    db.session.add(c)
    db.session.flush()
    return c


def script(eid="s-zhuannai", title="转奶方法") -> Script:
    s = Script(external_id=eid, title=title, body="转奶建议7到10天慢慢过渡。")
    db.session.add(s)
    db.session.flush()
    return s


def noon(days_ago=0) -> datetime:
    return datetime.combine(local_today() - timedelta(days=days_ago), datetime.min.time().replace(hour=12),
                            tzinfo=TZ)


def test_open_is_recorded_with_who_and_what_then_redirects(app, client):
    g = f.guide()
    c = f.customer(g)
    item = content()
    link = ops.create_tracked_link(g, c, item)
    db.session.commit()
    assert link.url == f"{app.config['PUBLIC_BASE_URL'].rstrip('/')}/c/{link.token}"
    assert len(link.token) >= 22  # 128 random bits

    for _ in range(2):  # a repeat open is counted again
        resp = client.get(f"/c/{link.token}", headers={"User-Agent": "Mozilla/5.0 MicroMessenger/8.0"})
        assert resp.status_code == 302 and resp.headers["Location"] == "https://example.com/a/1"
        assert resp.headers["Cache-Control"] == "no-store"
    opens = db.session.scalars(select(LinkOpen)).all()
    assert len(opens) == 2
    assert {(o.customer_id, o.guide_id, o.content_id) for o in opens} == {(c.id, g.id, item.id)}
    assert "MicroMessenger" in opens[0].user_agent
    events = db.session.scalars(select(Event).where(Event.type == "link_opened")).all()
    assert len(events) == 1 and events[0].payload["title"] == "转奶七日法图解"  # the first open, on her trajectory
    assert client.head(f"/c/{link.token}").status_code == 302  # a link preview: not an open
    assert db.session.scalar(select(func.count()).select_from(LinkOpen)) == 2


def test_unknown_token_gets_a_friendly_chinese_404_and_records_nothing(app, client):
    resp = client.get("/c/not-a-real-token")
    assert resp.status_code == 404
    assert "链接不存在或已失效" in resp.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(LinkOpen)) == 0


def test_tokens_are_unique_and_links_without_a_target_are_refused(app):
    g = f.guide()
    c = f.customer(g)
    item = content()
    tokens = {ops.create_tracked_link(g, c, item).token for _ in range(50)}
    assert len(tokens) == 50
    for bad in (content("c-img", url=None), content("c-js", url="javascript:alert(1)")):
        try:
            ops.create_tracked_link(g, c, bad)
            raise AssertionError("a link without an http(s) target was created")
        except ops.TrackingInputError as exc:
            assert "链接" in str(exc)
    assert db.session.scalar(select(func.count()).select_from(TrackedLink)) == 50


def test_funnel_by_content_and_guide_counts_opens_and_conversions_within_7_days(app):
    a, b = f.guide("a"), f.guide("b")
    c1, c2, c3, c4 = f.customer(a), f.customer(a), f.customer(b), f.customer(b)
    zhuannai, huodong = content(), content("c-all", "门店活动视频", "https://example.com/v/2")
    formula = f.product()
    sent = noon(20)
    l1 = ops.create_tracked_link(a, c1, zhuannai, now=sent)  # opened twice, order 3 days later: converted
    ops.record_open(l1.token, now=sent + timedelta(hours=1))
    ops.record_open(l1.token, now=sent + timedelta(hours=2))
    f.order(c1, sent + timedelta(days=3), (formula, 2))
    l2 = ops.create_tracked_link(a, c2, zhuannai, now=sent)  # opened, order 8 days later: not converted
    ops.record_open(l2.token, now=sent + timedelta(hours=1))
    f.order(c2, sent + timedelta(days=8, hours=2), (formula, 1))
    ops.create_tracked_link(b, c3, zhuannai, now=sent)  # never opened (bought anyway: no credit)
    f.order(c3, sent + timedelta(days=1), (formula, 1))
    l4 = ops.create_tracked_link(b, c4, huodong, now=sent)  # an order before the open does not count
    f.order(c4, sent + timedelta(hours=1), (formula, 1))
    ops.record_open(l4.token, now=sent + timedelta(hours=5))
    db.session.commit()

    rows = {r["key"]: r for r in funnels.funnel("content")}
    assert (rows["c-zhuannai"]["sent"], rows["c-zhuannai"]["opened"], rows["c-zhuannai"]["opens"],
            rows["c-zhuannai"]["converted"]) == (3, 2, 3, 1)
    assert rows["c-zhuannai"]["gmv"] == "600.00" and rows["c-zhuannai"]["label"] == "转奶七日法图解"
    assert rows["c-zhuannai"]["conversion_rate"] == round(1 / 3, 4)
    assert (rows["c-all"]["sent"], rows["c-all"]["opened"], rows["c-all"]["converted"]) == (1, 1, 0)
    by_guide = {r["key"]: r for r in funnels.funnel("guide")}
    assert (by_guide["a"]["sent"], by_guide["a"]["opened"], by_guide["a"]["converted"]) == (2, 2, 1)
    assert (by_guide["b"]["sent"], by_guide["b"]["opened"], by_guide["b"]["converted"]) == (2, 1, 0)
    assert funnels.funnel("content", since=sent + timedelta(days=1)) == []


def test_report_funnel_cli_prints_rows_and_json(app, runner):
    g = f.guide()
    c = f.customer(g)
    link = ops.create_tracked_link(g, c, content(), now=noon(2))
    ops.record_open(link.token, now=noon(2))
    f.order(c, noon(1), (f.product(), 1))
    db.session.commit()
    out = runner.invoke(args=["report", "funnel", "--by", "content", "--json"])
    assert out.exit_code == 0, out.output
    row = json.loads(out.output.splitlines()[0])
    assert (row["by"], row["key"], row["sent"], row["opened"], row["converted"]) == ("content", "c-zhuannai", 1, 1, 1)
    out = runner.invoke(args=["report", "funnel", "--by", "guide"])
    assert out.exit_code == 0 and "guide01" in out.output and "100.0%" in out.output
    out = runner.invoke(args=["report", "funnel", "--since", "yesterday"])
    assert out.exit_code != 0 and "is not a date" in out.output


def test_script_stats_count_sends_and_orders_within_7_days(app, runner):
    g = f.guide()
    c1, c2 = f.customer(g), f.customer(g)
    s1, s2 = script(), script("s-bianmi", "宝宝便秘怎么办")
    formula = f.product()
    db.session.add_all([
        ScriptSend(script_id=s1.id, guide_id=g.id, customer_id=c1.id, sent_at=noon(10)),
        ScriptSend(script_id=s1.id, guide_id=g.id, customer_id=c2.id, sent_at=noon(10)),
        ScriptSend(script_id=s1.id, guide_id=g.id, customer_id=None, sent_at=noon(10)),  # from the chat-bot
        ScriptSend(script_id=s2.id, guide_id=g.id, customer_id=c2.id, sent_at=noon(30)),
    ])
    f.order(c1, noon(8), (formula, 1))  # 2 days after s1's send to c1
    f.order(c2, noon(1), (formula, 1))  # 9 days after s1's send to c2; long after s2's
    db.session.commit()
    rows = {r["external_id"]: r for r in funnels.script_stats()}
    assert (rows["s-zhuannai"]["sends"], rows["s-zhuannai"]["customers"], rows["s-zhuannai"]["converted"],
            rows["s-zhuannai"]["gmv"]) == (3, 2, 1, "300.00")
    assert (rows["s-bianmi"]["sends"], rows["s-bianmi"]["converted"]) == (1, 0)
    out = runner.invoke(args=["knowledge", "stats", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output.splitlines()[0])["external_id"] == "s-zhuannai"


def test_sidebar_send_returns_the_news_card_and_counts_a_marketing_touch(app, client, monkeypatch):
    from tasks import quota

    monkeypatch.setattr(quota, "_in_quiet_hours", lambda *a: False)  # the test runs at any hour
    g = f.guide()
    c = f.customer(g)
    item = content()
    content("c-two")
    db.session.commit()
    headers = sign_in(client, g)
    ext = f.external_userid(c)
    resp = client.post(f"/api/sidebar/customers/{ext}/content/c-zhuannai/send", json={}, headers=headers)
    assert resp.status_code == 201, resp.json
    news = resp.json["message"]["news"]
    assert news["title"] == "转奶七日法图解" and news["desc"] == "一图看懂转奶节奏" and news["imgUrl"]
    link = db.session.scalar(select(TrackedLink))
    assert news["link"] == link.url and link.url.endswith("/c/" + link.token)
    touch = db.session.scalar(select(Touch))
    assert (touch.kind, touch.channel, touch.ref, touch.customer_id) == ("marketing", "content", "c-zhuannai", c.id)
    assert client.get(f"/c/{link.token}").headers["Location"] == item.url

    # The day's marketing cap is used: the second send is refused with the reason and writes nothing.
    resp = client.post(f"/api/sidebar/customers/{ext}/content/c-two/send", json={}, headers=headers)
    assert resp.status_code == 409 and resp.json["code"] == "daily_cap"
    assert "今天已收到1条营销消息" in resp.json["error"] and resp.json["quota"]["today_left"] == 0
    assert db.session.scalar(select(func.count()).select_from(TrackedLink)) == 1


def test_sidebar_send_access_and_bad_input(app, client):
    a, b = f.guide("a"), f.guide("b")
    mine, theirs = f.customer(a), f.customer(b)
    content()
    content("c-off", enabled=False)
    content("c-nolink", url="")
    db.session.commit()

    def url(customer, ref="c-zhuannai"):
        return f"/api/sidebar/customers/{f.external_userid(customer)}/content/{ref}/send"

    assert client.post(url(mine), json={}).status_code == 401
    headers = sign_in(client, a)
    assert client.post(url(mine), json={}).status_code == 403  # no CSRF token
    assert client.post(url(theirs), json={}, headers=headers).status_code == 404
    assert client.post("/api/sidebar/customers/wmNobody/content/c-zhuannai/send", json={},
                       headers=headers).status_code == 404
    assert client.post(url(mine, "nope"), json={}, headers=headers).status_code == 404
    resp = client.post(url(mine, "c-off"), json={}, headers=headers)
    assert resp.status_code == 400 and "已停用" in resp.json["error"]
    assert client.post(url(mine, "c-nolink"), json={}, headers=headers).status_code == 400
    assert db.session.scalar(select(func.count()).select_from(TrackedLink)) == 0
    assert db.session.scalar(select(func.count()).select_from(Touch)) == 0


def test_funnel_api_for_managers_of_their_store_and_head_office(app, client):
    a, b = f.guide("a", store_code="S1"), f.guide("b", store_code="S2")
    boss = f.guide("boss", role="manager", store_code="S1")
    hq = f.guide("hq", role="admin", store_code="S1")
    item = content()
    for g in (a, b, b):
        link = ops.create_tracked_link(g, f.customer(g), item, now=noon(3))
        ops.record_open(link.token, now=noon(3))
    db.session.commit()
    sign_in(client, a)
    assert client.get("/api/reports/funnel").status_code == 403
    sign_in(client, boss)
    rows = client.get("/api/reports/funnel", query_string={"by": "guide"}).json["rows"]
    assert [(r["key"], r["sent"], r["opened"]) for r in rows] == [("a", 1, 1)]  # own store only
    assert client.get("/api/reports/funnel", query_string={"by": "colour"}).status_code == 400
    assert client.get("/api/reports/funnel", query_string={"since": "soon"}).status_code == 400
    sign_in(client, hq)
    rows = client.get("/api/reports/funnel", query_string={"by": "store"}).json["rows"]
    assert [(r["key"], r["sent"]) for r in rows] == [("S2", 2), ("S1", 1)]
    rows = client.get("/api/reports/funnel", query_string={"store": "S2"}).json["rows"]
    assert rows[0]["key"] == "c-zhuannai" and rows[0]["sent"] == 2
    assert client.get("/api/reports/funnel", query_string={"store": "S9"}).status_code == 404


def test_a_store_manager_sees_only_their_store_whatever_they_ask(app, client):
    """The funnel API and the manager page share one store scope: a manager asking for another store with
    ?store= still gets their own; a manager without a store sees nothing (the API answers 403)."""
    a, b = f.guide("a", store_code="S1"), f.guide("b", store_code="S2")
    boss = f.guide("boss", role="manager", store_code="S1")
    item = content()
    for g in (a, b, b):
        ops.create_tracked_link(g, f.customer(g), item, now=noon(3))
    db.session.commit()
    sign_in(client, boss)
    for query in ({"store": "S2"}, {"store": "S2", "by": "guide"}, {"store": "S2", "by": "store"},
                  {"store": "S9", "by": "store"}):
        resp = client.get("/api/reports/funnel", query_string=query)
        assert resp.status_code == 200, query
        assert [r["sent"] for r in resp.json["rows"]] == [1], query  # S1's one link, never S2's two
    page = client.get(f"/manager/?tab=guides&period=day&date={noon(3):%Y-%m-%d}&store=S2").get_data(as_text=True)
    assert 'title="a"' in page and 'title="b"' not in page
    boss.store = None
    db.session.commit()
    resp = client.get("/api/reports/funnel", query_string={"store": "S2"})
    assert resp.status_code == 403 and resp.json["error"] == "店长账号没有所属门店"
    assert "title=\"a\"" not in client.get(f"/manager/?tab=guides&period=day&date={noon(3):%Y-%m-%d}").get_data(
        as_text=True)  # the page shows such a manager nothing
