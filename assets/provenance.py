"""The recipe and ablation variant behind a materialization, from its run's tags (set by `modelworks run`, the UI's
recipe_job and the ablation runner): models and scores carry them, so the asset's history in the UI tells one
variant's model from another's."""

import dagster as dg


def run_provenance(context: dg.AssetExecutionContext) -> dict:
    tags = context.run.tags
    out = {}
    if tags.get("modelworks/recipe"):
        out["recipe"] = f"{tags['modelworks/recipe']} ({tags.get('modelworks/recipe_hash', '?')})"
    if tags.get("modelworks/variant"):
        out["variant"] = tags["modelworks/variant"]
        out["ablation_launch"] = tags.get("modelworks/launch", "")
    return out
