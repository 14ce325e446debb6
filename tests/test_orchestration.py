"""Orchestration: the landing-folder sensor, definitions and per-shard asset materialization."""
from pathlib import Path

import dagster as dg

REPO = Path(__file__).resolve().parent.parent


def test_definitions_have_lineage_from_crawl_shards_to_the_report():
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    upstream = graph.get(dg.AssetKey("stage_report")).parent_keys
    seen, frontier = set(), set(upstream)
    while frontier:
        key = frontier.pop()
        seen.add(key)
        frontier |= set(graph.get(key).parent_keys) - seen
    names = {k.to_user_string() for k in seen}
    for must in ("crawl_shard", "curated_pages", "minhash_signatures", "deduplicated_pages", "domain_corpus",
                 "sft_conversations", "preference_pairs", "benchmark_suite", "decontaminated_training_sets",
                 "seed_corpus", "base_model", "dapt_model", "sft_model", "dpo_model", "dpo_model_scores"):
        assert must in names, must
    groups = {graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert {"ingest", "curation", "dedup", "domain", "synthetic", "benchmarks", "training", "evaluation"} <= groups


def test_the_recipe_is_chosen_where_the_definitions_are_built():
    from pipelines.definitions import build_definitions

    tiny = build_definitions("tiny", home="/tmp/mw-a").resolve_job_def("corpus_to_model_job")
    demo = build_definitions("demo", home="/tmp/mw-b").resolve_job_def("corpus_to_model_job")
    assert tiny.tags["modelworks/recipe"] == "tiny" and demo.tags["modelworks/recipe"] == "demo"
    from pipelines.recipe import load_recipe

    assert load_recipe("tiny").data["pretrain"]["max_steps"] < load_recipe("demo").data["pretrain"]["max_steps"]


def test_sensor_adds_new_landing_shards_as_partitions(demo_root, tmp_path):
    from pipelines.definitions import landing_shard_sensor
    from assets.storage import ModelworksStorage

    root, summary = demo_root
    instance = dg.DagsterInstance.ephemeral()
    storage = ModelworksStorage(root=str(root))
    ctx = dg.build_sensor_context(instance=instance, resources={"storage": storage})
    result = landing_shard_sensor(ctx)
    assert sorted(r.partition_key for r in result.run_requests) == summary["shards"]
    assert result.dynamic_partitions_requests[0].partition_keys == summary["shards"]
    instance.add_dynamic_partitions("crawl_shards", summary["shards"])
    again = landing_shard_sensor(dg.build_sensor_context(instance=instance, resources={"storage": storage}))
    assert not again.run_requests


def test_per_shard_assets_materialize_with_metadata_and_checks(demo_root, tmp_path):
    import shutil

    from assets import curation, dedup, ingest
    from assets.storage import ModelworksStorage

    root, summary = demo_root
    shutil.copytree(root / "landing", tmp_path / "landing")
    shutil.copytree(root / "demo", tmp_path / "demo")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("crawl_shards", summary["shards"])
    shard = summary["shards"][0]
    from pipelines.demo_checks import demo_checks

    curated_vs_truth = demo_checks(tmp_path / "demo")[0]
    result = dg.materialize(
        [ingest.crawl_shard, curation.curated_pages, curation.no_pii_in_curated_pages, dedup.minhash_signatures_asset,
         curated_vs_truth],
        partition_key=shard, instance=instance, resources={"storage": ModelworksStorage(root=str(tmp_path))})
    assert result.success
    meta = result.asset_materializations_for_node("curated_pages")[0].metadata
    assert meta["rows_kept"].value > 0 and meta["rows_dropped"].value > 0
    assert "vs_ground_truth" not in meta  # the asset knows nothing of the demo; the demo's check scores it
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks and all(c.passed for c in checks.values())
    truth = checks["curated_pages_vs_ground_truth"].metadata
    assert truth["vs_ground_truth"].value["precision"] > 0.9
    assert truth["planted_pii"].value["surviving"] == 0
    assert (tmp_path / "tables" / "curated_pages_dropped" / shard / "pages.parquet").exists()
