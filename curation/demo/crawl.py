"""Deterministic demo crawl: WARC.gz shards of realistic HTML with ground truth for every page.

Layout written under `root`:

    landing/<shard>.warc.gz     the crawl shards (the ingest sensor watches this folder)
    demo/truth/<shard>.jsonl    one ground-truth row per page (kind, duplicates, PII, leaks, facts)
    demo/seed/manual-*.txt      the domain seed corpus: maintenance manuals (train facts only)
    demo/facts.json             the fact base with its train / held-out split
    demo/benchmarks/<kind>.jsonl  the benchmarks (held-out facts only), in the formats evaluation/benchmarks.py reads

Page kinds: domain (teaches facts, train and held-out), general (real English: the standard library's
docstrings, curation/demo/real_english.py; templated cooking, travel, ... pages beyond its 468 pages),
foreign (de/fr/es), spam, boilerplate (no main content), leak (a "practice quiz" that copies
benchmark items verbatim). Exact duplicates (same HTML, other URL) and near duplicates (a few
words edited, other boilerplate) are planted within and across shards.
"""
from __future__ import annotations

import hashlib
import html
import io
import json
import random
import uuid
from dataclasses import dataclass
from pathlib import Path

from curation.demo import text as T
from curation.demo.real_english import real_english_pages
from curation.demo.facts import FactBase, Fault, build_fact_base, capitalize
from curation.tables import read_jsonl, write_jsonl_atomic, write_text_atomic

WARC_DATE = "2026-11-01T00:00:00Z"


@dataclass(frozen=True)
class DemoCrawlConfig:
    n_shards: int = 4
    pages_per_shard: int = 200
    seed: int = 0
    # Fractions of original pages; duplicates are added on top.
    frac_domain: float = 0.40
    frac_foreign: float = 0.07
    frac_spam: float = 0.06
    frac_boilerplate: float = 0.05
    frac_leak: float = 0.02
    frac_exact_dup: float = 0.06
    frac_near_dup: float = 0.06
    frac_pii: float = 0.12
    # General pages from real English (the standard library's docstrings, curation/demo/real_english.py) as far
    # as it goes; the templated general pages only beyond it (or everywhere when False).
    real_english: bool = True


@dataclass
class Page:
    url: str
    kind: str
    lang: str
    title: str
    paragraphs: list[str]
    site: str
    facts: list[str]
    pii: list[dict]
    leaked_items: list[str]
    exact_duplicate_of: str | None = None
    near_duplicate_of: str | None = None
    # True word 5-gram Jaccard of a near duplicate's main text with its source's (dedup's view).
    near_duplicate_jaccard: float | None = None


_SITES = ["plantreliability.example", "maintenance-hub.example", "shopfloor-notes.example",
          "dailyreader.example", "weekendtrips.example", "homecook.example", "cityherald.example",
          "gadgetdesk.example", "greenfingers.example", "sportsroundup.example"]


def _boilerplate(site: str, rng: random.Random) -> tuple[str, str, str]:
    nav = " ".join(f'<li><a href="/{w.lower()}">{w}</a></li>'
                   for w in rng.sample(["Home", "News", "Guides", "Shop", "About", "Contact", "Blog",
                                        "Events", "Careers", "Support"], 6))
    header = f'<header><div class="logo">{site}</div><nav><ul>{nav}</ul></nav></header>'
    cookie = ('<div class="cookie-banner" id="cookie-consent">We use cookies to improve your experience. '
              'By continuing to browse you accept our <a href="/privacy">privacy policy</a>. '
              '<button>Accept all</button> <button>Settings</button></div>')
    footer = (f'<footer><p>&copy; 2026 {site}. All rights reserved.</p><ul><li><a href="/imprint">Imprint'
              '</a></li><li><a href="/privacy">Privacy</a></li><li><a href="/terms">Terms of use</a></li>'
              '</ul><p>Subscribe to our newsletter for weekly updates.</p></footer>')
    return header, cookie, footer


def render_html(page: Page, rng: random.Random) -> str:
    header, cookie, footer = _boilerplate(page.site, rng)
    related = "".join(f'<li><a href="/related/{i}">{w}</a></li>'
                      for i, w in enumerate(rng.sample(["Top stories", "Most read", "Popular guides",
                                                         "Editor picks", "Latest videos"], 3)))
    aside = f'<aside class="sidebar"><h3>Related</h3><ul>{related}</ul></aside>'
    if page.paragraphs:
        body = "".join(f"<p>{html.escape(p)}</p>\n" for p in page.paragraphs)
        main = (f'<main><article><h1>{html.escape(page.title)}</h1>'
                f'<p class="byline">Posted on 2026-10-{rng.randint(1, 28):02d}</p>\n{body}</article></main>')
    else:
        main = '<main><div class="login">Please sign in to continue.</div></main>'
    return (f'<!DOCTYPE html><html lang="{page.lang}"><head><meta charset="utf-8">'
            f'<title>{html.escape(page.title)}</title><script>window.dataLayer=[];</script></head><body>'
            f'{cookie}{header}{main}{aside}{footer}</body></html>')


def _pii_paragraph(rng: random.Random) -> tuple[str, list[dict]]:
    name = rng.choice(["service", "j.miller", "support", "anna.schmidt", "helpdesk", "k.tanaka"])
    email = f"{name}@{rng.choice(['acme-industrial', 'northmill', 'rivertech', 'steelworks'])}.com"
    phone = rng.choice([f"+1 415-555-{rng.randint(1000, 9999)}", f"(212) 555-{rng.randint(1000, 9999)}",
                        f"+44 20 7946 {rng.randint(1000, 9999)}"])
    ip = f"{rng.randint(23, 198)}.{rng.randint(1, 254)}.{rng.randint(1, 254)}.{rng.randint(1, 254)}"
    text = (f"For service requests, e-mail {email} or call {phone} during business hours. "
            f"Our remote monitoring gateway is reachable at {ip} for registered customers.")
    return text, [{"type": "email", "value": email}, {"type": "phone", "value": phone},
                  {"type": "ip", "value": ip}]


def _domain_page(equipment: str, facts: list[Fault], rng: random.Random) -> tuple[str, list[str]]:
    title = rng.choice(T.DOMAIN_TITLES).format(equipment=equipment, Equipment=capitalize(equipment))
    paragraphs = [rng.choice(T.DOMAIN_INTROS)]
    # One phrasing per fact and page: a page that says the same thing twice is dropped by Gopher.
    for f, template in zip(facts, rng.sample(T.FACT_PHRASINGS, len(facts))):
        paragraphs.append(T.render_fact(f, rng, template))
    paragraphs.append(rng.choice(T.DOMAIN_OUTROS))
    return title, paragraphs


def _leak_page(equipment: str, facts: list[Fault], items: list[dict], rng: random.Random) -> tuple[str, list[str]]:
    """An ordinary domain article that ends with a "practice quiz" copying benchmark items verbatim."""
    title, paragraphs = _domain_page(equipment, facts, rng)
    paragraphs.append("Test your knowledge with this practice quiz. The answers are printed below each "
                      "question, so cover them with your hand while you think.")
    for item in items:
        paragraphs.append(f"{item['question']} Answer: {item['answer_text']}.")
    return title, paragraphs


def _edit_words(paragraphs: list[str], n_edits: int, rng: random.Random) -> list[str]:
    """A near duplicate: `n_edits` words swapped for others somewhere in the text."""
    words = " ".join(paragraphs).split(" ")
    lengths = [len(p.split(" ")) for p in paragraphs]
    for _ in range(n_edits):
        i = rng.randrange(len(words))
        words[i] = rng.choice(["really", "often", "also", "quickly", "today", "indeed", "then"])
    out, start = [], 0
    for n in lengths:
        out.append(" ".join(words[start:start + n]))
        start += n
    return out


def _text_jaccard(a: list[str], b: list[str]) -> float:
    from curation.dedup import shingles

    sa, sb = shingles("\n".join(a)), shingles("\n".join(b))
    return round(len(sa & sb) / len(sa | sb), 4) if sa | sb else 1.0


def _shard_name(i: int) -> str:
    return f"crawl-{i:05d}"


def plan_pages(config: DemoCrawlConfig, facts: FactBase, leak_items: list[dict]) -> list[list[Page]]:
    """Decide every page of every shard (content and ground truth), without writing anything."""
    rng = random.Random(config.seed)
    n_total = config.n_shards * config.pages_per_shard
    n_dups = int(n_total * config.frac_exact_dup) + int(n_total * config.frac_near_dup)
    n_orig = n_total - n_dups
    kinds = (["domain"] * int(n_orig * config.frac_domain) + ["foreign"] * int(n_orig * config.frac_foreign)
             + ["spam"] * int(n_orig * config.frac_spam) + ["boilerplate"] * int(n_orig * config.frac_boilerplate)
             + ["leak"] * max(1, int(n_orig * config.frac_leak)))
    kinds += ["general"] * (n_orig - len(kinds))
    rng.shuffle(kinds)

    # Domain pages cycle through every fact so that each one is taught by several pages.
    by_eq: dict[str, list[Fault]] = {}
    for f in facts.all:
        by_eq.setdefault(f.equipment, []).append(f)
    equipments = sorted(by_eq)
    leak_cursor = 0
    real_pages, real_cursor = (real_english_pages() if config.real_english else ()), 0
    originals: list[Page] = []
    for idx, kind in enumerate(kinds):
        site = rng.choice(_SITES[:3] if kind in ("domain", "leak") else _SITES)
        url = f"https://{site}/{kind}/{idx:06d}-{uuid.UUID(int=rng.getrandbits(128)).hex[:8]}"
        lang, fact_ids, leaked = "en", [], []
        if kind == "domain":
            eq = equipments[idx % len(equipments)]
            chosen = rng.sample(by_eq[eq], rng.randint(3, 5))
            title, paragraphs = _domain_page(eq, chosen, rng)
            fact_ids = [f.fact_id for f in chosen]
        elif kind == "general":
            _, title, paragraphs = T.general_page(rng)  # drawn even when replaced: every other page stays as it was
            if real_cursor < len(real_pages):  # real English (Python's docstrings) first, templates beyond it
                title, paragraphs = real_pages[real_cursor][0], list(real_pages[real_cursor][1])
                real_cursor += 1
        elif kind == "foreign":
            lang, title, paragraphs = T.foreign_page(rng)
        elif kind == "spam":
            title, paragraphs = T.spam_page(rng)
        elif kind == "boilerplate":
            title, paragraphs = "Sign in", []
        else:  # leak
            chunk = [leak_items[(leak_cursor + j) % len(leak_items)] for j in range(3)]
            leak_cursor += 3
            eq = equipments[idx % len(equipments)]
            chosen = rng.sample(by_eq[eq], 3)
            title, paragraphs = _leak_page(eq, chosen, chunk, rng)
            leaked, fact_ids = [c["id"] for c in chunk], [f.fact_id for f in chosen]
        pii: list[dict] = []
        if paragraphs and kind in ("domain", "general") and rng.random() < config.frac_pii / 0.8:
            text, pii = _pii_paragraph(rng)
            paragraphs = paragraphs[:-1] + [text] + paragraphs[-1:]
        originals.append(Page(url, kind, lang, title, paragraphs, site, fact_ids, pii, leaked))

    # Duplicates copy an original from anywhere in the crawl, so they cross shard boundaries.
    content_pages = [p for p in originals if p.kind in ("domain", "general") and p.paragraphs]
    dups: list[Page] = []
    for j in range(n_dups):
        src = rng.choice(content_pages)
        exact = j < int(n_total * config.frac_exact_dup)
        mirror = f"https://mirror{j % 5}.example/{src.url.split('/', 3)[3]}"
        if exact:
            dups.append(Page(mirror, src.kind, src.lang, src.title, list(src.paragraphs), src.site,
                             src.facts, src.pii, src.leaked_items, exact_duplicate_of=src.url))
        else:
            edited = _edit_words(src.paragraphs, rng.randint(1, 3), rng)
            dups.append(Page(mirror, src.kind, src.lang, src.title, edited, rng.choice(_SITES), src.facts,
                             src.pii, src.leaked_items, near_duplicate_of=src.url,
                             near_duplicate_jaccard=_text_jaccard(src.paragraphs, edited)))
    pages = originals + dups
    rng.shuffle(pages)
    return [pages[s::config.n_shards] for s in range(config.n_shards)]


def _write_warc(pages: list[Page], path: Path, shard: str, seed: int) -> list[dict]:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    rng = random.Random(f"{seed}-{shard}")
    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=True)
    truth = []
    for page in pages:
        # Exact duplicates are byte-identical pages; render them from the source's own RNG seed.
        page_rng = random.Random(page.exact_duplicate_of or page.url)
        body = render_html(page, page_rng).encode("utf-8")
        record_id = f"<urn:uuid:{uuid.UUID(int=rng.getrandbits(128))}>"
        http_headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                                   ("Content-Length", str(len(body)))], protocol="HTTP/1.1")
        record = writer.create_warc_record(
            page.url, "response", payload=io.BytesIO(body), http_headers=http_headers,
            warc_headers_dict={"WARC-Record-ID": record_id, "WARC-Date": WARC_DATE})
        writer.write_record(record)
        truth.append({
            "url": page.url, "record_id": record_id, "shard": shard, "kind": page.kind, "lang": page.lang,
            "exact_duplicate_of": page.exact_duplicate_of, "near_duplicate_of": page.near_duplicate_of,
            "near_duplicate_jaccard": page.near_duplicate_jaccard,
            "pii": page.pii, "leaked_items": page.leaked_items, "facts": page.facts,
            "content_sha1": hashlib.sha1(body).hexdigest(),
        })
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)  # atomic: the sensor never sees half a shard
    return truth


def write_seed_corpus(facts: FactBase, seed_dir: Path, seed: int) -> list[Path]:
    """A few maintenance manuals covering the *train* facts only, grouped by equipment."""
    rng = random.Random(f"seed-corpus-{seed}")
    by_eq: dict[str, list[Fault]] = {}
    for f in facts.train:
        by_eq.setdefault(f.equipment, []).append(f)
    equipments = sorted(by_eq)
    paths = []
    for m in range(4):
        group = equipments[m::4]
        lines = [f"Maintenance manual {m + 1}: troubleshooting and corrective maintenance", ""]
        for s, eq in enumerate(group, 1):
            lines += [f"Chapter {s}. The {eq}", "",
                      f"This chapter covers the faults that most often stop a {eq} in service. "
                      f"Always isolate the {eq} and apply lockout and tagout before opening it.", ""]
            for k, f in enumerate(by_eq[eq], 1):
                lines += [f"{s}.{k} {capitalize(f.symptom)}",
                          f"Probable cause: {f.cause}. Corrective action: {f.fix}. "
                          f"{T.render_fact(f, rng)}", ""]
        path = seed_dir / f"manual-{m + 1}.txt"
        write_text_atomic("\n".join(lines), path)
        paths.append(path)
    return paths


def generate_demo_crawl(root: str | Path, config: DemoCrawlConfig = DemoCrawlConfig()) -> dict:
    """Write the whole demo crawl under `root`; returns a summary (shards, pages per kind, paths)."""
    from curation.demo.benchmarks import build_benchmarks, leak_items, write_benchmark_sources

    root = Path(root)
    facts = build_fact_base(config.seed)
    bench = build_benchmarks(facts, config.seed)
    shards = plan_pages(config, facts, leak_items(bench))
    kinds: dict[str, int] = {}
    shard_names = []
    for s, pages in enumerate(shards):
        name = _shard_name(s)
        truth = _write_warc(pages, root / "landing" / f"{name}.warc.gz", name, config.seed)
        write_jsonl_atomic(truth, root / "demo" / "truth" / f"{name}.jsonl")
        for row in truth:
            kinds[row["kind"]] = kinds.get(row["kind"], 0) + 1
        shard_names.append(name)
    write_text_atomic(json.dumps(facts.to_dict(), indent=1), root / "demo" / "facts.json")
    write_seed_corpus(facts, root / "demo" / "seed", config.seed)
    # The benchmarks, from the held-out facts: ordinary JSONL files (one per kind) that the demo passes to the
    # chain as its benchmark files (inputs.benchmarks), like a user's own folder.
    write_benchmark_sources(bench, root / "demo" / "benchmarks")
    return {"shards": shard_names, "pages": sum(len(p) for p in shards), "pages_by_kind": kinds,
            "landing_dir": str(root / "landing"), "demo_dir": str(root / "demo"),
            "benchmarks_dir": str(root / "demo" / "benchmarks")}


def load_fact_base(demo_dir: str | Path) -> FactBase:
    return FactBase.from_dict(json.loads((Path(demo_dir) / "facts.json").read_text()))


def load_truth(demo_dir: str | Path, shard: str | None = None) -> list[dict]:
    """Ground-truth rows of every shard, or of one `shard` (its own sidecar file only)."""
    pattern = f"{shard}.jsonl" if shard else "*.jsonl"
    return [row for path in sorted((Path(demo_dir) / "truth").glob(pattern)) for row in read_jsonl(path)]


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--pages-per-shard", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print(json.dumps(generate_demo_crawl(a.root, DemoCrawlConfig(a.shards, a.pages_per_shard, a.seed)), indent=1))
