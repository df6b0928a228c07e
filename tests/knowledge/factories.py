"""Small builders for knowledge tests: a library file, a guide with a customer they follow."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from core.db import db
from models import Customer, CustomerIdentity, Follow, Guide, Store

LIBRARY = [
    {"kind": "script", "external_id": "s-zhuannai", "title": "转奶方法", "category": "喂养",
     "body": "转奶建议7到10天慢慢过渡，先把一顿换成新奶粉的三分之一。", "tags": ["转奶", "换奶粉"]},
    {"kind": "script", "external_id": "s-bianmi", "title": "宝宝便秘怎么办", "category": "喂养",
     "body": "宝宝大便干硬可以多喝水、做腹部按摩，奶粉按说明冲调别太浓。", "tags": ["便秘", "大便"]},
    {"kind": "script", "external_id": "s-chima", "title": "纸尿裤尺码怎么选", "category": "用品",
     "body": "纸尿裤按体重选码：S码4到8公斤，M码6到11公斤，腰腿有红印就该换大一码。", "tags": ["尺码", "纸尿裤"]},
    {"kind": "script", "external_id": "s-tuihuan", "title": "退换货政策", "category": "售后",
     "body": "未拆封商品7天内可凭小票退换，奶粉拆封后不能退。", "tags": ["退货", "换货"]},
    {"kind": "script", "external_id": "s-quan", "title": "优惠券使用规则", "category": "优惠",
     "body": "优惠券满减不可叠加，每单限用一张，在结算页选择即可。", "tags": ["优惠券", "满减"]},
    {"kind": "content", "external_id": "c-zhuannai", "content_type": "article", "title": "转奶七日法图解",
     "body": "一图看懂转奶节奏", "url": "https://example.com/a/1", "tags": ["转奶"], "target_tags": ["0-6月"]},
    {"kind": "content", "external_id": "c-all", "content_type": "video", "title": "门店活动视频",
     "body": "本月会员日活动", "url": "https://example.com/v/2", "tags": ["活动"]},
    {"kind": "synonym", "term": "纸尿裤", "variants": ["尿不湿", "尿片"]},
]


def write_jsonl(path, records) -> str:
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n")
    return str(path)


def guide_with_customer(userid="guide01", external_userid="wmC1", *, role="guide", store_code="S1"):
    store = db.session.query(Store).filter_by(code=store_code).one_or_none()
    if store is None:
        store = Store(code=store_code, name=f"门店{store_code}")
        db.session.add(store)
        db.session.flush()
    guide = Guide(userid=userid, name=userid, role=role, store_id=store.id)
    customer = Customer(name="王妈妈")
    db.session.add_all([guide, customer])
    db.session.flush()
    db.session.add(CustomerIdentity(customer_id=customer.id, kind="external_userid", value=external_userid))
    db.session.add(Follow(guide_id=guide.id, customer_id=customer.id,
                          added_at=datetime(2026, 1, 1, tzinfo=timezone.utc)))
    customer.binding_guide_id = guide.id
    db.session.commit()
    return guide, customer
