"""Learning from guides' sends: does a send help the next customer, and never hurt?

    python benchmarks/suggest_learning.py            # the engine's setting
    python benchmarks/suggest_learning.py --grid     # learned_cap x learned_power, leave-one-set-out pick

Each dev set (suggest_quality.DEV_ROLES) has two questions per script. A store "after a while" is simulated
by learning, for every script, the (query terms -> script) pairs of ONE of its questions, as if a guide had
sent that script for it (`SuggestionIndex.query_terms`, one send each, as `knowledge.service.record_send`
records). Then, in the same run:
  * no learning:  every question, as the quality benchmark asks it;
  * other words:  the script's OTHER question (written in different words): learning must not hurt here,
                  the pairs of neighbouring scripts share topic and chat words with it;
  * same words:   the question that was sent for again (customers ask the same things all day), after one
                  send of its script, and after three ("3 sends");
  * one mis-send: each question alone after one send, for exactly its words, of the script the engine ranks
                  4th (a plausible slip of the finger): one slip must not take the question over.
Both halves are swapped and pooled, so every question is asked once in each mode.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from suggest_loso import grid, objective  # noqa: E402
from suggest_quality import build_index, dev_sets, load_docs, load_jsonl, metrics, ranks  # noqa: E402

from knowledge.engine import EngineConfig  # noqa: E402


def run_set(docs, queries, cfg: EngineConfig) -> dict[str, dict]:
    index = build_index(docs, cfg)  # as the service runs it: with the semantic channel
    by_script: dict[str, list[dict]] = {}
    for q in queries:
        by_script.setdefault(q["relevant"][0], []).append(q)
    pairs = [qs[:2] for qs in by_script.values() if len(qs) >= 2]
    out: dict[str, list] = {"none": [], "other": [], "same": [], "same3": [], "wrong": []}
    for sent in (0, 1):
        learned: dict[str, dict[str, float]] = {}
        for qs in pairs:
            eid = qs[sent]["relevant"][0]
            for term in index.query_terms(qs[sent]["text"]):
                slot = learned.setdefault(term, {})
                slot[eid] = slot.get(eid, 0.0) + 1.0
        for mode, asked, with_learned in (("none", [qs[1 - sent] for qs in pairs], None),
                                          ("other", [qs[1 - sent] for qs in pairs], learned),
                                          ("same", [qs[sent] for qs in pairs], learned)):
            ranked = [[eid for eid, _ in index.search(q["text"], top=10, learned=with_learned)] for q in asked]
            out[mode] += ranks(ranked, [q["relevant"] for q in asked])
        thrice = {t: {e: 3.0 * w for e, w in slot.items()} for t, slot in learned.items()}
        asked = [qs[sent] for qs in pairs]
        out["same3"] += ranks([[eid for eid, _ in index.search(q["text"], top=10, learned=thrice)] for q in asked],
                              [q["relevant"] for q in asked])
        # A mis-tap: for each question alone, one send of the script the engine ranks 4th (a plausible
        # wrong pick in the list) for exactly these words. One slip must not take the question over.
        for qs in pairs:
            q = qs[sent]
            ranked = [eid for eid, _ in index.search(q["text"], top=10)]
            wrong = next((e for e in ranked[3:] if e not in q["relevant"]), None)
            slip = {t: {wrong: 1.0} for t in index.query_terms(q["text"])} if wrong else None
            out["wrong"] += ranks([[eid for eid, _ in index.search(q["text"], top=10, learned=slip)]],
                                  [q["relevant"]])
    return {mode: metrics(first) for mode, first in out.items()}


def mean(ms: list[dict], key: str) -> float:
    return sum(m[key] for m in ms) / len(ms)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid", action="store_true", help="try learned_cap x learned_power, pick leave-one-set-out")
    args = ap.parse_args(argv)
    sets = [(name, load_docs(kb), load_jsonl(qs)) for name, _role, kb, qs in dev_sets()]
    points = grid(learned_prior=[0.0, 1.0, 2.0], learned_cap=[1.0, 2.0], learned_power=[1.0, 2.0]) \
        if args.grid else [{}]
    table = []
    for p in points:
        cfg = dataclasses.replace(EngineConfig(), **p)
        per_set = [run_set(docs, qs, cfg) for _, docs, qs in sets]
        table.append(per_set)
        label = str(p) if p else (f"engine (learned_prior {cfg.learned_prior}, learned_cap {cfg.learned_cap}, "
                                  f"learned_power {cfg.learned_power})")
        print(f"== {label}  [{len(sets)} dev sets, {sum(len(q) for *_, q in sets)} questions]")
        for mode, title in (("none", "no learning"), ("other", "other words"), ("same", "same words"),
                            ("same3", "3 sends"), ("wrong", "one mis-send")):
            ms = [s[mode] for s in per_set]
            print(f"  {title:<12} hit@1 {mean(ms, 'hit@1'):.3f}  hit@3 {mean(ms, 'hit@3'):.3f}  MRR {mean(ms, 'mrr'):.3f}"
                  f"  worst set hit@1 {min(m['hit@1'] for m in ms):.3f}")
    if args.grid:
        # Objective: first that learning does not hurt questions in other words, then, weighed alike, what one
        # right send gains and what one wrong send costs.
        def score(per_set, skip):
            keep = [s for i, s in enumerate(per_set) if i != skip]
            return objective([s["other"] for s in keep]) + 0.25 * (
                objective([s["same"] for s in keep]) + objective([s["wrong"] for s in keep]))
        held = []
        for s in range(len(sets)):
            best = max(range(len(points)), key=lambda i: (score(table[i], s), -i))
            held.append((points[best], table[best][s]))
        print("LOSO: other words hit@1 %.3f, same words %.3f, 3 sends %.3f, one mis-send %.3f; picks %s" % (
            *(mean([t[mode] for _, t in held], "hit@1") for mode in ("other", "same", "same3", "wrong")),
            sorted({str(p) for p, _ in held})))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
