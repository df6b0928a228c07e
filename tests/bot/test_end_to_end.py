"""End to end through the local WeCom stand-in: it fires signed, encrypted callbacks at the service over
HTTP; an RQ worker handles them on the real Redis; WeCom API calls go back to the stand-in."""
from __future__ import annotations

import json
import threading

import pytest
import requests
from sqlalchemy import func, select, update
from werkzeug.serving import make_server

from bot.wecom_client import reset_wecom
from core.db import db
from core.queue import jobs
from models import CallbackInbox, Customer, CustomerIdentity, Event, Follow, Guide
from tests.statements import redis_round_trips  # noqa: F401 (fixtures)
from wecom_standin.corp import Corp
from wecom_standin.runner import StandinServer


@pytest.fixture
def service(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/wecom/callback"
    server.shutdown()
    server.server_close()


@pytest.fixture
def wecom(app, service, monkeypatch):
    cfg = app.config
    corp = Corp(corp_id=cfg["WECOM_CORP_ID"], secret=cfg["WECOM_SECRET"], agent_id=cfg["WECOM_AGENT_ID"])
    corp.add_member("guide01", "王小美")
    corp.add_member("guide02", "李佳")
    standin = StandinServer(corp, token=cfg["WECOM_TOKEN"], aes_key=cfg["WECOM_AES_KEY"],
                            corp_id=cfg["WECOM_CORP_ID"], callback_url=service).start()
    monkeypatch.setitem(cfg, "WECOM_API_BASE", standin.base_url)
    reset_wecom(app)
    yield standin
    standin.stop()
    reset_wecom(app)


def control(standin, action, **data):
    resp = requests.post(f"{standin.root_url}/_standin/{action}", json=data, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def work_jobs(app):
    jobs.run_burst(app)
    db.session.remove()


def welcome_calls(standin):
    return [c for c in standin.corp.calls_to() if c["path"].endswith("externalcontact/send_welcome_msg")]


def test_customer_adds_guide_builds_profile_and_sends_one_welcome(app, wecom):
    added = control(wecom, "add_contact", userid="guide01", name="陈妈妈", state="store_xuhui")
    assert added["callback"]["status"] == 200
    work_jobs(app)

    ext = added["external_userid"]
    customer = db.session.scalar(select(Customer).join(CustomerIdentity).where(CustomerIdentity.value == ext))
    assert customer.name == "陈妈妈"
    guide = db.session.scalar(select(Guide).where(Guide.userid == "guide01"))
    assert guide.name == "王小美"  # learnt through user/get
    assert customer.binding_guide_id == guide.id
    follow = db.session.scalar(select(Follow).where(Follow.customer_id == customer.id))
    assert follow.state == "store_xuhui" and follow.ended_at is None
    assert db.session.scalar(select(Event.type).where(Event.customer_id == customer.id)) == "contact_added"
    calls = welcome_calls(wecom)
    assert len(calls) == 1
    assert calls[0]["body"]["welcome_code"] == added["welcome_code"]
    assert "王小美" in calls[0]["body"]["text"]["content"]


def test_the_same_callback_delivered_three_times_has_one_effect(app, wecom):
    added = control(wecom, "add_contact", userid="guide01", name="刘妈妈", repeat=3)
    assert added["callback"]["statuses"] == [200, 200, 200]
    work_jobs(app)
    work_jobs(app)  # a second pass finds nothing more to do

    assert db.session.scalar(select(func.count()).select_from(CallbackInbox)) == 1
    assert db.session.scalar(select(func.count()).select_from(Customer)) == 1
    assert db.session.scalar(select(func.count()).select_from(Event)) == 1
    assert len(welcome_calls(wecom)) == 1


def test_a_rerun_job_does_not_send_the_welcome_twice(app, wecom):
    from bot.tasks import process_callback

    control(wecom, "add_contact", userid="guide01", name="赵妈妈")
    work_jobs(app)
    inbox_id = db.session.scalar(select(CallbackInbox.id))
    process_callback(inbox_id)  # e.g. a job delivered twice by the queue
    assert len(welcome_calls(wecom)) == 1
    assert db.session.scalar(select(func.count()).select_from(Event)) == 1


def test_deletions_end_the_relation_keep_history_and_move_the_binding(app, wecom):
    added = control(wecom, "add_contact", userid="guide01", name="孙妈妈")
    ext = added["external_userid"]
    work_jobs(app)
    wecom.corp.add_follow(ext, "guide02")
    control(wecom, "add_contact", userid="guide02", external_userid=ext, name="孙妈妈")
    work_jobs(app)

    control(wecom, "del_contact", userid="guide01", external_userid=ext)  # the customer deleted guide01
    work_jobs(app)
    customer = db.session.scalar(select(Customer))
    g1, g2 = (db.session.scalar(select(Guide).where(Guide.userid == u)) for u in ("guide01", "guide02"))
    ended = db.session.scalar(select(Follow).where(Follow.guide_id == g1.id))
    assert ended.ended_at is not None and ended.ended_by == "customer"
    assert customer.binding_guide_id == g2.id
    types = db.session.scalars(select(Event.type).where(Event.customer_id == customer.id)).all()
    assert sorted(types) == ["contact_added", "contact_added", "customer_deleted_guide"]


def test_a_guide_writing_to_the_app_gets_an_answer(app, wecom):
    control(wecom, "text_message", userid="guide01", content="帮助")
    work_jobs(app)
    sent = [c for c in wecom.corp.calls_to() if c["path"].endswith("message/send")]
    assert len(sent) == 1
    assert sent[0]["body"]["touser"] == "guide01"
    assert "话术" in sent[0]["body"]["text"]["content"]
    row = db.session.scalar(select(CallbackInbox))
    assert row.status == "done" and row.payload["Content"] == "帮助"


def test_a_half_added_contact_fired_from_the_cli_is_profiled_and_welcomed_once(app, wecom, runner):
    """`flask wecom fire add-half-contact`: a customer adds a guide who accepts without verification."""
    result = runner.invoke(args=["wecom", "fire", "add-half-contact", "--guide", "guide02", "--name", "周妈妈",
                                 "--state", "qr-store2", "--repeat", "3", "--standin", wecom.root_url])
    assert result.exit_code == 0, result.output
    fired = json.loads(result.output)
    assert fired["callback"]["statuses"] == [200, 200, 200]
    work_jobs(app)

    row = db.session.scalar(select(CallbackInbox))
    assert row.change_type == "add_half_external_contact" and row.status == "done"
    customer = db.session.scalar(select(Customer).join(CustomerIdentity)
                                 .where(CustomerIdentity.value == fired["external_userid"]))
    assert customer.name == "周妈妈"
    guide = db.session.scalar(select(Guide).where(Guide.userid == "guide02"))
    assert customer.binding_guide_id == guide.id
    assert db.session.scalar(select(Follow.state).where(Follow.customer_id == customer.id)) == "qr-store2"
    event = db.session.scalar(select(Event).where(Event.customer_id == customer.id))
    assert event.type == "contact_added" and event.payload["half"] is True
    calls = welcome_calls(wecom)
    assert len(calls) == 1 and calls[0]["body"]["welcome_code"] == fired["welcome_code"]


def test_a_callback_stored_while_redis_is_down_is_handled_once_it_is_back(app, wecom, monkeypatch):
    import redis

    from bot.tasks import relay_inbox
    from core.redis_store import rstore

    live = rstore.client
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)  # nothing listens there
    monkeypatch.setattr(rstore, "client", dead)
    added = control(wecom, "add_contact", userid="guide01", name="吴妈妈")
    assert added["callback"]["status"] == 200  # acknowledged: storing needs only the database
    with pytest.raises(redis.ConnectionError):
        relay_inbox()
    db.session.remove()
    row = db.session.scalar(select(CallbackInbox))
    assert row.status == "pending" and row.queued_at is None  # stored, not queued: the relay will retry

    monkeypatch.setattr(rstore, "client", live)
    work_jobs(app)
    assert db.session.scalar(select(CallbackInbox.status)) == "done"
    assert db.session.scalar(select(func.count()).select_from(Customer)) == 1
    assert len(welcome_calls(wecom)) == 1


def test_a_callback_relayed_twice_still_takes_effect_once(app, wecom):
    """The relay died after queueing but before stamping queued_at: the row is queued again."""
    from bot.tasks import relay_inbox

    control(wecom, "add_contact", userid="guide01", name="郑妈妈")
    assert relay_inbox() == 1
    db.session.execute(update(CallbackInbox).values(queued_at=None))
    db.session.commit()
    assert relay_inbox() == 1
    assert jobs.queue.count == 2
    work_jobs(app)
    assert db.session.scalar(select(func.count()).select_from(Event)) == 1
    assert len(welcome_calls(wecom)) == 1


def test_replay_queues_the_stored_callbacks_in_one_redis_round_trip(app, runner, redis_round_trips):
    from datetime import timedelta

    from core.timeutil import utcnow

    for i in range(25):
        db.session.add(CallbackInbox(dedup_key=f"msg-{i}", msg_type="text", status="failed", payload={},
                                     received_at=utcnow() - timedelta(minutes=5)))
    db.session.commit()
    redis_round_trips.clear()
    result = runner.invoke(args=["bot", "replay"])
    assert result.exit_code == 0 and "queued 25 callbacks" in result.output
    assert len([t for t in redis_round_trips if b"RPUSH" in b"".join(t)]) == 1  # not one per callback
    assert jobs.queue.count == 25
