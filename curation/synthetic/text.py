"""Small text helpers shared by the chain and the rules teacher: sentences, content words, shingles."""
from __future__ import annotations

import re

STOPWORDS = frozenset("""a an the and or but if then else of to in on at by for with from into onto over under as is
are was were be been being it its this that these those there here what which who whom whose when where why how do does did done
can could should would may might must will shall not no nor so than too very just also only about after before
again all any both each few more most other some such own same i you he she we they them their our your his her my me us
one per via up down out off above below between through during while because until against""".split())

_WORD = re.compile(r"[a-z0-9]+(?:['\-][a-z0-9]+)*")
_SENT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def content_words(text: str) -> list[str]:
    return [w for w in words(text) if w not in STOPWORDS and len(w) > 1]


_ABBREV = frozenset("e.g i.e etc vs cf approx fig no nr mr mrs ms dr st eq ca resp incl".split())


def sentences(text: str) -> list[str]:
    """Sentences of each line: cut after . ! ? before a capital, a digit or a quote, not after "e.g."-like
    abbreviations and not inside a code span."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        start = 0
        for m in _SENT.finditer(line):
            before = line[start:m.start()]
            last = before.rsplit(None, 1)[-1].rstrip(".!?").lower() if before.split() else ""
            if last in _ABBREV or before.count("`") % 2:
                continue
            if before.strip():
                out.append(before.strip())
            start = m.end()
        if line[start:].strip():
            out.append(line[start:].strip())
    return out


def shingles(text: str, n: int = 3) -> set[str]:
    w = words(text)
    if len(w) < n:
        return {" ".join(w)} if w else set()
    return {" ".join(w[i:i + n]) for i in range(len(w) - n + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def normalize(text: str) -> str:
    return " ".join(words(text))
