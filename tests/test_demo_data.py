"""The demo crawl, seed corpus, synthetic data and benchmarks: deterministic and leak-free by construction."""
import gzip
import hashlib
import json

from curation.demo.crawl import DemoCrawlConfig, generate_demo_crawl, load_fact_base, load_truth
from curation.synthetic import generate, judge, parse_seed_corpus
from evaluation.benchmarks import build_benchmarks


def _digest(root):
    return {p.name: hashlib.sha256(gzip.decompress(p.read_bytes())).hexdigest()
            for p in sorted((root / "landing").glob("*.warc.gz"))}


def test_demo_crawl_is_deterministic_and_has_every_page_kind(demo_root, tmp_path):
    root, summary = demo_root
    again = generate_demo_crawl(tmp_path, DemoCrawlConfig(n_shards=2, pages_per_shard=80, seed=0))
    assert _digest(root) == _digest(tmp_path)
    assert again["pages_by_kind"] == summary["pages_by_kind"]
    assert set(summary["pages_by_kind"]) == {"domain", "general", "foreign", "spam", "boilerplate", "leak"}
    other = generate_demo_crawl(tmp_path / "other", DemoCrawlConfig(n_shards=2, pages_per_shard=80, seed=1))
    assert _digest(tmp_path / "other") != _digest(root)
    assert other["pages"] == summary["pages"] == 160


def test_ground_truth_plants_duplicates_across_shards_pii_and_leaks(demo_root):
    root, _ = demo_root
    truth = load_truth(root / "demo")
    by_url = {t["url"]: t for t in truth}
    exact = [t for t in truth if t["exact_duplicate_of"]]
    near = [t for t in truth if t["near_duplicate_of"]]
    assert exact and near
    # An exact duplicate is byte-identical HTML to its source page.
    assert all(by_url[t["exact_duplicate_of"]]["content_sha1"] == t["content_sha1"] for t in exact)
    assert any(by_url[t["exact_duplicate_of"]]["shard"] != t["shard"] for t in exact + near)
    assert any(t["pii"] for t in truth)
    assert any(t["leaked_items"] for t in truth)


def test_heldout_facts_are_taught_by_web_pages_but_never_by_seed_or_synthetic_data(demo_root):
    root, _ = demo_root
    facts = load_fact_base(root / "demo")
    truth = load_truth(root / "demo")
    taught = {f for t in truth if t["kind"] == "domain" for f in t["facts"]}
    heldout = {f.fact_id for f in facts.heldout}
    assert heldout & taught, "web pages must teach held-out facts"

    entries = parse_seed_corpus(sorted((root / "demo" / "seed").glob("*.txt")))
    assert {(e.equipment, e.cause) for e in entries} == {(f.equipment, f.cause) for f in facts.train}
    data = generate(entries)
    text = json.dumps(data["sft"]) + json.dumps(data["preferences"])
    for fact in facts.heldout:
        assert f"{fact.symptom} in a {fact.equipment}" not in text
        assert f"{fact.symptom} on a {fact.equipment}" not in text


def test_synthetic_pairs_prefer_the_grounded_answer():
    from curation.demo.facts import build_fact_base
    from curation.synthetic import ManualEntry

    facts = build_fact_base(0)
    entries = [ManualEntry("m", f.equipment, f.symptom, f.cause, f.fix) for f in facts.train]
    data = generate(entries)
    assert data["stats"]["sft_conversations"] == len(entries) * 4
    lookup = {e.symptom + e.equipment: e for e in entries}
    for pair in data["preferences"][:50]:
        entry = next(e for k, e in lookup.items() if e.symptom in pair["prompt"][0]["content"]
                     and e.equipment in pair["prompt"][0]["content"])
        assert judge(pair["chosen"][0]["content"], entry)
        assert not judge(pair["rejected"][0]["content"], entry)


def test_benchmarks_cover_every_heldout_fact_with_one_correct_choice():
    from curation.demo.facts import build_fact_base

    facts = build_fact_base(0)
    bench = build_benchmarks(facts)
    assert len(bench.mcq) == 2 * len(facts.heldout)
    train_ids = {f.fact_id for f in facts.train}
    for item in bench.mcq:
        assert item["fact_id"] not in train_ids
        assert len(set(item["choices"])) == 4 and 0 <= item["answer"] < 4
    for item in bench.completion:
        assert len(set(item["endings"])) == 4
    assert bench == build_benchmarks(facts)  # deterministic
