"""Text normalisation, tokenisation and synonym handling for reply-script search.

Everything here is offline: the jieba dictionary, the domain lexicon, the stop
words and the synonym groups all ship with the package.
"""
from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path

import jieba

DATA_DIR = Path(__file__).parent / "data"
MAX_QUERY_CHARS = 500

# Longest phrase the substring scanner looks for; longer synonym variants are
# still matched when jieba happens to emit them as one token.
MAX_PHRASE_CHARS = 8

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# Anything that is not a CJK ideograph, ASCII letter/digit or a few joiners
# (".", "+", "%" keep things like "a醇", "spf50+" and "0.5%" intact) is noise:
# emoji, punctuation, kaomoji, symbols. It becomes a space so words on either
# side are not glued together.
_NOISE_RE = re.compile(rf"[^{_CJK}a-z0-9.+%]+")
_CJK_RUN_RE = re.compile(rf"[{_CJK}]+")
_ASCII_RUN_RE = re.compile(r"[a-z0-9]+")


def normalize(text: str, *, limit: int | None = None) -> str:
    """NFKC (full-width -> half-width), lower-case, emoji/punctuation -> space."""
    text = unicodedata.normalize("NFKC", text or "")
    if limit is not None:
        text = text[:limit]
    text = text.lower()
    text = _NOISE_RE.sub(" ", text)
    # Joiners only mean something attached to a word ("0.5", "50+", "2%");
    # on their own they are punctuation.
    text = re.sub(r"(?<![a-z0-9])\.|\.(?![a-z0-9])", " ", text)
    text = re.sub(r"(?<![a-z0-9%+])[+%]+", " ", text)
    return " ".join(text.split())


def normalize_query(text: str) -> str:
    """Normalise a customer message, cutting very long pastes instead of failing."""
    return normalize(text, limit=MAX_QUERY_CHARS)


def _read_lines(name: str) -> list[str]:
    path = DATA_DIR / name
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def load_stopwords() -> frozenset[str]:
    return frozenset(normalize(w) for w in _read_lines("stopwords.txt"))


def load_synonyms(name: str = "synonyms.tsv") -> dict[str, list[str]]:
    """``canonical<TAB>variant variant ...`` (one group a line)."""
    groups: dict[str, list[str]] = {}
    for line in _read_lines(name):
        head, _, rest = line.partition("\t")
        canon = normalize(head)
        variants = [normalize(v) for v in re.split(r"[\s,，]+", rest) if v.strip()]
        if canon:
            groups.setdefault(canon, []).extend(v for v in variants if v and v != canon)
    return groups


class SynonymMap:
    """Maps colloquial variants to a canonical library word.

    Both documents and queries are passed through the same map, so a query
    saying 尿不湿 and a script saying 纸尿裤 meet on the shared canonical term
    without either side having to contain the other's wording.
    """

    def __init__(self, groups: Mapping[str, Iterable[str]]):
        self.canon: dict[str, set[str]] = {}
        for head, variants in groups.items():
            head = normalize(head)
            if not head:
                continue
            for v in [head, *variants]:
                v = normalize(v)
                if v:
                    self.canon.setdefault(v, set()).add(head)
        # Phrases for the substring scan: single characters are too ambiguous
        # to match inside arbitrary text, they only count as whole tokens.
        self.phrases = {p for p in self.canon if 2 <= len(p) <= MAX_PHRASE_CHARS}
        self._sorted = {k: tuple(sorted(v)) for k, v in self.canon.items()}

    def canonical(self, term: str) -> tuple[str, ...]:
        """Canonical heads of ``term`` in a fixed (sorted) order, so scores never
        depend on set iteration order (PYTHONHASHSEED)."""
        return self._sorted.get(term, ())

    def words(self) -> set[str]:
        return set(self.canon)


def scan_phrases(text: str, phrases: PhraseSet) -> list[str]:
    """All known phrases occurring anywhere in ``text`` (overlaps allowed).

    jieba may cut 拉粑粑 as 拉/粑粑 or glue 洗面乃用 together; a direct substring
    scan finds the colloquial phrase regardless of how the segmenter chose.
    """
    found = []
    n = len(text)
    prefixes, words, max_len = phrases.prefixes, phrases.words, phrases.max_len
    for i in range(n - 1):
        # Most positions start no phrase: one set lookup rejects them.
        if text[i:i + 2] not in prefixes:
            continue
        for j in range(i + 2, min(n, i + max_len) + 1):
            s = text[i:j]
            if s in words:
                found.append(s)
    return found


class PhraseSet:
    """Phrases (2..MAX_PHRASE_CHARS chars) plus their two-char prefixes for a fast scan."""

    def __init__(self, words: Iterable[str]):
        self.words = frozenset(w for w in words if 2 <= len(w) <= MAX_PHRASE_CHARS)
        self.prefixes = frozenset(w[:2] for w in self.words)
        self.max_len = max((len(w) for w in self.words), default=2)

    def __contains__(self, word: str) -> bool:
        return word in self.words


def _userdict(path: Path):
    """(word, frequency or None) per line of a jieba user dictionary, read as jieba's load_userdict reads one:
    `word [frequency] [tag]`; a BOM and blank lines are skipped."""
    for line in path.read_text(encoding="utf-8").lstrip("\ufeff").splitlines():
        if line.strip():
            word, freq, _tag = jieba.re_userdict.match(line.strip()).groups()
            yield word.strip(), int(freq) if freq else None


class Tokenizer:
    """jieba's search-mode cut with the shipped domain lexicon, on a private dictionary.

    The cut is jieba-rs's (the `rjieba` binding): jieba's algorithm and dictionary, about 5x faster than the
    pure-Python cut it replaced and 12x faster than Python jieba's own. Private: our vocabulary never leaks into
    (or is changed by) other code in the process that uses global jieba. Words are added before the tokenizer is
    shared (`default_tokenizer` does it under its lock): jieba-rs refuses a change while another thread cuts.
    """

    def __init__(self, extra_words: Iterable[str] = ()):
        import rjieba

        self._rs = rjieba.Jieba()
        self._added: list[tuple[str, int]] = []  # in order: what the Python reference dictionary adds too
        self._reference: jieba.Tokenizer | None = None
        for word, freq in _userdict(DATA_DIR / "lexicon.txt"):
            self._add(word, freq)
        for w in extra_words:
            w = normalize(w)
            if len(w) >= 2:
                self._add(w, 2000)

    def _add(self, word: str, freq: int | None) -> None:
        if freq is None:  # as load_userdict: the frequency that makes the word cut as one
            freq = self._rs.suggest_freq(word)
        self._rs.add_word(word, freq, None)
        self._added.append((word, freq))
        self._reference = None

    def add_words(self, words: Iterable[str]) -> None:
        # Sorted, and only words the dictionary does not hold as words (a prefix of a longer word is not one):
        # the result must not depend on set order (hash seed).
        for w in sorted({normalize(w) for w in words}):
            if len(w) >= 2 and not self._rs.has_word(w):
                self._add(w, 2000)

    def is_word(self, word: str) -> bool:
        """Whether ``word`` is a dictionary word (jieba's or ours; a mere prefix of one is not)."""
        return self._rs.has_word(word)

    def cut(self, normalized: str) -> list[str]:
        """Search-mode cut of already-normalised text, dropping whitespace: the tokens of
        ``jieba.Tokenizer.cut_for_search(text, HMM=False)`` on the same dictionary (tests compare them).
        HMM new-word discovery is off: its guesses on chat text are mostly noise; unknown words are still
        covered by the character channels."""
        return [t for t in self._rs.cut_for_search(normalized, False) if t.strip()]

    def cut_reference(self, normalized: str) -> list[str]:
        """Python jieba's own search-mode cut on the same dictionary (slow, and loads a second dictionary: for
        tests)."""
        return [t for t in self._python().cut_for_search(normalized, HMM=False) if t.strip()]

    def freq(self, word: str) -> int:
        """The dictionary's frequency of ``word`` (0: no word), from the Python dictionary (loads it: for
        benchmarks and tests)."""
        return self._python().FREQ.get(word) or 0

    def _python(self) -> jieba.Tokenizer:
        if self._reference is None:
            reference = jieba.Tokenizer()
            reference.initialize()
            for word, freq in self._added:
                old = reference.FREQ.get(word) or 0
                reference.add_word(word, freq=freq)
                reference.total -= old  # jieba-rs replaces a word's frequency; Python jieba would count both
            self._reference = reference
        return self._reference


_default_lock = threading.Lock()
_default_tokenizer: Tokenizer | None = None
_default_synonyms: dict[str, list[str]] | None = None
_default_stopwords: frozenset[str] | None = None


def default_tokenizer() -> Tokenizer:
    """Process-wide tokenizer: loading the dictionary costs a few tenths of a second, so do it once."""
    global _default_tokenizer
    with _default_lock:
        if _default_tokenizer is None:
            tok = Tokenizer()
            # Synonym variants become words so jieba does not split 尿不湿 into 尿/不湿.
            tok.add_words(_synonym_words(default_synonym_groups()))
            tok.add_words(_synonym_words(default_colloquial_groups()))
            tok.add_words(_synonym_words(default_vertical_groups()))
            _default_tokenizer = tok
        return _default_tokenizer


def default_synonym_groups() -> dict[str, list[str]]:
    """synonyms.tsv: the domain groups (retail, maternal & baby, beauty)."""
    global _default_synonyms
    if _default_synonyms is None:
        _default_synonyms = load_synonyms()
    return _default_synonyms


_default_colloquial: dict[str, list[str]] | None = None
_default_verticals: dict[str, list[str]] | None = None
_default_lexicon: frozenset[str] | None = None


def default_colloquial_groups() -> dict[str, list[str]]:
    """colloquial.tsv: domain-independent concept groups of customer chat
    (price, returns, faults, delivery, time, quantity ...), for any store."""
    global _default_colloquial
    if _default_colloquial is None:
        _default_colloquial = load_synonyms("colloquial.tsv")
    return _default_colloquial


def default_vertical_groups() -> dict[str, list[str]]:
    """verticals/*.tsv: domain groups of the retail verticals beyond the ones in
    synonyms.tsv (jewellery, furniture, pharmacy, apparel ...), one file a vertical,
    merged. They are always on: a group whose words a store's library never uses
    cannot change that store's ranking."""
    global _default_verticals
    if _default_verticals is None:
        merged: dict[str, list[str]] = {}
        for path in sorted((DATA_DIR / "verticals").glob("*.tsv")):
            for head, variants in load_synonyms(f"verticals/{path.name}").items():
                merged.setdefault(head, []).extend(variants)
        _default_verticals = merged
    return _default_verticals


def default_lexicon() -> frozenset[str]:
    """Words of the shipped lexicon (lexicon.txt), normalised."""
    global _default_lexicon
    if _default_lexicon is None:
        words = (normalize(line.split()[0]) for line in _read_lines("lexicon.txt"))
        _default_lexicon = frozenset(w for w in words if len(w) >= 2)
    return _default_lexicon


def _synonym_words(groups: Mapping[str, Iterable[str]]) -> set[str]:
    words = set()
    for head, variants in groups.items():
        words.add(head)
        words.update(variants)
    return words


def default_stopwords() -> frozenset[str]:
    global _default_stopwords
    if _default_stopwords is None:
        _default_stopwords = load_stopwords()
    return _default_stopwords


def char_ngrams(normalized: str, stop: frozenset[str] = frozenset(), n: int = 2) -> list[str]:
    """Character n-grams (n = 1 or 2) within CJK runs plus whole ASCII words.

    Bigrams survive typos and segmentation errors (洗面乃 still shares 洗面 with
    洗面奶) and need no dictionary, so they are a robust second channel.
    """
    grams: list[str] = []
    for run in _CJK_RUN_RE.findall(normalized):
        if len(run) < n:
            continue
        for i in range(len(run) - n + 1):
            g = run[i:i + n]
            if g not in stop:
                grams.append(g)
    grams.extend(w for w in _ASCII_RUN_RE.findall(normalized) if w not in stop)
    return grams


# Fuzzy-pinyin folding as used by Chinese IMEs: phone typos substitute a
# character with the same or a near sound (洗面乃/奶, 毛空/孔, 防嗮/晒).
_FUZZY_INITIALS = (("zh", "z"), ("ch", "c"), ("sh", "s"))
_FUZZY_FINALS = (("ang", "an"), ("eng", "en"), ("ing", "in"))


def _fold_syllable(syl: str) -> str:
    syl = "".join(c for c in unicodedata.normalize("NFD", syl) if not unicodedata.combining(c))
    syl = syl.replace("ü", "v")
    for a, b in _FUZZY_INITIALS:
        if syl.startswith(a):
            syl = b + syl[len(a):]
            break
    if syl.startswith("l"):
        syl = "n" + syl[1:]
    for a, b in _FUZZY_FINALS:
        if syl.endswith(a):
            syl = syl[: -len(a)] + b
            break
    return syl


_pinyin_lock = threading.Lock()
_pinyin_map: dict[str, str] | None = None


def pinyin_map() -> dict[str, str]:
    """char -> folded syllable of its most common reading; {} without pypinyin."""
    global _pinyin_map
    with _pinyin_lock:
        if _pinyin_map is None:
            try:
                from pypinyin.pinyin_dict import pinyin_dict
            except ImportError:
                _pinyin_map = {}
            else:
                _pinyin_map = {chr(cp): _fold_syllable(readings.split(",")[0])
                               for cp, readings in pinyin_dict.items()}
        return _pinyin_map


def pinyin_key(bigram: str, pm: Mapping[str, str] | None = None) -> str | None:
    """The fuzzy-pinyin term of a two-character CJK bigram (None if it has none)."""
    if len(bigram) != 2:
        return None
    if pm is None:
        pm = pinyin_map()
    a, b = pm.get(bigram[0]), pm.get(bigram[1])
    return f"{a}_{b}" if a and b else None


def pinyin_bigrams(normalized: str, stop: frozenset[str] = frozenset()) -> list[str]:
    """Bigrams of fuzzy syllables within CJK runs: a homophone-tolerant channel."""
    pm = pinyin_map()
    grams: list[str] = []
    for run in _CJK_RUN_RE.findall(normalized):
        for i in range(len(run) - 1):
            pair = run[i:i + 2]
            key = None if pair in stop else pinyin_key(pair, pm)
            if key:
                grams.append(key)
    return grams


# Numbers with units carry meaning a word index cannot see: "163 一百斤" is a
# size question, "6个月" a baby's age. Each recognised quantity emits a
# domain-independent measure word, on scripts and questions alike (a script's
# "165cm" meets a customer's "163": both say 身高).
_NUM = r"(?:\d+(?:\.\d+)?|[零一二两三四五六七八九十百半几]+)"
_UNIT_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?:\d{2,3}\s*(?:cm|厘米|公分))|(?:[1一]米[4-9五六七八九]\d?)"
                r"|(?:(?:我|身高|个子|高)\s*1[4-9]\d(?!\d))"), "身高"),
    (re.compile(rf"{_NUM}\s*(?:斤|kg|公斤|千克)"), "体重"),
    (re.compile(rf"{_NUM}\s*(?:个多月|个月|月龄|月大)"), "月龄"),
    (re.compile(rf"{_NUM}\s*(?:周岁|岁)"), "年龄"),
    (re.compile(rf"{_NUM}\s*(?:ml|毫升|升)(?![a-z])"), "容量"),
)


def unit_terms(normalized: str) -> list[str]:
    """Measure words (身高, 体重, 月龄, 年龄, 容量) for the quantities in a normalised text."""
    return [term for pattern, term in _UNIT_PATTERNS if pattern.search(normalized)]


# Latin pinyin typed instead of characters ("fang lan guang", "meitong",
# "tui huo"): split into toneless syllables so they can be matched, folded
# like the fuzzy-pinyin channel, against the pinyin of words the library uses.
_LATIN_RUN_RE = re.compile(r"[a-z]+(?: [a-z]+)*")
_MAX_SYLLABLE = 6  # zhuang, chuang, shuang


_syllables: frozenset[str] | None = None


def pinyin_syllables() -> frozenset[str]:
    """Every toneless syllable pypinyin knows ("ü" folded to "u"); empty without pypinyin."""
    global _syllables
    with _pinyin_lock:
        if _syllables is None:
            try:
                from pypinyin.pinyin_dict import pinyin_dict
            except ImportError:
                _syllables = frozenset()
            else:
                out = set()
                for readings in pinyin_dict.values():
                    for r in readings.split(","):
                        s = "".join(c for c in unicodedata.normalize("NFD", r) if not unicodedata.combining(c))
                        if s.isascii() and s.isalpha():
                            out.add(s)
                _syllables = frozenset(out)
        return _syllables


def split_syllables(word: str, syllables: frozenset[str] | None = None) -> list[str] | None:
    """``word`` as the fewest pinyin syllables ("meitong" -> [mei, tong]); None if it is not pinyin."""
    syl = pinyin_syllables() if syllables is None else syllables
    n = len(word)
    best: list[list[str] | None] = [None] * (n + 1)
    best[0] = []
    for i in range(n):
        if best[i] is None:
            continue
        for j in range(i + 1, min(n, i + _MAX_SYLLABLE) + 1):
            piece = word[i:j]
            if piece in syl and (best[j] is None or len(best[i]) + 1 < len(best[j])):
                best[j] = best[i] + [piece]
    return best[n]


def latin_pinyin_runs(normalized: str) -> list[list[str]]:
    """Runs of consecutive Latin words that all read as pinyin, as folded syllables.

    "fang lan guang的片子" -> [[fan, nan, guan]]; a non-pinyin word (ok, ipad)
    ends a run. Runs shorter than two syllables are dropped: one syllable
    matches too many words to mean anything.
    """
    syl = pinyin_syllables()
    if not syl:
        return []
    runs: list[list[str]] = []
    for span in _LATIN_RUN_RE.findall(normalized):
        current: list[str] = []
        for word in span.split(" "):
            # "v" only ever stands for "ü", which pypinyin's readings fold to "u".
            parts = split_syllables(word.replace("v", "u"), syl)
            if parts is None:
                if len(current) >= 2:
                    runs.append(current)
                current = []
                continue
            current.extend(_fold_syllable(p) for p in parts)
        if len(current) >= 2:
            runs.append(current)
    return runs


def word_pinyin_key(word: str, pm: Mapping[str, str] | None = None) -> tuple[str, ...] | None:
    """Folded syllables of a CJK word (the key ``latin_pinyin_runs`` is matched against)."""
    if pm is None:
        pm = pinyin_map()
    out = []
    for c in word:
        s = pm.get(c)
        if not s:
            return None
        out.append(s)
    return tuple(out)
