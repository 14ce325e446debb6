"""Real English for the demo world's general pages: the docstrings of Python's standard library.

The demo crawl's general pages used to be generated from templates (cooking, travel, ...). A pretrained
model learns such templates in a few steps, so replaying them during DAPT protects nothing of its English,
and their perplexity says nothing about forgetting. Nothing can be downloaded here, but every install
carries a large body of edited English prose under a permissive license: the docstrings of CPython's
standard library (`Lib/*.py`, PSF License Agreement). They are read with `ast` (no module is imported),
cut into paragraphs, and only prose paragraphs are kept (at least 12 words, ending with a period, no code,
markup, URLs or e-mail addresses, at least 90% letters and spaces). Paragraphs are deduplicated exactly
(after whitespace normalization), and every paragraph that shares a word 13-gram with the reference
manual's topic pages (`pydoc_data.topics`, the real-English forgetting probe of
`evaluation/reference_text.py`) is left out, so the probe never overlaps the general pages.

Consecutive paragraphs of one module become one page (3 to 6 paragraphs), in a fixed order (files sorted
by path), so the pages are deterministic for a given Python version (the docstrings change between
CPython releases; the project pins 3.11).
"""
from __future__ import annotations

import ast
import functools
import re
import sysconfig
from pathlib import Path

NGRAM = 13  # the GPT-3 contamination n-gram, as in curation/decontam.py
_SKIP_PARTS = {"test", "tests", "idlelib", "site-packages", "lib2to3", "turtledemo", "pydoc_data", "ensurepip",
               "__phello__"}
_NOT_PROSE = re.compile(r"[{}<>=`|#*\[\]\\@$%^~]|>>>|::|https?:|www\.|\(\)|\.py\b|__")
LICENSE = "PSF License Agreement (Python Software Foundation License, version 2)"


def _is_prose(p: str) -> bool:
    return (len(p.split()) >= 12 and p.endswith(".") and p[0].isupper() and not _NOT_PROSE.search(p)
            and sum(c.isalpha() or c == " " for c in p) / len(p) > 0.9)


def _ngrams(text: str) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9']+", text.lower())
    return {tuple(words[i:i + NGRAM]) for i in range(len(words) - NGRAM + 1)}


@functools.lru_cache(maxsize=1)
def probe_ngrams() -> frozenset:
    """Word 13-grams of every reference-manual topic page (the forgetting probe's source, all of it)."""
    from pydoc_data.topics import topics

    out: set = set()
    for text in topics.values():
        out |= _ngrams(text)
    return frozenset(out)


def _module_paragraphs(path: Path) -> list[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return []
    out = []
    nodes = [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
    for node in nodes:
        doc = ast.get_docstring(node)
        if doc:
            out += [" ".join(p.split()) for p in re.split(r"\n\s*\n", doc)]
    return [p for p in out if _is_prose(p)]


@functools.lru_cache(maxsize=1)
def real_english_pages(min_paragraphs: int = 3, max_paragraphs: int = 6) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """((title, paragraphs), ...): the standard library's prose docstrings as web pages, deduplicated and
    disjoint from the real-English probe (see the module docstring)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(root.glob("*.py")) + sorted(root.glob("*/*.py"))
    probe = probe_ngrams()
    seen: set[str] = set()
    pages = []
    for path in files:
        if _SKIP_PARTS & set(path.relative_to(root).parts):
            continue
        paragraphs = []
        for p in _module_paragraphs(path):
            key = p.lower()
            if key in seen or _ngrams(p) & probe:
                continue
            seen.add(key)
            paragraphs.append(p)
        module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        for i in range(0, len(paragraphs), max_paragraphs):
            chunk = paragraphs[i:i + max_paragraphs]
            if len(chunk) >= min_paragraphs:
                pages.append((f"Notes on Python's {module} module ({i // max_paragraphs + 1})", tuple(chunk)))
    return tuple(pages)


def stats() -> dict:
    """How much text the pages hold (for the README and the crawl summary)."""
    pages = real_english_pages()
    words = sum(len(p.split()) for _, ps in pages for p in ps)
    return {"pages": len(pages), "paragraphs": sum(len(ps) for _, ps in pages), "words": words, "license": LICENSE}


if __name__ == "__main__":
    import json

    print(json.dumps(stats(), indent=1))
