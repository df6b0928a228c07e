"""Bulk import: One-ID profiles, idempotent re-import, all-or-nothing rejection, CSV, binding guide."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text

from core.db import db
from imports.operations import ImportRejected, import_file
from models import (Base, Customer, CustomerIdentity, CustomerTag, Event, Follow, Guide, Order, OrderLine,
                    Product, Store)

RECORDS = [
    {"type": "order", "order_no": "POS-1", "channel": "pos", "store": "S01", "paid_at": "2024-05-02T10:00:00",
     "amount": 258.5, "customer": {"mobile": "13800000001"},
     "items": [{"sku": "MILK-1", "name": "奶粉 1 段", "category": "formula", "qty": 1, "price": 238.5},
               {"sku": "WIPE-1", "name": "湿巾", "category": "care", "qty": 2, "price": 10}]},
    {"type": "store", "code": "S01", "name": "徐汇店", "city": "上海"},
    {"type": "store", "code": "S02", "name": "静安店", "city": "上海"},
    {"type": "guide", "userid": "zhangsan", "name": "张三", "store": "S01", "role": "guide"},
    {"type": "guide", "userid": "lisi", "name": "李四", "store": "S02", "role": "manager"},
    {"type": "product", "sku": "MILK-1", "name": "奶粉 1 段", "category": "formula", "price": "238.50",
     "attributes": {"stage": 1, "days_of_use": 10, "weight_kg": 0.8}},
    {"type": "tag", "group": "宝宝阶段", "name": "0-6月"},
    {"type": "customer", "external_userid": "wmEXT1", "name": "王女士", "gender": 2, "baby_birthday": "2024-01-15"},
    # Same person from the membership system: shares the unionid-free key set only through the mobile line.
    {"type": "customer", "external_userid": "wmEXT1", "mobile": "13800000001", "name": "王女士",
     "member_level": "gold", "points": 120},
    {"type": "customer", "member_no": "M0002", "name": "赵先生"},
    {"type": "follow", "userid": "lisi", "external_userid": "wmEXT1", "added_at": "2024-03-01T09:00:00+08:00"},
    {"type": "follow", "userid": "zhangsan", "external_userid": "wmEXT1", "added_at": "2024-02-01T09:00:00",
     "state": "store-qr", "remark": "王姐"},
    {"type": "customer_tag", "external_userid": "wmEXT1", "tag": "宝宝阶段/0-6月"},
    {"type": "order", "order_no": "EC-9", "channel": "ecommerce", "paid_at": "2024-05-03T12:00:00Z",
     "amount": 99, "customer": {"unionid": "oUNKNOWN"},
     "items": [{"sku": "TOY-1", "name": "摇铃", "category": "toy", "qty": 1, "price": 99}]},
]


def write_jsonl(path, records):
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    return path


def snapshot():
    """Every row of every table, minus nothing: equal snapshots mean nothing changed."""
    out = {}
    with db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = conn.execute(select(table).order_by(*table.primary_key.columns)).all()
            out[table.name] = [tuple(r) for r in rows]
    return out


def run_import(runner, path, *args):
    result = runner.invoke(args=["data", "import", str(path), *args])
    db.session.remove()
    return result


def test_full_file_builds_one_id_profile(app, runner, tmp_path):
    result = run_import(runner, write_jsonl(tmp_path / "data.jsonl", RECORDS))
    assert result.exit_code == 0, result.output
    assert "order" in result.output and "customer" in result.output

    s = db.session
    assert s.scalar(select(func.count()).select_from(Customer)) == 2
    wang_id = s.scalar(select(CustomerIdentity.customer_id).where(CustomerIdentity.kind == "external_userid",
                                                                 CustomerIdentity.value == "wmEXT1"))
    wang = s.get(Customer, wang_id)
    kinds = {(i.kind, i.value) for i in wang.identities}
    assert kinds == {("external_userid", "wmEXT1"), ("mobile", "13800000001")}
    assert (wang.gender, wang.member_level, wang.points) == (2, "gold", 120)
    assert str(wang.baby_birthday) == "2024-01-15"

    # The POS order keyed by mobile lands on the WeCom customer, credited to the binding guide.
    pos = s.scalar(select(Order).where(Order.order_no == "POS-1"))
    zhang = s.scalar(select(Guide).where(Guide.userid == "zhangsan"))
    assert pos.customer_id == wang.id
    assert pos.guide_id == zhang.id
    assert pos.store_id == s.scalar(select(Store.id).where(Store.code == "S01"))
    assert pos.amount == Decimal("258.50")
    assert pos.paid_at == datetime(2024, 5, 2, 2, 0, tzinfo=timezone.utc)  # read in Asia/Shanghai
    assert [(l.line_no, l.sku, l.qty, l.price) for l in pos.lines] == [
        (1, "MILK-1", 1, Decimal("238.50")), (2, "WIPE-1", 2, Decimal("10.00"))]
    assert (wang.order_count, wang.total_spend) == (1, Decimal("258.50"))
    assert wang.last_order_at == pos.paid_at

    event = s.scalar(select(Event).where(Event.type == "order", Event.ref == "POS-1"))
    assert event.customer_id == wang.id and event.channel == "pos"
    assert event.payload == {"amount": 258.5, "items": 2}
    assert s.scalar(select(func.count()).select_from(Event)) == 1

    tag = s.scalar(select(CustomerTag).where(CustomerTag.customer_id == wang.id))
    assert tag.source == "import" and tag.tag.name == "0-6月"
    product = s.scalar(select(Product).where(Product.sku == "MILK-1"))
    assert product.price == Decimal("238.50") and product.attributes == {"stage": 1, "days_of_use": 10, "weight_kg": 0.8}
    assert s.scalar(select(Guide.role).where(Guide.userid == "lisi")) == "manager"


def test_binding_guide_is_first_adder(app, runner, tmp_path):
    assert run_import(runner, write_jsonl(tmp_path / "data.jsonl", RECORDS)).exit_code == 0
    s = db.session
    wang = s.scalar(select(Customer).join(CustomerIdentity).where(CustomerIdentity.value == "wmEXT1"))
    zhang = s.scalar(select(Guide).where(Guide.userid == "zhangsan"))
    # zhangsan added on 2024-02-01 (Shanghai time), lisi on 2024-03-01: zhangsan is bound.
    assert wang.binding_guide_id == zhang.id
    assert wang.first_added_at == datetime(2024, 2, 1, 1, 0, tzinfo=timezone.utc)
    assert s.scalar(select(func.count()).select_from(Follow)) == 2
    follow = s.scalar(select(Follow).where(Follow.guide_id == zhang.id))
    assert (follow.state, follow.remark) == ("store-qr", "王姐")

    # Once zhangsan's relation ends, a later import recomputes the binding: lisi remains.
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE follows SET ended_at = now() WHERE guide_id = :g"), {"g": zhang.id})
    later = [{"type": "follow", "userid": "lisi", "external_userid": "wmEXT1",
              "added_at": "2024-03-01T09:00:00+08:00"}]
    assert run_import(runner, write_jsonl(tmp_path / "later.jsonl", later)).exit_code == 0
    lisi = db.session.scalar(select(Guide).where(Guide.userid == "lisi"))
    assert db.session.get(Customer, wang.id).binding_guide_id == lisi.id


def test_reimport_changes_nothing(app, runner, tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", RECORDS)
    assert run_import(runner, path).exit_code == 0
    before = snapshot()
    result = run_import(runner, path)
    assert result.exit_code == 0, result.output
    assert snapshot() == before


def test_reimport_replaces_order_lines(app, runner, tmp_path):
    assert run_import(runner, write_jsonl(tmp_path / "a.jsonl", RECORDS)).exit_code == 0
    changed = dict(RECORDS[0], amount=238.5, items=RECORDS[0]["items"][:1])
    deps = [r for r in RECORDS if r["type"] in ("store", "customer")]
    assert run_import(runner, write_jsonl(tmp_path / "b.jsonl", deps + [changed])).exit_code == 0
    s = db.session
    pos = s.scalar(select(Order).where(Order.order_no == "POS-1"))
    assert [l.sku for l in pos.lines] == ["MILK-1"]
    assert s.get(Customer, pos.customer_id).total_spend == Decimal("238.50")


def test_bad_lines_import_nothing_and_are_all_named(app, runner, tmp_path):
    records = [json.dumps(r, ensure_ascii=False) for r in RECORDS]
    records[2] = json.dumps(dict(RECORDS[0], order_no="POS-2", paid_at="2024-13-01"))  # line 3
    records.append('{"type": "store", "code": ')  # line 15: not JSON
    records.append(json.dumps({"type": "follow", "userid": "nobody", "external_userid": "wmEXT1",
                               "added_at": "2024-01-01"}))  # line 16
    records.append(json.dumps({"type": "coupon", "code": "X"}))  # line 17
    records.append(json.dumps({"type": "product", "sku": "P9", "name": "x", "category": "c", "price": "abc"}))
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(records) + "\n", encoding="utf-8")

    result = run_import(runner, path)
    assert result.exit_code != 0
    out = result.output
    assert "line 3: order: paid_at is not an ISO 8601 time: '2024-13-01'" in out
    assert "line 15: JSON syntax error" in out
    assert "line 16: follow: unknown guide userid 'nobody'" in out
    assert "line 17: unknown type: 'coupon'" in out
    assert "line 18: product: price is not a number: 'abc'" in out
    assert "nothing imported" in out
    counts = {t: n for t, rows in snapshot().items() for n in [len(rows)]}
    assert set(counts.values()) == {0}


def test_two_bad_lines_reject_whole_file_api(app, tmp_path):
    records = list(RECORDS) + [
        {"type": "guide", "userid": "wangwu", "name": "王五", "store": "S99"},
        {"type": "customer", "name": "无名"},
    ]
    with pytest.raises(ImportRejected) as info:
        import_file(write_jsonl(tmp_path / "bad.jsonl", records))
    assert info.value.errors == [
        (15, "guide: unknown store code 'S99'"),
        (16, "customer: needs at least one identity key (external_userid, unionid, mobile, member_no)"),
    ]
    db.session.remove()
    assert all(not rows for rows in snapshot().values())


def test_keys_of_two_customers_are_an_error(app, runner, tmp_path):
    assert run_import(runner, write_jsonl(tmp_path / "a.jsonl", RECORDS)).exit_code == 0
    clash = [{"type": "customer", "mobile": "13800000001", "member_no": "M0002", "name": "?"}]
    result = run_import(runner, write_jsonl(tmp_path / "b.jsonl", clash))
    assert result.exit_code != 0
    assert "line 1: customer: keys match two different customers: #" in result.output
    assert "mobile=13800000001" in result.output and "member_no=M0002" in result.output


def test_unmatched_order_keeps_its_keys(app, runner, tmp_path):
    assert run_import(runner, write_jsonl(tmp_path / "data.jsonl", RECORDS)).exit_code == 0
    s = db.session
    order = s.scalar(select(Order).where(Order.order_no == "EC-9"))
    assert order.customer_id is None and order.guide_id is None
    assert order.customer_keys == {"unionid": "oUNKNOWN"}
    assert s.scalar(select(func.count()).select_from(OrderLine).where(OrderLine.order_id == order.id)) == 1
    assert s.scalar(select(func.count()).select_from(Event).where(Event.ref == "EC-9")) == 0


def test_a_csv_error_names_the_line_its_row_starts_on_past_blank_lines_and_multi_line_cells(app, runner, tmp_path):
    path = tmp_path / "stores.csv"
    path.write_text('code,name,city\n\nS01,"徐汇店\n（旗舰）",上海\n\n\n,静安店,上海\n', encoding="utf-8")
    result = run_import(runner, path)
    assert result.exit_code != 0
    assert "line 7:" in result.output and "code" in result.output, result.output
    assert "line 3:" not in result.output and db.session.scalar(select(func.count()).select_from(Store)) == 0


def test_csv_stores_and_products(app, runner, tmp_path):
    (tmp_path / "stores.csv").write_text("code,name,city\nS01,徐汇店,上海\nS02,静安店,\n", encoding="utf-8")
    result = run_import(runner, tmp_path / "stores.csv")
    assert result.exit_code == 0, result.output
    prices = tmp_path / "catalogue.csv"
    prices.write_text('sku,name,category,price,attributes\nMILK-1,奶粉,formula,238.5,"{""stage"": 1}"\n'
                      "WIPE-1,湿巾,care,10,\n", encoding="utf-8")
    result = run_import(runner, prices, "--type", "product")
    assert result.exit_code == 0, result.output
    s = db.session
    assert [(st.code, st.city) for st in s.scalars(select(Store).order_by(Store.code))] == [
        ("S01", "上海"), ("S02", None)]
    products = {p.sku: p for p in s.scalars(select(Product))}
    assert products["MILK-1"].price == Decimal("238.50") and products["MILK-1"].attributes == {"stage": 1}
    assert products["WIPE-1"].attributes == {}

    bad = tmp_path / "stores2.csv"
    bad.write_text("code,name\nS03,\n,无码店\n", encoding="utf-8")
    result = run_import(runner, bad, "--type", "store")
    assert result.exit_code != 0
    assert "line 2: store: name is missing" in result.output
    assert "line 3: store: code is missing" in result.output


def test_dry_run_keeps_nothing(app, runner, tmp_path):
    result = run_import(runner, write_jsonl(tmp_path / "data.jsonl", RECORDS), "--dry-run")
    assert result.exit_code == 0, result.output
    assert all(not rows for rows in snapshot().values())


@pytest.mark.parametrize("args, name, content, expected", [
    (["data", "import"], "notes.csv", "a,b\n1,2\n", "cannot tell the record type of notes.csv"),
    (["coupons", "import"], "coupons.txt", "x\n", "coupons.txt: a coupon file must be .jsonl or .csv"),
    (["commission", "import"], "rates.txt", "x\n", "rates.txt: a rates file must be .jsonl or .csv"),
    (["knowledge", "import"], "scripts.csv", "", "file: scripts.csv is empty"),
])
def test_every_import_command_rejects_a_whole_file_the_same_way(app, runner, tmp_path, args, name, content,
                                                               expected):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    result = runner.invoke(args=[*args, str(path)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith(expected) and lines[1:] == ["1 bad record(s): nothing imported"], result.output


def test_a_gbk_csv_from_excel_is_imported_and_a_utf8_file_is_still_read_as_utf8(app, runner, tmp_path):
    gbk = tmp_path / "stores.csv"
    gbk.write_text("code,name,city\nS01,徐汇店,上海\n", encoding="gb18030")
    result = run_import(runner, gbk)
    assert result.exit_code == 0, result.output
    utf8 = tmp_path / "products.csv"
    utf8.write_text("sku,name,category,price\nMILK-1,奶粉 1 段,formula,238.5\n", encoding="utf-8-sig")
    assert run_import(runner, utf8).exit_code == 0
    assert db.session.scalar(select(Store.name)) == "徐汇店"
    assert db.session.scalar(select(Product.name)) == "奶粉 1 段"
    binary = tmp_path / "guides.csv"
    binary.write_bytes(b"userid,name\n\xff\xfe\x80\n")
    result = run_import(runner, binary)
    assert result.exit_code == 1 and "guides.csv is neither UTF-8 nor GBK text" in result.output
