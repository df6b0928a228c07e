"""Sidebar integration: recommended products sent into the chat (a marketing touch), the guide's workbench
without a customer (a push's deep link `?tab=`), the 排行 tab and the default tab by time of day."""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import func, select

from core.db import db
from core.timeutil import app_tz, local_today
from models import Event, ProfileView, RedDot, Touch
from tests.knowledge.factories import LIBRARY
from tests.knowledge.test_library import load
from tests.recommend.test_recommend import catalog
from tests.sidebar.factories import sign_in, task_for
from tests.tasks import factories as tf


@pytest.fixture(autouse=True)
def _products(app):
    catalog()
    db.session.commit()


def _rec_url(ext: str, sku: str | None = None) -> str:
    base = f"/api/customers/{ext}/recommendations"
    return base if sku is None else f"{base}/{sku}/send"


def test_recommended_product_sent_as_text_and_counted_as_a_marketing_touch(app, client, chain, daytime):
    headers = sign_in(client, chain.guide)
    ext = chain.ext[chain.mine.id]
    recs = client.get(_rec_url(ext), query_string={"top": 5}).json["recommendations"]
    assert 1 <= len(recs) <= 5 and all(r["reason"] and r["price"] for r in recs)
    first = recs[0]

    resp = client.post(_rec_url(ext, first["sku"]), headers=headers)
    assert resp.status_code == 201
    text = resp.json["message"]["text"]["content"]
    assert resp.json["message"]["msgtype"] == "text"
    assert first["name"] in text and f"¥{first['price']}" in text
    assert first["reason"] not in text  # the reason is for the guide, not the customer
    assert resp.json["quota"]["today_left"] == 0
    touch = db.session.scalar(select(Touch))
    assert (touch.kind, touch.channel, touch.ref, touch.guide_id) == ("marketing", "product", first["sku"],
                                                                      chain.guide.id)
    event = db.session.scalar(select(Event).where(Event.type == "product_sent"))
    assert event.payload["title"] == first["name"] and event.customer_id == chain.mine.id

    # Over today's cap: refused with the reason, nothing counted, nothing recorded.
    again = client.post(_rec_url(ext, recs[-1]["sku"]), headers=headers)
    assert again.status_code == 409 and again.json["code"] == "daily_cap" and "明天" in again.json["error"]
    assert db.session.scalar(select(func.count()).select_from(Touch)) == 1
    assert db.session.scalar(select(func.count()).select_from(Event).where(Event.type == "product_sent")) == 1


def test_recommendation_send_refusals(app, client, chain, daytime, monkeypatch):
    headers = sign_in(client, chain.guide)
    ext = chain.ext[chain.mine.id]
    assert client.post(_rec_url(ext, "ND-HW-S")).status_code == 403  # no CSRF token
    resp = client.post(_rec_url(ext, "NO-SUCH"), headers=headers)
    assert resp.status_code == 404 and "商品" in resp.json["error"]
    theirs = chain.ext[chain.elsewhere.id]
    assert client.post(_rec_url(theirs, "ND-HW-S"), headers=headers).status_code == 404
    # 23:00 local: the quiet hours refuse a marketing send, with the reason.
    late = datetime.combine(local_today(), datetime.min.time(), tzinfo=app_tz()).replace(hour=23)
    monkeypatch.setattr("tasks.quota.utcnow", lambda: late)
    resp = client.post(_rec_url(ext, "ND-HW-S"), headers=headers)
    assert resp.status_code == 409 and resp.json["code"] == "quiet_hours" and "免打扰" in resp.json["error"]
    assert db.session.scalar(select(func.count()).select_from(Touch)) == 0


def _active_tab(html: str) -> str:
    marker = 'class="sb-tab is-active" data-tab="'
    assert html.count(marker) == 1
    return html.split(marker, 1)[1].split('"', 1)[0]


def test_workbench_lists_all_tasks_grouped_by_rule_each_opening_its_customer(app, client, chain):
    second = tf.customer(chain.guide, name="周女士")
    db.session.commit()
    dot1 = task_for(chain, chain.mine, rule="dormant")
    dot2 = task_for(chain, second, rule="birthday")
    task_for(chain, chain.colleagues, rule="dormant").guide_id = chain.colleague.id  # not mine
    db.session.commit()
    sign_in(client, chain.guide)
    resp = client.get("/sidebar/?tab=tasks")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert _active_tab(html) == "tasks" and "我的工作台" in html
    assert html.count("data-rule-group=") == 2  # two rules, two groups
    assert f'href="/sidebar/?customer={chain.ext[chain.mine.id]}"' in html
    assert f'href="/sidebar/?customer={tf.external_userid(second)}"' in html
    assert "刘先生" not in html  # a colleague's task is not on my workbench
    assert f'data-action="task-done" data-task="{dot1.id}"' in html
    assert f'data-action="task-skip" data-task="{dot2.id}"' in html
    assert "今天待办 2 项 / 共 2 项" in html
    # Only the workbench's tabs; no customer, so no profile view is audited.
    assert 'data-tab="customer"' not in html and 'data-tab="ranking"' in html
    assert db.session.scalar(select(func.count()).select_from(ProfileView)) == 0
    # Done in one tap from the workbench (the same API as with a customer).
    headers = sign_in(client, chain.guide)
    assert client.post(f"/api/tasks/{dot1.id}/done", headers=headers).json["status"] == "done"
    html = client.get("/sidebar/?tab=tasks").get_data(as_text=True)
    assert "今天待办 1 项 / 共 2 项" in html and "已完成" in html


def open_done_and_more(chain):
    """Today's tasks of the guide: one open, one done, one kept in 「更多」. Returns the other two customers."""
    second, third = tf.customer(chain.guide, name="周女士"), tf.customer(chain.guide, name="吴女士")
    db.session.commit()
    task_for(chain, chain.mine, rule="dormant")
    task_for(chain, second, rule="birthday").status = "done"
    task_for(chain, third, rule="dormant").visible = False  # kept in 「更多」
    db.session.commit()
    return second, third


def test_workbench_counts_are_its_list(app, client, chain):
    """The summary line counts the tasks the page lists (shown, open, in 「更多」), read once."""
    from tests.statements import statements

    open_done_and_more(chain)
    sign_in(client, chain.guide)
    with statements("from red_dots") as reads:
        html = client.get("/sidebar/?tab=tasks").get_data(as_text=True)
    assert len(reads) == 1  # the list; the counts come from it
    assert "今天待办 1 项 / 共 2 项（另有 1 项在「更多」里）" in html
    assert html.count('class="sb-task ') == 3


def test_the_tasks_api_counts_the_day_from_its_list_and_a_customers_view_keeps_the_days_counts(app, client, chain):
    from tests.statements import statements

    second, _ = open_done_and_more(chain)
    sign_in(client, chain.guide)
    with statements("from red_dots") as reads:
        day = client.get("/api/tasks").json
    assert len(reads) == 1
    assert day["summary"] == {"total": 2, "open": 1, "by_rule": {"沉睡回访": 1}, "more": 1}
    ext = next(i.value for i in second.identities if i.kind == "external_userid")
    one = client.get("/api/tasks", query_string={"customer": ext}).json
    assert len(one["tasks"]) == 1 and one["summary"] == day["summary"]  # still the whole day's line


def test_workbench_content_is_the_morning_briefs(app, client, chain, tmp_path):
    load(tmp_path, LIBRARY)
    sign_in(client, chain.guide)
    html = client.get("/sidebar/?tab=content").get_data(as_text=True)
    assert _active_tab(html) == "content"
    from bot.pushes import morning_content

    titles = [c.title for c in morning_content(local_today(), limit=10)]
    assert titles and all(t in html for t in titles)
    assert "转奶七日法图解" in html


def test_the_chat_toolbar_page_reads_nothing_of_the_workbench(app, client, chain, tmp_path):
    """Opened from a chat (no customer, no tab) the page only finds the customer and reloads: it neither reads
    nor shows the workbench's tasks and content."""
    from tests.statements import statements

    load(tmp_path, LIBRARY)
    task_for(chain, chain.mine, rule="dormant")
    db.session.commit()
    sign_in(client, chain.guide)
    with statements() as sent:
        resp = client.get("/sidebar/")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and app.config["WECOM_JSSDK_URLS"][0] in html and "sidebar.js" in html
    assert not [sql for sql in sent if "red_dots" in sql or "contents" in sql]
    assert "sb-workbench-title" not in html and "data-rule-group=" not in html and "转奶七日法图解" not in html
    assert '"workbench": "/sidebar/?tab=' in html
    assert db.session.scalar(select(func.count()).select_from(ProfileView)) == 0


def test_default_tab_follows_the_time_of_day_and_tab_selects(app, client, chain, monkeypatch):
    sign_in(client, chain.guide)
    for hour, tab in ((7, "content"), (12, "tasks"), (20, "ranking")):
        now = datetime.combine(local_today(), datetime.min.time(), tzinfo=app_tz()).replace(hour=hour)
        monkeypatch.setattr("sidebar.views.utcnow", lambda now=now: now)
        opening = client.get("/sidebar/").get_data(as_text=True)  # outside a chat it goes on to the workbench
        assert f'id="sb-workbench-link" href="/sidebar/?tab={tab}"' in opening
        assert _active_tab(client.get(f"/sidebar/?tab={tab}").get_data(as_text=True)) == tab
        assert _active_tab(client.get("/sidebar/?tab=content").get_data(as_text=True)) == "content"
    ext = chain.ext[chain.mine.id]
    # With a customer: the 客户 tab unless ?tab= names another.
    assert _active_tab(client.get(f"/sidebar/?customer={ext}").get_data(as_text=True)) == "customer"
    assert _active_tab(client.get(f"/sidebar/?customer={ext}&tab=scripts").get_data(as_text=True)) == "scripts"
    assert _active_tab(client.get(f"/sidebar/?customer={ext}&tab=ranking").get_data(as_text=True)) == "ranking"
    assert _active_tab(client.get(f"/sidebar/?customer={ext}&tab=nonsense").get_data(as_text=True)) == "customer"
    assert _active_tab(client.get("/sidebar/?tab=nonsense").get_data(as_text=True)) == "ranking"  # 20:00


def test_ranking_marks_my_row_and_links_managers_to_the_manager_page(app, client, chain):
    p = tf.product("NF-2")
    tf.order(chain.mine, tf.at(local_today(), 11), (p, 1))  # ¥328 credited to 王丽 today
    db.session.commit()
    sign_in(client, chain.guide)
    body = client.get("/api/sidebar/ranking").json
    assert [(r["name"], r["gmv"], r["me"]) for r in body["rows"]] == [("王丽", "328.00", True),
                                                                        ("李娜", "0.00", False)]
    assert body["my_rank"] == 1 and body["manager_url"] is None
    sign_in(client, chain.colleague)
    body = client.get("/api/sidebar/ranking").json
    assert body["my_rank"] == 2 and [r["me"] for r in body["rows"]] == [False, True]
    sign_in(client, chain.manager)
    body = client.get("/api/sidebar/ranking").json
    assert body["manager_url"] == "/manager/" and body["my_rank"] is None and len(body["rows"]) == 2
    assert 'id="sb-manager-link" href="/manager/"' in client.get("/sidebar/?tab=ranking").get_data(as_text=True)
    sign_in(client, chain.stranger)  # another store: their own team only
    assert [r["name"] for r in client.get("/api/sidebar/ranking").json["rows"]] == ["赵敏"]
    resp = client.get("/api/sidebar/ranking?date=yesterday")
    assert resp.status_code == 400 and "date" in resp.json["error"] and "yesterday" in resp.json["error"]
