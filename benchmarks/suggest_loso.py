"""Leave-one-set-out selection of the suggestion engine's knobs.

    python benchmarks/suggest_loso.py                 # every family below
    python benchmarks/suggest_loso.py --family prf    # one of them

For each knob family (a small grid of EngineConfig overrides, the current
default included) and each evaluation set S: choose the grid point that is best
on the OTHER sets (objective: mean hit@1 + 0.5 x mean hit@3) and score it on S.
The mean of those held-out scores is the family's leave-one-set-out (LOSO)
figure; a change is kept only when it beats the default's mean. This never
tunes a value to the set it is measured on, and a knob that helps one store
only is not picked for the others. Only the dev sets are used (see SETS in
suggest_quality.py); the blind sets are not read here.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from suggest_quality import dev_sets, load_docs, load_jsonl, metrics, pinyin_dev, run_engine  # noqa: E402

from knowledge.engine import EngineConfig  # noqa: E402


def grid(**axes) -> list[dict]:
    keys = list(axes)
    return [dict(zip(keys, values)) for values in itertools.product(*axes.values())]


FAMILIES: dict[str, list[dict]] = {
    "units": grid(use_units=[False, True], unit_weight=[1.0, 1.5]),
    "prf": [{}] + grid(prf_docs=[1, 2, 3, 5], prf_weight=[0.15, 0.3, 0.5]),
    "intent": grid(intent_boost=[0.0, 0.1, 0.2, 0.3, 0.5]),
    "subword": grid(subword_weight=[1.0, 0.7, 0.5, 0.3, 0.0]),
    "intent_title": [{}] + grid(intent_fields=["title"], intent_boost=[0.1, 0.2, 0.3, 0.5]),
    "subword_known": grid(subword_known=[False, True], subword_weight=[0.0, 0.5]),
    "query_idf": grid(query_idf_k=[0.0, 0.5, 1.0, 2.0, 4.0]),
    "category_prior": grid(category_prior=[0.0, 0.25, 0.5, 1.0, 1.5, 2.0]),
    "concept_weight": grid(concept_weight=[1.0, 1.3, 1.6]),
    "shares": grid(unigram_share=[0.3, 0.5, 0.7], bigram_share=[0.05, 0.15, 0.3]),
    "shares_wide": grid(unigram_share=[0.5, 0.6, 0.7, 0.8, 0.9], bigram_share=[0.0, 0.05, 0.1]),
    "pinyin": grid(pinyin_share=[0.0, 0.05, 0.1]),
    "coord": grid(coord=[0.0, 0.25, 0.5, 1.0]),
    "latin_pinyin": grid(latin_pinyin_words=[0, 1, 2, 3], latin_pinyin_bigrams=[False, True]),
    "semantic": grid(semantic_weight=[0.0, 0.5, 0.8, 1.0, 1.3], semantic_temp=[0.01, 0.02, 0.03]),
    "semantic_wide": grid(semantic_weight=[1.0, 1.3, 1.6, 2.0, 2.5], semantic_temp=[0.02, 0.03, 0.05]),
    "semantic_gate": grid(semantic_gate=[2.0, 0.6, 0.5, 0.4, 0.3, 0.2]),
    "bm25": grid(k1=[1.2, 1.5, 2.0], b=[0.3, 0.5, 0.75]),
    "title_weight": [{"word_field_weights": {"title": w, "tags": w, "keywords": w, "body": 1.0, "category": 1.0}}
                     for w in (2.0, 4.0, 6.0)],
}


def objective(ms: list[dict]) -> float:
    return sum(m["hit@1"] + 0.5 * m["hit@3"] for m in ms) / len(ms)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", action="append", help="family name(s): " + ", ".join(FAMILIES))
    ap.add_argument("--base", default="", help="overrides applied under every grid point, as k=v,k=v (python literals)")
    ap.add_argument("--pinyin-dev", action="store_true",
                    help="add each set's Latin-pinyin dev questions (queries_pinyin_dev.jsonl) to its questions")
    args = ap.parse_args(argv)
    base = {}
    for kv in filter(None, args.base.split(",")):
        k, v = kv.split("=", 1)
        base[k] = eval(v)  # noqa: S307 - a developer's own command line
    # The current round's blind sets are never read here (suggest_quality.DEV_ROLES).
    sets = [(name, load_docs(kb), load_jsonl(qs) + (pinyin_dev(name) if args.pinyin_dev else []))
            for name, role, kb, qs in dev_sets()]
    names = [n for n, *_ in sets]
    scored: dict[str, list[dict]] = {}  # repr(config) -> metrics per set: a grid point is run once

    def score(overrides: dict) -> list[dict]:
        cfg = dataclasses.replace(EngineConfig(), **{**base, **overrides})
        key = repr(cfg)
        if key not in scored:
            scored[key] = [metrics(run_engine(d, q, cfg)) for _, d, q in sets]
        return scored[key]

    default = score({})
    for fam in args.family or list(FAMILIES):
        points = FAMILIES[fam]
        table = [score(p) for p in points]
        loso = []
        picks = []
        for s in range(len(sets)):
            best = max(range(len(points)), key=lambda i: (objective([m for j, m in enumerate(table[i]) if j != s]), -i))
            picks.append(best)
            loso.append(table[best][s])
        print(f"== {fam}")
        for p, ms in zip(points, table):
            print(f"  {str(p)[:70]:<72} h@1 {sum(m['hit@1'] for m in ms) / len(ms):.3f}  "
                  f"h@3 {sum(m['hit@3'] for m in ms) / len(ms):.3f}  "
                  + " ".join(f"{m['hit@1']:.3f}" for m in ms))
        mean = lambda ms, k: sum(m[k] for m in ms) / len(ms)  # noqa: E731
        print(f"  default            h@1 {mean(default, 'hit@1'):.3f} h@3 {mean(default, 'hit@3'):.3f}")
        print(f"  LOSO (held-out)    h@1 {mean(loso, 'hit@1'):.3f} h@3 {mean(loso, 'hit@3'):.3f}   "
              f"picks per held-out set {dict(zip(names, [str(points[i]) for i in picks]))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
