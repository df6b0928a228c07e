"""Synthetic IME-typo check for the suggestion engine (dev sets only).

    python benchmarks/suggest_typos.py

Each question of every bundled dev set that contains a word of its library (two or more CJK
characters) gets one character of one such word replaced by a common homophone (same toneless,
fuzzy-folded pinyin; the homophone jieba uses most), as a phone IME slip would (尺码 -> 尺马). The
engine is run on these questions with and without ``homophone_fix``, and the baseline beside them;
the seed is fixed, so the questions are the same on every run.
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import suggest_quality as sq  # noqa: E402
from knowledge import text as T  # noqa: E402
from knowledge.engine import EngineConfig, SuggestionIndex  # noqa: E402

def homophones() -> dict[str, list[str]]:
    pm, tok = T.pinyin_map(), T.default_tokenizer()
    by_sound: dict[str, list[str]] = {}
    for c, p in pm.items():
        if "\u4e00" <= c <= "\u9fff":
            by_sound.setdefault(p, []).append(c)
    return {c: sorted((d for d in by_sound[p] if d != c), key=lambda d: -tok.freq(d))[:3]
            for c, p in pm.items() if "\u4e00" <= c <= "\u9fff"}


def typo_questions(docs, queries, subs, rng) -> list[dict]:
    vocab = SuggestionIndex(docs)._words.vocab
    words = sorted(w for w in vocab if len(w) >= 2 and all("\u4e00" <= c <= "\u9fff" for c in w))
    out = []
    for q in queries:
        text = T.normalize_query(q["text"])
        present = [w for w in words if w in text]
        if not present:
            continue
        w = rng.choice(present)
        i = rng.randrange(len(w))
        if subs.get(w[i]):
            out.append({"text": text.replace(w, w[:i] + rng.choice(subs[w[i]]) + w[i + 1:], 1),
                        "relevant": q["relevant"]})
    return out


def main() -> int:
    subs, rng = homophones(), random.Random(7)
    rows = []
    for name, role, kb, qf in sq.dev_sets():
        docs = sq.load_docs(kb)
        qs = typo_questions(docs, sq.load_jsonl(qf), subs, rng)
        on = sq.metrics(sq.run_engine(docs, qs))
        off = sq.metrics(sq.run_engine(docs, qs, EngineConfig(homophone_fix=False)))
        base = sq.metrics(sq.run_baseline(docs, qs))
        rows.append((on, off, base))
        print(f"{name:10s} {len(qs):3d} questions   hit@1/hit@3  engine {sq.fmt(on)}   "
              f"without repair {sq.fmt(off)}   baseline {sq.fmt(base)}")
    n = len(rows)
    for label, k in (("engine", 0), ("without repair", 1), ("baseline", 2)):
        print(f"mean {label:15s} hit@1 {sum(r[k]['hit@1'] for r in rows) / n:.3f}  "
              f"hit@3 {sum(r[k]['hit@3'] for r in rows) / n:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
