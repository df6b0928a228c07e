"""Staff departure through the WeCom stand-in: 100 customers per call, a customer WeCom refuses, polling the
results, the transfer_fail callback, the admin API and the CLI."""
from __future__ import annotations

import json

from sqlalchemy import func, select

from core.db import db
from core.timeutil import local_today
from guides import operations as ops
from models import Customer, CustomerTransfer, Event, Follow, Guide, RedDot
from tests.bot.test_end_to_end import control, service, wecom, work_jobs  # noqa: F401 (fixtures)
from tests.knowledge.test_api import sign_in
from tests.tasks import factories as f


def team(standin, n_customers: int, *, stranger: bool = True):
    """A store with a manager, a departing guide with `n_customers` customers (all WeCom friends but the
    last when `stranger`), a receiver; each customer has an open red dot with the departing guide."""
    manager = f.guide("boss", role="manager", name="陈店长")
    leaver, receiver = f.guide("leaver", name="王丽"), f.guide("receiver", name="李娜")
    for g in (manager, leaver, receiver):
        standin.corp.add_member(g.userid, g.name)
    customers = [f.customer(leaver) for _ in range(n_customers)]
    for i, c in enumerate(customers):
        ext = f.external_userid(c)
        standin.corp.add_contact(ext, c.name)
        if not (stranger and i == n_customers - 1):  # the last: no longer the leaver's friend in WeCom
            standin.corp.add_follow(ext, "leaver")
    for c in customers:
        db.session.add(RedDot(guide_id=leaver.id, customer_id=c.id, rule="birthday", task_date=local_today(),
                              reason="生日关怀", rank=1))
    db.session.commit()
    return manager, leaver, receiver, customers


def transfer_calls(standin):
    return [c for c in standin.corp.calls_to() if c["path"].endswith("externalcontact/resigned/transfer_customer")]


def test_offboard_transfers_100_per_call_moves_binding_and_tasks_and_flags_a_refused_customer(app, wecom):
    manager, leaver, receiver, customers = team(wecom, 150)
    result = ops.offboard("leaver", "receiver")
    db.session.commit()

    calls = transfer_calls(wecom)
    assert [len(c["body"]["external_userid"]) for c in calls] == [100, 50]
    assert all(c["body"]["handover_userid"] == "leaver" and c["body"]["takeover_userid"] == "receiver"
               for c in calls)
    assert (result["customers"], result["accepted"], result["calls"]) == (150, 149, 2)
    stranger = customers[-1]
    assert [x["external_userid"] for x in result["failed"]] == [f.external_userid(stranger)]
    assert result["failed"][0]["errcode"] == 84061 and "不是好友" in result["failed"][0]["reason"]

    db.session.expire_all()
    assert db.session.get(Guide, leaver.id).status == "left"
    moved = customers[0]
    assert db.session.get(Customer, moved.id).binding_guide_id == receiver.id
    old = db.session.scalar(select(Follow).where(Follow.guide_id == leaver.id, Follow.customer_id == moved.id))
    assert old.ended_by == "transfer"  # history kept
    new = db.session.scalar(select(Follow).where(Follow.guide_id == receiver.id, Follow.customer_id == moved.id))
    assert new.ended_at is None and new.added_at == old.added_at
    assert db.session.scalar(select(func.count()).select_from(RedDot).where(
        RedDot.guide_id == receiver.id, RedDot.rule == "birthday")) == 149
    # The refused customer stays with the departed guide; the store manager gets a task about them.
    assert db.session.get(Customer, stranger.id).binding_guide_id == leaver.id
    task = db.session.scalar(select(RedDot).where(RedDot.guide_id == manager.id))
    assert task.rule == "transfer_fail" and task.customer_id == stranger.id and "王丽" in task.reason
    statuses = dict(db.session.execute(select(CustomerTransfer.status, func.count()).group_by(
        CustomerTransfer.status)).all())
    assert statuses == {"waiting": 149, "failed": 1}

    # A re-run retries only what is still with the departed guide.
    again = ops.offboard("leaver", "receiver")
    assert (again["customers"], again["calls"]) == (1, 1)


def test_polling_settles_results_and_a_refusal_is_undone_for_the_manager(app, wecom):
    manager, leaver, receiver, customers = team(wecom, 3, stranger=False)
    ops.offboard("leaver", "receiver")
    db.session.commit()
    refuser = customers[1]
    control(wecom, "transfer_settle", status=3, external_userid=[f.external_userid(refuser)])
    control(wecom, "transfer_settle", status=1)
    from guides.tasks import poll_transfers

    assert poll_transfers(local_today()) == {"checked": 3, "done": 2, "failed": 1, "waiting": 0}
    db.session.expire_all()
    assert db.session.get(Customer, customers[0].id).binding_guide_id == receiver.id
    assert db.session.get(Customer, refuser.id).binding_guide_id == leaver.id
    task = db.session.scalar(select(RedDot).where(RedDot.guide_id == manager.id))
    assert task.customer_id == refuser.id and "顾客拒绝" in task.reason
    assert poll_transfers(local_today())["checked"] == 0  # nothing left waiting: idempotent


def test_transfer_fail_callback_raises_a_task_for_the_store_manager(app, wecom):
    manager, leaver, receiver, customers = team(wecom, 2, stranger=False)
    ops.offboard("leaver", "receiver")
    db.session.commit()
    ext = f.external_userid(customers[0])
    resp = control(wecom, "transfer_fail", userid="receiver", external_userid=ext,
                   fail_reason="customer_limit_exceed")
    assert resp["callback"]["status"] == 200
    work_jobs(app)
    task = db.session.scalar(select(RedDot).where(RedDot.guide_id == manager.id))
    assert task is not None and task.rule == "transfer_fail" and "接替人客户数已达上限" in task.reason
    assert db.session.scalar(select(CustomerTransfer.status).where(
        CustomerTransfer.external_userid == ext)) == "receiver_full"
    assert db.session.scalar(select(Event.type).where(Event.type == "transfer_failed")) == "transfer_failed"


def test_admin_api_offboards_only_for_admins(app, client, wecom):
    manager, leaver, receiver, customers = team(wecom, 2, stranger=False)
    admin = f.guide("hq", role="admin")
    db.session.commit()
    url = "/api/admin/guides/leaver/offboard"
    assert client.post(url, json={"to": "receiver"}).status_code == 401
    headers = sign_in(client, manager)
    assert client.post(url, json={"to": "receiver"}, headers=headers).status_code == 403
    headers = sign_in(client, admin)
    assert client.post(url, json={"to": "receiver"}).status_code == 403  # no CSRF token
    assert client.post(url, json={}, headers=headers).status_code == 400
    assert client.post("/api/admin/guides/nobody/offboard", json={"to": "receiver"},
                       headers=headers).status_code == 404
    assert db.session.scalar(select(func.count()).select_from(CustomerTransfer)) == 0
    resp = client.post(url, json={"to": "receiver"}, headers=headers)
    assert resp.status_code == 200 and resp.json["accepted"] == 2
    listed = client.get("/api/admin/guides/leaver/transfers").json["transfers"]
    assert {t["status_label"] for t in listed} == {"等待接替"}


def test_cli_offboard_and_bad_input(app, runner, wecom):
    team(wecom, 2, stranger=True)
    out = runner.invoke(args=["guides", "offboard", "leaver", "--to", "leaver"])
    assert out.exit_code != 0 and "another guide" in out.output
    out = runner.invoke(args=["guides", "offboard", "leaver", "--to", "ghost"])
    assert out.exit_code != 0 and "unknown receiver: 'ghost'" in out.output
    assert db.session.scalar(select(func.count()).select_from(CustomerTransfer)) == 0
    out = runner.invoke(args=["guides", "offboard", "leaver", "--to", "receiver", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["accepted"] == 1
    out = runner.invoke(args=["guides", "transfers", "leaver"])
    assert "等待接替" in out.output and "企业微信拒绝了转接请求" in out.output


def test_a_failed_wecom_call_leaves_its_batch_for_a_re_run(app, wecom):
    manager, leaver, receiver, customers = team(wecom, 120, stranger=False)
    control(wecom, "fault", path="externalcontact/resigned/transfer_customer", errcode=45009, times=1)
    result = ops.offboard("leaver", "receiver")
    db.session.commit()
    assert (result["calls"], result["accepted"], len(result["failed"])) == (2, 20, 100)
    assert all(x["errcode"] == 45009 for x in result["failed"])
    assert db.session.scalar(select(func.count()).select_from(RedDot).where(RedDot.guide_id == manager.id)) == 0
    again = ops.offboard("leaver", "receiver")
    db.session.commit()
    assert (again["customers"], again["accepted"], again["failed"]) == (100, 100, [])
    assert db.session.scalar(select(func.count()).select_from(Follow).where(
        Follow.guide_id == receiver.id, Follow.ended_at.is_(None))) == 120


def test_offboard_looks_up_the_manager_once_and_the_receivers_relations_per_batch(app, wecom):
    from tests.statements import statements

    manager, leaver, receiver, customers = team(wecom, 8)
    for c in customers[4:-1]:  # the last three are no longer the leaver's friends in WeCom: refused
        wecom.corp.remove_follow(f.external_userid(c), "leaver")
    # The receiver already follows one of them.
    db.session.add(Follow(guide_id=receiver.id, customer_id=customers[1].id, added_at=f.at(f.D, 9)))
    db.session.commit()

    with statements("from guides") as guide_reads, statements("from follows") as follow_reads:
        result = ops.offboard("leaver", "receiver")
    db.session.commit()
    assert (result["accepted"], len(result["failed"])) == (4, 4)
    assert len([s for s in guide_reads if "guides.role = " in s]) == 1  # the store manager, not once per refusal
    assert len([s for s in follow_reads if "follows.customer_id IN" in s]) == 1  # the receiver's, for the batch
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(RedDot).where(
        RedDot.guide_id == manager.id, RedDot.rule == "transfer_fail")) == 4
    kept = db.session.scalar(select(Follow).where(Follow.guide_id == receiver.id,
                                                  Follow.customer_id == customers[1].id))
    assert kept.state is None and kept.ended_at is None  # the receiver's own relation stays as it was
    assert db.session.get(Customer, customers[2].id).binding_guide_id == receiver.id


def test_polling_looks_up_the_store_manager_once_however_many_transfers_failed(app, wecom):
    from guides.tasks import poll_transfers
    from tests.statements import statements

    manager, leaver, receiver, customers = team(wecom, 6, stranger=False)
    ops.offboard("leaver", "receiver")
    db.session.commit()
    refusers = customers[:4]
    control(wecom, "transfer_settle", status=3, external_userid=[f.external_userid(c) for c in refusers])
    control(wecom, "transfer_settle", status=1)

    with statements("from guides") as guide_reads:
        assert poll_transfers(local_today()) == {"checked": 6, "done": 2, "failed": 4, "waiting": 0}
    assert len([s for s in guide_reads if "guides.role = " in s]) == 1  # not once per refused customer
    db.session.expire_all()
    tasks = db.session.scalars(select(RedDot).where(RedDot.guide_id == manager.id)).all()
    assert sorted(t.customer_id for t in tasks) == sorted(c.id for c in refusers)
    assert all(t.rule == "transfer_fail" and "顾客拒绝" in t.reason for t in tasks)



def test_a_departing_store_manager_s_refused_customers_go_to_an_admin_not_to_themselves(app, wecom):
    manager, leaver, receiver, customers = team(wecom, 2)
    admin = f.guide("hq", role="admin", name="总部运营")
    db.session.commit()
    assert ops.store_manager(leaver).id == manager.id
    # The manager leaving is still active while their customers are handed over: the admin gets the tasks.
    assert ops.store_manager(manager).id == admin.id
    # The hourly poll asks once per store, whichever departure of the store it settles first.
    for order in ((leaver, manager), (manager, leaver)):
        manager_of = ops._store_managers()
        assert {g.userid: manager_of(g).userid for g in order} == {"leaver": "boss", "boss": "hq"}
