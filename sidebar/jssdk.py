"""WeCom JS-SDK: the signatures for `wx.config` (corp jsapi_ticket) and `wx.agentConfig` (app ticket).

Signature = sha1 of `jsapi_ticket=T&noncestr=N&timestamp=TS&url=U` (that order, raw values, the page's URL
without its `#…` part). Both tickets are fetched by the WeCom client and cached in Redis for their lifetime
(`WeComClient.jsapi_ticket()` / `agent_ticket()`), since WeCom allows only about 100 fetches an hour.
"""
from __future__ import annotations

import hashlib
import secrets
import time

from flask import current_app

from bot.wecom_client import get_wecom

# What the sidebar page calls; wx.agentConfig must list them.
JS_API_LIST = ["getContext", "getCurExternalContact", "sendChatMessage"]


def page_url(url: str) -> str:
    """The URL as signed: everything before the first `#`."""
    return url.split("#", 1)[0]


def signature(ticket: str, noncestr: str, timestamp: int | str, url: str) -> str:
    raw = f"jsapi_ticket={ticket}&noncestr={noncestr}&timestamp={timestamp}&url={page_url(url)}"
    return hashlib.sha1(raw.encode("utf-8")).hexdigest()


def signatures(url: str, *, now: int | None = None) -> dict:
    """Both configs for the page at `url`. Raises bot.wecom_client.WeComError when a ticket cannot be had."""
    client = get_wecom()
    corp_ticket, agent_ticket = client.jsapi_ticket(), client.agent_ticket()
    ts = int(now if now is not None else time.time())
    nonce = secrets.token_hex(8)
    corp_id, agent_id = current_app.config["WECOM_CORP_ID"], current_app.config["WECOM_AGENT_ID"]
    return {
        "config": {"beta": True, "debug": False, "appId": corp_id, "timestamp": ts, "nonceStr": nonce,
                   "signature": signature(corp_ticket, nonce, ts, url), "jsApiList": JS_API_LIST},
        "agentConfig": {"corpid": corp_id, "agentid": str(agent_id), "timestamp": ts, "nonceStr": nonce,
                        "signature": signature(agent_ticket, nonce, ts, url), "jsApiList": JS_API_LIST},
    }
