"""Materialize the graph for one recipe through the jobs and the Dagster instance the UI shows.

`materialize(recipe, home)` runs what a first run needs, in order: `shard_curation_job` per crawl shard, `seed_job`,
`synthetic_job` per seed batch, `corpus_to_model_job`; into `DAGSTER_HOME` (the project's instance config, SQLite,
pools), so every run, materialization, check and metadata entry is browsable in `modelworks ui` afterwards. Every
run carries the recipe's tags (name, hash, the resolved YAML), and the resolved recipe is written under the
storage root. Progress is one line per stage; a failed step's stack trace is printed once.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

REPO = Path(__file__).resolve().parent.parent


class RunFailed(RuntimeError):
    """A step failed; its stack trace was already printed (once)."""


def ensure_dagster_home() -> Path:
    """DAGSTER_HOME inside the checkout unless set, with the project's instance config (SQLite, pools)."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(REPO / ".dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copyfile(REPO / "pipelines" / "dagster.yaml", home / "dagster.yaml")
    return home


def stamp() -> str:
    return time.strftime("%H:%M:%S")


@dataclass
class Console:
    """Progress lines for the terminal (and the log). `term` is where the user looks; `log` gets everything."""

    term: object = None
    log: object = None
    lines: list = field(default_factory=list)

    def __call__(self, msg: str = "", raw: bool = False) -> None:
        text = msg if raw else f"[modelworks {stamp()}] {msg}"
        self.lines.append(text)
        for stream in {id(s): s for s in (self.term or sys.stdout, self.log) if s is not None}.values():
            print(text, file=stream, flush=True)


@contextlib.contextmanager
def quiet(log_path: Path | None):
    """Send everything this process and its children write (Dagster's console log, library warnings, torchrun's
    output) to `log_path`; yield a Console that still writes to the terminal. `None`: nothing is redirected."""
    if log_path is None:
        yield Console()
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    term = os.fdopen(os.dup(saved_out), "w", buffering=1)
    log = open(log_path, "w", buffering=1, encoding="utf-8")
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    try:
        yield Console(term=term, log=sys.stdout)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
        with contextlib.suppress(BrokenPipeError):
            term.close()
        log.close()


@dataclass
class _Step:
    """What the event listener saw of one run."""

    out: Callable[[str], None]
    per_step: bool
    asset_ops: set
    done: list = field(default_factory=list)  # (step, seconds)
    failed: list = field(default_factory=list)  # (step, SerializableErrorInfo)
    checks_failed: list = field(default_factory=list)

    def __call__(self, record) -> None:
        ev = record.dagster_event
        if ev is None:
            return
        kind = ev.event_type_value
        step = ev.step_key or ""
        if kind == "STEP_SUCCESS":
            seconds = ev.event_specific_data.duration_ms / 1000
            self.done.append((step, seconds))
            if self.per_step and step in self.asset_ops:
                self.out(f"  {step} done in {seconds:.1f}s")
        elif kind == "STEP_FAILURE":
            self.failed.append((step, ev.step_failure_data.error))
            self.out(f"  {step} FAILED")
        elif kind == "ASSET_CHECK_EVALUATION":
            data = ev.event_specific_data
            if not data.passed:
                severity = getattr(data.severity, "value", data.severity)
                name = f"{data.asset_key.to_user_string()}/{data.check_name}"
                self.checks_failed.append((name, severity))
                self.out(f"  check {name} did not pass ({str(severity).lower()})")


@dataclass(frozen=True)
class Planned:
    label: str
    job: str
    partition: str | None = None
    selection: frozenset | None = None  # asset keys (user strings); None: the whole job


def plan(defs, shards: list[str], only: Iterable[str] | None) -> list[Planned]:
    """The runs, in order: every shard, the seed corpus, every seed batch, the rest (only what `only` selects)."""
    from assets.partitions import SEED_BATCHES
    from pipelines.definitions import JOBS

    graph = defs.resolve_asset_graph()
    selected = None if only is None else select(graph, only)
    runs = []
    for job, (selection, _) in JOBS.items():
        keys = {k.to_user_string() for k in selection.resolve(graph)}
        subset = keys if selected is None else keys & selected
        if not subset:
            continue
        sel = None if subset == keys else frozenset(subset)
        if job == "shard_curation_job":
            runs += [Planned(f"shard {s}", job, s, sel) for s in shards]
        elif job == "synthetic_job":
            runs += [Planned(f"synthetic data {b}", job, b, sel) for b in SEED_BATCHES]
        else:
            runs.append(Planned({"seed_job": "seed corpus", "corpus_to_model_job": "corpus -> model -> report"}
                                .get(job, job), job, None, sel))
    return runs


def select(graph, only: Iterable[str]) -> set[str]:
    """Asset names (`NAME`, or `NAME+`: it and everything downstream), whole multi-assets included."""
    import difflib

    import dagster as dg

    from pipelines.recipe import RecipeError

    all_keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    out: set[str] = set()
    for item in only:
        name, downstream = item.rstrip("+"), item.endswith("+")
        if name not in all_keys:
            close = difflib.get_close_matches(name, sorted(all_keys), n=3)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise RecipeError([f"--only {item}: no asset {name!r} ({hint}assets: {', '.join(sorted(all_keys))})"])
        sel = dg.AssetSelection.assets(name)
        if downstream:
            sel = sel.downstream()
        out |= {k.to_user_string() for k in sel.resolve(graph)}
    # an op that writes several assets (domain_selection, synthetic_data, token_shards) runs whole
    for key in list(out):
        node = graph.get(dg.AssetKey.from_user_string(key))
        out |= {k.to_user_string() for k in node.assets_def.keys}
    return out


def materialize(recipe, home: str, *, only: Iterable[str] | None = None, out: Callable | None = None,
                source: str = "modelworks-cli", verbose: bool = False) -> dict:
    """Run the recipe's graph (or the `only` assets) into `home`; returns {"runs": [...], "report": path or None}.
    Raises RecipeError for a problem found before anything ran, RunFailed after a step failed."""
    import dagster as dg
    from dagster._core.utils import make_new_run_id

    from assets.partitions import crawl_shard_partitions
    from pipelines.definitions import all_assets, build_definitions, job_ops
    from pipelines.recipe import RecipeError

    out = out or Console()
    ensure_dagster_home()
    defs = build_definitions(recipe=recipe, home=home)
    storage = defs.resources["storage"]
    needs_shards = any(r.job == "shard_curation_job" for r in plan(defs, ["?"], only))
    shards = sorted(storage.crawl_files()) if needs_shards else []
    if needs_shards and not shards:
        where = f"inputs.crawl ({', '.join(recipe.crawl)})" if recipe.crawl else f"the landing folder {storage.landing()}"
        raise RecipeError([f"{recipe.files[0]}: no crawl shard (WARC/ARC/JSONL/Parquet file) in {where}: set "
                           "inputs.crawl, or run `modelworks demo` for the generated demo crawl"])
    instance = dg.DagsterInstance.get()
    known = set(instance.get_dynamic_partitions(crawl_shard_partitions.name))
    if shards:
        # Dedup takes every shard of this storage root that has signatures: another crawl's shards would mix in.
        foreign = sorted(s for s in known - set(shards) if storage.exists(storage.signatures(s)))
        if foreign:
            raise RecipeError([f"{home} already holds curated shards of another crawl ({', '.join(foreign[:5])}"
                               f"{', ...' if len(foreign) > 5 else ''}) that deduplication would mix into this one: "
                               "give this recipe its own storage root (--home DIR or MODELWORKS_HOME)"])
        instance.add_dynamic_partitions(crawl_shard_partitions.name, [s for s in shards if s not in known])
    runs = plan(defs, shards, only)

    storage.write_text(recipe.to_yaml(), storage.recipe_resolved())
    storage.write_text(recipe.to_yaml(), storage.recipe_copy(recipe.name, recipe.digest))
    tags = {**recipe.tags(), "modelworks/source": source, "modelworks/home": str(home)}
    out(f"recipe {recipe.name} ({recipe.digest}) from {' <- '.join(recipe.files)}"
        + (f" --set {' --set '.join(recipe.overrides)}" if recipe.overrides else ""))
    out(f"MODELWORKS_HOME={home} DAGSTER_HOME={os.environ['DAGSTER_HOME']}"
        + (f"; {len(shards)} crawl shards from {', '.join(recipe.crawl) or storage.landing()}" if shards else ""))
    if recipe.variants:
        out(f"variants {', '.join(recipe.variants)}: validated, not run (running variants is not built yet)")
    asset_ops = {a.node_def.name for a in all_assets}
    t_start = time.perf_counter()
    done = []
    for r in runs:
        job = defs.resolve_job_def(r.job)
        ops = job_ops(r.job)
        selection = None
        if r.selection is not None:
            selection = [dg.AssetKey.from_user_string(k) for k in sorted(r.selection)]
            ops = {a.node_def.name for a in all_assets if {k.to_user_string() for k in a.keys} & r.selection}
        run_config = recipe.run_config(ops)
        per_step = r.job == "corpus_to_model_job"
        listener = _Step(out=out, per_step=per_step, asset_ops=asset_ops)
        run_id = make_new_run_id()
        instance.add_event_listener(run_id, listener)
        if per_step:
            out(f"{r.label} ...")
        t0 = time.perf_counter()
        try:
            result = job.execute_in_process(run_config=run_config, instance=instance, partition_key=r.partition,
                                            asset_selection=selection, run_id=run_id, tags=tags,
                                            raise_on_error=False)
            success = result.success
        except Exception as err:  # invalid run config and the like: nothing ran
            raise RecipeError([f"{r.label}: {type(err).__name__}: {err}".splitlines()[0]]) from err
        seconds = time.perf_counter() - t0
        if not success:
            out(f"{r.label} FAILED after {seconds:.1f}s (run {run_id}; the run and its logs are in the Dagster UI)")
            for step, error in listener.failed:
                if verbose:  # Dagster's console log above has shown the stack trace already
                    out(f"step {step} failed: {error.message.strip() if error is not None else ''}")
                    continue
                out(f"step {step} failed:")
                out(error.to_string().rstrip() if error is not None else "(no error recorded)", raw=True)
            if not listener.failed:
                out("the run failed before any step ran (resources, config); see the run in the Dagster UI")
            raise RunFailed(f"{r.label} failed")
        done.append({"label": r.label, "job": r.job, "partition": r.partition, "run_id": run_id,
                     "seconds": round(seconds, 1), "checks_failed": listener.checks_failed})
        out(f"{r.label} done in {seconds:.1f}s" if per_step else
            f"{r.label}: {', '.join(s for s, _ in listener.done if s in asset_ops)} in {seconds:.1f}s")
    report = storage.report_json() if storage.exists(storage.report_json()) else None
    return {"runs": done, "report": report, "seconds": round(time.perf_counter() - t_start, 1),
            "storage": storage}


def stage_table(storage) -> tuple[str, str] | None:
    """(the stage table, where the HTML report is), or None when this storage root has no report yet."""
    import json

    from evaluation.report import format_stage_table

    if not storage.exists(storage.report_json()):
        return None
    report = json.loads(storage.read_text(storage.report_json()))
    return format_stage_table(report), f"{storage.reports()}/report.html"


def print_report(storage, out: Callable, header: bool = True) -> str | None:
    found = stage_table(storage)
    if found is None:
        return None
    table, html = found
    if header:
        out("", raw=True)
        out("Benchmark scores per model stage, test split, value [95% CI]; paired verdicts below:", raw=True)
        out("", raw=True)
    out(table, raw=True)
    out("", raw=True)
    out(f"report: {html}", raw=True)
    return table


def demo_crawl(storage, recipe, regenerate: bool, out: Callable) -> None:
    """Write the generated demo crawl into this storage root's landing folder, unless it is already there.

    Only ever into the demo's own home: never over or beside shards that are not the demo's (a user's crawl in
    the landing folder), never into a root that holds another crawl's tables."""
    from curation.demo.crawl import DemoCrawlConfig, generate_demo_crawl

    from pipelines.recipe import RecipeError

    if recipe.crawl:
        raise RecipeError([f"{recipe.where('inputs.crawl')}: the demo runs on the generated demo crawl; run a recipe "
                           "with inputs.crawl with `modelworks run`"])
    if not storage.is_local:
        raise RecipeError([f"the demo writes its crawl into a local storage root, not {storage.root}"])
    shards = set(storage.crawl_files())
    truth = {n.removesuffix(".jsonl") for n in storage.listdir(storage.demo_truth())}
    foreign = sorted(shards - truth)
    if foreign:
        raise RecipeError([f"{storage.landing()} holds crawl shards that are not the demo's ({', '.join(foreign[:5])}"
                           f"{', ...' if len(foreign) > 5 else ''}): the demo writes only into its own home; set "
                           "MODELWORKS_HOME (or --home) to another folder, or run your crawl with `modelworks run`"])
    if shards and not regenerate:
        out(f"demo crawl: {len(shards)} shards already in {storage.landing()} (--regenerate writes them again)")
        return
    if not shards and storage.listdir(storage.tables_root()) and not storage.exists(storage.demo_facts()):
        raise RecipeError([f"{storage.root} holds the tables of another crawl: the demo writes only into its own "
                           "home; set MODELWORKS_HOME (or --home) to another folder"])
    config = DemoCrawlConfig(**recipe.demo_crawl)
    summary = generate_demo_crawl(storage.local_path(storage.root), config)
    out(f"demo crawl: {summary['pages']} pages in {len(summary['shards'])} shards -> {storage.landing()}")
