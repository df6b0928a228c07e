"""The local WeCom stand-in and the outbound client against it (real Redis through the `app` fixture)."""
from __future__ import annotations

import threading

import pytest
import requests
from flask import Flask, request as flask_request
from werkzeug.serving import make_server
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException

from bot.wecom_client import WeComClient, WeComError, build_client, get_wecom, reset_wecom
from tests.conftest import TEST_SETTINGS
from wecom_standin import Corp, StandinServer, fire_callback

SEED = {
    "members": {"guide01": {"name": "王丽"}, "guide02": {"name": "李娜"}},
    "tag_groups": [{"group_name": "宝宝月龄", "tags": ["0-6月", "6-12月"]}],
    "contacts": {
        "wmCUST0001": {"name": "张女士", "gender": 2,
                       "follow_user": [{"userid": "guide01", "remark": "张女士", "state": "store-12"}]},
    },
}
CRYPTO = {"token": TEST_SETTINGS["WECOM_TOKEN"], "aes_key": TEST_SETTINGS["WECOM_AES_KEY"],
          "corp_id": TEST_SETTINGS["WECOM_CORP_ID"]}


@pytest.fixture
def standin(app):
    corp = Corp.from_dict(SEED, corp_id=TEST_SETTINGS["WECOM_CORP_ID"], secret=TEST_SETTINGS["WECOM_SECRET"],
                          agent_id=TEST_SETTINGS["WECOM_AGENT_ID"])
    server = StandinServer(corp, **CRYPTO).start()
    old = app.config["WECOM_API_BASE"]
    app.config["WECOM_API_BASE"] = server.base_url
    reset_wecom(app)
    try:
        yield server
    finally:
        server.stop()
        app.config["WECOM_API_BASE"] = old
        reset_wecom(app)


def test_token_fetched_once_and_shared_through_redis(app, standin):
    from core.redis_store import rstore

    first = get_wecom()
    assert get_wecom() is first  # one client per app
    assert first.user.get("guide01")["name"] == "王丽"
    other = build_client(app.config)  # as another process would build it
    assert other is not first
    assert other.external_contact.list("guide01")["external_userid"] == ["wmCUST0001"]
    assert len(standin.corp.calls_to("gettoken")) == 1
    keys = [k.decode() for k in rstore.client.keys("wecom:*")]
    assert len(keys) == 1 and "access_token" in keys[0]
    assert TEST_SETTINGS["WECOM_SECRET"] not in keys[0]
    assert rstore.client.ttl(keys[0]) > 0


def test_externalcontact_get_returns_seeded_contact(standin):
    info = get_wecom().external_contact.get("wmCUST0001")
    assert info["errcode"] == 0
    assert info["external_contact"]["name"] == "张女士"
    assert info["external_contact"]["external_userid"] == "wmCUST0001"
    assert info["follow_user"][0]["userid"] == "guide01"
    assert info["follow_user"][0]["state"] == "store-12"


def test_unknown_member_is_a_wecom_error_in_plain_chinese(standin):
    with pytest.raises(WeComError) as err:
        get_wecom().user.get("nobody")
    assert err.value.errcode == 60111
    assert "成员不存在" in err.value.user_message


def test_welcome_code_is_single_use(standin):
    code = standin.corp.issue_welcome_code("guide01", "wmCUST0001")
    wecom = get_wecom()
    assert wecom.send_welcome_text(code, "您好")["errcode"] == 0
    with pytest.raises(WeComError) as err:
        wecom.send_welcome_text(code, "您好")
    assert err.value.errcode == 41051
    assert "欢迎语已发送" in err.value.user_message
    assert [w["text"] for w in standin.corp.welcome_sent] == ["您好"]


def test_expired_token_is_refetched_transparently(standin):
    wecom = get_wecom()
    wecom.user.get("guide01")
    standin.corp.expire_tokens()  # WeCom forgot the token; Redis still holds it
    assert wecom.user.get("guide02")["name"] == "李娜"
    paths = [c["path"] for c in standin.corp.calls]
    assert paths == ["gettoken", "user/get", "user/get", "gettoken", "user/get"]
    requests.post(standin.root_url + "/_standin/reset", timeout=5)
    assert wecom.external_contact.get("wmCUST0001")["external_contact"]["name"] == "张女士"
    assert [c["path"] for c in standin.corp.calls] == ["externalcontact/get", "gettoken", "externalcontact/get"]


def test_token_rejected_twice_does_not_loop(standin, monkeypatch):
    wecom = get_wecom()
    wecom.user.get("guide01")
    monkeypatch.setattr(standin.corp, "token_valid", lambda token: False)
    with pytest.raises(WeComError) as err:
        wecom.user.get("guide01")
    assert err.value.errcode == 40014
    assert len(standin.corp.calls_to("user/get")) == 3


def test_wrong_secret_is_40001(app, standin):
    client = WeComClient(TEST_SETTINGS["WECOM_CORP_ID"], "wrong", api_base=standin.base_url)
    with pytest.raises(WeComError) as err:
        client.user.get("guide01")
    assert err.value.errcode == 40001
    assert "wrong" not in str(err.value)


def test_unreachable_wecom_is_a_wecom_error(app):
    client = WeComClient("wwx", "s", api_base="http://127.0.0.1:9/cgi-bin/", timeout=2)
    with pytest.raises(WeComError) as err:
        client.user.get("guide01")
    assert err.value.errcode is None
    assert err.value.user_message


def test_every_call_is_recorded_without_the_token(standin):
    wecom = get_wecom()
    wecom.external_contact.get("wmCUST0001")
    groups = wecom.external_contact.get_corp_tag_list()["tag_group"]
    tag_id = groups[0]["tag"][0]["id"]
    assert tag_id.startswith("et")
    wecom.external_contact.mark_tag("guide01", "wmCUST0001", add_tag=[tag_id])
    wecom.send_text_to_members("guide01", "今日任务 3 项")
    wecom.external_contact.add_msg_template({"chat_type": "single", "external_userid": ["wmCUST0001"],
                                              "sender": "guide01", "text": {"content": "新品到店"}})
    assert wecom.get_jsapi_ticket()["ticket"]
    assert wecom.agent_ticket() == wecom.agent_ticket()  # cached
    code = requests.post(standin.root_url + "/_standin/oauth_code", json={"userid": "guide02"}, timeout=5).json()["code"]
    assert wecom.get_user_id_by_code(code) == "guide02"
    with pytest.raises(WeComError):
        wecom.get_user_id_by_code(code)  # single use
    res = wecom.transfer_customer("guide01", "guide02", ["wmCUST0001"])
    assert res["customer"] == [{"external_userid": "wmCUST0001", "errcode": 0}]
    assert wecom.transfer_result("guide01", "guide02")["customer"][0]["status"] == 2
    assert wecom.resigned_transfer_customer("guide01", "guide02", ["wmCUST0001"])["errcode"] == 0
    assert wecom.resigned_transfer_result("guide01", "guide02")["customer"][0]["external_userid"] == "wmCUST0001"

    calls = standin.corp.calls
    assert [c["path"] for c in calls] == [
        "gettoken", "externalcontact/get", "externalcontact/get_corp_tag_list", "externalcontact/mark_tag",
        "message/send", "externalcontact/add_msg_template", "get_jsapi_ticket", "ticket/get",
        "auth/getuserinfo", "auth/getuserinfo", "externalcontact/transfer_customer",
        "externalcontact/transfer_result", "externalcontact/resigned/transfer_customer",
        "externalcontact/resigned/transfer_result",
    ]
    assert all("access_token" not in c["query"] and "corpsecret" not in c["query"] for c in calls)
    assert calls[1]["query"] == {"external_userid": "wmCUST0001"}
    assert calls[3]["body"]["add_tag"] == [tag_id] and calls[3]["body"]["external_userid"] == "wmCUST0001"
    assert calls[4]["body"]["text"] == {"content": "今日任务 3 项"}
    follow = standin.corp.contacts["wmCUST0001"]["follow_user"][0]
    assert [t["tag_name"] for t in follow["tags"]] == ["0-6月"]
    listed = requests.get(standin.root_url + "/_standin/calls", params={"path": "mark_tag"}, timeout=5).json()
    assert [c["path"] for c in listed] == ["externalcontact/mark_tag"]


def test_invalid_token_is_40014_and_recorded(standin):
    res = requests.get(standin.base_url + "user/get", params={"access_token": "bogus", "userid": "guide01"},
                       timeout=5).json()
    assert res["errcode"] == 40014
    assert standin.corp.calls[-1]["path"] == "user/get"
    assert standin.corp.calls[-1]["query"] == {"userid": "guide01"}


class _Receiver:
    """A tiny HTTP endpoint that keeps what it was sent."""

    def __init__(self):
        self.received = []
        app = Flask("receiver")

        @app.post("/wecom/callback")
        def cb():
            self.received.append((flask_request.args.to_dict(), flask_request.get_data(as_text=True)))
            return ""

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/wecom/callback"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = _Receiver()
    yield r
    r.stop()


def test_fire_callback_decrypts_with_the_right_signature(receiver):
    import xmltodict

    fields = {"FromUserName": "sys", "CreateTime": 1700000000, "MsgType": "event",
              "Event": "change_external_contact", "ChangeType": "add_external_contact",
              "UserID": "guide01", "ExternalUserID": "wmCUST0001", "State": "store-12", "WelcomeCode": "WC1"}
    res = fire_callback(receiver.url, fields, agent_id=1000002, repeat=3, **CRYPTO)
    assert res["status"] == 200 and res["statuses"] == [200, 200, 200]
    assert len(receiver.received) == 3 and len({repr(r) for r in receiver.received}) == 1  # identical retries
    params, body = receiver.received[0]
    envelope = xmltodict.parse(body)["xml"]
    assert envelope["ToUserName"] == CRYPTO["corp_id"] and envelope["AgentID"] == "1000002"
    crypto = WeChatCrypto(CRYPTO["token"], CRYPTO["aes_key"], CRYPTO["corp_id"])
    xml = crypto.decrypt_message(body, params["msg_signature"], params["timestamp"], params["nonce"])
    event = xmltodict.parse(xml)["xml"]
    assert event["ToUserName"] == CRYPTO["corp_id"]
    assert {k: event[k] for k in fields} == {k: str(v) for k, v in fields.items()}
    with pytest.raises(InvalidSignatureException):
        crypto.decrypt_message(body, "0" * 40, params["timestamp"], params["nonce"])
    wrong = WeChatCrypto("othertoken", CRYPTO["aes_key"], CRYPTO["corp_id"])
    with pytest.raises(InvalidSignatureException):
        wrong.decrypt_message(body, params["msg_signature"], params["timestamp"], params["nonce"])


def test_add_contact_control_fires_callback_with_welcome_code(app, standin, receiver):
    import xmltodict

    standin.callback_url = receiver.url
    res = requests.post(standin.root_url + "/_standin/add_contact",
                        json={"userid": "guide02", "external_userid": "wmNEW0001", "name": "赵女士",
                              "state": "qr-7"}, timeout=10).json()
    assert res["callback"]["status"] == 200
    params, body = receiver.received[-1]
    crypto = WeChatCrypto(CRYPTO["token"], CRYPTO["aes_key"], CRYPTO["corp_id"])
    event = xmltodict.parse(crypto.decrypt_message(body, params["msg_signature"], params["timestamp"],
                                                   params["nonce"]))["xml"]
    assert (event["ChangeType"], event["UserID"], event["ExternalUserID"], event["State"]) == \
        ("add_external_contact", "guide02", "wmNEW0001", "qr-7")
    # the app can now read the new contact and greet it once
    wecom = get_wecom()
    assert wecom.external_contact.get("wmNEW0001")["external_contact"]["name"] == "赵女士"
    assert wecom.send_welcome_text(event["WelcomeCode"], "欢迎")["errcode"] == 0
    with pytest.raises(WeComError):
        wecom.send_welcome_text(event["WelcomeCode"], "欢迎")

    text = requests.post(standin.root_url + "/_standin/text_message",
                         json={"userid": "guide01", "content": "宝宝红屁屁怎么办"}, timeout=10).json()
    params, body = receiver.received[-1]
    msg = xmltodict.parse(crypto.decrypt_message(body, params["msg_signature"], params["timestamp"],
                                                 params["nonce"]))["xml"]
    assert (msg["MsgType"], msg["FromUserName"], msg["Content"], msg["MsgId"]) == \
        ("text", "guide01", "宝宝红屁屁怎么办", text["msg_id"])
    assert msg["AgentID"] == TEST_SETTINGS["WECOM_AGENT_ID"]

    requests.post(standin.root_url + "/_standin/del_follow_user",
                  json={"userid": "guide02", "external_userid": "wmNEW0001"}, timeout=10)
    assert standin.corp.contacts["wmNEW0001"]["follow_user"] == []
