"""Generating, listing and closing red-dot tasks.

`generate(D)` runs every rule and the playbooks as set-based queries, attaches the suggested script (and
content), inserts with the unique key (guide, customer, rule, date) so a re-run — or a run after a crash —
adds nothing twice, then ranks each guide's day by priority and customer value and marks what is over the
daily cap as "more". One transaction: a failed run leaves nothing behind.
"""
from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from datetime import date

from sqlalchemy import and_, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from tqdm import tqdm

from core.db import db
from core.timeutil import utcnow
from models import Customer, CustomerIdentity, Guide, RedDot
from tasks import playbooks
from tasks.rules import RULE_FUNCS, Candidate
from tasks.settings import SCRIPT_QUERIES, rule_settings

log = logging.getLogger(__name__)

RULE_LABELS = {"birthday": "生日", "dormant": "沉睡回访", "post_purchase": "购后回访", "replenish": "补货提醒",
               "coupon_expiring": "券到期", "new_contact": "新客", "lost_contact": "流失预警", "sop": "SOP",
               "transfer_fail": "离职继承失败"}
INSERT_BATCH = 5000


class TaskInputError(ValueError):
    """A bad date, guide or parameter; the message names it."""


class TaskClosed(ValueError):
    """The task is no longer open (done by a send, or closed on another screen); the message says how."""

    def __init__(self, message: str, status: str):
        super().__init__(message)
        self.status = status


def rule_label(rule: str) -> str:
    return RULE_LABELS.get(rule.split(":", 1)[0], rule)


def _scripts_for_rules(cfg: dict) -> dict[str, str | None]:
    """One suggested script per rule: the pinned one, or the library's best match for the rule's words."""
    from knowledge import service

    out = {}
    for rule, query in SCRIPT_QUERIES.items():
        pinned = cfg["rules"].get(rule, {}).get("script")
        if pinned:
            out[rule] = pinned
            continue
        try:
            found = service.suggest(query, top=1, with_content=False)["scripts"]
        except Exception:  # an empty library must not stop the morning's tasks
            log.exception("no script suggestion for rule %s", rule)
            found = []
        out[rule] = found[0]["external_id"] if found else None
    return out


def generate(D: date, *, progress: bool = False) -> dict:
    """Create D's tasks. Returns {"date", "created": {rule: n}, "total_created", "seconds"}."""
    started = time.perf_counter()
    cfg = rule_settings()
    rules = [r for r in RULE_FUNCS if cfg["rules"][r]["enabled"]]
    candidates: list[Candidate] = []
    with tqdm(total=len(rules) + 2, desc=f"tasks {D}", unit=" rule", disable=not progress,
              file=sys.stderr) as bar:
        for rule in rules:
            t0 = time.perf_counter()
            found = RULE_FUNCS[rule](D, cfg["rules"][rule], cfg)
            log.debug("rule %s: %d candidates in %.2f s", rule, len(found), time.perf_counter() - t0)
            candidates.extend(found)
            bar.update()
        candidates.extend(playbooks.candidates(D, cfg))
        bar.update()
        scripts = _scripts_for_rules(cfg)
        now = utcnow()
        rows = [{"guide_id": c.guide_id, "customer_id": c.customer_id, "rule": c.rule, "task_date": D,
                 "priority": c.priority, "value": c.value or 0, "reason": c.reason[:200],
                 "script_external_id": c.script or scripts.get(c.rule), "content_external_id": c.content,
                 "coupon_ref": c.coupon, "details": c.details, "status": "open", "visible": True,
                 "created_at": now} for c in candidates]
        created: Counter = Counter()
        insert = pg_insert if db.is_postgres else sqlite_insert
        stmt = insert(RedDot).on_conflict_do_nothing(
            index_elements=["guide_id", "customer_id", "rule", "task_date"]).returning(RedDot.rule)
        try:
            for i in range(0, len(rows), INSERT_BATCH):
                batch = rows[i:i + INSERT_BATCH]
                for (rule,) in db.session.execute(stmt, batch).all() if batch else ():
                    created[rule.split(":", 1)[0]] += 1
            _rank(D, cfg["daily_cap"])
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise
        bar.update()
    from reports.leaderboard import invalidate

    invalidate(D)  # tasks_total changed: the day, week and month are rebuilt on their next read
    return {"date": D.isoformat(), "created": dict(created), "total_created": sum(created.values()),
            "candidates": len(rows), "seconds": round(time.perf_counter() - started, 2)}


def _rank(D: date, cap: int) -> None:
    """Number each guide's tasks of day D (priority, then customer value) and hide what is over the cap."""
    db.session.execute(text("""
        UPDATE red_dots SET rank = ranked.rn, visible = ranked.rn <= :cap
        FROM (SELECT id, row_number() OVER (PARTITION BY guide_id ORDER BY priority DESC, value DESC, id) AS rn
              FROM red_dots WHERE task_date = :d) AS ranked
        WHERE red_dots.id = ranked.id AND (red_dots.rank IS NULL OR red_dots.rank <> ranked.rn
              OR red_dots.visible <> (ranked.rn <= :cap))"""),
        {"cap": cap, "d": D if db.is_postgres else D.isoformat()})


def find_guide(userid: str) -> Guide:
    guide = db.session.scalar(select(Guide).where(Guide.userid == userid))
    if guide is None:
        raise TaskInputError(f"unknown guide: {userid!r}")
    return guide


def list_tasks(D: date, *, guide: Guide | None = None, customer_id: int | None = None,
               include_more: bool = True) -> list[dict]:
    q = (select(RedDot, Guide.userid, CustomerIdentity.value, Customer.name)
         .join(Guide, Guide.id == RedDot.guide_id).join(Customer, Customer.id == RedDot.customer_id)
         .outerjoin(CustomerIdentity, and_(CustomerIdentity.customer_id == RedDot.customer_id,
                                           CustomerIdentity.kind == "external_userid"))
         .where(RedDot.task_date == D).order_by(Guide.userid, RedDot.rank, RedDot.id))
    if guide is not None:
        q = q.where(RedDot.guide_id == guide.id)
    if customer_id is not None:
        q = q.where(RedDot.customer_id == customer_id)
    if not include_more:
        q = q.where(RedDot.visible.is_(True))
    out, seen = [], set()
    for task, userid, external_userid, name in db.session.execute(q):
        if task.id in seen:  # a customer with two WeCom identities is one task
            continue
        seen.add(task.id)
        out.append(task_json(task, userid, external_userid, name))
    return out


def task_json(task: RedDot, userid: str, external_userid: str | None, name: str | None) -> dict:
    return {"id": task.id, "date": task.task_date.isoformat(), "guide": userid,
            "external_userid": external_userid, "customer_name": name, "rule": task.rule,
            "rule_label": rule_label(task.rule), "reason": task.reason, "priority": task.priority,
            "rank": task.rank, "more": not task.visible, "status": task.status, "skip_reason": task.skip_reason,
            "script": task.script_external_id, "content": task.content_external_id, "coupon": task.coupon_ref}


def summary(D: date, guide: Guide) -> dict:
    """{"total", "open", "by_rule": {label: n}, "more"} of a guide's visible tasks for D (the push and the bot);
    "more" counts the open ones kept in 「更多」."""
    rows = db.session.execute(select(RedDot.rule, RedDot.status).where(
        RedDot.task_date == D, RedDot.guide_id == guide.id, RedDot.visible.is_(True))).all()
    more = db.session.scalar(select(func.count()).select_from(RedDot).where(
        RedDot.task_date == D, RedDot.guide_id == guide.id, RedDot.visible.is_(False), RedDot.status == "open"))
    return _summary([(rule_label(r), s) for r, s in rows], more)


def summary_of(tasks: list[dict]) -> dict:
    """`summary()` of a guide's whole day as `list_tasks` gave it (「更多」 included), without asking again."""
    return _summary([(t["rule_label"], t["status"]) for t in tasks if not t["more"]],
                    sum(t["more"] and t["status"] == "open" for t in tasks))


def _summary(shown: list[tuple[str, str]], more: int) -> dict:
    by_rule: Counter = Counter(label for label, status in shown if status == "open")
    return {"total": len(shown), "open": sum(by_rule.values()), "by_rule": dict(by_rule.most_common()),
            "more": more}


def close_task(task_id: int, guide: Guide, *, status: str, reason: str | None = None) -> RedDot:
    """Mark a guide's own task done or skipped (a skip needs a reason). Flushes; the caller commits."""
    if status not in ("done", "skipped"):
        raise TaskInputError("status must be done or skipped")
    task = db.session.get(RedDot, task_id)
    if task is None or task.guide_id != guide.id:
        raise LookupError("no such task")
    if status == "skipped":
        reason = (reason or "").strip()
        if not reason:
            raise TaskInputError("跳过任务需要填写原因")
        if len(reason) > 200:
            raise TaskInputError("原因不能超过200字")
    from reports.leaderboard import bump

    # Only an open task closes: a screen showing it open may be stale (a send completed it), and two taps
    # may race. The conditional UPDATE decides; never done -> skipped, never counted twice.
    closed = db.session.execute(update(RedDot).where(RedDot.id == task.id, RedDot.status == "open").values(
        status=status, skip_reason=reason if status == "skipped" else None, done_at=utcnow()))
    db.session.refresh(task)
    if closed.rowcount == 0:
        raise TaskClosed("任务已完成" if task.status == "done" else "任务已跳过", task.status)
    if status == "done":
        bump(guide.id, task.task_date, tasks_done=1)
    return task


def mark_done_for(guide_id: int, customer_id: int, D: date) -> int:
    """The guide reached this customer today: their open tasks for the customer are done."""
    from reports.leaderboard import bump

    result = db.session.execute(update(RedDot).where(
        RedDot.guide_id == guide_id, RedDot.customer_id == customer_id, RedDot.task_date == D,
        RedDot.status == "open").values(status="done", done_at=utcnow()))
    if result.rowcount:
        bump(guide_id, D, tasks_done=result.rowcount)
    return result.rowcount
