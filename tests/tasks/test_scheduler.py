"""The scheduler and the pushes to guides, end to end through the local WeCom stand-in."""
from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from core.db import db
from core.redis_store import rstore
from core.timeutil import UTC, local_today
from models import GuidePush, JobRun, RedDot
from scheduler import runner
from scheduler.jobs import JOBS
from tests.bot.test_end_to_end import control, service, wecom, work_jobs  # noqa: F401 (fixtures)
from tests.statements import redis_round_trips  # noqa: F401 (fixtures)
from tests.tasks import factories as f

RED_DOTS = next(j for j in JOBS if j.key == "red_dots")


def cards(standin):
    return [c["body"] for c in standin.corp.calls_to() if c["path"].endswith("message/send")
            and c["body"].get("msgtype") == "textcard"]


def setup_day():
    today = local_today()
    g1 = f.guide("guide01", name="王小美")
    g2 = f.guide("guide02", name="李佳")
    # Added 10 days ago: never dormant, whatever day the suite runs (the dormant rule fires every 30 days).
    f.customer(g1, birthday=today + timedelta(days=1), added=today - timedelta(days=10))
    f.customer(g1, added=today - timedelta(days=1))
    db.session.commit()
    return today, g1, g2


def test_the_morning_run_generates_and_pushes_once(app, wecom):
    today, g1, g2 = setup_day()
    slot = runner.slot_time(RED_DOTS, today)
    assert runner.run_slot(RED_DOTS, slot) == "ran"
    work_jobs(app)
    [card] = cards(wecom)  # guide02 has nothing to do today: no push
    assert card["touser"] == "guide01"
    assert card["textcard"]["title"] == "今日待办 2 项"
    assert "生日 1" in card["textcard"]["description"] and "新客 1" in card["textcard"]["description"]
    assert card["textcard"]["url"].endswith("/sidebar/?tab=tasks")
    assert runner.run_slot(RED_DOTS, slot) == "done already"
    runner.catch_up(slot + timedelta(hours=1))  # a restart at 10:00: the 08:00 brief was missed, 09:00 was not
    work_jobs(app)
    titles = sorted(c["textcard"]["title"] for c in cards(wecom))
    assert titles == ["今日待办 2 项", "早安！今日素材与工具", "早安！今日素材与工具"]
    assert db.session.scalar(select(func.count()).select_from(RedDot)) == 2


def test_only_one_instance_runs_a_slot(app):
    today, *_ = setup_day()
    slot = runner.slot_time(RED_DOTS, today)
    rstore.client.set(f"scheduler:lock:red_dots:{slot:%Y%m%dT%H%M}", 1, ex=60)  # another machine holds it
    assert runner.run_slot(RED_DOTS, slot) == "locked"
    assert db.session.scalar(select(func.count()).select_from(JobRun)) == 0


def test_a_missed_slot_is_caught_up_once_at_start_up(app, wecom):
    today, *_ = setup_day()
    after_nine = runner.slot_time(RED_DOTS, today) + timedelta(hours=2)
    caught = runner.catch_up(after_nine)
    assert caught["red_dots"] == "ran" and caught["morning_brief"] == "ran"
    assert runner.catch_up(after_nine) == {}
    before_eight = runner.slot_time(JOBS[0], today) - timedelta(hours=1)
    db.session.execute(JobRun.__table__.delete())
    db.session.commit()
    assert runner.catch_up(before_eight) == {}  # nothing due yet today


def test_a_failed_push_is_recorded_and_sent_on_retry(app, wecom):
    from bot.pushes import send_push

    today, g1, _ = setup_day()
    control(wecom, "fault", path="message/send", errcode=45009, times=1)
    runner.run_slot(RED_DOTS, runner.slot_time(RED_DOTS, today))
    push = db.session.scalar(select(GuidePush).where(GuidePush.guide_id == g1.id))
    with pytest.raises(Exception):
        send_push(push.id)  # what the RQ worker runs; it raises so RQ retries with backoff
    db.session.refresh(push)
    assert push.status == "failed" and "45009" in push.last_error and push.attempts == 1
    assert send_push(push.id) == "sent"
    db.session.refresh(push)
    assert push.status == "sent" and push.attempts == 2
    delivered = [m for m in wecom.corp.messages_sent if m.get("msgtype") == "textcard"]
    assert len(delivered) == 1  # the refused call delivered nothing


def test_the_chat_bot_lists_todays_tasks(app, wecom):
    today, g1, _ = setup_day()
    runner.run_slot(RED_DOTS, runner.slot_time(RED_DOTS, today))
    work_jobs(app)
    control(wecom, "text_message", userid="guide01", content="任务")
    work_jobs(app)
    texts = [c["body"]["text"]["content"] for c in wecom.corp.calls_to() if c["path"].endswith("message/send")
             and c["body"].get("msgtype") == "text"]
    assert texts[-1].startswith("今日待办 2 项：") and "[生日]" in texts[-1] and "[新客]" in texts[-1]


def test_a_guide_losing_many_customers_alerts_the_manager_at_once(app, wecom, monkeypatch):
    g = f.guide("guide01", name="王小美")
    f.guide("boss", role="manager", name="陈店长")
    customers = [f.customer(g) for _ in range(3)]
    db.session.commit()
    app.extensions["task_rules"] = __import__("tasks.settings", fromlist=["x"]).load_rule_settings(
        {"lost_contact": {"alert_threshold": 3}})
    try:
        for c in customers:
            control(wecom, "del_follow_user", userid="guide01", external_userid=f.external_userid(c))
            work_jobs(app)
    finally:
        app.extensions.pop("task_rules", None)
    alerts = [c for c in cards(wecom) if c["touser"] == "boss"]
    assert len(alerts) == 1 and "王小美" in alerts[0]["textcard"]["title"]
    assert "3 位客户" in alerts[0]["textcard"]["description"]


def test_an_interval_job_runs_once_per_clock_aligned_slot(app):
    from scheduler.jobs import Job

    ran = []
    job = Job.every("probe", 10, lambda D: ran.append(D) or {"n": len(ran)}, "probe")
    t = datetime(2026, 3, 2, 2, 7, tzinfo=UTC)  # 10:07 in Shanghai
    slot = runner.current_slot(job, t)
    assert slot == datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    assert runner.current_slot(job, t + timedelta(minutes=2, seconds=59)) == slot  # 10:09:59, same slot
    assert runner.run_slot(job, slot) == "ran"
    assert runner.run_slot(job, runner.current_slot(job, t + timedelta(minutes=1))) == "done already"
    assert runner.run_slot(job, runner.current_slot(job, t + timedelta(minutes=3))) == "ran"  # 10:10
    assert ran == [date(2026, 3, 2), date(2026, 3, 2)]
    assert "probe" not in runner.catch_up(t)  # interval jobs are not caught up, they run at their next slot
    with pytest.raises(ValueError, match="out of range"):
        Job.every("bad", 0, lambda D: {}, "bad")


def test_old_job_runs_are_pruned_but_recent_and_failed_ones_stay(app):
    from scheduler.jobs import prune_job_runs

    today = local_today()
    noon = datetime.combine(today, datetime.min.time().replace(hour=12), tzinfo=runner.app_tz())
    for days, status in ((1, "done"), (29, "done"), (31, "done"), (45, "failed"), (120, "failed")):
        db.session.add(JobRun(job="orders_match", slot=(noon - timedelta(days=days)).astimezone(UTC),
                              status=status))
    db.session.commit()
    assert prune_job_runs(today) == {"deleted": 2}
    db.session.commit()
    left = sorted((today - r.slot.astimezone(runner.app_tz()).date()).days for r in db.session.scalars(select(JobRun)))
    assert left == [1, 29, 45]


def test_a_run_queues_its_pushes_in_one_redis_round_trip(app, redis_round_trips):
    from bot.pushes import queue_pushes
    from core.queue import jobs

    for i in range(30):
        f.guide(f"guide{i:02d}")
    db.session.commit()
    redis_round_trips.clear()
    assert queue_pushes("morning_brief", local_today()) == 30
    assert len([t for t in redis_round_trips if b"RPUSH" in b"".join(t)]) == 1  # not one per guide
    assert jobs.queue.count == 30
