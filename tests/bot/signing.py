"""Builds callback requests the way WeCom does, with wechatpy's crypto (the service's own code is not used)."""
from __future__ import annotations

import time
from urllib.parse import urlencode

from defusedxml.ElementTree import fromstring
from wechatpy.enterprise.crypto import WeChatCrypto


def envelope(settings: dict, xml: str, *, nonce: str = "nonce123", timestamp: int | None = None,
             corp_id: str | None = None):
    crypto = WeChatCrypto(settings["WECOM_TOKEN"], settings["WECOM_AES_KEY"], corp_id or settings["WECOM_CORP_ID"])
    ts = str(timestamp or int(time.time()))
    signed = fromstring(crypto.encrypt_message(xml, nonce, ts))
    encrypted = signed.findtext("Encrypt")
    body = (f"<xml><ToUserName><![CDATA[{settings['WECOM_CORP_ID']}]]></ToUserName>"
            f"<AgentID><![CDATA[{settings['WECOM_AGENT_ID']}]]></AgentID>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>")
    query = urlencode({"msg_signature": signed.findtext("MsgSignature"), "timestamp": ts, "nonce": nonce})
    return f"/wecom/callback?{query}", body


def event_xml(change_type: str, *, userid: str = "guide01", external_userid: str = "wmCustomer01",
              create_time: int = 1700000000, **extra) -> str:
    fields = {
        "ToUserName": "corp", "FromUserName": "sys", "CreateTime": str(create_time), "MsgType": "event",
        "Event": "change_external_contact", "ChangeType": change_type, "UserID": userid,
        "ExternalUserID": external_userid, **extra,
    }
    inner = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items())
    return f"<xml>{inner}</xml>"
