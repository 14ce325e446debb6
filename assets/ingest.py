"""Ingest group: crawl shards (the landing folder, or a recipe's crawl read where it is) into raw storage."""

import hashlib
import shutil
import time

import dagster as dg

from assets.partitions import crawl_shard_partitions
from assets.storage import SHARD_SUFFIXES, ModelworksStorage
from curation.readers import iter_documents
from curation.warc import ReadStats


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def shard_file(storage: ModelworksStorage, shard: str) -> str | None:
    """The file name of a shard (any supported format), or None."""
    loc = storage.crawl_file(shard)
    return None if loc is None else loc.rstrip("/").rsplit("/", 1)[-1]


@dg.asset(partitions_def=crawl_shard_partitions, group_name="ingest", code_version="1", kinds={"warc"},
          description="One crawl shard (WARC/ARC/JSONL/Parquet) copied from the landing folder (or the recipe's "
                      "crawl, where it lies) into raw storage, checksummed and scanned.")
def crawl_shard(context: dg.AssetExecutionContext, storage: ModelworksStorage) -> dg.MaterializeResult:
    shard = context.partition_key
    src_loc = storage.crawl_file(shard)
    if src_loc is None:
        where = storage.crawl or storage.landing()
        raise dg.Failure(f"crawl shard {shard!r} is not in the crawl {where}",
                         metadata={"looked_for": [f"{shard}{ext}" for ext in SHARD_SUFFIXES]})
    name = shard_file(storage, shard)
    dst = storage.raw_shard(name)
    with storage.reading(src_loc) as src, storage.writing(dst) as tmp:
        shutil.copyfile(src, tmp)
        t0 = time.perf_counter()
        stats = ReadStats()
        n_docs = sum(1 for _ in iter_documents(tmp, stats))
        scan_s = time.perf_counter() - t0
        size, digest = tmp.stat().st_size, _sha256(tmp)
    return dg.MaterializeResult(metadata={
        "source": src_loc, "path": dg.MetadataValue.path(dst), "bytes": size, "sha256": digest, "records": stats.records,
        "documents": n_docs, "skipped_by_reason": dg.MetadataValue.json(dict(stats.skipped)),
        "scan_s": round(scan_s, 3)})
