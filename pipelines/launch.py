"""`recipe_job`: a recipe launched from the Dagster UI, as `modelworks run` launches it from a terminal.

In the Launchpad the job's one op takes a recipe (a file, the name of a shipped one, or the recipe's YAML pasted in)
with `--set` overrides and an optional `--only`, validates it (a bad key fails the run with the same one-line
message the command prints, before anything runs), and materializes the graph for it through the same runner:
the per-shard, seed, synthetic and corpus-to-model runs, incremental, each its own run in this instance, tagged
with the recipe and with `modelworks/launched_by` = this run's id (filter the Runs page by it). A recipe with
`variants:` runs every variant and the comparison. The storage root is the code location's (`MODELWORKS_HOME`).
"""

import time

import dagster as dg
from pydantic import Field

from assets.storage import ModelworksStorage


class RecipeLaunchConfig(dg.Config):
    recipe: str = Field(description="A recipe file (recipes/tiny.yaml, /path/my.yaml), the name of a shipped recipe "
                                    "(tiny, demo, smollm, ...), or the recipe's YAML itself: several lines, e.g. "
                                    "`extends: tiny.yaml` (resolved against the shipped recipes/) then what differs.")
    overrides: list[str] = Field(default=[], description="`--set` overrides, one `key=value` each "
                                                         "(e.g. dapt.lr=1e-3, inputs.crawl=/data/crawl).")
    only: list[str] = Field(default=[], description="Materialize only these assets (`NAME+`: it and everything "
                                                    "downstream); empty: the whole graph.")
    demo: bool = Field(default=False, description="Write the generated demo crawl and its files into this storage "
                                                  "root first, as `modelworks demo` does (only for the demo home).")


@dg.op(description="Validate a recipe and materialize the graph for it (what `modelworks run` does), each stage "
                   "its own run in this instance.", tags={"kind": "modelworks"})
def run_recipe(context: dg.OpExecutionContext, config: RecipeLaunchConfig, storage: ModelworksStorage):
    from pipelines.recipe import RecipeError, is_recipe_text
    from pipelines.runner import RunFailed, launch, load_for_run, stage_table

    text = config.recipe if is_recipe_text(config.recipe) else None
    recipe_arg = "launchpad.yaml" if text is not None else config.recipe
    only = list(config.only) or None
    home = storage.root
    t0 = time.perf_counter()

    def out(msg: str = "", raw: bool = False) -> None:
        if msg.strip():
            context.log.info(msg)

    try:
        recipe, run_storage = load_for_run(recipe_arg, config.overrides, home, only=only, demo=config.demo, text=text)
        result = launch(recipe, run_storage, home, recipe_arg=recipe_arg, overrides=config.overrides, out=out,
                        only=only, demo=config.demo, text=text, source="modelworks-ui", instance=context.instance,
                        tags={"modelworks/launched_by": context.run_id})
    except RecipeError as err:
        raise dg.Failure(description="\n".join(err.lines), allow_retries=False) from None
    except RunFailed as err:
        raise dg.Failure(description=f"{err}: the failed run and its step's error are listed above and on the "
                                     "Runs page", allow_retries=False) from None
    recipe = result["recipe"]
    runs = result["runs"]
    meta = {"recipe": recipe.name, "recipe_hash": recipe.digest, "recipe_files": " <- ".join(recipe.files),
            "overrides": dg.MetadataValue.json(list(recipe.overrides)),
            "runs_launched": len(runs), "stages_up_to_date": len(result.get("up_to_date", [])),
            "seconds": round(time.perf_counter() - t0, 1),
            "runs": dg.MetadataValue.md("\n".join(f"- [{r['label']}](/runs/{r['run_id']}) {r['seconds']}s"
                                                  for r in runs) or "nothing to run: every stage is up to date"),
            "storage_root": dg.MetadataValue.path(str(home))}
    if result.get("comparison"):
        meta["comparison_json"] = dg.MetadataValue.path(result["comparison"])
    else:
        found = stage_table(result["storage"])
        if found is not None:
            meta["stage_table"] = dg.MetadataValue.md(f"```\n{found[0]}\n```")
            meta["report_html"] = dg.MetadataValue.path(found[1])
    context.add_output_metadata(meta)


def recipe_job(default_recipe: str = "", default_overrides=(), demo: bool = False) -> dg.JobDefinition:
    """The job, its Launchpad filled with the code location's recipe (a user edits it or pastes another)."""
    config = {"recipe": default_recipe, "overrides": list(default_overrides), "only": [], "demo": demo}

    @dg.job(name="recipe_job", config={"ops": {"run_recipe": {"config": config}}} if default_recipe else None,
            description="Run a recipe (a file, a shipped recipe's name, or YAML pasted in the Launchpad) as "
                        "`modelworks run` does: every stage its own run in this instance, incremental, tagged with "
                        "the recipe and `modelworks/launched_by`.",
            tags={"modelworks/launcher": "true"})
    def _job():
        run_recipe()

    return _job
