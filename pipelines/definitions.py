"""The Modelworks code location: assets, checks, jobs, the landing-folder sensor and the nightly refresh."""

import warnings

import dagster as dg

# Partitioned asset checks (one PII check per shard) and default automation conditions are
# preview/beta features in Dagster 1.13; we rely on them knowingly.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)

from assets import benchmarks, curation, dedup, domain, evaluation, ingest, synthetic, training
from assets.partitions import crawl_shard_partitions
from pipelines.resources import ModelworksStorage, modelworks_home

_modules = [ingest, curation, dedup, domain, synthetic, benchmarks, training, evaluation]
all_assets = dg.load_assets_from_modules(_modules)
all_checks = dg.load_asset_checks_from_modules(_modules)

SHARD_ASSETS = dg.AssetSelection.assets("crawl_shard", "curated_pages", "minhash_signatures")
CORPUS_TO_MODEL = dg.AssetSelection.all() - SHARD_ASSETS

shard_curation_job = dg.define_asset_job(
    "shard_curation_job", selection=SHARD_ASSETS,
    description="Ingest, curate and sign one crawl shard.")
corpus_to_model_job = dg.define_asset_job(
    "corpus_to_model_job", selection=CORPUS_TO_MODEL,
    description="Everything after the per-shard stages: dedup, domain selection, synthetic data, benchmarks, "
                "decontamination, tokenizer, pretraining, DAPT, SFT, DPO, evaluation and the report.")

# Crawl shards (WARC/ARC) and pre-extracted text shards (JSONL, Parquet) are all partitions.
SHARD_SUFFIXES = (".warc.gz", ".warc", ".arc.gz", ".arc", ".jsonl.gz", ".jsonl", ".parquet")


def shard_key(filename: str) -> str | None:
    for suffix in SHARD_SUFFIXES:
        if filename.endswith(suffix) and not filename.startswith("."):
            return filename[: -len(suffix)]
    return None


@dg.sensor(job=shard_curation_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Adds a partition for every new WARC shard in the landing folder and curates it.")
def landing_shard_sensor(context: dg.SensorEvaluationContext, storage: ModelworksStorage) -> dg.SensorResult:
    existing = set(context.instance.get_dynamic_partitions(crawl_shard_partitions.name))
    found = sorted({k for p in storage.landing_dir.glob("*") if (k := shard_key(p.name))} if storage.landing_dir.exists()
                   else set())
    new = [k for k in found if k not in existing]
    if not new:
        return dg.SensorResult(skip_reason=f"no new shards ({len(existing)} known)")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=k, run_key=f"shard-{k}") for k in new],
        dynamic_partitions_requests=[crawl_shard_partitions.build_add_request(new)],
    )


# Nightly: every unpartitioned asset is rematerialized after the cron tick once its parents have
# been updated, so a changed code_version or new shard flows down the graph overnight.
nightly_refresh = dg.AutomationConditionSensorDefinition(
    "nightly_refresh", target=CORPUS_TO_MODEL, default_condition=dg.AutomationCondition.on_cron("0 2 * * *"),
    default_status=dg.DefaultSensorStatus.RUNNING, use_user_code_server=True)

defs = dg.Definitions(
    assets=all_assets,
    asset_checks=all_checks,
    jobs=[shard_curation_job, corpus_to_model_job],
    sensors=[landing_shard_sensor, nightly_refresh],
    # pipes_subprocess_client launches torchrun for pretraining and DAPT; rank 0 reports back through Pipes.
    resources={"storage": ModelworksStorage(root=modelworks_home()), "pipes_subprocess_client": dg.PipesSubprocessClient()},
    # Two cores here: two steps at a time; the "training" pool (dagster.yaml) keeps one training run at a time.
    executor=dg.multiprocess_executor.configured({"max_concurrent": 2}),
)
