"""Dedup across shards as Dagster runs it: same answer in any backfill order, old signatures never recomputed."""
import shutil
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest


def _storage_root(demo_root, tmp_path):
    root, summary = demo_root
    shutil.copytree(root / "landing", tmp_path / "landing")
    shutil.copytree(root / "demo", tmp_path / "demo")
    return tmp_path, summary["shards"]


def _materialize_shards(order, instance, storage):
    from assets import curation, dedup, ingest

    for shard in order:
        result = dg.materialize([ingest.crawl_shard, curation.curated_pages, dedup.minhash_signatures_asset],
                                partition_key=shard, instance=instance, resources={"storage": storage})
        assert result.success


def _deduplicate(instance, storage, **config):
    from assets import dedup
    from pipelines.demo_checks import demo_checks

    dedup_vs_truth = demo_checks(Path(storage.root) / "demo")[1]  # the demo's ground-truth scores (a check)
    result = dg.materialize([dedup.deduplicated_pages, dedup.no_exact_duplicates_remain, dedup_vs_truth],
                            instance=instance,
                            resources={"storage": storage},
                            run_config={"ops": {"deduplicated_pages": {"config": config}}} if config else None)
    assert result.success and all(c.passed for c in result.get_asset_check_evaluations())
    table = pq.read_table(storage.deduplicated_pages())
    kept = dict(zip(table.column("id").to_pylist(),
                    zip(table.column("cluster_id").to_pylist(), table.column("cluster_size").to_pylist())))
    removed = pq.read_table(storage.duplicates_removed())
    truth = {c.check_name: c.metadata for c in result.get_asset_check_evaluations()}
    return kept, dict(zip(removed.column("id").to_pylist(), removed.column("duplicate_of").to_pylist())), \
        {**result.asset_materializations_for_node("deduplicated_pages")[0].metadata,
         **truth["deduplicated_pages_vs_ground_truth"]}


@pytest.fixture(scope="module")
def two_orders(demo_root, tmp_path_factory):
    """The same crawl backfilled shard by shard in two opposite orders, into two instances."""
    from assets.storage import ModelworksStorage

    runs = []
    for name in ("forward", "backward"):
        root, shards = _storage_root(demo_root, tmp_path_factory.mktemp(name))
        order = shards if name == "forward" else shards[::-1]
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions("crawl_shards", order)
        storage = ModelworksStorage(root=str(root))
        first_sig = Path(storage.signatures(order[0]))
        _materialize_shards(order[:1], instance, storage)
        partial = _deduplicate(instance, storage)
        mtime = first_sig.stat().st_mtime_ns
        _materialize_shards(order[1:], instance, storage)
        runs.append({"order": order, "instance": instance, "storage": storage, "partial": partial,
                     "first_sig": first_sig, "first_sig_mtime": mtime, "full": _deduplicate(instance, storage)})
    return runs


def test_kept_set_and_clusters_are_identical_whatever_the_backfill_order(two_orders):
    forward, backward = two_orders
    assert forward["order"] != backward["order"]
    kept_f, removed_f, meta_f = forward["full"]
    kept_b, removed_b, _ = backward["full"]
    assert kept_f == kept_b and removed_f == removed_b
    assert meta_f["near_duplicates_removed"].value > 0 and meta_f["exact_duplicates_removed"].value > 0
    # Every planted near duplicate whose true Jaccard reaches the threshold is removed, nothing else is.
    truth = meta_f["vs_ground_truth"].value
    assert truth["near_duplicate"]["planted_pairs"] > 0 and truth["near_duplicate"]["recall"] == 1.0
    assert truth["exact_duplicate"]["recall"] == 1.0 and truth["false_removals"] == 0
    # Each row names its cluster (the smallest id in it, kept) and the cluster's size.
    assert all(cid <= doc_id for doc_id, (cid, _) in kept_f.items())
    assert all(kept_f[keeper][0] == keeper for keeper in removed_f.values() if keeper in kept_f)


def test_adding_a_shard_recomputes_no_old_signature(two_orders):
    for run in two_orders:
        old = run["order"][0]
        events = run["instance"].fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("minhash_signatures"), asset_partitions=[old]), limit=10)
        assert len(events.records) == 1
        assert run["first_sig"].stat().st_mtime_ns == run["first_sig_mtime"]
        # The cluster step saw one shard before the second arrived and both after.
        assert run["partial"][2]["shards"].value == 1 and run["full"][2]["shards"].value == 2


def test_duckdb_engine_gives_the_same_clusters_as_in_memory(two_orders):
    run = two_orders[0]
    in_memory = _deduplicate(run["instance"], run["storage"], verify="signature")
    duckdb = _deduplicate(run["instance"], run["storage"], verify="signature", engine="duckdb")
    assert duckdb[0] == in_memory[0] and duckdb[1] == in_memory[1]
    assert duckdb[2]["engine"].value == "duckdb"
