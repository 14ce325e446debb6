"""The near-dedup band join in DuckDB, over per-shard signature Parquet files, for corpora beyond RAM.

The in-memory path (`curation.dedup.near_duplicate_clusters`) holds every signature in numpy.
When the corpus outgrows one machine the stages stay the same and only the join moves:

1. signatures: `minhash_signatures` per shard, anywhere (a Dagster partition, a Ray task, a
   Slurm array job), written as Parquet (`id`, `signature` = fixed-size list of uint64);
2. band join: DuckDB reads all shards' Parquet (local or s3:// through httpfs), explodes each
   signature into (band, key) rows, groups equal keys and emits candidate id pairs; DuckDB
   spills to disk, so this runs out of core on one big machine;
3. verification (estimated Jaccard from the two signatures) also in DuckDB; only verified pairs
   come back (about one per duplicate), small enough for `curation.dedup.clusters_from_pairs`.

Other engines fit the same seams: Ray tasks calling `minhash_signatures` per shard for step 1,
or datasketch's MinHashLSH with its Redis storage (`storage_config={"type": "redis", ...}`) as
a shared band index for step 2 when shards arrive as a stream.

The candidates equal the numpy path's (same bands, same bucket rule: all pairs in a bucket of
up to MAX_BUCKET_PAIRS documents, a star around the smallest id beyond), so both give the same
clusters; tests/test_dedup.py checks it against the real DuckDB engine.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curation.dedup import MAX_BUCKET_PAIRS, clusters_from_pairs, lsh_bands

_EMPTY = 2**64 - 1


def _connect(memory_limit: str | None, temp_directory: str | None):
    import duckdb

    con = duckdb.connect()
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    if temp_directory:
        con.execute(f"SET temp_directory = '{temp_directory}'")
    return con


def verified_pairs_duckdb(signature_files: Sequence[str | Path], bands: int, rows: int,
                          threshold: float = 0.0, ids: Sequence[str] | None = None,
                          max_bucket_pairs: int = MAX_BUCKET_PAIRS, memory_limit: str | None = None, temp_directory: str | None = None) -> pa.Table:
    """Candidate pairs (id_a < id_b) that agree on some whole band, with their estimated Jaccard
    (`similarity`, the fraction of equal signature values), keeping those >= `threshold`.
    `ids`, if given, restricts the join to those documents (e.g. the survivors of exact dedup)."""
    con = _connect(memory_limit, temp_directory)
    files = [str(f) for f in signature_files]
    con.execute("CREATE TEMP TABLE sig AS SELECT id, CAST(signature AS UBIGINT[]) AS s FROM read_parquet(?)",
                [files])
    if ids is not None:
        con.register("wanted", pa.table({"id": pa.array(list(ids), pa.string())}))
        con.execute("DELETE FROM sig WHERE id NOT IN (SELECT id FROM wanted)")
    # DuckDB lists are 1-based and slices inclusive: band b is s[b*rows + 1 : (b+1)*rows].
    con.execute(f"""
        CREATE TEMP TABLE band_key AS
        SELECT id, b AS band, hash(s[b * {rows} + 1 : (b + 1) * {rows}]) AS key
        FROM sig, range({bands}) AS t(b)
        WHERE s[1] <> {_EMPTY}::UBIGINT""")
    con.execute(f"""
        CREATE TEMP TABLE candidate AS
        WITH bucket AS (
            SELECT band, key, id, count(*) OVER w AS size, min(id) OVER w AS centre
            FROM band_key WINDOW w AS (PARTITION BY band, key)
        )
        SELECT a.id AS id_a, b.id AS id_b
        FROM bucket a JOIN bucket b ON a.band = b.band AND a.key = b.key AND a.id < b.id
        WHERE a.size BETWEEN 2 AND {int(max_bucket_pairs)}
        UNION
        SELECT centre AS id_a, id AS id_b FROM bucket WHERE size > {int(max_bucket_pairs)} AND id <> centre""")
    found = con.execute("""
        SELECT c.id_a, c.id_b,
               len(list_filter(list_zip(a.s, b.s), lambda x: x[1] = x[2])) / len(a.s) AS similarity
        FROM candidate c JOIN sig a ON a.id = c.id_a JOIN sig b ON b.id = c.id_b
        WHERE similarity >= ?
        ORDER BY c.id_a, c.id_b""", [threshold]).fetchall()
    id_a, id_b, similarity = zip(*found) if found else ((), (), ())
    return pa.table({"id_a": pa.array(id_a, pa.string()), "id_b": pa.array(id_b, pa.string()),
                     "similarity": pa.array(similarity, pa.float64())})


def near_duplicate_clusters_duckdb(signature_files: Sequence[str | Path], threshold: float = 0.8,
                                   lsh_threshold: float | None = None, bands: int | None = None,
                                   rows: int | None = None, ids: Sequence[str] | None = None,
                                   **duckdb_options) -> pa.Table:
    """Clusters from signature Parquet files: (id, cluster_id, cluster_size, keep), sorted by id.

    Band join and verification (estimated Jaccard >= threshold) run in DuckDB; only the ids and
    the verified pairs come back, joined by union-find with the smallest-id keeper.
    """
    files = [str(f) for f in signature_files]
    if ids is None:
        ids = pa.concat_tables([pq.read_table(f, columns=["id"]) for f in files]).column("id").to_pylist()
    ids = sorted(ids)
    num_perm = pq.read_schema(files[0]).field("signature").type.list_size
    if bands is None or rows is None:
        bands, rows = lsh_bands(lsh_threshold if lsh_threshold is not None else max(threshold - 0.2, 0.05), num_perm)
    pairs = verified_pairs_duckdb(files, bands, rows, threshold, ids=ids, **duckdb_options)
    row_of = {i: r for r, i in enumerate(ids)}
    p = np.array([[row_of[a], row_of[b]] for a, b in zip(pairs.column("id_a").to_pylist(),
                                                          pairs.column("id_b").to_pylist())],
                 dtype=np.int64).reshape(-1, 2)
    cluster_id, size, keep = clusters_from_pairs(ids, p)
    return pa.table({"id": ids, "cluster_id": cluster_id, "cluster_size": size, "keep": keep})
