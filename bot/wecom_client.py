"""The outbound WeCom API client.

`get_wecom()` returns one `WeComClient` per Flask app, built from the app's settings (`WECOM_CORP_ID`,
`WECOM_SECRET`, `WECOM_API_BASE`). The access token lives in Redis (prefix `wecom`), so every process and
thread shares it and WeCom's gettoken is called about once per 2 hours, not once per worker.

Every failure surfaces as `WeComError` with the WeCom `errcode` and a plain-Chinese `user_message`
that can be shown to a guide. On 40014/42001 (invalid or expired token) the token is re-fetched and the call
repeated once. The secret and tokens are never logged; the Redis key names carry a hash of the secret only.
"""
from __future__ import annotations

import hashlib
import logging
import re
import threading
import time

import requests
from flask import current_app
from wechatpy.enterprise import WeChatClient
from wechatpy.exceptions import WeChatClientException
from wechatpy.session.redisstorage import RedisStorage

log = logging.getLogger(__name__)

# 40001 (bad secret) is deliberately not here: re-fetching would fail the same way.
TOKEN_ERRORS = (40014, 42001)

USER_MESSAGES = {
    None: "暂时连不上企业微信，请稍后再试。",
    -1: "企业微信系统繁忙，请稍后再试。",
    40001: "企业微信应用凭证（Secret）不正确，请联系管理员检查配置。",
    40014: "企业微信凭证失效，请稍后重试；如果反复出现请联系管理员。",
    42001: "企业微信凭证已过期，请稍后重试。",
    41051: "欢迎语已发送过（或已超时），不能重复发送。",
    41096: "其他应用正在给这位客户发欢迎语，请稍后再试。",
    45009: "调用企业微信太频繁，请过几分钟再试。",
    45033: "企业微信接口并发太高，请稍后再试。",
    60011: "本应用没有这项权限，请联系管理员在企业微信后台开通。",
    60111: "成员不存在，请确认导购的企业微信账号。",
    84061: "这位客户和该成员不是好友关系。",
    40096: "客户 ID 不正确。",
    40098: "成员尚未实名认证或已离职。",
}
DEFAULT_USER_MESSAGE = "企业微信暂时无法处理这个请求，请稍后再试。"


class WeComError(Exception):
    """A WeCom API call failed. `errcode` is WeCom's code (None when WeCom was not reachable)."""

    def __init__(self, errcode: int | None, errmsg: str | None = None, *, path: str | None = None):
        self.errcode = errcode
        self.errmsg = errmsg or ""
        self.path = path
        self.user_message = USER_MESSAGES.get(errcode, DEFAULT_USER_MESSAGE)
        where = f" ({path})" if path else ""
        super().__init__(f"WeCom error {errcode}{where}: {self.errmsg}")

    @property
    def retryable(self) -> bool:
        return self.errcode in (None, -1, 41096, 45009, 45033)

    @classmethod
    def from_wechatpy(cls, exc: WeChatClientException) -> "WeComError":
        path = None
        req = getattr(exc, "request", None)
        if req is not None and getattr(req, "path_url", None):
            path = req.path_url.split("?", 1)[0]
        errcode = exc.errcode
        if errcode is None and getattr(exc, "response", None) is not None:
            errmsg = f"HTTP {exc.response.status_code}"
        else:
            errmsg = exc.errmsg
        return cls(errcode, None if errmsg is None else str(errmsg), path=path)


def _redact(url: str) -> str:
    return url.split("?", 1)[0]


class _TokenRedactingFilter(logging.Filter):
    """urllib3 logs request URLs at DEBUG; they carry access_token / corpsecret."""

    _pattern = re.compile(r"(access_token|corpsecret)=[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._pattern.sub(r"\1=***", a) if isinstance(a, str) else a
                                for a in record.args)
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_TokenRedactingFilter())


class WeComClient(WeChatClient):
    """wechatpy's enterprise client, pointed at `api_base`, with the token shared through `session`."""

    def __init__(self, corp_id: str, secret: str, *, api_base: str, agent_id: str | int | None = None,
                 session=None, timeout: float = 10):
        super().__init__(corp_id, secret, session=session, timeout=timeout)
        self.API_BASE_URL = api_base if api_base.endswith("/") else api_base + "/"
        self.agent_id = int(agent_id) if agent_id not in (None, "") else None
        self._local = threading.local()

    def __repr__(self) -> str:  # never show the secret
        return f"<WeComClient corp={self.corp_id} base={self.API_BASE_URL}>"

    # --- token -------------------------------------------------------------------------------------

    @property
    def access_token_key(self) -> str:
        digest = hashlib.sha256(self.secret.encode()).hexdigest()[:12]
        return f"{self.corp_id}_{digest}_access_token"

    def fetch_access_token(self):
        url = f"{self.API_BASE_URL}gettoken"
        log.info("fetching a WeCom access token for corp %s", self.corp_id)
        try:
            res = self._http.get(url, params={"corpid": self.corp_id, "corpsecret": self.secret},
                                 timeout=self.timeout)
        except requests.RequestException as exc:
            raise WeComError(None, type(exc).__name__, path="/cgi-bin/gettoken") from None
        if res.status_code != 200:
            raise WeComError(None, f"HTTP {res.status_code}", path="/cgi-bin/gettoken")
        try:
            result = res.json()
        except ValueError:
            raise WeComError(-1, "gettoken did not answer JSON", path="/cgi-bin/gettoken") from None
        if int(result.get("errcode", 0) or 0) != 0:
            raise WeComError(int(result["errcode"]), result.get("errmsg"), path="/cgi-bin/gettoken")
        expires_in = int(result.get("expires_in", 7200))
        # Keep it in Redis a little shorter than WeCom does, so no process uses a token about to expire.
        ttl = max(expires_in - 300, min(expires_in, 60))
        self.session.set(self.access_token_key, result["access_token"], ttl)
        self.expires_at = int(time.time()) + ttl
        return result

    @property
    def access_token(self):
        token = self.session.get(self.access_token_key)
        if token:
            return token  # Redis expires it; any process may have fetched it
        self.fetch_access_token()
        return self.session.get(self.access_token_key)

    def invalidate_token(self) -> None:
        self.session.delete(self.access_token_key)

    # --- transport ---------------------------------------------------------------------------------

    def _request(self, method, url_or_endpoint, **kwargs):
        try:
            return super()._request(method, url_or_endpoint, **kwargs)
        except WeChatClientException as exc:
            raise WeComError.from_wechatpy(exc) from None
        except requests.RequestException as exc:
            raise WeComError(None, type(exc).__name__, path=_redact(str(url_or_endpoint))) from None

    def _handle_result(self, res, method=None, url=None, result_processor=None, **kwargs):
        result = self._decode_result(res) if not isinstance(res, dict) else res
        if not isinstance(result, dict):
            return result
        errcode = int(result.get("errcode", 0) or 0)
        if errcode == 0:
            return result if not result_processor else result_processor(result)
        path = _redact(url or "").replace(self.API_BASE_URL, "/cgi-bin/")
        if errcode in TOKEN_ERRORS and self.auto_retry and not getattr(self._local, "retrying", False):
            log.info("WeCom token rejected (%s) on %s: fetching a new one and retrying once", errcode, path)
            self.invalidate_token()
            self._local.retrying = True
            try:
                kwargs["params"]["access_token"] = self.access_token
                return self._request(method=method, url_or_endpoint=url,
                                     result_processor=result_processor, **kwargs)
            finally:
                self._local.retrying = False
        raise WeComError(errcode, result.get("errmsg"), path=path)

    def _get(self, endpoint, **kwargs):
        return self.get(endpoint, **kwargs)

    def _post(self, endpoint, **kwargs):
        return self.post(endpoint, **kwargs)

    # --- what wechatpy 1.8 lacks ------------------------------------------------------------------

    def get_user_id_by_code(self, code: str) -> str | None:
        """OAuth2 (snsapi_base): the member's userid for a code, or None for a non-member."""
        res = self._get("auth/getuserinfo", params={"code": code})
        return res.get("userid") or res.get("UserId")

    def get_jsapi_ticket(self) -> dict:
        """The corp jsapi_ticket (for wx.config). Prefer `jsapi_ticket()`, which caches it."""
        return self._get("get_jsapi_ticket")

    def get_agent_config_ticket(self) -> dict:
        """The app ticket (for wx.agentConfig). Prefer `agent_ticket()`, which caches it."""
        return self._get("ticket/get", params={"type": "agent_config"})

    def _cached_ticket(self, kind: str, fetch) -> str:
        key = f"{self.corp_id}_{self.agent_id or 0}_{kind}_ticket"
        ticket = self.session.get(key)
        if ticket:
            return ticket
        res = fetch()
        ttl = max(int(res.get("expires_in", 7200)) - 300, 60)
        self.session.set(key, res["ticket"], ttl)
        return res["ticket"]

    def jsapi_ticket(self) -> str:
        return self._cached_ticket("jsapi", self.get_jsapi_ticket)

    def agent_ticket(self) -> str:
        return self._cached_ticket("agent_config", self.get_agent_config_ticket)

    def transfer_customer(self, handover_userid: str, takeover_userid: str, external_userids: list[str],
                          transfer_success_msg: str | None = None) -> dict:
        data = {"handover_userid": handover_userid, "takeover_userid": takeover_userid,
                "external_userid": list(external_userids)}
        if transfer_success_msg:
            data["transfer_success_msg"] = transfer_success_msg
        return self._post("externalcontact/transfer_customer", data=data)

    def transfer_result(self, handover_userid: str, takeover_userid: str, cursor: str = "") -> dict:
        data = {"handover_userid": handover_userid, "takeover_userid": takeover_userid}
        if cursor:
            data["cursor"] = cursor
        return self._post("externalcontact/transfer_result", data=data)

    def resigned_transfer_customer(self, handover_userid: str, takeover_userid: str,
                                   external_userids: list[str]) -> dict:
        data = {"handover_userid": handover_userid, "takeover_userid": takeover_userid,
                "external_userid": list(external_userids)}
        return self._post("externalcontact/resigned/transfer_customer", data=data)

    def resigned_transfer_result(self, handover_userid: str, takeover_userid: str, cursor: str = "") -> dict:
        data = {"handover_userid": handover_userid, "takeover_userid": takeover_userid}
        if cursor:
            data["cursor"] = cursor
        return self._post("externalcontact/resigned/transfer_result", data=data)

    # --- conveniences over wechatpy ---------------------------------------------------------------

    def send_welcome_text(self, welcome_code: str, content: str, attachments: list | None = None) -> dict:
        msg = {"welcome_code": welcome_code, "text": {"content": content}}
        if attachments:
            msg["attachments"] = attachments[:9]
        return self.external_contact.send_welcome_msg(msg)

    def send_text_to_members(self, user_ids, content: str) -> dict:
        if self.agent_id is None:
            raise WeComError(-1, "WECOM_AGENT_ID is not set")
        return self.message.send_text(self.agent_id, user_ids, content)


def build_client(config) -> WeComClient:
    from core.redis_store import rstore

    return WeComClient(
        config["WECOM_CORP_ID"],
        config["WECOM_SECRET"],
        api_base=config["WECOM_API_BASE"],
        agent_id=config.get("WECOM_AGENT_ID"),
        session=RedisStorage(rstore.client, prefix="wecom"),
    )


def get_wecom() -> WeComClient:
    """The app's WeCom client (one per app; reset with `reset_wecom()` after changing settings)."""
    app = current_app._get_current_object()
    client = app.extensions.get("wecom_client")
    if client is None or client.API_BASE_URL.rstrip("/") != app.config["WECOM_API_BASE"].rstrip("/"):
        client = build_client(app.config)
        app.extensions["wecom_client"] = client
    return client


def reset_wecom(app=None) -> None:
    (app or current_app).extensions.pop("wecom_client", None)
