"""Curate one shard: read, extract, identify language, filter, redact PII; kept and dropped Parquet tables.

Streaming end to end: the main process reads records and hands batches of `batch_docs` pages to a
pool of worker processes (spawn-safe; at most 2 batches per worker in flight), and appends the
finished rows, in input order, to two Parquet files written beside their targets and renamed
into place at the end. Memory therefore depends on the batch size, never on the shard's size.
"""
from __future__ import annotations

import hashlib
import multiprocessing
import os
import tempfile
import time
from collections import Counter, deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from curation.extract import ExtractionSettings, ExtractionTimeout, extract_main_text
from curation.filters import DocFilter, TextView, URLBlocklistFilter, default_filters, filter_signals
from curation.langid import detect_language
from curation.pii import redact_pii
from curation.readers import iter_documents
from curation.warc import DEFAULT_MAX_PAGE_BYTES, ReadStats

BASE_SCHEMA = pa.schema(
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
STAGES = ("read", "extract", "langid", "filter", "pii")
# Below this many timeouts a shard is never failed for them; above it, more than
# `CurationConfig.max_timeout_frac` of pages timing out means a systemic problem, not slow pages.
_MIN_PAGES_FOR_TIMEOUT_CHECK = 20


@dataclass
class CurationConfig:
    """Per-shard curation settings; `filters` run in order after language id.

    languages: language codes to keep ("*" keeps every language). workers: processes for the pages
    of one shard (0 = every core; 1 = in this process).
    """

    languages: tuple[str, ...] = ("en",)
    min_lang_score: float = 0.65
    max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES
    filters: tuple[DocFilter, ...] = field(default_factory=default_filters)
    blocked_domains: tuple[str, ...] = ()
    blocked_url_words: tuple[str, ...] = ()
    extraction: ExtractionSettings = field(default_factory=ExtractionSettings)
    workers: int = 0
    batch_docs: int = 64
    row_group_rows: int = 2000
    max_timeout_frac: float = 0.5

    def filter_chain(self) -> tuple[DocFilter, ...]:
        chain: Sequence[DocFilter] = tuple(self.filters)
        if self.blocked_domains or self.blocked_url_words:
            # URLs are cheapest to judge and need no text, so the blocklist goes first.
            chain = (URLBlocklistFilter(self.blocked_domains, self.blocked_url_words), *chain)
        return tuple(chain)


def signal_columns(filters: Iterable[DocFilter]) -> list[str]:
    """Column names of the filter signals: "<filter>_<signal>", e.g. "gopher_quality_stop_words"."""
    return [f"{f.name}_{s}" for f in filters for s in f.signal_names()]


def table_schemas(config: CurationConfig) -> tuple[pa.Schema, pa.Schema]:
    """(kept, dropped) schemas: the base columns, every filter signal, and drop_reason for dropped rows."""
    schema = BASE_SCHEMA
    for name in signal_columns(config.filter_chain()):
        schema = schema.append(pa.field(name, pa.float64()))
    return schema, schema.append(pa.field("drop_reason", pa.string()))


KEPT_SCHEMA, DROPPED_SCHEMA = table_schemas(CurationConfig())


def document_id(record_id: str, url: str) -> str:
    """sha1 hex of the WARC-Record-ID (unique per capture by the WARC spec); of the URL if there is none."""
    return hashlib.sha1((record_id or url).encode("utf-8")).hexdigest()


@dataclass
class CurationResult:
    kept_path: Path
    dropped_path: Path
    stats: dict

    @property
    def kept(self) -> pa.Table:
        return pq.read_table(self.kept_path)

    @property
    def dropped(self) -> pa.Table:
        return pq.read_table(self.dropped_path)


@dataclass
class _BatchResult:
    rows: list[dict]
    dropped_by: Counter
    pii_kept: Counter
    pii_dropped: Counter
    seconds: dict
    extracted: int
    timeouts: int
    attempted: int


class _Curator:
    """Everything after reading, for one batch of documents; lives once per worker process."""

    def __init__(self, config: CurationConfig, shard: str) -> None:
        self.config, self.shard = config, shard
        self.filters = config.filter_chain()
        self.columns = signal_columns(self.filters)
        self.wanted = set(config.languages)

    def curate_batch(self, docs: list[dict]) -> _BatchResult:
        seconds = dict.fromkeys(STAGES, 0.0)
        out = _BatchResult([], Counter(), Counter(), Counter(), seconds, 0, 0, 0)
        for doc in docs:
            try:
                out.rows.append(self._curate(doc, out))
            except Exception as exc:  # fail loudly, but say which page
                raise RuntimeError(f"curating {doc.get('url')!r} ({doc.get('record_id')}) failed: {exc!r}") from exc
        return out

    def _curate(self, doc: dict, out: _BatchResult) -> dict:
        seconds = out.seconds
        t0 = time.perf_counter()
        reason: str | None = None
        text = doc.get("text")
        if text is None:
            out.attempted += 1
            try:
                text = extract_main_text(doc["html"], doc["url"], self.config.extraction)
            except ExtractionTimeout:
                out.timeouts += 1
                reason, text = "extract_timeout", ""
        t1 = time.perf_counter()
        seconds["extract"] += t1 - t0
        lang, lang_score = "", 0.0
        signals: dict[str, float] = {}
        view: TextView | None = None
        if reason is not None:
            pass
        elif not text:
            reason, text = "no_text", ""
        else:
            out.extracted += 1
            lang, lang_score = detect_language(text)
            t2 = time.perf_counter()
            seconds["langid"] += t2 - t1
            if "*" not in self.wanted and lang not in self.wanted:
                reason = f"lang:{lang}"
            elif lang_score < self.config.min_lang_score:
                reason = f"lang_score:{lang}"
            else:
                view = TextView(text, lang)
                reason, signals = filter_signals(view, lang, doc["url"], self.filters)
            seconds["filter"] += time.perf_counter() - t2
        t3 = time.perf_counter()
        redacted, found = redact_pii(text)
        seconds["pii"] += time.perf_counter() - t3
        row = {
            "id": document_id(doc["record_id"], doc["url"]),
            "url": doc["url"],
            "shard": self.shard,
            "text": redacted,
            "lang": lang,
            "lang_score": lang_score,
            "n_words": len((view or TextView(text, lang)).words),
            "pii_count": sum(found.values()),
            "drop_reason": reason,
        }
        for key, value in signals.items():
            row[key.replace(".", "_", 1)] = value
        if reason is None:
            out.pii_kept.update(found)
        else:
            out.dropped_by[reason] += 1
            out.pii_dropped.update(found)
        return row


_WORKER_CURATOR: _Curator | None = None


def _init_worker(config: CurationConfig, shard: str) -> None:
    global _WORKER_CURATOR
    _WORKER_CURATOR = _Curator(config, shard)
    detect_language("warm up the language model once per worker")


def _worker_curate_batch(docs: list[dict]) -> _BatchResult:
    assert _WORKER_CURATOR is not None, "worker not initialised"
    return _WORKER_CURATOR.curate_batch(docs)


class _ParquetSink:
    """Append rows to a Parquet file in row groups; the file appears at `path` only on `commit`."""

    def __init__(self, path: Path, schema: pa.Schema, row_group_rows: int) -> None:
        self.path, self.schema, self.row_group_rows = path, schema, row_group_rows
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.chmod(tmp, 0o644)
        self.tmp = Path(tmp)
        self.writer = pq.ParquetWriter(self.tmp, schema, compression="zstd")
        self.buffer: list[dict] = []
        self.rows = 0

    def append(self, row: dict) -> None:
        self.buffer.append(row)
        if len(self.buffer) >= self.row_group_rows:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.writer.write_table(pa.Table.from_pylist(self.buffer, schema=self.schema))
            self.rows += len(self.buffer)
            self.buffer = []

    def commit(self) -> Path:
        self.flush()
        self.writer.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        try:
            self.writer.close()
        finally:
            self.tmp.unlink(missing_ok=True)


def _batches(docs: Iterator[dict], size: int, read_seconds: list[float]) -> Iterator[list[dict]]:
    while True:
        t0 = time.perf_counter()
        batch = list(islice(docs, size))
        read_seconds[0] += time.perf_counter() - t0
        if not batch:
            return
        yield batch


def _resolve_workers(workers: int) -> int:
    return max(1, workers if workers > 0 else (os.cpu_count() or 1))


def _curated_batches(batches: Iterator[list[dict]], config: CurationConfig, shard: str) -> Iterator[_BatchResult]:
    """Curate batches in input order: in this process, or on a pool with bounded work in flight."""
    workers = _resolve_workers(config.workers)
    first = next(batches, None)
    if first is None:
        return
    second = next(batches, None)
    if workers == 1 or second is None:  # one batch is not worth starting processes for
        curator = _Curator(config, shard)
        for batch in (first, *([second] if second else [])):
            yield curator.curate_batch(batch)
        for batch in batches:
            yield curator.curate_batch(batch)
        return
    ctx = multiprocessing.get_context("spawn")  # fork is unsafe with threads (Dagster, pyarrow) around
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(config, shard)) as pool:
        in_flight: deque[Future] = deque()
        for batch in (first, second):
            in_flight.append(pool.submit(_worker_curate_batch, batch))
        for batch in batches:
            if len(in_flight) >= 2 * workers:
                yield in_flight.popleft().result()
            in_flight.append(pool.submit(_worker_curate_batch, batch))
        while in_flight:
            yield in_flight.popleft().result()


class ShardWriter:
    """Takes a shard's curated batches, in input order, into its kept and dropped Parquet files; tallies them.

    One writer serves every executor (the local process pool here, Ray tasks in `curation.distributed`),
    so both write the same rows and report the same statistics.
    """

    def __init__(self, config: CurationConfig, shard: str, kept_path: str | os.PathLike,
                 dropped_path: str | os.PathLike, where: str = "machine"):
        kept_schema, dropped_schema = table_schemas(config)
        self.config, self.shard, self.where = config, shard, where
        self.read_stats = ReadStats()
        self.read_seconds = [0.0]
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.dropped_by: Counter[str] = Counter()
        self.pii_kept: Counter[str] = Counter()
        self.pii_dropped: Counter[str] = Counter()
        self.extracted = self.timeouts = self.attempted = 0
        self.started = time.perf_counter()
        self.kept = _ParquetSink(Path(kept_path), kept_schema, config.row_group_rows)
        self.dropped = _ParquetSink(Path(dropped_path), dropped_schema, config.row_group_rows)

    def take(self, result: _BatchResult) -> None:
        for row in result.rows:
            if row["drop_reason"] is None:
                del row["drop_reason"]
                self.kept.append(row)
            else:
                self.dropped.append(row)
        self.dropped_by.update(result.dropped_by)
        self.pii_kept.update(result.pii_kept)
        self.pii_dropped.update(result.pii_dropped)
        for stage, value in result.seconds.items():
            self.seconds[stage] += value
        self.extracted += result.extracted
        self.timeouts += result.timeouts
        self.attempted += result.attempted
        if self.timeouts >= _MIN_PAGES_FOR_TIMEOUT_CHECK and self.timeouts > self.config.max_timeout_frac * self.attempted:
            raise RuntimeError(
                f"{self.timeouts} of {self.attempted} pages hit the {self.config.extraction.time_limit_s}s extraction "
                f"limit: that is not slow pages but a broken setup or an overloaded {self.where}")

    def commit(self) -> None:
        self.kept.commit()
        self.dropped.commit()

    def abort(self) -> None:
        self.kept.abort()
        self.dropped.abort()

    def stats(self, **executor: object) -> dict:
        """The shard's statistics; `executor` adds what only one executor knows (workers, Ray tasks, ...)."""
        self.seconds["read"] = self.read_seconds[0]
        elapsed = time.perf_counter() - self.started
        by_filter: Counter[str] = Counter()
        for reason, n in self.dropped_by.items():
            by_filter[reason.split(":", 1)[0]] += n
        return {
            "shard": self.shard,
            "records_read": self.read_stats.records,
            "documents_read": self.read_stats.yielded,
            "skipped_by_reason": dict(sorted(self.read_stats.skipped.items())),
            "extracted": self.extracted,
            "extract_timeouts": self.timeouts,
            "dropped_by_reason": dict(sorted(self.dropped_by.items())),
            "dropped_by_filter": dict(sorted(by_filter.items())),
            "dropped": self.dropped.rows,
            "kept": self.kept.rows,
            # PII found in kept documents: what would have reached training without redaction.
            "pii_by_kind": dict(sorted(self.pii_kept.items())),
            "pii_by_kind_dropped": dict(sorted(self.pii_dropped.items())),
            # Summed over batches, i.e. CPU-seconds per stage, whichever executor ran them.
            "seconds_per_stage": {k: round(v, 4) for k, v in self.seconds.items()},
            "seconds_total": round(elapsed, 4),
            **executor,
            "docs_per_s": round(self.read_stats.yielded / elapsed, 2) if elapsed > 0 else 0.0,
        }


def curate_shard(source: str | os.PathLike, config: CurationConfig, shard: str,
                 kept_path: str | os.PathLike | None = None,
                 dropped_path: str | os.PathLike | None = None) -> CurationResult:
    """Stream `source` (WARC/ARC, JSONL, Parquet or a datasets folder) through the whole chain.

    Drop reasons: "no_text" (extractor found nothing), "extract_timeout", "lang:<code>" (not a
    wanted language), "lang_score:<code>" (wanted language below `min_lang_score`), or the first
    failing filter's "<filter>:<rule>". Every row carries all filter signals ("<filter>_<signal>"
    columns; null where the page never reached the filters), so each decision can be re-derived.
    Text is PII-redacted in both tables, so the sidecar leaks nothing either.
    Outputs go to `kept_path` / `dropped_path` (default: a fresh temporary folder).
    """
    if kept_path is None or dropped_path is None:
        out_dir = Path(tempfile.mkdtemp(prefix=f"curated-{shard}-"))
        kept_path = kept_path or out_dir / "kept.parquet"
        dropped_path = dropped_path or out_dir / "dropped.parquet"
    writer = ShardWriter(config, shard, kept_path, dropped_path)
    try:
        docs = iter_documents(source, writer.read_stats, max_page_bytes=config.max_page_bytes)
        for result in _curated_batches(_batches(docs, config.batch_docs, writer.read_seconds), config, shard):
            writer.take(result)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    stats = writer.stats(workers=_resolve_workers(config.workers))
    return CurationResult(kept_path=Path(kept_path), dropped_path=Path(dropped_path), stats=stats)
