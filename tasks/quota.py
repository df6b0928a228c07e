"""Touch caps: no customer is pestered, however many guides follow them.

Marketing touches are capped per customer across all guides (default 1 a day, 3 in any 7 days), never sent in
quiet hours (default 21:30–08:30) and never to a customer with a do-not-disturb tag; service replies are never
blocked. The counters live in Redis (one key per customer and day, checked and incremented atomically by a
Lua script, so two guides tapping at once cannot both pass the last slot); every touch is also a row in
`touches`, from which `rebuild_counters()` restores Redis.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from core.db import db
from core.redis_store import rstore
from core.timeutil import app_tz, utcnow
from models import CustomerTag, Tag, Touch
from tasks.settings import rule_settings

COUNTER_TTL = 8 * 24 * 3600
_CHECK_AND_COUNT = """
local today = tonumber(redis.call('GET', KEYS[1]) or '0')
local week = 0
for i = 1, #KEYS do week = week + tonumber(redis.call('GET', KEYS[i]) or '0') end
if today >= tonumber(ARGV[1]) then return {0, today, week} end
if week >= tonumber(ARGV[2]) then return {-1, today, week} end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return {1, today + 1, week + 1}
"""


class TouchRefused(Exception):
    """A marketing touch is not allowed now; `reason` says why in words a guide understands."""

    def __init__(self, code: str, reason: str):
        self.code, self.reason = code, reason
        super().__init__(reason)


def _keys(customer_id: int, local_day) -> list[str]:
    # {customer_id} is a hash tag: all of one customer's keys sit on one Redis Cluster slot.
    return [f"touch:{{{customer_id}}}:{(local_day - timedelta(days=i)):%Y%m%d}" for i in range(7)]


def _in_quiet_hours(local: datetime, quiet: tuple[int, int]) -> bool:
    start, end = quiet
    minute = local.hour * 60 + local.minute
    return start <= minute < end if start < end else (minute >= start or minute < end)


def _dnd(customer_id: int, names: list[str]) -> bool:
    return db.session.scalar(select(func.count()).select_from(CustomerTag).join(Tag).where(
        CustomerTag.customer_id == customer_id, Tag.name.in_(names))) > 0


def quota(customer, now: datetime | None = None) -> dict:
    """What a guide may still do with this customer now (the sidebar shows it)."""
    cfg = rule_settings()
    local = (now or utcnow()).astimezone(app_tz())
    counts = [int(v or 0) for v in rstore.client.mget(_keys(customer.id, local.date()))]
    today, week = counts[0], sum(counts)
    out = {"dnd": _dnd(customer.id, cfg["dnd_tags"]), "quiet_hours": _in_quiet_hours(local, cfg["quiet_hours"]),
           "today_left": max(cfg["marketing_per_day"] - today, 0),
           "week_left": max(cfg["marketing_per_week"] - week, 0)}
    out["reason"] = _refusal(out, cfg)
    out["allowed"] = out["reason"] is None
    return out


def _refusal(q: dict, cfg: dict) -> str | None:
    if q["dnd"]:
        return "顾客设置了免打扰，不能发送营销消息"
    if q["quiet_hours"]:
        start, end = cfg["quiet_hours"]
        return f"{start // 60:02d}:{start % 60:02d}–{end // 60:02d}:{end % 60:02d} 是免打扰时段，请明天再发"
    if q["today_left"] <= 0:
        return f"这位顾客今天已收到{cfg['marketing_per_day']}条营销消息，请明天再发"
    if q["week_left"] <= 0:
        return f"这位顾客7天内已收到{cfg['marketing_per_week']}条营销消息，请过几天再发"
    return None


def record_touch(customer, guide, *, kind: str, channel: str, ref: str | None = None,
                 now: datetime | None = None) -> Touch:
    """Record a message to `customer`. A marketing touch over a cap raises TouchRefused and records
    nothing. The guide's open tasks for this customer today are marked done. Flushes; the caller commits."""
    if kind not in ("marketing", "service"):
        raise ValueError(f"kind must be marketing or service, not {kind!r}")
    cfg = rule_settings()
    now = now or utcnow()
    local = now.astimezone(app_tz())
    counted = None
    if kind == "marketing":
        if _dnd(customer.id, cfg["dnd_tags"]):
            raise TouchRefused("dnd", _refusal({"dnd": True}, cfg))
        if _in_quiet_hours(local, cfg["quiet_hours"]):
            raise TouchRefused("quiet_hours", _refusal({"dnd": False, "quiet_hours": True}, cfg))
        keys = _keys(customer.id, local.date())
        ok, _, _ = rstore.client.eval(_CHECK_AND_COUNT, len(keys), *keys, cfg["marketing_per_day"],
                                      cfg["marketing_per_week"], COUNTER_TTL)
        if ok == 0:
            raise TouchRefused("daily_cap", _refusal({"dnd": False, "quiet_hours": False, "today_left": 0}, cfg))
        if ok == -1:
            raise TouchRefused("weekly_cap", _refusal({"dnd": False, "quiet_hours": False, "today_left": 1,
                                                       "week_left": 0}, cfg))
        counted = keys[0]
    try:
        touch = Touch(customer_id=customer.id, guide_id=guide.id if guide else None, kind=kind,
                      channel=channel, ref=ref, at=now)
        db.session.add(touch)
        db.session.flush()
        if guide is not None:
            from reports.leaderboard import bump
            from tasks.operations import mark_done_for

            bump(guide.id, now, messages_sent=1)

            mark_done_for(guide.id, customer.id, local.date())
    except Exception:
        if counted:
            rstore.client.decr(counted)  # the touch did not happen: give the slot back
        raise
    return touch


def rebuild_counters(now: datetime | None = None) -> int:
    """Restore the Redis counters from the `touches` table (after Redis lost them). Returns keys written."""
    tz = app_tz()
    now = now or utcnow()
    since = datetime.combine(now.astimezone(tz).date() - timedelta(days=6), datetime.min.time(), tzinfo=tz)
    counts: dict[str, int] = {}
    for cid, at in db.session.execute(select(Touch.customer_id, Touch.at).where(
            Touch.kind == "marketing", Touch.at >= since)):
        key = _keys(cid, at.astimezone(tz).date())[0]
        counts[key] = counts.get(key, 0) + 1
    with rstore.client.pipeline(transaction=False) as pipe:
        for key, n in counts.items():
            pipe.set(key, n, ex=COUNTER_TTL)
        pipe.execute()
    return len(counts)
