"""DataTrove-style document quality filters (Gopher, C4, FineWeb, URL blocklist), each drop with a reason."""
from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence
from urllib.parse import urlsplit

# Words are runs of unicode letters/digits, with inner apostrophes or hyphens ("don't", "Öl-Filter").
_WORD_RE = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")
# Scripts written without spaces between words: each Han, kana, Hangul-less Thai/Lao/Khmer/Myanmar
# character counts as one word (the usual character-level convention for CJK quality rules),
# with runs of other letters (Latin names, numbers) as words of their own.
_UNSPACED_LANGS = frozenset({"zh", "ja", "th", "lo", "km", "my", "bo"})
_UNSPACED_CHAR = "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u0f00-\u0fff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_UNSPACED_WORD_RE = re.compile(rf"[{_UNSPACED_CHAR}]|(?:(?![{_UNSPACED_CHAR}])[^\W_])+")
_PARAGRAPH_RE = re.compile(r"\n{2,}")
_LINE_RE = re.compile(r"\n+")
_SENTENCE_END_RE = re.compile(r"[.!?…。！？]+[\"'”’)\]]*(?=\s|$)")
_CITATION_RE = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
TERMINAL_PUNCTUATION = (".", "!", "?", "…", '"', "'", "”", "’", ")", "。", "！", "？", "؟", "։", "।")

# Gopher's English stop words (Rae et al. 2021, appendix A) and, for other languages, their most
# common function words; a language without a list skips the stop-word rule rather than being
# judged by English words.
STOP_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset({"the", "be", "to", "of", "and", "that", "have", "with"}),
    "de": frozenset({"der", "die", "das", "und", "zu", "den", "ist", "mit", "von", "nicht", "ein", "eine"}),
    "fr": frozenset({"le", "la", "les", "de", "et", "à", "un", "une", "est", "que", "des", "du"}),
    "es": frozenset({"el", "la", "de", "que", "y", "en", "los", "las", "un", "es", "por", "con"}),
    "it": frozenset({"il", "la", "di", "che", "e", "un", "una", "per", "non", "con", "del", "sono"}),
    "pt": frozenset({"o", "a", "de", "que", "e", "do", "da", "em", "um", "para", "com", "não"}),
    "nl": frozenset({"de", "het", "een", "en", "van", "is", "dat", "op", "te", "in", "met", "niet"}),
    "pl": frozenset({"i", "w", "nie", "na", "się", "z", "jest", "to", "że", "do", "o", "jak"}),
    "sv": frozenset({"och", "att", "det", "som", "en", "på", "är", "av", "för", "med", "till", "den"}),
    "ru": frozenset({"и", "в", "не", "на", "что", "с", "по", "это", "как", "а", "к", "из"}),
    "zh": frozenset({"的", "是", "在", "了", "和", "有", "不", "这", "我", "们", "人", "也"}),
    "ja": frozenset({"の", "に", "は", "を", "た", "が", "で", "て", "と", "し", "れ", "さ"}),
}


def split_words(text: str, lang: str = "") -> list[str]:
    """Words of `text` by the rules of `lang`: whitespace-delimited runs, or characters for CJK/Thai."""
    if lang in _UNSPACED_LANGS:
        return _UNSPACED_WORD_RE.findall(text)
    return _WORD_RE.findall(text)


class TextView:
    """A document's text split once into words, lines and paragraphs, shared by every filter."""

    __slots__ = ("text", "lang", "_words", "_lines")

    def __init__(self, text: str, lang: str = "") -> None:
        self.text, self.lang = text, lang
        self._words: list[str] | None = None
        self._lines: list[str] | None = None

    @property
    def words(self) -> list[str]:
        if self._words is None:
            self._words = split_words(self.text, self.lang)
        return self._words

    @property
    def lines(self) -> list[str]:
        if self._lines is None:
            self._lines = self.text.splitlines()
        return self._lines


def as_view(text: "str | TextView", lang: str) -> TextView:
    return text if isinstance(text, TextView) else TextView(text, lang)


def _duplicates(elements: Sequence[str]) -> tuple[int, int]:
    """(number of repeated elements, characters in them), counting the first occurrence as original."""
    seen: set[str] = set()
    dup_elements = dup_chars = 0
    for element in elements:
        if element in seen:
            dup_elements += 1
            dup_chars += len(element)
        else:
            seen.add(element)
    return dup_elements, dup_chars


def _ngrams(words: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return list(zip(*(words[i:] for i in range(n))))


def _top_ngram_chars(words: Sequence[str], n: int) -> int:
    """Characters of the most frequent n-gram (words joined by spaces) times its count."""
    grams = Counter(zip(*(words[i:] for i in range(n))))
    if not grams:
        return 0
    gram, count = grams.most_common(1)[0]
    return (sum(map(len, gram)) + n - 1) * count


def _duplicated_ngram_chars(words: Sequence[str], ns: Sequence[int]) -> dict[int, int]:
    """Per n: characters covered by repeated n-grams, without double counting overlaps (as in Gopher/DataTrove).

    Scanning left to right, an n-gram seen before counts its characters (words without spaces) and
    the scan jumps past it. An n-gram can only repeat where its prefix of the smallest n repeats,
    so for larger n every position whose prefix occurs once is passed over without building the gram.
    """
    out = dict.fromkeys(ns, 0)
    if not ns or len(words) < min(ns):
        return out
    m = min(ns)
    prefixes = _ngrams(words, m)
    counts = Counter(prefixes)
    repeats = [counts[g] > 1 for g in prefixes]
    if not any(repeats):
        return out
    for n in ns:
        seen: set[tuple[str, ...]] = set()
        repeated = idx = 0
        last = len(words) - n
        while idx <= last:
            if not repeats[idx]:
                idx += 1
                continue
            gram = prefixes[idx] if n == m else tuple(words[idx : idx + n])
            if gram in seen:
                repeated += sum(map(len, gram))
                idx += n
            else:
                seen.add(gram)
                idx += 1
        out[n] = repeated
    return out


class DocFilter(ABC):
    """One quality rule set, in two halves so every decision is explainable from stored numbers.

    `signals(view)` measures the page (ratios, counts; -1.0 where a rule does not apply to the
    page's language); `judge(signals)` compares them with the thresholds and returns the rule that
    failed, or None. `filter(text, lang, url)` is both in one call, DataTrove-style.
    """

    name: str = "filter"

    def signals(self, view: TextView, url: str | None = None) -> dict[str, float]:
        return {}

    @abstractmethod
    def judge(self, signals: dict[str, float]) -> str | None:
        """The name of the failed rule, or None when the page passes."""

    def signal_names(self) -> tuple[str, ...]:
        """Names of the signals (fixed per configuration, so they can be table columns)."""
        return tuple(self.signals(TextView("probe text.\nsecond line", "en"), "http://probe.example/"))

    def filter(self, text: "str | TextView", lang: str, url: str | None = None) -> tuple[bool, str | None]:
        rule = self.judge(self.signals(as_view(text, lang), url))
        return (True, None) if rule is None else (False, f"{self.name}:{rule}")


@dataclass
class GopherRepetitionFilter(DocFilter):
    """Repetition rules of Gopher (Rae et al. 2021, table A1), defaults as published."""

    dup_line_frac: float = 0.3
    dup_para_frac: float = 0.3
    dup_line_char_frac: float = 0.2
    dup_para_char_frac: float = 0.2
    top_n_grams: tuple[tuple[int, float], ...] = ((2, 0.2), (3, 0.18), (4, 0.16))
    dup_n_grams: tuple[tuple[int, float], ...] = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))
    name: str = "gopher_repetition"

    def signals(self, view: TextView, url: str | None = None) -> dict[str, float]:
        text = view.text
        n_chars = max(len(text), 1)
        stripped = text.strip()
        paragraphs = _PARAGRAPH_RE.split(stripped)
        para_dups, para_chars = _duplicates(paragraphs)
        lines = _LINE_RE.split(stripped)
        line_dups, line_chars = _duplicates(lines)
        words = view.words
        out = {
            "dup_para_frac": para_dups / len(paragraphs),
            "dup_para_char_frac": para_chars / n_chars,
            "dup_line_frac": line_dups / len(lines),
            "dup_line_char_frac": line_chars / n_chars,
        }
        for n, _ in self.top_n_grams:
            out[f"top_{n}_gram_char_frac"] = _top_ngram_chars(words, n) / n_chars
        dup_chars = _duplicated_ngram_chars(words, [n for n, _ in self.dup_n_grams])
        for n, _ in self.dup_n_grams:
            out[f"dup_{n}_gram_char_frac"] = dup_chars[n] / n_chars
        return out

    def judge(self, s: dict[str, float]) -> str | None:
        for key, limit in (
            ("dup_para_frac", self.dup_para_frac),
            ("dup_para_char_frac", self.dup_para_char_frac),
            ("dup_line_frac", self.dup_line_frac),
            ("dup_line_char_frac", self.dup_line_char_frac),
        ):
            if s[key] > limit:
                return key
        for n, limit in self.top_n_grams:
            if s[f"top_{n}_gram_char_frac"] > limit:
                return f"top_{n}_gram"
        for n, limit in self.dup_n_grams:
            if s[f"dup_{n}_gram_char_frac"] > limit:
                return f"dup_{n}_gram"
        return None


@dataclass
class GopherQualityFilter(DocFilter):
    """Gopher quality heuristics (Rae et al. 2021): length, word length, symbols, bullets, stop words.

    Words are split by the page's language (characters for CJK/Thai); the mean-word-length rule
    only applies to languages written with spaces, and the stop-word rule only to languages with
    a list in `stop_words` (signal -1.0 otherwise).
    """

    min_doc_words: int = 50
    max_doc_words: int = 100_000
    min_mean_word_length_chars: float = 3.0
    max_mean_word_length_chars: float = 10.0
    max_symbol_word_ratio: float = 0.1
    max_bullet_lines_ratio: float = 0.9
    max_ellipsis_lines_ratio: float = 0.3
    min_alpha_word_ratio: float = 0.8
    min_stop_words: int = 2
    stop_words: dict[str, frozenset[str]] = field(default_factory=lambda: dict(STOP_WORDS))
    name: str = "gopher_quality"

    def signals(self, view: TextView, url: str | None = None) -> dict[str, float]:
        text, words = view.text, view.words
        n_words = max(len(words), 1)
        lines = view.lines or [""]
        stops = self.stop_words.get(view.lang)
        spaced = view.lang not in _UNSPACED_LANGS
        return {
            "n_words": float(len(words)),
            "mean_word_length": sum(map(len, words)) / n_words if spaced else -1.0,
            # Gopher: ratio to words of either "#" or ellipses, the symbols of tag lists and teasers.
            "symbol_word_ratio": max(text.count("#"), text.count("...") + text.count("…")) / n_words,
            "bullet_lines_ratio": sum(l.lstrip().startswith(("•", "-", "*", "·")) for l in lines) / len(lines),
            "ellipsis_lines_ratio": sum(l.rstrip().endswith(("...", "…")) for l in lines) / len(lines),
            "alpha_word_ratio": sum(any(c.isalpha() for c in w) for w in words) / n_words,
            "stop_words": float(sum(w.lower() in stops for w in words)) if stops else -1.0,
        }

    def judge(self, s: dict[str, float]) -> str | None:
        if s["n_words"] < self.min_doc_words:
            return "min_doc_words"
        if s["n_words"] > self.max_doc_words:
            return "max_doc_words"
        mwl = s["mean_word_length"]
        if mwl >= 0 and not self.min_mean_word_length_chars <= mwl <= self.max_mean_word_length_chars:
            return "mean_word_length"
        if s["symbol_word_ratio"] > self.max_symbol_word_ratio:
            return "symbol_word_ratio"
        if s["bullet_lines_ratio"] > self.max_bullet_lines_ratio:
            return "bullet_lines"
        if s["ellipsis_lines_ratio"] > self.max_ellipsis_lines_ratio:
            return "ellipsis_lines"
        if s["alpha_word_ratio"] < self.min_alpha_word_ratio:
            return "alpha_word_ratio"
        if s["stop_words"] >= 0 and s["stop_words"] < self.min_stop_words:
            return "stop_words"
        return None


_POLICY_SUBSTRINGS = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")


@dataclass
class C4QualityFilter(DocFilter):
    """C4's rules (Raffel et al. 2020) as a keep/drop decision; the text itself is never rewritten.

    Lines that C4 would delete (no terminal punctuation, fewer than `min_words_per_line` words,
    "javascript", policy boilerplate, over-long words) do not count towards the sentence minimum;
    "lorem ipsum" or a "{" anywhere drops the whole document, as in C4.
    The C4 paper keeps pages with >= 3 sentences; DataTrove's default is 5. We follow the paper.
    """

    min_num_sentences: int = 3
    min_words_per_line: int = 3
    max_word_length_chars: int = 1000
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True
    name: str = "c4_quality"

    def signals(self, view: TextView, url: str | None = None) -> dict[str, float]:
        text = view.text
        kept_lines = sentences = n_lines = 0
        for line in view.lines:
            line = line.strip()
            if not line:
                continue
            n_lines += 1
            words = line.split()
            if any(len(w) > self.max_word_length_chars for w in words):
                continue
            if "[" in line:
                line = _CITATION_RE.sub("", line)
            if not line.endswith(TERMINAL_PUNCTUATION) or line.endswith(("...", "…")):
                continue
            # A CJK/Thai line has no spaces: count its words by the language's rule.
            n_line_words = len(words) if view.lang not in _UNSPACED_LANGS else len(split_words(line, view.lang))
            if n_line_words < self.min_words_per_line:
                continue
            lower = line.lower()
            if self.filter_javascript and "javascript" in lower:
                continue
            if self.filter_policy and any(p in lower for p in _POLICY_SUBSTRINGS):
                continue
            kept_lines += 1
            sentences += max(len(_SENTENCE_END_RE.findall(line)), 1)
        return {
            "kept_line_frac": kept_lines / max(n_lines, 1),
            "sentences": float(sentences),
            "lorem_ipsum": float(self.filter_lorem_ipsum and "lorem ipsum" in text.lower()),
            "curly_bracket": float(self.filter_curly_bracket and "{" in text),
        }

    def judge(self, s: dict[str, float]) -> str | None:
        if s["lorem_ipsum"]:
            return "lorem_ipsum"
        if s["curly_bracket"]:
            return "curly_bracket"
        if s["sentences"] < self.min_num_sentences:
            return "too_few_sentences"
        return None


@dataclass
class FineWebQualityFilter(DocFilter):
    """FineWeb's three custom rules (Penedo et al. 2024) plus its list-like newline ratio, defaults as published."""

    line_punct_thr: float = 0.12
    line_punct_exclude_zero: bool = False
    short_line_thr: float = 0.67
    short_line_length_chars: int = 30
    char_duplicates_ratio: float = 0.01
    new_line_ratio: float = 0.3
    name: str = "fineweb_quality"

    def signals(self, view: TextView, url: str | None = None) -> dict[str, float]:
        text = view.text
        lines = [l for l in text.split("\n") if l.strip()]
        n = max(len(lines), 1)
        return {
            "n_lines": float(len(lines)),
            "line_punct_ratio": sum(l.rstrip().endswith(TERMINAL_PUNCTUATION) for l in lines) / n,
            "short_line_ratio": sum(len(l) <= self.short_line_length_chars for l in lines) / n,
            "char_dup_ratio": _duplicates(lines)[1] / max(len(text) - text.count("\n"), 1),
            "new_line_ratio": text.count("\n") / max(len(view.words), 1),
        }

    def judge(self, s: dict[str, float]) -> str | None:
        if not s["n_lines"]:
            return "empty"
        ratio = s["line_punct_ratio"]
        if ratio < self.line_punct_thr and not (ratio == 0 and self.line_punct_exclude_zero):
            return "line_punct_ratio"
        if s["short_line_ratio"] > self.short_line_thr:
            return "short_line_ratio"
        if s["char_dup_ratio"] > self.char_duplicates_ratio:
            return "char_dup_ratio"
        if s["new_line_ratio"] > self.new_line_ratio:
            return "new_line_ratio"
        return None


_URL_TOKEN_RE = re.compile(r"[a-z0-9]+")


@dataclass
class URLBlocklistFilter(DocFilter):
    """Drop pages whose host is (a subdomain of) a blocked domain or whose URL has a blocked word as a token.

    Words match whole URL tokens, not substrings, so "sex" does not block "essex.ac.uk".
    Signals: `domain` and `word` are 1.0 when the URL matched the domain or word list.
    """

    blocked_domains: Iterable[str] = ()
    blocked_words: Iterable[str] = ()
    name: str = "url_blocklist"

    def __post_init__(self) -> None:
        self.blocked_domains = frozenset(d.lower().strip(".") for d in self.blocked_domains)
        self.blocked_words = frozenset(w.lower() for w in self.blocked_words)

    def signals(self, view: TextView, url: str | None = None) -> dict[str, float]:
        if not url:
            return {"domain": 0.0, "word": 0.0}
        host = (urlsplit(url).hostname or "").lower().strip(".")
        labels = host.split(".")
        domain = any(".".join(labels[i:]) in self.blocked_domains for i in range(len(labels)))
        word = bool(self.blocked_words and set(_URL_TOKEN_RE.findall(url.lower())) & self.blocked_words)
        return {"domain": float(domain), "word": float(word)}

    def judge(self, s: dict[str, float]) -> str | None:
        return "domain" if s["domain"] else "word" if s["word"] else None


FILTER_TYPES: dict[str, type[DocFilter]] = {
    "gopher_repetition": GopherRepetitionFilter,
    "gopher_quality": GopherQualityFilter,
    "c4_quality": C4QualityFilter,
    "fineweb_quality": FineWebQualityFilter,
}


def default_filters(thresholds: dict[str, dict] | None = None) -> tuple[DocFilter, ...]:
    """The standard cascade, cheapest-to-explain first: repetition, then quality, C4, FineWeb.

    `thresholds` overrides published defaults per filter, e.g.
    {"gopher_quality": {"min_doc_words": 30}, "c4_quality": {"min_num_sentences": 5}};
    an unknown filter or field raises, so a typo never silently keeps the default.
    """
    thresholds = dict(thresholds or {})
    unknown = set(thresholds) - set(FILTER_TYPES)
    if unknown:
        raise ValueError(f"unknown filter(s) {sorted(unknown)}; known: {sorted(FILTER_TYPES)}")
    out = []
    for name, cls in FILTER_TYPES.items():
        fields = {f for f in cls.__dataclass_fields__ if f != "name"}
        overrides = dict(thresholds.get(name, {}))
        bad = set(overrides) - fields
        if bad:
            raise ValueError(f"{name} has no threshold(s) {sorted(bad)}; it has {sorted(fields)}")
        out.append(cls(**overrides))
    return tuple(out)


def filter_signals(
    text: "str | TextView", lang: str, url: str | None, filters: Iterable[DocFilter]
) -> tuple[str | None, dict[str, float]]:
    """Every filter's signals, keyed "<filter>.<signal>", and the first failing "<filter>:<rule>" (or None).

    All signals are measured even after a drop, so a stored row shows how every rule judged the page.
    """
    view = as_view(text, lang)
    reason: str | None = None
    out: dict[str, float] = {}
    for doc_filter in filters:
        s = doc_filter.signals(view, url)
        for key, value in s.items():
            out[f"{doc_filter.name}.{key}"] = float(value)
        if reason is None:
            rule = doc_filter.judge(s)
            if rule is not None:
                reason = f"{doc_filter.name}:{rule}"
    return reason, out


def apply_filters(
    text: "str | TextView", lang: str, url: str | None, filters: Iterable[DocFilter]
) -> tuple[bool, str | None]:
    """Run `filters` in order and stop at the first that drops; returns (keep, reason of that drop)."""
    view = as_view(text, lang)
    for doc_filter in filters:
        keep, reason = doc_filter.filter(view, lang, url)
        if not keep:
            return False, reason or doc_filter.name
    return True, None
