"""Touch caps across guides, quiet hours, do-not-disturb; and the 任务 tab's API."""
from __future__ import annotations

import threading
from datetime import date, datetime, timedelta

from sqlalchemy import func, select

from core.db import db
from core.timeutil import local_today
from models import RedDot, Touch
from tasks import operations as ops
from tasks import quota
from tests.knowledge.test_api import sign_in
from tests.tasks import factories as f
from tests.tasks.factories import TZ


def noon():
    return datetime.combine(local_today(), datetime.min.time().replace(hour=12), tzinfo=TZ)


def test_one_marketing_touch_a_day_across_all_guides(app):
    a, b = f.guide("a"), f.guide("b")
    c = f.customer(a)
    db.session.commit()
    quota.record_touch(c, a, kind="marketing", channel="content", now=noon())
    try:
        quota.record_touch(c, b, kind="marketing", channel="coupon", now=noon())
        raise AssertionError("a second marketing touch the same day was let through")
    except quota.TouchRefused as exc:
        assert exc.code == "daily_cap" and "今天已收到1条营销消息" in exc.reason
    quota.record_touch(c, b, kind="service", channel="script", now=noon())  # replies are never blocked
    assert db.session.scalar(select(func.count()).select_from(Touch)) == 2


def test_three_a_week_quiet_hours_and_do_not_disturb(app):
    g = f.guide()
    c = f.customer(g)
    db.session.commit()
    for days in (3, 2, 1):
        quota.record_touch(c, g, kind="marketing", channel="content", now=noon() - timedelta(days=days))
    try:
        quota.record_touch(c, g, kind="marketing", channel="content", now=noon())
        raise AssertionError("a fourth marketing touch in 7 days was let through")
    except quota.TouchRefused as exc:
        assert exc.code == "weekly_cap"
    other = f.customer(g)
    db.session.commit()
    late = noon().replace(hour=22)
    try:
        quota.record_touch(other, g, kind="marketing", channel="content", now=late)
        raise AssertionError("a marketing touch at 22:00 was let through")
    except quota.TouchRefused as exc:
        assert exc.code == "quiet_hours" and "21:30–08:30" in exc.reason
    f.tag(other, "免打扰")
    db.session.commit()
    assert quota.quota(other, noon())["reason"] == "顾客设置了免打扰，不能发送营销消息"


def test_two_guides_racing_for_the_last_slot_only_one_wins(app):
    guides = [f.guide(f"g{i}") for i in range(8)]
    c = f.customer(guides[0])
    db.session.commit()
    outcomes = []

    def send(g_id):
        with app.app_context():
            from models import Customer, Guide

            try:
                quota.record_touch(db.session.get(Customer, c.id), db.session.get(Guide, g_id),
                                   kind="marketing", channel="content", now=noon())
                db.session.commit()
                outcomes.append("sent")
            except quota.TouchRefused:
                outcomes.append("refused")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=send, args=(g.id,)) for g in guides]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["refused"] * 7 + ["sent"]
    assert db.session.scalar(select(func.count()).select_from(Touch)) == 1


def test_counters_survive_a_redis_loss(app):
    from core.redis_store import rstore

    g = f.guide()
    c = f.customer(g)
    db.session.commit()
    quota.record_touch(c, g, kind="marketing", channel="content", now=noon())
    db.session.commit()
    rstore.client.flushdb()
    assert quota.quota(c, noon())["today_left"] == 1
    quota.rebuild_counters(noon())
    assert quota.quota(c, noon())["today_left"] == 0


def test_task_tab_api_done_skip_and_auto_done(app, client, monkeypatch):
    monkeypatch.setattr("tasks.quota.utcnow", noon)  # the API's touches, outside quiet hours at any hour of the run
    g = f.guide("guide01")
    other = f.guide("guide02")
    today = local_today()
    recently = today - timedelta(days=10)  # never dormant, whatever day the suite runs
    c1 = f.customer(g, birthday=today + timedelta(days=1), added=recently)
    c2 = f.customer(g, added=today - timedelta(days=1))
    c3 = f.customer(g, birthday=today + timedelta(days=2), added=recently)
    db.session.commit()
    ops.generate(today)
    headers = sign_in(client, g)
    body = client.get("/api/tasks").json
    assert body["summary"]["open"] == 3 and len(body["tasks"]) == 3
    resp = client.get("/api/tasks?date=2026-02-30")
    assert resp.status_code == 400 and resp.json["error"] == "date 不是有效日期（YYYY-MM-DD）：2026-02-30"
    by_customer = {t["external_userid"]: t for t in body["tasks"]}
    t1, t2, t3 = (by_customer[f.external_userid(c)] for c in (c1, c2, c3))
    assert client.post(f"/api/tasks/{t1['id']}/done", headers=headers).json["status"] == "done"
    resp = client.post(f"/api/tasks/{t2['id']}/skip", json={}, headers=headers)
    assert resp.status_code == 400 and "原因" in resp.json["error"]
    resp = client.post(f"/api/tasks/{t2['id']}/skip", json={"reason": "顾客在外地"}, headers=headers)
    assert resp.json == {"id": t2["id"], "status": "skipped", "skip_reason": "顾客在外地"}
    # Sending the customer a coupon today closes their task by itself.
    resp = client.post(f"/api/customers/{f.external_userid(c3)}/touches",
                       json={"kind": "marketing", "channel": "coupon"}, headers=headers)
    assert resp.status_code == 201 and resp.json["quota"]["today_left"] == 0
    assert db.session.get(RedDot, t3["id"]).status == "done"
    # A screen still showing it open cannot turn the send's "done" into a skip (nor take it off the ranking).
    stale = client.post(f"/api/tasks/{t3['id']}/skip", json={"reason": "联系不上"}, headers=headers)
    assert stale.status_code == 409 and stale.json == {"error": "任务已完成", "id": t3["id"], "status": "done"}
    assert db.session.get(RedDot, t3["id"]).status == "done"
    assert client.post(f"/api/tasks/{t2['id']}/done", headers=headers).status_code == 409
    again = client.post(f"/api/customers/{f.external_userid(c3)}/touches",
                        json={"kind": "marketing", "channel": "coupon"}, headers=headers)
    assert again.status_code == 409 and again.json["code"] == "daily_cap" and "明天" in again.json["error"]
    # Another guide's task or customer is not there.
    sign_in(client, other)
    assert client.post(f"/api/tasks/{t1['id']}/done", headers=headers).status_code == 404
    assert client.get(f"/api/customers/{f.external_userid(c1)}/quota").status_code == 404


def test_a_task_completed_elsewhere_meanwhile_is_not_closed_again_from_a_stale_read(app):
    import pytest
    from sqlalchemy import update

    g = f.guide("guide01")
    c = f.customer(g, added=local_today() - timedelta(days=10))
    task = RedDot(guide_id=g.id, customer_id=c.id, rule="birthday", task_date=local_today(), reason="生日关怀",
                  rank=1)
    db.session.add(task)
    db.session.commit()
    assert db.session.get(RedDot, task.id).status == "open"  # this request has read it open
    with db.engine.connect() as other:  # meanwhile a send completes it in another worker
        other.execute(update(RedDot).where(RedDot.id == task.id).values(status="done"))
        other.commit()
    with pytest.raises(ops.TaskClosed, match="任务已完成"):
        ops.close_task(task.id, g, status="skipped", reason="联系不上")
    db.session.rollback()
    assert db.session.get(RedDot, task.id).status == "done"
