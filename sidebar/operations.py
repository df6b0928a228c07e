"""What the sidebar reads and changes: the profile (with its audit), tags synced to WeCom, content sends,
and the first screen in one call.

Writes follow the project's rule: validate, call WeCom first when WeCom must agree, then write and flush;
the request commits once. A WeCom failure raises `WeComError` before anything is written locally, so a
tag that WeCom refused is never stored here.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import delete, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.wecom_client import WeComError, get_wecom
from core.db import db
from core.timeutil import local_today, to_local, utcnow
from customers.operations import record_event
from sidebar.auth import lock_for_write
from customers.segments import LIFECYCLE_LABELS, baby_age, lifecycle_stage, rfm_segment
from models import (Customer, CustomerIdentity, CustomerTag, Event, Follow, Guide, ProfileView, Tag,
                    TagGroup)

GUIDE_TAG_GROUP = "导购备注"  # the corp tag group that holds guides' free-text tags
GUIDE_TAG_MAX = 30
TIMELINE_SIZE = 30
WECOM_TAG_EXISTS = 40071  # add_corp_tag: a tag of that name already exists in the group

EVENT_LABELS = {
    "contact_added": "添加企业微信",
    "profile_edited": "资料更新",
    "customer_deleted_guide": "删除了导购",
    "guide_deleted_customer": "导购删除了客户",
    "transfer_failed": "转接失败",
    "order": "下单",
    "tag_added": "打标签",
    "tag_removed": "去掉标签",
    "content_sent": "发送素材",
    "product_sent": "推荐商品",
}
CHANNEL_LABELS = {"pos": "门店", "ecommerce": "商城", "miniprogram": "小程序", "wecom": "企业微信"}


class SidebarInputError(ValueError):
    """Bad input from the page; the message says what is wrong, in words a guide understands."""


# ------------------------------------------------------------------------------------------- reading


def mask_mobile(mobile: str | None) -> str | None:
    """138****1234: enough to recognise, not enough to copy."""
    if not mobile:
        return None
    digits = mobile.strip()
    if len(digits) < 7:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


def _identities(customer: Customer) -> dict[str, str]:
    out: dict[str, str] = {}
    for kind, value in db.session.execute(select(CustomerIdentity.kind, CustomerIdentity.value)
                                          .where(CustomerIdentity.customer_id == customer.id)
                                          .order_by(CustomerIdentity.id)):
        out.setdefault(kind, value)
    return out


def _iso(dt) -> str | None:
    return to_local(dt).isoformat(timespec="minutes") if dt else None


def _event_text(ev: Event) -> str:
    """One short line from the event's payload, whatever shape its source gave it."""
    p = ev.payload if isinstance(ev.payload, dict) else {}
    if ev.type == "order":
        parts = []
        if p.get("amount") not in (None, ""):
            parts.append(f"¥{p['amount']}")
        items = p.get("items") or p.get("lines")
        if isinstance(items, int):
            parts.append(f"{items}件")
        elif isinstance(items, list):
            names = [str(i.get("name") or i.get("sku")) for i in items[:3] if isinstance(i, dict)]
            parts.append("、".join(n for n in names if n))
        return " ".join(x for x in parts if x)
    if ev.type in ("tag_added", "tag_removed", "content_sent", "product_sent"):
        return str(p.get("tag") or p.get("title") or "")
    return str(p.get("note") or p.get("reason") or p.get("remark") or "")


def timeline(customer: Customer, limit: int = TIMELINE_SIZE) -> list[dict]:
    events = db.session.scalars(select(Event).where(Event.customer_id == customer.id)
                                .order_by(Event.occurred_at.desc(), Event.id.desc()).limit(limit))
    return [{"type": e.type, "label": EVENT_LABELS.get(e.type, e.type), "at": _iso(e.occurred_at),
             "channel": CHANNEL_LABELS.get(e.channel or "", e.channel), "text": _event_text(e)} for e in events]


def profile(customer: Customer, guide: Guide, *, today: date | None = None) -> dict:
    """Everything the 客户 tab shows."""
    today = today or local_today()
    follows = db.session.execute(select(Follow, Guide.name).join(Guide, Guide.id == Follow.guide_id)
                                 .where(Follow.customer_id == customer.id)).all()
    live = [(f, name) for f, name in follows if f.ended_at is None]
    own = next((f for f, _ in live if f.guide_id == guide.id), None)
    binding = next((name for f, name in live if f.guide_id == customer.binding_guide_id), None)
    ids = _identities(customer)
    stage = lifecycle_stage(customer, today, following=bool(live))
    age = baby_age(customer, today)
    return {
        "external_userid": ids.get("external_userid"),
        "name": customer.name,
        "remark": (own.remark if own else None) or next((f.remark for f, _ in live if f.remark), None),
        "avatar": customer.avatar,
        "gender": customer.gender,
        "member_level": customer.member_level,
        "points": customer.points,
        "member_no": ids.get("member_no"),
        "mobile": mask_mobile(ids.get("mobile")),
        "baby": age.label if age else None,
        "baby_stage": age.stage if age else None,
        "lifecycle": stage,
        "lifecycle_label": LIFECYCLE_LABELS[stage],
        "rfm": rfm_segment(customer, today),
        "binding_guide": binding,
        "followers": [name for _, name in live],
        "first_added": _iso(customer.first_added_at),
        "last_purchase": _iso(customer.last_order_at),
        "order_count": customer.order_count or 0,
        "total_spend": str(Decimal(customer.total_spend or 0).quantize(Decimal("0.01"))),
        "timeline": timeline(customer),
    }


def record_view(guide: Guide, customer: Customer, *, entry: str | None = None, ip: str | None = None) -> None:
    """The audit log: every view of a profile (flushes with the request's other writes)."""
    db.session.add(ProfileView(guide_id=guide.id, customer_id=customer.id, viewed_at=utcnow(),
                               entry=(entry or None) and entry[:32], ip=(ip or None) and ip[:64]))


def tag_groups(customer: Customer) -> list[dict]:
    """The corp's tag groups with each tag marked on/off for this customer; the guides' free-text group shows
    only this customer's notes (the corp may hold thousands)."""
    mine = set(db.session.scalars(select(CustomerTag.tag_id).where(CustomerTag.customer_id == customer.id)))
    rows = db.session.execute(
        select(TagGroup.id, TagGroup.name, Tag.id, Tag.name)
        .join(Tag, Tag.group_id == TagGroup.id)
        .where(TagGroup.deleted.is_(False), Tag.deleted.is_(False),
               or_(TagGroup.name != GUIDE_TAG_GROUP, Tag.id.in_(mine)))  # of the notes, only this customer's
        .order_by(TagGroup.order, TagGroup.id, Tag.order, Tag.id))
    groups: dict[int, dict] = {}
    for gid, gname, tid, tname in rows:
        guide_group = gname == GUIDE_TAG_GROUP
        g = groups.setdefault(gid, {"id": gid, "name": gname, "guide_notes": guide_group, "tags": []})
        g["tags"].append({"id": tid, "name": tname, "on": tid in mine})
    out = [g for g in groups.values() if not g["guide_notes"]]
    notes = next((g for g in groups.values() if g["guide_notes"]), None)
    out.append(notes or {"id": None, "name": GUIDE_TAG_GROUP, "guide_notes": True, "tags": []})
    return out


# ------------------------------------------------------------------------------------------- tags


def _acting_userid(guide: Guide, customer: Customer) -> str:
    """WeCom marks tags on one member's relation with the customer: the guide's own when they follow the
    customer, else (a manager or admin) the binding guide's."""
    rows = db.session.execute(select(Follow.guide_id, Guide.userid).join(Guide, Guide.id == Follow.guide_id)
                              .where(Follow.customer_id == customer.id, Follow.ended_at.is_(None))
                              .order_by(Follow.added_at)).all()
    for gid, userid in rows:
        if gid == guide.id:
            return userid
    for gid, userid in rows:
        if gid == customer.binding_guide_id:
            return userid
    if rows:
        return rows[0][1]
    raise SidebarInputError("这位客户已不是任何导购的好友，无法同步标签到企业微信")


def _mark_tag(guide: Guide, customer: Customer, external_userid: str, *, add=(), remove=()) -> None:
    data = {"userid": _acting_userid(guide, customer), "external_userid": external_userid}
    if add:
        data["add_tag"] = list(add)
    if remove:
        data["remove_tag"] = list(remove)
    get_wecom()._post("externalcontact/mark_tag", data=data)


def set_tag(guide: Guide, customer: Customer, external_userid: str, tag_id: int, on: bool) -> dict:
    """Add (on) or remove a corp tag: WeCom first, then here. Returns the tag as the page shows it."""
    tag = db.session.get(Tag, tag_id)
    if tag is None or tag.deleted or tag.group.deleted:
        raise LookupError("标签不存在或已被删除")
    link = db.session.get(CustomerTag, (customer.id, tag.id))
    if on == (link is not None):  # already as asked: nothing to sync
        return {"id": tag.id, "name": tag.name, "on": on, "changed": False}
    if tag.wecom_id:
        _mark_tag(guide, customer, external_userid, add=[tag.wecom_id] if on else (),
                  remove=() if on else [tag.wecom_id])
    customer = lock_for_write(customer)  # after WeCom's answer: the lock is not held over the call
    # The lock (KEY SHARE) does not serialise two requests about the customer: the row is written so that the
    # second of two identical toggles changes nothing (and records nothing) instead of failing.
    changed = _link_tag(customer, tag, guide) if on else _unlink_tag(customer, tag)
    if not changed:  # done meanwhile by another request
        return {"id": tag.id, "name": tag.name, "on": on, "changed": False}
    record_event(customer, "tag_added" if on else "tag_removed", channel="wecom", guide=guide,
                 payload={"tag": f"{tag.group.name}/{tag.name}"})
    db.session.flush()
    return {"id": tag.id, "name": tag.name, "on": on, "changed": True}


def _link_tag(customer: Customer, tag: Tag, guide: Guide) -> bool:
    """Put `tag` on the customer unless it is there already (also if another request just put it there);
    whether this added it."""
    insert = pg_insert if db.is_postgres else sqlite_insert
    return db.session.execute(
        insert(CustomerTag).values(customer_id=customer.id, tag_id=tag.id, source="guide", guide_id=guide.id,
                                   created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["customer_id", "tag_id"])
        .returning(CustomerTag.tag_id)).first() is not None


def _unlink_tag(customer: Customer, tag: Tag) -> bool:
    """Take `tag` off the customer; whether it was there (another request may just have taken it off)."""
    return db.session.execute(delete(CustomerTag).where(CustomerTag.customer_id == customer.id,
                                                        CustomerTag.tag_id == tag.id)
                              .execution_options(synchronize_session="fetch")).rowcount == 1


def check_guide_tag_name(name) -> str:
    if not isinstance(name, str) or not name.strip():
        raise SidebarInputError("标签名不能为空")
    name = " ".join(name.split())
    if len(name) > GUIDE_TAG_MAX:
        raise SidebarInputError(f"标签名不能超过{GUIDE_TAG_MAX}个字（现在{len(name)}个）")
    return name


def _corp_guide_tag(name: str) -> tuple[str, str | None, str]:
    """(tag id, group id, group name) of the corp tag `name` in the guides' group, created in WeCom if new."""
    client = get_wecom()
    group = db.session.scalar(select(TagGroup).where(TagGroup.name == GUIDE_TAG_GROUP))
    data = {"tag": [{"name": name}]}
    if group is not None and group.wecom_id:
        data["group_id"] = group.wecom_id
    else:
        data["group_name"] = GUIDE_TAG_GROUP
    try:
        res = client._post("externalcontact/add_corp_tag", data=data)
        g = res["tag_group"]
        t = next(t for t in g["tag"] if t["name"] == name)
        return t["id"], g.get("group_id"), g.get("group_name") or GUIDE_TAG_GROUP
    except WeComError as exc:
        if exc.errcode != WECOM_TAG_EXISTS:
            raise
    # Created earlier (e.g. by a send whose mark_tag then failed): find it.
    for g in client._post("externalcontact/get_corp_tag_list", data={}).get("tag_group", []):
        if g.get("group_name") == GUIDE_TAG_GROUP:
            for t in g.get("tag", []):
                if t["name"] == name:
                    return t["id"], g.get("group_id"), g["group_name"]
    raise WeComError(WECOM_TAG_EXISTS, "tag exists but was not found in the tag list",
                     path="/cgi-bin/externalcontact/add_corp_tag")


def add_guide_tag(guide: Guide, customer: Customer, external_userid: str, name) -> dict:
    """A free-text note tag (送礼, 企业采购, 券敏感 …): a corp tag in the guides' group, marked in WeCom, then
    stored here. On any WeCom error nothing is stored."""
    name = check_guide_tag_name(name)
    group = db.session.scalar(select(TagGroup).where(TagGroup.name == GUIDE_TAG_GROUP))
    tag = None
    if group is not None:
        tag = db.session.scalar(select(Tag).where(Tag.group_id == group.id, Tag.name == name))
    if tag is not None and tag.wecom_id and not tag.deleted:
        return set_tag(guide, customer, external_userid, tag.id, True)
    wecom_tag_id, wecom_group_id, _ = _corp_guide_tag(name)
    _mark_tag(guide, customer, external_userid, add=[wecom_tag_id])
    customer = lock_for_write(customer)  # after WeCom's answer: the lock is not held over the call
    if group is None:
        group = TagGroup(name=GUIDE_TAG_GROUP, wecom_id=wecom_group_id, order=9999)
        db.session.add(group)
        db.session.flush()
    elif not group.wecom_id:
        group.wecom_id = wecom_group_id
    group.deleted = False
    if tag is None:
        tag = Tag(group_id=group.id, name=name)
        db.session.add(tag)
    tag.wecom_id, tag.deleted = wecom_tag_id, False
    db.session.flush()
    _link_tag(customer, tag, guide)
    record_event(customer, "tag_added", channel="wecom", guide=guide, payload={"tag": f"{GUIDE_TAG_GROUP}/{name}"})
    db.session.flush()
    return {"id": tag.id, "name": tag.name, "on": True, "changed": True}


# ------------------------------------------------------------------------------------------- first screen


def first_screen(guide: Guide, customer: Customer, *, query: str | None = None, top: int = 3) -> dict:
    """Profile, tags, top suggestions (for `query`, else openers for this customer) and today's tasks for
    this customer: what the sidebar shows before the guide taps anything."""
    from knowledge import service as knowledge
    from tasks import operations as tasks_ops
    from tasks import quota

    today = local_today()
    prof = profile(customer, guide, today=today)
    if query and query.strip():
        try:
            scripts = knowledge.suggest(query, guide=guide, customer=customer, top=top, with_content=False)["scripts"]
        except knowledge.EmptyQuery:
            scripts = []
    else:
        scripts = knowledge.opening_scripts(customer, guide=guide, top=top)
    tasks = tasks_ops.list_tasks(today, guide=guide, customer_id=customer.id)
    lib = knowledge.library()
    task_scripts = {t["script"]: lib.script_items[t["script"]].data for t in tasks
                    if t["status"] == "open" and t["script"] in lib.script_items}
    return {
        "customer": prof,
        "tags": tag_groups(customer),
        "suggestions": scripts,
        "tasks": tasks,
        "task_scripts": task_scripts,
        "quota": quota.quota(customer),
    }


# ------------------------------------------------------------------------------------------- the workbench


def workbench(guide: Guide, D: date) -> dict:
    """The page without a customer (a push's link): all of the guide's tasks for D grouped by rule, with the
    summary, and the morning brief's content."""
    from bot.pushes import morning_content
    from tasks.operations import list_tasks, summary_of

    tasks = list_tasks(D, guide=guide)
    groups: dict[str, list[dict]] = {}
    for t in tasks:
        groups.setdefault(t["rule_label"], []).append(t)
    return {"date": D.isoformat(), "summary": summary_of(tasks),
            "task_groups": [{"label": label, "tasks": tasks, "open": sum(t["status"] == "open" for t in tasks)}
                            for label, tasks in groups.items()],
            "content": [{"external_id": c.external_id, "title": c.title, "summary": c.summary, "url": c.url,
                         "cover_url": c.cover_url, "category": c.category} for c in morning_content(D, limit=10)]}


def team_ranking(guide: Guide, D: date) -> dict:
    """The 排行 tab: the store team's day (reports/leaderboard), the guide's own row marked `me`, and for a
    store manager or admin the link to the manager page."""
    from bot.pushes import team_ranking as rows_for
    from flask import url_for

    rows = [{"rank": r["rank"], "userid": r["userid"], "name": r["name"], "gmv": r["gmv"], "orders": r["orders"],
             "tasks_done": r["tasks_done"], "tasks_total": r["tasks_total"], "me": r["userid"] == guide.userid}
            for r in rows_for(guide, D)]
    mine = next((r for r in rows if r["me"]), None)
    return {"date": D.isoformat(), "rows": rows, "my_rank": mine["rank"] if mine else None,
            "manager_url": url_for("manager.page") if guide.role in ("manager", "admin") else None}
