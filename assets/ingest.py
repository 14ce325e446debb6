"""Ingest group: crawl shards from the landing folder, the domain seed corpus and the fact base."""

import hashlib
import shutil
import time
from pathlib import Path

import dagster as dg

from assets.partitions import crawl_shard_partitions
from curation.readers import iter_documents
from curation.warc import ReadStats
from pipelines.resources import ModelworksStorage


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dg.asset(partitions_def=crawl_shard_partitions, group_name="ingest", code_version="1", kinds={"warc"},
          description="One crawl shard (WARC) copied from the landing folder into raw storage, checksummed.")
def crawl_shard(context: dg.AssetExecutionContext, storage: ModelworksStorage) -> dg.MaterializeResult:
    shard = context.partition_key
    candidates = [storage.landing_dir / f"{shard}{ext}"
                  for ext in (".warc.gz", ".warc", ".arc.gz", ".arc", ".jsonl.gz", ".jsonl", ".parquet")]
    src = next((p for p in candidates if p.exists()), None)
    if src is None:
        raise dg.Failure(f"crawl shard {shard!r} is not in the landing folder {storage.landing_dir}",
                         metadata={"looked_for": [str(p) for p in candidates]})
    dst = storage.path("raw", "crawl", src.name)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copyfile(src, tmp)
    tmp.replace(dst)
    t0 = time.perf_counter()
    stats = ReadStats()
    n_docs = sum(1 for _ in iter_documents(dst, stats))
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(dst)),
        "bytes": dst.stat().st_size,
        "sha256": _sha256(dst),
        "records": stats.records,
        "documents": n_docs,
        "skipped_by_reason": dg.MetadataValue.json(dict(stats.skipped)),
        "scan_s": round(time.perf_counter() - t0, 3),
    })


class SeedCorpusConfig(dg.Config):
    source_dir: str = ""  # a folder of *.txt manuals; empty = the demo crawl's seed corpus


@dg.asset(group_name="ingest", code_version="1", kinds={"text"},
          description="The domain seed corpus: a few maintenance manuals (text files).")
def seed_corpus(config: SeedCorpusConfig, storage: ModelworksStorage) -> dg.MaterializeResult:
    src = Path(config.source_dir) if config.source_dir else storage.demo_dir / "seed"
    files = sorted(src.glob("*.txt"))
    if not files:
        raise dg.Failure(f"no seed documents (*.txt) in {src}")
    dst = storage.path("seed")
    dst.mkdir(parents=True, exist_ok=True)
    words = 0
    for f in files:
        tmp = dst / f".{f.name}.tmp"
        shutil.copyfile(f, tmp)
        tmp.replace(dst / f.name)
        words += len(f.read_text(encoding="utf-8").split())
    return dg.MaterializeResult(metadata={"documents": len(files), "words": words,
                                          "path": dg.MetadataValue.path(str(dst))})


@dg.asset(group_name="ingest", code_version="1", kinds={"json"},
          description="Domain facts with their train / held-out split; benchmarks use held-out facts only.")
def domain_facts(storage: ModelworksStorage) -> dg.MaterializeResult:
    from curation.demo.crawl import load_fact_base

    facts = load_fact_base(storage.demo_dir)
    dst = storage.path("facts", "facts.json")
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(storage.demo_dir / "facts.json", dst)
    return dg.MaterializeResult(metadata={
        "train_facts": len(facts.train), "heldout_facts": len(facts.heldout),
        "equipment_types": len({f.equipment for f in facts.all}), "path": dg.MetadataValue.path(str(dst))})


@dg.asset_check(asset=seed_corpus, description="The seed corpus parses into troubleshooting entries.")
def seed_corpus_has_entries(storage: ModelworksStorage) -> dg.AssetCheckResult:
    from curation.synthetic import parse_seed_corpus

    entries = parse_seed_corpus(sorted(storage.path("seed").glob("*.txt")))
    return dg.AssetCheckResult(passed=len(entries) > 0, metadata={"entries": len(entries)})
