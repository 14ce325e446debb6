"""Curation group: per-shard extraction, language id, quality filters and PII redaction."""

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from assets.ingest import crawl_shard
from assets.partitions import crawl_shard_partitions
from curation.demo_crawl import load_truth
from curation.pii import find_pii
from curation.pipeline import CurationConfig, curate_shard
from curation.tables import write_parquet_atomic
from curation.truth import score_curation, score_pii
from pipelines.resources import ModelworksStorage


class CuratedPagesConfig(dg.Config):
    languages: list[str] = ["en"]
    min_lang_score: float = 0.65
    max_page_bytes: int = 2_000_000
    blocked_domains: list[str] = []


@dg.asset(partitions_def=crawl_shard_partitions, group_name="curation", code_version="1", deps=[crawl_shard],
          kinds={"parquet"},
          description="Main text of every English, good-quality page of a shard, PII-redacted; dropped pages "
                      "are kept beside (curated_pages_dropped/) with their reason.")
def curated_pages(context: dg.AssetExecutionContext, config: CuratedPagesConfig,
                  storage: ModelworksStorage) -> dg.MaterializeResult:
    shard = context.partition_key
    raw = next(storage.path("raw", "crawl").glob(f"{shard}.*"))
    cfg = CurationConfig(languages=tuple(config.languages), min_lang_score=config.min_lang_score,
                         max_page_bytes=config.max_page_bytes, blocked_domains=tuple(config.blocked_domains))
    context.log.info(f"curating {raw}")
    result = curate_shard(raw, cfg, shard)
    kept_path = write_parquet_atomic(result.kept, storage.table_dir("curated_pages", shard) / "pages.parquet")
    dropped_path = write_parquet_atomic(result.dropped,
                                        storage.table_dir("curated_pages_dropped", shard) / "pages.parquet")
    s = result.stats
    metadata = {
        "rows_in": s.get("records_read", result.kept.num_rows + result.dropped.num_rows),
        "rows_kept": result.kept.num_rows,
        "rows_dropped": result.dropped.num_rows,
        "keep_rate": round(result.kept.num_rows / max(1, result.kept.num_rows + result.dropped.num_rows), 4),
        "drop_reasons": dg.MetadataValue.json(s.get("dropped_by_reason", {})),
        "skipped_records": dg.MetadataValue.json(s.get("skipped_by_reason", {})),
        "pii_redacted": dg.MetadataValue.json(s.get("pii_by_kind", {})),
        "docs_per_s": s.get("docs_per_s"),
        "seconds_per_stage": dg.MetadataValue.json(s.get("seconds_per_stage", {})),
        "path": dg.MetadataValue.path(str(kept_path)),
        "dropped_path": dg.MetadataValue.path(str(dropped_path)),
    }
    truth = [t for t in _truth(storage) if t["shard"] == shard]
    if truth:  # the demo crawl knows every page's fate: report precision/recall against it
        kept_urls = set(result.kept.column("url").to_pylist())
        metadata["vs_ground_truth"] = dg.MetadataValue.json(score_curation(kept_urls, truth))
        metadata["planted_pii"] = dg.MetadataValue.json(
            score_pii(result.kept.column("text").to_pylist(), truth, kept_urls))
    return dg.MaterializeResult(metadata=metadata)


def _truth(storage: ModelworksStorage) -> list[dict]:
    return load_truth(storage.demo_dir) if (storage.demo_dir / "truth").exists() else []


@dg.asset_check(asset=curated_pages, blocking=True, partitions_def=crawl_shard_partitions,
                description="No detectable e-mail, phone, IP or card number remains in the kept text.")
def no_pii_in_curated_pages(context: dg.AssetCheckExecutionContext,
                            storage: ModelworksStorage) -> dg.AssetCheckResult:
    shard = context.partition_key
    table = pq.read_table(storage.table_dir("curated_pages", shard) / "pages.parquet", columns=["id", "text"])
    hits = [(i, kind) for i, text in zip(table.column("id").to_pylist(), table.column("text").to_pylist())
            for kind, _, _ in find_pii(text)]
    return dg.AssetCheckResult(passed=not hits, metadata={"pages_checked": table.num_rows,
                                                          "pii_found": len(hits),
                                                          "examples": dg.MetadataValue.json(hits[:5])})


def read_curated(storage: ModelworksStorage, shards: list[str]) -> pa.Table:
    return pa.concat_tables([pq.read_table(storage.table_dir("curated_pages", s) / "pages.parquet")
                             for s in sorted(shards)])
