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


def prepare_shards(defs, storage, recipe, home: str, only, instance) -> list[str]:
    """The crawl shards this run needs (none when `only` selects no per-shard asset), registered as partitions."""
    import dagster as dg

    from assets.partitions import crawl_shard_partitions
    from pipelines.recipe import RecipeError

    needs_shards = any(r.job == "shard_curation_job" for r in plan(defs, ["?"], only))
    shards = sorted(storage.crawl_files()) if needs_shards else []
    if needs_shards and not shards:
        where = f"inputs.crawl ({', '.join(recipe.crawl)})" if recipe.crawl else f"the landing folder {storage.landing()}"
        raise RecipeError([f"{recipe.files[0]}: no crawl shard (WARC/ARC/JSONL/Parquet file) in {where}: set "
                           "inputs.crawl, or run `modelworks demo` for the generated demo crawl"])
    known = set(instance.get_dynamic_partitions(crawl_shard_partitions.name))
    if shards:
        # Dedup takes every shard of this storage root that has signatures: another crawl's shards would mix in.
        foreign = sorted(s for s in known - set(shards) if storage.exists(storage.signatures(s)))
        if foreign:
            raise RecipeError([f"{home} already holds curated shards of another crawl ({', '.join(foreign[:5])}"
                               f"{', ...' if len(foreign) > 5 else ''}) that deduplication would mix into this one: "
                               "give this recipe its own storage root (--home DIR or MODELWORKS_HOME)"])
        instance.add_dynamic_partitions(crawl_shard_partitions.name, [s for s in shards if s not in known])
    return shards


def execute(defs, instance, r: Planned, recipe, tags: dict, out: Callable, verbose: bool,
            selection: Iterable | None = None, label: str | None = None) -> dict:
    """One planned run in process into `instance`; RunFailed (the error printed once) if a step failed.
    `selection`: asset keys (user strings) to run instead of the plan's."""
    import dagster as dg
    from dagster._core.utils import make_new_run_id

    from pipelines.definitions import all_assets, job_ops
    from pipelines.recipe import RecipeError

    asset_ops = {a.node_def.name for a in all_assets}
    label = label or r.label
    chosen = r.selection if selection is None else frozenset(selection)
    job = defs.resolve_job_def(r.job)
    ops = job_ops(r.job)
    keys = None
    if chosen is not None:
        keys = [dg.AssetKey.from_user_string(k) for k in sorted(chosen)]
        ops = {a.node_def.name for a in all_assets if {k.to_user_string() for k in a.keys} & chosen}
    run_config = recipe.run_config(ops)
    per_step = r.job in ("corpus_to_model_job", "comparison_job")
    listener = _Step(out=out, per_step=per_step, asset_ops=asset_ops)
    run_id = make_new_run_id()
    instance.add_event_listener(run_id, listener)
    if per_step:
        out(f"{label} ...")
    t0 = time.perf_counter()
    try:
        result = job.execute_in_process(run_config=run_config, instance=instance, partition_key=r.partition,
                                        asset_selection=keys, run_id=run_id, tags=tags, raise_on_error=False)
        success = result.success
    except Exception as err:  # invalid run config and the like: nothing ran
        raise RecipeError([f"{label}: {type(err).__name__}: {err}".splitlines()[0]]) from err
    seconds = time.perf_counter() - t0
    if not success:
        out(f"{label} FAILED after {seconds:.1f}s (run {run_id}; the run and its logs are in the Dagster UI)")
        for step, error in listener.failed:
            if verbose:  # Dagster's console log above has shown the stack trace already
                out(f"step {step} failed: {error.message.strip() if error is not None else ''}")
                continue
            out(f"step {step} failed:")
            out(error.to_string().rstrip() if error is not None else "(no error recorded)", raw=True)
        if not listener.failed:
            out("the run failed before any step ran (resources, config); see the run in the Dagster UI")
        raise RunFailed(f"{label} failed")
    out(f"{label} done in {seconds:.1f}s" if per_step else
        f"{label}: {', '.join(s for s, _ in listener.done if s in asset_ops)} in {seconds:.1f}s")
    return {"label": label, "job": r.job, "partition": r.partition, "run_id": run_id,
            "seconds": round(seconds, 1), "checks_failed": listener.checks_failed}


def load_for_run(recipe_arg: str, overrides: Iterable[str], home: str, *, only: Iterable[str] | None = None,
                 demo: bool = False, text: str | None = None):
    """(recipe, storage) for a run of `recipe_arg` (a file or shipped name; `text`: the recipe's YAML itself) into
    `home`, checked before anything runs: every input exists, there is a crawl to curate. RecipeError otherwise."""
    from assets.storage import ModelworksStorage
    from pipelines.recipe import RecipeError, load_recipe

    recipe = load_recipe(recipe_arg, overrides, text=text)
    if not demo:
        recipe.check_inputs()
    storage = ModelworksStorage(root=home, crawl=recipe.crawl)
    if not demo and only is None and not recipe.crawl and not storage.crawl_files():
        raise RecipeError([f"{recipe.files[0]}: no crawl: inputs.crawl is not set and the landing folder "
                           f"{storage.landing()} holds no shard (WARC/ARC/JSONL/Parquet); set inputs.crawl (or --set "
                           "inputs.crawl=DIR), or run `modelworks demo` for the generated demo crawl"])
    if recipe.crawl and not storage.crawl_files():
        raise RecipeError([f"{recipe.where('inputs.crawl')}: inputs.crawl names no shard file (WARC/ARC/JSONL/Parquet) "
                           f"in {', '.join(recipe.crawl)}"])
    return recipe, storage


def launch(recipe, storage, home: str, *, recipe_arg: str, overrides: Iterable[str], out: Callable,
           only: Iterable[str] | None = None, verbose: bool = False, demo: bool = False, regenerate: bool = False,
           text: str | None = None, source: str = "modelworks-cli", instance=None, tags: dict | None = None) -> dict:
    """What `modelworks run` / `modelworks demo` and the UI's `recipe_job` do once the recipe is loaded: the demo's
    crawl and files first (`demo`), then `materialize`. Returns materialize's result with the recipe run."""
    from pipelines.recipe import load_recipe

    if demo:
        demo_crawl(storage, recipe, regenerate, out)
        from pipelines.demo_checks import demo_overrides  # the demo's files, passed as inputs

        recipe = load_recipe(recipe_arg, [*overrides, *demo_overrides(recipe, storage)], text=text)
    result = materialize(recipe, home, only=only, out=out, verbose=verbose, source=source, instance=instance,
                         tags=tags)
    return {**result, "recipe": recipe}


def materialize(recipe, home: str, *, only: Iterable[str] | None = None, out: Callable | None = None,
                source: str = "modelworks-cli", verbose: bool = False, instance=None, tags: dict | None = None) -> dict:
    """Run the recipe's graph (or the `only` assets) into `home`; returns {"runs": [...], "report": path or None}.
    Raises RecipeError for a problem found before anything ran, RunFailed after a step failed. `instance`: the
    Dagster instance to record the runs in (default: DAGSTER_HOME's); `tags`: added to every run's."""
    import dagster as dg

    from pipelines.definitions import build_definitions
    from pipelines.recipe import RecipeError

    out = out or Console()
    if recipe.variants:
        if only is not None:
            raise RecipeError([f"{recipe.files[0]}: --only with variants: run one variant with --set instead"])
        return materialize_variants(recipe, home, out=out, source=source, verbose=verbose, instance=instance,
                                    tags=tags)
    if instance is None:
        ensure_dagster_home()
        instance = dg.DagsterInstance.get()
    defs = build_definitions(recipe=recipe, home=home)
    storage = defs.resources["storage"]
    shards = prepare_shards(defs, storage, recipe, home, only, instance)
    runs = plan(defs, shards, only)

    storage.write_text(recipe.to_yaml(), storage.recipe_resolved())
    storage.write_text(recipe.to_yaml(), storage.recipe_copy(recipe.name, recipe.digest))
    tags = {**recipe.tags(), "modelworks/source": source, "modelworks/home": str(home), **(tags or {})}
    out(f"recipe {recipe.name} ({recipe.digest}) from {' <- '.join(recipe.files)}"
        + (f" --set {' --set '.join(recipe.overrides)}" if recipe.overrides else ""))
    out(f"MODELWORKS_HOME={home} DAGSTER_HOME={instance.root_directory}"
        + (f"; {len(shards)} crawl shards from {', '.join(recipe.crawl) or storage.landing()}" if shards else ""))
    t_start = time.perf_counter()
    done, skipped = incremental(defs, instance, storage, recipe, runs, tags, out, verbose, explicit=only is not None)
    report = storage.report_json() if storage.exists(storage.report_json()) else None
    return {"runs": done, "up_to_date": skipped, "report": report,
            "seconds": round(time.perf_counter() - t_start, 1), "storage": storage}


def incremental(defs, instance, storage, recipe, runs: list, tags: dict, out: Callable, verbose: bool,
                explicit: bool = False) -> tuple[list[dict], list[dict]]:
    """Execute the planned runs, skipping every stage (partition) that is up to date: its content key (`stage_keys`:
    its resolved settings, inputs, code version and its upstream stages' keys) is the one recorded when it was last
    materialized here, and that materialization is still the asset's latest in the instance (a run launched from the
    UI since then makes it stale). A changed setting thus reruns exactly its stage and what lies below it. `explicit`
    (`--only`): the named assets run whether up to date or not. Returns (the runs executed, the stages skipped)."""
    import json

    keys = stage_keys(recipe, defs)
    done, skipped = [], []
    for r in runs:
        part = r.partition if r.job in PER_PARTITION_JOBS else None
        ops = _ops_of(r)

        def mark(op: str, result: dict) -> None:
            if op in keys:
                storage.write_text(json.dumps({"key": keys[op], "run_id": result["run_id"], "op": op,
                                               "partition": part}), storage.current_stage(op, part))

        result, fresh = run_pending(
            defs, instance, r, recipe, tags, out, verbose, ops,
            fresh=lambda op: not explicit and _up_to_date(instance, storage, op, keys.get(op), _keys_of(op), part),
            mark=mark, label=lambda fresh: r.label + (f" (up to date: {', '.join(fresh)})"
                                                      if fresh and r.partition is None else ""))
        skipped += [{"op": op, "partition": part, "key": keys.get(op)} for op in fresh]
        if result is None:
            out(f"{r.label}: up to date ({', '.join(ops)})")
            continue
        done.append(result)
    return done, skipped


def _keys_of(op: str) -> list[str]:
    from pipelines.definitions import all_assets

    return [k.to_user_string() for a in all_assets if a.node_def.name == op for k in a.keys]


def _ops_of(r: Planned) -> list[str]:
    """The ops a planned run covers (all of its job's, or those of its selection)."""
    from pipelines.definitions import job_ops

    return sorted(op for op in job_ops(r.job) if r.selection is None or set(_keys_of(op)) & set(r.selection))


def run_pending(defs, instance, r: Planned, recipe, tags: dict, out: Callable, verbose: bool, ops: list[str], *,
                fresh: Callable[[str], bool], mark: Callable[[str, dict], None],
                label: Callable[[list[str]], str]) -> tuple[dict | None, list[str]]:
    """One planned run, limited to its ops that are not `fresh` (plain runs: up to date here; ablations: done
    under the same content key by an earlier variant or launch); `mark(op, result)` records each op it ran.
    Returns (the run's result or None when nothing was pending, the fresh ops)."""
    pending = [op for op in ops if not fresh(op)]
    fresh_ops = [op for op in ops if op not in pending]
    if not pending:
        return None, fresh_ops
    selection = {k for op in pending for k in _keys_of(op)}
    result = execute(defs, instance, r, recipe, tags, out, verbose, selection=selection, label=label(fresh_ops))
    for op in pending:
        mark(op, result)
    return result, fresh_ops


def _up_to_date(instance, storage, op: str, key: str | None, asset_keys: list[str], partition: str | None) -> bool:
    import json

    import dagster as dg

    loc = storage.current_stage(op, partition)
    if key is None or not storage.exists(loc):
        return False
    marker = json.loads(storage.read_text(loc))
    if marker.get("key") != key:
        return False
    for asset in asset_keys:
        flt = dg.AssetRecordsFilter(asset_key=dg.AssetKey.from_user_string(asset),
                                    asset_partitions=[partition] if partition else None)
        records = instance.fetch_materializations(flt, limit=1).records
        if not records or records[0].run_id != marker.get("run_id"):
            return False
    return True


# ---------------------------------------------------------------------------------------------- ablations
# What an op reads beyond its own section and run config (its inputs that are not run config).
EXTRA_SECTIONS = {"open_model": ("inputs.base_model",), "crawl_shard": ("inputs.crawl",)}
# Ops partitioned by crawl shard or seed batch (their done markers are per partition).
PER_PARTITION_JOBS = ("shard_curation_job", "synthetic_job")


def stage_keys(recipe, defs) -> dict[str, str]:
    """Op name -> its content key: a hash of the op's resolved settings (the recipe sections that configure it,
    its inputs, its teacher, its code version) and of its upstream ops' keys, so
    two variants get the same key for a stage exactly when that stage and everything above it are the same."""
    import hashlib
    import json

    from pipelines.definitions import all_assets
    from pipelines.recipe import _get

    graph = defs.resolve_asset_graph()
    op_of = {k.to_user_string(): a.node_def.name for a in all_assets for k in a.keys}
    by_op = {a.node_def.name: a for a in all_assets}
    parents: dict[str, set] = {op: set() for op in by_op}
    for a in all_assets:
        for k in a.keys:
            for p in graph.get(k).parent_keys:
                if op_of.get(p.to_user_string(), a.node_def.name) != a.node_def.name:
                    parents[a.node_def.name].add(op_of[p.to_user_string()])
    op_config = recipe.op_config()
    keys: dict[str, str] = {}

    def settings(op: str) -> dict:
        a = by_op[op]
        out = {sec: recipe.data.get(sec) for sec, ops in recipe.schema.stage_ops.items() if op in ops}
        for dotted in EXTRA_SECTIONS.get(op, ()):
            try:
                out[dotted] = _get(recipe.data, dotted)
            except KeyError:
                out[dotted] = None
        if "teacher" in a.required_resource_keys:
            out["inputs.teacher"] = recipe.teacher
        out["config"] = op_config.get(op, {})
        out["code"] = sorted(str(v) for v in a.code_versions_by_key.values())
        return out

    def key(op: str) -> str:
        if op not in keys:
            body = {"op": op, "settings": settings(op), "inputs": {p: key(p) for p in sorted(parents[op])}}
            keys[op] = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:12]
        return keys[op]

    for op in by_op:
        key(op)
    return keys


def materialize_variants(recipe, home: str, *, out: Callable, source: str = "modelworks-cli",
                         verbose: bool = False, instance=None, tags: dict | None = None) -> dict:
    """Every variant of the recipe from one launch, then the comparison.

    Each variant's stages are keyed (`stage_keys`) and live under `stages/<op>/<key>/` of the storage root; a stage
    (a partition of it) whose key already has a done marker is reused, not run again, so variants share every stage
    whose settings and inputs agree. Every run carries the variant's tags (`modelworks/variant`, the launch id), so
    the UI shows each variant's models and scores. `reports/reuse.jsonl` records what was reused and what ran;
    `reports/variants.json` the variants and their keys; the `variant_comparison` asset sets them side by side."""
    import json
    import uuid

    import dagster as dg

    from pipelines.definitions import build_definitions

    if instance is None:
        ensure_dagster_home()
        instance = dg.DagsterInstance.get()
    launch = uuid.uuid4().hex[:12]
    extra_tags = dict(tags or {})
    base_defs = build_definitions(recipe=recipe, home=home)
    storage = base_defs.resources["storage"]
    shards = prepare_shards(base_defs, storage, recipe, home, None, instance)
    storage.write_text(recipe.to_yaml(), storage.recipe_resolved())
    storage.write_text(recipe.to_yaml(), storage.recipe_copy(recipe.name, recipe.digest))
    out(f"recipe {recipe.name} ({recipe.digest}) from {' <- '.join(recipe.files)}"
        + (f" --set {' --set '.join(recipe.overrides)}" if recipe.overrides else "")
        + f"; variants {', '.join(recipe.variants)} (launch {launch})")
    out(f"MODELWORKS_HOME={home} DAGSTER_HOME={instance.root_directory}; {len(shards)} crawl shards")
    t_start = time.perf_counter()
    done_runs, manifest, reuse_lines = [], [], []
    for name in recipe.variants:
        variant = recipe.variant(name)
        keys = stage_keys(variant, base_defs)
        defs = build_definitions(recipe=variant, home=home, stage_keys=keys)
        vstorage = defs.resources["storage"]
        tags = {**variant.tags(), "modelworks/source": source, "modelworks/home": str(home),
                "modelworks/variant": name, "modelworks/ablation": f"{recipe.name}-{recipe.digest}",
                "modelworks/launch": launch, **extra_tags}
        out(f"variant {name} ({variant.digest}): {', '.join(recipe.variant_overrides(name)) or 'the recipe as is'}")
        manifest.append({"name": name, "overrides": recipe.variants[name], "digest": variant.digest,
                         "stage_keys": keys})
        reused_count = 0
        for r in plan(defs, shards, None):
            if r.job == "comparison_job":
                continue
            part = r.partition if r.job in PER_PARTITION_JOBS else None

            def mark(op: str, result: dict) -> None:
                marker = {"variant": name, "run_id": result["run_id"], "op": op, "partition": part,
                          "key": keys[op], "launch": launch}
                vstorage.write_text(json.dumps(marker), vstorage.stage_done(op, keys[op], part))
                reuse_lines.append({**marker, "action": "materialized"})

            result, reused = run_pending(
                defs, instance, r, variant, tags, out, verbose, [op for op in _ops_of(r) if op in keys],
                fresh=lambda op: vstorage.exists(vstorage.stage_done(op, keys[op], part)), mark=mark,
                label=lambda reused: f"[{name}] {r.label}" + (f" (reusing {', '.join(reused)})"
                                                               if reused and r.partition is None else ""))
            for op in reused:
                earlier = json.loads(vstorage.read_text(vstorage.stage_done(op, keys[op], part)))
                reuse_lines.append({"launch": launch, "variant": name, "op": op, "partition": part, "key": keys[op],
                                    "action": "reused", "run_id": earlier.get("run_id"),
                                    "from_variant": earlier.get("variant")})
            reused_count += len(reused)
            if result is not None:
                done_runs.append({**result, "variant": name})
        out(f"variant {name}: {reused_count} stage partitions reused from earlier variants or runs")
    storage.write_text(json.dumps({"recipe": recipe.name, "digest": recipe.digest, "launch": launch,
                                   "variants": manifest}, indent=1), storage.variants_manifest())
    previous = storage.read_text(storage.reuse_log()) if storage.exists(storage.reuse_log()) else ""
    storage.write_text(previous + "".join(json.dumps(x) + "\n" for x in reuse_lines), storage.reuse_log())
    comparison = Planned("comparison of the variants", "comparison_job")
    tags = {**recipe.tags(), "modelworks/source": source, "modelworks/home": str(home), "modelworks/launch": launch,
            **extra_tags}
    done_runs.append(execute(base_defs, instance, comparison, recipe, tags, out, verbose))
    path = storage.comparison("json")
    return {"runs": done_runs, "report": None, "comparison": path if storage.exists(path) else None,
            "reuse": reuse_lines, "launch": launch, "variants": manifest,
            "seconds": round(time.perf_counter() - t_start, 1), "storage": storage}


def print_comparison(storage, out: Callable) -> str | None:
    import json

    from evaluation.comparison import format_comparison_summary

    if not storage.exists(storage.comparison("json")):
        return None
    text = format_comparison_summary(json.loads(storage.read_text(storage.comparison("json"))))
    out("", raw=True)
    out(text, raw=True)
    out("", raw=True)
    out(f"comparison: {storage.comparison('html')}", raw=True)
    return text


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
