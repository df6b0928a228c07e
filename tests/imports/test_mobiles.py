"""One spelling per mobile: the POS's "+86 139-8765-4321", the shop's "13987654321" and an order's "139 8765 4321"
name one customer, whichever arrives first; stored spellings from before are brought to it by the migration."""
from __future__ import annotations

from datetime import datetime, timezone

from alembic import command
from sqlalchemy import select

from core.cli import alembic_config
from core.db import db
from imports.operations import import_file
from imports.records import identity_value
from models import Customer, CustomerIdentity, Order
from tests.commerce_helpers import ingest_key, post_order  # noqa: F401 (fixtures)
from tests.imports.test_import import write_jsonl
from tests.orders.test_ingest import order
from tests.tasks import factories as f


def test_a_mobile_is_kept_in_one_spelling_and_only_a_mobile():
    for typed in ("13987654321", "139 8765 4321", "139-8765-4321", "+86 139 8765 4321", "+8613987654321",
                  "0086-139-8765-4321", "(+86) 139.8765.4321", "8613987654321"):
        assert identity_value("mobile", typed) == "13987654321", typed
    assert identity_value("mobile", "+852 9123 4567") == "+85291234567"  # not mainland: compact, + kept
    assert identity_value("mobile", "021-6543 2100") == "02165432100"
    assert identity_value("mobile", "ask her") == "ask her"  # not phone-like: as given (validated elsewhere)
    assert identity_value("member_no", "M-139 8765") == "M-139 8765"  # other kinds are never touched


def test_an_order_finds_the_customer_the_pos_imported_however_each_wrote_her_mobile(
        app, client, runner, ingest_key, tmp_path):
    f.guide("guide01")
    db.session.commit()
    import_file(write_jsonl(tmp_path / "c.jsonl", [{"type": "customer", "mobile": "+86 139-8765-4321",
                                                    "name": "王女士"}]))
    stored = db.session.scalars(select(CustomerIdentity.value).where(CustomerIdentity.kind == "mobile")).all()
    assert stored == ["13987654321"]
    resp = post_order(client, order("SHOP-1", keys={"mobile": "139 8765 4321"}))
    assert resp.status_code == 201 and resp.json["customer_matched"] is True

    # The other way round: an order first, her profile (from another channel) later.
    resp = post_order(client, order("SHOP-2", keys={"mobile": "+86 138 0000 0002"}))
    assert resp.json["customer_matched"] is False
    result = runner.invoke(args=["data", "import", str(write_jsonl(
        tmp_path / "d.jsonl", [{"type": "customer", "mobile": "0086-138-0000-0002", "name": "李女士"}]))])
    assert "1 order(s) that were waiting for their customer matched and credited" in result.output  # at once
    assert "0 of 0" in runner.invoke(args=["orders", "match"]).output  # nothing left for the hourly job
    db.session.expire_all()
    late = db.session.scalar(select(Order).where(Order.order_no == "SHOP-2"))
    assert late.customer_id is not None and db.session.get(Customer, late.customer_id).name == "李女士"


def test_the_migration_brings_stored_mobiles_to_one_spelling_unless_another_customer_holds_it(app):
    a, b, c = (f.customer(f.guide(f"g{i}")) for i in range(3))
    db.session.flush()
    cfg = alembic_config()
    db.session.commit()
    command.downgrade(cfg, "c6d2a8e4f1b3")
    db.session.add_all([CustomerIdentity(customer_id=a.id, kind="mobile", value="+86 139-8765-4321"),
                        CustomerIdentity(customer_id=b.id, kind="mobile", value="13800000002"),
                        CustomerIdentity(customer_id=c.id, kind="mobile", value="138 0000 0002"),  # b holds it
                        CustomerIdentity(customer_id=c.id, kind="member_no", value="M 1")])
    db.session.add(Order(order_no="OLD-1", channel="pos", amount=1, customer_keys={"mobile": "137-0000-0003"},
                         paid_at=datetime(2026, 11, 1, 4, tzinfo=timezone.utc)))
    db.session.commit()
    command.upgrade(cfg, "head")
    db.session.expire_all()
    values = dict(db.session.execute(select(CustomerIdentity.customer_id, CustomerIdentity.value)
                                     .where(CustomerIdentity.kind == "mobile")).all())
    assert values == {a.id: "13987654321", b.id: "13800000002", c.id: "138 0000 0002"}
    assert db.session.scalar(select(CustomerIdentity.value).where(CustomerIdentity.kind == "member_no")) == "M 1"
    assert db.session.scalar(select(Order.customer_keys).where(Order.order_no == "OLD-1")) == {"mobile": "13700000003"}
