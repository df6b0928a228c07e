"""Leaderboards: live figures equal rebuilt ones, the CLI's rows, departed guides, the manager page and the
evening push."""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta

from sqlalchemy import select

from core.db import db
from core.timeutil import local_today
from coupons import operations as coupon_ops
from customers.operations import ensure_identity, open_follow
from models import Guide, RedDot
from reports import leaderboard as lb
from tasks import operations as task_ops
from tasks import quota
from tests.bot.test_end_to_end import service, wecom  # noqa: F401 (fixtures)
from tests.commerce_helpers import ingest_key, post_order, rates, templates  # noqa: F401 (fixtures)
from tests.knowledge.test_api import sign_in
from tests.statements import redis_round_trips  # noqa: F401 (fixture)
from tests.tasks import factories as f
from tests.tasks.factories import TZ


def at(days=0, hour=12):
    return datetime.combine(local_today() - timedelta(days=days), datetime.min.time().replace(hour=hour), tzinfo=TZ)


def board(runner, *args):
    result = runner.invoke(args=["report", *args, "--json"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def activity(client):
    """A day of work for two guides in S1 and one in S2, through the real operations."""
    a, b = f.guide("guide_a", name="小安"), f.guide("guide_b", name="小贝")
    c_ = f.guide("guide_c", store_code="S2", name="小陈")
    f.product("NF-1", "奶粉1段", "奶粉", "300")
    customers = [f.customer(a, added=local_today() - timedelta(days=40)) for _ in range(3)]
    cb = f.customer(b, added=local_today() - timedelta(days=40), birthday=local_today() + timedelta(days=1))
    for i, c in enumerate(customers + [cb]):
        ensure_identity(c, "mobile", f"1390000000{i}")
    db.session.commit()
    task_ops.generate(local_today())  # b: cb's birthday is tomorrow
    lb.rebuild("day", local_today())  # start from a reconciled board, then let live events move it

    # Live: a new contact, messages, a coupon, a task done, orders (one redeeming the coupon).
    newcomer = f.customer(c_)  # factories write rows directly: no live event …
    open_follow(b, newcomer, added_at=at(0, 10))  # … this one goes through the operation
    quota.record_touch(customers[0], a, kind="service", channel="script", now=at(0, 11))
    coupon = coupon_ops.issue("C-90", customers[1], a, now=at(0, 11))
    task = db.session.scalar(select(RedDot).where(RedDot.guide_id == b.id))
    task_ops.close_task(task.id, b, status="done")
    db.session.commit()
    for no, mobile, amount, coupons in (("O1", "13900000000", "300", []), ("O2", "13900000001", "600", [coupon.code]),
                                        ("O3", "13900000003", "300", [])):
        resp = post_order(client, {"order_no": no, "channel": "pos", "paid_at": at(0, 14).isoformat(),
                                   "amount": amount, "customer": {"mobile": mobile}, "coupons": coupons,
                                   "items": [{"sku": "NF-1", "qty": int(amount) // 300, "price": "300"}]})
        assert resp.status_code == 201, resp.json
    return a, b, c_


def test_live_equals_rebuilt_and_rows_are_what_the_cli_promises(app, client, runner, ingest_key, rates):
    templates()
    a, b, c_ = activity(client)
    live = board(runner, "leaderboard")
    day_live = lb.guide_rows("day", local_today(), metric="gmv")
    rebuilt = board(runner, "leaderboard-rebuild")
    assert live == rebuilt
    assert lb.guide_rows("day", local_today(), metric="gmv") == day_live
    assert list(live[0]) == ["rank", "userid", "name", "store", "new_customers", "tasks_done", "orders", "gmv",
                             "commission", "coupons_redeemed"]
    assert [(r["rank"], r["userid"], r["store"], r["orders"], r["gmv"], r["commission"]) for r in live] == [
        (1, "guide_a", "S1", 2, "900.00", "18.00"), (2, "guide_b", "S1", 1, "300.00", "6.00"),
        (3, "guide_c", "S2", 0, "0.00", "0.00")]
    a_row, b_row = live[0], live[1]
    assert a_row["coupons_redeemed"] == 1 and b_row["tasks_done"] == 1 and b_row["new_customers"] == 1
    full = {r["userid"]: r for r in day_live}
    assert (full["guide_a"]["messages_sent"], full["guide_a"]["coupons_sent"]) == (2, 1)
    assert full["guide_b"]["completion_rate"] == 1.0
    # The week and the month hold the day; sorting by another metric; one store; stores ranked.
    for period in ("week", "month"):
        assert board(runner, "leaderboard", "--period", period) == live
    assert [r["userid"] for r in board(runner, "leaderboard", "--metric", "new_customers")][0] == "guide_b"
    assert [r["userid"] for r in board(runner, "leaderboard", "--store", "S2")] == ["guide_c"]
    stores = board(runner, "leaderboard", "--stores")
    assert [(s["store"], s["orders"], s["gmv"]) for s in stores] == [("S1", 3, "1200.00"), ("S2", 0, "0.00")]
    bad = runner.invoke(args=["report", "leaderboard", "--metric", "smiles"])
    assert bad.exit_code != 0 and "metric must be one of" in bad.output
    # Yesterday is built from the database on first read: empty.
    assert all(r["gmv"] == "0.00" for r in board(runner, "leaderboard", "--date", str(local_today() - timedelta(days=1))))


def test_a_departed_guide_stays_in_the_rankings(app, client, runner, ingest_key, rates):
    templates()
    a, _, _ = activity(client)
    a.status, a.left_at = "left", at(0, 18)
    db.session.commit()
    rows = board(runner, "leaderboard-rebuild", "--period", "month")
    assert rows[0]["userid"] == "guide_a" and rows[0]["gmv"] == "900.00"


def test_manager_page_roles_and_csv(app, client, ingest_key, rates):
    templates()
    activity(client)
    manager = f.guide("boss1", role="manager", name="店长")
    admin = f.guide("hq", role="admin", store_code="HQ")
    db.session.commit()
    anonymous = client.get("/manager/")
    assert anonymous.status_code == 302 and "/sidebar/login" in anonymous.headers["Location"]
    assert client.get("/manager/export.csv").status_code == 401
    guide = db.session.scalar(select(Guide).where(Guide.userid == "guide_a"))
    sign_in(client, guide)
    assert client.get("/manager/").status_code == 403
    assert client.get("/manager/export.csv").status_code == 403
    sign_in(client, manager)
    page = client.get("/manager/?period=week")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "小安" in html and "小陈" not in html  # S2's guide is not theirs
    assert "weui/weui.min.css" in html and "vendor/echarts/echarts.min.js" not in html  # the chart is its own tab
    assert "vendor/echarts/echarts.min.js" in client.get("/manager/?tab=trend").get_data(as_text=True)
    assert client.get("/manager/static/vendor/echarts/echarts.min.js").status_code == 200
    data = client.get("/manager/data.json").json
    assert data["trend"][-1]["gmv"] == "1200.00" and data["stores"] == []
    exported = client.get("/manager/export.csv?period=month&metric=orders")
    assert exported.status_code == 200 and "attachment" in exported.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True).lstrip("\ufeff"))))
    assert [(r["userid"], r["orders"]) for r in rows][:2] == [("guide_a", "2"), ("guide_b", "1")]
    assert "guide_c" not in {r["userid"] for r in rows}
    assert client.get("/manager/?period=year").status_code == 400
    bad = client.get("/manager/?date=<b>1.5.2026</b>")  # the page names the bad value, escaped
    assert bad.status_code == 400 and "&lt;b&gt;1.5.2026&lt;/b&gt;" in bad.get_data(as_text=True)
    bad = client.get("/manager/data.json?date=1.5.2026")
    assert bad.status_code == 400 and "1.5.2026" in bad.json["error"]
    sign_in(client, admin)
    data = client.get("/manager/data.json").json
    assert {r["userid"] for r in data["guides"]} >= {"guide_a", "guide_c"}
    assert data["stores"][0]["store"] == "S1" and data["stores"][0]["gmv"] == "1200.00"


def test_evening_push_uses_the_leaderboard(app, client, ingest_key, rates):
    from bot.pushes import compose
    from models import GuidePush

    templates()
    a, b, _ = activity(client)
    f.guide("boss1", role="manager", name="店长")  # the manager is not in the team's ranking
    db.session.commit()
    title, body, _ = compose(GuidePush(guide_id=b.id, kind="daily_ranking", push_date=local_today()), b)
    assert title == "今日团队排行"
    assert body.splitlines()[0] == "1. 小安 业绩¥900 订单2 完成任务0"
    assert body.splitlines()[1] == "2. 小贝 业绩¥300 订单1 完成任务1"
    assert len(body.splitlines()) == 2


def test_the_hourly_reconcile_repairs_drift(app, client, runner, ingest_key, rates):
    from core.redis_store import rstore
    from scheduler.jobs import JOBS, leaderboard_reconcile

    templates()
    activity(client)
    right = board(runner, "leaderboard", "--period", "month")
    # Redis lost an increment (or got one twice): the live view is wrong …
    key = f"lb:guide:month:{local_today():%Y-%m}:gmv"
    a_id = db.session.scalar(select(Guide.id).where(Guide.userid == "guide_a"))
    rstore.client.zincrby(key, 5000, a_id)
    assert board(runner, "leaderboard", "--period", "month")[0]["gmv"] == "5900.00"
    # … until the hourly job rebuilds it from the database.
    assert next(j for j in JOBS if j.key == "leaderboard_reconcile").every_minutes == 60
    leaderboard_reconcile(local_today())
    assert board(runner, "leaderboard", "--period", "month") == right


def test_demo_mode_signs_with_the_public_demo_key(app, client, monkeypatch):
    from config import DEMO_INGEST_KEY

    monkeypatch.setitem(app.config, "INGEST_HMAC_KEY", None)
    monkeypatch.setitem(app.config, "DEMO", True)
    g = f.guide("guide01")
    c = f.customer(g)
    ensure_identity(c, "mobile", "13900000009")
    db.session.commit()
    resp = post_order(client, {"order_no": "DEMO-1", "channel": "pos", "paid_at": at(0, 9).isoformat(),
                               "amount": "10", "customer": {"mobile": "13900000009"},
                               "items": [{"sku": "X", "qty": 1, "price": "10"}]}, key=DEMO_INGEST_KEY)
    assert resp.status_code == 201 and resp.json["guide"] == "guide01"


def test_the_trend_is_one_query_per_local_day_at_the_day_edges(app):
    from decimal import Decimal

    from tests.statements import statements

    a, b = f.guide("guide_a"), f.guide("guide_b", store_code="S2")
    ca, cb = f.customer(a), f.customer(b)
    p = f.product("NF-1", "奶粉1段", "奶粉", "100")
    end = f.D
    for when in (f.at(end, 0), f.at(end - timedelta(days=1), 23), f.at(end - timedelta(days=1), 23),
                 f.at(end - timedelta(days=29), 0), f.at(end - timedelta(days=30), 23), f.at(end + timedelta(days=1), 0)):
        f.order(ca, when, (p, 1)).commission = Decimal("2.50")
    f.order(cb, f.at(end, 12), (p, 3))  # S2's
    db.session.commit()

    with statements("from orders") as sent:
        days = lb.trend(30, end)
    assert len(sent) == 1  # not one per day
    assert [d["date"] for d in (days[0], days[-1])] == [str(end - timedelta(days=29)), str(end)]
    by_date = {d["date"]: (d["orders"], d["gmv"], d["commission"]) for d in days}
    assert by_date[str(end)] == (2, "400.00", "2.50")  # local midnight belongs to the day it starts
    assert by_date[str(end - timedelta(days=1))] == (2, "200.00", "5.00")
    assert by_date[str(end - timedelta(days=29))] == (1, "100.00", "2.50")  # the 31st day back is left out
    assert sum(n for n, _, _ in by_date.values()) == 5 and by_date[str(end - timedelta(days=2))] == (0, "0.00", "0.00")
    s1 = {d["date"]: d["orders"] for d in lb.trend(30, end, store_id=a.store_id)}
    assert s1[str(end)] == 1 and sum(s1.values()) == 4


def test_the_evening_push_reads_only_the_guides_store(app, wecom, redis_round_trips):
    from scheduler import runner
    from scheduler.jobs import JOBS
    from tests.bot.test_end_to_end import work_jobs
    from tests.statements import statements

    p = f.product("NF-1", "奶粉1段", "奶粉", "100")
    team1 = [f.guide(f"s1_{i}", name=f"甲{i}") for i in range(3)]
    team2 = [f.guide(f"s2_{i}", store_code="S2", name=f"乙{i}") for i in range(3)]
    boss = f.guide("boss1", role="manager", name="店长")
    for i, g in enumerate(team1 + team2 + [boss]):
        wecom.corp.add_member(g.userid, g.name)
        if g.role == "guide":
            f.order(f.customer(g), at(0, 10), (p, i % 3 + 1))
    db.session.commit()

    job = next(j for j in JOBS if j.key == "daily_ranking")
    del redis_round_trips[:]
    with statements("left outer join stores") as board_reads:
        assert runner.run_slot(job, runner.slot_time(job, local_today())) == "ran"
        work_jobs(app)
    # Each push reads its own store's board: the rows of that store's guides, their scores by ZMSCORE over
    # those guides only; nothing reads the whole chain's sorted sets.
    assert len(board_reads) == 7 and all("guides.store_id =" in sql for sql in board_reads)
    sent = [c if isinstance(c, bytes) else b"".join(bytes(part) for part in c) for c in redis_round_trips]
    assert any(b"ZMSCORE" in c for c in sent) and not any(b"ZRANGE" in c and b"lb:guide:" in c for c in sent)
    cards = {c["body"]["touser"]: c["body"]["textcard"]["description"] for c in wecom.corp.calls_to()
             if c["path"].endswith("message/send")}
    assert cards["s1_0"].splitlines() == ["1. 甲2 业绩¥300 订单1 完成任务0", "2. 甲1 业绩¥200 订单1 完成任务0",
                                          "3. 甲0 业绩¥100 订单1 完成任务0"]
    assert cards["boss1"] == cards["s1_1"] == cards["s1_0"]  # the manager sees the team, not in it
    assert cards["s2_0"].splitlines() == ["1. 乙2 业绩¥300 订单1 完成任务0", "2. 乙1 业绩¥200 订单1 完成任务0",
                                          "3. 乙0 业绩¥100 订单1 完成任务0"]
    assert len(cards) == 7
