"""Suggestions from the library: what the sidebar, the chat-bot and the CLI ask.

Each process keeps the built indexes (scripts, content, products) in memory and checks the library's
version token in Redis on every suggestion, in the same round trip that fetches the learned pairs; when an
import (in any process) changed the library, the token differs and the indexes are rebuilt before
answering. So an edit reaches every worker without a restart, and a disabled script is never suggested.

Learning: when a guide sends a script, each of the query's terms gets evidence for that script, chain-wide
and for the guide's store, in Redis hashes (`kb:learn:<scope>:<term>`), and the send is stored in
`script_sends` (which can rebuild Redis: `flask knowledge relearn`). Evidence decays with a half-life of
HALF_LIFE_DAYS: it is stored scaled by 2^(t/half-life) and read back divided by 2^(now/half-life), so no
job ever has to age it.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta

from flask import current_app
from sqlalchemy import Text, cast, func, or_, select
from sqlalchemy.orm import undefer

from core.db import db
from core.redis_store import rstore
from core.timeutil import local_today, utcnow
from customers.segments import LIFECYCLE_LABELS, baby_age, lifecycle_stage
from knowledge import prior as conversion_prior
from knowledge import semantic
from knowledge.engine import Doc, EngineConfig, SuggestionIndex
from models import (Content, Customer, CustomerTag, Follow, Guide, Order, OrderLine, Product, Script,
                    ScriptSend, Store, Tag, TagGroup, Vocabulary)

log = logging.getLogger(__name__)
logging.getLogger("jieba").setLevel(logging.WARNING)  # its dictionary-loading chatter is not ours to log

VERSION_KEY = "kb:version"
LEARN_PREFIX = "kb:learn:"
HALF_LIFE_DAYS = 30.0
LEARN_EPOCH = 1767225600.0  # 2026-01-01T00:00:00Z; any fixed instant works
LEARN_TTL = 400 * 24 * 3600
STORE_WEIGHT = 1.0  # a store's own sends count on top of the chain-wide ones
MAX_TOP = 20
RECENT_PURCHASE_DAYS = 90
MISSING_VECTORS = 0.01  # the semantic channel serves a library once at most this share of it lacks vectors


class EmptyQuery(ValueError):
    """The message has no text to search for."""


# ------------------------------------------------------------------------------------------- the indexes


@dataclass
class _Item:
    external_id: str
    valid_from: date | None
    valid_to: date | None
    data: dict
    match: frozenset[str] = frozenset()  # tags, keywords, category: what customer context can meet


def _word_index(items: dict[str, _Item]) -> dict[str, list[str]]:
    index: dict[str, list[str]] = {}
    for eid, item in items.items():
        for word in item.match:
            index.setdefault(word, []).append(eid)
    return index


@dataclass
class Library:
    version: str | None
    scripts: SuggestionIndex
    content: SuggestionIndex
    products: SuggestionIndex
    script_items: dict[str, _Item]
    content_items: dict[str, _Item]
    product_items: dict[str, _Item]
    windowed: list[_Item] = field(default_factory=list)  # items with a valid window, checked per day
    # word -> ids of the items whose `match` holds it, per kind: what the customer-context boosts look up
    script_words: dict[str, list[str]] = field(init=False)
    content_words: dict[str, list[str]] = field(init=False)
    product_words: dict[str, list[str]] = field(init=False)
    prior: conversion_prior.Prior | None = None  # the conversion prior last read for this library

    def __post_init__(self) -> None:
        self.script_words = _word_index(self.script_items)
        self.content_words = _word_index(self.content_items)
        self.product_words = _word_index(self.product_items)

    def out_of_window(self, today: date) -> dict[str, float]:
        """external_id -> 0 for items whose valid window does not cover `today` (a boost that hides them)."""
        return {i.external_id: 0.0 for i in self.windowed
                if (i.valid_from and today < i.valid_from) or (i.valid_to and today > i.valid_to)}


def _build() -> Library:
    started = time.perf_counter()
    vocab = db.session.execute(select(Vocabulary.term, Vocabulary.variants)).all()
    synonyms = {t: list(v) for t, v in vocab if v}
    words = [t for t, v in vocab] + [w for _, v in vocab for w in v]

    def index(docs, **semantics):
        return SuggestionIndex(docs, extra_synonyms=synonyms, extra_words=words, config=EngineConfig(),
                               **semantics)

    encoder = semantic.active()
    query = select(Script).where(Script.enabled.is_(True))
    if encoder is not None:
        query = query.options(undefer(Script.embedding))
    script_items, docs, vectors = {}, [], {}
    for s in db.session.scalars(query):
        docs.append(Doc(s.external_id, s.title, s.body, s.category, s.tags or [], s.keywords or []))
        if encoder is not None and s.embedding_key == semantic.current_key(s):
            vector = semantic.from_bytes(s.embedding)
            if vector is not None:
                vectors[s.external_id] = vector
        script_items[s.external_id] = _Item(
            s.external_id, s.valid_from, s.valid_to,
            {"external_id": s.external_id, "title": s.title, "category": s.category, "body": s.body,
             "tags": list(s.tags or [])},
            frozenset([*(s.tags or []), *(s.keywords or []), s.category]))
    missing = len(docs) - len(vectors)
    if encoder is not None and missing > MISSING_VECTORS * len(docs):
        # Half a library with vectors would favour those scripts on every close call: until (nearly) every
        # script has its vector (being computed after an import; `flask knowledge embed` after an upgrade),
        # the index goes by words only.
        log.warning("%d of %d scripts have no current sentence vector yet: suggestions go by words only "
                    "until they have (`flask knowledge embed` computes them)", missing, len(docs))
        vectors = {}
    elif encoder is not None and missing:
        log.warning("%d of %d scripts have no sentence vector (the model failed on them): they are found by "
                    "their words only", missing, len(docs))
    scripts = index(docs, vectors=vectors, encoder=encoder)  # no vectors: words only

    content_items, docs = {}, []
    for c in db.session.scalars(select(Content).where(Content.enabled.is_(True))):
        docs.append(Doc(c.external_id, c.title, c.summary, c.category, c.tags or [], c.keywords or []))
        content_items[c.external_id] = _Item(
            c.external_id, c.valid_from, c.valid_to,
            {"external_id": c.external_id, "kind": c.kind, "title": c.title, "summary": c.summary,
             "url": c.url, "media_id": c.media_id, "cover_url": c.cover_url, "tags": list(c.tags or []),
             "target_tags": list(c.target_tags or []), "target_stages": list(c.target_stages or [])},
            frozenset([*(c.tags or []), *(c.keywords or []), c.category]))
    content = index(docs)

    product_items, docs = {}, []
    for p in db.session.scalars(select(Product)):
        attrs = p.attributes or {}
        extra = [str(v) for k, v in attrs.items() if k in ("brand", "stage", "size", "series") and v]
        docs.append(Doc(p.sku, p.name, "", p.category, extra, []))
        product_items[p.sku] = _Item(p.sku, None, None, {"sku": p.sku, "name": p.name, "category": p.category,
                                                         "price": str(p.price)},
                                     frozenset([p.category, *extra]))
    products = index(docs)

    windowed = [i for i in (*script_items.values(), *content_items.values()) if i.valid_from or i.valid_to]
    lib = Library(None, scripts, content, products, script_items, content_items, product_items, windowed)
    log.info("knowledge indexes built: %d scripts, %d content, %d products in %.2f s",
             len(script_items), len(content_items), len(product_items), time.perf_counter() - started)
    return lib


_build_lock = threading.Lock()


def _cached() -> Library | None:
    return current_app.extensions.get("knowledge_library")


def library(version: str | None = ..., *, check: bool = True) -> Library:
    """The current indexes, rebuilt when the library's version token changed (or was never built)."""
    if version is ... and check:
        raw = rstore.client.get(VERSION_KEY)
        version = raw.decode() if isinstance(raw, bytes) else raw
    lib = _cached()
    if lib is not None and (not check or lib.version == version):
        return lib
    with _build_lock:
        lib = _cached()
        if lib is None or (check and lib.version != version):
            lib = _build()
            lib.version = version
            current_app.extensions["knowledge_library"] = lib
    return lib


def library_changed() -> None:
    """Call after committing a change to scripts, content, vocabulary or products: every process rebuilds."""
    rstore.client.set(VERSION_KEY, uuid.uuid4().hex)
    current_app.extensions.pop("knowledge_library", None)


# ------------------------------------------------------------------------------------------- learning


def _scale(at: float) -> float:
    return 2.0 ** ((at - LEARN_EPOCH) / (HALF_LIFE_DAYS * 86400))


def _scopes(store_id: int | None) -> list[str]:
    return ["chain"] + ([f"store:{store_id}"] if store_id else [])


def _learn(pipe, terms: list[str], script_eid: str, store_id: int | None, at: float,
           only: set[str] | None = None) -> None:
    if not terms:
        return
    amount = _scale(at)  # one send is worth 1 to each of its terms (the engine weighs the terms)
    for scope in _scopes(store_id):
        for term in terms:
            if only is not None and term not in only:
                continue
            key = f"{LEARN_PREFIX}{scope}:{term}"
            pipe.hincrbyfloat(key, script_eid, amount)
            pipe.expire(key, LEARN_TTL)


def _learned(raw_hashes: list[dict], now: float) -> dict[str, dict[str, float]]:
    """Sum the chain and store hashes per term (already fetched, in `_scopes` order per term), in sends: a
    send in the guide's own store counts 1 (it is in both hashes), one in another store 1 / (1 + STORE_WEIGHT).
    A guide without a store reads the chain's, a send 1."""
    factor = 1.0 / _scale(now)
    out: dict[str, dict[str, float]] = {}
    for term, hashes in raw_hashes:
        merged: dict[str, float] = {}
        per_send = 1.0 + STORE_WEIGHT if len(hashes) > 1 else 1.0
        for i, h in enumerate(hashes):
            weight = (1.0 if i == 0 else STORE_WEIGHT) / per_send
            for eid, value in h.items():
                eid = eid.decode() if isinstance(eid, bytes) else eid
                merged[eid] = merged.get(eid, 0.0) + weight * float(value) * factor
        if merged:
            out[term] = merged
    return out


# ------------------------------------------------------------------------------------------- context


def customer_context(customer: Customer, today: date | None = None) -> set[str]:
    """Words describing the customer that scripts and content may be tagged with: their tags, the baby's
    stage, the lifecycle stage, and the categories they bought in the last 90 days."""
    today = today or local_today()
    words: set[str] = set()
    for group, name in db.session.execute(
            select(TagGroup.name, Tag.name).join(Tag, Tag.group_id == TagGroup.id)
            .join(CustomerTag, CustomerTag.tag_id == Tag.id).where(CustomerTag.customer_id == customer.id)):
        words.update((name, f"{group}/{name}"))
    age = baby_age(customer, today)
    if age:
        words.add(age.stage)
    following = db.session.scalar(select(func.count()).select_from(Follow).where(
        Follow.customer_id == customer.id, Follow.ended_at.is_(None))) > 0
    stage = lifecycle_stage(customer, today, following=following)
    words.update((stage, LIFECYCLE_LABELS[stage]))
    since = utcnow() - timedelta(days=RECENT_PURCHASE_DAYS)
    words.update(db.session.scalars(
        select(OrderLine.category).join(Order, Order.id == OrderLine.order_id)
        .where(Order.customer_id == customer.id, Order.paid_at >= since).distinct()))
    return words


def _context_boosts(index: dict[str, list[str]], context: set[str]) -> dict[str, float]:
    """A script or product tagged with what describes the customer moves up a little (ties and close calls
    only: at most +25 %). Looked up word by word, not item by item: a 10,000-script library costs microseconds."""
    if not context:
        return {}
    hits: dict[str, int] = {}
    for word in context:
        for eid in index.get(word, ()):
            hits[eid] = hits.get(eid, 0) + 1
    return {eid: min(1.0 + 0.1 * n, 1.25) for eid, n in hits.items()}


# ------------------------------------------------------------------------------------------- suggest


def _prepare(text: str | None) -> str:
    if text is None or not str(text).strip():
        raise EmptyQuery("请输入顾客的问题或关键词")
    return str(text)


def suggest(text: str, *, guide: Guide | None = None, customer: Customer | None = None, top: int = 5,
            with_content: bool = True, today: date | None = None, context: set[str] | None = None) -> dict:
    """Ranked scripts, related content and products for a customer's message.

    `customer` shifts the ranking towards what describes them (tags, baby's stage, recent purchases);
    `guide` selects the store whose guides' sends count on top of the chain's."""
    text = _prepare(text)
    top = max(1, min(int(top), MAX_TOP))
    today = today or local_today()
    lib = library(check=False) if _cached() is not None else library()
    try:
        terms = lib.scripts.query_terms(text)
    except ValueError:
        raise EmptyQuery("请输入顾客的问题或关键词") from None
    store_id = guide.store_id if guide else None
    scopes = _scopes(store_id)
    use_prior = conversion_prior.enabled()
    with rstore.client.pipeline(transaction=False) as pipe:
        pipe.get(VERSION_KEY)
        for term in terms:
            for scope in scopes:
                pipe.hgetall(f"{LEARN_PREFIX}{scope}:{term}")
        if use_prior:
            pipe.hmget(conversion_prior.PRIOR_KEY, *conversion_prior.HEAD_FIELDS)
        results = pipe.execute()
    version = results[0].decode() if isinstance(results[0], bytes) else results[0]
    if version != lib.version:
        lib = library(version)
    n = len(scopes)
    learned = _learned([(t, results[1 + i * n:1 + (i + 1) * n]) for i, t in enumerate(terms)], time.time())

    if context is None:  # a caller that already described the customer passes it (one set of queries, not two)
        context = customer_context(customer, today) if customer is not None else set()
    hidden = lib.out_of_window(today)
    boosts = {**_context_boosts(lib.script_words, context), **hidden}
    # what sends of each script led to: multiplied in with the context boosts (docs/suggestions.md)
    prior = conversion_prior.current(lib, results[-1], store_id) if use_prior else None
    scripts = [dict(lib.script_items[eid].data, score=round(score, 4))
               for eid, score in lib.scripts.search(text, top, boosts=boosts, learned=learned, prior=prior)]
    out = {"query": text, "scripts": scripts, "content": [], "products": []}
    if with_content:
        boosts = {**_context_boosts(lib.content_words, context), **hidden}
        out["content"] = [dict(lib.content_items[eid].data, score=round(score, 4))
                          for eid, score in lib.content.search(text, 3, boosts=boosts)]
        boosts = _context_boosts(lib.product_words, context)
        out["products"] = [dict(lib.product_items[sku].data, score=round(score, 4))
                           for sku, score in lib.products.search(text, 3, boosts=boosts)]
    return out


def suggest_many(texts: list[str], *, top: int = 5) -> list[dict]:
    """Scripts only, for many queries (the CLI's batch mode): one library check, no per-query context.
    An empty query gets `"error": "empty query"` in its place, so answers stay aligned with the input."""
    lib = library()
    hidden = lib.out_of_window(local_today())
    out = []
    for text in texts:
        record = {"query": text, "results": []}
        try:
            results = lib.scripts.search(_prepare(text), top, boosts=hidden)
        except ValueError:
            record["error"] = "empty query"
        else:
            record["results"] = [{"external_id": eid, "title": lib.script_items[eid].data["title"],
                                  "score": round(score, 4)} for eid, score in results]
        out.append(record)
    return out


def record_send(guide: Guide, script_external_id: str, *, query: str | None = None,
                customer: Customer | None = None, source: str = "suggested", edited: bool = False) -> ScriptSend:
    """A guide sent a script: stored (flushed; the caller commits) and learned from at once."""
    script = db.session.scalar(select(Script).where(Script.external_id == script_external_id))
    if script is None:
        raise LookupError(f"no script {script_external_id!r}")
    terms: list[str] = []
    if query and query.strip():
        try:
            terms = library().scripts.query_terms(query)
        except ValueError:
            terms = []
    send = ScriptSend(script_id=script.id, guide_id=guide.id, store_id=guide.store_id,
                      customer_id=customer.id if customer else None, source=source,
                      query=(query or "")[:500] or None, terms=terms, edited=edited, sent_at=utcnow())
    db.session.add(send)
    db.session.flush()
    if customer is not None:  # a reply is a service touch: never capped, and it closes today's tasks
        from tasks.quota import record_touch

        record_touch(customer, guide, kind="service", channel="script", ref=script.external_id)
    with rstore.client.pipeline(transaction=False) as pipe:
        _learn(pipe, terms, script.external_id, guide.store_id, send.sent_at.timestamp())
        pipe.execute()
    return send


def _sends_since(days: int):
    """(terms, script external_id, store_id, sent_at) of every send in the last `days` days."""
    return (select(ScriptSend.terms, Script.external_id, ScriptSend.store_id, ScriptSend.sent_at)
            .join(Script, Script.id == ScriptSend.script_id)
            .where(ScriptSend.sent_at >= utcnow() - timedelta(days=days)))


def _replay(query, only: set[str] | None = None) -> int:
    """Learn every send `query` reads again (only the terms in `only`, when given); returns sends used."""
    n = 0
    with rstore.client.pipeline(transaction=False) as pipe:
        for terms, eid, store_id, sent_at in db.session.execute(query.execution_options(yield_per=5000)):
            if only is not None and not only & set(terms or []):
                continue
            _learn(pipe, list(terms or []), eid, store_id, sent_at.timestamp(), only=only)
            n += 1
            if n % 1000 == 0:
                pipe.execute()
        pipe.execute()
    return n


def relearn(days: int = 365) -> int:
    """Rebuild the learned pairs in Redis from `script_sends` (after Redis lost them). Returns sends used."""
    client = rstore.client
    for key in client.scan_iter(match=f"{LEARN_PREFIX}*", count=1000):
        client.delete(key)
    return _replay(_sends_since(days))


def relearn_terms(terms: set[str], days: int = 365) -> int:
    """Rebuild the learned pairs of `terms` alone, in every scope, from the sends that hold them now (after
    an erasure took a term out of some sends: what other sends taught stays). No scan of the keyspace: the
    keys are the scopes × the terms. Returns sends used."""
    terms = {t for t in terms if t}
    if not terms:
        return 0
    client = rstore.client
    scopes = ["chain"] + [f"store:{sid}" for sid in db.session.scalars(select(Store.id))]
    keys = [f"{LEARN_PREFIX}{scope}:{term}" for scope in scopes for term in terms]
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start:start + 1000])
    query = _sends_since(days)
    if db.is_postgres:  # JSONB as text: the term as JSON spells it
        query = query.where(or_(*[cast(ScriptSend.terms, Text).contains(json.dumps(t, ensure_ascii=False),
                                                                        autoescape=True) for t in terms]))
    return _replay(query, only=terms)


# ------------------------------------------------------------------------------------------- browsing


def script_categories() -> list[dict]:
    """Categories of the scripts a guide can use today, with how many each holds."""
    lib = library()
    hidden = lib.out_of_window(local_today())
    counts: dict[str, int] = {}
    for eid, item in lib.script_items.items():
        if eid not in hidden:
            cat = item.data["category"] or "其他"
            counts[cat] = counts.get(cat, 0) + 1
    return [{"category": c, "count": n} for c, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def scripts_in(category: str, *, top: int = 50) -> list[dict]:
    lib = library()
    hidden = lib.out_of_window(local_today())
    items = [i.data for eid, i in lib.script_items.items()
             if eid not in hidden and (i.data["category"] or "其他") == category]
    return sorted(items, key=lambda d: d["external_id"])[:top]


def content_for(customer: Customer, *, top: int = 10, today: date | None = None) -> list[dict]:
    """Content meant for this customer: its target tags meet the customer's, and its target stages (if any)
    include theirs. Content aimed at the customer's tags comes before content for everyone."""
    today = today or local_today()
    lib = library()
    hidden = lib.out_of_window(today)
    context = customer_context(customer, today)
    ranked = []
    for eid, item in lib.content_items.items():
        if eid in hidden:
            continue
        d = item.data
        if d["target_stages"] and not (set(d["target_stages"]) & context):
            continue
        hits = len(set(d["target_tags"]) & context)
        if d["target_tags"] and not hits:
            continue
        tag_hits = len(item.match & context)
        ranked.append((hits, tag_hits, eid, d))
    ranked.sort(key=lambda r: (-r[0], -r[1], r[2]))
    return [dict(d, matched=hits) for hits, _, _, d in ranked[:top]]


def opening_scripts(customer: Customer, *, guide: Guide | None = None, top: int = 3) -> list[dict]:
    """Scripts for a chat just opened, before the guide types anything: searched with the words that
    describe the customer (baby's stage, tags, recent purchase categories)."""
    described = customer_context(customer)
    context = sorted(w for w in described if "/" not in w and not w.isascii())
    if not context:
        return []
    try:
        return suggest(" ".join(context), guide=guide, customer=customer, top=top, with_content=False,
                       context=described)["scripts"]
    except EmptyQuery:
        return []
