"""An in-memory WeCom corp for the local stand-in: members, external contacts, corp tags, tokens, calls.

Thread-safe (one lock around everything). Seed it with `Corp.from_dict({...})`:

    {"members": {"guide01": {"name": "王丽", "department": [1]}},
     "contacts": {"wmEXT001": {"name": "张女士", "follow_user": [{"userid": "guide01", "state": "store-12"}]}},
     "tag_groups": [{"group_name": "宝宝月龄", "tags": ["0-6月", "6-12月"]}]}
"""
from __future__ import annotations

import copy
import secrets
import threading
import time


def _new_id(prefix: str, n: int = 16) -> str:
    return prefix + secrets.token_hex(n // 2)


class Corp:
    def __init__(self, corp_id: str = "wwstandincorp", secret: str = "standin-secret", agent_id: str | int = 1000002):
        self.corp_id = corp_id
        self.secret = secret
        self.agent_id = str(agent_id)
        self.lock = threading.RLock()
        self.members: dict[str, dict] = {}
        self.contacts: dict[str, dict] = {}
        self.tag_groups: list[dict] = []  # [{group_id, group_name, create_time, order, tag: [{id, name, ...}]}]
        self.calls: list[dict] = []
        self.tokens: dict[str, float] = {}  # token -> expires_at
        self.welcome_codes: dict[str, dict] = {}  # code -> {userid, external_userid, used, issued_at}
        self.welcome_sent: list[dict] = []
        self.messages_sent: list[dict] = []
        self.msg_templates: list[dict] = []
        self.oauth_codes: dict[str, dict] = {}  # code -> {userid, expires_at}
        self.transfers: list[dict] = []  # {kind, handover_userid, takeover_userid, external_userid, status, ...}
        self.faults: dict[str, list[int]] = {}  # path -> errcodes the next calls answer (see add_fault)
        self.token_ttl = 7200
        self._seed: dict | None = None

    # --- seeding -----------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict, **kwargs) -> "Corp":
        corp = cls(**kwargs)
        corp.seed(data)
        return corp

    def seed(self, data: dict) -> None:
        with self.lock:
            self._seed = copy.deepcopy(data)
            for userid, info in (data.get("members") or {}).items():
                self.add_member(userid, **info)
            for group in data.get("tag_groups") or []:
                self.add_tag_group(group["group_name"], group.get("tags", []), group_id=group.get("group_id"))
            for ext_id, info in (data.get("contacts") or {}).items():
                info = dict(info)
                follow = info.pop("follow_user", [])
                self.add_contact(ext_id, **info)
                for f in follow:
                    f = dict(f)
                    self.add_follow(ext_id, f.pop("userid"), **f)

    def reset(self, *, reseed: bool = True) -> None:
        """Forget everything (tokens, calls, contacts…) and re-apply the original seed."""
        with self.lock:
            for attr in ("members", "contacts", "tokens", "welcome_codes", "oauth_codes", "faults"):
                getattr(self, attr).clear()
            for attr in ("tag_groups", "calls", "welcome_sent", "messages_sent", "msg_templates", "transfers"):
                getattr(self, attr).clear()
            if reseed and self._seed:
                seed = self._seed
                self.seed(seed)

    def add_fault(self, path: str, errcode: int, times: int = 1) -> None:
        """The next `times` calls to /cgi-bin/<path> answer `errcode` (e.g. 45009, 40014, -1)."""
        with self.lock:
            self.faults.setdefault(path.strip("/"), []).extend([errcode] * times)

    def take_fault(self, path: str) -> int | None:
        with self.lock:
            queue = self.faults.get(path.strip("/"))
            return queue.pop(0) if queue else None

    def settle_transfers(self, status: int, external_userids: list[str] | None = None, *,
                         kind: str = "resigned") -> int:
        """Decide waiting transfers as WeCom would after 24 h: 1 done (the follow moves to the receiver),
        3 refused by the customer, 4 the receiver is at the cap, 5 no record. Returns how many were settled."""
        n = 0
        with self.lock:
            for t in self.transfers:
                if t["kind"] != kind or t["status"] != 2:
                    continue
                if external_userids is not None and t["external_userid"] not in external_userids:
                    continue
                t["status"] = status
                n += 1
                contact = self.contacts.get(t["external_userid"])
                if status == 1 and contact is not None:
                    for f in contact["follow_user"]:
                        if f["userid"] == t["handover_userid"]:
                            f["userid"] = t["takeover_userid"]
        return n

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    # --- members, contacts, tags ------------------------------------------------------------------

    def add_member(self, userid: str, name: str | None = None, department=None, **extra) -> dict:
        with self.lock:
            m = {"userid": userid, "name": name or userid, "department": list(department or [1]),
                 "status": 1, **extra}
            self.members[userid] = m
            return m

    def add_contact(self, external_userid: str | None = None, name: str | None = None, *, avatar: str = "",
                    type: int = 1, gender: int = 0, unionid: str | None = None, **extra) -> dict:
        with self.lock:
            external_userid = external_userid or _new_id("wm", 28)
            c = self.contacts.get(external_userid)
            if c is None:
                c = {"external_userid": external_userid, "name": name or f"客户{external_userid[-4:]}",
                     "avatar": avatar, "type": type, "gender": gender,
                     "unionid": unionid or _new_id("o", 26), "follow_user": [], **extra}
                self.contacts[external_userid] = c
            elif name:
                c["name"] = name
            return c

    def add_follow(self, external_userid: str, userid: str, *, remark: str = "", state: str = "",
                   tags: list | None = None, createtime: int | None = None, **extra) -> dict:
        with self.lock:
            if userid not in self.members:
                self.add_member(userid)
            c = self.contacts[external_userid]
            for f in c["follow_user"]:
                if f["userid"] == userid:
                    f.update(remark=remark or f["remark"], state=state or f.get("state", ""))
                    return f
            f = {"userid": userid, "remark": remark, "description": "", "createtime": createtime or int(time.time()),
                 "tags": [self._tag_ref(t) for t in (tags or [])], "remark_mobiles": [], "add_way": 1,
                 "oper_userid": external_userid, **extra}
            if state:
                f["state"] = state
            c["follow_user"].append(f)
            return f

    def remove_follow(self, external_userid: str, userid: str) -> bool:
        with self.lock:
            c = self.contacts.get(external_userid)
            if not c:
                return False
            before = len(c["follow_user"])
            c["follow_user"] = [f for f in c["follow_user"] if f["userid"] != userid]
            return len(c["follow_user"]) != before

    def add_tag_group(self, group_name: str, tags: list, *, group_id: str | None = None, order: int = 0) -> dict:
        with self.lock:
            g = {"group_id": group_id or _new_id("et", 20), "group_name": group_name,
                 "create_time": int(time.time()), "order": order, "deleted": False, "tag": []}
            for i, t in enumerate(tags):
                if isinstance(t, str):
                    t = {"name": t}
                g["tag"].append({"id": t.get("id") or _new_id("et", 20), "name": t["name"],
                                 "create_time": int(time.time()), "order": t.get("order", i), "deleted": False})
            self.tag_groups.append(g)
            return g

    def find_tag(self, tag_id_or_name: str) -> tuple[dict, dict] | None:
        with self.lock:
            for g in self.tag_groups:
                for t in g["tag"]:
                    if tag_id_or_name in (t["id"], t["name"]):
                        return g, t
            return None

    def _tag_ref(self, tag: str | dict) -> dict:
        if isinstance(tag, dict):
            return tag
        found = self.find_tag(tag)
        if not found:
            raise KeyError(f"unknown tag {tag!r}")
        g, t = found
        return {"group_name": g["group_name"], "tag_name": t["name"], "tag_id": t["id"], "type": 1}

    # --- tokens, codes -----------------------------------------------------------------------------

    def issue_token(self) -> tuple[str, int]:
        """Like WeCom: the same token while it is valid, a new one after it expired or was reset."""
        with self.lock:
            now = time.time()
            for tok, exp in self.tokens.items():
                if exp - now > 0:
                    return tok, int(exp - now)
            tok = secrets.token_urlsafe(48)
            self.tokens[tok] = now + self.token_ttl
            return tok, self.token_ttl

    def token_valid(self, token: str | None) -> bool:
        with self.lock:
            exp = self.tokens.get(token or "")
            return exp is not None and exp > time.time()

    def issue_welcome_code(self, userid: str, external_userid: str) -> str:
        with self.lock:
            code = secrets.token_urlsafe(32)
            self.welcome_codes[code] = {"userid": userid, "external_userid": external_userid,
                                        "used": False, "issued_at": time.time()}
            return code

    def issue_oauth_code(self, userid: str) -> str:
        with self.lock:
            code = secrets.token_hex(16)
            self.oauth_codes[code] = {"userid": userid, "expires_at": time.time() + 300}
            return code

    # --- the call log ------------------------------------------------------------------------------

    def record(self, path: str, query: dict, body) -> None:
        with self.lock:
            q = {k: v for k, v in query.items() if k not in ("access_token", "corpsecret")}
            self.calls.append({"path": path, "query": q, "body": body, "at": time.time()})

    def calls_to(self, path: str | None = None) -> list[dict]:
        with self.lock:
            if not path:
                return list(self.calls)
            path = path.strip("/")
            return [c for c in self.calls if c["path"].strip("/").endswith(path)]


DEMO_SEED = {
    "members": {
        "guide01": {"name": "王丽", "department": [1], "position": "导购"},
        "guide02": {"name": "李娜", "department": [1], "position": "导购"},
        "manager01": {"name": "陈店长", "department": [1], "position": "店长"},
    },
    "tag_groups": [
        {"group_name": "宝宝月龄", "tags": ["孕期", "0-6月", "6-12月", "1-3岁"]},
        {"group_name": "客户意向", "tags": ["高意向", "待跟进", "沉默"]},
    ],
    "contacts": {
        "wmDEMOcustomer0001": {"name": "张女士", "gender": 2,
                               "follow_user": [{"userid": "guide01", "remark": "张女士-宝宝5个月", "state": "store-001"}]},
        "wmDEMOcustomer0002": {"name": "刘先生", "gender": 1,
                               "follow_user": [{"userid": "guide02", "state": "store-001"}]},
    },
}
