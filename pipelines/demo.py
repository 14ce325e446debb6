"""`make demo`: generate the demo crawl, materialize the whole graph into DAGSTER_HOME, print the stage table.

The runs go through the same jobs the UI, the sensor and the schedule use, into the same
Dagster instance `make ui` shows, so every materialization, check and metadata entry of the demo
is browsable afterwards.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path


def _log(msg: str) -> None:
    print(f"[modelworks {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _ensure_dagster_home() -> None:
    """DAGSTER_HOME inside the checkout unless set, with the project's instance config (SQLite, pools)."""
    repo = Path(__file__).resolve().parent.parent
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(repo / ".dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copyfile(repo / "pipelines" / "dagster.yaml", home / "dagster.yaml")


def run(profile_name: str | None = None, regenerate: bool = False) -> dict:
    if profile_name:
        os.environ["MODELWORKS_PROFILE"] = profile_name
    _ensure_dagster_home()
    import dagster as dg

    from assets.partitions import SEED_BATCHES, crawl_shard_partitions
    from assets.profiles import profile_named
    from assets.storage import modelworks_home, shard_key
    from curation.demo.crawl import DemoCrawlConfig, generate_demo_crawl
    from pipelines.definitions import build_definitions

    profile = profile_named(profile_name)
    defs = build_definitions(profile.name)
    home = Path(modelworks_home())
    landing = home / "landing"
    t_start = time.perf_counter()
    if regenerate or not any(landing.glob("*.warc*")):
        summary = generate_demo_crawl(home, DemoCrawlConfig(n_shards=profile.n_shards,
                                                            pages_per_shard=profile.pages_per_shard))
        _log(f"demo crawl: {summary['pages']} pages in {len(summary['shards'])} shards -> {landing}")
    shards = sorted(k for p in landing.iterdir() if (k := shard_key(p.name)))
    _log(f"profile={profile.name} MODELWORKS_HOME={home} DAGSTER_HOME={os.environ.get('DAGSTER_HOME')}")

    instance = dg.DagsterInstance.get()
    known = set(instance.get_dynamic_partitions(crawl_shard_partitions.name))
    instance.add_dynamic_partitions(crawl_shard_partitions.name, [s for s in shards if s not in known])

    shard_job = defs.resolve_job_def("shard_curation_job")
    for shard in shards:
        t0 = time.perf_counter()
        result = shard_job.execute_in_process(partition_key=shard, instance=instance,
                                              tags={"modelworks/source": "make-demo"})
        if not result.success:
            raise SystemExit(f"shard {shard} failed; see the run in the Dagster UI")
        _log(f"shard {shard} curated in {time.perf_counter() - t0:.1f}s")

    t0 = time.perf_counter()
    _log("seed corpus ...")
    synth_job = defs.resolve_job_def("synthetic_job")
    seed_job = defs.resolve_job_def("seed_job")
    if not seed_job.execute_in_process(instance=instance, tags={"modelworks/source": "make-demo"}).success:
        raise SystemExit("seed_corpus failed; see the run in the Dagster UI")
    for batch in SEED_BATCHES:
        t1 = time.perf_counter()
        if not synth_job.execute_in_process(partition_key=batch, instance=instance,
                                            tags={"modelworks/source": "make-demo"}).success:
            raise SystemExit(f"synthetic data for {batch} failed; see the run in the Dagster UI")
        _log(f"synthetic data {batch} in {time.perf_counter() - t1:.1f}s")
    _log("materializing dedup -> domain -> benchmarks -> training -> evaluation ...")
    result = defs.resolve_job_def("corpus_to_model_job").execute_in_process(
        instance=instance, tags={"modelworks/source": "make-demo"})
    if not result.success:
        raise SystemExit("corpus_to_model_job failed; see the run in the Dagster UI")
    _log(f"corpus -> model -> report in {time.perf_counter() - t0:.1f}s")

    from assets.storage import ModelworksStorage
    from evaluation.report import format_stage_table

    storage = ModelworksStorage(root=str(home))
    report = json.loads(storage.read_text(storage.report_json()))
    table = format_stage_table(report)
    print("\nBenchmark scores per model stage, test split, value [95% CI]; paired verdicts below:\n")
    print(table)
    print(f"\nreport: {storage.reports()}/report.html   total {time.perf_counter() - t_start:.0f}s")
    return {"report": report, "table": table}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=None, help="tiny | demo | smollm | smollm_gpu | gpu (default: $MODELWORKS_PROFILE or demo)")
    ap.add_argument("--regenerate", action="store_true", help="write the demo crawl again even if shards exist")
    args = ap.parse_args(argv)
    run(args.profile, args.regenerate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
