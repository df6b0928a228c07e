"""Every periodic job, declared as data in one place. The scheduler process only reads this list.

Daily jobs run at a local time (APP_TIMEZONE); interval jobs (`Job.every`) run every N minutes, on slots
aligned to the clock. Each job takes the local date of its slot and must be idempotent: the runner may re-run a
slot after a crash, and catches up a missed daily slot once at start-up (an interval job simply runs at its
next slot).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Callable


def morning_brief(D: date) -> dict:
    from bot.pushes import queue_pushes

    return {"queued": queue_pushes("morning_brief", D)}


def red_dots(D: date) -> dict:
    from bot.pushes import queue_pushes
    from tasks.operations import generate

    result = generate(D)
    return {"created": result["total_created"], "queued": queue_pushes("red_dots", D)}


def daily_ranking(D: date) -> dict:
    from bot.pushes import queue_pushes
    from reports.leaderboard import rebuild

    rebuild("day", D)  # the 20:00 ranking is reconciled from the database before it is pushed
    return {"queued": queue_pushes("daily_ranking", D)}


def coupon_expire(D: date) -> dict:
    """Expire the coupons whose validity ended (idempotent: an expired coupon is not touched again). The
    runner commits with the run's record."""
    from coupons.operations import expire

    return {"expired": expire()}


def orders_match(D: date) -> dict:
    """Match orders whose customer was unknown when they arrived, going on where the last run stopped (its
    `next_after`, kept in its job_runs result), so that every unmatched order is tried in turn. The runner
    commits."""
    from sqlalchemy import select

    from core.db import db
    from models import JobRun
    from orders.operations import match_pending

    last = db.session.scalar(select(JobRun.result).where(JobRun.job == "orders_match", JobRun.status == "done")
                             .order_by(JobRun.slot.desc()).limit(1))
    return match_pending(after=(last or {}).get("next_after", 0))


def leaderboard_reconcile(D: date) -> dict:
    """Rebuild yesterday's and today's rankings (day, week, month) from the database."""
    from datetime import timedelta

    from reports.leaderboard import PERIODS, rebuild, span

    for period in PERIODS:  # yesterday and today share their week and month on most days: rebuild each once
        for day in {span(period, day).first: day for day in (D - timedelta(days=1), D)}.values():
            rebuild(period, day)
    return {"rebuilt": [str(D - timedelta(days=1)), str(D)]}


def script_prior(D: date) -> dict:
    """Recompute each script's conversion prior for suggestions (one grouped query; kept in Redis by script
    id, so library changes keep it)."""
    from knowledge.prior import rebuild

    return rebuild()


def script_vectors(D: date) -> dict:
    """Compute the sentence vectors scripts still lack (an embedding run that died, a model change): the
    imports do it themselves; this is the safety net. Also announces vectors no rebuild has announced."""
    from knowledge import operations, semantic

    if not semantic.enabled():
        return {"skipped": "semantic channel off or unavailable"}
    return operations.embed_library(budget=300.0)  # the model is loaded only if a script needs a vector


def recommend_pairs(D: date) -> dict:
    from recommend.tasks import rebuild_pairs

    return rebuild_pairs(D)


def transfer_results(D: date) -> dict:
    from guides.tasks import poll_transfers

    return poll_transfers(D)


def prune_job_runs(D: date) -> dict:
    """Forget the record of slots older than 30 days (the hourly jobs add ~100 rows a day); failed runs stay
    until they are 90 days old, for whoever investigates them."""
    from datetime import timedelta

    from sqlalchemy import delete

    from core.db import db
    from core.timeutil import start_of
    from models import JobRun

    midnight = start_of(D)
    done = db.session.execute(delete(JobRun).where(JobRun.status != "failed",
                                                   JobRun.slot < midnight - timedelta(days=30))).rowcount
    failed = db.session.execute(delete(JobRun).where(JobRun.slot < midnight - timedelta(days=90))).rowcount
    return {"deleted": done + failed}


@dataclass(frozen=True)
class Job:
    key: str
    hour: int
    minute: int
    func: Callable[[date], dict]
    description: str
    every_minutes: int | None = None  # set: an interval job; hour and minute are unused

    @classmethod
    def every(cls, key: str, minutes: int, func: Callable[[date], dict], description: str) -> "Job":
        if not 1 <= minutes <= 1440:
            raise ValueError(f"job {key}: interval {minutes} min is out of range 1..1440")
        return cls(key, 0, 0, func, description, every_minutes=minutes)

    @property
    def when(self) -> str:
        return f"every {self.every_minutes} min" if self.every_minutes else f"{self.hour:02d}:{self.minute:02d}"


JOBS = [
    Job("morning_brief", 8, 0, morning_brief, "08:00 早安：今日素材与工具"),
    Job("red_dots", 9, 0, red_dots, "09:00 生成并推送今日红点任务"),
    Job("daily_ranking", 20, 0, daily_ranking, "20:00 推送团队当日排行"),
    # An expired coupon is refused by its expires_at at once anyway; the job records the state change.
    Job.every("coupon_expire", 60, coupon_expire, "每小时：过期优惠券"),
    Job.every("orders_match", 60, orders_match, "每小时：匹配未识别顾客的订单"),
    Job.every("leaderboard_reconcile", 60, leaderboard_reconcile, "每小时：从数据库重建昨日与今日排行"),
    Job.every("script_prior", 60, script_prior, "每小时：重算话术转化先验（建议排序）"),
    Job.every("script_vectors", 10, script_vectors, "每10分钟：补算缺少的话术语义向量"),
    Job("product_pairs", 23, 30, recommend_pairs, "23:30 重算商品关联（常一起买）"),
    Job.every("transfer_results", 60, transfer_results, "每小时查询离职继承结果"),
    Job.every("prune_job_runs", 1440, prune_job_runs, "每天：清理30天前的任务运行记录"),
]
