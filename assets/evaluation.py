"""Evaluation group: every model stage scored on every benchmark (lm-evaluation-harness), and the stage report."""

import json

import dagster as dg

from assets.benchmarks import benchmark_suite
from curation.tables import write_text_atomic
from pipelines.profiles import active_profile
from pipelines.resources import ModelworksStorage

P = active_profile()
STAGES = ("base", "dapt", "sft", "dpo")


class EvalConfig(dg.Config):
    batch_size: int = P.eval_batch_size
    limit: int | None = P.eval_limit  # items per task; None = all


def _score_asset(stage: str) -> dg.AssetsDefinition:
    @dg.asset(name=f"{stage}_model_scores", group_name="evaluation", code_version="1",
              deps=[f"{stage}_model", benchmark_suite], kinds={"json"},
              description=f"The {stage} model scored on every domain benchmark through lm-evaluation-harness, "
                          f"plus held-out perplexity.")
    def _scores(context: dg.AssetExecutionContext, config: EvalConfig,
                storage: ModelworksStorage) -> dg.MaterializeResult:
        from evaluation.harness import evaluate_model
        from evaluation.lm_eval_tasks import task_name
        from evaluation.benchmarks import TASKS

        tasks = [task_name(t) for t in TASKS]
        context.log.info(f"evaluating {stage} on {tasks}")
        scores = evaluate_model(storage.path("models", stage), storage.path("benchmarks", "lm_eval_tasks"), tasks,
                                batch_size=config.batch_size, limit=config.limit)
        path = storage.path("eval", f"{stage}.json")
        write_text_atomic(json.dumps(scores, indent=1, default=str), path)
        meta: dict = {"path": dg.MetadataValue.path(str(path))}
        for task, metrics in scores.items():
            if task.startswith("_"):
                continue
            for metric, value in metrics.items():
                if isinstance(value, (int, float)) and not metric.endswith("_stderr"):
                    meta[f"{task.removeprefix('modelworks_')}/{metric}"] = value
        meta["eval_wall_time_s"] = scores.get("_meta", {}).get("wall_time_s")
        return dg.MaterializeResult(metadata=meta)

    return _scores


stage_score_assets = [_score_asset(s) for s in STAGES]


@dg.asset(group_name="evaluation", code_version="1", deps=[f"{s}_model_scores" for s in STAGES],
          kinds={"html", "markdown"},
          description="Stage-vs-stage report: a table and chart of every benchmark for base, DAPT, SFT and DPO.")
def stage_report(storage: ModelworksStorage) -> dg.MaterializeResult:
    from evaluation.benchmarks import CHANCE
    from evaluation.report import build_stage_report

    scores = {s: json.loads(storage.path("eval", f"{s}.json").read_text()) for s in STAGES}
    report = build_stage_report(scores, storage.path("reports"), CHANCE)
    meta = {"table": dg.MetadataValue.md(report["markdown"]),
            "headline": dg.MetadataValue.json(report["headline"])}
    for name, p in report["paths"].items():
        meta[f"{name}_path"] = dg.MetadataValue.path(str(p))
    png = storage.path("reports", "scores.png")
    if png.exists():
        from evaluation.plots import png_markdown

        meta["chart"] = dg.MetadataValue.md(png_markdown(png.read_bytes(), "scores per stage"))
    return dg.MaterializeResult(metadata=meta)


@dg.asset_check(asset=stage_report, description="The final (DPO) model beats chance and the base model on the "
                                                "domain MCQ benchmark.")
def final_model_beats_base_on_mcq(storage: ModelworksStorage) -> dg.AssetCheckResult:
    from evaluation.benchmarks import CHANCE
    from evaluation.report import headline_scores

    scores = {s: json.loads(storage.path("eval", f"{s}.json").read_text()) for s in STAGES}
    head = headline_scores(scores)
    dpo, base, chance = head["dpo"].get("mcq_acc"), head["base"].get("mcq_acc"), CHANCE["mcq_acc"]
    passed = dpo is not None and base is not None and dpo > base and dpo > chance
    return dg.AssetCheckResult(passed=passed, severity=dg.AssetCheckSeverity.WARN,
                               metadata={"dpo": dpo, "base": base, "chance": chance})
