"""Evaluation group: every model stage scored on the test split of every benchmark (lm-evaluation-harness) and on
held-out general text, and the stage report with confidence intervals, paired verdicts and blind baselines."""

import json

import dagster as dg
from pydantic import Field

from assets.benchmarks import benchmark_suite, decontaminated_training_sets
from assets.curation import read_table
from assets.configs import derived_config
from assets.provenance import run_provenance
from assets.storage import ModelworksStorage
from curation.tables import read_jsonl
from evaluation.harness import EvalSettings

STAGES = ("base", "dapt", "sft", "dpo")
# Evaluations read per asset check when looking for failures upstream of the report: enough for
# the latest result of every partition of a partitioned check (crawl shards, seed batches).
CHECK_HISTORY = 1000
REFERENCE_TEXT_DOCS = 80  # pages of the real-English probe, before the validation/test halves


def general_text_split(table, split: str):
    """The held-out general pages of one split (evaluation.reference_text.in_probe_split: half each)."""
    import pyarrow as pa

    from evaluation.reference_text import in_probe_split

    return table.filter(pa.array(in_probe_split(table.column("id").to_pylist(), split), pa.bool_()))


EvalConfig = derived_config("EvalConfig", EvalSettings)


def _score_asset(stage: str) -> dg.AssetsDefinition:
    @dg.asset(name=f"{stage}_model_scores", group_name="evaluation", code_version="5",
              deps=[f"{stage}_model", benchmark_suite, "general_heldout_text"], kinds={"json"},
              description=f"The {stage} model on every benchmark's test split through lm-evaluation-harness (every "
                          f"item's score kept), the user's lm-eval tasks, general-text perplexity and (eval."
                          f"reference_text) the perplexity of real English shipped with Python.")
    def _scores(context: dg.AssetExecutionContext, config: EvalConfig,
                storage: ModelworksStorage) -> dg.MaterializeResult:
        from evaluation.harness import add_task_scores, evaluate_model, text_perplexity
        from evaluation.suite import suite_tasks

        limit = config.limit or None
        batch_size = config.batch_size
        external = json.loads(storage.read_text(storage.external_tasks()))
        model_dir = storage.local_path(storage.model(stage))
        with storage.reading(storage.benchmark_suite()) as suite_dir:
            tasks = suite_tasks(suite_dir, config.split) + list(external["tasks"])
            # Every stage whose model has a chat template (the open model and its DAPT too, not only SFT/DPO) is
            # also scored the way it is used, so that SFT is compared with its input in the same format.
            chat = config.chat_template if config.chat_template is not None else "auto"
            context.log.info(f"evaluating {stage} on {tasks} (chat template: {chat}, limit: {limit})")
            scores = evaluate_model(model_dir, [suite_dir / "lm_eval_tasks", *external["task_dirs"]], tasks,
                                    batch_size=batch_size, limit=limit, chat_template=chat)
        general = general_text_split(read_table(storage, storage.corpus("general_heldout_text"),
                                                columns=["id", "text"]), config.split)
        if general.num_rows:
            add_task_scores(scores, "general_text", text_perplexity(
                model_dir, general.column("text").to_pylist(), general.column("id").to_pylist(),
                max_tokens=config.perplexity_max_tokens))
        if config.reference_text:
            from evaluation.reference_text import python_reference_docs

            ids, texts = python_reference_docs(REFERENCE_TEXT_DOCS, split=config.split)
            add_task_scores(scores, "reference_text", text_perplexity(
                model_dir, texts, ids, max_tokens=config.perplexity_max_tokens))
        scores.setdefault("_meta", {})["split"] = config.split
        storage.write_text(json.dumps(scores, default=str), storage.scores(stage, config.split))
        meta: dict = {"split": config.split, "tasks": len(tasks), "chat_template": chat,
                      "path": dg.MetadataValue.path(storage.scores(stage, config.split))}
        for task, metrics in scores.items():
            if task.startswith("_") or not isinstance(metrics, dict):
                continue
            for metric, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and not metric.endswith("_stderr") \
                        and metric in ("acc", "acc_norm", "exact_match", "f1", "rougeL", "perplexity",
                                       "bits_per_byte"):
                    meta[f"{task.removeprefix('modelworks_')}/{metric}"] = round(float(value), 4)
        meta["eval_wall_time_s"] = scores.get("_meta", {}).get("wall_time_s")
        # Items that did not fit the model's context: cut from the left ("fitted") or set aside.
        fit = scores.get("_meta", {}).get("fit", {})
        meta["items_fitted"] = sum(f["fitted"] for f in fit.values())
        meta["items_set_aside"] = sum(f["set_aside"] for f in fit.values())
        meta["fit_by_task"] = dg.MetadataValue.json(fit)
        if meta["items_set_aside"]:
            context.log.warning(f"{stage}: items set aside because they do not fit the model's context: {fit}")
        # Tasks too thin for a verdict (the report says "too few to tell" for them).
        from evaluation.report import independent_units
        from evaluation.stats import MIN_UNITS

        units = {task: independent_units(rows) for task, rows in scores.get("_items", {}).items()}
        meta["independent_units"] = dg.MetadataValue.json(units)
        thin = {t: n for t, n in units.items() if n < MIN_UNITS}
        if thin:
            context.log.warning(f"{stage}: fewer than {MIN_UNITS} independent units (groups/documents) in the "
                                f"{config.split} split of {thin}: no verdicts on them")
        return dg.MaterializeResult(metadata={**meta, **run_provenance(context)})

    return _scores


stage_score_assets = [_score_asset(s) for s in STAGES]


def _latest_metadata(instance: dg.DagsterInstance, asset: str) -> dict:
    """The metadata of an asset's latest materialization, as plain values ({} when never materialized)."""
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
    return {k: getattr(v, "value", v) for k, v in meta.items()}


def _start_of_base(instance: dg.DagsterInstance) -> str:
    return str(_latest_metadata(instance, "base_model").get("start", "scratch"))


# What of benchmark_suite's own metadata says where the suite came from (the items say the rest).
SUITE_PROVENANCE_KEYS = ("source", "teacher_model", "heldout_chunks", "heldout_facts", "generation_quarantined")


def code_location_check_keys() -> set[dg.AssetCheckKey]:
    """Every asset check this code location defines (all of them live in the `assets` package)."""
    import assets

    return {key for checks in dg.load_asset_checks_from_package_module(assets) for key in checks.check_keys}


def _check_keys(context: dg.AssetExecutionContext) -> set[dg.AssetCheckKey]:
    """The asset checks Dagster knows of in this run, wherever it was launched from.

    A run launched by the webserver or daemon has the repository's full graph; a job executed in
    process (make demo, tests) has only the checks its selection runs, so the checks defined in
    the `assets` package are added: the checks of the shard and seed-batch jobs count too.
    """
    keys = set(context.job_def.asset_layer.asset_graph.asset_check_keys)
    try:
        keys |= set(context.repository_def.asset_graph.asset_check_keys)
    except Exception:  # execute_in_process / dg.materialize set no repository on the context
        pass
    return keys | code_location_check_keys()


def lineage_check_problems(context: dg.AssetExecutionContext,
                           check_keys: set[dg.AssetCheckKey] | None = None) -> list[dict]:
    """Every asset check upstream of this asset whose latest evaluation did not pass.

    The report must not read as clean when the data behind it failed a gate (a WARN check never
    stops a run). For each check on an ancestor asset, the newest evaluation of each partition
    counts (an older failure that a rerun fixed does not). `check_keys`: the checks to consider
    (default: every check this run can know of, `_check_keys`). Returns [{"asset", "check",
    "status": "failed" (ERROR severity) | "warned" (WARN), "partition", "run_id", "description",
    "metadata"}].
    """
    graph = context.job_def.asset_layer.asset_graph
    ancestors = graph.get_ancestor_asset_keys(context.asset_key)
    upstream = [k for k in (check_keys if check_keys is not None else _check_keys(context)) if k.asset_key in ancestors]
    problems = []
    for key in sorted(upstream, key=lambda k: (k.asset_key.to_user_string(), k.name)):
        latest: dict = {}  # partition -> newest evaluation (history comes newest first)
        for record in context.instance.event_log_storage.get_asset_check_execution_history(key, limit=CHECK_HISTORY):
            evaluation = record.evaluation
            # Planned (not yet evaluated) records carry a planned event, not an evaluation.
            if isinstance(evaluation, dg.AssetCheckEvaluation):
                latest.setdefault(record.partition, (record, evaluation))
        for partition, (record, evaluation) in sorted(latest.items(), key=lambda kv: str(kv[0])):
            if evaluation.passed:
                continue
            warn = evaluation.severity == dg.AssetCheckSeverity.WARN
            description = evaluation.description
            if description is None and graph.has(key):
                description = graph.get(key).description
            problems.append({
                "asset": key.asset_key.to_user_string(), "check": key.name,
                "status": "warned" if warn else "failed", "partition": partition, "run_id": record.run_id,
                "description": description,
                "metadata": {k: getattr(v, "value", v) for k, v in (evaluation.metadata or {}).items()}})
    return problems


@dg.asset(group_name="evaluation", code_version="3", deps=[f"{s}_model_scores" for s in STAGES] +
          [decontaminated_training_sets], kinds={"html", "markdown"},
          description="Stage-vs-stage report on the test split: every score with its 95% bootstrap interval, paired "
                      "comparisons of consecutive stages with a verdict (too few to tell below 10 independent "
                      "groups), blind baselines and chance beside the models, the asset checks that failed or "
                      "warned upstream, and where every benchmark came from.")
def stage_report(context: dg.AssetExecutionContext, storage: ModelworksStorage) -> dg.MaterializeResult:
    from evaluation.plots import png_markdown
    from evaluation.report import build_stage_report
    from evaluation.suite import suite_baselines, suite_chance, suite_provenance

    start = _start_of_base(context.instance)
    # The first row is the untouched open model when training started from one, else the from-scratch base.
    names = {"base": "base (from scratch)" if start == "scratch" else f"open model ({start})"}
    results = {names.get(s, s): json.loads(storage.read_text(storage.scores(s, "test"))) for s in STAGES}
    post_training = []
    for name in ("sft_conversations", "preference_pairs"):
        with storage.reading(storage.decontaminated(name)) as p:
            post_training += read_jsonl(p)
    checks = lineage_check_problems(context)
    for c in checks:
        context.log.warning(f"upstream check {c['status']}: {c['asset']} / {c['check']}"
                            + (f" (partition {c['partition']})" if c["partition"] else ""))
    suite_meta = _latest_metadata(context.instance, "benchmark_suite")
    with storage.reading(storage.benchmark_suite()) as suite_dir, storage.writing(storage.reports()) as out:
        kept = storage.keep_ablation_outputs(out)  # an earlier ablation's comparison stays beside the report
        provenance = {"suite": {k: suite_meta[k] for k in SUITE_PROVENANCE_KEYS if k in suite_meta},
                      "benchmarks": suite_provenance(suite_dir)}
        report = build_stage_report(results, out, stages=list(results),
                                    baselines=suite_baselines(suite_dir, post_training),
                                    chance=suite_chance(suite_dir), checks=checks, provenance=provenance)
        png = (out / "scores.png").read_bytes()
    verdicts = report["report"]["verdicts"]
    return dg.MaterializeResult(metadata={
        "table": dg.MetadataValue.md(report["markdown"]), "chart": dg.MetadataValue.md(png_markdown(png, "scores")),
        "verdicts": dg.MetadataValue.json(verdicts), "start": start,
        "warnings": dg.MetadataValue.json(report["report"]["warnings"]),
        "upstream_checks_failed_or_warned": dg.MetadataValue.json(
            [{k: c[k] for k in ("asset", "check", "status", "partition")} for c in checks]),
        "benchmark_provenance": dg.MetadataValue.json(provenance),
        "report_folder": dg.MetadataValue.path(storage.reports()), "ablation_files_kept": dg.MetadataValue.json(kept),
        "json_path": dg.MetadataValue.path(storage.report_json()), **run_provenance(context)})


@dg.asset_check(asset=stage_report, description="The final model beats the first stage (from-scratch base or untouched "
                                                "open model) on every MCQ test benchmark: paired 95% CI above 0, "
                                                "on enough independent groups for a verdict.")
def final_model_beats_first_stage_on_mcq(storage: ModelworksStorage) -> dg.AssetCheckResult:
    report = json.loads(storage.read_text(storage.report_json()))
    first, last = report["stages"][0], report["stages"][-1]
    found = {key: c for key, cs in report["comparisons"].items() for c in cs
             if c["from"] == first and c["to"] == last and "mcq" in key and "acc" in key}
    # The verdict, not the bare interval: a CI above 0 on too few groups is "too few to tell".
    passed = bool(found) and all(c["verdict"] == "helped" for c in found.values())
    return dg.AssetCheckResult(passed=passed, severity=dg.AssetCheckSeverity.WARN, metadata={
        "comparisons": dg.MetadataValue.json({k: {"diff": c["diff"], "lo": c["lo"], "hi": c["hi"],
                                                  "verdict": c["verdict"]} for k, c in found.items()})})
