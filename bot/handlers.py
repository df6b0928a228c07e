"""What each WeCom callback does. wechatpy 1.8 has no external-contact event classes: the fields come
straight from the decrypted XML (see ../shared/docs/wecom-notes.md)."""
from __future__ import annotations

import json
import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select

from bot.wecom_client import WeComError, get_wecom
from customers import operations as ops
from core.db import db
from core.redis_store import rstore
from core.timeutil import to_local
from models import Customer, Follow, Guide, Tag, TagGroup

log = logging.getLogger(__name__)

HELP_TEXT = (
    "我是导购助手，可以这样用：\n"
    "1. 把顾客的原话发给我（例如「宝宝最近老是吐奶怎么办」），我回复最合适的3条话术；\n"
    "2. 回复话术前的序号（1、2、3），记为已使用，以后推荐会更准；\n"
    "3. 发送「任务」查看今天的待办；\n"
    "4. 发送「帮助」再看一次本说明。"
)
HELP_WORDS = {"帮助", "help", "?", "？", "怎么用", "菜单"}
TASK_WORDS = {"任务", "待办", "今日任务", "红点"}
BOT_TOP = 3
LAST_ANSWER_TTL = 30 * 60  # a guide picks a number within half an hour of asking
MAX_REPLY_BYTES = 2000  # WeCom's text message limit is 2048 bytes


def find(fields: dict):
    if fields.get("MsgType") == "event":
        if fields.get("Event") == "change_external_contact":
            return CONTACT_CHANGES.get(fields.get("ChangeType"))
        if fields.get("Event") == "change_external_tag":
            return sync_tag_library
        return None
    if fields.get("MsgType") == "text":
        return answer_guide_text
    return None


def _guide(userid: str) -> Guide:
    guide = db.session.scalar(select(Guide).where(Guide.userid == userid))
    if guide is not None:
        return guide
    name = None
    try:
        name = get_wecom().user.get(userid).get("name")
    except WeComError as exc:
        log.info("user/get %s failed (%s); guide created with the userid as name", userid, exc.errcode)
    return ops.ensure_guide(userid, name)


def contact_added(fields: dict, *, ref: str) -> dict:
    guide = _guide(fields["UserID"])
    info = get_wecom().external_contact.get(fields["ExternalUserID"])
    customer = ops.upsert_from_wecom(info["external_contact"])
    mine = next((f for f in info.get("follow_user", []) if f.get("userid") == guide.userid), {})
    added_at = ops.from_timestamp(mine.get("createtime") or fields.get("CreateTime"))
    ops.open_follow(guide, customer, added_at=added_at, state=fields.get("State") or mine.get("state"),
                    remark=mine.get("remark"), description=mine.get("description"))
    half = fields.get("ChangeType") == "add_half_external_contact"
    ops.record_event(customer, "contact_added", occurred_at=ops.from_timestamp(fields["CreateTime"]),
                     channel="wecom", guide=guide, ref=ref,
                     payload={"state": fields.get("State"), "half": half})
    welcome = None
    if fields.get("WelcomeCode"):
        welcome = send_welcome(fields["WelcomeCode"], customer, guide)
    return {"customer_id": customer.id, "welcome": welcome}


def send_welcome(code: str, customer: Customer, guide: Guide) -> str:
    text = current_app.config["WELCOME_TEXT"].format(name=customer.name or "", guide=guide.name)
    try:
        get_wecom().send_welcome_text(code, text)
    except WeComError as exc:
        if exc.errcode == 41051:  # already sent (a retried job): done, never twice
            return "already_sent"
        raise
    return "sent"


def contact_edited(fields: dict, *, ref: str) -> dict:
    info = get_wecom().external_contact.get(fields["ExternalUserID"])
    customer = ops.upsert_from_wecom(info["external_contact"])
    guide = _guide(fields["UserID"])
    mine = next((f for f in info.get("follow_user", []) if f.get("userid") == guide.userid), None)
    if mine:
        ops.open_follow(guide, customer, added_at=ops.from_timestamp(mine.get("createtime") or fields["CreateTime"]),
                        remark=mine.get("remark"), description=mine.get("description"))
    ops.record_event(customer, "profile_edited", occurred_at=ops.from_timestamp(fields["CreateTime"]),
                     channel="wecom", guide=guide, ref=ref)
    return {"customer_id": customer.id}


def _relation_ended(fields: dict, *, ref: str, ended_by: str, event_type: str) -> dict:
    customer = ops.find_customer("external_userid", fields["ExternalUserID"])
    if customer is None:
        return {"note": "unknown customer"}
    guide = _guide(fields["UserID"])
    when = ops.from_timestamp(fields["CreateTime"])
    if fields.get("Source") == "DELETE_BY_TRANSFER":
        ended_by = "transfer"
    ops.end_follow(guide, customer, ended_at=when, ended_by=ended_by)
    ops.record_event(customer, event_type, occurred_at=when, channel="wecom", guide=guide, ref=ref,
                     payload={"source": fields.get("Source")} if fields.get("Source") else {})
    if ended_by != "transfer":
        _watch_mass_loss(guide, when)
    return {"customer_id": customer.id}


def _watch_mass_loss(guide: Guide, when) -> None:
    """Alert the store manager at once when a guide loses many customers in one day."""
    from bot.pushes import alert_mass_loss
    from core.timeutil import start_of
    from tasks.settings import rule_settings

    day = to_local(when).date()
    lost = db.session.scalar(select(func.count()).select_from(Follow).where(
        Follow.guide_id == guide.id, Follow.ended_by.in_(("customer", "guide")),
        Follow.ended_at >= start_of(day), Follow.ended_at < start_of(day + timedelta(days=1))))
    if lost >= rule_settings()["rules"]["lost_contact"]["alert_threshold"]:
        alert_mass_loss(guide, day, lost)


def customer_deleted_guide(fields: dict, *, ref: str) -> dict:
    return _relation_ended(fields, ref=ref, ended_by="customer", event_type="customer_deleted_guide")


def guide_deleted_customer(fields: dict, *, ref: str) -> dict:
    return _relation_ended(fields, ref=ref, ended_by="guide", event_type="guide_deleted_customer")


def transfer_failed(fields: dict, *, ref: str) -> dict:
    customer = ops.find_customer("external_userid", fields["ExternalUserID"])
    if customer is None:
        return {"note": "unknown customer"}
    guide = _guide(fields["UserID"])
    when = ops.from_timestamp(fields["CreateTime"])
    ops.record_event(customer, "transfer_failed", occurred_at=when,
                     channel="wecom", guide=guide, ref=ref, payload={"reason": fields.get("FailReason")})
    from guides.operations import transfer_failed as settle_failed

    # Undo the move and raise a red dot for the store manager (customer refused, receiver at the cap).
    settle_failed(customer, guide.userid, fields.get("FailReason"), now=when)
    return {"customer_id": customer.id, "reason": fields.get("FailReason")}


def sync_tag_library(fields: dict | None = None, *, ref: str | None = None) -> dict:
    """Mirror the corp tag library; tags gone from WeCom are marked deleted (customer history keeps them)."""
    groups = get_wecom().external_contact.get_corp_tag_list().get("tag_group", [])
    seen_groups, seen_tags = set(), set()
    for g in groups:
        group = db.session.scalar(select(TagGroup).where(TagGroup.wecom_id == g["group_id"]))
        if group is None:
            group = db.session.scalar(select(TagGroup).where(TagGroup.name == g["group_name"]))
        if group is None:
            group = TagGroup(name=g["group_name"], wecom_id=g["group_id"])
            db.session.add(group)
        group.name, group.wecom_id, group.order, group.deleted = g["group_name"], g["group_id"], g.get("order", 0), False
        db.session.flush()
        seen_groups.add(group.id)
        for t in g.get("tag", []):
            tag = db.session.scalar(select(Tag).where(Tag.wecom_id == t["id"]))
            if tag is None:
                tag = db.session.scalar(select(Tag).where(Tag.group_id == group.id, Tag.name == t["name"]))
            if tag is None:
                tag = Tag(group_id=group.id, name=t["name"], wecom_id=t["id"])
                db.session.add(tag)
            tag.group_id, tag.name, tag.wecom_id = group.id, t["name"], t["id"]
            tag.order, tag.deleted = t.get("order", 0), bool(t.get("deleted", False))
            db.session.flush()
            seen_tags.add(tag.id)
    for tag in db.session.scalars(select(Tag).where(Tag.wecom_id.is_not(None))):
        if tag.id not in seen_tags:
            tag.deleted = True
    for group in db.session.scalars(select(TagGroup).where(TagGroup.wecom_id.is_not(None))):
        if group.id not in seen_groups:
            group.deleted = True
    db.session.flush()
    return {"groups": len(seen_groups), "tags": len(seen_tags)}


def answer_guide_text(fields: dict, *, ref: str) -> dict:
    """A guide wrote to the app: help, today's tasks, a pick of an earlier answer, or a customer's question
    answered with the best three scripts."""
    userid = fields.get("FromUserName", "")
    text = (fields.get("Content") or "").strip()
    guide = _guide(userid)
    if not text or text.lower() in HELP_WORDS:
        reply, result = HELP_TEXT, {"kind": "help"}
    elif text in TASK_WORDS:
        reply, result = tasks_reply(guide), {"kind": "tasks"}
    elif text.isdigit() and len(text) <= 2:
        reply, result = _pick(guide, int(text))
    else:
        reply, result = _answer_question(guide, text)
    get_wecom().send_text_to_members(userid, _fit(reply))
    return {**result, "reply": reply}


def tasks_reply(guide: Guide) -> str:
    """Today's red dots for the chat-bot's 任务 command: the same list the 09:00 push announces."""
    from core.timeutil import local_today
    from tasks.operations import list_tasks

    tasks = [t for t in list_tasks(local_today(), guide=guide, include_more=False) if t["status"] == "open"]
    if not tasks:
        return "今天没有待办任务，去侧边栏看看素材吧～"
    lines = [f"今日待办 {len(tasks)} 项："]
    for i, t in enumerate(tasks[:10], 1):
        lines.append(f"{i}. [{t['rule_label']}] {t['customer_name'] or '顾客'}：{t['reason']}")
    if len(tasks) > 10:
        lines.append(f"……其余 {len(tasks) - 10} 项请在侧边栏「任务」查看")
    return "\n".join(lines)


def _answer_question(guide: Guide, text: str) -> tuple[str, dict]:
    from knowledge import service

    try:
        scripts = service.suggest(text, guide=guide, top=BOT_TOP, with_content=False)["scripts"]
    except service.EmptyQuery:
        return HELP_TEXT, {"kind": "help"}
    if not scripts:
        return ("没有找到合适的话术，换个说法试试，或在侧边栏的话术库里按分类查找。",
                {"kind": "answer", "scripts": []})
    rstore.client.set(f"bot:last:{guide.id}", json.dumps({"query": text[:500], "scripts": [
        s["external_id"] for s in scripts]}), ex=LAST_ANSWER_TTL)
    lines = [f"推荐话术（回复序号记为已使用）："]
    for i, s in enumerate(scripts, 1):
        lines.append(f"{i}.【{s['title']}】{s['body']}")
    return "\n\n".join(lines), {"kind": "answer", "scripts": [s["external_id"] for s in scripts]}


def _pick(guide: Guide, number: int) -> tuple[str, dict]:
    from knowledge import service

    raw = rstore.client.get(f"bot:last:{guide.id}")
    if not raw:
        return "请先把顾客的问题发给我，再回复话术序号。", {"kind": "pick", "picked": None}
    last = json.loads(raw)
    if not 1 <= number <= len(last["scripts"]):
        return f"请回复 1 到 {len(last['scripts'])} 之间的序号。", {"kind": "pick", "picked": None}
    eid = last["scripts"][number - 1]
    try:
        service.record_send(guide, eid, query=last["query"], source="chatbot")
    except LookupError:
        return "这条话术已被删除，请重新提问。", {"kind": "pick", "picked": None}
    rstore.client.delete(f"bot:last:{guide.id}")  # one pick per answer: a repeated number is not learned twice
    return f"已记录第{number}条，谢谢！以后类似的问题会优先推荐它。", {"kind": "pick", "picked": eid}


def _fit(reply: str) -> str:
    """Cut a reply to WeCom's text limit on a character boundary."""
    data = reply.encode("utf-8")
    if len(data) <= MAX_REPLY_BYTES:
        return reply
    return data[:MAX_REPLY_BYTES - 3].decode("utf-8", errors="ignore") + "…"


CONTACT_CHANGES = {
    "add_external_contact": contact_added,
    "add_half_external_contact": contact_added,
    "edit_external_contact": contact_edited,
    "del_external_contact": customer_deleted_guide,
    "del_follow_user": guide_deleted_customer,
    "transfer_fail": transfer_failed,
}
