"""Inbound callbacks: verify the signature, decrypt, parse safely, and store once in the durable inbox.

Nothing here calls WeCom; the stored callback is handled by a job (bot.tasks) off the request path.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from flask import current_app
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.enterprise.exceptions import InvalidCorpIdException
from wechatpy.exceptions import InvalidSignatureException
from xml.etree.ElementTree import ParseError

from core.db import db
from core.redis_store import rstore
from core.timeutil import utcnow
from models import CallbackInbox

log = logging.getLogger(__name__)

DEDUP_TTL = 3 * 24 * 3600  # WeCom retries within seconds; keep the fast-path key a few days anyway


@dataclass
class CallbackRejected(Exception):
    status: int
    reason: str


def crypto() -> WeChatCrypto:
    cfg = current_app.config
    return WeChatCrypto(cfg["WECOM_TOKEN"], cfg["WECOM_AES_KEY"], cfg["WECOM_CORP_ID"])


def parse_xml(text: str | bytes) -> dict[str, str]:
    """Flat <xml> documents into {tag: text}; DTDs, entities and malformed XML are rejected (400)."""
    try:
        root = fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise CallbackRejected(400, f"XML with a DTD or entity declaration ({type(exc).__name__})") from None
    except ParseError as exc:
        raise CallbackRejected(400, f"malformed XML: {exc}") from None
    fields = {}
    for child in root:
        if len(child):  # nested blocks (e.g. UpdateDetail lists) are kept as their inner XML-free text map
            fields[child.tag] = {sub.tag: (sub.text or "") for sub in child}
        else:
            fields[child.tag] = (child.text or "").strip()
    return fields


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
    envelope = parse_xml(body)
    encrypted = envelope.get("Encrypt")
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


# Built once, parameters bound at execution, so SQLAlchemy's compiled-statement cache is used.
_INSERT_STATEMENTS = {
    is_pg: insert(CallbackInbox).on_conflict_do_nothing(index_elements=["dedup_key"]).returning(CallbackInbox.id)
    for is_pg, insert in ((True, pg_insert), (False, sqlite_insert))
}


def accept(fields: dict) -> int | None:
    """Store the callback; returns the inbox id, or None when it is a retry of one already stored."""
    key = dedup_key(fields)
    redis_key = f"wecom:callback:{key}"
    if not rstore.client.set(redis_key, 1, nx=True, ex=DEDUP_TTL):
        return None
    values = dict(
        dedup_key=key,
        msg_type=fields.get("MsgType", ""),
        event=fields.get("Event") or None,
        change_type=fields.get("ChangeType") or None,
        payload=fields,
        received_at=utcnow(),
        status="pending",
        attempts=0,
    )
    # One autocommitted statement: a single round trip on the hot path; the unique key settles retries
    # whose Redis key expired or was lost.
    try:
        with db.autocommit_engine.connect() as conn:
            inbox_id = conn.execute(_INSERT_STATEMENTS[db.is_postgres], values).scalar()
    except Exception:
        # Not stored: forget the fast-path key so WeCom's retry is accepted.
        rstore.client.delete(redis_key)
        raise
    return inbox_id
