"""Blind baselines for multiple-choice benchmarks: rules that answer without knowing anything.

A benchmark is only evidence of learning if these rules sit at chance on it. Each rule scores
every item (so the report can put a bootstrap CI on it, like on a model):

- `shortest option`: pick the option with the fewest characters.
- `most word overlap with the question`: pick the option sharing the most content words with the
  question (the classic "the answer repeats the question's words" artefact).
- `option most alike to the others`: pick the option sharing the most words with the other
  options (Jaccard of word sets, summed). Distractors made by changing the key in one place
  each leave the key in the middle of them all; this rule finds it.
- `option never seen in post-training data`: pick the option least covered by the SFT/DPO
  texts (share of its word bigrams found there; a single-word option counts its word). If the
  distractors were the answers of *other* post-training questions, this rule finds the correct
  option by elimination.

Ties are scored by their expectation: an item where the rule cannot choose between t options,
one of them correct, scores 1/t (the mean score of breaking the tie at random), so a rule that
is blind gets exactly the chance level instead of a lucky or unlucky draw.

`blind_giveaways` says why one item is blind-passable (what a generator rejects), and
`baseline_summary` gives each rule's mean with a 95% bootstrap CI beside chance and the verdict
`above_tolerance` (mean > chance + `BLIND_TOLERANCE`), which the benchmark suite records when it
is built and its asset check enforces on generated benchmarks.
"""
from __future__ import annotations

from dataclasses import dataclass

import re
from collections.abc import Iterable

SHORTEST = "shortest option"
WORD_OVERLAP = "most word overlap with the question"
NEVER_SEEN = "option never seen in post-training data"
CENTRAL = "option most alike to the others"
BASELINES = (SHORTEST, WORD_OVERLAP, NEVER_SEEN)
# A benchmark whose blind rule beats chance by more than this (accuracy points) measures form, not knowledge.
BLIND_TOLERANCE = 0.05


@dataclass(frozen=True)
class BlindBaselineSettings:
    """The blind-baseline gate on the benchmark suite (the check blind_baselines_at_chance)."""

    tolerance: float = BLIND_TOLERANCE  # a blind rule may beat chance by this much
    split: str = "test"  # the split the rule is enforced on (the report's)

_STOPWORDS = frozenset(
    "a an the of in on at to for from by with and or is are was were be been it its this that these those "
    "what which who whom how why when where does do did has have had can should would will must not no "
    "most more usual usually likely there their they them then than into after before so as if".split())
_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _content_words(text: str) -> set[str]:
    return {w for w in _words(text) if w not in _STOPWORDS}


def _grams(words: list[str]) -> set[str]:
    return {" ".join(words[i:i + 2]) for i in range(len(words) - 1)} if len(words) > 1 else set(words)


def _pick_score(values: list[float], answer: int, best=max) -> float:
    """Expected accuracy of choosing an option with the best value, ties broken at random."""
    target = best(values)
    tied = [i for i, v in enumerate(values) if v == target]
    return 1.0 / len(tied) if answer in tied else 0.0


def _options(item: dict) -> tuple[str, list[str], int]:
    if "choices" in item:
        return item["question"], item["choices"], item["answer"]
    return item["context"], item["endings"], item["label"]  # completion items work the same way


def shortest_option(item: dict) -> float:
    _, options, answer = _options(item)
    return _pick_score([len(o.strip()) for o in options], answer, best=min)


def word_overlap(item: dict) -> float:
    question, options, answer = _options(item)
    asked = _content_words(question)
    return _pick_score([len(_content_words(o) & asked) for o in options], answer, best=max)


def most_central(options: list[str], answer: int) -> float:
    """Expected accuracy of picking the option most alike to the others (summed Jaccard of word sets)."""
    sets = [set(_words(o)) for o in options]
    sims = [round(sum(len(a & b) / len(a | b) for j, b in enumerate(sets) if j != i and a | b), 9)
            for i, a in enumerate(sets)]
    return _pick_score(sims, answer, best=max)


def central_option(item: dict) -> float:
    _, options, answer = _options(item)
    return most_central(options, answer)


class SeenIndex:
    """The word bigrams (and words) of the post-training texts, for the never-seen rule."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.grams: set[str] = set()
        self.words: set[str] = set()
        for text in texts:
            words = _words(text)
            self.words.update(words)
            self.grams.update(_grams(words))

    def seen_fraction(self, option: str) -> float:
        words = _words(option)
        if not words:
            return 0.0
        if len(words) == 1:
            return float(words[0] in self.words)
        grams = _grams(words)
        return sum(g in self.grams for g in grams) / len(grams)


def never_seen(item: dict, seen: SeenIndex) -> float:
    _, options, answer = _options(item)
    return _pick_score([seen.seen_fraction(o) for o in options], answer, best=min)


def baseline_item_scores(items: list[dict], post_training_texts: Iterable[str] | SeenIndex) -> dict[str, list[dict]]:
    """{baseline name: [{"id", "group", "acc"}]} for multiple-choice (or completion) items.

    The rows have the same shape as `evaluation.harness.evaluate_model`'s per-item rows, so the
    report treats a baseline like a model on the same items.
    """
    seen = post_training_texts if isinstance(post_training_texts, SeenIndex) else SeenIndex(post_training_texts)
    rules = {SHORTEST: shortest_option, WORD_OVERLAP: word_overlap, NEVER_SEEN: lambda i: never_seen(i, seen)}
    return {name: [{"id": str(i["id"]), "group": str(i.get("group", i["id"])), "acc": rule(i)} for i in items]
            for name, rule in rules.items()}


def post_training_texts(rows: Iterable[dict]) -> list[str]:
    """Every text of SFT (`messages`) and preference (`prompt`/`chosen`/`rejected`) rows, one per row."""
    out = []
    for row in rows:
        parts = []
        for key in ("messages", "prompt", "chosen", "rejected", "text"):
            value = row.get(key)
            if isinstance(value, list):
                parts += [m.get("content", "") for m in value if isinstance(m, dict)]
            elif isinstance(value, str):
                parts.append(value)
        out.append("\n".join(parts))
    return out


def blind_giveaways(question: str, options: list[str], answer: int, margin: float = 0.15,
                    slack_chars: int = 2) -> list[str]:
    """Why a blind rule could pick this item's key: [] for none, else reasons (in this order).

    - duplicate_options: two options are the same words (case and punctuation aside);
    - key_unique_shortest / key_unique_longest: the key is shorter (longer) than every other option
      by more than `margin` of its length and `slack_chars` characters;
    - key_unique_word_overlap: the key shares more content words with the question than any other option.
    """
    reasons = []
    norm = [" ".join(_words(o)) for o in options]
    if len(set(norm)) != len(norm):
        reasons.append("duplicate_options")
    lengths = [len(o.strip()) for o in options]
    key_len, others = lengths[answer], [n for i, n in enumerate(lengths) if i != answer]
    gap = max(slack_chars, margin * key_len)
    if others and min(others) - key_len > gap:
        reasons.append("key_unique_shortest")
    if others and key_len - max(others) > gap:
        reasons.append("key_unique_longest")
    asked = _content_words(question)
    overlap = [len(_content_words(o) & asked) for o in options]
    if overlap[answer] > max((v for i, v in enumerate(overlap) if i != answer), default=-1):
        reasons.append("key_unique_word_overlap")
    return reasons


def baseline_summary(items: list[dict], chance: float | None = None, seen: SeenIndex | Iterable[str] | None = None,
                     tolerance: float = BLIND_TOLERANCE) -> dict[str, dict]:
    """{rule: {"acc", "lo", "hi", "n", "chance", "above_tolerance"}} on multiple-choice/completion items.

    `acc` is the mean item score, lo/hi its 95% bootstrap interval (resampling the items' groups);
    the never-seen rule only when `seen` (post-training texts or their index) is given.
    `above_tolerance`: acc > chance + tolerance — the rule the benchmark check enforces (on benchmarks of at
    least `evaluation.stats.MIN_UNITS` independent `units`; a smaller one can land there by luck).
    """
    from evaluation.stats import bootstrap_ci

    if not items:
        return {}
    if chance is None:
        chance = sum(1.0 / len(_options(i)[1]) for i in items) / len(items)
    rules = {SHORTEST: shortest_option, WORD_OVERLAP: word_overlap, CENTRAL: central_option}
    if seen is not None:
        index = seen if isinstance(seen, SeenIndex) else SeenIndex(seen)
        rules[NEVER_SEEN] = lambda i: never_seen(i, index)
    groups = [str(i.get("group", i.get("id", k))) for k, i in enumerate(items)]
    out = {}
    for name, rule in rules.items():
        mean, lo, hi = bootstrap_ci([rule(i) for i in items], groups=groups)
        out[name] = {"acc": round(mean, 4), "lo": round(lo, 4), "hi": round(hi, 4), "n": len(items),
                     "units": len(set(groups)),
                     "chance": round(chance, 4), "above_tolerance": bool(mean > chance + tolerance + 1e-9)}
    return out
