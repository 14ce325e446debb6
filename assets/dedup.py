"""Dedup group: per-shard MinHash signatures, then exact and near-duplicate removal across all shards."""

import time

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import contextlib

from pydantic import Field

from assets.configs import derived_config, library_default
from assets.curation import curated_pages, read_curated, read_table
from assets.partitions import crawl_shard_partitions
from curation.distributed import RayClusterConfig
from curation.dedup import DedupSettings, MinhashSettings, exact_duplicate_mask, lsh_bands, minhash_signatures, near_duplicate_clusters
from curation.dedup_scale import near_duplicate_clusters_duckdb
from assets.storage import ModelworksStorage
from curation.tables import write_parquet_atomic


MinhashConfig = derived_config(
    "MinhashConfig", MinhashSettings,
    extra={"ray_address": (str, Field(default="", description="Non-empty: signatures computed as Ray tasks on that "
                                                              "cluster (identical arrays).")),
           "ray_docs_per_task": (int, library_default(RayClusterConfig, "docs_per_task"))})
DedupConfig = derived_config("DedupConfig", DedupSettings)


@dg.asset(name="minhash_signatures", partitions_def=crawl_shard_partitions, group_name="dedup", code_version="2",
          deps=[curated_pages],
          kinds={"parquet"}, description="MinHash signatures of a shard's curated pages, computed once per shard.")
def minhash_signatures_asset(context: dg.AssetExecutionContext, config: MinhashConfig,
                             storage: ModelworksStorage) -> dg.MaterializeResult:
    shard = context.partition_key
    table = read_table(storage, storage.curated_pages(shard), columns=["id", "text"])
    t0 = time.perf_counter()
    if config.ray_address:
        from curation.distributed import RayClusterConfig, minhash_signatures_ray

        sigs = minhash_signatures_ray(table.column("text"), RayClusterConfig(config.ray_address,
                                                                             docs_per_task=config.ray_docs_per_task),
                                      num_perm=config.num_perm, ngram=config.ngram, seed=config.seed)
    else:
        sigs = minhash_signatures(table.column("text"), num_perm=config.num_perm, ngram=config.ngram,
                                  seed=config.seed)
    elapsed = time.perf_counter() - t0
    out = pa.table({"id": table.column("id"),
                    "signature": pa.FixedSizeListArray.from_arrays(pa.array(sigs.reshape(-1), pa.uint64()),
                                                                   config.num_perm)})
    # The cluster step refuses to mix shards signed with different parameters.
    out = out.replace_schema_metadata({"minhash": _signature_params(config.num_perm, config.ngram, config.seed)})
    with storage.writing(storage.signatures(shard)) as tmp:
        write_parquet_atomic(out, tmp)
    return dg.MaterializeResult(metadata={"documents": table.num_rows, "num_perm": config.num_perm,
                                          "executor": "ray" if config.ray_address else "local",
                                          "signatures_per_s": round(table.num_rows / max(elapsed, 1e-9), 1),
                                          "path": dg.MetadataValue.path(storage.signatures(shard))})


def _signature_params(num_perm: int, ngram: int, seed: int) -> str:
    return f"num_perm={num_perm},ngram={ngram},seed={seed},scheme=modelworks-v2"


@dg.asset(group_name="dedup", code_version="2", deps=[curated_pages, minhash_signatures_asset], kinds={"parquet"},
          description="Curated pages of all shards without exact or near duplicates; cluster id and size on "
                      "every row; removed duplicates kept beside with the id of their keeper.")
def deduplicated_pages(context: dg.AssetExecutionContext, config: DedupConfig,
                       storage: ModelworksStorage) -> dg.MaterializeResult:
    shards = sorted(context.instance.get_dynamic_partitions(crawl_shard_partitions.name))
    shards = [s for s in shards if storage.exists(storage.signatures(s))]
    if not shards:
        raise dg.Failure("no shard has been curated and signed yet")
    with contextlib.ExitStack() as stack:
        return _deduplicate(context, config, storage, shards, stack)


def _deduplicate(context, config: DedupConfig, storage: ModelworksStorage, shards: list[str],
                 stack: contextlib.ExitStack) -> dg.MaterializeResult:
    docs = read_curated(storage, shards)
    sig_files = [stack.enter_context(storage.reading(storage.signatures(s))) for s in shards]
    params = {(pq.read_schema(f).metadata or {}).get(b"minhash", b"").decode() for f in sig_files}
    if len(params) != 1 or "" in params:
        raise dg.Failure(f"shards were signed with different MinHash parameters {sorted(params)}; "
                         "rematerialize minhash_signatures for all shards")
    sig_table = pa.concat_tables([pq.read_table(f) for f in sig_files])
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
    num_perm = sigs.shape[1]
    ngram = int(dict(kv.split("=") for kv in params.pop().split(","))["ngram"])
    bands, rows = (config.lsh_bands, config.lsh_rows) if config.lsh_bands and config.lsh_rows else \
        lsh_bands(config.lsh_threshold, num_perm)
    if config.engine == "duckdb":
        # verify="text": DuckDB re-reads the candidates' texts from the shards' curated Parquet
        # (a page in two shards is taken from the first, as read_curated does).
        text_files = [stack.enter_context(storage.reading(storage.curated_pages(s))) for s in shards]
        try:
            clusters = near_duplicate_clusters_duckdb(sig_files, config.jaccard_threshold, bands=bands, rows=rows,
                                                      ids=surv_ids, verify=config.verify, text_files=text_files,
                                                      ngram=ngram)
        except ValueError as err:
            raise dg.Failure(f"engine=duckdb: {err}") from err
        by_id = {i: k for k, i in enumerate(clusters.column("id").to_pylist())}
        at = [by_id[i] for i in surv_ids]
        all_cluster_ids = clusters.column("cluster_id").to_pylist()
        cluster_id = [all_cluster_ids[k] for k in at]
        cluster_size = clusters.column("cluster_size").to_numpy()[at]
        near_keep = clusters.column("keep").to_numpy(zero_copy_only=False)[at]
    else:
        surv_sigs = sigs[[sig_by_id[i] for i in surv_ids]]
        texts = docs.column("text").to_pylist()
        cluster_id, cluster_size, near_keep = near_duplicate_clusters(
            surv_ids, surv_sigs, config.jaccard_threshold, num_perm, bands=bands, rows=rows, ngram=ngram,
            texts=[texts[i] for i in survivors] if config.verify == "text" else None)
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
    with storage.writing(storage.deduplicated_pages()) as tmp:
        write_parquet_atomic(kept, tmp)
    with storage.writing(storage.duplicates_removed()) as tmp:
        write_parquet_atomic(removed, tmp)

    n = docs.num_rows
    metadata = {
        "shards": len(shards), "rows_in": n, "rows_out": kept.num_rows,
        "exact_duplicates_removed": int((~exact_keep).sum()),
        "near_duplicates_removed": int((~near_keep).sum()),
        "duplicate_rate": round(1 - kept.num_rows / max(1, n), 4),
        "largest_cluster": int(cluster_size.max()) if len(cluster_size) else 0,
        "clusters_with_duplicates": int(len({c for c, s in zip(cluster_id, cluster_size) if s > 1})),
        "dedup_s": round(elapsed, 3), "jaccard_threshold": config.jaccard_threshold,
        "lsh_bands_x_rows": f"{bands} x {rows}", "verify": config.verify, "engine": config.engine,
        "shards_list": dg.MetadataValue.json(shards),
        "path": dg.MetadataValue.path(storage.deduplicated_pages()),
    }
    return dg.MaterializeResult(metadata=metadata)


@dg.asset_check(asset=deduplicated_pages, blocking=True,
                description="No two kept pages share the same normalized text.")
def no_exact_duplicates_remain(storage: ModelworksStorage) -> dg.AssetCheckResult:
    table = read_table(storage, storage.deduplicated_pages(), columns=["id", "text"])
    keep, _ = exact_duplicate_mask(table.column("id").to_pylist(), table.column("text").to_pylist())
    return dg.AssetCheckResult(passed=bool(keep.all()), metadata={"rows": table.num_rows,
                                                                  "duplicates_found": int((~keep).sum())})
