"""Text-overlap metrics for generated answers: exact match, token F1 and ROUGE-L, offline."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalization: lower case, drop punctuation and articles, squeeze whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _references(references: str | Iterable[str]) -> list[str]:
    if isinstance(references, str):
        return [references]
    return [r for r in references if r is not None]


def exact_match(prediction: str, references: str | Iterable[str]) -> float:
    """1.0 if the normalized prediction equals any normalized reference, else 0.0."""
    predicted = normalize_answer(prediction)
    return float(any(predicted == normalize_answer(r) for r in _references(references)))


def _token_f1(prediction_tokens: list[str], reference_tokens: list[str]) -> float:
    if not prediction_tokens or not reference_tokens:
        # SQuAD convention: two empty answers agree, one empty answer scores zero.
        return float(prediction_tokens == reference_tokens)
    common = Counter(prediction_tokens) & Counter(reference_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(prediction_tokens)
    recall = overlap / len(reference_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, references: str | Iterable[str]) -> float:
    """SQuAD token-level F1 of the normalized texts, the best over all references."""
    predicted = normalize_answer(prediction).split()
    scores = [_token_f1(predicted, normalize_answer(r).split()) for r in _references(references)]
    return max(scores, default=0.0)


def _lcs_length(a: list[str], b: list[str]) -> int:
    # One row of the classic dynamic programme; O(len(a) * len(b)) time, O(len(b)) memory.
    previous = [0] * (len(b) + 1)
    for token_a in a:
        current = [0]
        for j, token_b in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if token_a == token_b else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def _rouge_tokens(text: str) -> list[str]:
    # The rouge_score tokenizer: lower case, runs of [a-z0-9] only.
    return re.findall(r"[a-z0-9]+", text.lower())


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (beta = 1) from the longest common token subsequence."""
    predicted, expected = _rouge_tokens(prediction), _rouge_tokens(reference)
    if not predicted or not expected:
        return 0.0
    lcs = _lcs_length(predicted, expected)
    if lcs == 0:
        return 0.0
    precision = lcs / len(predicted)
    recall = lcs / len(expected)
    return 2 * precision * recall / (precision + recall)
