"""The local WeCom: a Flask app answering the `/cgi-bin/` APIs this project calls, plus `/_standin/` controls.

Every `/cgi-bin/` call (except gettoken's secret) is recorded in `corp.calls`; every call but gettoken needs a
valid access_token (else errcode 40014, as WeCom answers). Control endpoints (JSON in, JSON out):

    GET  /_standin/calls?path=externalcontact/get     the recorded calls, optionally filtered by path suffix
    POST /_standin/reset                              forget tokens, calls and changes; re-apply the seed
    POST /_standin/expire_tokens                      invalidate issued tokens (next call gets 40014)
    POST /_standin/add_contact {userid, external_userid?, name?, state?}   + add_external_contact callback
    POST /_standin/add_half_contact {same}                                 + add_half_external_contact callback
    POST /_standin/del_contact {userid, external_userid, source?}          + del_external_contact callback
    POST /_standin/del_follow_user {userid, external_userid}               + del_follow_user callback
    POST /_standin/edit_contact {userid, external_userid, remark?}         + edit_external_contact callback
    POST /_standin/tag_change {id?, tag_type?, change_type?}               + change_external_tag callback
    POST /_standin/text_message {userid, content}                          + a text message to the app
    POST /_standin/oauth_code {userid}                                     → {"code": …} for auth/getuserinfo
    POST /_standin/transfer_settle {status, external_userid?: [...], kind?}  decide waiting (resigned) transfers
    POST /_standin/transfer_fail {userid, external_userid, fail_reason}      + transfer_fail callback
    POST /_standin/fault {path, errcode, times?}        the next `times` (1) calls to /cgi-bin/<path> answer errcode
    GET  /_standin/state                                                   members, contacts, tags, sent messages

Callback-firing controls answer {"callback": {"status": …, "body": …}} (status null when no callback URL is
set or it could not be reached); `"repeat": 3` re-posts the identical request, as WeCom's retries do.
"""
from __future__ import annotations

import json
import secrets
import time
from xml.sax.saxutils import escape

import requests
from flask import Flask, jsonify, request
from wechatpy.enterprise.crypto import WeChatCrypto

from wecom_standin.corp import Corp

OK = {"errcode": 0, "errmsg": "ok"}


def _err(code: int, msg: str):
    return jsonify({"errcode": code, "errmsg": msg})


# --- callbacks -------------------------------------------------------------------------------------


def _cdata(value) -> str:
    text = str(value)
    if isinstance(value, int):
        return text
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def build_event_xml(fields: dict, corp_id: str) -> str:
    """`<xml>` with ToUserName=corp first, then `fields` in order (ints bare, strings in CDATA)."""
    parts = ["<xml>", f"<ToUserName>{_cdata(corp_id)}</ToUserName>"]
    for key, value in fields.items():
        if value is None:
            continue
        parts.append(f"<{key}>{_cdata(value)}</{key}>")
    parts.append("</xml>")
    return "".join(parts)


def external_contact_event(change_type: str, userid: str, external_userid: str, **extra) -> dict:
    fields = {"FromUserName": "sys", "CreateTime": int(time.time()), "MsgType": "event",
              "Event": "change_external_contact", "ChangeType": change_type,
              "UserID": userid, "ExternalUserID": external_userid}
    fields.update({k: v for k, v in extra.items() if v is not None})
    return fields


def text_message_fields(userid: str, content: str, agent_id) -> dict:
    return {"FromUserName": userid, "CreateTime": int(time.time()), "MsgType": "text", "Content": content,
            "MsgId": str(secrets.randbelow(10**18) + 10**18), "AgentID": int(agent_id)}


def encrypt_callback(fields: dict, *, token: str, aes_key: str, corp_id: str, agent_id) -> tuple[dict, str]:
    """(query params, body) for one push: body is WeCom's envelope `<xml><ToUserName/><AgentID/><Encrypt/></xml>`."""
    import xmltodict

    xml = build_event_xml(fields, corp_id)
    nonce = secrets.token_hex(8)
    timestamp = str(int(time.time()))
    reply = WeChatCrypto(token, aes_key, corp_id).encrypt_message(xml, nonce, timestamp)
    parsed = xmltodict.parse(reply)["xml"]
    body = ("<xml><ToUserName><![CDATA[{corp}]]></ToUserName><Encrypt><![CDATA[{enc}]]></Encrypt>"
            "<AgentID><![CDATA[{agent}]]></AgentID></xml>").format(
        corp=escape(corp_id), enc=parsed["Encrypt"], agent=agent_id)
    params = {"msg_signature": parsed["MsgSignature"], "timestamp": timestamp, "nonce": nonce}
    return params, body


def fire_callback(callback_url: str, fields: dict, *, token: str, aes_key: str, corp_id: str, agent_id,
                  repeat: int = 1, timeout: float = 10) -> dict:
    """Encrypt `fields` as WeCom does and POST them to `callback_url`; `repeat` re-posts the identical request.

    Returns {"status", "body", "statuses", "xml", "params", "envelope"} (status/body of the last attempt;
    status None when the URL could not be reached).
    """
    params, body = encrypt_callback(fields, token=token, aes_key=aes_key, corp_id=corp_id, agent_id=agent_id)
    statuses, last_status, last_body = [], None, None
    for _ in range(max(1, int(repeat))):
        try:
            res = requests.post(callback_url, params=params, data=body.encode("utf-8"),
                                headers={"Content-Type": "text/xml; charset=utf-8"}, timeout=timeout)
            last_status, last_body = res.status_code, res.text
        except requests.RequestException as exc:
            last_status, last_body = None, f"{type(exc).__name__}: {exc}"
        statuses.append(last_status)
    return {"status": last_status, "body": last_body, "statuses": statuses,
            "xml": build_event_xml(fields, corp_id), "params": params, "envelope": body}


# --- the app ---------------------------------------------------------------------------------------


def create_standin_app(corp: Corp, *, token: str, aes_key: str, corp_id: str | None = None,
                       callback_url: str | None = None, agent_id=None) -> Flask:
    corp_id = corp_id or corp.corp_id
    corp.corp_id = corp_id
    if agent_id is not None:
        corp.agent_id = str(agent_id)
    app = Flask("wecom_standin")
    app.config["STANDIN_CORP"] = corp
    app.config["CALLBACK_URL"] = callback_url
    crypto = {"token": token, "aes_key": aes_key, "corp_id": corp_id}

    def body_json() -> dict:
        data = request.get_json(force=True, silent=True)
        return data if isinstance(data, dict) else {}

    def fire(fields: dict, data: dict) -> dict:
        url = data.get("callback_url") or app.config["CALLBACK_URL"]
        if not url:
            return {"status": None, "body": "no callback URL configured", "xml": build_event_xml(fields, corp_id)}
        res = fire_callback(url, fields, agent_id=corp.agent_id, repeat=int(data.get("repeat", 1)), **crypto)
        return {k: res[k] for k in ("status", "body", "statuses", "xml")}

    # --- /cgi-bin/ ---------------------------------------------------------------------------------

    @app.before_request
    def _check_and_record():
        if not request.path.startswith("/cgi-bin/"):
            return None
        path = request.path[len("/cgi-bin/"):]
        body = request.get_json(force=True, silent=True) if request.method == "POST" else None
        corp.record(path, request.args.to_dict(), body)
        if path == "gettoken":
            return None
        if not corp.token_valid(request.args.get("access_token")):
            if not request.args.get("access_token"):
                return _err(41001, "access_token missing")
            return _err(40014, "invalid access_token")
        fault = corp.take_fault(path)
        if fault is not None:
            return _err(fault, "fault injected by /_standin/fault")
        return None

    @app.get("/cgi-bin/gettoken")
    def gettoken():
        if request.args.get("corpid") != corp_id:
            return _err(40013, "invalid corpid")
        if request.args.get("corpsecret") != corp.secret:
            return _err(40001, "invalid credential")
        tok, expires_in = corp.issue_token()
        return jsonify({**OK, "access_token": tok, "expires_in": expires_in})

    @app.get("/cgi-bin/user/get")
    def user_get():
        m = corp.members.get(request.args.get("userid", ""))
        if not m:
            return _err(60111, "userid not found")
        return jsonify({**OK, **m})

    @app.get("/cgi-bin/externalcontact/get")
    def contact_get():
        c = corp.contacts.get(request.args.get("external_userid", ""))
        if not c:
            return _err(84061, "not external contact")
        with corp.lock:
            info = {k: v for k, v in c.items() if k != "follow_user"}
            return jsonify({**OK, "external_contact": info, "follow_user": json.loads(json.dumps(c["follow_user"]))})

    @app.get("/cgi-bin/externalcontact/list")
    def contact_list():
        userid = request.args.get("userid", "")
        if userid not in corp.members:
            return _err(60111, "userid not found")
        with corp.lock:
            ids = [e for e, c in corp.contacts.items() if any(f["userid"] == userid for f in c["follow_user"])]
        return jsonify({**OK, "external_userid": ids})

    @app.get("/cgi-bin/externalcontact/get_follow_user_list")
    def follow_user_list():
        with corp.lock:
            users = sorted({f["userid"] for c in corp.contacts.values() for f in c["follow_user"]})
        return jsonify({**OK, "follow_user": users})

    @app.post("/cgi-bin/externalcontact/get_corp_tag_list")
    def corp_tag_list():
        want = set((body_json().get("tag_id") or []))
        with corp.lock:
            groups = json.loads(json.dumps(corp.tag_groups))
        if want:
            for g in groups:
                g["tag"] = [t for t in g["tag"] if t["id"] in want]
            groups = [g for g in groups if g["tag"]]
        return jsonify({**OK, "tag_group": groups})

    @app.post("/cgi-bin/externalcontact/mark_tag")
    def mark_tag():
        data = body_json()
        c = corp.contacts.get(data.get("external_userid", ""))
        if not c:
            return _err(84061, "not external contact")
        with corp.lock:
            follow = next((f for f in c["follow_user"] if f["userid"] == data.get("userid")), None)
            if follow is None:
                return _err(84061, "not external contact")
            for tid in (data.get("add_tag") or []) + (data.get("remove_tag") or []):
                if not corp.find_tag(tid):
                    return _err(40068, "invalid tagid")
            for tid in data.get("add_tag") or []:
                if not any(t.get("tag_id") == tid for t in follow["tags"]):
                    follow["tags"].append(corp._tag_ref(tid))
            remove = set(data.get("remove_tag") or [])
            follow["tags"] = [t for t in follow["tags"] if t.get("tag_id") not in remove]
        return jsonify(OK)

    @app.post("/cgi-bin/externalcontact/add_corp_tag")
    def add_corp_tag():
        """Add tags to a group (by group_id, or by group_name, created when new); 40071 for a name taken."""
        data = body_json()
        tags = [t for t in (data.get("tag") or []) if isinstance(t, dict) and t.get("name")]
        if not tags:
            return _err(40058, "tag is required")
        if any(len(t["name"]) > 30 for t in tags):
            return _err(40058, "tag name too long")
        with corp.lock:
            if data.get("group_id"):
                group = next((g for g in corp.tag_groups if g["group_id"] == data["group_id"]), None)
                if group is None:
                    return _err(40068, "invalid tag group id")
            else:
                group = next((g for g in corp.tag_groups if g["group_name"] == data.get("group_name")), None)
            if group is not None and any(t["name"] in {x["name"] for x in group["tag"]} for t in tags):
                return _err(40071, "UserTag Name Already Exist")
            if group is None:
                if not data.get("group_name"):
                    return _err(40058, "group_id or group_name is required")
                group = corp.add_tag_group(data["group_name"], [], order=int(data.get("order") or 0))
            added = []
            for t in tags:
                tag = {"id": "et" + secrets.token_hex(10), "name": t["name"], "create_time": int(time.time()),
                       "order": int(t.get("order") or 0), "deleted": False}
                group["tag"].append(tag)
                added.append(tag)
            out = {k: group[k] for k in ("group_id", "group_name", "create_time", "order")}
        return jsonify({**OK, "tag_group": {**out, "tag": added}})

    @app.post("/cgi-bin/externalcontact/send_welcome_msg")
    def send_welcome_msg():
        data = body_json()
        with corp.lock:
            entry = corp.welcome_codes.get(data.get("welcome_code", ""))
            if entry is None or entry["used"]:
                return _err(41051, "externaluser has started chatting")
            if len(data.get("attachments") or []) > 9:
                return _err(41048, "too many attachments")
            entry["used"] = True
            corp.welcome_sent.append({**entry, "text": (data.get("text") or {}).get("content"),
                                      "attachments": data.get("attachments") or [], "at": time.time()})
        return jsonify(OK)

    @app.post("/cgi-bin/externalcontact/add_msg_template")
    def add_msg_template():
        data = body_json()
        msgid = "msg" + secrets.token_hex(10)
        ext = data.get("external_userid") or []
        fail = [e for e in ext if e not in corp.contacts]
        with corp.lock:
            corp.msg_templates.append({**data, "msgid": msgid, "at": time.time()})
        return jsonify({**OK, "fail_list": fail, "msgid": msgid})

    @app.post("/cgi-bin/message/send")
    def message_send():
        data = body_json()
        if str(data.get("agentid")) != str(corp.agent_id):
            return _err(40056, "invalid agentid")
        users = [u for u in str(data.get("touser", "")).split("|") if u]
        invalid = [u for u in users if u not in corp.members and u != "@all"]
        with corp.lock:
            corp.messages_sent.append({**data, "at": time.time()})
        return jsonify({**OK, "invaliduser": "|".join(invalid), "invalidparty": "", "invalidtag": "",
                        "msgid": "m" + secrets.token_hex(8)})

    @app.get("/cgi-bin/get_jsapi_ticket")
    def jsapi_ticket():
        return jsonify({**OK, "ticket": "standin-jsapi-" + secrets.token_hex(12), "expires_in": 7200})

    @app.get("/cgi-bin/ticket/get")
    def agent_ticket():
        if request.args.get("type") != "agent_config":
            return _err(40004, "invalid type")
        return jsonify({**OK, "ticket": "standin-agent-" + secrets.token_hex(12), "expires_in": 7200})

    @app.get("/cgi-bin/auth/getuserinfo")
    @app.get("/cgi-bin/user/getuserinfo")
    def getuserinfo():
        code = request.args.get("code", "")
        with corp.lock:
            entry = corp.oauth_codes.pop(code, None)  # single use
        if entry is None or entry["expires_at"] < time.time():
            return _err(40029, "invalid code")
        return jsonify({**OK, "userid": entry["userid"], "user_ticket": "", "expires_in": 1800})

    def _transfer(kind: str):
        data = body_json()
        handover, takeover = data.get("handover_userid"), data.get("takeover_userid")
        ext_ids = data.get("external_userid") or []
        if handover not in corp.members or takeover not in corp.members:
            return _err(60111, "userid not found")
        if len(ext_ids) > 100:
            return _err(40035, "too many external_userid")
        customers = []
        with corp.lock:
            for e in ext_ids:
                c = corp.contacts.get(e)
                if not c or not any(f["userid"] == handover for f in c["follow_user"]):
                    customers.append({"external_userid": e, "errcode": 40096 if not c else 84061})
                    continue
                corp.transfers.append({"kind": kind, "handover_userid": handover, "takeover_userid": takeover,
                                       "external_userid": e, "status": 2, "takeover_time": int(time.time())})
                customers.append({"external_userid": e, "errcode": 0})
        return jsonify({**OK, "customer": customers})

    def _transfer_result(kind: str):
        data = body_json()
        with corp.lock:
            rows = [{"external_userid": t["external_userid"], "status": t["status"],
                     "takeover_time": t["takeover_time"]}
                    for t in corp.transfers
                    if t["kind"] == kind and t["handover_userid"] == data.get("handover_userid")
                    and t["takeover_userid"] == data.get("takeover_userid")]
        return jsonify({**OK, "customer": rows, "next_cursor": ""})

    app.add_url_rule("/cgi-bin/externalcontact/transfer_customer", "transfer_customer",
                     lambda: _transfer("onjob"), methods=["POST"])
    app.add_url_rule("/cgi-bin/externalcontact/resigned/transfer_customer", "resigned_transfer_customer",
                     lambda: _transfer("resigned"), methods=["POST"])
    app.add_url_rule("/cgi-bin/externalcontact/transfer_result", "transfer_result",
                     lambda: _transfer_result("onjob"), methods=["POST"])
    app.add_url_rule("/cgi-bin/externalcontact/resigned/transfer_result", "resigned_transfer_result",
                     lambda: _transfer_result("resigned"), methods=["POST"])

    @app.route("/cgi-bin/<path:rest>", methods=["GET", "POST"])
    def unknown(rest):
        return _err(48002, f"api forbidden: the stand-in does not implement {rest}")

    # --- /_standin/ controls -------------------------------------------------------------------------

    @app.get("/_standin/calls")
    def calls():
        return jsonify(corp.calls_to(request.args.get("path")))

    @app.get("/_standin/state")
    def state():
        with corp.lock:
            return jsonify({"members": corp.members, "contacts": corp.contacts, "tag_groups": corp.tag_groups,
                            "welcome_sent": corp.welcome_sent, "messages_sent": corp.messages_sent,
                            "msg_templates": corp.msg_templates, "transfers": corp.transfers})

    @app.post("/_standin/reset")
    def reset():
        corp.reset()
        return jsonify({"ok": True})

    @app.post("/_standin/expire_tokens")
    def expire_tokens():
        corp.expire_tokens()
        return jsonify({"ok": True})

    def _contact_added(change_type: str):
        data = body_json()
        userid = data.get("userid")
        if not userid:
            return jsonify({"error": "userid is required"}), 400
        with corp.lock:
            c = corp.add_contact(data.get("external_userid"), data.get("name"))
            corp.add_follow(c["external_userid"], userid, state=data.get("state") or "",
                            remark=data.get("remark") or "")
            code = corp.issue_welcome_code(userid, c["external_userid"])
        fields = external_contact_event(change_type, userid, c["external_userid"],
                                        State=data.get("state") or "", WelcomeCode=code)
        return jsonify({"external_userid": c["external_userid"], "welcome_code": code,
                        "callback": fire(fields, data)})

    # A customer adds a guide; "half": the guide accepts contacts without verification and has not
    # confirmed yet (WeCom's add_half_external_contact, which also carries a WelcomeCode).
    app.add_url_rule("/_standin/add_contact", "add_contact",
                     lambda: _contact_added("add_external_contact"), methods=["POST"])
    app.add_url_rule("/_standin/add_half_contact", "add_half_contact",
                     lambda: _contact_added("add_half_external_contact"), methods=["POST"])

    def _contact_event(change_type: str, remove: bool, **extra_fields):
        data = body_json()
        userid, ext = data.get("userid"), data.get("external_userid")
        if not userid or not ext:
            return jsonify({"error": "userid and external_userid are required"}), 400
        if remove:
            corp.remove_follow(ext, userid)
        extra = {k: data.get(v) for k, v in extra_fields.items()}
        fields = external_contact_event(change_type, userid, ext, **extra)
        return jsonify({"external_userid": ext, "callback": fire(fields, data)})

    app.add_url_rule("/_standin/del_contact", "del_contact",
                     lambda: _contact_event("del_external_contact", True, Source="source"), methods=["POST"])
    app.add_url_rule("/_standin/del_follow_user", "del_follow_user",
                     lambda: _contact_event("del_follow_user", True), methods=["POST"])

    @app.post("/_standin/edit_contact")
    def edit_contact():
        data = body_json()
        c = corp.contacts.get(data.get("external_userid", ""))
        if c is not None:
            with corp.lock:
                if data.get("name"):
                    c["name"] = data["name"]
                for f in c["follow_user"]:
                    if f["userid"] == data.get("userid") and data.get("remark") is not None:
                        f["remark"] = data["remark"]
        return _contact_event("edit_external_contact", False)

    @app.post("/_standin/transfer_fail")
    def transfer_fail():
        return _contact_event("transfer_fail", False, FailReason="fail_reason")

    @app.post("/_standin/transfer_settle")
    def transfer_settle():
        data = body_json()
        ids = data.get("external_userid")
        n = corp.settle_transfers(int(data.get("status", 1)), [ids] if isinstance(ids, str) else ids,
                                  kind=data.get("kind", "resigned"))
        return jsonify({"settled": n})

    @app.post("/_standin/tag_change")
    def tag_change():
        data = body_json()
        tag_id = data.get("id")
        if not tag_id and corp.tag_groups:
            tag_id = corp.tag_groups[0]["tag"][0]["id"] if corp.tag_groups[0]["tag"] else corp.tag_groups[0]["group_id"]
        fields = {"FromUserName": "sys", "CreateTime": int(time.time()), "MsgType": "event",
                  "Event": "change_external_tag", "Id": tag_id or "",
                  "TagType": data.get("tag_type", "tag"), "ChangeType": data.get("change_type", "update")}
        return jsonify({"callback": fire(fields, data)})

    @app.post("/_standin/text_message")
    def text_message():
        data = body_json()
        if not data.get("userid"):
            return jsonify({"error": "userid is required"}), 400
        fields = text_message_fields(data["userid"], data.get("content", ""), corp.agent_id)
        return jsonify({"msg_id": fields["MsgId"], "callback": fire(fields, data)})

    @app.post("/_standin/fault")
    def fault():
        data = request.get_json(force=True, silent=True) or {}
        corp.add_fault(str(data["path"]).strip("/"), int(data["errcode"]), int(data.get("times", 1)))
        return jsonify(OK)

    @app.post("/_standin/oauth_code")
    def oauth_code():
        data = body_json()
        if not data.get("userid"):
            return jsonify({"error": "userid is required"}), 400
        return jsonify({"code": corp.issue_oauth_code(data["userid"])})

    return app
