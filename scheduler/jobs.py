"""Every periodic job, declared as data in one place. The scheduler process only reads this list.

Times are local (APP_TIMEZONE). Each job takes the local date of its slot and must be idempotent: the
runner may re-run a slot after a crash, and catches up a missed slot once at start-up.
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

    return {"queued": queue_pushes("daily_ranking", D)}


@dataclass(frozen=True)
class Job:
    key: str
    hour: int
    minute: int
    func: Callable[[date], dict]
    description: str


JOBS = [
    Job("morning_brief", 8, 0, morning_brief, "08:00 早安：今日素材与工具"),
    Job("red_dots", 9, 0, red_dots, "09:00 生成并推送今日红点任务"),
    Job("daily_ranking", 20, 0, daily_ranking, "20:00 推送团队当日排行"),
]
