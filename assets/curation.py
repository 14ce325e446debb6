"""Curation group: per-shard extraction, language id, quality filters and PII redaction."""

import dagster as dg
import pyarrow as pa
from pydantic import Field
import pyarrow.parquet as pq

from assets.configs import derived_config, library_default, to_library
from assets.ingest import crawl_shard, shard_file
from assets.partitions import crawl_shard_partitions
from assets.storage import ModelworksStorage
from curation.extract import ExtractionSettings
from curation.filters import default_filters
from curation.pii import find_pii
from curation.distributed import RayClusterConfig
from curation.pipeline import CurationConfig, curate_shard


CuratedPagesConfig = derived_config(
    "CuratedPagesConfig", CurationConfig, exclude=("filters", "extraction"),
    extra={  # what the asset turns into the library's filter and extractor objects, and where it runs
        "filter_thresholds": (dict[str, dict[str, float]], Field(
            default={}, description='Overrides of published defaults, e.g. {"gopher_quality": {"min_doc_words": 30}}; '
                                    "filters: gopher_repetition, gopher_quality, c4_quality, fineweb_quality.")),
        "extraction_mode": (str, Field(default=library_default(ExtractionSettings, "mode"),
                                       description="fast_then_full, fast or full (trafilatura default).")),
        "extract_time_limit_s": (float, library_default(ExtractionSettings, "time_limit_s")),
        "ray_address": (str, Field(default="", description='Run on a Ray cluster: "ray://head:10001" (Ray Client, '
                                                           'e.g. a KubeRay head service), "host:6379" or "auto". Empty: '
                                                           "local processes. The storage root must be shared with the "
                                                           "workers.")),
        "ray_pages_per_task": (int, library_default(RayClusterConfig, "pages_per_task")),
    })


@dg.asset(partitions_def=crawl_shard_partitions, group_name="curation", code_version="2", deps=[crawl_shard],
          kinds={"parquet"},
          description="Main text of every English, good-quality page of a shard, PII-redacted; dropped pages "
                      "are kept beside (curated_pages_dropped/) with their reason.")
def curated_pages(context: dg.AssetExecutionContext, config: CuratedPagesConfig,
                  storage: ModelworksStorage) -> dg.MaterializeResult:
    shard = context.partition_key
    name = shard_file(storage, shard)
    if name is None:
        raise dg.Failure(f"crawl shard {shard!r} is not in the landing folder {storage.landing()}")
    cfg = to_library(CurationConfig, config, filters=default_filters(config.filter_thresholds),
                     extraction=ExtractionSettings(mode=config.extraction_mode, time_limit_s=config.extract_time_limit_s))
    context.log.info(f"curating {storage.raw_shard(name)}")
    # Rows stream straight into the partition's files, committed together when the shard is done.
    with storage.reading(storage.raw_shard(name)) as raw, \
            storage.writing(storage.curated_pages(shard)) as kept_path, \
            storage.writing(storage.curated_dropped(shard)) as dropped_path:
        if config.ray_address:
            from curation.distributed import curate_shard_ray

            cluster = RayClusterConfig(address=config.ray_address, pages_per_task=config.ray_pages_per_task)
            result = curate_shard_ray(raw, cfg, shard, kept_path, dropped_path, cluster)
        else:
            result = curate_shard(raw, cfg, shard, kept_path=kept_path, dropped_path=dropped_path)
    s = result.stats
    n_kept, n_dropped = s["kept"], s["dropped"]
    metadata = {
        "rows_in": s["records_read"],
        "rows_kept": n_kept,
        "rows_dropped": n_dropped,
        "keep_rate": round(n_kept / max(1, n_kept + n_dropped), 4),
        "drop_reasons": dg.MetadataValue.json(s["dropped_by_reason"]),
        "drops_by_filter": dg.MetadataValue.json(s["dropped_by_filter"]),
        "skipped_records": dg.MetadataValue.json(s["skipped_by_reason"]),
        "pii_redacted": dg.MetadataValue.json(s["pii_by_kind"]),
        "extract_timeouts": s["extract_timeouts"],
        "workers": s["workers"],
        "executor": s.get("executor", "local"),
        "docs_per_s": s["docs_per_s"],
        "seconds_per_stage": dg.MetadataValue.json(s["seconds_per_stage"]),
        "path": dg.MetadataValue.path(storage.curated_pages(shard)),
        "dropped_path": dg.MetadataValue.path(storage.curated_dropped(shard)),
    }
    return dg.MaterializeResult(metadata=metadata)


@dg.asset_check(asset=curated_pages, blocking=True, partitions_def=crawl_shard_partitions,
                description="No detectable e-mail, phone, IP or card number remains in the kept text.")
def no_pii_in_curated_pages(context: dg.AssetCheckExecutionContext,
                            storage: ModelworksStorage) -> dg.AssetCheckResult:
    shard = context.partition_key
    with storage.reading(storage.curated_pages(shard)) as path:
        table = pq.read_table(path, columns=["id", "text"])
    hits = [(i, kind) for i, text in zip(table.column("id").to_pylist(), table.column("text").to_pylist())
            for kind, _, _ in find_pii(text)]
    return dg.AssetCheckResult(passed=not hits, metadata={"pages_checked": table.num_rows,
                                                          "pii_found": len(hits),
                                                          "examples": dg.MetadataValue.json(hits[:5])})


def read_table(storage: ModelworksStorage, loc: str, columns: list[str] | None = None) -> pa.Table:
    with storage.reading(loc) as path:
        return pq.read_table(path, columns=columns)


def read_curated(storage: ModelworksStorage, shards: list[str]) -> pa.Table:
    return pa.concat_tables([read_table(storage, storage.curated_pages(s)) for s in sorted(shards)])
