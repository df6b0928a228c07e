"""JS-SDK signatures against WeCom's documented example, and the endpoint with cached tickets."""
from __future__ import annotations

import hashlib
import json

from core.redis_store import rstore
from sidebar.jssdk import page_url, signature
from tests.sidebar.factories import sign_in

# WeCom's documented example (JS-SDK signature algorithm).
DOC_TICKET = "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"
DOC_NONCE = "Wm3WZYTPz0wzccnW"
DOC_TIMESTAMP = 1414587457
DOC_URL = "http://mp.weixin.qq.com?params=value"
DOC_SIGNATURE = "0f9de62fce790f9a083d5c99e95740ceb90c27ed"


def test_signature_matches_wecoms_documented_example():
    assert signature(DOC_TICKET, DOC_NONCE, DOC_TIMESTAMP, DOC_URL) == DOC_SIGNATURE
    assert signature(DOC_TICKET, DOC_NONCE, str(DOC_TIMESTAMP), DOC_URL) == DOC_SIGNATURE


def test_url_is_signed_without_its_fragment():
    assert page_url("https://a.example/sidebar/?customer=wm1#tab=tags") == "https://a.example/sidebar/?customer=wm1"
    assert signature(DOC_TICKET, DOC_NONCE, DOC_TIMESTAMP, DOC_URL + "#anything") == DOC_SIGNATURE


def test_endpoint_signs_both_configs_with_tickets_cached_in_redis(app, client, chain, standin):
    sign_in(client, chain.guide)
    url = "https://guide.example/sidebar/?customer=wmT0001#top"
    first = client.get("/api/sidebar/jssdk", query_string={"url": url})
    assert first.status_code == 200
    cfg, agent = first.json["config"], first.json["agentConfig"]
    assert cfg["appId"] == app.config["WECOM_CORP_ID"] and agent["corpid"] == app.config["WECOM_CORP_ID"]
    assert agent["agentid"] == app.config["WECOM_AGENT_ID"]
    assert {"getContext", "getCurExternalContact", "sendChatMessage"} <= set(agent["jsApiList"])
    corp_ticket = standin.corp.calls_to("get_jsapi_ticket")
    assert len(corp_ticket) == 1 and len(standin.corp.calls_to("ticket/get")) == 1
    keys = {k.decode(): rstore.client.ttl(k) for k in rstore.client.keys("wecom:*ticket*")}
    assert len(keys) == 2 and all(6000 < ttl <= 7200 for ttl in keys.values())
    tickets = {k: json.loads(rstore.client.get(k)) for k in keys}  # wechatpy stores JSON
    corp_t = next(v for k, v in tickets.items() if "_jsapi_" in k)
    agent_t = next(v for k, v in tickets.items() if "agent_config" in k)
    plain = url.split("#")[0]
    for conf, ticket in ((cfg, corp_t), (agent, agent_t)):
        raw = f"jsapi_ticket={ticket}&noncestr={conf['nonceStr']}&timestamp={conf['timestamp']}&url={plain}"
        assert conf["signature"] == hashlib.sha1(raw.encode()).hexdigest()
    # A second page load (any process) uses the cached tickets: WeCom allows ~100 fetches an hour.
    client.get("/api/sidebar/jssdk", query_string={"url": url})
    assert len(standin.corp.calls_to("get_jsapi_ticket")) == 1 and len(standin.corp.calls_to("ticket/get")) == 1


def test_endpoint_bad_url_and_wecom_failure(app, client, chain, standin):
    sign_in(client, chain.guide)
    assert client.get("/api/sidebar/jssdk?url=javascript:alert(1)").status_code == 400
    standin.corp.add_fault("get_jsapi_ticket", 45009)
    resp = client.get("/api/sidebar/jssdk", query_string={"url": "https://guide.example/sidebar/"})
    assert resp.status_code == 502 and resp.json["error"] == "调用企业微信太频繁，请过几分钟再试。"
