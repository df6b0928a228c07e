"""The callback endpoint's handling of bad input: the right status, and not a single row written."""
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.db import db
from models import CallbackInbox
from tests.bot.signing import envelope, event_xml

FIXTURES = Path(__file__).parent / "fixtures"


def inbox_count():
    return db.session.scalar(select(func.count()).select_from(CallbackInbox))


def test_wecom_documented_url_verification_vector(client, app, monkeypatch):
    # The test vector from WeCom's callback documentation.
    monkeypatch.setitem(app.config, "WECOM_TOKEN", "QDG6eK")
    monkeypatch.setitem(app.config, "WECOM_AES_KEY", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C")
    monkeypatch.setitem(app.config, "WECOM_CORP_ID", "wx5823bf96d3bd56c7")
    resp = client.get("/wecom/callback", query_string={
        "msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "timestamp": "1409659589",
        "nonce": "263014780",
        "echostr": "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==",
    })
    assert resp.status_code == 200
    assert resp.data == b"1616140317555161061"


def test_url_verification_with_a_forged_signature_is_403(client):
    resp = client.get("/wecom/callback", query_string={
        "msg_signature": "0" * 40, "timestamp": "1409659589", "nonce": "1", "echostr": "abc"})
    assert resp.status_code == 403


def test_a_signed_callback_is_stored_once(client, app):
    url, body = envelope(app.config, (FIXTURES / "add_external_contact.xml").read_text())
    resp = client.post(url, data=body)
    assert resp.status_code == 200 and resp.data == b""
    row = db.session.scalar(select(CallbackInbox))
    assert row.change_type == "add_external_contact"
    assert row.payload["ExternalUserID"] == "woAJ2GCAAAXtWyujaWJHDDGi0mAAAA"


def test_retries_of_the_same_callback_are_acknowledged_and_stored_once(client, app):
    url, body = envelope(app.config, event_xml("del_follow_user"))
    for _ in range(3):
        assert client.post(url, data=body).status_code == 200
    # A retry re-encrypts with another nonce: still the same callback.
    url2, body2 = envelope(app.config, event_xml("del_follow_user"), nonce="other")
    assert client.post(url2, data=body2).status_code == 200
    assert inbox_count() == 1


def test_a_retry_is_caught_by_the_inbox_key_whatever_redis_holds(client, app):
    from core.redis_store import rstore

    url, body = envelope(app.config, event_xml("del_follow_user"))
    client.post(url, data=body)
    rstore.client.flushdb()
    assert client.post(url, data=body).status_code == 200
    assert inbox_count() == 1


@pytest.mark.parametrize("mutate, status", [
    (lambda url, body: (url.replace("msg_signature=", "msg_signature=0"), body), 403),
    (lambda url, body: (url.split("?")[0], body), 403),
])
def test_bad_signature_is_403_and_writes_nothing(client, app, mutate, status):
    url, body = envelope(app.config, event_xml("del_follow_user"))
    url, body = mutate(url, body)
    assert client.post(url, data=body).status_code == status
    assert inbox_count() == 0


def test_message_encrypted_for_another_corp_is_400(client, app):
    url, body = envelope(app.config, event_xml("del_follow_user"), corp_id="wwSomeoneElse")
    resp = client.post(url, data=body)
    assert resp.status_code == 400 and b"corp id" in resp.data
    assert inbox_count() == 0


def test_undecryptable_body_is_400(client, app):
    from wechatpy.utils import WeChatSigner

    encrypt = "bm90IGVuY3J5cHRlZA=="  # base64 of plain text, correctly signed
    signer = WeChatSigner()
    for part in (app.config["WECOM_TOKEN"], "1700000000", "n1", encrypt):
        signer.add_data(part)
    resp = client.post(f"/wecom/callback?msg_signature={signer.signature}&timestamp=1700000000&nonce=n1",
                       data=f"<xml><Encrypt>{encrypt}</Encrypt></xml>")
    assert resp.status_code == 400
    assert inbox_count() == 0


@pytest.mark.parametrize("body, reason", [
    ("<xml><Encrypt>abc</Encr", b"malformed XML"),
    ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x "boom">]><xml><Encrypt>&x;</Encrypt></xml>', b"DTD"),
    ('<!DOCTYPE xml SYSTEM "file:///etc/passwd"><xml><Encrypt>abc</Encrypt></xml>', b"DTD"),
    ("<xml><Encrypt>&x;</Encrypt></xml>", b"malformed XML"),  # an undeclared entity is never resolved
    ("<xml><Nothing/></xml>", b"no Encrypt"),
])
def test_malformed_or_dangerous_envelope_is_400(client, body, reason):
    resp = client.post("/wecom/callback?msg_signature=a&timestamp=1&nonce=n", data=body)
    assert resp.status_code == 400 and reason in resp.data
    assert inbox_count() == 0


def test_dtd_inside_the_encrypted_message_is_400(client, app):
    xml = '<!DOCTYPE xml [<!ENTITY a "aaaa">]><xml><MsgType>&a;</MsgType></xml>'
    url, body = envelope(app.config, xml)
    assert client.post(url, data=body).status_code == 400
    assert inbox_count() == 0


def test_body_over_64_kib_is_413(client):
    resp = client.post("/wecom/callback?msg_signature=a&timestamp=1&nonce=n", data="<xml>" + "a" * 70000 + "</xml>")
    assert resp.status_code == 413
    assert inbox_count() == 0


def test_unknown_event_is_stored_and_acknowledged(client, app):
    xml = ("<xml><ToUserName>c</ToUserName><FromUserName>sys</FromUserName><CreateTime>1700000001</CreateTime>"
           "<MsgType>event</MsgType><Event>some_future_event</Event></xml>")
    url, body = envelope(app.config, xml)
    assert client.post(url, data=body).status_code == 200
    assert db.session.scalar(select(CallbackInbox.event)) == "some_future_event"


def test_rejections_are_logged_without_secrets(client, app, caplog):
    client.post("/wecom/callback?msg_signature=a&timestamp=1&nonce=n", data="<xml><Encrypt>abc</Encr")
    text = caplog.text
    assert "callback rejected (400)" in text
    for secret in (app.config["WECOM_AES_KEY"], app.config["WECOM_SECRET"], app.config["WECOM_TOKEN"]):
        assert secret not in text


def test_concurrent_callbacks_and_retries_are_each_stored_once(app):
    """Many requests at once share group commits; a retry racing its original still gets one row."""
    import threading

    from bot import inbound

    results: dict[int, list] = {}
    start = threading.Barrier(24)

    def deliver(n: int) -> None:
        fields = {"MsgType": "event", "Event": "change_external_contact", "ChangeType": "del_follow_user",
                  "UserID": "guide01", "ExternalUserID": f"wmRace{n % 12:02d}", "CreateTime": "1700000000"}
        start.wait()
        with app.app_context():
            results[n] = [inbound.accept(fields) for _ in range(3)]

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(24)]  # 12 callbacks, each twice
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert inbox_count() == 12
    stored = [i for ids in results.values() for i in ids if i is not None]
    assert len(stored) == 12 and len(set(stored)) == 12  # each callback accepted exactly once
    assert set(stored) == set(db.session.scalars(select(CallbackInbox.id)))
