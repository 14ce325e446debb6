"""The near-dedup band join and verification in DuckDB, over per-shard Parquet files, for corpora beyond RAM.

The in-memory path (`curation.dedup.near_duplicate_clusters`) holds every signature in numpy.
When the corpus outgrows one machine the stages stay the same and only the join moves:

1. signatures: `minhash_signatures` per shard, anywhere (a Dagster partition, a Ray task, a
   Slurm array job), written as Parquet (`id`, `signature` = fixed-size list of uint64);
2. band join: DuckDB reads all shards' Parquet (local or s3:// through httpfs), explodes each
   signature into (band, key) rows, groups equal keys and emits candidate id pairs; DuckDB
   spills to disk, so this runs out of core on one big machine;
3. verification, also in DuckDB, at `threshold`:
   - `verify="text"` (default, as in memory): the true Jaccard of the hashed word-shingle sets.
     The texts of the documents that occur in some candidate pair (a semi-join of each shard's
     text Parquet with the candidates, streamed to Python `batch_rows` documents at a time) are
     shingled with `curation.dedup.shingle_hashes` and written as one Parquet per shard
     (`id`, `h` = one row per distinct 32-bit shingle hash); DuckDB then counts the shared
     shingles of every candidate pair with an equi-join on (id, h) and divides by the union.
     Python holds one batch of texts, never the corpus; the joins spill like the band join.
   - `verify="signature"`: the estimated Jaccard (fraction of equal signature values).
   Only verified pairs come back (about one per duplicate), small enough for
   `curation.dedup.clusters_from_pairs`.

Other engines fit the same seams: Ray tasks calling `minhash_signatures` per shard for step 1,
or datasketch's MinHashLSH with its Redis storage (`storage_config={"type": "redis", ...}`) as
a shared band index for step 2 when shards arrive as a stream.

The candidates equal the numpy path's (same bands, same bucket rule: all pairs in a bucket of
up to MAX_BUCKET_PAIRS documents, a star around the smallest id beyond) and the text-verified
similarity is the same number `curation.dedup.exact_jaccard` computes, so both engines give the
same clusters in both modes; tests/test_dedup.py checks it against the real DuckDB engine.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curation.dedup import MAX_BUCKET_PAIRS, clusters_from_pairs, lsh_bands, shingle_hashes

_EMPTY = 2**64 - 1
VERIFY_MODES = ("text", "signature")


def _connect(memory_limit: str | None, temp_directory: str | None):
    import duckdb

    con = duckdb.connect()
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    if temp_directory:
        con.execute(f"SET temp_directory = '{temp_directory}'")
    return con


def _write_candidate_shingles(con, text_files: Sequence[str], out_dir: Path, ngram: int,
                              batch_rows: int, id_column: str, text_column: str) -> list[str]:
    """Shingle hashes of the documents in table `involved`, one Parquet (id, h, src, doc) per text file.

    `src` (file index) and `doc` (document ordinal within the file) let the caller keep only the
    first copy of an id that occurs more than once (a page captured in two shards).
    """
    schema = pa.schema([("id", pa.string()), ("h", pa.uint32()), ("src", pa.int32()), ("doc", pa.int64())])
    written = []
    for src, text_file in enumerate(text_files):
        path = out_dir / f"shingles-{src:05d}.parquet"
        relation = con.sql(f"""
            SELECT CAST(t."{id_column}" AS VARCHAR) AS id, CAST(t."{text_column}" AS VARCHAR) AS text
            FROM read_parquet(?) t SEMI JOIN involved i ON i.id = CAST(t."{id_column}" AS VARCHAR)""",
                           params=[text_file])
        # A stream of record batches (duckdb >= 2: to_arrow_reader; 1.x: fetch_arrow_reader).
        reader = (relation.to_arrow_reader(batch_rows) if hasattr(relation, "to_arrow_reader")
                  else relation.fetch_arrow_reader(batch_rows))
        doc = 0
        with pq.ParquetWriter(path, schema) as writer:
            for batch in reader:
                if not batch.num_rows:
                    continue
                texts = batch.column("text").to_pylist()
                sets = shingle_hashes([t or "" for t in texts], ngram)
                lengths = np.fromiter((len(s) for s in sets), dtype=np.int64, count=len(sets))
                owner = np.repeat(np.arange(len(sets)), lengths)
                writer.write_table(pa.table({
                    "id": batch.column("id").take(pa.array(owner)),
                    "h": pa.array(np.concatenate(sets).astype(np.uint32) if len(owner) else
                                  np.zeros(0, np.uint32)),
                    "src": pa.array(np.full(len(owner), src, dtype=np.int32)),
                    "doc": pa.array(doc + owner, pa.int64())}, schema=schema))
                doc += batch.num_rows
        written.append(str(path))
    return written


def verified_pairs_duckdb(signature_files: Sequence[str | Path], bands: int, rows: int,
                          threshold: float = 0.0, ids: Sequence[str] | None = None,
                          max_bucket_pairs: int = MAX_BUCKET_PAIRS, memory_limit: str | None = None,
                          temp_directory: str | None = None, verify: str = "text",
                          text_files: Sequence[str | Path] | None = None, ngram: int = 5,
                          id_column: str = "id", text_column: str = "text",
                          batch_rows: int = 8192) -> pa.Table:
    """Candidate pairs (id_a < id_b) that agree on some whole band, with their `similarity`,
    keeping those >= `threshold`.

    `verify="text"` (default): similarity is the true Jaccard of the word `ngram`-shingle hash sets
    of the two texts, read from `text_files` (Parquet with `id_column` and `text_column`, e.g. one
    per shard; an id found in several files is taken from the first). `verify="signature"`: the
    fraction of equal signature values (an estimate; `text_files` unused).
    `ids`, if given, restricts the join to those documents (e.g. the survivors of exact dedup).
    """
    if verify not in VERIFY_MODES:
        raise ValueError(f"verify must be one of {VERIFY_MODES}, not {verify!r}")
    if verify == "text" and not text_files:
        raise ValueError("verify='text' needs text_files (Parquet files with the documents' id and text); "
                         "pass verify='signature' to verify on the signature estimate")
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
    if verify == "signature":
        found = con.execute("""
            SELECT c.id_a, c.id_b,
                   len(list_filter(list_zip(a.s, b.s), lambda x: x[1] = x[2])) / len(a.s) AS similarity
            FROM candidate c JOIN sig a ON a.id = c.id_a JOIN sig b ON b.id = c.id_b
            WHERE similarity >= ?
            ORDER BY c.id_a, c.id_b""", [threshold]).fetchall()
    else:
        found = _text_verified(con, [str(f) for f in text_files], threshold, ngram, batch_rows,
                               id_column, text_column, temp_directory)
    con.close()
    id_a, id_b, similarity = zip(*found) if found else ((), (), ())
    return pa.table({"id_a": pa.array(id_a, pa.string()), "id_b": pa.array(id_b, pa.string()),
                     "similarity": pa.array(similarity, pa.float64())})


def _text_verified(con, text_files: list[str], threshold: float, ngram: int, batch_rows: int,
                   id_column: str, text_column: str, temp_directory: str | None) -> list[tuple]:
    """True shingle Jaccard of every pair in table `candidate`, as (id_a, id_b, similarity) >= threshold."""
    con.execute("CREATE TEMP TABLE involved AS SELECT id_a AS id FROM candidate UNION SELECT id_b FROM candidate")
    missing = con.execute(f"""
        SELECT id FROM involved ANTI JOIN (SELECT CAST("{id_column}" AS VARCHAR) AS id FROM read_parquet(?)) t
        USING (id) ORDER BY id LIMIT 5""", [text_files]).fetchall()
    if missing:
        raise ValueError(f"candidate documents without a text in text_files, e.g. {[m[0] for m in missing]}")
    with tempfile.TemporaryDirectory(prefix="dedup-shingles-", dir=temp_directory) as work:
        shingle_files = _write_candidate_shingles(con, text_files, Path(work), ngram, batch_rows,
                                                  id_column, text_column)
        # One copy per id: the first file, then the first row, that has it.
        con.execute("""
            CREATE TEMP TABLE shingle AS
            SELECT id, h FROM read_parquet(?)
            QUALIFY src * 1099511627776 + doc = min(src * 1099511627776 + doc) OVER (PARTITION BY id)""",
                    [shingle_files])
    return con.execute("""
        WITH n AS (SELECT id, count(*) AS n FROM shingle GROUP BY id),
        shared AS (
            SELECT c.id_a, c.id_b, count(*) AS k
            FROM candidate c JOIN shingle a ON a.id = c.id_a JOIN shingle b ON b.id = c.id_b AND b.h = a.h
            GROUP BY c.id_a, c.id_b),
        scored AS (
            SELECT c.id_a, c.id_b, coalesce(s.k, 0) AS k,
                   coalesce(na.n, 0) + coalesce(nb.n, 0) - coalesce(s.k, 0) AS u
            FROM candidate c LEFT JOIN shared s ON s.id_a = c.id_a AND s.id_b = c.id_b
            LEFT JOIN n na ON na.id = c.id_a LEFT JOIN n nb ON nb.id = c.id_b)
        SELECT id_a, id_b, CASE WHEN u = 0 THEN 0.0 ELSE k::DOUBLE / u::DOUBLE END AS similarity
        FROM scored WHERE similarity >= ?
        ORDER BY id_a, id_b""", [threshold]).fetchall()


def _signed_ngram(signature_file: str) -> int | None:
    """The shingle size recorded in the signature Parquet's metadata by the `minhash_signatures` asset."""
    raw = (pq.read_schema(signature_file).metadata or {}).get(b"minhash", b"").decode()
    params = dict(kv.split("=", 1) for kv in raw.split(",") if "=" in kv)
    return int(params["ngram"]) if "ngram" in params else None


def near_duplicate_clusters_duckdb(signature_files: Sequence[str | Path], threshold: float = 0.8,
                                   lsh_threshold: float | None = None, bands: int | None = None,
                                   rows: int | None = None, ids: Sequence[str] | None = None,
                                   verify: str = "text", text_files: Sequence[str | Path] | None = None,
                                   ngram: int | None = None, **duckdb_options) -> pa.Table:
    """Clusters from signature Parquet files: (id, cluster_id, cluster_size, keep), sorted by id.

    Band join and verification run in DuckDB: on the true shingle Jaccard of the texts in
    `text_files` (`verify="text"`, default; `ngram` defaults to the one recorded in the signature
    metadata, else 5) or on the signature estimate (`verify="signature"`), at `threshold`. Only
    the ids and the verified pairs come back, joined by union-find with the smallest-id keeper.
    """
    files = [str(f) for f in signature_files]
    if ids is None:
        ids = pa.concat_tables([pq.read_table(f, columns=["id"]) for f in files]).column("id").to_pylist()
    ids = sorted(ids)
    num_perm = pq.read_schema(files[0]).field("signature").type.list_size
    if bands is None or rows is None:
        bands, rows = lsh_bands(lsh_threshold if lsh_threshold is not None else max(threshold - 0.2, 0.05), num_perm)
    if ngram is None:
        ngram = _signed_ngram(files[0]) or 5
    pairs = verified_pairs_duckdb(files, bands, rows, threshold, ids=ids, verify=verify, text_files=text_files,
                                  ngram=ngram, **duckdb_options)
    row_of = {i: r for r, i in enumerate(ids)}
    p = np.array([[row_of[a], row_of[b]] for a, b in zip(pairs.column("id_a").to_pylist(),
                                                          pairs.column("id_b").to_pylist())],
                 dtype=np.int64).reshape(-1, 2)
    cluster_id, size, keep = clusters_from_pairs(ids, p)
    return pa.table({"id": ids, "cluster_id": cluster_id, "cluster_size": size, "keep": keep})
