"""The conversion prior: scripts whose sends were followed by orders move up a little, per store when the store
has data; computed by the scheduler job, never while answering; a switch turns it off."""
from __future__ import annotations

import itertools
import uuid
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from core.db import db
from core.timeutil import utcnow
from knowledge import prior, service
from models import Customer, Guide, Order, Script, ScriptSend, Store
from scheduler import runner
from scheduler.jobs import JOBS
from tests.knowledge.factories import LIBRARY
from tests.knowledge.test_library import load
from tests.statements import statements

JOB = next(j for j in JOBS if j.key == "script_prior")
TWINS = [{"kind": "script", "external_id": eid, "title": "奶粉冲调方法", "category": "喂养",
          "body": "先放水后放奶粉，水温40度左右，摇匀后喂。"} for eid in ("s-a", "s-b")]


_slots = itertools.count()


def run_job() -> None:
    """The scheduler's run of the job (a slot of its own each time: one slot runs once)."""
    slot = runner.current_slot(JOB, utcnow()) - timedelta(hours=next(_slots))
    assert runner.run_slot(JOB, slot) == "ran"


def guide_of(store_code: str) -> Guide:
    store = db.session.scalar(select(Store).where(Store.code == store_code))
    if store is None:
        store = Store(code=store_code, name=f"门店{store_code}")
        db.session.add(store)
        db.session.flush()
    guide = db.session.scalar(select(Guide).where(Guide.userid == f"g-{store_code}"))
    if guide is None:
        guide = Guide(userid=f"g-{store_code}", name=f"g-{store_code}", role="guide", store_id=store.id)
        db.session.add(guide)
        db.session.flush()
    return guide


def sends(script_eid: str, n: int, converted: int, *, store: str = "S1", days_ago: int = 10) -> None:
    """`n` sends of the script by a guide of `store`, each to its own customer, ten days ago; the first
    `converted` customers paid an order two days after."""
    guide = guide_of(store)
    script_id = db.session.scalar(select(Script.id).where(Script.external_id == script_eid))
    customers = [Customer(name=f"c{i}") for i in range(n)]
    db.session.add_all(customers)
    db.session.flush()
    at = utcnow() - timedelta(days=days_ago)
    for i, c in enumerate(customers):
        db.session.add(ScriptSend(script_id=script_id, guide_id=guide.id, store_id=guide.store_id,
                                  customer_id=c.id, sent_at=at))
        if i < converted:
            db.session.add(Order(order_no=uuid.uuid4().hex, channel="pos", customer_id=c.id,
                                 paid_at=at + timedelta(days=2), amount=Decimal("99.00")))
    db.session.commit()


def ranked(text: str, guide: Guide | None = None) -> list[str]:
    return [s["external_id"] for s in service.suggest(text, guide=guide, with_content=False)["scripts"]]


def test_of_two_near_identical_scripts_the_one_whose_sends_led_to_orders_comes_first(app, tmp_path):
    load(tmp_path, TWINS)
    plain = ranked("奶粉怎么冲")
    first, second = plain[:2]
    sends(first, 30, 0)
    sends(second, 30, 12)
    assert ranked("奶粉怎么冲") == plain  # the sends are there, but the job has not run: no prior
    run_job()
    assert ranked("奶粉怎么冲")[:2] == [second, first]
    # A library change (an import, a catalogue sync) keeps the prior: it is keyed by script id.
    load(tmp_path, [dict(TWINS[0], body=TWINS[0]["body"] + " ")])
    assert ranked("奶粉怎么冲")[:2] == [second, first]


def test_a_script_sent_twice_with_two_orders_does_not_outrank_a_clear_textual_match(app, tmp_path):
    load(tmp_path)
    question = "转奶的时候便秘怎么办"
    before = {s["external_id"]: s["score"] for s in service.suggest(question, with_content=False)["scripts"]}
    assert list(before)[:2] == ["s-bianmi", "s-zhuannai"]
    sends("s-bianmi", 40, 0)  # the clear match never led to an order
    sends("s-quan", 40, 4)
    sends("s-zhuannai", 2, 2)  # 100 % of two sends: far above the 7 % average
    run_job()
    after = {s["external_id"]: s["score"] for s in service.suggest(question, with_content=False)["scripts"]}
    assert list(after)[:2] == ["s-bianmi", "s-zhuannai"]
    lift = (after["s-zhuannai"] / after["s-bianmi"]) / (before["s-zhuannai"] / before["s-bianmi"])
    assert 1.0 < lift <= (1 + prior.MAX_LIFT) / (1 - prior.MAX_LIFT)  # it moved up, a little


def test_a_store_with_enough_sends_ranks_by_its_own_and_a_small_store_by_the_chains(app, tmp_path):
    load(tmp_path, TWINS)
    x, y = ranked("奶粉怎么冲")[:2]  # tied: x comes first without a prior
    sends(y, 50, 25, store="S1")  # in S1, y works
    sends(x, 50, 5, store="S1")
    sends(y, 50, 5, store="S2")  # in S2, x works
    sends(x, 50, 15, store="S2")
    sends(x, 5, 0, store="S3")  # too few sends of its own
    run_job()
    assert ranked("奶粉怎么冲", guide_of("S1"))[:2] == [y, x]
    assert ranked("奶粉怎么冲", guide_of("S2"))[:2] == [x, y]
    assert ranked("奶粉怎么冲", guide_of("S3"))[:2] == [y, x]  # chain-wide: 30 of 100 against 20 of 105
    assert ranked("奶粉怎么冲")[:2] == [y, x]


def test_the_job_runs_one_query_however_many_scripts_were_sent(app, tmp_path):
    def cost(n_scripts: int) -> int:
        records = [dict(TWINS[0], external_id=f"s{i}") for i in range(n_scripts)]
        load(tmp_path, records)
        for i in range(n_scripts):
            sends(f"s{i}", 2, i % 2)
        with statements() as seen:
            result = prior.rebuild()
        assert result["scripts"] == n_scripts
        return len(seen)

    assert cost(3) == cost(30) == 1


def test_turning_it_off_restores_the_plain_ranking(app, tmp_path):
    load(tmp_path, TWINS)
    plain = ranked("奶粉怎么冲")
    sends(plain[1], 30, 12)
    sends(plain[0], 30, 0)
    run_job()
    assert ranked("奶粉怎么冲")[:2] == plain[1::-1]
    app.config["SUGGEST_CONVERSION_PRIOR"] = "off"
    try:
        assert ranked("奶粉怎么冲") == plain
        assert prior.rebuild() == {"skipped": "SUGGEST_CONVERSION_PRIOR is off"}
    finally:
        app.config["SUGGEST_CONVERSION_PRIOR"] = "on"


def test_recent_sends_whose_window_is_open_and_orders_outside_it_do_not_count(app, tmp_path):
    load(tmp_path, LIBRARY)
    sends("s-quan", 10, 10, days_ago=3)  # may still convert: not yet counted
    sends("s-bianmi", 10, 5)
    guide = guide_of("S1")
    script_id = db.session.scalar(select(Script.id).where(Script.external_id == "s-tuihuan"))
    late = Customer(name="late")
    db.session.add(late)
    db.session.flush()
    at = utcnow() - timedelta(days=20)
    db.session.add_all([ScriptSend(script_id=script_id, guide_id=guide.id, store_id=guide.store_id,
                                   customer_id=late.id, sent_at=at),
                        Order(order_no="late", channel="pos", customer_id=late.id,
                              paid_at=at + timedelta(days=8), amount=Decimal("1.00"))])
    db.session.commit()
    assert prior.counts(utcnow()) == {("s-bianmi", guide.store_id): (10, 5), ("s-tuihuan", guide.store_id): (1, 0)}
