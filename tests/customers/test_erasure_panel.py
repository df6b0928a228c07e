"""顾客信息删除 on the manager page: head office finds the customer by the value they gave (masked data only,
each look audited as a profile view), and only head office sees the panel or may look."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from core.db import db
from core.timeutil import local_today
from models import CustomerIdentity, ProfileView
from tests.knowledge.test_api import sign_in
from tests.tasks import factories as f

NAME = "王丽华"
MOBILE = "13912345678"
MEMBER_NO = "M-0042"


def a_customer_with_orders():
    guide = f.guide("guide01", store_code="S1")
    manager = f.guide("manager01", role="manager", store_code="S1")
    admin = f.guide("admin01", role="admin", store_code="HQ")
    customer = f.customer(guide, name=NAME)
    db.session.add_all([CustomerIdentity(customer_id=customer.id, kind="mobile", value=MOBILE),
                        CustomerIdentity(customer_id=customer.id, kind="member_no", value=MEMBER_NO)])
    p = f.product()
    for days in (10, 3):
        f.order(customer, f.at(local_today() - timedelta(days=days)), (p, 1))
    db.session.commit()
    return guide, manager, admin, customer


def test_the_lookup_shows_only_masked_data_and_is_audited(app, client):
    _, _, admin, customer = a_customer_with_orders()
    ext = f.external_userid(customer)
    headers = sign_in(client, admin)

    def find(q):
        return client.post("/api/admin/customers/find", json={"q": q}, headers=headers)

    resp = find(f" {MOBILE} ")
    assert resp.status_code == 200
    assert resp.json == {"customers": [{"id": customer.id, "name": "王**", "mobile": "139****5678",
                                        "store": "门店S1", "orders": 2, "matched": "mobile",
                                        "erased": False}]}
    body = resp.get_data(as_text=True)
    for secret in (NAME, MOBILE, MEMBER_NO, ext):
        assert secret not in body
    # The member number and the WeCom id find the same customer, saying which matched.
    assert find(MEMBER_NO).json["customers"][0]["matched"] == "member_no"
    found = find(ext).json["customers"]
    assert [(c["id"], c["matched"]) for c in found] == [(customer.id, "external_userid")]
    assert find("13900000000").json == {"customers": []}
    resp = find(" ")
    assert resp.status_code == 400 and resp.json["error"] == "请输入顾客的手机号、external_userid 或会员号"

    # Every customer shown is in the profile-view audit, under the admin, like a look at the profile.
    db.session.expire_all()
    views = db.session.execute(select(ProfileView.guide_id, ProfileView.customer_id, ProfileView.entry)).all()
    assert views == [(admin.id, customer.id, "erase-lookup")] * 3

    # Erased, they are found no more (their identities are gone).
    headers = sign_in(client, admin)
    assert client.post(f"/api/admin/customers/{customer.id}/erase", json={"reason": "工单 PIPL-3"},
                       headers=headers).status_code == 200
    assert find(MOBILE).json == {"customers": []}


def test_the_lookup_is_a_post_with_the_csrf_token_so_the_mobile_is_never_in_a_url(app, client):
    _, _, admin, _ = a_customer_with_orders()
    headers = sign_in(client, admin)
    assert client.get(f"/api/admin/customers/find?q={MOBILE}").status_code == 405
    assert client.post("/api/admin/customers/find", json={"q": MOBILE}).status_code == 403  # no CSRF token
    assert client.post("/api/admin/customers/find", json=[MOBILE], headers=headers).status_code == 400
    assert db.session.scalars(select(ProfileView)).all() == []
    html = client.get("/manager/").get_data(as_text=True)
    assert "'/api/admin/customers/find', {q: q}" in html and "find?q=" not in html


def test_a_mobile_typed_with_spaces_dashes_or_86_is_found(app, client):
    _, _, admin, customer = a_customer_with_orders()
    headers = sign_in(client, admin)
    for typed in ("139 1234 5678", "139-1234-5678", "+86 13912345678", "+86-139-1234-5678", "8613912345678"):
        resp = client.post("/api/admin/customers/find", json={"q": typed}, headers=headers)
        assert [(c["id"], c["matched"]) for c in resp.json["customers"]] == [(customer.id, "mobile")], typed
    assert client.post("/api/admin/customers/find", json={"q": "139 1234 567"},
                       headers=headers).json == {"customers": []}  # a digit short: nobody


def test_the_lookup_is_answered_from_the_kind_value_index_and_the_mobile_digits_index(app):
    from sqlalchemy import text

    from customers.erasure import holders_query

    _, _, _, customer = a_customer_with_orders()
    # Enough mobiles that reading every one of them is not the cheaper plan (as in a store's database).
    db.session.execute(text("INSERT INTO customer_identities (customer_id, kind, value, created_at) "
                            "SELECT :c, 'mobile', (13000000000 + g)::text, now() FROM generate_series(1, 5000) g"),
                       {"c": customer.id})
    db.session.execute(text("ANALYZE customer_identities"))
    db.session.execute(text("SET LOCAL enable_seqscan = off"))
    query = holders_query("139 1234 5678")
    compiled = query.compile(db.engine, compile_kwargs={"literal_binds": True})
    plan = "\n".join(db.session.execute(text(f"EXPLAIN {compiled}")).scalars())
    # Each index is searched by its leading column, not read whole with the value as a filter.
    conditions = [line for line in plan.splitlines() if "Index Cond" in line]
    assert any("(kind)::text = ANY" in line for line in conditions), plan
    assert any("regexp_replace" in line for line in conditions), plan
    assert "Seq Scan" not in plan, plan


def test_a_mobile_stored_with_spaces_dashes_or_86_is_found_and_digits_match_only_mobiles(app, client, runner):
    _, _, admin, customer = a_customer_with_orders()
    others = {}
    for stored in ("+86 139 8765 4321", "139-8765-4322"):
        c = f.customer(admin, name="陈女士")
        db.session.add(CustomerIdentity(customer_id=c.id, kind="mobile", value=stored))
        others[stored] = c.id
    # A member number (or unionid) of digits only, which a member number typed with a dash must not find.
    digits_only = f.customer(admin, name="赵先生")
    db.session.add_all([CustomerIdentity(customer_id=digits_only.id, kind="member_no", value="12345678"),
                        CustomerIdentity(customer_id=digits_only.id, kind="unionid", value="87654321")])
    dashed = f.customer(admin, name="钱女士")
    db.session.add(CustomerIdentity(customer_id=dashed.id, kind="member_no", value="1234-5678"))
    db.session.commit()
    headers = sign_in(client, admin)

    def find(q):
        resp = client.post("/api/admin/customers/find", json={"q": q}, headers=headers)
        return [(c["id"], c["matched"]) for c in resp.json["customers"]]

    for typed in ("13987654321", "139 8765 4321", "+8613987654321"):
        assert find(typed) == [(others["+86 139 8765 4321"], "mobile")], typed
    assert find("13987654322") == [(others["139-8765-4322"], "mobile")]
    assert find("1234-5678") == [(dashed.id, "member_no")]  # not 赵先生's member number 12345678
    assert find("8765-4321") == []  # nor his unionid
    assert find("12345678") == [(digits_only.id, "member_no")]

    found = runner.invoke(args=["customers", "find", "139 8765 4321"])
    assert found.exit_code == 0 and found.stdout.split() == [str(others["+86 139 8765 4321"])]
    member = runner.invoke(args=["customers", "find", "--kind", "member_no", "1234-5678"])
    assert member.stdout.split() == [str(dashed.id)]


def test_customers_find_lists_every_customer_holding_the_mobile(app, runner):
    _, _, admin, customer = a_customer_with_orders()
    twin = f.customer(admin, name="王丽华")
    db.session.add(CustomerIdentity(customer_id=twin.id, kind="mobile", value="139-1234-5678"))
    db.session.commit()
    found = runner.invoke(args=["customers", "find", MOBILE])
    assert found.exit_code == 0
    assert found.stdout.split() == [str(customer.id), str(twin.id)]
    assert "2 customers hold mobile" in found.stderr


def test_only_head_office_may_look_and_sees_the_panel(app, client):
    guide, manager, admin, customer = a_customer_with_orders()
    assert client.post("/api/admin/customers/find", json={"q": MOBILE}).status_code == 401
    for who in (guide, manager):
        headers = sign_in(client, who)
        resp = client.post("/api/admin/customers/find", json={"q": MOBILE}, headers=headers)
        assert resp.status_code == 403 and resp.json["error"] == "需要总部管理员权限"
    assert db.session.scalars(select(ProfileView)).all() == []

    sign_in(client, manager)
    html = client.get("/manager/").get_data(as_text=True)
    assert "王丽华" not in html and "顾客信息删除" not in html and 'id="erase"' not in html
    sign_in(client, guide)
    assert client.get("/manager/").status_code == 403

    sign_in(client, admin)  # the session's CSRF token is the one the panel sends with the erasure
    for tab in ("rank", "trend", "guides"):
        html = client.get(f"/manager/?tab={tab}").get_data(as_text=True)
        assert "顾客信息删除" in html and 'data-csrf="csrf-token-for-tests"' in html, tab
