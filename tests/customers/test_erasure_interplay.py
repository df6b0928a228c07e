"""Erasure against the rest of the system: a re-imported order file, other customers' and chain-wide data,
Redis clean-up that survives Redis being away, locks shared with the callback worker and with ingest."""
from __future__ import annotations

import json

import pytest
import redis
from sqlalchemy import select

from core.db import db
from core.redis_store import rstore
from core.timeutil import local_today
from customers.erasure import REDACTED, erase_customer
from models import (CallbackInbox, Customer, CustomerIdentity, ErasureCleanup, GuidePush, Order, Script, ScriptSend,
                    TrackedLink)
from tests.imports.test_import import RECORDS, run_import, write_jsonl
from tests.tasks import factories as f
from tracking.operations import create_tracked_link


def test_reimporting_an_order_file_after_an_erasure_keeps_the_credit_and_does_not_store_the_mobile_again(
        app, runner, tmp_path):
    assert run_import(runner, write_jsonl(tmp_path / "all.jsonl", RECORDS)).exit_code == 0
    order = db.session.scalar(select(Order).where(Order.order_no == "POS-1"))
    cid, guide_id, attribution, commission = order.customer_id, order.guide_id, order.attribution, order.commission
    assert cid is not None and guide_id is not None and order.customer_keys == {"mobile": "13800000001"}
    erase_customer(db.session, cid, actor="cli:ops", reason="工单 PIPL-21")
    db.session.commit()

    orders_only = [r for r in RECORDS if r["type"] in ("order", "store", "product", "guide")]
    result = run_import(runner, write_jsonl(tmp_path / "again.jsonl", orders_only))
    assert result.exit_code == 0, result.output

    order = db.session.scalar(select(Order).where(Order.order_no == "POS-1"))
    assert (order.customer_id, order.guide_id, order.attribution, order.commission) == (
        cid, guide_id, attribution, commission)
    assert order.customer_keys == {}
    shell = db.session.get(Customer, cid)
    assert (shell.order_count, shell.total_spend) == (1, order.amount)
    # The order that matched nobody is still re-read from the file as before.
    assert db.session.scalar(select(Order.customer_keys).where(Order.order_no == "EC-9")) == {"unionid": "oUNKNOWN"}


def others_data() -> dict:
    """Everything below belongs to someone else than the erased customer."""
    return {
        "links": db.session.execute(select(TrackedLink.id, TrackedLink.target_url, TrackedLink.coupon_ref)
                                    .order_by(TrackedLink.id)).all(),
        "callbacks": db.session.execute(select(CallbackInbox.id, CallbackInbox.dedup_key, CallbackInbox.status,
                                               CallbackInbox.payload).order_by(CallbackInbox.id)).all(),
        "sends": db.session.execute(select(ScriptSend.id, ScriptSend.query, ScriptSend.terms)
                                    .order_by(ScriptSend.id)).all(),
        "pushes": db.session.execute(select(GuidePush.id, GuidePush.title, GuidePush.body)).all(),
    }


@pytest.mark.parametrize("name, member_no", [("宝宝", "100"), ("contact", "wecom")])
def test_a_common_nickname_and_a_short_member_number_leave_other_customers_and_chain_data_alone(
        app, name, member_no):
    f.store("S1")
    her_guide, other_guide = f.guide("guide01"), f.guide("guide02")
    victim = f.customer(her_guide, name=name)
    db.session.add(CustomerIdentity(customer_id=victim.id, kind="member_no", value=member_no))
    other = f.customer(other_guide, name="王芳")
    create_tracked_link(other_guide, other, url="https://shop.example.com/item/100?from=wecom", coupon="C-100")
    own = create_tracked_link(her_guide, victim, url=f"https://shop.example.com/member/{member_no}")
    db.session.add(CallbackInbox(
        dedup_key="change_external_contact:add_external_contact:guide02:wmT9999:1700000100",
        msg_type="event", event="change_external_contact", change_type="add_external_contact", status="failed",
        payload={"MsgType": "event", "Event": "change_external_contact", "ChangeType": "add_external_contact",
                 "UserID": "guide02", "ExternalUserID": "wmT9999", "CreateTime": "1700000100"}))
    db.session.add(CallbackInbox(dedup_key="msg:guide02:1", msg_type="text", status="done",
                                 payload={"MsgType": "text", "FromUserName": "guide02",
                                          "Content": f"{name}湿疹怎么办 100ml"},
                                 result={"answer": f"{name}湿疹：保持干燥"}))
    script = Script(external_id="S-1", title="湿疹", body="保持干燥")
    db.session.add(script)
    db.session.flush()
    db.session.add(ScriptSend(script_id=script.id, guide_id=other_guide.id, source="chatbot",
                              query=f"{name}湿疹怎么办", terms=[name, "湿疹"]))
    db.session.add(ScriptSend(script_id=script.id, guide_id=other_guide.id, customer_id=other.id,
                              query=f"{name}湿疹怎么办", terms=[name, "湿疹"]))
    db.session.add(GuidePush(guide_id=other_guide.id, kind="daily", push_date=f.D, title=f"今日{name}任务",
                             body=f"3 位{name}顾客待跟进，满100减20"))
    db.session.commit()
    before = others_data()

    erase_customer(db.session, victim.id, actor="cli:ops", reason=f"工单 PIPL-30 会员 {member_no}")
    db.session.commit()
    db.session.expire_all()

    after = others_data()
    own_target = f"https://shop.example.com/member/{REDACTED}"  # only her own link loses her number
    assert after["links"] == [(i, own_target if i == own.id else url, ref) for i, url, ref in before["links"]]
    assert {k: v for k, v in after.items() if k != "links"} == {k: v for k, v in before.items() if k != "links"}


def learned() -> dict:
    client = rstore.client
    return {k.decode(): {f.decode(): round(float(v), 9) for f, v in client.hgetall(k).items()}
            for k in client.scan_iter(match="kb:learn:*")}


def test_redis_away_at_the_erasure_does_not_fail_it_and_the_clean_up_is_done_once_redis_is_back(app):
    from knowledge.service import relearn
    from tests.bot.test_end_to_end import work_jobs

    f.store("S1")
    her_guide, other_guide = f.guide("guide01"), f.guide("guide02")
    victim = f.customer(her_guide, name="宝宝")
    db.session.add(CustomerIdentity(customer_id=victim.id, kind="mobile", value="13987654321"))
    script = Script(external_id="S-1", title="湿疹", body="保持干燥")
    db.session.add(script)
    db.session.flush()
    db.session.add(ScriptSend(script_id=script.id, guide_id=her_guide.id, store_id=her_guide.store_id,
                              customer_id=victim.id, query="宝宝湿疹 13987654321",
                              terms=["宝宝", "湿疹", "13987654321"]))
    db.session.add(ScriptSend(script_id=script.id, guide_id=other_guide.id, store_id=other_guide.store_id,
                              source="chatbot", query="宝宝湿疹怎么办", terms=["宝宝", "湿疹"]))
    db.session.commit()
    relearn()
    client = rstore.client
    touch_key = f"touch:{{{victim.id}}}:{local_today():%Y%m%d}"
    client.set(touch_key, 1)
    client.set(f"bot:last:{her_guide.id}", json.dumps({"query": "宝宝问湿疹", "scripts": []}))
    client.set(f"bot:last:{other_guide.id}", json.dumps({"query": "宝宝湿疹怎么办", "scripts": []}))
    assert set(learned()) >= {"kb:learn:chain:宝宝", "kb:learn:chain:13987654321"}

    rstore.client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)  # Redis is away
    try:
        result = erase_customer(db.session, victim.id, actor="cli:ops", reason="工单 PIPL-31")
        db.session.commit()  # the old code raised ConnectionError here, after the data was erased
    finally:
        rstore.client = client
    assert result["erased"]
    assert db.session.get(Customer, victim.id).erased_at is not None
    assert client.exists(touch_key)  # nothing was done in Redis yet …

    work_jobs(app)  # … Redis is back: the worker's feeder queues the clean-up
    db.session.expire_all()
    assert not client.exists(touch_key)
    assert client.get(f"bot:last:{her_guide.id}") is None  # her guide asked about her
    assert client.get(f"bot:last:{other_guide.id}") is not None  # another guide's question about 宝宝 stays
    after = learned()
    assert "kb:learn:chain:13987654321" not in after
    assert after["kb:learn:chain:宝宝"]  # what the other guide taught stays …
    relearn()
    taught = {k: v for k, v in learned().items() if k.endswith(":宝宝")}
    assert taught == {k: v for k, v in after.items() if k.endswith(":宝宝")}  # … all the remaining sends teach
    assert db.session.scalar(select(ErasureCleanup)) is None  # nothing owed any more


def test_the_redis_clean_up_is_done_right_after_the_erasure_without_any_worker(app, client):
    from tests.knowledge.test_api import sign_in

    g, admin = f.guide("guide01"), f.guide("hq01", role="admin")
    c = f.customer(g, name="刘女士")
    db.session.commit()
    touch_key = f"touch:{{{c.id}}}:{local_today():%Y%m%d}"
    rstore.client.set(touch_key, 1)
    headers = sign_in(client, admin)
    assert client.post(f"/api/admin/customers/{c.id}/erase", json={"reason": "工单 PIPL-36"},
                       headers=headers).status_code == 200
    # No worker ran: the request did it, and the row holding her name is already gone.
    assert not rstore.client.exists(touch_key)
    assert db.session.scalar(select(ErasureCleanup)) is None


def test_a_clean_up_that_keeps_failing_is_shown_by_the_audit_and_logged_as_an_error(app, runner, caplog):
    from customers.tasks import ALERT_AFTER, finish_erasure

    g = f.guide("guide01")
    c = f.customer(g, name="刘女士")
    db.session.add(CustomerIdentity(customer_id=c.id, kind="mobile", value="13912340000"))
    db.session.commit()
    client = rstore.client
    rstore.client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)  # Redis is away
    try:
        result = runner.invoke(args=["customers", "erase", str(c.id), "--reason", "工单 PIPL-37", "--yes"])
        assert result.exit_code == 0, result.output  # the erasure is done and says so
        cleanup = db.session.scalar(select(ErasureCleanup))
        assert cleanup.attempts == 1 and cleanup.last_error.startswith("ConnectionError")  # tried at once
        for _ in range(ALERT_AFTER - 2):
            finish_erasure(cleanup.id)
        assert not [r for r in caplog.records if r.levelname == "ERROR"]
        finish_erasure(cleanup.id)
    finally:
        rstore.client = client
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"][0].startswith(
        f"erasure clean-up {cleanup.id} failed {ALERT_AFTER} times (ConnectionError)")

    audit = runner.invoke(args=["customers", "audit"]).output
    assert "1 Redis clean-up(s) still owed" in audit and "flask --app app worker --burst" in audit
    assert f"customer {c.id}" in audit and f"attempts {ALERT_AFTER}" in audit and "ConnectionError" in audit
    assert "刘女士" not in audit and "13912340000" not in audit  # never the values it holds
    result = runner.invoke(args=["customers", "audit", "--json"])
    pending = json.loads(result.stderr)["pending_cleanups"]
    assert [(p["customer_id"], p["attempts"]) for p in pending] == [(c.id, ALERT_AFTER)]

    finish_erasure(cleanup.id)  # Redis is back (what `worker --burst` runs)
    assert "still owed" not in runner.invoke(args=["customers", "audit"]).output


def test_a_contact_callback_does_not_wait_behind_a_transaction_that_only_inserted_rows_about_the_customer(app):
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from customers.operations import lock_unerased, find_customer
    from models import Event

    g = f.guide()
    c = f.customer(g, name="刘女士")
    ext = f.external_userid(c)
    db.session.commit()
    with Session(db.engine) as importing:  # e.g. a bulk order import, minutes long, not committed yet
        importing.add(Event(customer_id=c.id, type="note_added", occurred_at=f.at(f.D)))
        importing.flush()
        db.session.execute(text("SET LOCAL lock_timeout = '2s'"))
        found = lock_unerased(find_customer("external_userid", ext))  # the callback's job: no waiting
        assert found is not None and found.id == c.id
        db.session.rollback()
        importing.rollback()


def test_an_erasure_and_a_callback_worker_on_the_same_customer_do_not_deadlock_and_the_callback_stays_ignored(app):
    import threading
    import time

    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from bot.tasks import _record_failure, process_callback
    from customers.operations import lock_unerased, find_customer

    g = f.guide("guide01")
    c = f.customer(g, name="刘女士")
    ext = f.external_userid(c)
    inbox = CallbackInbox(dedup_key=f"evt:change_external_contact:edit_external_contact:guide01:{ext}::1",
                          msg_type="event", event="change_external_contact", change_type="edit_external_contact",
                          status="pending", payload={"MsgType": "event", "ExternalUserID": ext, "UserID": "guide01"})
    db.session.add(inbox)
    db.session.commit()
    inbox_id = inbox.id

    # The worker's first steps (process_callback): its inbox row, locked; then the handler reads the customer.
    db.session.execute(text("SET LOCAL lock_timeout = '5s'"))
    db.session.scalar(select(CallbackInbox).where(CallbackInbox.id == inbox_id).with_for_update())
    erasure_error = []

    def erase():
        with app.app_context(), Session(db.engine) as admin:
            try:
                erase_customer(admin, c.id, actor="cli:ops", reason="工单 PIPL-32")
                admin.commit()
            except Exception as exc:  # a deadlock victim
                erasure_error.append(exc)

    thread = threading.Thread(target=erase)
    thread.start()
    time.sleep(0.5)  # the erasure is now waiting for something the worker holds
    found = lock_unerased(find_customer("external_userid", ext))  # the old order deadlocked here
    assert found is not None and found.id == c.id  # the worker goes on, erasure still waiting
    db.session.commit()
    thread.join(10)
    assert not thread.is_alive() and erasure_error == []
    db.session.expire_all()
    assert db.session.get(Customer, c.id).erased_at is not None

    # The callback about her is never handled again: not by the worker, not after a failure being recorded.
    assert db.session.get(CallbackInbox, inbox_id).status == "ignored"
    _record_failure(inbox_id, RuntimeError("WeCom busy"))
    db.session.expire_all()
    assert db.session.get(CallbackInbox, inbox_id).status == "ignored"
    assert process_callback(inbox_id) == "ignored"


def _while_an_erasure_is_uncommitted(app, customer_id, work):
    """Run `work()` in a worker thread that starts while an erasure of `customer_id` holds its locks, then
    commit the erasure; returns once `work` committed."""
    import threading
    import time

    from sqlalchemy.orm import Session

    errors = []

    def run():
        with app.app_context():
            try:
                work()
                db.session.commit()
            except Exception as exc:
                errors.append(exc)
            finally:
                db.session.remove()

    with Session(db.engine) as admin:
        erase_customer(admin, customer_id, actor="cli:ops", reason="工单 PIPL-33")
        thread = threading.Thread(target=run)
        thread.start()
        time.sleep(0.5)  # `work` read her identities and now waits for the erasure's lock
        admin.commit()
    thread.join(10)
    assert not thread.is_alive() and errors == []


def test_an_order_ingested_or_matched_during_an_erasure_is_not_put_on_the_shell_with_her_mobile(app):
    from datetime import timedelta
    from decimal import Decimal

    from core.timeutil import utcnow
    from models import Event
    from orders.operations import ingest_batch, match_pending, parse_order

    g = f.guide("guide01")
    c = f.customer(g, name="刘女士")
    db.session.add(CustomerIdentity(customer_id=c.id, kind="mobile", value="13912340000"))
    db.session.add(Order(order_no="POS-WAITING", channel="pos", paid_at=utcnow() - timedelta(days=1),
                         amount=Decimal("50"), customer_keys={"mobile": "13912340000"}))
    db.session.commit()
    cid = c.id

    def ingest_and_match():
        record = parse_order({"order_no": "POS-RACE", "channel": "pos", "paid_at": utcnow().isoformat(),
                              "amount": "99", "customer": {"mobile": "13912340000"},
                              "items": [{"sku": "NF-1", "qty": 1, "price": "99"}]})
        ingest_batch([record])
        match_pending()

    _while_an_erasure_is_uncommitted(app, cid, ingest_and_match)
    db.session.expire_all()
    orders = {o.order_no: (o.customer_id, o.customer_keys)
              for o in db.session.scalars(select(Order).order_by(Order.order_no))}
    assert orders == {"POS-RACE": (None, {}), "POS-WAITING": (None, {})}
    shell = db.session.get(Customer, cid)
    assert (shell.order_count, shell.total_spend) == (0, 0)
    assert db.session.scalar(select(Event).where(Event.customer_id == cid, Event.type == "order")) is None


def test_a_bulk_import_running_during_an_erasure_never_writes_the_person_back_onto_the_shell(app):
    from customers.erasure import find_for_erasure
    from imports.operations import import_records
    from models import CustomerTag, Follow

    g = f.guide("guide01")
    c = f.customer(g, name="刘女士")
    ext = f.external_userid(c)
    db.session.add(CustomerIdentity(customer_id=c.id, kind="mobile", value="13912340000"))
    db.session.commit()
    cid = c.id
    item = {"sku": "X", "name": "x", "category": "c", "qty": 1, "price": 99}

    def the_nightly_import():
        import_records([
            (1, {"type": "customer", "mobile": "13912340000", "member_no": "M-777777", "name": "刘女士",
                 "birthday": "1990-02-03"}),
            (2, {"type": "order", "order_no": "IMP-BOTH", "channel": "pos", "paid_at": "2026-11-30T10:00:00",
                 "amount": 99, "customer": {"mobile": "13912340000"}, "items": [item]}),
            (3, {"type": "order", "order_no": "IMP-EXT", "channel": "pos", "paid_at": "2026-11-30T11:00:00",
                 "amount": 50, "customer": {"external_userid": ext}, "items": [item]}),
        ])

    _while_an_erasure_is_uncommitted(app, cid, the_nightly_import)
    db.session.expire_all()
    shell = db.session.get(Customer, cid)
    assert (shell.name, shell.birthday) == ("已注销用户", None) and shell.erased_at is not None
    assert db.session.scalars(select(CustomerIdentity).where(CustomerIdentity.customer_id == cid)).all() == []
    assert db.session.scalars(select(CustomerTag).where(CustomerTag.customer_id == cid)).all() == []
    assert db.session.scalars(select(Follow).where(Follow.customer_id == cid, Follow.ended_at.is_(None))).all() == []
    # The file's customer record is new data: a new customer, as an import after the erasure makes.
    new = db.session.scalar(select(Customer).where(Customer.id != cid))
    assert (new.name, str(new.birthday)) == ("刘女士", "1990-02-03")
    orders = {o.order_no: (o.customer_id, o.customer_keys) for o in db.session.scalars(select(Order))}
    assert orders == {"IMP-BOTH": (new.id, {"mobile": "13912340000"}),
                      "IMP-EXT": (None, {})}  # only the erased person's WeCom id named it: unmatched, keyless

    # A plain import of the same member afterwards fills the new customer, never the shell.
    import_records([(1, {"type": "customer", "member_no": "M-777777", "name": "刘芳", "mobile": "13912340000"})])
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Customer, cid).name == "已注销用户"
    assert db.session.get(Customer, new.id).name == "刘芳"


def test_a_shell_that_holds_data_again_is_found_and_erased_again(app):
    from customers.erasure import find_for_erasure

    g = f.guide("guide01")
    admin = f.guide("hq01", role="admin")
    c = f.customer(g, name="刘女士")
    db.session.commit()
    erase_customer(db.session, c.id, actor="cli:ops", reason="工单 PIPL-35")
    db.session.commit()
    # What a writer without a guard did before the import had one: her number and name back on the shell.
    db.session.add(CustomerIdentity(customer_id=c.id, kind="member_no", value="M-777777"))
    db.session.get(Customer, c.id).name = "刘芳"
    db.session.commit()

    found = find_for_erasure("M-777777", viewer=admin)
    assert [(x["id"], x["erased"]) for x in found] == [(c.id, True)]
    result = erase_customer(db.session, c.id, actor="cli:ops", reason="工单 PIPL-35 再次")
    db.session.commit()
    assert (result["erased"], result["already_erased"]) == (True, False)
    db.session.expire_all()
    assert db.session.get(Customer, c.id).name == "已注销用户"
    assert db.session.scalars(select(CustomerIdentity)).all() == []
    assert find_for_erasure("M-777777", viewer=admin) == []
    # Now clean, a third request is the no-op it was.
    assert erase_customer(db.session, c.id, actor="cli:ops", reason="again")["already_erased"] is True


def test_callbacks_about_an_identity_added_while_the_erasure_waited_are_redacted_too(app):
    import threading
    import time

    from sqlalchemy.orm import Session

    g = f.guide("guide01")
    c = f.customer(g, name="刘女士")
    cid = c.id
    ext = "wmNEWLYADDED0001"
    db.session.add(CustomerIdentity(customer_id=cid, kind="unionid", value="ozUNIONID000001"))
    inbox = CallbackInbox(dedup_key=f"evt:change_external_contact:add_external_contact:guide01:{ext}::1",
                          msg_type="event", event="change_external_contact", change_type="add_external_contact",
                          payload={"ExternalUserID": ext, "UserID": "guide01"}, status="done",
                          result={"customer_id": cid, "external_userid": ext})
    db.session.add(inbox)
    db.session.commit()
    inbox_id = inbox.id
    db.session.remove()

    errors = []

    def erase():
        with app.app_context(), Session(db.engine) as admin:
            try:
                erase_customer(admin, cid, actor="cli:ops", reason="工单 PIPL-38")
                admin.commit()
            except Exception as exc:
                errors.append(exc)

    # The worker handling her add (found by unionid) holds the customer and links her new WeCom id …
    with Session(db.engine) as worker:
        worker.scalar(select(Customer).where(Customer.id == cid).with_for_update(key_share=True))
        worker.add(CustomerIdentity(customer_id=cid, kind="external_userid", value=ext))
        worker.flush()
        thread = threading.Thread(target=erase)
        thread.start()
        time.sleep(0.5)  # … while the erasure, which read her identities before, waits for the customer
        worker.commit()
    thread.join(10)
    assert not thread.is_alive() and errors == []

    row = db.session.get(CallbackInbox, inbox_id)
    assert row.dedup_key == f"erased:{inbox_id}"
    assert ext not in json.dumps([row.payload, row.result])
    assert db.session.scalars(select(CustomerIdentity)).all() == []


def test_an_erasure_meeting_a_callback_being_handled_about_a_new_identity_asks_to_be_retried(app, runner):
    import threading
    import time

    from sqlalchemy.orm import Session

    g = f.guide("guide01")
    c = f.customer(g, name="刘女士")
    cid = c.id
    ext = "wmNEWLYADDED0002"
    inbox = CallbackInbox(dedup_key=f"evt:change_external_contact:edit_external_contact:guide01:{ext}::2",
                          msg_type="event", status="pending", payload={"ExternalUserID": ext})
    db.session.add(inbox)
    db.session.commit()
    inbox_id = inbox.id
    db.session.remove()
    outcome = []

    def erase():
        with app.app_context():
            outcome.append(runner.invoke(args=["customers", "erase", str(cid), "--reason", "工单 PIPL-39", "--yes"]))

    with Session(db.engine) as adding, Session(db.engine) as handling:
        handling.scalar(select(CallbackInbox).where(CallbackInbox.id == inbox_id).with_for_update())
        adding.scalar(select(Customer).where(Customer.id == cid).with_for_update(key_share=True))
        adding.add(CustomerIdentity(customer_id=cid, kind="external_userid", value=ext))
        adding.flush()
        thread = threading.Thread(target=erase)
        thread.start()
        time.sleep(0.5)
        adding.commit()  # the erasure now sees her new id, whose callback another worker holds
        thread.join(10)
        handling.rollback()
    assert not thread.is_alive()
    assert outcome[0].exit_code == 1 and "run the command again" in outcome[0].output
    db.session.expire_all()
    assert db.session.get(Customer, cid).erased_at is None  # nothing half done
    result = runner.invoke(args=["customers", "erase", str(cid), "--reason", "工单 PIPL-39", "--yes"])
    assert result.exit_code == 0, result.output  # the retry goes through
    assert db.session.get(CallbackInbox, inbox_id).status == "ignored"


def test_an_erased_customers_old_link_still_redirects_but_records_nothing(app, client):
    from models import Content, Event, LinkOpen

    g = f.guide()
    c = f.customer(g, name="刘女士")
    item = Content(external_id="c-1", title="转奶七日法", url="https://example.com/a/1")
    db.session.add(item)
    db.session.flush()
    link = create_tracked_link(g, c, item)
    db.session.commit()
    erase_customer(db.session, c.id, actor="cli:ops", reason="工单 PIPL-34")
    db.session.commit()

    resp = client.get(f"/c/{link.token}", headers={"User-Agent": "Mozilla/5.0 (iPhone) MicroMessenger/8.0"})
    assert resp.status_code == 302 and resp.headers["Location"] == "https://example.com/a/1"
    assert db.session.scalar(select(LinkOpen)) is None
    assert db.session.scalar(select(Event).where(Event.type == "link_opened")) is None


def test_a_transfer_still_waiting_is_settled_by_the_erasure(app):
    from guides.operations import transfers_of
    from models import CustomerTransfer

    departing, colleague = f.guide("guide01"), f.guide("guide02")
    c = f.customer(departing, name="刘女士")
    db.session.add(CustomerTransfer(handover_guide_id=departing.id, takeover_guide_id=colleague.id,
                                    customer_id=c.id, external_userid=f.external_userid(c)))
    db.session.commit()
    assert [t["status_label"] for t in transfers_of("guide01")] == ["等待接替"]

    erase_customer(db.session, c.id, actor="cli:ops", reason="工单 PIPL-35")
    db.session.commit()
    [shown] = transfers_of("guide01")
    assert (shown["status"], shown["status_label"], shown["external_userid"]) == ("erased", "顾客已注销", REDACTED)
    assert shown["settled_at"] is not None
    assert db.session.scalar(select(CustomerTransfer).where(CustomerTransfer.status == "waiting")) is None


def test_a_name_with_quotes_a_formatted_mobile_in_the_reason_and_a_done_task_are_handled(app):
    from models import AuditEntry, RedDot

    g = f.guide("guide01")
    c = f.customer(g, name='王"小美"')
    db.session.add(CustomerIdentity(customer_id=c.id, kind="mobile", value="13987654321"))
    db.session.add(CallbackInbox(dedup_key="msg:guide01:7", msg_type="text", status="done",
                                 payload={"MsgType": "text", "FromUserName": "guide01",
                                          "Content": '王"小美"问吐奶怎么办'}))
    db.session.add(RedDot(guide_id=g.id, customer_id=c.id, rule="dormant", task_date=f.D, reason="32天未购买",
                          status="done", rank=1))
    db.session.commit()

    erase_customer(db.session, c.id, actor="cli:ops", reason="工单 PIPL-36，来电 139-8765-4321")
    db.session.commit()
    db.session.expire_all()
    assert db.session.scalar(select(CallbackInbox.payload))["Content"] == f"{REDACTED}问吐奶怎么办"
    assert db.session.scalar(select(AuditEntry.reason)) == f"工单 PIPL-36，来电 {REDACTED}"
    task = db.session.scalar(select(RedDot))
    assert (task.status, task.skip_reason) == ("done", None)


def _import_stopped_after_its_plan(records: list[dict]):
    """A bulk import of `records` that has resolved its file (and taken its locks) and not committed yet: a
    nightly import is minutes long. Its own session, to be rolled back by the caller."""
    from sqlalchemy.orm import Session

    from imports.operations import _Bulk, _Plan
    from imports.records import TYPE_ORDER, parse_record

    importing = Session(db.engine)
    batches = {t: [] for t in TYPE_ORDER}
    for lineno, raw in enumerate(records, 1):
        rtype, rec = parse_record(raw)
        batches[rtype].append((lineno, rec))
    errors = []
    _Plan(_Bulk(importing.connection()), batches, errors).resolve()
    assert errors == []
    return importing


def test_a_running_import_blocks_no_guide_write_and_an_erasure_behind_it_answers_busy(app, runner, monkeypatch):
    import time

    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from customers import erasure
    from customers.operations import find_customer, lock_unerased

    g = f.guide()
    c = f.customer(g, name="刘女士")
    ext = f.external_userid(c)
    tagged = f.customer(g, name="王芳")
    tagged_ext = f.external_userid(tagged)
    db.session.commit()
    importing = _import_stopped_after_its_plan([
        {"type": "customer", "external_userid": ext, "name": "刘女士"},
        {"type": "tag", "group": "宝宝阶段", "name": "0-6月"},
        {"type": "customer_tag", "external_userid": tagged_ext, "tag": "宝宝阶段/0-6月"}])
    try:
        # A guide's write (a tag, a send, a touch) only inserts rows about her: it does not wait for the import.
        db.session.execute(text("SET LOCAL lock_timeout = '2s'"))
        found = lock_unerased(find_customer("external_userid", ext), key_share=True)
        assert found is not None and found.id == c.id
        db.session.rollback()
        # The import will UPDATE her (her customer line): a writer that updates her too (ingest, a callback)
        # waits until the import commits, in id order, so the two cannot deadlock.
        db.session.execute(text("SET LOCAL lock_timeout = '1s'"))
        with pytest.raises(OperationalError):
            lock_unerased(find_customer("external_userid", ext))
        db.session.rollback()
        # A customer the file only tags is not updated: nothing but an erasure waits for the import.
        db.session.execute(text("SET LOCAL lock_timeout = '2s'"))
        assert lock_unerased(find_customer("external_userid", tagged_ext)) is not None
        db.session.rollback()

        # An erasure does wait for it (the import must not write her back), but not for ever: busy, retry.
        monkeypatch.setattr(erasure, "LOCK_TIMEOUT", "1s")
        db.session.execute(text("SET LOCAL statement_timeout = '6s'"))  # the old code waited for ever
        started = time.monotonic()
        with pytest.raises(erasure.ErasureBusy):
            erase_customer(db.session, c.id, actor="cli:ops", reason="工单 PIPL-43")
        assert time.monotonic() - started < 4
        db.session.rollback()
        result = runner.invoke(args=["customers", "erase", str(c.id), "--reason", "工单 PIPL-43", "--yes"])
        assert result.exit_code == 1 and "run the command again" in result.output
        db.session.rollback()
    finally:
        importing.rollback()
        importing.close()
    assert erase_customer(db.session, c.id, actor="cli:ops", reason="工单 PIPL-43")["erased"] is True
    db.session.commit()


def test_the_erasure_panel_answers_409_while_an_import_holds_the_customer(app, client, monkeypatch):
    from customers import erasure
    from tests.sidebar.factories import sign_in

    g = f.guide()
    admin = f.guide("admin01", role="admin")
    c = f.customer(g, name="刘女士")
    ext = f.external_userid(c)
    db.session.commit()
    monkeypatch.setattr(erasure, "LOCK_TIMEOUT", "1s")
    importing = _import_stopped_after_its_plan([{"type": "customer", "external_userid": ext, "name": "刘女士"}])
    try:
        headers = sign_in(client, admin)
        resp = client.post(f"/api/admin/customers/{c.id}/erase", json={"reason": "工单 PIPL-44"}, headers=headers)
    finally:
        importing.rollback()
        importing.close()
    assert resp.status_code == 409 and "请稍后重试删除" in resp.json["error"]
    db.session.expire_all()
    assert db.session.get(Customer, c.id).erased_at is None


def test_a_lost_connection_while_locking_the_callbacks_is_an_error_not_busy_retry(app):
    import time

    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.orm import Session

    from customers.erasure import _lock_callbacks

    with Session(db.engine) as admin:
        pid = admin.scalar(text("SELECT pg_backend_pid()"))
        with db.engine.connect() as other:  # the server drops the erasure's connection
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        time.sleep(0.3)
        with pytest.raises(OperationalError):  # not ErasureBusy: "retry" would never help
            _lock_callbacks(admin, ["wmEXT-LOST-1"], nowait=True)


def test_a_follow_of_a_customer_erased_while_the_import_waited_is_rejected_saying_so(app, runner, tmp_path):
    from sqlalchemy.orm import Session

    from tests.threads import commit_later

    g = f.guide("guide01")
    c = f.customer(g, name="刘女士")
    ext = f.external_userid(c)
    db.session.commit()
    admin = Session(db.engine)
    erase_customer(admin, c.id, actor="cli:ops", reason="工单 PIPL-45")  # in flight: the import waits for it
    thread = commit_later(admin)
    try:
        result = run_import(runner, write_jsonl(tmp_path / "follows.jsonl", [
            {"type": "follow", "userid": "guide01", "external_userid": ext, "added_at": "2024-03-01T09:00:00"}]))
    finally:
        thread.join(10)
    assert result.exit_code == 1
    assert f"line 1: follow: customer external_userid '{ext}' was erased while the import ran" in result.output


def test_an_erasure_that_postgres_aborts_to_break_a_deadlock_answers_busy_and_a_retry_succeeds(app, runner):
    """The erasure locks the customer's callbacks, then the customer. A transaction that holds the customer
    and then wants one of those callbacks closes a cycle: PostgreSQL aborts the erasure (40P01). That is
    "busy, try again", as a lock timeout is, not a 500 or a traceback."""
    import threading
    import time

    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from customers import erasure

    g = f.guide("guide01")
    c = f.customer(g, name="刘女士")
    ext = f.external_userid(c)
    inbox = CallbackInbox(dedup_key=f"change_external_contact:edit_external_contact:guide01:{ext}:1700000200",
                          msg_type="event", event="change_external_contact",
                          change_type="edit_external_contact", status="done",
                          payload={"MsgType": "event", "ExternalUserID": ext, "UserID": "guide01"})
    db.session.add(inbox)
    db.session.commit()
    inbox_id = inbox.id

    other = Session(db.engine)  # holds the customer, then wants the callback: never the victim
    other.execute(text("SET LOCAL deadlock_timeout = '10s'"))
    other.execute(text("SELECT id FROM customers WHERE id = :id FOR NO KEY UPDATE"), {"id": c.id})
    done = threading.Event()

    def close_the_cycle():
        time.sleep(0.4)  # the erasure holds the callback and waits for the customer by now
        other.execute(text("SELECT id FROM callback_inbox WHERE id = :id FOR UPDATE"), {"id": inbox_id})
        other.commit()
        other.close()
        done.set()

    thread = threading.Thread(target=close_the_cycle)
    thread.start()
    try:
        db.session.execute(text("SET LOCAL statement_timeout = '8s'"))
        with pytest.raises(erasure.ErasureBusy):
            erase_customer(db.session, c.id, actor="cli:ops", reason="工单 PIPL-46")
    finally:
        db.session.rollback()
        thread.join(10)
    assert done.is_set()
    assert erase_customer(db.session, c.id, actor="cli:ops", reason="工单 PIPL-46")["erased"] is True
    db.session.commit()


def test_the_audit_names_every_shell_holding_data_again_whatever_it_holds_and_no_clean_one(app):
    from datetime import datetime, timezone

    from customers.erasure import shells_holding_data
    from models import Follow

    g = f.guide("guide01")
    shells = [f.customer(g) for _ in range(5)]
    db.session.commit()
    for c in shells:
        erase_customer(db.session, c.id, actor="cli:ops", reason="工单 PIPL-50")
    db.session.commit()
    assert shells_holding_data(db.session) == []
    identity, follow, order, profile, clean = shells
    db.session.add(CustomerIdentity(customer_id=identity.id, kind="mobile", value="13900000050"))
    db.session.add(Follow(guide_id=f.guide("guide02").id, customer_id=follow.id, added_at=datetime.now(timezone.utc)))
    paid = f.order(order, datetime.now(timezone.utc), (f.product(), 1))
    paid.customer_keys = {"mobile": "13900000051"}
    db.session.get(Customer, profile.id).points = 120
    db.session.commit()
    assert shells_holding_data(db.session) == sorted(c.id for c in (identity, follow, order, profile))
