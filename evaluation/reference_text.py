"""Real human-written English that ships with Python: a forgetting probe that needs no download.

The demo world's general web pages are generated from templates, so a pretrained model's
perplexity on them *falls* during DAPT (it learns the templates) and says nothing about what it
forgets. CPython ships the reference manual's topic pages (`pydoc_data.topics`, the text
`help("assert")` shows): hundreds of kilobytes of edited technical English, never part of any
Modelworks training set. Its perplexity before and after a stage shows whether the stage cost
the model general language ability. It is technical prose about Python, not a broad web sample:
a probe of forgetting, not a benchmark; name an lm-eval task for a broader one.

Every forgetting probe (these pages, and the held-out general web pages) is split in halves by a
seeded hash of the document id: `validation` (where `pipelines.tune` weighs forgetting) and `test`
(the report's perplexity).
"""
from __future__ import annotations

PROBE_VALIDATION_FRACTION = 0.5
PROBE_SPLIT_SEED = 1


def in_probe_split(ids: list[str], split: str):
    """A boolean mask over `ids`: True for the documents in `split` ("validation" or "test") of a probe."""
    from curation.domain import holdout_mask

    in_validation = holdout_mask(ids, PROBE_VALIDATION_FRACTION, seed=PROBE_SPLIT_SEED)
    return in_validation if split == "validation" else ~in_validation


def python_reference_docs(n_docs: int = 40, max_chars: int = 2000,
                          split: str | None = None) -> tuple[list[str], list[str]]:
    """(ids, texts): the first `max_chars` of the first `n_docs` topic pages (sorted by name) that hold at
    least 600 characters, cut at a paragraph boundary; with `split`, only that half of them."""
    from pydoc_data.topics import topics

    ids, texts = [], []
    for name in sorted(topics):
        text = topics[name].strip()
        if len(text) < 600:
            continue
        if len(text) > max_chars:
            cut = text.rfind("\n\n", 0, max_chars)
            text = text[:cut if cut > max_chars // 2 else max_chars]
        ids.append(f"pydoc:{name}")
        texts.append(text)
        if len(ids) == n_docs:
            break
    if split is not None:
        keep = in_probe_split(ids, split)
        ids, texts = [i for i, k in zip(ids, keep) if k], [t for t, k in zip(texts, keep) if k]
    return ids, texts
