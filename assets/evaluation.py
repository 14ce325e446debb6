"""Evaluation group: every model stage scored on the test split of every benchmark (lm-evaluation-harness) and on
held-out general text, and the stage report with confidence intervals, paired verdicts and blind baselines."""

import json

import dagster as dg
from pydantic import Field

from assets.benchmarks import benchmark_suite, decontaminated_training_sets
from assets.curation import read_table
from assets.profiles import ProfileResource
from assets.storage import ModelworksStorage
from curation.tables import read_jsonl

STAGES = ("base", "dapt", "sft", "dpo")
REFERENCE_TEXT_DOCS = 80  # pages of the real-English probe, before the validation/test halves


def general_text_split(table, split: str):
    """The held-out general pages of one split (evaluation.reference_text.in_probe_split: half each)."""
    import pyarrow as pa

    from evaluation.reference_text import in_probe_split

    return table.filter(pa.array(in_probe_split(table.column("id").to_pylist(), split)))


class EvalConfig(dg.Config):
    split: str = Field(default="test", description="test: the report's split. validation: for choosing "
                                                   "hyperparameters and checkpoints (never look at test for that).")
    batch_size: int | None = None
    limit: int | None = Field(default=None, description="Items per task (None: the profile's eval_limit; 0: all).")
    chat_template: bool | None = Field(default=None, description="Also score generative tasks with the model's chat "
                                                                 "template. None: for the SFT and DPO stages.")
    perplexity_max_tokens: int = 512
    reference_text: bool | None = Field(default=None, description="Also the perplexity of real English that ships "
                                                                   "with Python (a forgetting probe for pretrained "
                                                                   "models; None: the profile's reference_text_probe).")


def _score_asset(stage: str) -> dg.AssetsDefinition:
    @dg.asset(name=f"{stage}_model_scores", group_name="evaluation", code_version="3",
              deps=[f"{stage}_model", benchmark_suite, "general_heldout_text"], kinds={"json"},
              description=f"The {stage} model on every benchmark's test split through lm-evaluation-harness (every "
                          f"item's score kept), the user's lm-eval tasks, general-text perplexity and (profile "
                          f"smollm) the perplexity of real English shipped with Python.")
    def _scores(context: dg.AssetExecutionContext, config: EvalConfig, storage: ModelworksStorage,
                profile: ProfileResource) -> dg.MaterializeResult:
        from evaluation.harness import add_task_scores, evaluate_model, text_perplexity
        from evaluation.suite import suite_tasks

        limit = profile.pick(config.limit, "eval_limit") or None
        batch_size = profile.pick(config.batch_size, "eval_batch_size")
        external = json.loads(storage.read_text(storage.external_tasks()))
        model_dir = storage.local_path(storage.model(stage))
        with storage.reading(storage.benchmark_suite()) as suite_dir:
            tasks = suite_tasks(suite_dir, config.split) + list(external["tasks"])
            chat = config.chat_template if config.chat_template is not None else stage in ("sft", "dpo")
            context.log.info(f"evaluating {stage} on {tasks} (chat template: {chat}, limit: {limit})")
            scores = evaluate_model(model_dir, [suite_dir / "lm_eval_tasks", *external["task_dirs"]], tasks,
                                    batch_size=batch_size, limit=limit, chat_template=chat)
        general = general_text_split(read_table(storage, storage.corpus("general_heldout_text"),
                                                columns=["id", "text"]), config.split)
        if general.num_rows:
            add_task_scores(scores, "general_text", text_perplexity(
                model_dir, general.column("text").to_pylist(), general.column("id").to_pylist(),
                max_tokens=config.perplexity_max_tokens))
        if profile.pick(config.reference_text, "reference_text_probe"):
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
        return dg.MaterializeResult(metadata=meta)

    return _scores


stage_score_assets = [_score_asset(s) for s in STAGES]


def _start_of_base(instance: dg.DagsterInstance) -> str:
    event = instance.get_latest_materialization_event(dg.AssetKey("base_model"))
    meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
    return str(meta["start"].value) if "start" in meta else "scratch"


@dg.asset(group_name="evaluation", code_version="2", deps=[f"{s}_model_scores" for s in STAGES] +
          [decontaminated_training_sets], kinds={"html", "markdown"},
          description="Stage-vs-stage report on the test split: every score with its 95% bootstrap interval, paired "
                      "comparisons of consecutive stages with a verdict, blind baselines and chance beside the models.")
def stage_report(context: dg.AssetExecutionContext, storage: ModelworksStorage) -> dg.MaterializeResult:
    from evaluation.plots import png_markdown
    from evaluation.report import build_stage_report
    from evaluation.suite import suite_baselines, suite_chance

    start = _start_of_base(context.instance)
    # The first row is the untouched open model when training started from one, else the from-scratch base.
    names = {"base": "base (from scratch)" if start == "scratch" else f"open model ({start})"}
    results = {names.get(s, s): json.loads(storage.read_text(storage.scores(s, "test"))) for s in STAGES}
    post_training = []
    for name in ("sft_conversations", "preference_pairs"):
        with storage.reading(storage.decontaminated(name)) as p:
            post_training += read_jsonl(p)
    with storage.reading(storage.benchmark_suite()) as suite_dir, storage.writing(storage.reports()) as out:
        report = build_stage_report(results, out, stages=list(results),
                                    baselines=suite_baselines(suite_dir, post_training),
                                    chance=suite_chance(suite_dir))
        png = (out / "scores.png").read_bytes()
    verdicts = report["report"]["verdicts"]
    return dg.MaterializeResult(metadata={
        "table": dg.MetadataValue.md(report["markdown"]), "chart": dg.MetadataValue.md(png_markdown(png, "scores")),
        "verdicts": dg.MetadataValue.json(verdicts), "start": start,
        "report_folder": dg.MetadataValue.path(storage.reports()),
        "json_path": dg.MetadataValue.path(storage.report_json())})


@dg.asset_check(asset=stage_report, description="The final model beats the first stage (from-scratch base or untouched "
                                                "open model) on every MCQ test benchmark: paired 95% CI above 0.")
def final_model_beats_first_stage_on_mcq(storage: ModelworksStorage) -> dg.AssetCheckResult:
    report = json.loads(storage.read_text(storage.report_json()))
    first, last = report["stages"][0], report["stages"][-1]
    found = {key: c for key, cs in report["comparisons"].items() for c in cs
             if c["from"] == first and c["to"] == last and "mcq" in key and "acc" in key}
    passed = bool(found) and all(c["lo"] > 0 for c in found.values())
    return dg.AssetCheckResult(passed=passed, severity=dg.AssetCheckSeverity.WARN, metadata={
        "comparisons": dg.MetadataValue.json({k: {"diff": c["diff"], "lo": c["lo"], "hi": c["hi"],
                                                  "verdict": c["verdict"]} for k, c in found.items()})})
