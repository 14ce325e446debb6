"""Specifications of the curation library on generated WARC shards and texts (no Dagster)."""
from __future__ import annotations

import gzip
import io
import random
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from curation.decontam import contaminated, find_contaminated, ngram_index
from curation.dedup import (
    EMPTY_HASH,
    exact_duplicate_mask,
    minhash_signatures,
    near_duplicate_clusters,
    normalize_for_dedup,
    shingle_hashes,
    shingles,
)
from curation.domain import seed_vocabulary_share, select_domain_pages
from curation.extract import extract_main_text
from curation.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
    URLBlocklistFilter,
    apply_filters,
    default_filters,
)
from curation.langid import detect_language
from curation.pii import find_pii, redact_pii
from curation.pipeline import DROPPED_SCHEMA, KEPT_SCHEMA, CurationConfig, curate_shard
from curation.warc import ReadStats, iter_warc_documents

# --- generated inputs -------------------------------------------------------------------------

ARTICLE_EN = [
    "The hydraulic press on line three stopped during the night shift after the pressure relief valve opened repeatedly.",
    "Our maintenance team found that the valve spring had lost its tension and the seat was worn by particles in the oil.",
    "They replaced the spring, flushed the hydraulic circuit and changed the return filter before the morning shift started.",
    "After the repair the press held its working pressure of two hundred bar for the whole test cycle without any alarm.",
    "We recommend checking the oil cleanliness every month, because contaminated oil is the most common cause of valve wear.",
]
ARTICLE_DE = [
    "Die hydraulische Presse in der dritten Linie ist in der Nachtschicht stehen geblieben, weil das Ventil immer wieder öffnete.",
    "Das Wartungsteam hat festgestellt, dass die Feder des Ventils ihre Spannung verloren hatte und der Sitz verschlissen war.",
    "Die Techniker haben die Feder ersetzt, den Kreislauf gespült und den Filter gewechselt, bevor die Frühschicht begann.",
    "Nach der Reparatur hielt die Presse den Druck von zweihundert bar während des ganzen Prüfzyklus ohne einen Alarm.",
    "Wir empfehlen, die Sauberkeit des Öls jeden Monat zu prüfen, denn verschmutztes Öl ist die häufigste Ursache für Verschleiß.",
]
BOILERPLATE_MARKERS = ("Accept all cookies", "Home | Products | Contact", "Copyright 2024 Example Corp")


def page(paragraphs: list[str], title: str = "Maintenance note", lang: str = "en") -> str:
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return f"""<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title></head>
<body>
<div class="cookie-banner" id="cookie-consent"><p>We use cookies to improve your experience. Accept all cookies</p></div>
<header><nav><a href="/">Home | Products | Contact</a></nav></header>
<main><article><h1>{title}</h1>
{body}
</article></main>
<footer><p>Copyright 2024 Example Corp. All rights reserved. Privacy policy. Terms of use.</p></footer>
</body></html>"""


def write_warc(path: Path, records: list[tuple[str, bytes, str]], gz: bool = True) -> Path:
    """records: (url, body, content type); every record is a WARC response with an HTTP header block."""
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=gz)
        writer.write_record(writer.create_warcinfo_record(path.name, {"software": "tests"}))
        for url, body, ctype in records:
            http = StatusAndHeaders("200 OK", [("Content-Type", ctype)], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http))
    return path


HTML = "text/html; charset=utf-8"


def words_page(rng: random.Random, n_words: int) -> list[str]:
    vocab = [
        "pump", "motor", "bearing", "seal", "valve", "pressure", "flow", "sensor", "alarm", "shaft",
        "coupling", "vibration", "temperature", "filter", "impeller", "operator", "checked", "replaced",
        "measured", "noticed", "the", "a", "of", "and", "with", "after", "before", "during", "because",
        "reading", "gauge", "housing", "gasket", "leak", "noise", "current", "voltage", "fuse", "relay",
        "cable", "winding", "cooling", "fan", "belt", "pulley", "gear", "oil", "grease", "bolt", "nut",
    ]
    words = [rng.choice(vocab) for _ in range(n_words)]
    sentences, i = [], 0
    while i < len(words):
        k = rng.randint(8, 14)
        sentences.append(" ".join(words[i : i + k]).capitalize() + ".")
        i += k
    return sentences


# --- WARC reading -----------------------------------------------------------------------------


def test_warc_reader_counts_skips_and_survives_truncated_gzip(tmp_path):
    good = page(ARTICLE_EN).encode()
    shard = write_warc(
        tmp_path / "a.warc.gz",
        [
            ("https://example.com/ok", good, HTML),
            ("https://example.com/logo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR" + bytes(range(256)), "image/png"),
            ("https://example.com/bin", b"<html>\x00\x01\x02\x03" + bytes(200), HTML),
            ("https://example.com/empty", b"", HTML),
            ("https://example.com/big", b"<html><p>" + b"a" * 5000 + b"</p></html>", HTML),
            ("https://example.com/last", good, HTML),
        ],
    )
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) - 200])  # cut inside the last gzip member

    stats = ReadStats()
    docs = list(iter_warc_documents(shard, stats, max_page_bytes=4000))

    assert [d["url"] for d in docs] == ["https://example.com/ok", "https://example.com/big"]
    assert docs[0]["record_id"].startswith("<urn:uuid:") and docs[0]["date"]
    assert "hydraulic press" in docs[0]["html"]
    assert len(docs[1]["html"]) == 4000
    assert stats.skipped["non_html"] == 1
    assert stats.skipped["binary_body"] == 1
    assert stats.skipped["empty_body"] == 1
    assert stats.skipped["oversized_cut"] == 1
    assert stats.skipped["corrupt_archive"] == 1
    assert stats.yielded == 2


def test_warc_reader_handles_plain_warc_and_latin1_charset(tmp_path):
    html = "<html><body><p>Café crème, déjà vu.</p></body></html>".encode("latin-1")
    shard = write_warc(tmp_path / "b.warc", [("http://x.org/", html, "text/html; charset=iso-8859-1")], gz=False)
    stats = ReadStats()
    (doc,) = iter_warc_documents(shard, stats)
    assert "Café crème, déjà vu." in doc["html"]
    assert stats.records == 1 and not stats.skipped


def test_warc_reader_survives_garbage_files(tmp_path):
    junk = tmp_path / "junk.warc.gz"
    junk.write_bytes(gzip.compress(b"WARC/1.0\r\nthis is not a warc"))
    stats = ReadStats()
    assert list(iter_warc_documents(junk, stats)) == []
    assert stats.skipped["malformed_record"] == 1
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(b"\x1f\x8b\x08\x00garbage")
    assert list(iter_warc_documents(cut, ReadStats())) == []


# --- extraction and language id ---------------------------------------------------------------


def test_extraction_strips_boilerplate_and_keeps_article():
    text = extract_main_text(page(ARTICLE_EN), "https://example.com/ok")
    assert text is not None
    for sentence in ARTICLE_EN:
        assert sentence in text
    for marker in BOILERPLATE_MARKERS:
        assert marker not in text
    assert extract_main_text(page(ARTICLE_EN)) == text  # deterministic, no cross-call dedup cache


def test_extraction_of_empty_pages():
    assert extract_main_text("<html><head><title>x</title></head><body></body></html>") is None
    assert extract_main_text("") is None
    # trafilatura falls back to whatever text a boilerplate-only page has; the filters drop it
    leftover = extract_main_text(page([]))
    assert leftover is None or len(leftover.split()) < 20


def test_language_id():
    lang, score = detect_language(" ".join(ARTICLE_DE))
    assert lang == "de" and score > 0.9
    lang, score = detect_language(" ".join(ARTICLE_EN))
    assert lang == "en" and score > 0.9
    assert detect_language("12345 !!!") == ("und", 0.0)


# --- quality filters --------------------------------------------------------------------------


def test_clean_article_passes_every_default_filter():
    text = "\n".join(ARTICLE_EN)
    assert apply_filters(text, "en", "https://example.com/a", default_filters()) == (True, None)


def test_spam_repetition_dropped_with_reason():
    spam = "\n".join(["Buy cheap pumps now, best cheap pumps online today."] * 20)
    keep, reason = GopherRepetitionFilter().filter(spam, "en")
    assert not keep and reason == "gopher_repetition:dup_line_frac"
    stuffing = " ".join(["cheap pumps best price"] * 60) + "."
    keep, reason = GopherRepetitionFilter().filter(stuffing, "en")
    assert not keep and reason.startswith("gopher_repetition:")


def test_gopher_quality_reasons():
    f = GopherQualityFilter()
    assert f.filter("Too short to be a document.", "en") == (False, "gopher_quality:min_doc_words")
    long_words = " ".join(["extraordinarily incomprehensibilities"] * 40)
    assert f.filter(long_words, "en") == (False, "gopher_quality:mean_word_length")
    no_stops = " ".join(["pump motor bearing seal valve"] * 15)
    assert f.filter(no_stops, "en") == (False, "gopher_quality:stop_words")
    hashtags = " ".join(["#pump the motor and bearing"] * 15)
    assert f.filter(hashtags, "en") == (False, "gopher_quality:symbol_word_ratio")
    # German stop words count for German text
    assert f.filter(" ".join(ARTICLE_DE), "de") == (True, None)


def test_c4_and_fineweb_reasons():
    text = "\n".join(ARTICLE_EN)
    assert C4QualityFilter().filter(text + "\nfunction() { return 1; }", "en") == (False, "c4_quality:curly_bracket")
    assert C4QualityFilter().filter("Lorem ipsum dolor sit amet.\n" + text, "en")[1] == "c4_quality:lorem_ipsum"
    menu = "\n".join(["Home", "About us", "Products", "Contact", "Login", "Careers"] * 3 + ARTICLE_EN[:1])
    assert C4QualityFilter().filter(menu, "en") == (False, "c4_quality:too_few_sentences")
    assert FineWebQualityFilter().filter(menu, "en")[0] is False
    no_punct = "\n".join(s.rstrip(".") for s in ARTICLE_EN)
    assert FineWebQualityFilter().filter(no_punct, "en") == (False, "fineweb_quality:line_punct_ratio")


def test_url_blocklist_matches_domains_and_whole_tokens():
    f = URLBlocklistFilter(blocked_domains=["spam.example"], blocked_words=["casino"])
    assert f.filter("", "en", "https://www.spam.example/x") == (False, "url_blocklist:domain")
    assert f.filter("", "en", "https://ok.org/best-casino-bonus") == (False, "url_blocklist:word")
    assert f.filter("", "en", "https://notspam.example/x") == (True, None)
    assert f.filter("", "en", "https://ok.org/casinoroyale-review") == (True, None)


# --- PII --------------------------------------------------------------------------------------


def test_pii_redacted_and_ordinary_numbers_untouched():
    text = (
        "Write to jane.doe@example.com or call +1 415-555-0132 or (212) 555-0199 or +49 30 12345678. "
        "The server 203.0.113.7 and the gateway 10.0.0.1 were reset. Card 4111 1111 1111 1111 expired. "
        "In 1998 the plant made 12,000 pumps, 2019-2020 revenue was $3,450.00, order 1234567890123 shipped on "
        "2024-05-12, firmware version 10.2.0.1 fixed it, and 100 200 3000 units remain."
    )
    redacted, counts = redact_pii(text)
    assert counts == {"email": 1, "phone": 3, "ip": 2, "card": 1}
    for leaked in ("jane.doe", "415-555", "555-0199", "30 12345678", "203.0.113.7", "10.0.0.1 ", "4111"):
        assert leaked not in redacted
    for kept in ("1998", "12,000", "2019-2020", "$3,450.00", "1234567890123", "2024-05-12", "version 10.2.0.1", "100 200 3000"):
        assert kept in redacted
    assert redacted.count("<PHONE>") == 3 and "<EMAIL>" in redacted and "<CARD>" in redacted
    spans = find_pii(text)
    assert [k for k, _, _ in spans] == ["email", "phone", "phone", "phone", "ip", "ip", "card"]
    assert all(text[s:e] for _, s, e in spans)
    assert find_pii(redacted) == []


# --- the shard pipeline -----------------------------------------------------------------------


def test_curate_shard_keeps_clean_english_and_explains_every_drop(tmp_path):
    rng = random.Random(0)
    pii_article = ARTICLE_EN + ["For help, write to service.desk@example.com or call (212) 555-0199 today."]
    spam = ["Buy cheap pumps now, best cheap pumps online today, cheap pumps here."] * 12
    shard = write_warc(
        tmp_path / "s.warc.gz",
        [
            ("https://a.example/clean", page(ARTICLE_EN).encode(), HTML),
            ("https://a.example/pii", page(pii_article).encode(), HTML),
            ("https://a.example/de", page(ARTICLE_DE, lang="de").encode(), HTML),
            ("https://a.example/spam", page(spam).encode(), HTML),
            ("https://a.example/boiler", page([]).encode(), HTML),
            ("https://a.example/empty", b"<html><head><title>Empty</title></head><body></body></html>", HTML),
            ("https://a.example/image", b"GIF89a\x00\x00", "image/gif"),
            ("https://a.example/random", page(words_page(rng, 200)).encode(), HTML),
        ],
    )
    result = curate_shard(shard, CurationConfig(workers=1), shard="s",
                          kept_path=tmp_path / "kept.parquet", dropped_path=tmp_path / "dropped.parquet")

    assert result.kept.schema == KEPT_SCHEMA and result.dropped.schema == DROPPED_SCHEMA
    kept = result.kept.to_pylist()
    dropped = {r["url"].rsplit("/", 1)[1]: r for r in result.dropped.to_pylist()}
    assert {r["url"] for r in kept} >= {"https://a.example/clean", "https://a.example/pii"}
    assert dropped["de"]["drop_reason"] == "lang:de"
    assert dropped["spam"]["drop_reason"].startswith("gopher_repetition:")
    assert dropped["boiler"]["drop_reason"] is not None  # cookie-banner leftovers fail a filter
    assert dropped["empty"]["drop_reason"] == "no_text"
    pii_row = next(r for r in kept if r["url"].endswith("/pii"))
    assert "<EMAIL>" in pii_row["text"] and "<PHONE>" in pii_row["text"] and pii_row["pii_count"] == 2
    assert all("@" not in r["text"] for r in kept + list(dropped.values()))
    assert all(len(r["id"]) == 40 and r["shard"] == "s" and r["lang"] == "en" for r in kept)

    stats = result.stats
    assert stats["records_read"] == 8 and stats["skipped_by_reason"] == {"non_html": 1}
    assert stats["kept"] == len(kept) and stats["dropped"] == len(dropped)
    assert stats["pii_by_kind"] == {"email": 1, "phone": 1}
    assert set(stats["seconds_per_stage"]) == {"read", "extract", "langid", "filter", "pii"}
    # ids are stable: the same shard curated twice gives the same rows
    again = curate_shard(shard, CurationConfig(workers=1), shard="s", kept_path=tmp_path / "k2.parquet",
                         dropped_path=tmp_path / "d2.parquet")
    assert again.kept.equals(result.kept)


# --- dedup ------------------------------------------------------------------------------------


def test_exact_duplicates_keep_smallest_id_in_any_order():
    ids = ["c", "a", "b", "d"]
    texts = ["Hello, World!", "hello world", "HELLO   world.", "something else"]
    keep, dup_of = exact_duplicate_mask(ids, texts)
    assert keep.tolist() == [False, True, False, True]
    assert dup_of == ["a", None, "a", None]
    order = [3, 2, 0, 1]
    keep2, dup2 = exact_duplicate_mask([ids[i] for i in order], [texts[i] for i in order])
    assert dict(zip([ids[i] for i in order], keep2.tolist())) == dict(zip(ids, keep.tolist()))
    assert normalize_for_dedup("Ｆｕｌｌ-width  TEXT!") == "full width text"


def test_minhash_signatures_estimate_the_jaccard_of_the_reference_shingles():
    rng = random.Random(1)
    base = words_page(rng, 300)
    texts = [" ".join(base), "only four words here", "", " ".join(ARTICLE_DE)]
    for k in (2, 8, 20):  # k edited words: true Jaccard about 0.94, 0.77, 0.55
        edited = " ".join(base).split()
        for i in random.Random(k).sample(range(len(edited)), k):
            edited[i] = f"edit{i}"
        texts.append(" ".join(edited))
    sigs = minhash_signatures(texts, num_perm=112, ngram=5, seed=1)
    assert sigs.shape == (7, 112) and sigs.dtype == np.uint64
    np.testing.assert_array_equal(sigs, minhash_signatures(texts, num_perm=112, ngram=5, seed=1))
    assert (sigs[2] == EMPTY_HASH).all() and (sigs[[0, 1, 3]] < EMPTY_HASH).all()
    # The fast path hashes exactly the reference shingle sets (same sizes: same sets, no collision)...
    assert [len(h) for h in shingle_hashes(texts)] == [len(shingles(t)) for t in texts]
    # ...and the signatures estimate their Jaccard (112 permutations: sd <= 0.05).
    for j in (4, 5, 6):
        a, b = shingles(texts[0]), shingles(texts[j])
        true_j = len(a & b) / len(a | b)
        assert abs(np.mean(sigs[0] == sigs[j]) - true_j) < 0.15, (j, true_j)


def _near_dup_corpus():
    rng = random.Random(7)
    base = words_page(rng, 300)
    edited = list(base)
    words = edited[3].split()
    words[2:5] = ["completely", "different", "words"]  # a 3-word edit
    edited[3] = " ".join(words)
    shared = "Subscribe to our newsletter to receive the latest maintenance tips and offers every week."
    other1 = words_page(random.Random(11), 300) + [shared]
    other2 = words_page(random.Random(12), 300) + [shared]
    ids = ["doc-b", "doc-a", "doc-x", "doc-y"]
    texts = [" ".join(base), " ".join(edited), " ".join(other1), " ".join(other2)]
    return ids, texts


def test_near_duplicate_cluster_for_small_edit_not_for_shared_boilerplate():
    ids, texts = _near_dup_corpus()
    sigs = minhash_signatures(texts)
    cluster_id, size, keep = near_duplicate_clusters(ids, sigs, threshold=0.8)
    assert cluster_id == ["doc-a", "doc-a", "doc-x", "doc-y"]
    assert size.tolist() == [2, 2, 1, 1]
    assert keep.tolist() == [False, True, True, True]


_ORDER_IDS, _ORDER_TEXTS = _near_dup_corpus()
_ORDER_IDS = _ORDER_IDS + ["doc-c"]
_ORDER_TEXTS = _ORDER_TEXTS + [_ORDER_TEXTS[0]]  # an exact copy joins the near-dup cluster
_ORDER_SIGS = minhash_signatures(_ORDER_TEXTS)


@settings(max_examples=30, deadline=None)
@given(order=st.permutations(range(len(_ORDER_IDS))))
def test_near_duplicate_clusters_are_order_independent(order):
    ids = [_ORDER_IDS[i] for i in order]
    cluster_id, size, keep = near_duplicate_clusters(ids, _ORDER_SIGS[list(order)])
    by_id = {i: (c, int(n), bool(k)) for i, c, n, k in zip(ids, cluster_id, size, keep)}
    assert by_id == {
        "doc-a": ("doc-a", 3, True),
        "doc-b": ("doc-a", 3, False),
        "doc-c": ("doc-a", 3, False),
        "doc-x": ("doc-x", 1, True),
        "doc-y": ("doc-y", 1, True),
    }


@settings(max_examples=30, deadline=None)
@given(order=st.permutations(range(4)))
def test_exact_duplicates_are_order_independent(order):
    ids = ["c", "a", "b", "d"]
    texts = ["Hello, World!", "hello world", "HELLO   world.", "something else"]
    keep, dup_of = exact_duplicate_mask([ids[i] for i in order], [texts[i] for i in order])
    got = {ids[i]: (bool(k), d) for i, k, d in zip(order, keep, dup_of)}
    assert got == {"a": (True, None), "b": (False, "a"), "c": (False, "a"), "d": (True, None)}


# --- decontamination and domain selection -----------------------------------------------------


def test_decontamination_finds_13_gram_leak():
    item = "Question: why does a centrifugal pump lose pressure when the impeller is worn and the seal leaks?"
    index = ngram_index([item], n=13)
    leaking = "Forum post. " + item.upper().replace("?", "!") + " Thanks for any help."
    clean = " ".join(ARTICLE_EN)
    counts = find_contaminated([leaking, clean], index, n=13)
    assert counts[0] >= 1 and counts[1] == 0
    assert contaminated(clean, index) == []
    short = ngram_index(["Which valve opened?"], n=8)
    assert find_contaminated(["I asked which valve opened, nobody knew."], short, n=8).tolist() == [1]


DOMAIN_SEED = [
    "Fault: the centrifugal pump loses pressure. Cause: worn impeller or leaking mechanical seal. Fix: replace the impeller and the seal, then check the suction line for air.",
    "Symptom: the electric motor overheats under load. Cause: blocked cooling fan or a failed bearing. Fix: clean the fan cover, replace the bearing and measure the winding insulation.",
    "Fault: the hydraulic press valve opens repeatedly. Cause: weak valve spring and contaminated oil. Fix: replace the spring, flush the circuit and change the return filter.",
    "Symptom: strong vibration at the gearbox coupling. Cause: shaft misalignment or a worn coupling insert. Fix: realign the shafts with a laser tool and replace the insert.",
]
DOMAIN_IN = [
    "Our compressor tripped on high temperature. The technician found a blocked cooling fan and a failed bearing in the motor, replaced the bearing and cleaned the fan.",
    "The pump lost pressure every afternoon. A worn impeller and a leaking seal were the cause; after replacing both the pressure stayed stable.",
    " ".join(ARTICLE_EN),
]
DOMAIN_OUT = [
    "The home team won the championship final after a late goal in extra time, and fans celebrated in the streets all night.",
    "Mix the flour, sugar and butter, add two eggs and bake the cake for forty minutes until golden brown.",
    "The old town has narrow streets, a beautiful cathedral and small cafes where travellers enjoy coffee in the sun.",
    "The government announced new elections after the parliament rejected the budget proposal on Tuesday.",
]


def test_domain_selection_needs_a_crawl_to_learn_from_and_the_seed_word_share_separates_faults():
    # Seven pages are too few to learn a threshold from (tests/test_domain_selection.py has the crawls): nothing
    # is selected, and the warning says why. The plain word-share measure of the separation check still ranks
    # every fault page above every general page.
    sel = select_domain_pages(DOMAIN_SEED, [f"manual-{i}" for i in range(len(DOMAIN_SEED))], DOMAIN_IN + DOMAIN_OUT)
    assert not sel.selected.any() and "too few" in sel.warning
    expected = "document" if len(DOMAIN_SEED) >= 5 else "chunk"
    assert sel.validation["held_out_by"].startswith(expected) and len(sel.scores) == len(DOMAIN_IN + DOMAIN_OUT)
    share = seed_vocabulary_share(DOMAIN_IN + DOMAIN_OUT, DOMAIN_SEED)
    assert share[: len(DOMAIN_IN)].min() > share[len(DOMAIN_IN):].max()
