"""The demo crawl, seed corpus, synthetic data and benchmarks: deterministic and leak-free by construction."""
import gzip
import hashlib
import json

from curation.demo.crawl import DemoCrawlConfig, generate_demo_crawl, load_fact_base, load_truth
from curation.seed import chunk_documents, read_seed_documents
from curation.synthetic.chain import ChainConfig, answer_supported_by_chunk, run_chain
from curation.synthetic.rules import RulesTeacher
from curation.demo.benchmarks import build_benchmarks


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

    docs, _ = read_seed_documents(root / "demo" / "seed")
    seed_text = " ".join(d.text for d in docs)
    # the manuals teach every training fact and no held-out one
    assert all(f.cause in seed_text and f.fix in seed_text for f in facts.train)
    assert not any(f.cause in seed_text for f in facts.heldout if all(f.cause not in g.cause for g in facts.train))
    data = run_chain(chunk_documents(docs, 120), RulesTeacher(), ChainConfig(), log=lambda m: None)
    text = json.dumps(data.sft) + json.dumps(data.preferences)
    for fact in facts.heldout:
        assert f"{fact.symptom} in a {fact.equipment}" not in text
        assert f"{fact.symptom} on a {fact.equipment}" not in text


def test_synthetic_pairs_prefer_the_grounded_answer(demo_root):
    root, _ = demo_root
    docs, _ = read_seed_documents(root / "demo" / "seed")
    chunks = {c.id: c for c in chunk_documents(docs, 120)}
    data = run_chain(list(chunks.values()), RulesTeacher(), ChainConfig(), log=lambda m: None)
    assert data.preferences
    for pair in data.preferences:
        chunk = chunks[pair["chunk_id"]].text
        assert answer_supported_by_chunk(pair["chosen"][0]["content"], chunk)[0]
        assert pair["chosen_mean"] >= pair["rejected_mean"] + 1.0


def test_benchmarks_cover_every_heldout_fact_with_one_correct_choice():
    from curation.demo.facts import build_fact_base

    facts = build_fact_base(0)
    bench = build_benchmarks(facts)
    assert len(bench.mcq) == 4 * len(facts.heldout)
    train_ids = {f.fact_id for f in facts.train}
    for item in bench.mcq:
        assert item["fact_id"] not in train_ids
        assert len(set(item["choices"])) == 4 and 0 <= item["answer"] < 4
    for item in bench.completion:
        assert len(set(item["endings"])) == 4
    assert bench == build_benchmarks(facts)  # deterministic
