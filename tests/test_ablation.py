"""Ablations (issue 17 items 4-6): variants share every stage whose settings and inputs agree; a changed setting
reruns exactly the stages below it; the comparison sets the variants side by side with paired verdicts."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _keys(overrides=(), variant=None, path=REPO / "recipes" / "tiny.yaml"):
    from pipelines.definitions import build_definitions
    from pipelines.recipe import load_recipe
    from pipelines.runner import stage_keys

    recipe = load_recipe(path, overrides)
    if variant:
        recipe = recipe.variant(variant)
    return stage_keys(recipe, build_definitions(recipe=recipe, home="/tmp/modelworks-keys"))


def _below(op):
    """`op` and every op downstream of it (from the asset graph)."""
    import dagster as dg

    from pipelines.definitions import all_assets, defs

    graph = defs.resolve_asset_graph()
    op_of = {k: a.node_def.name for a in all_assets for k in a.keys}
    start = [k for k, o in op_of.items() if o == op]
    keys = dg.AssetSelection.assets(*start).downstream().resolve(graph)
    return {op_of[k] for k in keys}


@pytest.mark.parametrize("override,stage", [("dapt.lr=0.002", "dapt_model"), ("sft.learning_rate=0.001", "sft_model"),
                                            ("curation.min_lang_score=0.5", "curated_pages"),
                                            ("eval.limit=4", None)])
def test_a_set_override_reruns_exactly_the_stages_below_it(override, stage):
    before, after = _keys(), _keys([f"--set {override}".split(" ", 1)[1]])
    changed = {op for op in before if before[op] != after[op]}
    if stage is None:  # eval settings: every score asset and what reads them, nothing that trains
        assert changed and all(op.endswith("_scores") or op in ("stage_report", "variant_comparison")
                               for op in changed)
        return
    assert changed == _below(stage)
    assert "crawl_shard" not in changed


def test_variants_share_stages_above_their_difference(tmp_path):
    recipe = tmp_path / "abl.yaml"
    recipe.write_text(f"extends: {REPO / 'recipes' / 'tiny.yaml'}\nvariants:\n  ref:\n  lr: {{dapt.lr: 3.0e-3}}\n"
                      "  filt: {curation: {min_lang_score: 0.5}}\n")
    ref, lr, filt = (_keys(variant=v, path=recipe) for v in ("ref", "lr", "filt"))
    assert {op for op in ref if ref[op] != lr[op]} == _below("dapt_model")
    # a variant that changes a filter shares nothing below it (the shard's ingest and the seed corpus above it)
    assert {op for op in ref if ref[op] == filt[op]} == {op for op in ref if op not in _below("curated_pages")}
    assert ref == _keys()  # the empty variant is the recipe as is


@pytest.mark.e2e
def test_ablation_materializes_shared_partitions_once_and_compares_variants(tmp_path):
    import dagster as dg

    recipe = tmp_path / "abl.yaml"
    recipe.write_text(f"extends: {REPO / 'recipes' / 'tiny.yaml'}\nvariants:\n  ref:\n  lr: {{dapt.lr: 3.0e-3}}\n")
    home, dagster_home = tmp_path / "home", tmp_path / "dagster_home"
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.pop("MODELWORKS_RECIPE", None)
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "demo", "--recipe", str(recipe), "--home", str(home)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert "vs ref, paired on the same items" in proc.stdout
    # each shared partition was materialized exactly once across the variants; each variant has its own models
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    counts = {}
    for asset in ("curated_pages", "minhash_signatures", "deduplicated_pages", "base_model", "base_model_scores",
                  "dapt_model", "dpo_model_scores", "variant_comparison"):
        records = instance.fetch_materializations(dg.AssetKey(asset), limit=100).records
        counts[asset] = [(r.partition_key, instance.get_run_by_id(r.run_id).tags.get("modelworks/variant"))
                         for r in records]
    shards = {p for p, _ in counts["curated_pages"]}
    assert len(shards) == 2 and sorted(p for p, _ in counts["curated_pages"]) == sorted(shards)
    assert len(counts["minhash_signatures"]) == 2
    assert [v for _, v in counts["deduplicated_pages"]] == ["ref"]
    assert [v for _, v in counts["base_model"]] == ["ref"] and [v for _, v in counts["base_model_scores"]] == ["ref"]
    assert sorted(v for _, v in counts["dapt_model"]) == ["lr", "ref"]
    assert sorted(v for _, v in counts["dpo_model_scores"]) == ["lr", "ref"]
    assert len(counts["variant_comparison"]) == 1
    # the UI tells one variant's model from another's: the materialization says it, the comparison links the runs
    for r in instance.fetch_materializations(dg.AssetKey("dpo_model"), limit=10).records:
        meta = r.asset_materialization.metadata
        tagged = instance.get_run_by_id(r.run_id).tags["modelworks/variant"]
        assert meta["variant"].value == tagged and meta["recipe"].value.startswith(f"abl.{tagged} (")
    table = instance.fetch_materializations(dg.AssetKey("variant_comparison"), limit=1).records[0] \
        .asset_materialization.metadata["variant_runs"].value
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()[2:]}
    dpo_runs = {v: r.run_id for r in instance.fetch_materializations(dg.AssetKey("dpo_model"), limit=10).records
                for v in [instance.get_run_by_id(r.run_id).tags["modelworks/variant"]]}
    assert f"/runs/{dpo_runs['ref']}" in rows["ref"] and f"/runs/{dpo_runs['lr']}" in rows["lr"]
    assert "(shared with ref)" in rows["lr"]  # its base model is ref's
    manifest = json.loads((home / "reports" / "variants.json").read_text())
    ref, lr = (v["stage_keys"] for v in manifest["variants"])
    assert ref["curated_pages"] == lr["curated_pages"] and ref["dapt_model"] != lr["dapt_model"]
    assert (home / "stages" / "dapt_model" / ref["dapt_model"] / "models" / "dapt").is_dir()
    assert (home / "stages" / "dapt_model" / lr["dapt_model"] / "models" / "dapt").is_dir()
    reuse = [json.loads(x) for x in (home / "reports" / "reuse.jsonl").read_text().splitlines()]
    assert {(r["op"], r["partition"]) for r in reuse if r["variant"] == "lr" and r["action"] == "reused"} >= {
        ("curated_pages", s) for s in shards}
    # the comparison: per-variant metrics with CIs, paired verdicts of lr against ref, forgetting included
    comp = json.loads((home / "reports" / "comparison.json").read_text())
    assert comp["variants"] == ["ref", "lr"] and comp["reference"] == "ref"
    mcq = comp["rows"]["modelworks_mcq_test/acc"]
    for v in ("ref", "lr"):
        assert mcq[v]["dpo"]["lo"] <= mcq[v]["dpo"]["value"] <= mcq[v]["dpo"]["hi"]
    paired = [c for c in comp["comparisons"]["modelworks_mcq_test/acc"] if c["stage"] == "dpo"]
    assert paired[0]["variant"] == "lr" and paired[0]["verdict"] in (
        "helped", "no significant change", "hurt", "too few to tell")
    assert any(m["forgetting"] for m in comp["metrics"])
    # the base stage is shared: the same model on the same items, no difference
    base = [c for c in comp["comparisons"]["modelworks_mcq_test/acc"] if c["stage"] == "base"][0]
    assert base["diff"] == 0
    for suffix in ("md", "html", "png"):
        assert (home / "reports" / f"comparison.{suffix}").exists()


def test_a_plain_run_after_an_ablation_keeps_the_comparison(tmp_path):
    """stage_report replaces reports/ as a whole; the ablation's files there are carried over, not deleted."""
    from assets.storage import ModelworksStorage

    storage = ModelworksStorage(root=str(tmp_path))
    storage.write_text('{"variants": ["a", "b"]}', storage.comparison("json"))
    storage.write_text("| a | b |", storage.comparison("md"))
    storage.write_text("old", storage.report_json())
    with storage.writing(storage.reports()) as out:
        kept = storage.keep_ablation_outputs(out)
        (out / "report.json").write_text("new")
    assert sorted(kept) == ["comparison.json", "comparison.md"]
    assert (tmp_path / "reports" / "comparison.json").read_text() == '{"variants": ["a", "b"]}'
    assert (tmp_path / "reports" / "report.json").read_text() == "new"
    # an ablation variant's own report (under its stage key) leaves the shared files where they are
    variant = storage.with_stage_keys({"stage_report": "abc123"})
    with variant.writing(variant.reports()) as out:
        assert variant.keep_ablation_outputs(out) == []
        out.mkdir()
        (out / "report.json").write_text("variant")
    assert (tmp_path / "reports" / "comparison.md").exists()
