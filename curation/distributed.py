"""Run shard curation and MinHash signatures as Ray tasks on a cluster, with results identical to local runs.

The functions here are the same library code as `curation.pipeline.curate_shard` and
`curation.dedup.minhash_signatures`, only scheduled by Ray:

- one *shard task* per shard reads the raw shard where it lies (the shared storage root), cuts
  its records into page batches of `pages_per_task`, and hands each batch to a *page task*;
  page tasks run on whatever worker has a free CPU, so the pages of one shard spread over the
  cluster, and several shards run at once. The shard task takes the finished batches back in
  input order and streams them into the kept and dropped Parquet files, written beside their
  targets and renamed into place at the end (atomic), exactly as `curate_shard` does; the rows,
  their order and their values are therefore the local executor's.
- MinHash signatures of a text column are computed in slices of `docs_per_task` documents by
  `minhash_signatures` itself and concatenated in order (a page's signature depends on its text only).

The driver (a Dagster asset, a notebook) only submits tasks and receives statistics, never the
pages, so it can sit outside the cluster behind a Ray Client address ("ray://head:10001").
The `curation` package travels to the workers through `runtime_env={"py_modules": [...]}`, so a
cluster needs the same third-party packages (the project's dependencies) but not this checkout.
Ray is imported lazily: `import curation` never pays for it, and this module never imports Dagster.
"""
from __future__ import annotations

import os
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pyarrow as pa

import curation
from curation.dedup import minhash_signatures
from curation.pipeline import CurationConfig, CurationResult, ShardWriter, _batches, _BatchResult, _Curator
from curation.readers import iter_documents

CURATION_PACKAGE_DIR = Path(curation.__file__).resolve().parent
# Page batches in flight per shard, per CPU of the cluster: enough to keep every CPU busy while
# the shard task reads the next batch, few enough that memory stays bounded by batches, not shards.
_IN_FLIGHT_PER_CPU = 2


@dataclass
class RayClusterConfig:
    """Where and how curation runs on Ray.

    address: "ray://<head>:10001" (Ray Client: the driver may be outside the cluster, e.g. a
    Dagster run pod talking to a KubeRay head service), "<head>:6379" (a GCS address: the
    driver runs on a node of the cluster), or "auto" (the cluster this machine belongs to).
    pages_per_task: pages of one shard handed to one Ray task (larger amortizes the per-task
    overhead of ~ a few ms and the curator's set-up; smaller spreads small shards wider).
    docs_per_task: texts per MinHash task.
    ship_code: send this `curation` package to the workers (runtime_env py_modules); turn off
    when the workers' image already has the same version installed.
    runtime_env: extra Ray runtime environment (env_vars, pip, ...), merged with the shipped code.
    shard_task_cpus: CPUs reserved by a shard task (it reads and writes; the work is in page
    tasks). 0 lets it run beside page tasks, also on a head started with --num-cpus 0.
    task_resources: custom Ray resources each page / MinHash task needs besides its CPU, e.g.
    {"curation": 1} to keep curation on the nodes (a KubeRay worker group) started with
    `--resources '{"curation": N}'`; the run then uses at most the N slots those nodes offer.
    """

    address: str
    pages_per_task: int = 500
    docs_per_task: int = 20000
    ship_code: bool = True
    runtime_env: dict[str, Any] = field(default_factory=dict)
    shard_task_cpus: float = 0.0
    task_resources: dict[str, float] = field(default_factory=dict)
    log_to_driver: bool = False


@dataclass
class ShardJob:
    """One shard to curate: its raw file and where its kept and dropped tables go (shared storage)."""

    raw_path: str | os.PathLike
    shard: str
    kept_path: str | os.PathLike
    dropped_path: str | os.PathLike


def runtime_env_for(cluster: RayClusterConfig) -> dict[str, Any]:
    """The runtime_env given to ray.init: the caller's, plus this `curation` package when shipped."""
    env = {key: (list(value) if isinstance(value, list) else value) for key, value in cluster.runtime_env.items()}
    if cluster.ship_code:
        env["py_modules"] = [*env.get("py_modules", []), str(CURATION_PACKAGE_DIR)]
    return env


@contextmanager
def ray_connection(cluster: RayClusterConfig) -> Iterator[None]:
    """Connect this process to the cluster for the block; reuse a connection that is already open.

    A connection opened here is closed at the end; one the caller opened (to run several steps in
    one Ray job) is left open, and its runtime_env must then already carry the code.
    """
    import ray

    if ray.is_initialized():
        yield
        return
    ray.init(address=cluster.address, runtime_env=runtime_env_for(cluster), namespace="modelworks",
             log_to_driver=cluster.log_to_driver, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


def _task_slots(task_resources: dict[str, float]) -> int:
    """How many one-CPU tasks (with `task_resources`) the cluster can run at once."""
    import ray

    total = ray.cluster_resources()
    slots = total.get("CPU", 1)
    for name, amount in task_resources.items():
        if amount > 0:
            slots = min(slots, total.get(name, 0) / amount)
    return max(1, int(slots))


# --- tasks (plain functions, wrapped with ray.remote where they are submitted) -------------------

# One curator per worker process and configuration: filters are built and the language model is
# warmed once, not once per page batch.
_CURATORS: dict[str, _Curator] = {}


def _curate_pages(config: CurationConfig, shard: str, docs: list[dict]) -> tuple[_BatchResult, str]:
    """A page task: curate one batch of a shard's pages; returns the result and the node that did it."""
    import ray

    key = repr(config)
    curator = _CURATORS.get(key)
    if curator is None:
        _CURATORS.clear()  # a worker serves one configuration at a time in practice; don't hoard them
        curator = _CURATORS[key] = _Curator(config, shard)
    curator.shard = shard  # the shard only names the rows; the rest of the curator is per configuration
    return curator.curate_batch(docs), ray.get_runtime_context().get_node_id()


def _curate_shard_on_cluster(job: ShardJob, config: CurationConfig, pages_per_task: int,
                             max_in_flight: int, task_resources: dict[str, float]) -> dict:
    """The shard task: read, fan page batches out, write the tables in input order; returns stats.

    The streaming loop of `curate_shard`, with Ray page tasks in place of its process pool; the same ShardWriter.
    """
    import ray

    curate_pages = ray.remote(num_cpus=1, resources=task_resources or None)(_curate_pages)
    writer = ShardWriter(config, job.shard, job.kept_path, job.dropped_path, where="cluster")
    nodes: set[str] = set()
    tasks = 0

    def take(done: tuple[_BatchResult, str]) -> None:
        result, node = done
        nodes.add(node)
        writer.take(result)

    try:
        config_ref = ray.put(config)
        in_flight: deque = deque()
        docs = iter_documents(job.raw_path, writer.read_stats, max_page_bytes=config.max_page_bytes)
        for batch in _batches(docs, pages_per_task, writer.read_seconds):
            if len(in_flight) >= max_in_flight:
                take(ray.get(in_flight.popleft()))
            in_flight.append(curate_pages.remote(config_ref, job.shard, batch))
            tasks += 1
        while in_flight:
            take(ray.get(in_flight.popleft()))
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return writer.stats(workers=max_in_flight // _IN_FLIGHT_PER_CPU, executor="ray", ray_tasks=tasks,
                        ray_nodes=len(nodes))  # ray_nodes: how many nodes the shard's pages were spread over


# --- public API ------------------------------------------------------------------------------------


def curate_shards_ray(jobs: Sequence[ShardJob], config: CurationConfig,
                      cluster: RayClusterConfig) -> list[CurationResult]:
    """Curate several shards on the cluster at once; results in the order of `jobs`.

    Paths must be on storage every Ray node sees (the shared storage root). A failing shard does
    not stop the others: they finish and are written, then a RuntimeError names the failed shards.
    """
    if cluster.pages_per_task < 1:
        raise ValueError("pages_per_task must be >= 1")
    if not jobs:
        return []
    import ray

    jobs = [ShardJob(os.fspath(j.raw_path), j.shard, os.fspath(j.kept_path), os.fspath(j.dropped_path))
            for j in jobs]
    with ray_connection(cluster):
        max_in_flight = _IN_FLIGHT_PER_CPU * _task_slots(cluster.task_resources)
        shard_task = ray.remote(num_cpus=cluster.shard_task_cpus)(_curate_shard_on_cluster)
        config_ref = ray.put(config)
        refs = [shard_task.remote(job, config_ref, cluster.pages_per_task, max_in_flight, cluster.task_resources)
                for job in jobs]
        results: list[CurationResult] = []
        failures: list[str] = []
        for job, ref in zip(jobs, refs):
            try:
                stats = ray.get(ref)
            except Exception as exc:  # keep collecting: the other shards' outputs are still good
                failures.append(f"{job.shard}: {_root_cause(exc)}")
                continue
            results.append(CurationResult(kept_path=Path(job.kept_path), dropped_path=Path(job.dropped_path),
                                          stats=stats))
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(jobs)} shards failed on Ray: " + "; ".join(failures))
    return results


def curate_shard_ray(raw_path: str | os.PathLike, config: CurationConfig, shard: str,
                     kept_path: str | os.PathLike, dropped_path: str | os.PathLike,
                     cluster: RayClusterConfig | str) -> CurationResult:
    """`curate_shard` on a Ray cluster: same tables (rows, order, values), same stats keys (+ executor, ray_tasks).

    `cluster` is a RayClusterConfig or just its address. `config.workers` and `config.batch_docs`
    do not apply: the cluster's CPUs and `cluster.pages_per_task` decide the parallelism.
    """
    if isinstance(cluster, str):
        cluster = RayClusterConfig(address=cluster)
    return curate_shards_ray([ShardJob(raw_path, shard, kept_path, dropped_path)], config, cluster)[0]


def warm_up_workers(config: CurationConfig, cluster: RayClusterConfig) -> int:
    """Load the curation code and language model on every worker node now; returns the nodes warmed.

    A new Ray job starts fresh worker processes, and their first page task pays for imports and
    the language model (seconds). Call this once when timing, or before a latency-sensitive run.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    page = {"url": "https://warm.up/", "record_id": "warm-up",
            "text": "Warm up the language model and the filters once per worker process."}
    with ray_connection(cluster):
        nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
        task = ray.remote(num_cpus=1)(_curate_pages)
        ray.get([task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
                 .remote(config, "warm-up", [page]) for node in nodes])
    return len(nodes)


def _slice(texts: Sequence[str] | pa.Array | pa.ChunkedArray, start: int, stop: int):
    if isinstance(texts, (pa.Array, pa.ChunkedArray)):
        return texts.slice(start, stop - start)
    return list(texts[start:stop])


def minhash_signatures_ray(texts: Sequence[str] | pa.Array | pa.ChunkedArray,
                           cluster: RayClusterConfig | str, num_perm: int = 112, ngram: int = 5,
                           seed: int = 1) -> np.ndarray:
    """`minhash_signatures` computed in slices of `cluster.docs_per_task` texts as Ray tasks; identical array."""
    if isinstance(cluster, str):
        cluster = RayClusterConfig(address=cluster)
    if cluster.docs_per_task < 1:
        raise ValueError("docs_per_task must be >= 1")
    n = len(texts)
    if n == 0:
        return minhash_signatures([], num_perm=num_perm, ngram=ngram, seed=seed)
    import ray

    with ray_connection(cluster):
        sign = ray.remote(num_cpus=1, resources=cluster.task_resources or None)(minhash_signatures)
        refs = [sign.remote(_slice(texts, start, min(n, start + cluster.docs_per_task)), num_perm, ngram, seed)
                for start in range(0, n, cluster.docs_per_task)]
        return np.concatenate(ray.get(refs), axis=0)


def _root_cause(exc: BaseException) -> str:
    # RayTaskError wraps the task's own exception; its message is what a user can act on.
    cause = getattr(exc, "cause", None) or exc
    return f"{type(cause).__name__}: {cause}"


# --- a throwaway cluster on this machine (tests, benchmarks, trying the Ray path out) -------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalRayCluster:
    """A real Ray cluster on 127.0.0.1: a head with no CPUs (it only schedules) and `workers` worker nodes.

    Started with the `ray` CLI beside this Python, each `ray start` in its own process group, so
    `stop()` ends exactly the processes this cluster started (never `ray stop`, which would end
    every Ray process of the machine). Use as a context manager.
    """

    workers: int = 2
    cpus_per_worker: int = 1
    # Custom resources of each worker node, by position (e.g. to steer tasks to some nodes only).
    worker_resources: list[dict[str, float]] = field(default_factory=list)
    object_store_bytes_per_node: int = 150_000_000
    start_timeout_s: float = 120.0
    address: str = ""  # GCS address, for drivers on this machine
    client_address: str = ""  # Ray Client address ("ray://..."), as a remote driver would use
    temp_dir: str = ""
    _groups: list[int] = field(default_factory=list)
    _slow_start: bool = False

    def start(self) -> "LocalRayCluster":
        import tempfile

        # Short path: Ray's unix sockets live under it and must stay below the 107-byte limit.
        self.temp_dir = tempfile.mkdtemp(prefix="mwray-", dir="/tmp")
        port = _free_port()
        self.address = f"127.0.0.1:{port}"
        try:
            client_port = _free_port()
            self.client_address = f"ray://127.0.0.1:{client_port}"
            self._run_starts([["--head", "--port", str(port), "--num-cpus", "0", "--include-dashboard=false",
                               "--ray-client-server-port", str(client_port)]])
            # One worker node after the other: side by side they starve each other on a small machine.
            for i in range(self.workers):
                self._run_starts([self._worker_args(i)])
            self._wait_for_cpus(self.workers * self.cpus_per_worker)
        except BaseException:
            self.stop()
            raise
        return self

    def _worker_args(self, index: int) -> list[str]:
        import json

        args = ["--address", self.address, "--num-cpus", str(self.cpus_per_worker)]
        if index < len(self.worker_resources):
            args += ["--resources", json.dumps(self.worker_resources[index])]
        return args

    def _run_starts(self, node_args: list[list[str]]) -> None:
        import subprocess
        import sys

        ray_cli = str(Path(sys.executable).with_name("ray"))
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        procs = []
        for args in node_args:
            cmd = [ray_cli, "start", *args, "--node-ip-address", "127.0.0.1", "--temp-dir", self.temp_dir,
                   "--disable-usage-stats", "--include-log-monitor=false",
                   "--object-store-memory", str(self.object_store_bytes_per_node),
                   # Random ports: nodes on one machine (and other clusters) must not collide.
                   "--node-manager-port", str(_free_port()), "--object-manager-port", str(_free_port()),
                   "--min-worker-port", "0", "--max-worker-port", "0"]
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True, text=True)
            self._groups.append(proc.pid)  # the daemons `ray start` forks stay in this process group
            procs.append((args[0], proc))
        for what, proc in procs:
            out, _ = proc.communicate(timeout=self.start_timeout_s)
            if proc.returncode != 0:
                if "timed out during startup" in out:
                    # `ray start` gives a raylet 30 s (hard-coded) to register; on a loaded machine it
                    # registers later, which _wait_for_cpus then sees.
                    self._slow_start = True
                    continue
                raise RuntimeError(f"ray start {what} failed ({proc.returncode}):\n{out[-3000:]}")

    def _wait_for_cpus(self, cpus: int) -> None:
        """Wait until the cluster shows `cpus` CPUs; only needed after a `ray start` reported a slow node."""
        import subprocess
        import sys

        if not self._slow_start:
            return
        probe = ("import ray; ray.init(address=%r, configure_logging=False, log_to_driver=False); "
                 "print('CPUS', ray.cluster_resources().get('CPU', 0))" % self.address)
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            # A separate process, so that this one stays free to connect later with its own runtime_env.
            res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                 timeout=self.start_timeout_s)
            seen = [float(line.split()[1]) for line in res.stdout.splitlines() if line.startswith("CPUS ")]
            if seen and seen[-1] >= cpus:
                self._slow_start = False
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Ray cluster at {self.address} still lacks {cpus} CPUs after "
                                   f"{self.start_timeout_s:.0f}s: {res.stdout[-1000:]}{res.stderr[-2000:]}")
            time.sleep(2.0)

    def stop(self) -> None:
        """End every process this cluster started (SIGTERM, then SIGKILL); never another cluster's.

        Ours are the process groups of our `ray start` calls, plus any process whose command line
        names our unique temp dir (Ray puts some worker processes in groups of their own).
        """
        import shutil
        import signal

        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = self._our_pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline and self._our_pids():
                time.sleep(0.2)
        self._groups.clear()
        if self.temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def _our_pids(self) -> list[int]:
        """Live (not zombie) processes of this cluster, workers before the head's."""
        groups = set(self._groups)
        marker = self.temp_dir.encode() if self.temp_dir else None
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if fields[0] == "Z":
                    continue  # already ended, only waiting to be reaped by its parent
                if int(fields[2]) in groups:
                    found.append(int(entry))
                    continue
                if marker:
                    with open(f"/proc/{entry}/cmdline", "rb") as f:
                        if marker in f.read():
                            found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
        return sorted(found, reverse=True)

    def __enter__(self) -> "LocalRayCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
