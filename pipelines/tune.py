"""Choose a hyperparameter on the VALIDATION split, never on test.

    python -m pipelines.tune --recipe demo --stage dapt --field lr --values 5e-4,1.5e-3,3e-3

Rematerializes `<stage>_model` once per value (everything upstream must already exist, e.g. after
`make demo`) and scores it with `<stage>_model_scores` on the validation split; prints each value's
validation MCQ accuracy with its 95% bootstrap interval and its perplexity relative to the stage's
input model on the validation half of each forgetting probe (the held-out general pages; real
English shipped with Python where the recipe scores it, `eval.reference_text`), then chooses the
value with the best validation accuracy among those whose perplexity rises by at most
`--max-ppl-rise` on every probe (forgetting guard; default 10%). If every value breaks the guard, the one that
forgets least is chosen, and the output says so. Run it on a copy of the storage root: it
overwrites the stage's model.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

PREVIOUS = {"dapt": "base", "sft": "dapt", "dpo": "sft"}
PROBES = ("general_text", "reference_text")  # forgetting probes; the one whose perplexity rises most decides


def choose(per_value: dict[str, float], ppl_ratio: dict[str, float | None], max_ppl_rise: float) -> tuple[str, bool]:
    """(value, guard_held): best validation score among values whose perplexity ratio is within the guard;
    when none is, the value with the smallest ratio (guard_held False)."""
    allowed = [v for v in per_value if ppl_ratio.get(v) is None or ppl_ratio[v] <= 1.0 + max_ppl_rise]
    if allowed:
        return max(allowed, key=lambda v: per_value[v]), True
    return min(per_value, key=lambda v: ppl_ratio[v]), False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", "--profile", dest="recipe", default=None,
                    help="the recipe (a file or a shipped recipe's name) whose settings every run takes; default "
                         "$MODELWORKS_RECIPE or demo")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="a recipe override, as for `modelworks run` (e.g. --set dapt.kl_weight=0.5)")
    ap.add_argument("--stage", default="dapt", choices=["base", "dapt", "sft", "dpo"])
    ap.add_argument("--field", default="lr", help="a field of the stage's recipe section (dapt: lr, max_steps, ...)")
    ap.add_argument("--values", required=True, help="comma-separated values")
    ap.add_argument("--metric", default="acc")
    ap.add_argument("--max-ppl-rise", type=float, default=0.10,
                    help="largest allowed rise of perplexity over the stage's input model on each forgetting "
                         "probe (validation halves: held-out general pages, real English where scored); "
                         "negative: no guard")
    args = ap.parse_args(argv)
    import dagster as dg

    from assets.storage import ModelworksStorage, modelworks_home
    from evaluation.stats import bootstrap_ci, paired_bootstrap
    from pipelines.definitions import build_definitions, load_location_recipe
    from pipelines.recipe import load_recipe

    recipe = load_recipe(args.recipe or os.environ.get("MODELWORKS_RECIPE") or "demo", args.overrides)
    defs = build_definitions(recipe=load_location_recipe(recipe))
    instance = dg.DagsterInstance.get()
    storage = ModelworksStorage(root=modelworks_home())
    job = defs.resolve_implicit_global_asset_job_def()

    def validation_scores(stage: str, changes: dict) -> dict:
        # The recipe's settings for these ops, with the tuned field and the validation split on top.
        run_config = recipe.run_config(changes["ops"])
        for op, change in changes["ops"].items():
            run_config.setdefault("ops", {}).setdefault(op, {"config": {}})["config"].update(change["config"])
        result = job.execute_in_process(
            instance=instance, run_config=run_config, tags={"modelworks/source": "tune"},
            asset_selection=[dg.AssetKey(k) for k in run_config["ops"]])
        if not result.success:
            raise SystemExit(f"{sorted(run_config['ops'])} failed; see the run in the Dagster UI")
        return json.loads(storage.read_text(storage.scores(stage, "validation")))

    def perplexity(scores: dict) -> dict[str, float]:
        """The forgetting probes present: general_text (held-out pages), reference_text (real English)."""
        return {task: scores[task]["perplexity"] for task in PROBES
                if isinstance(scores.get(task), dict) and scores[task].get("perplexity")}

    reference = None
    previous = PREVIOUS.get(args.stage)
    if previous and args.max_ppl_rise >= 0:
        reference = perplexity(validation_scores(
            previous, {"ops": {f"{previous}_model_scores": {"config": {"split": "validation"}}}}))
        print(f"{previous} (input of {args.stage}): validation perplexity {reference}", flush=True)

    per_item: dict[str, dict[str, float]] = {}
    ppl_ratio: dict[str, float | None] = {}
    for raw in args.values.split(","):
        value = json.loads(raw)
        scores = validation_scores(args.stage, {"ops": {
            f"{args.stage}_model": {"config": {args.field: value}},
            f"{args.stage}_model_scores": {"config": {"split": "validation"}}}})
        task = next(t for t in scores["_items"] if t.startswith("modelworks_mcq") and t.endswith("_validation"))
        per_item[raw] = {str(r["id"]): float(r[args.metric]) for r in scores["_items"][task]}
        ppl = perplexity(scores)
        ratios = {t: ppl[t] / reference[t] for t in ppl if reference and t in reference}
        ppl_ratio[raw] = max(ratios.values()) if ratios else None  # the probe that forgets most decides
        mean, lo, hi = bootstrap_ci(list(per_item[raw].values()))
        forgetting = "".join(f", {t} perplexity x{r:.3f}" for t, r in ratios.items())
        print(f"{args.stage}.{args.field}={raw}: validation {task} {args.metric} {mean:.3f} [{lo:.3f}, {hi:.3f}]"
              f"{forgetting}", flush=True)
    means = {v: sum(items.values()) / len(items) for v, items in per_item.items()}
    best, guard_held = choose(means, ppl_ratio, args.max_ppl_rise if reference else float("inf"))
    ids = sorted(per_item[best])
    for v, items in per_item.items():
        if v != best:
            p = paired_bootstrap([items[i] for i in ids], [per_item[best][i] for i in ids])
            print(f"  chosen - {v}: {p['diff']:+.3f} [{p['lo']:+.3f}, {p['hi']:+.3f}]")
    if not guard_held:
        print(f"every value raised perplexity by more than {args.max_ppl_rise:.0%}: chose the one that forgets least")
    print(f"CHOSEN {args.stage}.{args.field}={best} (on validation)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
