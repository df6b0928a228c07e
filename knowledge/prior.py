"""The conversion prior: a script whose sends were followed by orders moves up a little in suggestions.

Per script, the share of its sends to a known customer that were followed by an order of that customer within
the attribution window (tracking.funnels.CONVERSION_DAYS, 7 days), shrunk toward the average with
PSEUDO_SENDS imaginary average sends, so a script sent twice cannot jump. The rate becomes a factor in
[1 − MAX_LIFT, 1 + MAX_LIFT] around the average: it re-orders close calls and never buries a clear textual
match. A store with STORE_MIN_SENDS sends (and at least one conversion) gets its own factors, shrunk toward the
script's chain-wide rate (scaled to the store's average); any other store uses the chain-wide ones.

Computed in bulk by a scheduler job (one grouped query; `rebuild()`), kept in Redis (`kb:prior`), keyed by
script id (so an import or a catalogue sync keeps it), and read by each process only when its stamp changes.
Never computed while answering: no stored prior means no prior.
SUGGEST_CONVERSION_PRIOR=off turns it off (docs/suggestions.md, "Conversion prior").
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from flask import current_app
from sqlalchemy import case, exists, func, literal, select

from core.db import db
from core.redis_store import rstore
from core.timeutil import utcnow
from models import Order, Script, ScriptSend
from tracking.funnels import CONVERSION_DAYS

PRIOR_KEY = "kb:prior"  # hash: stamp (random per run), data (JSON factors by script id)
HISTORY_DAYS = 90  # sends of the last 90 days whose attribution window has closed
PSEUDO_SENDS = 20.0  # m: a script's rate starts as m average sends
MAX_LIFT = 0.08  # c: factors stay within [1 − c, 1 + c]
STORE_MIN_SENDS = 100  # a store with fewer sends (or no conversion) uses the chain-wide factors


def enabled() -> bool:
    return current_app.config.get("SUGGEST_CONVERSION_PRIOR", "on") != "off"


def _text(value) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


# ------------------------------------------------------------------------------------------- computing


def _plus_days(column, days: int):
    """SQL: the timestamp `column` plus `days` days, for this database."""
    if db.engine.dialect.name == "postgresql":
        return column + literal(timedelta(days=days))
    return func.datetime(column, f"+{days} days")  # SQLite stores naive UTC text


def counts(now: datetime) -> dict[tuple[str, int | None], tuple[int, int]]:
    """{(script external_id, store_id): (sends, converted)} for the sends to a known customer between
    HISTORY_DAYS and CONVERSION_DAYS ago (a younger send's window is still open: it could yet convert).
    One grouped query, whatever the number of scripts."""
    converted = exists().where(Order.customer_id == ScriptSend.customer_id, Order.paid_at >= ScriptSend.sent_at,
                               Order.paid_at <= _plus_days(ScriptSend.sent_at, CONVERSION_DAYS))
    q = (select(Script.external_id, ScriptSend.store_id, func.count(), func.sum(case((converted, 1), else_=0)))
         .join(Script, Script.id == ScriptSend.script_id)
         .where(ScriptSend.customer_id.is_not(None),
                ScriptSend.sent_at >= now - timedelta(days=HISTORY_DAYS),
                ScriptSend.sent_at < now - timedelta(days=CONVERSION_DAYS))
         .group_by(Script.external_id, ScriptSend.store_id))
    return {(eid, store_id): (int(n), int(c or 0)) for eid, store_id, n, c in db.session.execute(q)}


def _factor(rate: float, average: float) -> float:
    """1 ± MAX_LIFT × (relative distance from the average): twice the average is +c/2, half of it −c/2,
    never beyond ±c. Depends only on rate / average, so a store's factors compare with the chain's."""
    if average <= 0:
        return 1.0
    return 1.0 + MAX_LIFT * (rate - average) / max(rate, average)


def factors(rows: dict[tuple[str, int | None], tuple[int, int]]) -> dict:
    """{"chain": {eid: factor}, "stores": {store_id: {eid: factor}}, "sends", "converted"} from `counts()`.
    A store's map holds only the scripts it sent; its other scripts take the chain's factor."""
    chain: dict[str, list[int]] = {}
    stores: dict[int, dict[str, tuple[int, int]]] = {}
    for (eid, store_id), (n, c) in rows.items():
        total = chain.setdefault(eid, [0, 0])
        total[0] += n
        total[1] += c
        if store_id is not None:
            stores.setdefault(store_id, {})[eid] = (n, c)
    sends = sum(n for n, _ in chain.values())
    conv = sum(c for _, c in chain.values())
    out = {"chain": {}, "stores": {}, "sends": sends, "converted": conv}
    if not conv:
        return out  # no conversion anywhere: nothing to tell scripts apart
    average = conv / sends
    m = PSEUDO_SENDS
    rate = {eid: (c + m * average) / (n + m) for eid, (n, c) in chain.items()}
    out["chain"] = {eid: round(_factor(r, average), 5) for eid, r in rate.items()}
    for store_id, scripts in stores.items():
        s_sends = sum(n for n, _ in scripts.values())
        s_conv = sum(c for _, c in scripts.values())
        if s_sends < STORE_MIN_SENDS or not s_conv:
            continue
        s_average = s_conv / s_sends
        scale = s_average / average  # the script's chain-wide rate, in this store's terms
        out["stores"][str(store_id)] = {
            eid: round(_factor((c + m * rate[eid] * scale) / (n + m), s_average), 5)
            for eid, (n, c) in scripts.items()}
    return out


def rebuild(now: datetime | None = None) -> dict:
    """Recompute the prior and store it (the scheduler job)."""
    if not enabled():
        return {"skipped": "SUGGEST_CONVERSION_PRIOR is off"}
    data = factors(counts(now or utcnow()))
    rstore.client.hset(PRIOR_KEY, mapping={"stamp": uuid.uuid4().hex,
                                           "data": json.dumps(data, separators=(",", ":"))})
    return {"scripts": len(data["chain"]), "stores": len(data["stores"]), "sends": data["sends"],
            "converted": data["converted"]}


# ------------------------------------------------------------------------------------------- reading


@dataclass
class Prior:
    """One stored prior, as a process keeps it (on its Library, so a rebuilt library drops it)."""
    stamp: str
    chain: dict[str, float]
    stores: dict[str, dict[str, float]]
    _vectors: dict = field(default_factory=dict)

    def vector(self, index, store_id: int | None) -> np.ndarray | None:
        """The factors for `index` (a SuggestionIndex) as seen by a guide of `store_id`; built once."""
        key = str(store_id) if store_id is not None and str(store_id) in self.stores else None
        if key not in self._vectors:
            boosts = dict(self.chain)
            boosts.update(self.stores.get(key, {}) if key else {})
            self._vectors[key] = index.factors(boosts) if boosts else None
        return self._vectors[key]


HEAD_FIELDS = ("stamp",)  # what a suggestion fetches in its round trip: one short string


def current(lib, head: list, store_id: int | None) -> np.ndarray | None:
    """The factor vector for a suggestion, given the stored prior's head (`HEAD_FIELDS`, fetched with the
    suggestion's other Redis reads): None when no prior is stored. Factors are keyed by script id, so a library
    change (an import, a catalogue sync) keeps them: a new script has none, a removed one is ignored. The prior
    itself is read from Redis only when its stamp changed (once per job run per process)."""
    stamp = _text(head[0])
    if not stamp:
        return None
    prior = lib.prior
    if prior is None or prior.stamp != stamp:
        stamp, raw = (_text(v) for v in rstore.client.hmget(PRIOR_KEY, "stamp", "data"))
        if not stamp or not raw:
            return None
        data = json.loads(raw)
        prior = Prior(stamp, data["chain"], data["stores"])
        lib.prior = prior
    return prior.vector(lib.scripts, store_id)
