"""Inbound callbacks: verify the signature, decrypt, parse safely, and store once in the durable inbox.

Nothing here calls WeCom; the stored callback is handled by a job (bot.tasks) off the request path.
"""
from __future__ import annotations

import json
import logging
import threading
from collections import deque
from dataclasses import dataclass

from flask import current_app
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.enterprise.exceptions import InvalidCorpIdException
from wechatpy.exceptions import InvalidSignatureException
from xml.parsers import expat

from core.db import db
from core.timeutil import utcnow
from models import CallbackInbox

log = logging.getLogger(__name__)


@dataclass
class CallbackRejected(Exception):
    status: int
    reason: str


def crypto() -> WeChatCrypto:
    cfg = current_app.config
    settings = (cfg["WECOM_TOKEN"], cfg["WECOM_AES_KEY"], cfg["WECOM_CORP_ID"])
    cached = current_app.extensions.get("wecom_crypto")
    if cached is None or cached[0] != settings:  # built once per process, not per callback
        cached = current_app.extensions["wecom_crypto"] = (settings, WeChatCrypto(*settings))
    return cached[1]


class _Forbidden(Exception):
    pass


def _forbid(name: str):
    def handler(*_args):
        raise _Forbidden(name)
    return handler


class _FlatXML:
    """Collects a WeCom document's fields while expat parses: {tag: text}, and {tag: {child: text}} for
    the few nested blocks; builds no element tree."""

    def __init__(self) -> None:
        self.fields: dict = {}
        self.depth = 0
        self.tag, self.text, self.children = "", [], None
        self.sub, self.subtext = "", []

    def start(self, tag, _attrs) -> None:
        self.depth += 1
        if self.depth == 2:
            self.tag, self.text, self.children = tag, [], None
        elif self.depth == 3:
            if self.children is None:
                self.children = {}
            self.sub, self.subtext = tag, []

    def end(self, _tag) -> None:
        if self.depth == 2:
            self.fields[self.tag] = self.children if self.children is not None else "".join(self.text).strip()
        elif self.depth == 3:
            self.children[self.sub] = "".join(self.subtext)
        self.depth -= 1

    def data(self, text: str) -> None:
        if self.depth == 2:
            self.text.append(text)
        elif self.depth == 3:
            self.subtext.append(text)


def parse_xml(text: str | bytes) -> dict:
    """Flat <xml> documents into {tag: text}; DTDs, entities and malformed XML are rejected (400).

    defusedxml's rules (no DTD, no entity declarations, no external references) applied directly to the C
    expat parser: defusedxml's ElementTree runs the pure-Python tree builder, which cost more than the
    decryption on the callback's hot path. A DOCTYPE is refused as soon as it starts, so no entity can be
    declared at all.
    """
    collector = _FlatXML()
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _forbid("DTDForbidden")
    parser.EntityDeclHandler = _forbid("EntitiesForbidden")
    parser.UnparsedEntityDeclHandler = _forbid("EntitiesForbidden")
    parser.ExternalEntityRefHandler = _forbid("ExternalReferenceForbidden")
    parser.buffer_text = True
    parser.StartElementHandler = collector.start
    parser.EndElementHandler = collector.end
    parser.CharacterDataHandler = collector.data
    try:
        parser.Parse(text, True)
    except _Forbidden as exc:
        raise CallbackRejected(400, f"XML with a DTD or entity declaration ({exc})") from None
    except expat.ExpatError as exc:
        raise CallbackRejected(400, f"malformed XML: {exc}") from None
    return collector.fields


def verify_url(args) -> str:
    """GET URL verification: returns the decrypted echostr."""
    try:
        return crypto().check_signature(args["msg_signature"], args["timestamp"], args["nonce"], args["echostr"])
    except KeyError as exc:
        raise CallbackRejected(403, f"missing query parameter {exc.args[0]}") from None
    except InvalidSignatureException:
        raise CallbackRejected(403, "signature mismatch") from None
    except InvalidCorpIdException:
        raise CallbackRejected(400, "echostr was encrypted for another corp id") from None
    except Exception as exc:
        raise CallbackRejected(400, f"echostr cannot be decrypted ({type(exc).__name__})") from None


def decrypt_callback(args, body: bytes) -> dict[str, str]:
    """POST: the envelope's Encrypt is signature-checked, decrypted, and the inner XML parsed."""
    for name in ("msg_signature", "timestamp", "nonce"):
        if not args.get(name):
            raise CallbackRejected(403, f"missing query parameter {name}")
    encrypted = parse_xml(body).get("Encrypt")
    if not encrypted or not isinstance(encrypted, str):
        raise CallbackRejected(400, "envelope has no Encrypt element")
    try:
        plain = crypto().decrypt_message({"Encrypt": encrypted}, args["msg_signature"], args["timestamp"],
                                         args["nonce"])
    except InvalidSignatureException:
        raise CallbackRejected(403, "signature mismatch") from None
    except InvalidCorpIdException:
        raise CallbackRejected(400, "message was encrypted for another corp id") from None
    except Exception as exc:
        raise CallbackRejected(400, f"body cannot be decrypted ({type(exc).__name__})") from None
    fields = parse_xml(plain)
    if not fields.get("MsgType"):
        raise CallbackRejected(400, "decrypted message has no MsgType")
    return fields


def dedup_key(fields: dict) -> str:
    """MsgId for messages; for events (all sent by `sys`) the event's identifying fields and time."""
    if fields.get("MsgId"):
        return f"msg:{fields['MsgId']}"
    parts = [
        fields.get("Event", ""),
        fields.get("ChangeType", ""),
        fields.get("UserID", "") or fields.get("FromUserName", ""),
        fields.get("ExternalUserID", "") or fields.get("Id", "") or fields.get("ChatId", ""),
        fields.get("TagType", ""),
        fields.get("CreateTime", ""),
    ]
    return "evt:" + ":".join(parts)


# On PostgreSQL the inbox insert is one prepared statement on a raw autocommitting connection (no ORM unit of
# work, no SQLAlchemy statement processing). It takes its rows as arrays, so one prepared statement serves a
# batch of any size (group commit, below).
_PG_INSERT_MANY = (
    "INSERT INTO callback_inbox (dedup_key, received_at, msg_type, event, change_type, payload, status, attempts)"
    " SELECT k, now(), m, e, c, p::jsonb, 'pending', 0"
    " FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[]) AS t(k, m, e, c, p)"
    " ON CONFLICT (dedup_key) DO NOTHING RETURNING dedup_key, id"
)
_SQLITE_INSERT = (
    sqlite_insert(CallbackInbox).on_conflict_do_nothing(index_elements=["dedup_key"]).returning(CallbackInbox.id)
)


class _Pending:
    __slots__ = ("row", "lead", "done", "inbox_id", "error")

    def __init__(self, row: tuple):
        self.row, self.lead, self.done, self.inbox_id, self.error = row, False, False, None, None


class InboxGroupCommit:
    """Group commit across the concurrent requests of one process, with a bounded number of writers.

    Up to `writers` requests at a time write: each takes every row queued so far and stores them with one
    statement and one durable commit. A request arriving while all writers are busy queues its row; the
    next writer to finish hands the writing on to it, and it takes the queue as it then stands. So a lone
    request writes at once, and under load each WAL flush carries many callbacks. Every request answers
    only once its own row is committed.
    """

    def __init__(self, writers: int = 2, max_batch: int = 200) -> None:
        self.writers, self.max_batch = writers, max_batch
        self._cond = threading.Condition()
        self._queue: deque[_Pending] = deque()
        self._active = 0

    def insert(self, row: tuple) -> int | None:
        me = _Pending(row)
        with self._cond:
            self._queue.append(me)
            if self._active < self.writers:
                self._active += 1
                me.lead = True
        while True:
            if me.lead:
                self._write_queued(me)
            with self._cond:
                while not (me.done or me.lead):
                    if not self._cond.wait(30) and not (me.done or me.lead):
                        # The database hangs: answer 500 (WeCom retries); the row is still written later.
                        raise TimeoutError("the inbox write did not finish within 30 s")
                if me.done:
                    break
        if me.error is not None:
            raise me.error
        return me.inbox_id

    def _write_queued(self, me: _Pending) -> None:
        with self._cond:
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), self.max_batch))]
        try:
            if batch:
                self._write(batch)
        finally:
            with self._cond:
                me.lead = False
                successor = next((p for p in self._queue if not p.lead), None)
                if successor is not None:
                    successor.lead = True
                else:
                    self._active -= 1
                self._cond.notify_all()

    def _write(self, batch: list[_Pending]) -> None:
        try:
            ids = _insert_rows([p.row for p in batch])
        except Exception as exc:
            if len(batch) > 1:  # one bad row must not fail its neighbours: write them one by one
                for p in batch:
                    self._write([p])
                return
            batch[0].error = exc
            batch[0].done = True
            return
        for p in batch:  # the same callback twice in one batch (a fast retry): the first one gets the row
            p.inbox_id = ids.pop(p.row[0], None)
            p.done = True


def _insert_rows(rows: list[tuple]) -> dict[str, int]:
    # In key order, so two batches sharing keys (a retry racing its original) wait for each other in the
    # same order and never deadlock.
    rows = sorted(rows, key=lambda row: row[0])
    conn = db.autocommit_engine.raw_connection()
    try:
        cur = conn.driver_connection.execute(_PG_INSERT_MANY, [list(column) for column in zip(*rows)],
                                             prepare=True)
        return dict(cur.fetchall())
    except Exception:
        conn.invalidate()  # a broken connection never goes back to the pool
        raise
    finally:
        conn.close()


_group_commit = InboxGroupCommit(writers=2)


def accept(fields: dict) -> int | None:
    """Store the callback; returns the inbox id, or None when it is a retry of one already stored.

    The inbox's unique dedup_key alone settles retries (INSERT … ON CONFLICT DO NOTHING): no Redis key is
    claimed first, so a callback is accepted while Redis is down and queued by the relay once it is back.
    """
    key = dedup_key(fields)
    if db.is_postgres:
        return _group_commit.insert((key, fields.get("MsgType", ""), fields.get("Event") or None,
                                     fields.get("ChangeType") or None, json.dumps(fields, ensure_ascii=False)))
    values = dict(dedup_key=key, msg_type=fields.get("MsgType", ""), event=fields.get("Event") or None,
                  change_type=fields.get("ChangeType") or None, payload=fields, received_at=utcnow(),
                  status="pending", attempts=0)
    with db.autocommit_engine.connect() as conn:
        return conn.execute(_SQLITE_INSERT, values).scalar()
