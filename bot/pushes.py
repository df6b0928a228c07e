"""Pushes to guides through WeCom `message/send` (text cards linking into the sidebar).

`queue_pushes(kind, D)` writes one `guide_pushes` row per guide (unique per guide, kind and day, so a re-run
of the scheduler pushes nothing twice) and queues one RQ job per row (pipelined: one Redis round trip per
thousand); thousands of guides are served by adding workers. A job sends within WeCom's per-member limit
(30 a minute), and on failure records the error on its row and raises, so RQ retries it with backoff; a row
still `failed` after the retries stays visible (`flask --app app tasks pushes`) and `queue_pushes` queues it
again on the next run — never lost silently.
"""
from __future__ import annotations

import logging
from datetime import date, timedelta

from flask import current_app
from sqlalchemy import event, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.wecom_client import WeComError, get_wecom
from core.db import db
from core.queue import jobs
from core.redis_store import rstore
from core.timeutil import utcnow
from models import Content, Guide, GuidePush

log = logging.getLogger(__name__)

KINDS = ("morning_brief", "red_dots", "daily_ranking")
PER_MEMBER_PER_MINUTE = 30


class PushThrottled(Exception):
    """This member had its 30 messages this minute; RQ retries the job later."""


def _link(tab: str) -> str:
    return f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}/sidebar/?tab={tab}"


def queue_pushes(kind: str, D: date, *, guide_ids: list[int] | None = None) -> int:
    """Create D's `kind` push for every active guide (or those given) and queue the unsent ones."""
    if kind not in KINDS and not kind.startswith("loss:"):
        raise ValueError(f"unknown push kind {kind!r}")
    q = select(Guide.id).where(Guide.status == "active")
    if guide_ids is not None:
        q = q.where(Guide.id.in_(guide_ids))
    ids = db.session.scalars(q).all()
    if ids:
        insert = pg_insert if db.is_postgres else sqlite_insert
        db.session.execute(insert(GuidePush).on_conflict_do_nothing(
            index_elements=["guide_id", "kind", "push_date"]),
            [{"guide_id": i, "kind": kind, "push_date": D, "status": "queued", "attempts": 0,
              "created_at": utcnow()} for i in ids])
    pending = db.session.scalars(select(GuidePush.id).where(
        GuidePush.kind == kind, GuidePush.push_date == D, GuidePush.status.in_(("queued", "failed")),
        GuidePush.guide_id.in_(ids))).all() if ids else []
    db.session.commit()
    jobs.enqueue_many(send_push, [(push_id,) for push_id in pending])
    return len(pending)


def compose(push: GuidePush, guide: Guide) -> tuple[str, str, str] | None:
    """(title, description, link) of a push; None when there is nothing worth saying."""
    D = push.push_date
    if push.kind == "red_dots":
        from tasks.operations import summary

        s = summary(D, guide)
        if not s["open"]:
            return None
        parts = "，".join(f"{label} {n}" for label, n in s["by_rule"].items())
        more = f"\n另有 {s['more']} 项在「更多」里" if s["more"] else ""
        return f"今日待办 {s['open']} 项", f"{parts}{more}\n点开查看顾客和推荐话术", _link("tasks")
    if push.kind == "morning_brief":
        new = [c.title for c in morning_content(D)]
        lines = [f"· {t}" for t in new] or ["· 今天没有新素材，常用素材在「素材」里"]
        return "早安！今日素材与工具", "\n".join(lines) + "\n9:00 推送今日待办", _link("content")
    if push.kind == "daily_ranking":
        return _ranking_card(guide, D)
    if push.kind.startswith("loss:"):
        lost = db.session.get(Guide, int(push.kind.split(":", 1)[1]))
        return (f"客户流失预警：{lost.name if lost else ''}",
                f"{lost.name if lost else '一位导购'}今天已失去 {push.body or '多'} 位客户（离职或批量删除？）",
                _link("tasks"))
    return None


def morning_content(D: date, limit: int = 3) -> list[Content]:
    """The morning brief's content: enabled items valid from D or added in the last day, newest first
    (the sidebar's workbench shows the same list in its 素材 tab)."""
    return list(db.session.scalars(select(Content).where(
        Content.enabled.is_(True), or_(Content.valid_from == D, Content.created_at >= utcnow() - timedelta(days=1)))
        .order_by(Content.id.desc()).limit(limit)))


def team_ranking(guide: Guide, D: date) -> list[dict]:
    """The day's ranking of the guide's store team from the leaderboard: active guides by attributed GMV,
    ranked among themselves (the store manager coaches, not competes). Empty without a store."""
    from reports.leaderboard import guide_rows

    if guide.store_id is None:
        return []
    rows = [r for r in guide_rows("day", D, metric="gmv", store_id=guide.store_id)
            if r["status"] == "active" and r["role"] == "guide"]
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows


def _ranking_card(guide: Guide, D: date) -> tuple[str, str, str] | None:
    """The team's day from the leaderboard (reconciled at 20:00): attributed GMV and tasks done per guide of
    the store; a guide also sees where they stand."""
    rows = team_ranking(guide, D)
    if not rows:
        return None
    lines = [f"{r['rank']}. {r['name']} 业绩¥{float(r['gmv']):.0f} 订单{r['orders']} 完成任务{r['tasks_done']}"
             for r in rows[:10]]
    mine = next((r for r in rows if r["userid"] == guide.userid), None)
    if mine and mine["rank"] > 10:
        lines.append(f"…\n{mine['rank']}. {mine['name']} 业绩¥{float(mine['gmv']):.0f} 完成任务{mine['tasks_done']}")
    return "今日团队排行", "\n".join(lines), _link("ranking")


def send_push(push_id: int) -> str:
    """RQ job: send one push, once."""
    push = db.session.scalar(select(GuidePush).where(GuidePush.id == push_id).with_for_update())
    if push is None or push.status in ("sent", "skipped"):
        db.session.rollback()
        return "nothing to do"
    guide = db.session.get(Guide, push.guide_id)
    card = compose(push, guide)
    if card is None:
        push.status = "skipped"
        db.session.commit()
        return "skipped"
    title, description, url = card
    push.attempts += 1
    push.title, push.body = title, description if not push.kind.startswith("loss:") else push.body
    try:
        _throttle(guide.userid)
        client = get_wecom()
        client.message.send_text_card(client.agent_id, guide.userid, title, description, url, btntxt="去处理")
    except (WeComError, PushThrottled) as exc:
        push.status = "failed"
        push.last_error = str(exc)[:1000]
        db.session.commit()
        log.warning("push %s to %s failed (attempt %s): %s", push.kind, guide.userid, push.attempts, exc)
        raise
    push.status, push.sent_at, push.last_error = "sent", utcnow(), None
    db.session.commit()
    return "sent"


def _throttle(userid: str) -> None:
    key = f"push:rate:{userid}:{utcnow():%Y%m%d%H%M}"
    with rstore.client.pipeline() as pipe:
        pipe.incr(key)
        pipe.expire(key, 120)
        count, _ = pipe.execute()
    if count > PER_MEMBER_PER_MINUTE:
        raise PushThrottled(f"{userid} reached {PER_MEMBER_PER_MINUTE} messages this minute")


def alert_mass_loss(guide: Guide, D: date, lost_today: int) -> None:
    """A guide lost `lost_today` customers today (a departure or a bulk deletion): tell the store's
    managers at once, once a day per guide."""
    managers = db.session.scalars(select(Guide.id).where(
        Guide.store_id == guide.store_id, Guide.role == "manager", Guide.status == "active")).all()
    if not managers or guide.store_id is None:
        return
    if not rstore.client.set(f"alert:loss:{guide.id}:{D:%Y%m%d}", 1, nx=True, ex=3 * 86400):
        return
    kind = f"loss:{guide.id}"
    insert = pg_insert if db.is_postgres else sqlite_insert
    db.session.execute(insert(GuidePush).on_conflict_do_nothing(index_elements=["guide_id", "kind", "push_date"]),
                       [{"guide_id": m, "kind": kind, "push_date": D, "status": "queued", "attempts": 0,
                         "body": str(lost_today), "created_at": utcnow()} for m in managers])
    db.session.flush()
    ids = db.session.scalars(select(GuidePush.id).where(GuidePush.kind == kind, GuidePush.push_date == D)).all()

    def queue(_session):  # only once the rows are committed, or the job could find none
        jobs.enqueue_many(send_push, [(push_id,) for push_id in ids])

    event.listen(db.session(), "after_commit", queue, once=True)
