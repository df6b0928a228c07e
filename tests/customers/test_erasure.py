"""Erasure of a customer's personal information (PIPL art. 47): nothing of theirs is left in any table or in
Redis, orders and leaderboard figures do not move, a later WeCom add of the same person makes a new
customer, a second erasure changes nothing, only head office may ask, the CLI asks first, the audit row."""
from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, select, text

from core.db import db
from core.redis_store import rstore
from core.timeutil import local_today, utcnow
from customers.erasure import ERASED_NAME, erase_customer
from customers.operations import ensure_identity, record_event
from models import (AuditEntry, CallbackInbox, Content, Customer, CustomerIdentity, CustomerTag, CustomerTransfer,
                    Event, Follow, Order, RedDot, Script, ScriptSend)
from reports import leaderboard as lb
from tests.bot.test_end_to_end import control, service, wecom, work_jobs  # noqa: F401 (fixtures)
from tests.commerce_helpers import daytime, ingest_key, post_order, rates, templates  # noqa: F401 (fixtures)
from tests.knowledge.test_api import sign_in
from tests.tasks import factories as f

NAME = "陈思琪"
EXT = "wmERASEdemo0000000000000000001"
UNIONID = "oERASEunion00000000000000001"
MOBILE = "13987654321"
MEMBER_NO = "M-ERASE-0001"
AVATAR = "https://wx.qlogo.cn/mmhead/erase-avatar-0001/0"
DESCRIPTION = "宝宝5个月，对牛奶过敏"
USER_AGENT = "Mozilla/5.0 (iPhone) MicroMessenger/8.0 UA-ERASE-7731"
OLD_VALUES = (NAME, EXT, UNIONID, MOBILE, MEMBER_NO, AVATAR, "牛奶过敏", "UA-ERASE-7731")


def holders(values=OLD_VALUES) -> list[tuple[str, str, str]]:
    """(table, column, value) for every text or JSON column of every table that still contains a value."""
    columns = db.session.execute(text(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
        " AND data_type IN ('text', 'character varying', 'json', 'jsonb') ORDER BY table_name, column_name")).all()
    assert len(columns) > 50  # the scan really covers the schema
    found = []
    for table, column in columns:
        for value in values:
            if db.session.scalar(text(f'SELECT count(*) FROM "{table}" WHERE "{column}"::text LIKE :p'),
                                 {"p": f"%{value}%"}):
                found.append((table, column, value))
    return found


def redis_keys_naming(values=OLD_VALUES) -> list[str]:
    keys = [k.decode() for k in rstore.client.scan_iter(count=1000)]
    return [k for k in keys if any(v in k for v in values)]


def figures() -> dict:
    D = local_today()
    out = {p: (lb.guide_rows(p, D), lb.store_rows(p, D)) for p in ("day", "month")}
    out["orders"] = db.session.execute(
        select(Order.order_no, Order.amount, Order.paid_at, Order.store_id, Order.guide_id, Order.commission,
               Order.customer_id).order_by(Order.order_no)).all()
    return out


def a_customer_with_everything(app, wecom, client):
    """陈思琪 added guide01 in WeCom (remark and description), gave a mobile and a member card, is tagged, has
    a note, two orders and an unmatched one, tasks, a coupon, a tracked link opened on her phone, the guide
    asked the chat-bot about her, a transfer record, a failed callback waiting, Redis counters."""
    f.store("S1")
    guide = f.guide("guide01", store_code="S1", name="王小美")
    colleague = f.guide("guide02", store_code="S1", name="李佳")
    admin = f.guide("admin01", role="admin", store_code="HQ", name="总部")
    f.product("NF-1", "启赋奶粉1段", "奶粉", "300")
    templates()
    db.session.commit()
    wecom.corp.add_contact(EXT, NAME, avatar=AVATAR, unionid=UNIONID)
    wecom.corp.add_follow(EXT, "guide01", remark=f"{NAME} {MOBILE}", state="qr-erase", description=DESCRIPTION)
    control(wecom, "add_contact", userid="guide01", external_userid=EXT, name=NAME, state="qr-erase")
    work_jobs(app)
    customer = db.session.scalar(select(Customer).join(CustomerIdentity).where(CustomerIdentity.value == EXT))
    assert customer.name == NAME and customer.avatar == AVATAR
    follow = db.session.scalar(select(Follow).where(Follow.customer_id == customer.id))
    assert follow.description == DESCRIPTION

    ensure_identity(customer, "mobile", MOBILE)
    ensure_identity(customer, "member_no", MEMBER_NO)
    customer.birthday = local_today() - timedelta(days=30 * 365)
    customer.baby_birthday = local_today() - timedelta(days=150)
    customer.member_level, customer.points = "金卡", 1280
    f.tag(customer, "0-6月", group="宝宝阶段")
    event = record_event(customer, "note_added", guide=guide, payload={"text": f"{NAME}说{DESCRIPTION}"})
    event.note = f"{NAME}，{MOBILE}"
    today = local_today()
    db.session.add(RedDot(guide_id=guide.id, customer_id=customer.id, rule="dormant",
                          task_date=today - timedelta(days=1), reason="32天未购买", status="done",
                          done_at=utcnow(), rank=1))
    script = Script(external_id="s-tunai", title="吐奶", body="少量多次喂养……")
    item = Content(external_id="c-tunai", title="吐奶护理", url="https://example.com/tunai")
    db.session.add_all([script, item])
    db.session.flush()
    db.session.add(ScriptSend(script_id=script.id, guide_id=guide.id, store_id=guide.store_id,
                              customer_id=customer.id, query=f"{NAME}问吐奶怎么办 {MOBILE}", terms=[NAME, "吐奶"]))
    db.session.add(ScriptSend(script_id=script.id, guide_id=guide.id, store_id=guide.store_id, source="chatbot",
                              query=f"{NAME}说宝宝吐奶", terms=[NAME, "吐奶"]))
    db.session.add(CustomerTransfer(handover_guide_id=colleague.id, takeover_guide_id=guide.id,
                                    customer_id=customer.id, external_userid=EXT, status="done"))
    # A callback about her that failed: a replay must never bring her back.
    db.session.add(CallbackInbox(dedup_key=f"evt:change_external_contact:edit_external_contact:guide01:{EXT}::1",
                                 msg_type="event", event="change_external_contact",
                                 change_type="edit_external_contact", status="failed", attempts=3,
                                 received_at=utcnow() - timedelta(hours=1),
                                 payload={"MsgType": "event", "ExternalUserID": EXT, "UserID": "guide01"}))
    db.session.commit()

    from coupons import operations as coupon_ops
    from tracking import operations as tracking

    coupon_ops.issue("C-90", customer, guide)
    link = tracking.create_tracked_link(guide, customer, item)
    tracking.record_open(link.token, user_agent=USER_AGENT)
    db.session.commit()
    for no in ("POS-E1", "POS-E2"):
        resp = post_order(client, {"order_no": no, "channel": "pos", "store": "S1", "paid_at": utcnow().isoformat(),
                                   "amount": "600", "customer": {"mobile": MOBILE},
                                   "items": [{"sku": "NF-1", "qty": 2, "price": "300"}]})
        assert resp.status_code == 201 and resp.json["customer_matched"], resp.json
    # An order that named her mobile beside another person's card: never matched, but it carries her key.
    db.session.add(Order(order_no="POS-AMBIGUOUS", channel="pos", paid_at=utcnow(), amount=Decimal("99"),
                         customer_keys={"mobile": MOBILE, "member_no": "M-SOMEONE-ELSE"}))
    # Today's task about her, still open (the coupon and the link above closed the first one).
    db.session.add(RedDot(guide_id=guide.id, customer_id=customer.id, rule="birthday", task_date=today,
                          reason=f"{NAME}的宝宝下周满6个月", details={"name": NAME}, rank=1))
    db.session.commit()
    # The guide asked the chat-bot about her; the bot keeps the question half an hour.
    control(wecom, "text_message", userid="guide01", content=f"{NAME}问宝宝吐奶怎么办")
    work_jobs(app)
    rstore.client.set(f"bot:last:{guide.id}", json.dumps({"query": f"{NAME}问宝宝吐奶怎么办", "scripts": []}))
    rstore.client.hset(f"kb:learn:chain:{NAME}", "s-tunai", 1.0)
    rstore.client.hset("kb:learn:chain:吐奶", "s-tunai", 1.0)
    rstore.client.set(f"touch:{{{customer.id}}}:{today:%Y%m%d}", 1)
    db.session.commit()

    headers = sign_in(client, guide)
    assert client.get(f"/api/sidebar/first-screen?customer={EXT}", headers=headers).status_code == 200
    return db.session.get(Customer, customer.id), guide, admin


def test_erasure_leaves_no_personal_data_keeps_orders_and_figures_and_a_new_add_is_a_new_customer(
        app, client, wecom, ingest_key, rates, daytime):
    customer, guide, admin = a_customer_with_everything(app, wecom, client)
    cid, spend, order_count = customer.id, customer.total_spend, customer.order_count
    neighbour = control(wecom, "add_contact", userid="guide01", external_userid=EXT[:-1] + "2", name="刘先生")
    work_jobs(app)
    neighbour_inbox = db.session.execute(select(CallbackInbox.id, CallbackInbox.dedup_key, CallbackInbox.status,
                                                CallbackInbox.payload)
                                         .where(CallbackInbox.dedup_key.contains(neighbour["external_userid"]))).one()
    assert holders()  # the scan finds her before
    before = figures()

    result = erase_customer(db.session, cid, actor=admin,
                            reason=f"顾客来电申请删除个人信息（工单 PIPL-7，{NAME}，{MOBILE}）")
    db.session.commit()
    work_jobs(app)  # the Redis clean-up the erasure owes
    db.session.expire_all()

    assert result["erased"] and not result["already_erased"]
    # Nothing of hers in any text or JSON column of any table, nor in a Redis key name.
    assert holders() == []
    assert redis_keys_naming() == []
    assert rstore.client.get(f"bot:last:{guide.id}") is None
    assert rstore.client.exists("kb:learn:chain:吐奶")  # what other customers taught stays
    # Another customer's callback and profile are untouched.
    assert db.session.execute(select(CallbackInbox.id, CallbackInbox.dedup_key, CallbackInbox.status,
                                     CallbackInbox.payload)
                              .where(CallbackInbox.id == neighbour_inbox.id)).one() == neighbour_inbox
    assert db.session.scalar(select(Customer.name).join(CustomerIdentity)
                             .where(CustomerIdentity.value == EXT[:-1] + "2")) == "刘先生"
    # The shell: counts hold, nothing identifies her.
    shell = db.session.get(Customer, cid)
    assert shell.name == ERASED_NAME and shell.erased_at is not None
    assert (shell.avatar, shell.birthday, shell.baby_birthday, shell.member_level, shell.points) == (
        None, None, None, None, 0)
    assert (shell.total_spend, shell.order_count) == (spend, order_count)
    assert db.session.scalar(select(func.count()).select_from(CustomerIdentity)
                             .where(CustomerIdentity.customer_id == cid)) == 0
    assert db.session.scalar(select(func.count()).select_from(CustomerTag).where(CustomerTag.customer_id == cid)) == 0
    assert db.session.scalar(select(Order.customer_keys).where(Order.order_no == "POS-AMBIGUOUS")) == {
        "member_no": "M-SOMEONE-ELSE"}
    # Orders and every leaderboard figure are unchanged, read live and rebuilt from the database.
    assert figures() == before
    for period in ("day", "month"):
        lb.rebuild(period, local_today())
    assert figures() == before
    # No guide sees her any more; her open task is closed; the trajectory keeps its shape only.
    headers = sign_in(client, guide)
    assert client.get(f"/api/sidebar/first-screen?customer={EXT}", headers=headers).status_code == 404
    tasks = db.session.scalars(select(RedDot).where(RedDot.customer_id == cid)).all()
    assert sorted(t.status for t in tasks) == ["done", "skipped"]
    follow = db.session.scalar(select(Follow).where(Follow.customer_id == cid))
    assert follow.ended_by == "erased" and follow.remark is None and follow.description is None
    assert all(e.payload == {} and e.note is None
               for e in db.session.scalars(select(Event).where(Event.customer_id == cid)))
    # The failed callback about her is never handled again.
    assert db.session.scalar(select(CallbackInbox.status).where(CallbackInbox.event.is_not(None),
                                                                CallbackInbox.change_type == "edit_external_contact")) \
        == "ignored"
    # The audit row: who, when, why, which customer; none of her data.
    entry = db.session.scalar(select(AuditEntry))
    assert (entry.action, entry.actor, entry.guide_id, entry.customer_id) == (
        "customer_erased", "guide:admin01", admin.id, cid)
    assert "PIPL-7" in entry.reason and entry.at is not None
    assert entry.details["rows"]["identities"] == 4  # external_userid, unionid, mobile, member_no

    # She adds the guide again: a new customer, nothing of the old one comes back.
    control(wecom, "add_contact", userid="guide01", external_userid=EXT, name=NAME)
    work_jobs(app)
    fresh = db.session.scalar(select(Customer).join(CustomerIdentity).where(CustomerIdentity.value == EXT))
    assert fresh.id != cid and fresh.name == NAME and fresh.erased_at is None
    assert (fresh.order_count, fresh.total_spend) == (0, 0)
    assert db.session.scalar(select(func.count()).select_from(Order).where(Order.customer_id == fresh.id)) == 0
    assert db.session.get(Customer, cid).name == ERASED_NAME
    shown = client.get(f"/api/sidebar/first-screen?customer={EXT}", headers=headers).json["customer"]
    assert (shown["name"], shown["order_count"], shown["mobile"], shown["member_no"], shown["baby"]) == (
        NAME, 0, None, None, None)
    assert [e["type"] for e in shown["timeline"]] == ["contact_added"]


def test_a_second_erasure_is_a_no_op_that_says_so(app):
    g = f.guide()
    c = f.customer(g, name=NAME)
    db.session.commit()
    erase_customer(db.session, c.id, actor="cli:ops", reason="工单 1")
    db.session.commit()
    erased_at = db.session.get(Customer, c.id).erased_at

    again = erase_customer(db.session, c.id, actor="cli:ops", reason="工单 1")
    db.session.commit()
    assert again == {"customer_id": c.id, "erased": False, "already_erased": True, "erased_at": erased_at.isoformat()}
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == 1


def test_only_head_office_may_erase_through_the_api(app, client):
    guide = f.guide("guide01")
    manager = f.guide("manager01", role="manager")
    admin = f.guide("admin01", role="admin", store_code="HQ")
    c = f.customer(guide, name=NAME)
    db.session.commit()
    url = f"/api/admin/customers/{c.id}/erase"

    for who in (guide, manager):
        resp = client.post(url, json={"reason": "试试"}, headers=sign_in(client, who))
        assert resp.status_code == 403 and resp.json["error"] == "需要总部管理员权限"
    assert client.post(url, json={"reason": "工单"}, headers={}).status_code in (401, 403)  # no CSRF token
    headers = sign_in(client, admin)
    assert client.post(url, json={"reason": "工单"}).status_code == 403  # signed in, but no CSRF token
    resp = client.post(url, json={}, headers=headers)
    assert resp.status_code == 400 and "reason" in resp.json["error"]
    resp = client.post("/api/admin/customers/999999/erase", json={"reason": "工单"}, headers=headers)
    assert resp.status_code == 404 and resp.json["error"] == "顾客不存在"
    db.session.expire_all()
    assert db.session.get(Customer, c.id).name == NAME  # nothing happened so far
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == 0

    resp = client.post(url, json={"reason": "顾客申请（工单 PIPL-9）"}, headers=headers)
    assert resp.status_code == 200, resp.json
    assert resp.json["erased"] is True and resp.json["message"].startswith("已删除该顾客的个人信息")
    again = client.post(url, json={"reason": "重复提交"}, headers=headers)
    assert again.status_code == 200 and again.json["already_erased"] is True and "此前已删除" in again.json["message"]
    db.session.expire_all()
    assert db.session.get(Customer, c.id).name == ERASED_NAME
    entry = db.session.scalar(select(AuditEntry))
    assert (entry.actor, entry.reason) == ("guide:admin01", "顾客申请（工单 PIPL-9）")
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == 1


def test_cli_asks_first_and_refuses_without_an_answer(app, runner):
    g = f.guide()
    c = f.customer(g, name=NAME)
    other = f.customer(g, name="刘先生")
    ensure_identity(c, "mobile", MOBILE)
    db.session.commit()
    args = ["customers", "erase", str(c.id), "--reason", "工单 PIPL-11"]

    result = runner.invoke(args=args)  # no stdin, no --yes
    assert result.exit_code != 0 and "not erased" in result.output
    result = runner.invoke(args=args, input="n\n")
    assert result.exit_code != 0 and "not erased" in result.output
    db.session.expire_all()
    assert db.session.get(Customer, c.id).erased_at is None
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == 0

    found = runner.invoke(args=["customers", "find", MOBILE])
    assert found.exit_code == 0 and found.output.strip() == str(c.id)
    result = runner.invoke(args=args, input="y\n")
    assert result.exit_code == 0 and f"customer {c.id} erased" in result.output, result.output
    result = runner.invoke(args=["customers", "erase", str(other.id), "--reason", "工单 PIPL-12", "--yes"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=args + ["--yes"])
    assert result.exit_code == 0 and "already erased" in result.output
    assert runner.invoke(args=["customers", "find", MOBILE]).exit_code != 0
    db.session.expire_all()
    assert [db.session.get(Customer, x.id).name for x in (c, other)] == [ERASED_NAME, ERASED_NAME]
    actors = db.session.scalars(select(AuditEntry.actor)).all()
    assert len(actors) == 2 and all(a.startswith("cli:") for a in actors)
    log = runner.invoke(args=["customers", "audit", "--json"])
    assert [json.loads(line)["customer_id"] for line in log.output.splitlines()] == [other.id, c.id]
    assert "工单 PIPL-11" in runner.invoke(args=["customers", "audit", "--customer", str(c.id)]).output
    assert runner.invoke(args=["customers", "erase", "999999", "--reason", "x", "--yes"]).exit_code != 0


def test_a_callback_that_found_the_customer_just_before_the_erasure_does_not_write_them_back(app):
    from sqlalchemy.orm import Session

    from customers.operations import lock_unerased, find_customer

    g = f.guide()
    c = f.customer(g, name=NAME)
    ext = f.external_userid(c)
    db.session.commit()
    found = find_customer("external_userid", ext)  # the callback's job read her …
    assert found is not None
    with Session(db.engine) as other:  # … then an admin's erasure committed
        erase_customer(other, c.id, actor="cli:ops", reason="工单 PIPL-13")
        other.commit()
    assert lock_unerased(found) is None  # the job makes a new customer instead of refilling the shell
    db.session.rollback()


def test_no_rule_gives_a_task_about_an_erased_customer(app):
    from tasks import operations as tasks
    from tests.tasks.factories import D, at

    g = f.guide("guide01")
    f.guide("boss", role="manager")
    colleague = f.guide("guide02")
    erased = f.customer(g, birthday=D.replace(year=1990))                   # birthday on D, dormant, and …
    f.order(erased, at(D - timedelta(days=45)), (f.product(), 1))
    db.session.add(Follow(guide_id=colleague.id, customer_id=erased.id, added_at=at(D - timedelta(days=90)),
                          ended_at=at(D - timedelta(days=1), 15), ended_by="customer"))  # … deleted guide02
    kept = f.customer(g, birthday=D.replace(year=1991))
    db.session.commit()
    erase_customer(db.session, erased.id, actor="cli:ops", reason="工单 PIPL-14")
    db.session.commit()

    tasks.generate(D)
    assert db.session.scalars(select(RedDot.customer_id).where(RedDot.task_date == D)).all() == [kept.id]
