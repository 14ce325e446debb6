"""The independent grounding test: is an answer supported by its chunk? Used by the blocking asset check.

Deliberately unlike the generator and the judge (which see prompts and rubric scores): a plain
lexical containment test. Markdown in the chunk or the answer is read as its words (a link as its
text, not its URL). The answer's content words (lowercased, stop words dropped, digits kept, a crude
suffix stemmer so "bearings"/"bearing" and "replaced"/"replace" match) are looked up in the
chunk, and so are the pairs of consecutive content words (which catch "worn spindle bearings"
against a chunk about "worn rotor bearings"). The support score is the mean of the two shares
(the word share alone for answers of fewer than three content words); an answer is supported
at `SUPPORT_THRESHOLD` or more. A leading option letter ("B) ...") and a leading "Yes," / "No," are
ignored (polarity is the chain's judge's business; this test asks whether the words come from the
chunk). Paraphrases with new vocabulary score lower: the test errs toward rejecting, which is what
a gate should do.
It is weak on very short answers (one or two content words), which any chunk of a similar
document may contain.
"""
from __future__ import annotations

import re

SUPPORT_THRESHOLD = 0.75  # mean of the shares of the answer's content words and word pairs found in the chunk

_STOP = frozenset("""a an the and or but of to in on at by for with from as is are was were be been it its this that
these those there what which who when where why how do does did can could should would may might must will not no
so than too very just also only about into over under out up your you they them their our we i he she his her one
first then answer option correct""".split())
_TOKEN = re.compile(r"[a-z0-9]+")


def _stem(w: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(w) > len(suffix) + 2 and w.endswith(suffix):
            return w[: -len(suffix)]
    return w


_MD = [(re.compile(r"!?\[([^\]]*)\]\([^)]*\)"), r"\1"),     # [text](target), ![alt](image): the text
       (re.compile(r"\[([^\]]*)\]\[[^\]]*\]"), r"\1"),         # [text][ref]
       (re.compile(r"^\s{0,3}\[[^\]]+\]:\s+\S+.*$", re.M), ""),   # [ref]: target
       (re.compile(r"<[^<>\s][^<>]*>"), " ")]                    # tags and <autolinks>


def _read(text: str) -> str:
    """Markdown read as its words: outside code spans, link and image targets, reference definitions and tags
    are left out (code spans, tables and emphasis need nothing more: their marks are not words)."""
    parts = re.split(r"(`+[^`]*`+)", text)
    for i in range(0, len(parts), 2):
        for pat, repl in _MD:
            parts[i] = pat.sub(repl, parts[i])
    return "".join(parts)


def _terms(text: str) -> list[str]:
    # digits count even alone: "Set it to 0" is supported by a chunk that says 0, not by one that says 1
    return [_stem(t) for t in _TOKEN.findall(_read(text).lower()) if t not in _STOP and (len(t) > 1 or t.isdigit())]


def answer_supported_by_chunk(answer: str, chunk_text: str, threshold: float = SUPPORT_THRESHOLD,
                              question: str = "") -> tuple[bool, float]:
    """(supported, support score in [0, 1]).

    With `question`, the words the answer merely repeats from the question are left out when at
    least two others remain: "The most likely cause of spindle overheating is a failed chiller"
    is judged on "failed chiller", the part that needs support.
    """
    answer = re.sub(r"^\s*\(?[A-Da-d][\).:]\s+", "", answer or "")
    answer = re.sub(r"^\s*(?:yes|no)\b[\s,.!;:-]*", "", answer, flags=re.I)  # the reply to a yes/no question
    all_terms = _terms(answer)
    terms, checked = all_terms, None
    if question:
        asked = set(_terms(question))
        new = [t for t in all_terms if t not in asked]
        if len(new) >= 2:
            terms, checked = new, set(new)
    if not terms:
        return False, 0.0
    chunk_terms = _terms(chunk_text)
    vocab = set(chunk_terms)
    share = sum(t in vocab for t in terms) / len(terms)
    if len(terms) >= 3:
        pairs = set(zip(chunk_terms, chunk_terms[1:]))
        # Pairs are read in the answer's own word order; with a question, those holding a new word.
        answer_pairs = [p for p in zip(all_terms, all_terms[1:]) if checked is None or set(p) & checked]
        share = (share + sum(p in pairs for p in answer_pairs) / len(answer_pairs)) / 2
    return share >= threshold, round(share, 4)
