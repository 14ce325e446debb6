"""Dedup group: per-shard MinHash signatures, then exact and near-duplicate removal across all shards."""

import time

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from assets.curation import _truth, curated_pages, read_curated
from assets.partitions import crawl_shard_partitions
from curation.dedup import exact_duplicate_mask, minhash_signatures, near_duplicate_clusters
from curation.tables import write_parquet_atomic
from curation.truth import score_dedup
from pipelines.resources import ModelworksStorage


class MinhashConfig(dg.Config):
    num_perm: int = 112
    ngram: int = 5
    seed: int = 1


class DedupConfig(dg.Config):
    jaccard_threshold: float = 0.8
    num_perm: int = 112
    seed: int = 1


@dg.asset(name="minhash_signatures", partitions_def=crawl_shard_partitions, group_name="dedup", code_version="1",
          deps=[curated_pages],
          kinds={"parquet"}, description="MinHash signatures of a shard's curated pages, computed once per shard.")
def minhash_signatures_asset(context: dg.AssetExecutionContext, config: MinhashConfig,
                             storage: ModelworksStorage) -> dg.MaterializeResult:
    shard = context.partition_key
    table = pq.read_table(storage.table_dir("curated_pages", shard) / "pages.parquet", columns=["id", "text"])
    t0 = time.perf_counter()
    sigs = minhash_signatures(table.column("text").to_pylist(), num_perm=config.num_perm, ngram=config.ngram,
                              seed=config.seed)
    elapsed = time.perf_counter() - t0
    out = pa.table({"id": table.column("id"),
                    "signature": pa.FixedSizeListArray.from_arrays(pa.array(sigs.reshape(-1), pa.uint64()),
                                                                   config.num_perm)})
    path = write_parquet_atomic(out, storage.table_dir("minhash_signatures", shard) / "signatures.parquet")
    return dg.MaterializeResult(metadata={"documents": table.num_rows, "num_perm": config.num_perm,
                                          "signatures_per_s": round(table.num_rows / max(elapsed, 1e-9), 1),
                                          "path": dg.MetadataValue.path(str(path))})


@dg.asset(group_name="dedup", code_version="1", deps=[curated_pages, minhash_signatures_asset], kinds={"parquet"},
          description="Curated pages of all shards without exact or near duplicates; cluster id and size on "
                      "every row; removed duplicates kept beside with the id of their keeper.")
def deduplicated_pages(context: dg.AssetExecutionContext, config: DedupConfig,
                       storage: ModelworksStorage) -> dg.MaterializeResult:
    shards = sorted(context.instance.get_dynamic_partitions(crawl_shard_partitions.name))
    shards = [s for s in shards if (storage.table_dir("minhash_signatures", s) / "signatures.parquet").exists()]
    if not shards:
        raise dg.Failure("no shard has been curated and signed yet")
    docs = read_curated(storage, shards)
    sig_table = pa.concat_tables([pq.read_table(storage.table_dir("minhash_signatures", s) / "signatures.parquet")
                                  for s in shards])
    sig_by_id = dict(zip(sig_table.column("id").to_pylist(), range(sig_table.num_rows)))
    flat = sig_table.column("signature").combine_chunks().flatten().to_numpy()
    sigs = flat.reshape(sig_table.num_rows, -1)

    ids = docs.column("id").to_pylist()
    # A page captured twice (same record id) in two shards appears once.
    _, first = np.unique(np.array(ids), return_index=True)
    docs = docs.take(pa.array(np.sort(first)))
    ids = docs.column("id").to_pylist()

    t0 = time.perf_counter()
    exact_keep, exact_of = exact_duplicate_mask(ids, docs.column("text").to_pylist())
    survivors = np.flatnonzero(exact_keep)
    surv_ids = [ids[i] for i in survivors]
    surv_sigs = sigs[[sig_by_id[i] for i in surv_ids]]
    cluster_id, cluster_size, near_keep = near_duplicate_clusters(surv_ids, surv_sigs, config.jaccard_threshold,
                                                                  config.num_perm, config.seed)
    elapsed = time.perf_counter() - t0

    kept_rows = survivors[near_keep]
    kept = docs.take(pa.array(kept_rows)).append_column(
        "cluster_id", pa.array([cluster_id[j] for j in np.flatnonzero(near_keep)])).append_column(
        "cluster_size", pa.array(cluster_size[near_keep].astype(np.int64)))
    reason, keeper = [], []
    removed_rows = []
    for i in np.flatnonzero(~exact_keep):
        removed_rows.append(i), reason.append("exact_duplicate"), keeper.append(exact_of[i])
    for j in np.flatnonzero(~near_keep):
        removed_rows.append(survivors[j]), reason.append("near_duplicate"), keeper.append(cluster_id[j])
    removed = docs.take(pa.array(removed_rows, pa.int64())).append_column("drop_reason", pa.array(reason, pa.string())) \
        .append_column("duplicate_of", pa.array(keeper, pa.string()))
    path = write_parquet_atomic(kept, storage.table_dir("deduplicated_pages") / "pages.parquet")
    write_parquet_atomic(removed, storage.table_dir("deduplicated_pages_removed") / "pages.parquet")

    n = docs.num_rows
    metadata = {
        "shards": len(shards), "rows_in": n, "rows_out": kept.num_rows,
        "exact_duplicates_removed": int((~exact_keep).sum()),
        "near_duplicates_removed": int((~near_keep).sum()),
        "duplicate_rate": round(1 - kept.num_rows / max(1, n), 4),
        "largest_cluster": int(cluster_size.max()) if len(cluster_size) else 0,
        "clusters_with_duplicates": int(len({c for c, s in zip(cluster_id, cluster_size) if s > 1})),
        "dedup_s": round(elapsed, 3), "jaccard_threshold": config.jaccard_threshold,
        "path": dg.MetadataValue.path(str(path)),
    }
    truth = _truth(storage)
    if truth:
        by_id_url = set(docs.column("url").to_pylist())
        metadata["vs_ground_truth"] = dg.MetadataValue.json(
            score_dedup(set(kept.column("url").to_pylist()), truth, by_id_url))
    return dg.MaterializeResult(metadata=metadata)


@dg.asset_check(asset=deduplicated_pages, blocking=True,
                description="No two kept pages share the same normalized text.")
def no_exact_duplicates_remain(storage: ModelworksStorage) -> dg.AssetCheckResult:
    table = pq.read_table(storage.table_dir("deduplicated_pages") / "pages.parquet", columns=["id", "text"])
    keep, _ = exact_duplicate_mask(table.column("id").to_pylist(), table.column("text").to_pylist())
    return dg.AssetCheckResult(passed=bool(keep.all()), metadata={"rows": table.num_rows,
                                                                  "duplicates_found": int((~keep).sum())})
