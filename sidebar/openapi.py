"""The OpenAPI 3 document of the JSON API (`GET /api/openapi.json`).

Every `/api` route of the app must appear here: tests/sidebar/test_openapi.py fails when a route is added
without its entry. Paths use OpenAPI's `{name}` form of Flask's `<name>`.
"""
from __future__ import annotations

OBJ = {"type": "object", "additionalProperties": True}
ERROR = {"type": "object", "required": ["error"],
         "properties": {"error": {"type": "string", "description": "what went wrong, in Chinese, for the guide"},
                        "login_url": {"type": "string", "description": "401 only: where to sign in again"},
                        "errcode": {"type": ["integer", "null"], "description": "502 only: WeCom's errcode"}}}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    words = {400: "bad input (the reason names the problem)", 401: "not signed in, or the session expired",
             403: "CSRF token missing or wrong", 404: "no such customer (or not yours), or no such item",
             409: "refused by the touch caps (reason and quota)", 502: "WeCom refused or is unreachable",
             413: "body too large"}
    return {str(c): _json(_ref("Error"), words[c]) for c in codes}


def _param(name: str, where: str = "query", *, required: bool = False, description: str = "",
           schema: dict | None = None) -> dict:
    return {"name": name, "in": where, "required": required or where == "path", "description": description,
            "schema": schema or {"type": "string"}}


CUSTOMER_PATH = _param("external_userid", "path", description="the customer's WeCom external_userid")
CUSTOMER_QUERY = _param("customer", description="the customer's WeCom external_userid")
CSRF = [{"csrf": []}]


def _op(summary: str, ok: dict, *, params=(), body: dict | None = None, errors=(401,), tag="sidebar",
        csrf: bool = False, ok_status: str = "200") -> dict:
    op = {"summary": summary, "tags": [tag], "parameters": list(params),
          "responses": {ok_status: ok, **_errors(*errors)}}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if csrf:
        op["security"] = [{"session": [], "csrf": []}]
    return op


def spec() -> dict:
    s = {"type": "string"}
    paths = {
        "/api/openapi.json": {"get": {"summary": "This document", "tags": ["meta"], "security": [],
                                      "responses": {"200": _json(OBJ, "the OpenAPI document")}}},
        "/api/sidebar/jssdk": {"get": _op(
            "wx.config and wx.agentConfig signatures for a page URL (tickets cached in Redis)",
            _json(_ref("JsSdk"), "both configs"),
            params=[_param("url", required=True, description="the page's URL; anything after # is ignored")],
            errors=(400, 401, 502))},
        "/api/sidebar/first-screen": {"get": _op(
            "The first screen in one call: profile, tags, top suggestions, today's tasks for this customer, quota. "
            "Written to the audit log.",
            _json(_ref("FirstScreen"), "the first screen"),
            params=[{**CUSTOMER_QUERY, "required": True},
                    _param("q", description="text the guide typed or pasted; without it, openers for this customer"),
                    _param("entry", description="WeCom getContext entry, kept in the audit log")],
            errors=(401, 404))},
        "/api/sidebar/customers/{external_userid}/profile": {"get": _op(
            "The customer's profile and their latest 30 trajectory events. Written to the audit log.",
            _json(_ref("Profile"), "the profile"), params=[CUSTOMER_PATH], errors=(401, 404))},
        "/api/sidebar/customers/{external_userid}/tags": {
            "get": _op("The corp's tag groups, each tag on or off for this customer",
                       _json({"type": "object", "properties": {"groups": {"type": "array",
                                                                          "items": _ref("TagGroup")}}}, "groups"),
                       params=[CUSTOMER_PATH], errors=(401, 404)),
            "post": _op("Add or remove a corp tag; synced to WeCom (externalcontact/mark_tag) before it is stored",
                        _json(_ref("TagState"), "the tag's new state"), params=[CUSTOMER_PATH],
                        body={"type": "object", "required": ["tag", "on"],
                              "properties": {"tag": {"type": "integer"}, "on": {"type": "boolean"}}},
                        errors=(400, 401, 403, 404, 502), csrf=True)},
        "/api/sidebar/customers/{external_userid}/notes": {"post": _op(
            "Add a free-text guide tag (1-30 characters) in the corp group 导购备注, synced to WeCom",
            _json(_ref("TagState"), "the tag, on"), params=[CUSTOMER_PATH],
            body={"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "maxLength": 30}}},
            errors=(400, 401, 403, 404, 502), csrf=True, ok_status="201")},
        "/api/sidebar/customers/{external_userid}/content": {"get": _op(
            "Content matched to the customer's tags and lifecycle stage",
            _json({"type": "object", "properties": {"content": {"type": "array", "items": OBJ}}}, "content"),
            params=[CUSTOMER_PATH, _param("top", schema={"type": "integer", "minimum": 1, "maximum": 50})],
            errors=(400, 401, 404))},
        "/api/sidebar/customers/{external_userid}/content/{content_id}/send": {"post": _op(
            "Count a marketing touch (refused over the caps) and get the news card (its link tracked) for "
            "wx.invoke('sendChatMessage')",
            _json({"type": "object", "properties": {"message": OBJ, "quota": OBJ}}, "the card to send"),
            params=[CUSTOMER_PATH, _param("content_id", "path", description="the content's external_id")],
            body=OBJ, errors=(400, 401, 403, 404, 409), csrf=True, ok_status="201")},
        "/api/sidebar/scripts/categories": {"get": _op(
            "Script categories usable today, with counts",
            _json({"type": "object", "properties": {"categories": {"type": "array", "items": OBJ}}}, "categories"))},
        "/api/sidebar/scripts": {"get": _op(
            "The scripts of one category", _json({"type": "object", "properties": {
                "category": s, "scripts": {"type": "array", "items": _ref("Script")}}}, "scripts"),
            params=[_param("category", required=True)], errors=(400, 401))},
        "/api/suggest": {"get": _op(
            "Ranked scripts, content and products for what the customer said",
            _json(OBJ, "suggestions"),
            params=[_param("q", required=True), CUSTOMER_QUERY,
                    _param("top", schema={"type": "integer", "minimum": 1, "maximum": 20})],
            errors=(400, 401, 404), tag="knowledge")},
        "/api/suggest/feedback": {"post": _op(
            "A script was sent: learned from, stored, and counted as a service touch",
            _json(OBJ, "the send"), body={"type": "object", "required": ["script"], "properties": {
                "script": s, "customer": s, "query": s, "edited": {"type": "boolean"},
                "source": {"type": "string", "enum": ["suggested", "searched", "chatbot", "task", "manual"]}}},
            errors=(400, 401, 403, 404), tag="knowledge", csrf=True, ok_status="201")},
        "/api/tasks": {"get": _op(
            "Today's red-dot tasks of the signed-in guide (optionally for one customer)",
            _json(OBJ, "tasks, summary and the menu focus"),
            params=[_param("date", schema={"type": "string", "format": "date"}), CUSTOMER_QUERY],
            errors=(400, 401, 404), tag="tasks")},
        "/api/tasks/{task_id}/{action}": {"post": _op(
            "Mark an open task done, or skip it with a reason (409 when it is already closed)",
            _json(OBJ, "the task's new state"),
            params=[_param("task_id", "path", schema={"type": "integer"}),
                    _param("action", "path", schema={"type": "string", "enum": ["done", "skip"]})],
            body={"type": "object", "properties": {"reason": s}}, errors=(400, 401, 403, 404, 409),
            tag="tasks", csrf=True)},
        "/api/customers/{external_userid}/quota": {"get": _op(
            "What may still be sent to this customer now (touch caps, quiet hours, do-not-disturb)",
            _json(OBJ, "the quota"), params=[CUSTOMER_PATH], errors=(401, 404), tag="tasks")},
        "/api/customers/{external_userid}/touches": {"post": _op(
            "Record a touch; a marketing touch over a cap is refused with the reason",
            _json(OBJ, "the touch and the quota after it"), params=[CUSTOMER_PATH],
            body={"type": "object", "properties": {
                "kind": {"type": "string", "enum": ["marketing", "service"]}, "channel": s, "ref": s}},
            errors=(400, 401, 403, 404, 409), tag="tasks", csrf=True, ok_status="201")},
        # issue 7, part B: tracked links, funnels, recommendations, staff departure (docs/tracking.md)
        "/api/reports/funnel": {"get": _op(
            "Tracked links sent → opened → converted (an order within 7 days of an open); managers see their "
            "own store, admins everyone (or ?store=CODE); 403 for guides",
            _json({"type": "object", "properties": {"by": s, "rows": {"type": "array", "items": OBJ}}},
                  "the funnel rows"),
            params=[_param("by", schema={"type": "string", "enum": ["content", "guide", "store", "script"]}),
                    _param("since", description="local day YYYY-MM-DD"),
                    _param("until", description="local day YYYY-MM-DD (exclusive)"),
                    _param("store", description="admins: a store code")],
            errors=(400, 401, 403, 404), tag="tracking")},
        "/api/customers/{external_userid}/recommendations": {"get": _op(
            "Next products for this customer (stage rules, replenishment, bought together, browsing), each "
            "with a reason in Chinese",
            _json({"type": "object", "properties": {"customer": s, "recommendations": {"type": "array", "items": {
                "type": "object", "properties": {
                    "sku": s, "name": s, "category": s, "price": s, "reason": s, "source": s, "source_label": s,
                    "score": {"type": "number"}, "also": {"type": "array", "items": s}, "coupon_hint": s}}}}},
                "the recommendations"),
            params=[CUSTOMER_PATH, _param("top", schema={"type": "integer", "minimum": 1, "maximum": 20})],
            errors=(400, 401, 404), tag="recommend")},
        "/api/admin/guides/{userid}/offboard": {"post": _op(
            "Staff departure (admin): transfer the guide's customers to another through WeCom's resigned "
            "transfer (100 per call), move binding and open tasks, mark the guide left",
            _json(OBJ, "{customers, accepted, failed, calls, tasks_moved}"),
            params=[_param("userid", "path", description="the departing guide's WeCom userid")],
            body={"type": "object", "required": ["to"], "properties": {"to": s}},
            errors=(400, 401, 403, 404, 502), tag="guides", csrf=True)},
        "/api/admin/guides/{userid}/transfers": {"get": _op(
            "Staff departure (admin): each customer's transfer and how it went",
            _json({"type": "object", "properties": {"transfers": {"type": "array", "items": OBJ}}}, "transfers"),
            params=[_param("userid", "path")], errors=(401, 403, 404), tag="guides")},
        "/api/admin/customers/find": {"post": _op(
            "Before an erasure (admin): the customers holding a mobile, external_userid, member number or "
            "unionid, masked (name 王*, mobile 139****5678), with their store and order count; each one shown "
            "is audited in profile_views (entry erase-lookup). A POST so that the value is never in a URL. An "
            "erased customer holds no identity and is not found; a shell that holds one again (something "
            "raced its erasure) is, with erased true, to be erased again",
            _json({"type": "object", "properties": {"customers": {"type": "array", "items": {
                "type": "object", "properties": {
                    "id": {"type": "integer"}, "name": s, "mobile": {"type": ["string", "null"]},
                    "store": {"type": ["string", "null"]}, "orders": {"type": "integer"},
                    "matched": {"type": "string", "enum": ["external_userid", "unionid", "mobile", "member_no"]},
                    "erased": {"type": "boolean"}}}}}},
                "the matching customers (usually one; none when nobody holds the value)"),
            body={"type": "object", "required": ["q"], "properties": {"q": {
                "type": "string", "description": "the value the customer gave: a mobile (spaces, dashes or +86 "
                                                 "allowed), external_userid, member number or unionid"}}},
            errors=(400, 401, 403), tag="customers", csrf=True)},
        "/api/admin/customers/{customer_id}/erase": {"post": _op(
            "Personal-data erasure (admin, PIPL art. 47): the customer becomes an anonymous shell (已注销用户), "
            "identities, remarks, notes, tags and tasks go; orders and every figure stay (docs/privacy.md). "
            "A second call changes nothing and says so (already_erased); audited",
            _json({"type": "object", "properties": {
                "customer_id": {"type": "integer"}, "erased": {"type": "boolean"},
                "already_erased": {"type": "boolean"}, "erased_at": s, "rows": OBJ, "message": s}},
                "what was done, with a message in Chinese"),
            params=[_param("customer_id", "path", schema={"type": "integer"}, description="the customer's id")],
            body={"type": "object", "required": ["reason"], "properties": {"reason": s}},
            errors=(400, 401, 403, 404, 409), tag="customers", csrf=True)},
        # issue 7, part A (docs/commerce.md)
        "/api/customers/{external_userid}/coupons": {
            "get": _op("Coupons this customer may receive", _json(OBJ, "the coupons"), params=[CUSTOMER_PATH],
                       errors=(401, 404), tag="coupons"),
            "post": _op("Issue a coupon to this customer (refused with the reason over a limit)",
                        _json(OBJ, "the coupon: code and link"), params=[CUSTOMER_PATH],
                        body={"type": "object", "required": ["template"], "properties": {"template": s}},
                        errors=(400, 401, 403, 404, 409), tag="coupons", csrf=True, ok_status="201")},
        "/api/ingest/orders": {"post": {
            "summary": "Orders from the POS and e-commerce systems (HMAC-signed body, idempotent by order number): "
                       "one order (an object) or a batch (an array of up to 1,000, answered with "
                       "{orders, stored, duplicates}; a bad record rejects the whole batch)",
            "tags": ["orders"], "security": [],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "oneOf": [OBJ, {"type": "array", "items": OBJ, "minItems": 1, "maxItems": 1000}]}}}},
            "responses": {"201": _json(OBJ, "stored (a batch: at least one order stored)"),
                          "200": _json(OBJ, "a duplicate: the first result (a batch: every order a duplicate)"),
                          **_errors(400, 401, 413)}}},
        # sidebar integration (docs/sidebar.md): products into the chat, the workbench's 排行
        "/api/customers/{external_userid}/recommendations/{sku}/send": {"post": _op(
            "Send one recommended product into the chat: counts a marketing touch (refused over a cap with the "
            "reason) and returns the text message (name, price, a short pitch; never the internal reason)",
            _json({"type": "object", "properties": {
                "message": {"type": "object", "properties": {
                    "msgtype": {"type": "string", "enum": ["text"]}, "enterChat": {"type": "boolean"},
                    "text": {"type": "object", "properties": {"content": s}}}},
                "quota": OBJ}}, "the message for sendChatMessage, and the touch caps now"),
            params=[CUSTOMER_PATH, _param("sku", "path", description="the product's SKU")],
            errors=(401, 403, 404, 409), tag="recommend", csrf=True, ok_status="201")},
        "/api/sidebar/ranking": {"get": _op(
            "The guide's store team's day from the leaderboard (guides ranked by attributed GMV), the guide's "
            "own row marked `me`; for managers and admins the link to /manager/",
            _json({"type": "object", "properties": {
                "date": s, "my_rank": {"type": ["integer", "null"]}, "manager_url": {"type": ["string", "null"]},
                "rows": {"type": "array", "items": {"type": "object", "properties": {
                    "rank": {"type": "integer"}, "userid": s, "name": s, "gmv": s, "orders": {"type": "integer"},
                    "tasks_done": {"type": "integer"}, "tasks_total": {"type": "integer"},
                    "me": {"type": "boolean"}}}}}}, "the ranking"),
            params=[_param("date", description="local day YYYY-MM-DD (default today)")], errors=(400, 401))},
        "/api/me/month": {"get": _op("The signed-in guide's month: orders, GMV, commission",
                                     _json(OBJ, "the month"), tag="commerce")},
    }
    schemas = {
        "Error": ERROR,
        "JsSdk": {"type": "object", "required": ["config", "agentConfig"], "properties": {
            "config": {"type": "object", "properties": {
                "appId": s, "timestamp": {"type": "integer"}, "nonceStr": s, "signature": s,
                "jsApiList": {"type": "array", "items": s}}},
            "agentConfig": {"type": "object", "properties": {
                "corpid": s, "agentid": s, "timestamp": {"type": "integer"}, "nonceStr": s, "signature": s,
                "jsApiList": {"type": "array", "items": s}}}}},
        "Profile": {"type": "object", "properties": {
            "external_userid": s, "name": s, "remark": {"type": ["string", "null"]},
            "mobile": {"type": ["string", "null"], "description": "masked: 138****1234"},
            "baby": {"type": ["string", "null"]}, "lifecycle": {"type": "string",
                                                                "enum": ["new", "active", "dormant", "lost"]},
            "lifecycle_label": s, "rfm": {"type": ["string", "null"]}, "binding_guide": {"type": ["string", "null"]},
            "first_added": {"type": ["string", "null"]}, "last_purchase": {"type": ["string", "null"]},
            "total_spend": s, "timeline": {"type": "array", "maxItems": 30, "items": OBJ}}},
        "TagGroup": {"type": "object", "properties": {
            "id": {"type": ["integer", "null"]}, "name": s, "guide_notes": {"type": "boolean"},
            "tags": {"type": "array", "items": _ref("TagState")}}},
        "TagState": {"type": "object", "properties": {"id": {"type": "integer"}, "name": s,
                                                      "on": {"type": "boolean"}}},
        "Script": {"type": "object", "properties": {"external_id": s, "title": s, "category": s, "body": s}},
        "FirstScreen": {"type": "object", "required": ["customer", "tags", "suggestions", "tasks"], "properties": {
            "customer": _ref("Profile"), "tags": {"type": "array", "items": _ref("TagGroup")},
            "suggestions": {"type": "array", "items": _ref("Script")}, "tasks": {"type": "array", "items": OBJ},
            "quota": OBJ}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "导购助手 API", "version": "1.0",
                 "description": "The JSON API behind the chat sidebar. Sign in through /sidebar/login (WeCom "
                                "OAuth2) for the session cookie; state-changing calls carry the page's CSRF "
                                "token in X-CSRF-Token. Errors are JSON {error} in Chinese."},
        "servers": [{"url": "/"}],
        "security": [{"session": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "session",
                            "description": "signed, HttpOnly, SameSite session cookie (12 h)"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"},
            },
        },
    }
