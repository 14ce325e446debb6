"""The Modelworks code location: assets, checks, jobs, the landing-folder sensor and the nightly refresh.

The recipe (`MODELWORKS_RECIPE`: a recipe file or the name of a shipped one, see pipelines/recipe.py; default
`demo`) and the storage root (`MODELWORKS_HOME`) are resolved once, here, when the Definitions are built: the
teacher and the crawl become resources, every other setting the jobs' run config and the assets' and checks' config
defaults (so a run launched from the UI, a job's or one asset's, takes the recipe too, and the Launchpad shows and
edits every field). `recipe_job` (pipelines/launch.py) runs any recipe from the Launchpad as `modelworks run` does.
"""

import os
import warnings

import dagster as dg

# Partitioned asset checks and default automation conditions are preview/beta features in Dagster 1.13;
# we rely on them knowingly.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)

from assets import ablation, benchmarks, curation, dedup, domain, evaluation, ingest, seed, synthetic, training  # noqa: E402
from assets.partitions import crawl_shard_partitions  # noqa: E402
from assets.storage import ModelworksStorage, modelworks_home  # noqa: E402
from assets.teacher import TeacherResource  # noqa: E402
from pipelines.launch import recipe_job  # noqa: E402

_modules = [ingest, seed, curation, dedup, domain, synthetic, benchmarks, training, evaluation, ablation]
all_assets = dg.load_assets_from_modules(_modules)
all_checks = dg.load_asset_checks_from_modules(_modules)

SHARD_ASSETS = dg.AssetSelection.assets("crawl_shard", "curated_pages", "minhash_signatures")
SYNTHETIC_ASSETS = dg.AssetSelection.assets("sft_conversations", "preference_pairs", "synthetic_quarantine")
SEED_ASSETS = dg.AssetSelection.assets("seed_corpus")
COMPARISON_ASSETS = dg.AssetSelection.assets("variant_comparison")
CORPUS_TO_MODEL = dg.AssetSelection.all() - SHARD_ASSETS - SYNTHETIC_ASSETS - SEED_ASSETS - COMPARISON_ASSETS

JOBS = {  # name -> (selection, description), in the order a first run needs them
    "shard_curation_job": (SHARD_ASSETS, "Ingest, curate and sign one crawl shard."),
    "seed_job": (SEED_ASSETS, "Read, chunk and split the seed documents."),
    "synthetic_job": (SYNTHETIC_ASSETS, "Guided synthetic SFT and preference data for one batch of seed documents."),
    "corpus_to_model_job": (CORPUS_TO_MODEL, "Everything after the per-shard and per-batch stages: dedup, domain "
                                             "selection, benchmarks, decontamination, tokenizer, pretraining or the "
                                             "open model, DAPT, SFT, DPO, evaluation and the report."),
}


# Run only for a recipe with `variants:`, after every variant (pipelines/runner.py); not part of a plain run.
EXTRA_JOBS = {"comparison_job": (COMPARISON_ASSETS, "The variants of an ablation side by side, with paired verdicts.")}


def job_ops(name: str) -> set[str]:
    """The op names of a job's assets (what its run config may name)."""
    keys = {**JOBS, **EXTRA_JOBS}[name][0].resolve(all_assets)
    return {a.node_def.name for a in all_assets if set(a.keys) & keys}


def _jobs(recipe=None) -> list:
    """The jobs; a recipe's settings are their default run config and its name and hash their tags, so a run
    launched from the UI takes the recipe too."""
    jobs = []
    for name, (selection, description) in {**JOBS, **EXTRA_JOBS}.items():
        extra = {}
        if recipe is not None:
            extra = {"config": recipe.run_config(job_ops(name)) or None,
                     "tags": {k: v for k, v in recipe.tags().items() if k != "modelworks/recipe_yaml"}}
        jobs.append(dg.define_asset_job(name, selection=selection, description=description, **extra))
    return jobs


shard_curation_job, seed_job, synthetic_job, corpus_to_model_job, comparison_job = _jobs()


@dg.sensor(job_name="shard_curation_job", minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Adds a partition for every new crawl shard in the landing folder (or in the recipe's crawl) "
                       "and curates it.")
def landing_shard_sensor(context: dg.SensorEvaluationContext, storage: ModelworksStorage) -> dg.SensorResult:
    existing = set(context.instance.get_dynamic_partitions(crawl_shard_partitions.name))
    found = sorted(storage.crawl_files())
    new = [k for k in found if k not in existing]
    if not new:
        return dg.SensorResult(skip_reason=f"no new shards ({len(existing)} known)")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=k, run_key=f"shard-{k}") for k in new],
        dynamic_partitions_requests=[crawl_shard_partitions.build_add_request(new)],
    )


def with_recipe_defaults(defs_list: list, op_config: dict[str, dict]) -> list:
    """The assets (or checks) with the recipe's settings as their config defaults, so that an asset materialized on
    its own from the graph (Dagster's implicit asset job, whose Launchpad starts from the config defaults) runs with
    the recipe, as the jobs do. Only the defaults change: the fields, their types and descriptions are the derived
    Configs' (the library dataclasses'), and every field stays editable. Dagster has no public way to give an
    asset's config other defaults per code location, so the op is copied with a new config schema
    (`OpDefinition.with_replaced_properties`) and the definition rebuilt around it (tested in test_recipes.py)."""
    out = []
    for a in defs_list:
        cfg = op_config.get(a.node_def.name)
        schema = a.node_def.config_schema
        shape = getattr(schema, "config_type", None)
        if not cfg or not isinstance(shape, dg.Shape):
            out.append(a)
            continue
        fields = {name: dg.Field(f.config_type, default_value=cfg[name], is_required=False,
                                 description=f.description) if name in cfg else f
                  for name, f in shape.fields.items()}
        op = a.node_def.with_replaced_properties(name=a.node_def.name, config_schema=dg.Field(dg.Shape(fields)))
        out.append(type(a).dagster_internal_init(**{**a.get_attributes_dict(), "node_def": op}))
    return out


def load_location_recipe(recipe=None):
    """The recipe the code location is built from: `recipe` (a Recipe, a file or a shipped recipe's name), else
    `MODELWORKS_RECIPE`, else `MODELWORKS_PROFILE` (the older name of the same thing), else `demo`."""
    from pipelines.recipe import Recipe, load_recipe

    if isinstance(recipe, Recipe):
        return recipe
    recipe = recipe or os.environ.get("MODELWORKS_RECIPE") or os.environ.get("MODELWORKS_PROFILE") or "demo"
    return load_recipe(recipe, assets_defs=all_assets)


def build_definitions(profile_name: str | None = None, home: str | None = None,
                      teacher: TeacherResource | None = None, recipe=None,
                      stage_keys: dict[str, str] | None = None) -> dg.Definitions:
    """The code location for one recipe and storage root (both default to the environment). `profile_name`: a shipped
    recipe's name (tiny, demo, smollm, ...), the older way to name one. `stage_keys`: one ablation variant's content
    keys per stage (the storage resource keeps keyed stages under `stages/<op>/<key>/`)."""
    recipe = load_location_recipe(recipe if recipe is not None else profile_name)
    # Nightly: every unpartitioned asset is rematerialized after the cron tick once its parents have been
    # updated, so a changed code_version or a new shard flows down the graph overnight.
    nightly_refresh = dg.AutomationConditionSensorDefinition(
        "nightly_refresh", target=CORPUS_TO_MODEL, default_condition=dg.AutomationCondition.on_cron("0 2 * * *"),
        default_status=dg.DefaultSensorStatus.RUNNING, use_user_code_server=True)
    storage = ModelworksStorage(root=home or modelworks_home(), crawl=recipe.crawl, stage_keys=dict(stage_keys or {}))
    # The Launchpad's recipe_job starts from this location's recipe; in the demo's home it writes the demo files too.
    launcher = recipe_job(recipe.path or recipe.name, recipe.overrides,
                          demo=not recipe.crawl and storage.exists(storage.demo_facts()))
    op_config = recipe.op_config()
    checks = with_recipe_defaults(list(all_checks), op_config)
    if recipe.ground_truth:  # the demo: its generator's truth scores every stage
        from pipelines.demo_checks import demo_checks

        checks += demo_checks(recipe.ground_truth)
    return dg.Definitions(
        assets=with_recipe_defaults(all_assets, op_config),
        asset_checks=checks,
        jobs=[*_jobs(recipe), launcher],
        sensors=[landing_shard_sensor, nightly_refresh],
        resources={
            "storage": storage,
            "teacher": teacher or TeacherResource(**recipe.teacher),
            # launches torchrun for pretraining and DAPT; rank 0 reports back through Pipes
            "pipes_subprocess_client": dg.PipesSubprocessClient(),
        },
        # Two cores here: two steps at a time; the "training" pool (dagster.yaml) keeps one training run at a time.
        executor=dg.multiprocess_executor.configured({"max_concurrent": 2}),
    )


defs = build_definitions()
