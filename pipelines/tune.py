"""Choose a hyperparameter on the VALIDATION split, never on test.

    python -m pipelines.tune --profile demo --stage dapt --field lr --values 5e-4,1.5e-3,3e-3

Rematerializes `<stage>_model` once per value (everything upstream must already exist, e.g. after
`make demo`) and scores it with `<stage>_model_scores` on the validation split; prints each value's
validation MCQ accuracy with its 95% bootstrap interval, the paired difference to the best value, and
the choice. Run it on a copy of the storage root: it overwrites the stage's model.
"""
from __future__ import annotations

import argparse
import json
import os
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=None)
    ap.add_argument("--stage", default="dapt", choices=["base", "dapt", "sft", "dpo"])
    ap.add_argument("--field", default="lr", help="a field of the stage asset's config (dapt: lr, max_steps, ...)")
    ap.add_argument("--values", required=True, help="comma-separated values")
    ap.add_argument("--metric", default="acc")
    args = ap.parse_args(argv)
    if args.profile:
        os.environ["MODELWORKS_PROFILE"] = args.profile

    import dagster as dg

    from assets.storage import ModelworksStorage, modelworks_home
    from evaluation.stats import bootstrap_ci, paired_bootstrap
    from pipelines.definitions import build_definitions

    defs = build_definitions(args.profile)
    instance = dg.DagsterInstance.get()
    storage = ModelworksStorage(root=modelworks_home())
    job = defs.resolve_implicit_global_asset_job_def()
    per_value: dict[str, dict[str, float]] = {}
    for raw in args.values.split(","):
        value = json.loads(raw)
        run_config = {"ops": {f"{args.stage}_model": {"config": {args.field: value}},
                              f"{args.stage}_model_scores": {"config": {"split": "validation"}}}}
        result = job.execute_in_process(
            instance=instance, run_config=run_config, tags={"modelworks/source": "tune"},
            asset_selection=[dg.AssetKey(f"{args.stage}_model"), dg.AssetKey(f"{args.stage}_model_scores")])
        if not result.success:
            raise SystemExit(f"{args.field}={value} failed; see the run in the Dagster UI")
        scores = json.loads(storage.read_text(storage.scores(args.stage, "validation")))
        task = next(t for t in scores["_items"] if t.startswith("modelworks_mcq") and t.endswith("_validation"))
        per_value[raw] = {str(r["id"]): float(r[args.metric]) for r in scores["_items"][task]}
        mean, lo, hi = bootstrap_ci(list(per_value[raw].values()))
        print(f"{args.stage}.{args.field}={raw}: validation {task} {args.metric} {mean:.3f} [{lo:.3f}, {hi:.3f}]",
              flush=True)
    best = max(per_value, key=lambda v: sum(per_value[v].values()) / len(per_value[v]))
    ids = sorted(per_value[best])
    for v, items in per_value.items():
        if v != best:
            p = paired_bootstrap([items[i] for i in ids], [per_value[best][i] for i in ids])
            print(f"  best - {v}: {p['diff']:+.3f} [{p['lo']:+.3f}, {p['hi']:+.3f}]")
    print(f"CHOSEN {args.stage}.{args.field}={best} (on validation)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
