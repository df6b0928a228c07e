"""Speed / memory benchmark on a synthetic 10,000-script library.

    python benchmarks/suggest_speed.py [--docs 10000] [--queries 1000] [--seed 7]

Scripts are built from the shipped domain lexicon plus chat filler, so token
statistics look like a real library. Prints index build time (wall and CPU,
cold and a rebuild in the same process), median / p99 search latency for the engine
and for rank_bm25 BM25Okapi on the same library, the speed ratio and the index's
memory (process RSS growth from the build; tracemalloc retained and build peak). Then the same with the
semantic channel (knowledge/semantic.py): a script's embedding time, search latency with the question's
vector computed by the model, and the share of questions the gate lets through.
The machine's load average is printed too: wall times on a shared box are noisy.
"""
from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from knowledge import text as T  # noqa: E402
from knowledge.engine import Doc, SuggestionIndex  # noqa: E402

FILLER = ("亲 您好 建议 可以 一般 这款 我们 需要 注意 如果 的话 之后 大概 每天 左右 效果 "
          "比较 适合 使用 记得 哦 呢 吧 ～ 。 ， 放心 帮您 马上 安排 情况 问题 时间 小时 天内 门店 线上").split()
CATEGORIES = "护肤 彩妆 防晒 会员 优惠 售后 物流 门店 喂养 纸尿裤 出行 辅食 护理 异议处理 回访".split()
EMOJI = ["😂", "🙏", "😭", "🤔", "👍", ""]


def lexicon_words() -> list[str]:
    words = []
    for line in (T.DATA_DIR / "lexicon.txt").read_text(encoding="utf-8").splitlines():
        if line.strip():
            words.append(line.split()[0])
    return words


def make_library(n: int, rng: random.Random) -> list[Doc]:
    vocab = lexicon_words()
    docs = []
    for i in range(n):
        topic = rng.sample(vocab, 3)
        body_words = [rng.choice(vocab) if rng.random() < 0.4 else rng.choice(FILLER)
                      for _ in range(rng.randint(25, 60))]
        body_words[rng.randrange(len(body_words))] = topic[0]
        docs.append(Doc(external_id=f"s{i:05d}", title=f"{topic[0]}{rng.choice(['怎么选', '用法', '处理', '说明', ''])}",
                        body="".join(body_words), category=rng.choice(CATEGORIES), tags=topic[:rng.randint(1, 3)]))
    return docs


def make_queries(n: int, rng: random.Random) -> list[str]:
    vocab = lexicon_words()
    syn_words = sorted(T._synonym_words(T.default_synonym_groups()))
    out = []
    for _ in range(n):
        parts = [rng.choice(syn_words), rng.choice(FILLER), rng.choice(vocab), rng.choice(["咋办", "怎么弄", "能退吗", "有吗"])]
        rng.shuffle(parts)
        out.append(" ".join(parts) + rng.choice(EMOJI))
    return out


def rss_mib() -> float:
    """Resident set size of this process (Linux /proc), MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def semantic_timings(docs: list[Doc], queries: list[str], rng: random.Random) -> None:
    """The engine as the service runs it, with the semantic channel. The scripts' vectors are random unit
    vectors (their values change no cost: 10,000 real ones would take minutes to compute, which the import
    does once per script); the questions are embedded by the real model, and whether a question needs its
    vector at all (the gate) depends on the lexical scores only, so the share embedded is the real one."""
    import numpy as np

    from knowledge.semantic import DIM, Encoder, passage_text

    rss0 = rss_mib()
    encoder = Encoder()
    sample = [passage_text(d.title, d.tags, d.body) for d in docs[:200]]
    t0 = time.perf_counter()
    encoder.passages(sample)
    per_script = (time.perf_counter() - t0) / len(sample)
    vectors = np.random.default_rng(rng.randrange(2**32)).standard_normal((len(docs), DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    t0 = time.perf_counter()
    index = SuggestionIndex(docs, vectors=dict(zip((d.external_id for d in docs), vectors)), encoder=encoder)
    build = time.perf_counter() - t0
    rss = rss_mib() - rss0
    lat = []
    for q in queries:
        t = time.perf_counter()
        index.search(q, top=5)
        lat.append((time.perf_counter() - t) * 1000)
    embedded = index.semantic_used / max(index.semantic_used + index.semantic_skipped, 1)
    again = []
    for q in queries[:200]:  # the same questions again: their vectors are in the encoder's cache
        t = time.perf_counter()
        index.search(q, top=5)
        again.append((time.perf_counter() - t) * 1000)
    print(f"semantic embedding a script at import: {per_script * 1000:.1f} ms "
          f"({per_script * len(docs) / 60:.1f} min for {len(docs)} scripts, once)")
    print(f"semantic build {build:.2f} s with vectors; model + vectors RSS growth {rss:.1f} MiB")
    print(f"semantic search median {statistics.median(lat):.3f} ms   mean {statistics.fmean(lat):.3f} ms   "
          f"p90 {pct(lat, 90):.3f} ms   p99 {pct(lat, 99):.3f} ms   questions embedded {100 * embedded:.0f} %")
    print(f"semantic search, a question asked before: median {statistics.median(again):.3f} ms")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=1_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--skip-semantic", action="store_true", help="leave out the semantic channel's timings")
    args = ap.parse_args(argv)

    rng = random.Random(args.seed)
    docs = make_library(args.docs, rng)
    queries = make_queries(args.queries, rng)
    # One-off per-process loads are not part of a build: jieba's dictionary and
    # the tokenizer's log-probability table (~1 s), the pinyin table.
    T.default_tokenizer().cut("预热")
    T.pinyin_map()

    rss0 = rss_mib()
    t0, c0 = time.perf_counter(), time.process_time()
    index = SuggestionIndex(docs)
    build, build_cpu = time.perf_counter() - t0, time.process_time() - c0
    gc.collect()
    rss_index = rss_mib() - rss0

    # A rebuild in the same process (what an import triggers in every worker)
    # reuses the cached word analysis of unchanged texts.
    t0, c0 = time.perf_counter(), time.process_time()
    SuggestionIndex(docs)
    rebuild, rebuild_cpu = time.perf_counter() - t0, time.process_time() - c0

    # Memory is measured on a third build: tracemalloc slows allocation-heavy
    # code several-fold and would distort the build times above.
    del index
    tracemalloc.start()
    index = SuggestionIndex(docs)
    retained, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    for q in queries[:20]:  # warm-up
        index.search(q)
    lat = []
    for q in queries:
        t = time.perf_counter()
        index.search(q, top=5)
        lat.append((time.perf_counter() - t) * 1000)
    med, p99 = statistics.median(lat), pct(lat, 99)

    print(f"library: {len(docs)} scripts, {len(queries)} queries (seed {args.seed})")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"engine   build {build:.2f} s (cpu {build_cpu:.2f} s)   rebuild {rebuild:.2f} s (cpu {rebuild_cpu:.2f} s)")
    print(f"engine   search median {med:.3f} ms   p99 {p99:.3f} ms")
    print(f"engine   index memory: RSS growth {rss_index:.1f} MiB; tracemalloc retained {retained / 2**20:.1f} MiB, "
          f"build peak {peak / 2**20:.1f} MiB")

    if not args.skip_semantic:
        semantic_timings(docs, queries, rng)

    if not args.skip_baseline:
        import jieba
        from rank_bm25 import BM25Okapi

        jieba.setLogLevel(60)
        t0 = time.perf_counter()
        bm25 = BM25Okapi([jieba.lcut_for_search(f"{d.title} {d.body} {' '.join(d.tags)}") for d in docs])
        bbuild = time.perf_counter() - t0
        blat = []
        for q in queries[:200]:  # rank_bm25 is slow; 200 queries give a stable median
            t = time.perf_counter()
            scores = bm25.get_scores(jieba.lcut_for_search(q))
            sorted(range(len(scores)), key=lambda i: -scores[i])[:5]
            blat.append((time.perf_counter() - t) * 1000)
        bmed, bp99 = statistics.median(blat), pct(blat, 99)
        print(f"rank_bm25 build {bbuild:.2f} s   search median {bmed:.3f} ms   p99 {bp99:.3f} ms  ({len(blat)} queries)")
        print(f"speed-up (median): {bmed / med:.1f}x   (p99): {bp99 / p99:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
