"""Hit rates of ranked suggestions against the scripts wanted: what `flask knowledge evaluate` prints and
what the benchmarks (benchmarks/suggest_*.py) score with. Pure Python, no database."""
from __future__ import annotations


def ranks(ranked_lists: list[list[str]], relevant: list[list[str]]) -> list[int | None]:
    """0-based rank of the first relevant id per query (None: not in the list)."""
    out = []
    for ranked, rel in zip(ranked_lists, relevant):
        rel = set(rel)
        out.append(next((i for i, eid in enumerate(ranked) if eid in rel), None))
    return out


def metrics(first: list[int | None]) -> dict[str, float]:
    """hit@1, hit@3 and MRR of the ranks `ranks` returned (a query whose script is not listed counts 0)."""
    n = max(len(first), 1)
    return {"hit@1": sum(r == 0 for r in first) / n,
            "hit@3": sum(r is not None and r < 3 for r in first) / n,
            "mrr": sum(1.0 / (r + 1) for r in first if r is not None) / n}
