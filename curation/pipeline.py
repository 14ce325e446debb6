"""Curate one WARC shard: read, extract, identify language, filter, redact PII; kept and dropped tables."""
from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import pyarrow as pa

from curation.extract import extract_main_text
from curation.filters import DocFilter, URLBlocklistFilter, apply_filters, default_filters, split_words
from curation.langid import detect_language
from curation.pii import redact_pii
from curation.warc import DEFAULT_MAX_PAGE_BYTES, ReadStats, iter_warc_documents

KEPT_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("url", pa.string()),
        ("shard", pa.string()),
        ("text", pa.string()),
        ("lang", pa.string()),
        ("lang_score", pa.float64()),
        ("n_words", pa.int64()),
        ("pii_count", pa.int64()),
    ]
)
DROPPED_SCHEMA = KEPT_SCHEMA.append(pa.field("drop_reason", pa.string()))
STAGES = ("read", "extract", "langid", "filter", "pii")


@dataclass
class CurationConfig:
    """Per-shard curation settings; `filters` run in order after language id."""

    languages: tuple[str, ...] = ("en",)
    min_lang_score: float = 0.65
    max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES
    filters: tuple[DocFilter, ...] = field(default_factory=default_filters)
    blocked_domains: tuple[str, ...] = ()
    blocked_url_words: tuple[str, ...] = ()


@dataclass
class CurationResult:
    kept: pa.Table
    dropped: pa.Table
    stats: dict


def document_id(record_id: str, url: str) -> str:
    """sha1 hex of the WARC-Record-ID (unique per capture by the WARC spec); of the URL if there is none."""
    return hashlib.sha1((record_id or url).encode("utf-8")).hexdigest()


def _columns(schema: pa.Schema) -> dict[str, list]:
    return {name: [] for name in schema.names}


def curate_shard(warc_path: str | os.PathLike, config: CurationConfig, shard: str) -> CurationResult:
    """Stream `warc_path` through extract -> langid -> filters -> PII redaction.

    Drop reasons: "no_text" (extractor found nothing), "lang:<code>" (not a wanted language),
    "lang_score:<code>" (wanted language below `min_lang_score`), or the failing filter's
    "<filter>:<rule>". Text is PII-redacted in both tables, so the sidecar leaks nothing either.
    """
    read_stats = ReadStats()
    seconds = dict.fromkeys(STAGES, 0.0)
    dropped_by: Counter[str] = Counter()
    pii_counts: Counter[str] = Counter()
    pii_counts_dropped: Counter[str] = Counter()
    kept, dropped = _columns(KEPT_SCHEMA), _columns(DROPPED_SCHEMA)
    filters: Sequence[DocFilter] = tuple(config.filters)
    if config.blocked_domains or config.blocked_url_words:
        # URLs are cheapest to judge and need no text, so the blocklist goes first.
        filters = (URLBlocklistFilter(config.blocked_domains, config.blocked_url_words), *filters)
    wanted = set(config.languages)
    extracted = 0
    started = time.perf_counter()

    docs = iter_warc_documents(warc_path, read_stats, max_page_bytes=config.max_page_bytes)
    while True:
        t0 = time.perf_counter()
        doc = next(docs, None)
        t1 = time.perf_counter()
        seconds["read"] += t1 - t0
        if doc is None:
            break
        text = extract_main_text(doc["html"], doc["url"])
        t2 = time.perf_counter()
        seconds["extract"] += t2 - t1
        reason: str | None = None
        lang, lang_score = "", 0.0
        if text is None:
            reason, text = "no_text", ""
        else:
            extracted += 1
            lang, lang_score = detect_language(text)
            t3 = time.perf_counter()
            seconds["langid"] += t3 - t2
            if lang not in wanted:
                reason = f"lang:{lang}"
            elif lang_score < config.min_lang_score:
                reason = f"lang_score:{lang}"
            else:
                _, reason = apply_filters(text, lang, doc["url"], filters)
                seconds["filter"] += time.perf_counter() - t3
        t4 = time.perf_counter()
        redacted, found = redact_pii(text)
        seconds["pii"] += time.perf_counter() - t4
        row = {
            "id": document_id(doc["record_id"], doc["url"]),
            "url": doc["url"],
            "shard": shard,
            "text": redacted,
            "lang": lang,
            "lang_score": lang_score,
            "n_words": len(split_words(text)),
            "pii_count": sum(found.values()),
        }
        if reason is None:
            pii_counts.update(found)
            target = kept
        else:
            dropped_by[reason] += 1
            pii_counts_dropped.update(found)
            row["drop_reason"] = reason
            target = dropped
        for name, value in row.items():
            target[name].append(value)

    elapsed = time.perf_counter() - started
    n_kept = len(kept["id"])
    stats = {
        "shard": shard,
        "records_read": read_stats.records,
        "documents_read": read_stats.yielded,
        "skipped_by_reason": dict(sorted(read_stats.skipped.items())),
        "extracted": extracted,
        "dropped_by_reason": dict(sorted(dropped_by.items())),
        "dropped": sum(dropped_by.values()),
        "kept": n_kept,
        # PII found in kept documents only: that is what would have reached training.
        "pii_counts": dict(sorted(pii_counts.items())),
        "pii_counts_dropped": dict(sorted(pii_counts_dropped.items())),
        "seconds_per_stage": {k: round(v, 4) for k, v in seconds.items()},
        "seconds_total": round(elapsed, 4),
        "docs_per_s": round(read_stats.yielded / elapsed, 2) if elapsed > 0 else 0.0,
    }
    return CurationResult(
        kept=pa.Table.from_pydict(kept, schema=KEPT_SCHEMA),
        dropped=pa.Table.from_pydict(dropped, schema=DROPPED_SCHEMA),
        stats=stats,
    )
