"""Curation scale-out: a real local Ray cluster with 1 and 2 worker nodes vs the local executor, same shards, one run.

    python benchmarks/scaleout.py                       # 6-15 minutes on 2 cores (load)
    python benchmarks/scaleout.py --shards 2 --pages-per-shard 5000 --pages-per-task 500

What it does, side by side in one run (the machine is noisy: ratios, not absolutes, are the result):
1. generates a demo crawl of `--shards` WARC shards of `--pages-per-shard` pages, and a 4-page
   shard to measure fixed costs;
2. starts a Ray cluster on 127.0.0.1: a head with no CPUs (it only schedules) and two worker
   nodes of 1 CPU each. Node A carries the custom resources {"scaleout_1w": 1, "scaleout_2w": 1},
   node B {"scaleout_2w": 1}, so one cluster runs both settings: page tasks that ask for
   "scaleout_1w" can only run on node A (1 worker), those that ask for "scaleout_2w" on both
   (2 workers). Connects once (one Ray job) and warms both workers (imports, language model);
3. times, in the order A B B A to cancel slow drifts of the machine's load: the local executor
   (`curate_shard` shard after shard, workers=1 in process, workers=2 with its process pool) and
   Ray (`curate_shards_ray`, all shards at once, page batches of `--pages-per-task` spread over
   the workers), each setting twice; the time of a setting is the sum of its two runs;
4. measures the fixed cost Ray adds per shard with a 4-page shard, Ray vs local: once cold (a
   shard task needs a worker process; on a head with no CPUs Ray ends idle ones after ~1 s, so
   a new run or a pause pays for a process start and the imports) and once warm, right after;
5. checks that every Ray table equals the local one, and stops every Ray process it started.

Throughput is pages per second of wall time for all shards (reading, extraction, language id,
filters, PII redaction and Parquet writing included; cluster start-up reported apart).
`ray_2w_vs_1w` = Ray 2-worker throughput / Ray 1-worker throughput; `ray_vs_local` = Ray 2-worker
throughput / local executor throughput with 2 processes (what Ray costs on the same two cores).
The last line is `RESULT ray_2w_vs_1w=<x> ray_vs_local=<y>`.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from curation.demo.crawl import DemoCrawlConfig, generate_demo_crawl  # noqa: E402
from curation.distributed import (  # noqa: E402
    LocalRayCluster,
    RayClusterConfig,
    ShardJob,
    curate_shards_ray,
    ray_connection,
    warm_up_workers,
)
from curation.pipeline import CurationConfig, curate_shard  # noqa: E402


def shard_name(path: Path) -> str:
    return path.name.split(".")[0]


def local_run(shards: list[Path], out: Path, workers: int) -> tuple[float, list]:
    config = CurationConfig(workers=workers)
    t0 = time.perf_counter()
    results = [curate_shard(s, config, shard_name(s), out / s.name / "kept.parquet", out / s.name / "dropped.parquet")
               for s in shards]
    return time.perf_counter() - t0, results


def ray_run(shards: list[Path], out: Path, cluster: RayClusterConfig) -> tuple[float, list]:
    jobs = [ShardJob(s, shard_name(s), out / s.name / "kept.parquet", out / s.name / "dropped.parquet")
            for s in shards]
    t0 = time.perf_counter()
    results = curate_shards_ray(jobs, CurationConfig(), cluster)
    return time.perf_counter() - t0, results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--pages-per-shard", type=int, default=5000)
    ap.add_argument("--pages-per-task", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mw-scaleout-"))
    cluster = LocalRayCluster(workers=2, cpus_per_worker=1,
                              worker_resources=[{"scaleout_1w": 1, "scaleout_2w": 1}, {"scaleout_2w": 1}])
    try:
        generate_demo_crawl(work / "crawl", DemoCrawlConfig(n_shards=args.shards,
                                                            pages_per_shard=args.pages_per_shard, seed=args.seed))
        shards = sorted((work / "crawl" / "landing").glob("*.warc.gz"))
        generate_demo_crawl(work / "tiny", DemoCrawlConfig(n_shards=1, pages_per_shard=4, seed=args.seed + 1))
        tiny = sorted((work / "tiny" / "landing").glob("*.warc.gz"))
        pages = args.shards * args.pages_per_shard
        mb = sum(s.stat().st_size for s in shards) / 1e6 / len(shards)
        print(f"shards: {len(shards)} x {args.pages_per_shard} pages ({mb:.2f} MB gzipped WARC each), "
              f"{args.pages_per_task} pages per Ray task", flush=True)

        t0 = time.perf_counter()
        cluster.start()
        start_s = time.perf_counter() - t0
        one = RayClusterConfig(cluster.address, pages_per_task=args.pages_per_task,
                               task_resources={"scaleout_1w": 1})
        two = RayClusterConfig(cluster.address, pages_per_task=args.pages_per_task,
                               task_resources={"scaleout_2w": 1})
        settings = {
            "local_1w": lambda out: local_run(shards, out, workers=1),
            "local_2w": lambda out: local_run(shards, out, workers=2),
            "ray_1w": lambda out: ray_run(shards, out, one),
            "ray_2w": lambda out: ray_run(shards, out, two),
        }
        seconds = dict.fromkeys(settings, 0.0)
        results: dict[str, list] = {}
        with ray_connection(two):
            t0 = time.perf_counter()
            warmed = warm_up_workers(CurationConfig(), two)
            warm_s = time.perf_counter() - t0
            t_tiny_local, _ = local_run(tiny, work / "out" / "tiny-local-cold", workers=1)  # loads the models here
            t_tiny_local, _ = local_run(tiny, work / "out" / "tiny-local", workers=1)
            t_tiny_ray_cold, _ = ray_run(tiny, work / "out" / "tiny-ray-cold", two)
            t_tiny_ray, _ = ray_run(tiny, work / "out" / "tiny-ray", two)
            order = ["local_1w", "local_2w", "ray_1w", "ray_2w"]
            for rnd, names in enumerate((order, order[::-1])):
                for name in names:
                    elapsed, res = settings[name](work / "out" / f"{name}-{rnd}")
                    seconds[name] += elapsed
                    results.setdefault(name, res)
                    nodes = [r.stats["ray_nodes"] for r in res] if "ray" in name else None
                    extra = f"  (Ray nodes used per shard: {nodes})" if nodes else ""
                    print(f"round {rnd + 1} {name:8s}: {elapsed:7.1f} s  {pages / elapsed:7.2f} pages/s{extra}",
                          flush=True)
        for shard_results in zip(*results.values()):
            base = shard_results[0]
            if not all(r.kept.equals(base.kept) and r.dropped.equals(base.dropped) for r in shard_results[1:]):
                raise SystemExit(f"tables differ between executors for {base.stats['shard']}")
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)

    print("kept/dropped tables identical across local and Ray executors: yes")
    print(f"cluster start (head + 2 worker nodes): {start_s:.1f} s; warming {warmed} workers "
          f"(processes start, models load): {warm_s:.1f} s")
    print(f"near-empty shard (4 pages): local {t_tiny_local:.2f} s; Ray cold {t_tiny_ray_cold:.2f} s, warm "
          f"{t_tiny_ray:.2f} s -> Ray adds {t_tiny_ray_cold - t_tiny_local:+.2f} s per shard cold, "
          f"{t_tiny_ray - t_tiny_local:+.2f} s warm")
    per_shard = (seconds["ray_1w"] - seconds["local_1w"]) / (2 * len(shards))
    print(f"Ray 1 worker minus local 1 process, per shard: {per_shard:+.2f} s")
    for name, s in seconds.items():
        print(f"{name:8s}: {2 * pages / s:7.2f} pages/s over both rounds")
    print(f"ray_1w_vs_local_1w={seconds['local_1w'] / seconds['ray_1w']:.3f} "
          f"local_2w_vs_1w={seconds['local_1w'] / seconds['local_2w']:.3f}")
    print(f"RESULT ray_2w_vs_1w={seconds['ray_1w'] / seconds['ray_2w']:.3f} "
          f"ray_vs_local={seconds['local_2w'] / seconds['ray_2w']:.3f}")


if __name__ == "__main__":
    main()
