"""Curation and MinHash signatures on a real Ray cluster (a head and two worker nodes on 127.0.0.1) equal local runs."""
import gzip
import json
import shutil

import numpy as np
import pyarrow as pa
import pytest

pytest.importorskip("ray")

from curation.dedup import minhash_signatures  # noqa: E402
from curation.distributed import (  # noqa: E402
    LocalRayCluster,
    RayClusterConfig,
    ShardJob,
    curate_shard_ray,
    curate_shards_ray,
    minhash_signatures_ray,
    ray_connection,
)
from curation.pipeline import CurationConfig, curate_shard  # noqa: E402

# Small page tasks, so that an 80-page demo shard becomes several tasks spread over both workers.
PAGES_PER_TASK = 16


@pytest.fixture(scope="module")
def ray_cluster():
    cluster = LocalRayCluster(workers=2, cpus_per_worker=1)
    try:
        cluster.start()
        # One Ray job for the module: its worker processes (and their loaded models) serve every test.
        with ray_connection(RayClusterConfig(cluster.address)):
            yield cluster
    finally:
        cluster.stop()  # by the process groups it started, never `ray stop`


@pytest.fixture(scope="module")
def local_and_ray(demo_root, ray_cluster, tmp_path_factory):
    """Both demo shards curated locally (one process) and on Ray, into separate folders."""
    root, summary = demo_root
    out = tmp_path_factory.mktemp("ray-curation")
    config = CurationConfig(workers=1)
    shards = summary["shards"]
    local = [curate_shard(root / "landing" / f"{s}.warc.gz", config, s,
                          out / "local" / s / "kept.parquet", out / "local" / s / "dropped.parquet") for s in shards]
    jobs = [ShardJob(root / "landing" / f"{s}.warc.gz", s, out / "ray" / s / "kept.parquet",
                     out / "ray" / s / "dropped.parquet") for s in shards]
    on_ray = curate_shards_ray(jobs, config, RayClusterConfig(ray_cluster.address, pages_per_task=PAGES_PER_TASK))
    return local, on_ray


def test_kept_and_dropped_tables_on_ray_equal_the_local_executor(local_and_ray):
    local, on_ray = local_and_ray
    assert len(on_ray) == len(local) == 2
    for loc, ray_ in zip(local, on_ray):
        assert loc.kept.num_rows > 0 and loc.dropped.num_rows > 0  # both tables carry real rows
        assert ray_.kept.schema.equals(loc.kept.schema) and ray_.dropped.schema.equals(loc.dropped.schema)
        # Same rows, same order, same values, every signal column included.
        assert ray_.kept.equals(loc.kept)
        assert ray_.dropped.equals(loc.dropped)
        for key in ("records_read", "kept", "dropped", "dropped_by_reason", "skipped_by_reason", "pii_by_kind"):
            assert ray_.stats[key] == loc.stats[key], key
        assert ray_.kept_path.parent.name == loc.stats["shard"] and ray_.kept_path.exists()
        # The shard really was cut into page tasks.
        assert ray_.stats["executor"] == "ray"
        assert ray_.stats["ray_tasks"] == -(-loc.stats["records_read"] // PAGES_PER_TASK)
    # ... and the work was spread over both worker nodes.
    assert max(r.stats["ray_nodes"] for r in on_ray) == 2
    # Nothing half-written is left beside the tables.
    assert not [p for r in on_ray for p in r.kept_path.parent.iterdir() if p.name.endswith(".tmp")]


def test_minhash_signatures_on_ray_equal_local(local_and_ray, ray_cluster):
    local, _ = local_and_ray
    texts = pa.chunked_array([r.kept.column("text").combine_chunks() for r in local])
    expected = minhash_signatures(texts, num_perm=64, ngram=5, seed=7)
    cluster = RayClusterConfig(ray_cluster.address, docs_per_task=25)
    got = minhash_signatures_ray(texts, cluster, num_perm=64, ngram=5, seed=7)
    assert got.dtype == np.uint64 and got.shape == (texts.length(), 64)
    assert np.array_equal(got, expected)
    as_list = texts.to_pylist()
    assert np.array_equal(minhash_signatures_ray(as_list, cluster, num_perm=64, ngram=5, seed=7), expected)
    assert minhash_signatures_ray([], cluster, num_perm=64).shape == (0, 64)


def test_bad_records_are_quarantined_on_ray_as_locally(demo_root, ray_cluster, tmp_path):
    root, summary = demo_root
    # A WARC shard whose tail is garbage, and a JSONL shard with a broken line, an empty row and binary text.
    warc = tmp_path / "torn.warc.gz"
    shutil.copy(root / "landing" / f"{summary['shards'][0]}.warc.gz", warc)
    with open(warc, "ab") as f:
        f.write(gzip.compress(b"WARC/1.0\r\nWARC-Type: response\r\nContent-Length: 99999\r\n\r\n<html>cut")
                + b"\x1f\x8b\x08 not gzip at all")
    jsonl = tmp_path / "rows.jsonl"
    good = "The pump bearing overheats when the lubricant is old. Replace the grease and check the seal. " * 8
    jsonl.write_text("\n".join([json.dumps({"id": "a", "url": "https://x.example/a", "text": good}),
                                "{broken json",
                                json.dumps({"id": "b", "url": "https://x.example/b", "text": ""}),
                                json.dumps({"id": "c", "url": "https://x.example/c", "text": "\x00\x01\x02\x03"}),
                                json.dumps({"id": "d", "url": "https://x.example/d", "html": "<p>" + good + "</p>"})])
                     + "\n")
    config = CurationConfig(workers=1)
    for source in (warc, jsonl):
        local = curate_shard(source, config, source.stem, tmp_path / "l" / f"{source.stem}.k.parquet",
                             tmp_path / "l" / f"{source.stem}.d.parquet")
        on_ray = curate_shard_ray(source, config, source.stem, tmp_path / "r" / f"{source.stem}.k.parquet",
                                  tmp_path / "r" / f"{source.stem}.d.parquet",
                                  RayClusterConfig(ray_cluster.address, pages_per_task=PAGES_PER_TASK))
        assert on_ray.stats["skipped_by_reason"], "the bad records must be counted"
        assert on_ray.stats["skipped_by_reason"] == local.stats["skipped_by_reason"]
        assert on_ray.kept.num_rows + on_ray.dropped.num_rows > 0  # the good pages went on
        assert on_ray.kept.equals(local.kept) and on_ray.dropped.equals(local.dropped)
        if source == warc:  # one shard alone: its pages go to both worker nodes
            assert on_ray.stats["ray_nodes"] == 2
    assert on_ray.stats["skipped_by_reason"] == {"binary_body": 1, "empty_body": 1, "malformed_record": 1}


def test_a_missing_shard_fails_with_its_name_while_the_others_are_written(demo_root, ray_cluster, tmp_path):
    root, summary = demo_root
    good = ShardJob(root / "landing" / f"{summary['shards'][1]}.warc.gz", "good", tmp_path / "g.k.parquet",
                    tmp_path / "g.d.parquet")
    missing = ShardJob(tmp_path / "nowhere.warc.gz", "gone", tmp_path / "m.k.parquet", tmp_path / "m.d.parquet")
    with pytest.raises(RuntimeError, match=r"1 of 2 shards failed on Ray: gone: .*nowhere"):
        curate_shards_ray([missing, good], CurationConfig(workers=1),
                          RayClusterConfig(ray_cluster.address, pages_per_task=40))
    assert (tmp_path / "g.k.parquet").exists() and not (tmp_path / "m.k.parquet").exists()


def test_the_assets_run_on_ray_when_their_config_names_an_address(demo_root, ray_cluster, tmp_path):
    """curated_pages and minhash_signatures with `ray_address` set write the local executor's tables."""
    import dagster as dg
    import pyarrow.parquet as pq

    from assets import curation as curation_assets
    from assets import dedup, ingest
    from assets.storage import ModelworksStorage

    root, summary = demo_root
    shard = summary["shards"][0]
    outputs = {}
    for executor in ("local", "ray"):
        home = tmp_path / executor
        shutil.copytree(root / "landing", home / "landing")
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions("crawl_shards", [shard])
        ray = {"ray_address": ray_cluster.address} if executor == "ray" else {}
        result = dg.materialize(
            [ingest.crawl_shard, curation_assets.curated_pages, dedup.minhash_signatures_asset], partition_key=shard,
            instance=instance, resources={"storage": ModelworksStorage(root=str(home))},
            run_config={"ops": {"curated_pages": {"config": {"workers": 1, **ray}},
                                "minhash_signatures": {"config": ray}}})
        assert result.success
        meta = result.asset_materializations_for_node("curated_pages")[0].metadata
        assert meta["executor"].value == executor
        storage = ModelworksStorage(root=str(home))
        outputs[executor] = [pq.read_table(p) for p in (storage.curated_pages(shard), storage.curated_dropped(shard),
                                                        storage.signatures(shard))]
    for local, on_ray in zip(outputs["local"], outputs["ray"]):
        assert local.equals(on_ray)
