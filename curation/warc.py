"""Stream HTML documents out of WARC and ARC shards (gzipped or not), counting every record skipped and why."""
from __future__ import annotations

import codecs
import os
import re
import zlib
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

DEFAULT_MAX_PAGE_BYTES = 2_000_000
# Bytes inspected to decide whether a body is binary; a NUL in the first few KiB is decisive.
_SNIFF_BYTES = 4096
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 12, 13))
_HTML_TYPES = ("text/html", "application/xhtml+xml")
# A page whose decoded text is more than this fraction U+FFFD was not in the encoding it claimed.
MAX_REPLACEMENT_CHAR_FRAC = 0.1
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-:.]+)""", re.I)
# What a broken gzip member or a cut-off WARC looks like from inside warcio.
_CORRUPT_ERRORS = (ArchiveLoadFailed, EOFError, zlib.error, OSError, ValueError)


@dataclass
class ReadStats:
    """Counts for one shard: `records` = WARC response records seen, `yielded` = documents handed on."""

    records: int = 0
    yielded: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {"records": self.records, "yielded": self.yielded, "skipped": dict(self.skipped)}


@contextmanager
def _open_binary(path: str | os.PathLike) -> Iterator[BinaryIO]:
    path_str = os.fspath(path)
    if "://" in path_str and not path_str.startswith("file://"):
        try:
            import fsspec
        except ImportError as exc:  # remote shards need fsspec; local ones never do
            raise ImportError(f"reading {path_str!r} needs fsspec (pip install fsspec)") from exc
        with fsspec.open(path_str, "rb") as f:
            yield f
        return
    if path_str.startswith("file://"):
        path_str = path_str[len("file://"):]
    with open(path_str, "rb") as f:
        yield f


def _charset_from_content_type(content_type: str) -> str | None:
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip("\"'") or None
    return None


def _known_codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _looks_binary(body: bytes) -> bool:
    head = body[:_SNIFF_BYTES]
    if b"\x00" in head:
        return True
    # Control characters other than tab/newline/CR/form feed are rare in any text encoding.
    controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
    return controls > 0.05 * max(len(head), 1)


def decode_html(body: bytes, content_type: str = "") -> str:
    """Decode with the HTTP charset, else a <meta charset>, else UTF-8 if valid, else a detector."""
    codec = _known_codec(_charset_from_content_type(content_type))
    if codec is None:
        meta = _META_CHARSET.search(body[:_SNIFF_BYTES])
        codec = _known_codec(meta.group(1).decode("ascii", "ignore")) if meta else None
    if codec is None:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            try:
                from charset_normalizer import from_bytes

                best = from_bytes(body[:200_000]).best()
                codec = best.encoding if best is not None else None
            except ImportError:
                codec = None
            # cp1252 decodes every byte, so it is the last resort rather than latin-1's mojibake.
            codec = codec or "cp1252"
    try:
        return body.decode(codec, errors="replace")
    except (LookupError, UnicodeError, TypeError):
        # A declared codec that is not a text encoding ("rot13", "idna", ...): the bytes decide.
        return body.decode("utf-8", errors="replace")


def _badly_decoded(html: str) -> bool:
    bad = html.count("\ufffd")
    return bad > 0 and bad > MAX_REPLACEMENT_CHAR_FRAC * len(html)


def iter_warc_documents(
    path: str | os.PathLike,
    stats: ReadStats,
    max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES,
) -> Iterator[dict]:
    """Yield {"record_id", "url", "date", "html"} for every HTML response record, one at a time.

    Reads WARC and ARC (warcio converts ARC records to WARC on the fly), gzipped or not, from a
    local path or an fsspec URL. Skips are counted in `stats.skipped` by reason: "non_html", "empty_body", "binary_body",
    "malformed_record" (no parseable WARC header), "invalid_encoding" (mostly undecodable bytes) and "corrupt_archive" (a truncated or
    corrupt gzip member: the rest of the shard is unreadable, so reading stops there).
    Oversized bodies are cut to `max_page_bytes`, still yielded, and counted as "oversized_cut".
    """
    with _open_binary(path) as raw:
        records = iter(ArchiveIterator(raw, arc2warc=True))
        while True:
            try:
                record = next(records)
            except StopIteration:
                return
            except (*_CORRUPT_ERRORS, KeyError, IndexError, TypeError, AttributeError):
                # warcio meets a header it cannot parse; nothing after it can be located reliably.
                stats.skipped["corrupt_archive"] += 1
                return
            if record.rec_type is None:
                # warcio's lenient parser hands back header-less garbage as a record without a type.
                stats.skipped["malformed_record"] += 1
                continue
            if record.rec_type != "response":
                continue
            stats.records += 1
            http = record.http_headers
            content_type = (http.get_header("Content-Type") or "") if http is not None else ""
            if http is None and record.rec_headers.get_header("Content-Type", "").startswith("text/html"):
                content_type = record.rec_headers.get_header("Content-Type")  # ARC: no HTTP block parsed
            mime = content_type.split(";")[0].strip().lower()
            if mime and mime not in _HTML_TYPES:
                stats.skipped["non_html"] += 1
                continue
            try:
                body = record.content_stream().read(max_page_bytes + 1)
            except _CORRUPT_ERRORS:
                # A body cut by the end of a truncated member: the archive cannot be resumed.
                stats.skipped["corrupt_archive"] += 1
                return
            if len(body) <= max_page_bytes and getattr(record.raw_stream, "limit", 0) > 0:
                # warcio reads a cut gzip member as a short body without raising; the record's
                # declared length not being used up is the only sign, and nothing after it is readable.
                stats.skipped["corrupt_archive"] += 1
                return
            if not body.strip():
                stats.skipped["empty_body"] += 1
                continue
            if _looks_binary(body):
                stats.skipped["binary_body"] += 1
                continue
            if not mime and b"<" not in body[:_SNIFF_BYTES]:
                stats.skipped["non_html"] += 1
                continue
            if len(body) > max_page_bytes:
                body = body[:max_page_bytes]
                stats.skipped["oversized_cut"] += 1
            html = decode_html(body, content_type)
            if _badly_decoded(html):
                stats.skipped["invalid_encoding"] += 1
                continue
            headers = record.rec_headers
            stats.yielded += 1
            yield {
                "record_id": headers.get_header("WARC-Record-ID") or "",
                "url": headers.get_header("WARC-Target-URI") or "",
                "date": headers.get_header("WARC-Date") or "",
                "html": html,
            }
