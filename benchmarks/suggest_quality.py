"""Offline quality benchmark for the reply-script suggestion engine.

    python benchmarks/suggest_quality.py                      # skincare + baby sets
    python benchmarks/suggest_quality.py --kb K.jsonl --queries Q.jsonl
    python benchmarks/suggest_quality.py --ablate             # component ablation table

Prints hit@1, hit@3 and MRR for the engine and for a plain baseline (global
jieba lcut_for_search + rank_bm25 BM25Okapi over title+body+tags), same run.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from knowledge.engine import Doc, EngineConfig, SuggestionIndex  # noqa: E402

SHARED_EVAL = REPO.parent / "shared" / "eval"
DATA = Path(__file__).resolve().parent / "data"
DEFAULT_SETS = [
    ("skincare", SHARED_EVAL / "kb_skincare.jsonl", SHARED_EVAL / "queries_skincare.jsonl"),
    ("baby", DATA / "kb_baby.jsonl", DATA / "queries_baby.jsonl"),
]


def load_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_docs(path: Path) -> list[Doc]:
    return [Doc(external_id=r["external_id"], title=r.get("title", ""), body=r.get("body", ""),
                category=r.get("category", ""), tags=r.get("tags") or [], keywords=r.get("keywords") or [])
            for r in load_jsonl(path)]


def metrics(ranked_lists: list[list[str]], relevant: list[list[str]]) -> dict[str, float]:
    h1 = h3 = rr = 0.0
    for ranked, rel in zip(ranked_lists, relevant):
        rel = set(rel)
        first = next((i for i, eid in enumerate(ranked) if eid in rel), None)
        if first is not None:
            h1 += first == 0
            h3 += first < 3
            rr += 1.0 / (first + 1)
    n = max(len(relevant), 1)
    return {"hit@1": h1 / n, "hit@3": h3 / n, "mrr": rr / n}


def run_engine(docs, queries, config: EngineConfig | None = None) -> dict[str, float]:
    index = SuggestionIndex(docs, config=config)
    ranked = [[eid for eid, _ in index.search(q["text"], top=10)] for q in queries]
    return metrics(ranked, [q["relevant"] for q in queries])


def run_baseline(docs, queries) -> dict[str, float]:
    import jieba
    from rank_bm25 import BM25Okapi

    jieba.setLogLevel(60)
    corpus = [jieba.lcut_for_search(f"{d.title} {d.body} {' '.join(d.tags)}") for d in docs]
    bm25 = BM25Okapi(corpus)
    ranked = []
    for q in queries:
        scores = bm25.get_scores(jieba.lcut_for_search(q["text"]))
        order = sorted(range(len(docs)), key=lambda i: -scores[i])
        ranked.append([docs[i].external_id for i in order[:10] if scores[i] > 0])
    return metrics(ranked, [q["relevant"] for q in queries])


def fmt(m: dict[str, float]) -> str:
    return f"hit@1 {m['hit@1']:.3f}  hit@3 {m['hit@3']:.3f}  MRR {m['mrr']:.3f}"


ABLATIONS = [
    ("full engine (default)", {}),
    ("- synonyms", {"use_synonyms": False}),
    ("- char bigrams", {"use_bigrams": False}),
    ("- synonyms - bigrams (BM25F words only)", {"use_synonyms": False, "use_bigrams": False}),
    ("- fuzzy pinyin", {"use_pinyin": False}),
    ("- char bigrams - pinyin", {"use_bigrams": False, "use_pinyin": False}),
    ("char bigrams only", {"bigram_share": 1.0, "use_pinyin": False}),
    ("flat fields (all weights 1)", {
        "word_field_weights": dict.fromkeys(("title", "tags", "keywords", "body", "category"), 1.0),
        "char_field_weights": dict.fromkeys(("title", "tags", "keywords", "body", "category"), 1.0)}),
    ("RRF fusion instead of linear", {"fusion": "rrf"}),
    ("- category prior", {"category_prior": 0.0}),
    ("+ cilin expansion", {"use_cilin": True}),
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kb", type=Path, help="knowledge-base JSONL (default: both bundled sets)")
    ap.add_argument("--queries", type=Path, help="queries JSONL matching --kb")
    ap.add_argument("--ablate", action="store_true", help="print the component ablation table")
    args = ap.parse_args(argv)

    if bool(args.kb) != bool(args.queries):
        ap.error("--kb and --queries go together")
    sets = [(args.kb.stem, args.kb, args.queries)] if args.kb else DEFAULT_SETS

    loaded = [(name, load_docs(kb), load_jsonl(qs)) for name, kb, qs in sets]
    for name, docs, queries in loaded:
        eng = run_engine(docs, queries)
        base = run_baseline(docs, queries)
        print(f"== {name}: {len(docs)} scripts, {len(queries)} queries")
        print(f"  engine   {fmt(eng)}")
        print(f"  baseline {fmt(base)}")
        print(f"  delta    hit@1 {100 * (eng['hit@1'] - base['hit@1']):+.1f} pts  "
              f"hit@3 {100 * (eng['hit@3'] - base['hit@3']):+.1f} pts  MRR {eng['mrr'] - base['mrr']:+.3f}")

    if args.ablate:
        print("\n== ablations (hit@1 / hit@3 / MRR)")
        header = "  " + "variant".ljust(42) + "".join(n.ljust(26) for n, _, _ in loaded)
        print(header)
        for label, overrides in ABLATIONS:
            cfg = dataclasses.replace(EngineConfig(), **overrides)
            cells = []
            for _, docs, queries in loaded:
                m = run_engine(docs, queries, cfg)
                cells.append(f"{m['hit@1']:.3f} / {m['hit@3']:.3f} / {m['mrr']:.3f}".ljust(26))
            print("  " + label.ljust(42) + "".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
