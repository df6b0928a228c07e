"""A guide's write about a customer racing that customer's erasure: the guide checked the customer before the
erasure committed, the write lands after. It is refused (404, as for a customer who is not there) instead of
putting a tag, a note or a touch back onto the erased shell; and `customers audit` lists any shell that holds
data again."""
from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.db import db
from customers.erasure import erase_customer
from models import Customer, CustomerTag, Event, Tag, Touch
from tests.sidebar.factories import sign_in
from tests.threads import commit_later


def _erasing(app, customer_id: int) -> threading.Thread:
    """An erasure of the customer, done but not committed: it commits a second later, from another thread."""
    admin = Session(db.engine)
    erase_customer(admin, customer_id, actor="cli:ops", reason="工单 PIPL-41")
    return commit_later(admin)


@pytest.mark.parametrize("path, body", [
    ("/api/sidebar/customers/{ext}/tags", "tag"),
    ("/api/sidebar/customers/{ext}/notes", {"name": "孕期"}),
    ("/api/customers/{ext}/touches", {"kind": "service", "channel": "chat"}),
])
def test_a_guide_write_racing_an_erasure_is_refused_and_leaves_the_shell_empty(app, client, chain, standin,
                                                                                 daytime, path, body):
    ext = chain.ext[chain.mine.id]
    if body == "tag":
        body = {"tag": db.session.scalar(select(Tag.id).where(Tag.name == "高意向")), "on": True}
    headers = sign_in(client, chain.guide)
    db.session.commit()
    thread = _erasing(app, chain.mine.id)
    try:
        resp = client.post(path.format(ext=ext), json=body, headers=headers)
    finally:
        thread.join(10)
    assert resp.status_code == 404, resp.get_data(as_text=True)
    db.session.expire_all()
    cid = chain.mine.id
    assert db.session.get(Customer, cid).erased_at is not None
    assert db.session.scalar(select(func.count()).select_from(CustomerTag).where(CustomerTag.customer_id == cid)) == 0
    assert db.session.scalar(select(func.count()).select_from(Touch).where(Touch.customer_id == cid)) == 0
    assert db.session.scalars(select(Event.type).where(Event.customer_id == cid, Event.type == "tag_added")).all() == []


def test_audit_lists_erased_customers_whose_shell_holds_data_again(app, runner, chain):
    cid = chain.mine.id
    erase_customer(db.session, cid, actor="cli:ops", reason="工单 PIPL-42")
    db.session.commit()
    assert "hold personal data again" not in runner.invoke(args=["customers", "audit"]).output
    # What a writer without the lock left behind: a tag, on a shell no lookup finds (it has no identity).
    db.session.add(CustomerTag(customer_id=cid, tag_id=db.session.scalar(select(Tag.id).where(Tag.name == "高意向")),
                               source="guide", guide_id=chain.guide.id))
    db.session.commit()
    out = runner.invoke(args=["customers", "audit"]).output
    assert f"1 erased customer(s) hold personal data again (written while being erased): {cid};" in out
    result = runner.invoke(args=["customers", "audit", "--json"])
    assert f'{{"erased_holding_data": [{cid}]}}' in result.stderr


def _holding(customer_id: int, *, seconds: float, sql: str) -> threading.Thread:
    """Another transaction that runs `sql` about the customer (:id) and commits `seconds` later, from a thread."""
    from sqlalchemy import text

    other = Session(db.engine)
    other.execute(text(sql), {"id": customer_id})
    return commit_later(other, seconds)


@pytest.mark.parametrize("path, body", [
    ("/api/sidebar/customers/{ext}/tags", "tag"),
    ("/api/sidebar/customers/{ext}/notes", {"name": "孕期"}),
    ("/api/customers/{ext}/touches", {"kind": "service", "channel": "other"}),
])
def test_a_guide_write_does_not_wait_for_an_import_ingest_or_callback_holding_the_customer(
        app, client, chain, standin, daytime, path, body):
    """A bulk import updating the customer, an order batch settling them, a callback waiting on WeCom: each
    holds the customer's row (FOR NO KEY UPDATE) until it commits, up to minutes for an import. The guide's
    tap answers at once all the same; only an erasure makes it wait."""
    ext = chain.ext[chain.mine.id]
    if body == "tag":
        body = {"tag": db.session.scalar(select(Tag.id).where(Tag.name == "高意向")), "on": True}
    headers = sign_in(client, chain.guide)
    db.session.commit()
    thread = _holding(chain.mine.id, seconds=4.0, sql="SELECT id FROM customers WHERE id = :id FOR NO KEY UPDATE")
    try:
        started = time.monotonic()
        resp = client.post(path.format(ext=ext), json=body, headers=headers)
        elapsed = time.monotonic() - started
    finally:
        thread.join(10)
    assert resp.status_code in (200, 201), resp.get_data(as_text=True)
    assert elapsed < 2.0  # the old lock (FOR NO KEY UPDATE) waited the 4 s


def test_the_same_tag_put_on_by_another_request_meanwhile_is_no_change_not_an_error(app, client, chain, standin):
    ext = chain.ext[chain.mine.id]
    tag_id = db.session.scalar(select(Tag.id).where(Tag.name == "高意向"))
    headers = sign_in(client, chain.guide)
    db.session.commit()
    # The other request has inserted the same tag and not committed yet: this one's insert waits for it.
    thread = _holding(chain.mine.id, seconds=1.0, sql=(
        "INSERT INTO customer_tags (customer_id, tag_id, source, created_at) "
        f"VALUES (:id, {int(tag_id)}, 'guide', now())"))
    try:
        resp = client.post(f"/api/sidebar/customers/{ext}/tags", json={"tag": tag_id, "on": True}, headers=headers)
    finally:
        thread.join(10)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.json["on"] is True and resp.json["changed"] is False
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(CustomerTag)
                             .where(CustomerTag.customer_id == chain.mine.id, CustomerTag.tag_id == tag_id)) == 1
    assert db.session.scalars(select(Event.type).where(Event.customer_id == chain.mine.id,
                                                       Event.type == "tag_added")).all() == []
