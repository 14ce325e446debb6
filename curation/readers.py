"""Document sources for curation: WARC/ARC shards, JSONL, Parquet and Hugging Face `datasets` folders.

Every reader streams (one record or one small Arrow batch at a time), reads local paths and fsspec
URLs, and yields the same dict: {"record_id", "url", "date", "html", "text"} where exactly one of
"html" (to be extracted) and "text" (already plain text) is set. Records that cannot be used are
counted in `ReadStats.skipped` by reason and never stop the shard.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

from curation.warc import DEFAULT_MAX_PAGE_BYTES, ReadStats, _open_binary, iter_warc_documents

# Column/key names tried in order for each field of a non-WARC row.
HTML_KEYS = ("html", "raw_html", "content_html")
TEXT_KEYS = ("text", "content", "raw_content")
URL_KEYS = ("url", "uri", "link", "source_url")
ID_KEYS = ("id", "doc_id", "record_id", "warc_record_id")
DATE_KEYS = ("date", "timestamp", "crawl_date")
_BATCH_ROWS = 256

WARC_SUFFIXES = (".warc", ".warc.gz", ".arc", ".arc.gz", ".warc.zst")


def source_format(source: str | os.PathLike) -> str:
    """"warc", "jsonl", "parquet" or "hf_dataset" from the path (a folder is a `datasets` save)."""
    name = os.fspath(source).rstrip("/").lower()
    if name.endswith(WARC_SUFFIXES):
        return "warc"
    if name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz", ".ndjson", ".jsonl.zst")):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    if "://" not in name and Path(name).is_dir():
        return "hf_dataset"
    raise ValueError(f"cannot tell the format of {source!r}: expected WARC/ARC, JSONL, Parquet or a datasets folder")


def iter_documents(source: str | os.PathLike, stats: ReadStats,
                   max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES) -> Iterator[dict]:
    """Stream the documents of any supported source; see the module docstring for the row shape."""
    fmt = source_format(source)
    if fmt == "warc":
        for doc in iter_warc_documents(source, stats, max_page_bytes=max_page_bytes):
            doc["text"] = None
            yield doc
    elif fmt == "jsonl":
        yield from _iter_jsonl(source, stats, max_page_bytes)
    elif fmt == "parquet":
        yield from _iter_parquet(source, stats, max_page_bytes)
    else:
        yield from _iter_hf_dataset(source, stats, max_page_bytes)


def _first(row: dict, keys: tuple[str, ...]):
    for key in keys:
        value = row.get(key)
        if value is not None:
            return value
    return None


def row_to_document(row: dict, position: int, stats: ReadStats, max_page_bytes: int) -> dict | None:
    """One table/JSON row as a document, or None (counted) if it has no usable text."""
    stats.records += 1
    if not isinstance(row, dict):
        stats.skipped["malformed_record"] += 1
        return None
    html, text = _first(row, HTML_KEYS), _first(row, TEXT_KEYS)
    body, is_html = (html, True) if html is not None else (text, False)
    if body is None:
        stats.skipped["no_text_field"] += 1
        return None
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if not isinstance(body, str):
        stats.skipped["malformed_record"] += 1
        return None
    if not body.strip():
        stats.skipped["empty_body"] += 1
        return None
    if "\x00" in body[:4096]:
        stats.skipped["binary_body"] += 1
        return None
    if len(body) > max_page_bytes:  # characters, close enough to bytes for a size guard
        body = body[:max_page_bytes]
        stats.skipped["oversized_cut"] += 1
    url = _first(row, URL_KEYS)
    record_id = _first(row, ID_KEYS)
    date = _first(row, DATE_KEYS)
    stats.yielded += 1
    return {
        "record_id": str(record_id) if record_id is not None else f"row:{position}",
        "url": str(url) if url is not None else "",
        "date": str(date) if date is not None else "",
        "html": body if is_html else None,
        "text": None if is_html else body,
    }


def _iter_jsonl(source, stats: ReadStats, max_page_bytes: int) -> Iterator[dict]:
    path = os.fspath(source)
    with _open_binary(path) as raw:
        stream = raw
        if path.endswith(".gz"):
            import gzip

            stream = gzip.GzipFile(fileobj=raw)
        position = 0
        while True:
            try:
                line = stream.readline(max_page_bytes * 2 + 1)
            except (EOFError, OSError):  # truncated gzip: the rest is unreadable
                stats.skipped["corrupt_archive"] += 1
                return
            if not line:
                return
            if not line.endswith(b"\n") and len(line) > max_page_bytes * 2:
                # An over-long line: skip the rest of it rather than holding it in memory.
                stats.records += 1
                stats.skipped["oversized_record"] += 1
                while line and not line.endswith(b"\n"):
                    line = stream.readline(1 << 20)
                continue
            if not line.strip():
                continue
            position += 1
            try:
                row = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                stats.records += 1
                stats.skipped["malformed_record"] += 1
                continue
            doc = row_to_document(row, position, stats, max_page_bytes)
            if doc is not None:
                yield doc


def _iter_batches_as_docs(batches, stats: ReadStats, max_page_bytes: int) -> Iterator[dict]:
    position = 0
    for batch in batches:
        for row in batch.to_pylist():
            position += 1
            doc = row_to_document(row, position, stats, max_page_bytes)
            if doc is not None:
                yield doc


def _wanted_columns(names: list[str]) -> list[str]:
    keys = HTML_KEYS + TEXT_KEYS + URL_KEYS + ID_KEYS + DATE_KEYS
    return [n for n in names if n in keys]


def _iter_parquet(source, stats: ReadStats, max_page_bytes: int) -> Iterator[dict]:
    import pyarrow.parquet as pq

    with _open_binary(source) as raw:
        try:
            pf = pq.ParquetFile(raw)
        except Exception:  # pyarrow raises ArrowInvalid/OSError for a file that is not Parquet
            stats.skipped["corrupt_archive"] += 1
            return
        columns = _wanted_columns(pf.schema_arrow.names)
        yield from _iter_batches_as_docs(pf.iter_batches(batch_size=_BATCH_ROWS, columns=columns),
                                         stats, max_page_bytes)


def _iter_hf_dataset(source, stats: ReadStats, max_page_bytes: int) -> Iterator[dict]:
    """A folder written by `datasets.Dataset.save_to_disk` (memory-mapped Arrow, so it streams)."""
    import datasets

    ds = datasets.load_from_disk(os.fspath(source))
    if isinstance(ds, datasets.DatasetDict):
        parts = [ds[k] for k in sorted(ds)]
    else:
        parts = [ds]
    for part in parts:
        columns = _wanted_columns(part.column_names)
        batches = part.select_columns(columns).with_format("arrow").iter(batch_size=_BATCH_ROWS)
        yield from _iter_batches_as_docs(batches, stats, max_page_bytes)



def expand_sources(sources: str | os.PathLike | list) -> list[str]:
    """The files a crawl input names, in order and without repeats: each entry a file, a folder (its files, not
    recursive) or a glob, local or an fsspec URL (`s3://bucket/crawl/*.warc.gz`). Files are listed where they
    are; nothing is copied. A missing file or folder, or a glob that matches nothing, raises FileNotFoundError."""
    import glob as _glob

    entries = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    found: list[str] = []
    seen: set[str] = set()
    for entry in map(os.fspath, entries):
        if "://" in entry and not entry.startswith("file://"):
            import fsspec

            fs, path = fsspec.core.url_to_fs(entry)
            if _glob.has_magic(path):
                files = [p for p in sorted(fs.glob(path)) if fs.isfile(p)]
            elif fs.isdir(path):
                files = sorted(p for p in fs.ls(path, detail=False) if fs.isfile(p))
            elif fs.isfile(path):
                files = [path]
            else:
                raise FileNotFoundError(f"{entry}: no such file or folder")
            listed = [fs.unstrip_protocol(p) for p in files]
        else:
            local = os.path.expanduser(entry.removeprefix("file://"))
            if _glob.has_magic(local):
                listed = sorted(p for p in _glob.glob(local) if os.path.isfile(p))
            elif os.path.isdir(local):
                listed = sorted(str(p) for p in Path(local).iterdir() if p.is_file())
            elif os.path.isfile(local):
                listed = [local]
            else:
                raise FileNotFoundError(f"{entry}: no such file or folder")
        if not listed and _glob.has_magic(entry):
            raise FileNotFoundError(f"{entry}: no file matches")
        for f in listed:
            if f not in seen:
                seen.add(f)
                found.append(f)
    return found
