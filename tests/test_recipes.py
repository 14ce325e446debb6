"""Recipes and the `modelworks` command: every setting has one home (the library dataclass), a recipe file gives
the same run config as the Python path, `--set` and `extends` work, a misspelt key or a wrong type stops everything
with one line, and `modelworks run` takes a user's crawl where it lies to the report."""
import ast
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from pipelines.recipe import RecipeError, load_recipe, stage_schema

REPO = Path(__file__).resolve().parent.parent
RECIPES = REPO / "recipes"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHIPPED = ("tiny", "demo", "smollm", "smollm_gpu", "gpu")


def _error(path, overrides=(), **kw) -> str:
    with pytest.raises(RecipeError) as err:
        load_recipe(path, overrides, **kw)
    return str(err.value)


# ---------------------------------------------------------------------------------------------- one home per setting
def _hand_written_configs() -> list[tuple[str, str, list[str]]]:
    """(file, class, fields with a default) of every Config / ConfigurableResource class written out in assets/."""
    out = []
    for path in sorted((REPO / "assets").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                    isinstance(b, ast.Attribute) and b.attr in ("Config", "ConfigurableResource") for b in node.bases):
                fields = [st.target.id for st in node.body if isinstance(st, ast.AnnAssign)
                          and isinstance(st.target, ast.Name) and st.value is not None]
                out.append((path.name, node.name, fields))
    return out


def test_no_setting_has_a_default_in_two_places():
    """A stage's settings and defaults live in its library's dataclass; the assets' Configs are derived from it."""
    from assets.configs import DERIVED, setting_fields
    from pipelines.definitions import all_assets
    from pipelines.recipe import INPUT_FIELDS

    # 1. No Config in assets/ is written by hand, except inputs (the recipe's `inputs:`) and the storage location.
    inputs = {field for _, field in INPUT_FIELDS}
    hand = {(f, c): fields for f, c, fields in _hand_written_configs()}
    assert {k: v for k, v in hand.items() if set(v) - inputs and k != ("storage.py", "ModelworksStorage")} == {}
    # 2. Every configurable asset takes a derived Config (or an inputs-only one).
    import typing

    for a in all_assets:
        fn = getattr(a.node_def.compute_fn, "decorated_fn", None)
        cls = typing.get_type_hints(fn).get("config") if fn else None
        if cls is not None:
            assert cls.__name__ in DERIVED or set(cls.model_fields) <= inputs, a.node_def.name
    # 3. A derived field's default is its library's, and an asset-only field shadows no library setting.
    library_fields = {name for _, classes, _ in DERIVED.values() for c in classes for name in setting_fields(c)}
    for name, (cls, classes, extra) in DERIVED.items():
        for c in classes:
            for fname, f in setting_fields(c).items():
                if fname in cls.model_fields:
                    want = f.default if f.default is not dataclasses.MISSING else f.default_factory()
                    got = cls.model_fields[fname].get_default(call_default_factory=True)
                    assert got == (list(want) if isinstance(want, tuple) else want), (name, fname)
        assert not set(extra) & library_fields, (name, set(extra) & library_fields)
    # The ones the issue found twice: one value each now.
    from training.config import SFTRunConfig
    from assets.training import SFTAssetConfig
    from assets.synthetic import SyntheticDataConfig
    from curation.synthetic.chain import ChainConfig
    from curation.synthetic.teacher import TeacherConfig
    from assets.teacher import TeacherResource

    assert SFTAssetConfig().per_device_train_batch_size == SFTRunConfig().per_device_train_batch_size
    assert SyntheticDataConfig().topics_per_chunk == ChainConfig().topics_per_chunk
    assert TeacherResource().model_path == TeacherConfig().model_path


def test_a_default_written_twice_is_caught():
    """The two guards above fail on a second home: an asset-only field named like a library setting, and a
    Config written out by hand in assets/."""
    from assets.configs import derived_config
    from training.config import SFTRunConfig

    with pytest.raises(TypeError, match="their default lives there"):
        derived_config("Twice", SFTRunConfig, extra={"per_device_train_batch_size": (int, 16)})
    src = "import dagster as dg\nclass SFTAssetConfig(dg.Config):\n    per_device_train_batch_size: int = 16\n"
    tree = ast.parse(src)
    cls = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef))
    assert [st.target.id for st in cls.body if isinstance(st, ast.AnnAssign) and st.value is not None] == \
        ["per_device_train_batch_size"]


def test_the_shipped_recipes_load_with_every_setting_resolved():
    from training.config import PretrainConfig

    for name in SHIPPED:
        recipe = load_recipe(RECIPES / f"{name}.yaml")
        assert recipe.name == name
        # every key of every section is in the resolved recipe, set or defaulted
        assert recipe.data["dapt"]["min_lr_ratio"] == PretrainConfig().min_lr_ratio
        assert set(recipe.data["dapt"]) == set(stage_schema().sections["dapt"])
    demo, smollm = load_recipe("demo"), load_recipe("smollm")
    assert (demo.data["dapt"]["seq_len"], demo.data["tokens"]["seq_len"], demo.data["dapt"]["schedule"]) == \
        (256, 256, "wsd")
    assert (smollm.data["dapt"]["lora_r"], smollm.data["sft"]["lora_r"], smollm.data["dpo"]["lora_r"]) == (16, 16, 16)
    assert smollm.data["inputs"]["base_model"] == "smollm2" and smollm.data["eval"]["reference_text"] is True


def test_a_recipe_name_and_its_file_build_the_same_definitions():
    from pipelines.definitions import build_definitions

    by_file = build_definitions(recipe=RECIPES / "tiny.yaml", home="/tmp/mw-r")
    by_name = build_definitions("tiny", home="/tmp/mw-r")
    for name in ("teacher", "storage"):
        assert by_file.resources[name] == by_name.resources[name], name
    a, b = by_file.resolve_job_def("corpus_to_model_job"), by_name.resolve_job_def("corpus_to_model_job")
    assert a.tags == b.tags and a.tags["modelworks/recipe"] == "tiny"


def test_tiny_recipe_with_inputs_gives_the_run_config_the_bring_your_own_test_builds(tmp_path):
    from pipelines.definitions import job_ops

    tasks = tmp_path / "my-lm-eval-tasks"
    tasks.mkdir()
    recipe = load_recipe(RECIPES / "tiny.yaml", [
        f"inputs.seed_docs={FIXTURES / 'seed_docs'}", "seed.heldout_fraction=0",
        f"inputs.benchmarks={FIXTURES / 'user_bench' / 'jsonl'}",
        f"inputs.lm_eval_tasks=[{tasks}, plant_yesno]", "benchmarks.val_fraction=0.3"])
    # tests/test_bring_your_own.py, by hand (the recipe's run config also holds every other setting, resolved):
    seed = {"source_dir": str(FIXTURES / "seed_docs"), "heldout_fraction": 0.0}
    bench = {"benchmark_sources": [str(FIXTURES / "user_bench" / "jsonl")], "lm_eval_task_dirs": [str(tasks)],
             "lm_eval_tasks": ["plant_yesno"], "val_fraction": 0.3}
    seed_ops = recipe.run_config(job_ops("seed_job"))["ops"]
    assert set(seed_ops) == {"seed_corpus"} and seed.items() <= seed_ops["seed_corpus"]["config"].items()
    bench_cfg = recipe.run_config(job_ops("corpus_to_model_job"))["ops"]["benchmark_suite"]["config"]
    assert bench.items() <= bench_cfg.items()
    assert set(recipe.run_config(job_ops("shard_curation_job"))["ops"]) == {"curated_pages", "minhash_signatures"}


def test_the_keys_come_from_the_code():
    from assets.teacher import TeacherResource
    from assets.training import DaptAssetConfig
    from pipelines.definitions import all_assets
    from pipelines.recipe import INPUT_FIELDS

    schema = stage_schema()
    assert set(schema.sections["dapt"]) == set(DaptAssetConfig.model_fields)
    assert set(schema.sections["inputs"]["teacher"]) == set(TeacherResource.model_fields)
    # every configurable asset has a section, so a new one cannot be left out of recipes
    covered = {op for ops in schema.stage_ops.values() for op in ops}
    configurable = {a.node_def.name for a in all_assets
                    if "config" in getattr(a.node_def.compute_fn, "decorated_fn", lambda: 0).__code__.co_varnames}
    assert configurable <= covered
    # the asset checks' settings are recipe keys too
    assert set(schema.sections["checks"]["blind_baselines_at_chance"]) == {"tolerance", "split"}
    # the stage settings an input sets are not keys of their section (one home per setting)
    assert "source_dir" not in schema.sections["seed"] and "benchmark_sources" not in schema.sections["benchmarks"]
    assert all(op in covered for op, _ in INPUT_FIELDS)


# ---------------------------------------------------------------------------------------------- --set, extends
def test_set_overrides_apply():
    recipe = load_recipe(RECIPES / "tiny.yaml", ["dapt.lr=2e-3", "dapt.seq_len=64", "curation.languages=[en, de]",
                                                 "inputs.teacher.max_concurrency=4", "eval.limit=null"])
    d = recipe.data
    assert d["dapt"]["lr"] == 0.002 and isinstance(d["dapt"]["lr"], float)  # YAML 1.2 floats: 2e-3 is a number
    assert d["pretrain"]["seq_len"] == 128 and d["tokens"]["seq_len"] == 128  # dapt.seq_len is DAPT's own
    assert d["eval"]["limit"] is None
    assert recipe.teacher["backend"] == "rules" and recipe.teacher["max_concurrency"] == 4
    ops = recipe.run_config()["ops"]
    assert ops["dapt_model"]["config"]["seq_len"] == 64 and ops["base_model"]["config"]["seq_len"] == 128
    assert ops["curated_pages"]["config"]["languages"] == ["en", "de"]
    assert recipe.digest != load_recipe(RECIPES / "tiny.yaml").digest
    assert "modelworks/recipe_yaml" in recipe.tags() and recipe.tags()["modelworks/recipe"] == "tiny"


def test_an_unknown_key_is_one_line_naming_it_the_file_and_the_keys_near_it(tmp_path):
    msg = _error(RECIPES / "tiny.yaml", ["dapt.lrr=1e-3"])
    assert msg.startswith("--set dapt.lrr=1e-3: unknown key 'dapt.lrr' (did you mean 'dapt.lr'")
    assert "valid keys in 'dapt': " in msg and "max_steps" in msg and "\n" not in msg
    mine = tmp_path / "mine.yaml"
    mine.write_text(f"extends: {RECIPES / 'tiny.yaml'}\ndapt:\n  lrr: 1.0e-3\n")
    msg = _error(mine)
    assert msg.startswith(f"{mine}: unknown key 'dapt.lrr' (did you mean 'dapt.lr'") and "\n" not in msg
    assert "unknown key 'dpt' (did you mean 'dapt'" in _error(RECIPES / "tiny.yaml", ["dpt.lr=1"])
    assert "'inputs.teacher.backend'" in _error(RECIPES / "tiny.yaml", ["inputs.teacher.backnd=openai"])
    assert "is set by 'inputs.seed_docs'" in _error(RECIPES / "tiny.yaml", ["seed.source_dir=/x"])


def test_a_bad_value_is_rejected_with_its_key_and_file(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("extends: " + str(RECIPES / "tiny.yaml") + "\ndapt:\n  max_steps: lots\n")
    msg = _error(mine)
    assert msg.startswith(f"{mine}: bad value for 'dapt.max_steps': expected int, got 'lots'") and "\n" not in msg
    assert "bad value for 'dapt.max_steps'" in _error(RECIPES / "tiny.yaml", ["dapt.max_steps=1.5"])
    assert "bad value for 'dapt.max_steps'" in _error(RECIPES / "tiny.yaml", ["dapt.max_steps=true"])
    assert "bad value for 'curation.languages'" in _error(RECIPES / "tiny.yaml", ["curation.languages=3"])
    assert "bad value for 'pretrain.max_steps'" in _error(RECIPES / "tiny.yaml", ["pretrain.max_steps=null"])
    assert "'dapt' must be a mapping" in _error(RECIPES / "tiny.yaml", ["dapt=3"])


def test_extends_follows_files_relative_to_each_other(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "mid.yaml").write_text(
        f"extends: {os.path.relpath(RECIPES / 'tiny.yaml', tmp_path / 'base')}\n"
        "inputs:\n  seed_docs: manuals\ndapt:\n  max_steps: 7\n")
    (tmp_path / "top.yaml").write_text("extends: base/mid.yaml\ndapt:\n  lr: 5.0e-4\n")
    recipe = load_recipe(tmp_path / "top.yaml")
    assert recipe.name == "top" and len(recipe.files) == 4  # top <- mid <- tiny <- demo
    d = recipe.data
    assert (d["dapt"]["max_steps"], d["dapt"]["lr"], d["pretrain"]["max_steps"]) == \
        (7, 5e-4, load_recipe("tiny").data["pretrain"]["max_steps"])
    # a path is relative to the file that names it
    assert recipe.data["inputs"]["seed_docs"] == str(tmp_path / "base" / "manuals")
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    assert "loops back" in _error(tmp_path / "a.yaml")
    # a recipe that extends nothing takes every other setting from the libraries' defaults
    from training.config import PretrainConfig

    (tmp_path / "bare.yaml").write_text("dapt:\n  lr: 1.0e-3\n")
    bare = load_recipe(tmp_path / "bare.yaml")
    assert bare.data["dapt"]["lr"] == 1e-3 and bare.data["pretrain"]["max_steps"] == PretrainConfig().max_steps


def test_the_resolved_recipe_loads_back_to_the_same_settings(tmp_path):
    recipe = load_recipe(RECIPES / "smollm.yaml", ["dapt.lr=1e-3", f"inputs.crawl={tmp_path}"])
    (tmp_path / "resolved.yaml").write_text(recipe.to_yaml())
    again = load_recipe(tmp_path / "resolved.yaml")
    assert (again.name, again.digest, again.data, again.crawl) == (recipe.name, recipe.digest, recipe.data,
                                                                   [str(tmp_path)])


def test_variants_are_validated(tmp_path):
    ok = tmp_path / "ok.yaml"
    ok.write_text(f"extends: {RECIPES / 'tiny.yaml'}\nvariants:\n  fast: {{dapt: {{lr: 3.0e-3}}}}\n")
    assert load_recipe(ok).variants == {"fast": {"dapt": {"lr": 3e-3}}}
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"extends: {RECIPES / 'tiny.yaml'}\nvariants:\n  fast: {{dapt: {{lrr: 3.0e-3}}}}\n")
    assert "unknown key 'variants.fast.dapt.lrr'" in _error(bad)


def test_example_recipe_loads():
    recipe = load_recipe(RECIPES / "example.yaml")
    assert recipe.crawl == [str(RECIPES.parent / "data" / "crawl")]
    with pytest.raises(RecipeError, match="inputs.crawl"):
        recipe.check_inputs()  # its placeholders do not exist here


# ---------------------------------------------------------------------------------------------- the crawl input
def test_the_crawl_is_read_where_it_is(demo_root, tmp_path):
    from assets.storage import ModelworksStorage
    from pipelines.definitions import landing_shard_sensor

    root, summary = demo_root
    landing = root / "landing"
    for crawl in ([str(landing)], [str(landing / "*.warc.gz")], [str(landing / f"{s}.warc.gz")
                                                                 for s in summary["shards"]]):
        storage = ModelworksStorage(root=str(tmp_path / "home"), crawl=crawl)
        files = storage.crawl_files()
        assert sorted(files) == summary["shards"]
        assert all(Path(f).parent == landing for f in files.values())
    result = landing_shard_sensor(dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(),
                                                          resources={"storage": storage}))
    assert sorted(r.partition_key for r in result.run_requests) == summary["shards"]
    assert not (tmp_path / "home").exists()  # listing the crawl writes nothing


def test_the_demo_never_writes_into_a_users_landing_folder(tmp_path):
    from assets.storage import ModelworksStorage
    from pipelines.runner import Console, demo_crawl

    home = tmp_path / "home"
    (home / "landing").mkdir(parents=True)
    (home / "landing" / "my-shard.jsonl").write_text(json.dumps({"url": "http://x", "text": "hello"}) + "\n")
    recipe = load_recipe(RECIPES / "tiny.yaml")
    with pytest.raises(RecipeError, match="not the demo's"):
        demo_crawl(ModelworksStorage(root=str(home)), recipe, False, Console())
    with pytest.raises(RecipeError, match="not the demo's"):
        demo_crawl(ModelworksStorage(root=str(home)), recipe, True, Console())
    assert sorted(p.name for p in home.rglob("*")) == ["landing", "my-shard.jsonl"]
    with pytest.raises(RecipeError, match="modelworks run"):
        demo_crawl(ModelworksStorage(root=str(tmp_path / "h2")),
                   load_recipe(RECIPES / "tiny.yaml", [f"inputs.crawl={home / 'landing'}"]), False, Console())
    assert not (tmp_path / "h2").exists()


def test_the_command_stops_on_a_bad_recipe_before_anything_runs(tmp_path, capsys):
    from pipelines.cli import main

    assert main(["run", str(RECIPES / "tiny.yaml"), "--home", str(tmp_path / "h"), "--set", "dapt.lrr=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown key 'dapt.lrr'" in err[0]
    assert main(["run", "tiny", "--home", str(tmp_path / "h")]) == 2  # no crawl anywhere
    assert "no crawl" in capsys.readouterr().err
    assert not (tmp_path / "h").exists()
    assert main(["check", "tiny", "--set", "dapt.lr=1e-3"]) == 0
    assert "lr: 0.001" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------- end to end
def _cli(args, env, cwd=REPO, timeout=1200):
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.e2e
def test_modelworks_run_takes_a_users_crawl_where_it_lies_to_the_report(demo_root, tmp_path):
    root, summary = demo_root
    crawl = root / "landing"
    before = {p.name: p.stat().st_mtime_ns for p in crawl.iterdir()}
    home, dagster_home = tmp_path / "home", tmp_path / "dagster_home"
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "MODELWORKS_HOME": str(home),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.pop("MODELWORKS_RECIPE", None)
    # the fixture's five documents leave none held out for generated benchmarks: the user's JSONL benchmark
    # (a path relative to the working directory, as typed)
    inputs = ["--set", f"inputs.crawl={crawl}", "--set", f"inputs.seed_docs={FIXTURES / 'seed_docs'}",
              "--set", "inputs.benchmarks=tests/fixtures/user_bench/jsonl"]
    proc = _cli(["run", "recipes/tiny.yaml", *inputs], env)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "corpus -> model -> report" in out and "Benchmark scores per model stage" in out
    assert "report: " in out and "report.html" in out
    # the user's crawl is read where it lies: nothing written into or beside it, no demo world in the home
    assert {p.name: p.stat().st_mtime_ns for p in crawl.iterdir()} == before
    assert not (home / "landing").exists() and not (home / "demo").exists()
    assert sorted(p.name for p in (home / "raw" / "crawl").iterdir()) == sorted(before)
    # the resolved recipe is stored under the root and with every run
    recipe = load_recipe(home / "recipe.resolved.yaml")
    assert recipe.name == "tiny" and recipe.crawl == [str(crawl)]
    assert recipe.data["inputs"]["benchmarks"] == [str(FIXTURES / "user_bench" / "jsonl")]
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    runs = instance.get_runs()
    assert len(runs) == len(summary["shards"]) + 1 + 4 + 1
    assert {r.tags["modelworks/recipe_hash"] for r in runs} == {recipe.digest}
    assert all(r.tags["modelworks/recipe"] == "tiny" and "modelworks/recipe_yaml" in r.tags for r in runs)
    report = json.loads((home / "reports" / "report.json").read_text())
    assert len(report["stages"]) == 4
    # `modelworks report` prints the table and where the HTML is
    shown = _cli(["report"], env)
    assert shown.returncode == 0 and "report.html" in shown.stdout and "tiny" in shown.stdout
    # --only: one asset, through the same instance
    again = _cli(["run", "recipes/tiny.yaml", *inputs, "--only", "stage_report"], env)
    assert again.returncode == 0, again.stdout[-3000:]
    assert len(instance.get_runs()) == len(runs) + 1
    # a rerun is incremental: nothing is up to date to redo, so nothing runs
    rerun = _cli(["run", "recipes/tiny.yaml", *inputs], env)
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert len(instance.get_runs()) == len(runs) + 1 and "up to date" in rerun.stdout
    # a --set override reruns exactly the stages below it: an evaluation setting, only the scores and the report
    before_change = {r.run_id for r in instance.get_runs()}
    changed = _cli(["run", "recipes/tiny.yaml", *inputs, "--set", "eval.limit=4"], env)
    assert changed.returncode == 0, changed.stdout[-3000:]
    new_runs = [r for r in instance.get_runs() if r.run_id not in before_change]
    assert len(new_runs) == 1
    records = instance.get_records_for_run(new_runs[0].run_id,
                                           of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    materialized = {r.event_log_entry.dagster_event.asset_key.to_user_string() for r in records}
    assert materialized == {"base_model_scores", "dapt_model_scores", "sft_model_scores", "dpo_model_scores",
                            "stage_report"}
    # a failing step: its stack trace once, on the terminal; the exit code says so
    empty = tmp_path / "no-documents"
    empty.mkdir()
    failed = _cli(["run", "tiny", "--home", str(tmp_path / "other"), "--only", "seed_corpus",
                   "--set", f"inputs.seed_docs={empty}"], env)
    assert failed.returncode == 1
    both = failed.stdout + failed.stderr
    assert both.count("Failure: no readable seed documents") == 1 and both.count("Stack Trace") == 1


# ---------------------------------------------------------------------------------------------- the Launchpad
def _launch_from_the_ui(instance, home: Path, config: dict):
    """What the Launchpad's Launch button does with this run config: a run of recipe_job in the instance."""
    from pipelines.definitions import build_definitions

    defs = build_definitions(recipe="tiny", home=str(home))
    job = defs.resolve_job_def("recipe_job")
    return job.execute_in_process(run_config={"ops": {"run_recipe": {"config": config}}}, instance=instance,
                                  raise_on_error=False)


def test_a_recipe_pasted_in_the_launchpad_runs_its_stages_as_their_own_runs(tmp_path):
    home = tmp_path / "home"
    instance = dg.DagsterInstance.ephemeral()
    text = f"extends: tiny.yaml\ninputs:\n  seed_docs: {FIXTURES / 'seed_docs'}\nseed:\n  max_chunk_words: 90\n"
    result = _launch_from_the_ui(instance, home, {"recipe": text, "only": ["seed_corpus"],
                                                  "overrides": ["seed.min_chunk_words=12"]})
    assert result.success
    launcher = result.run_id
    children = [r for r in instance.get_runs() if r.tags.get("modelworks/launched_by") == launcher]
    assert len(children) == 1 and children[0].job_name == "seed_job"
    assert children[0].tags["modelworks/source"] == "modelworks-ui"
    # the pasted YAML is the recipe: its setting reached the run config, extends found the shipped tiny recipe
    assert children[0].run_config["ops"]["seed_corpus"]["config"]["max_chunk_words"] == 90
    assert children[0].run_config["ops"]["seed_corpus"]["config"]["min_chunk_words"] == 12  # the override too
    resolved = load_recipe(home / "recipe.resolved.yaml")
    assert resolved.data["seed"]["max_chunk_words"] == 90 and resolved.data["dapt"] == load_recipe("tiny").data["dapt"]
    meta = _output_metadata(instance, launcher)
    assert meta["runs_launched"] == 1 and meta["recipe"] == "launchpad"
    # the child run carries the resolved recipe, so the UI shows the settings behind its result
    assert "max_chunk_words: 90" in children[0].tags["modelworks/recipe_yaml"]


def test_a_bad_recipe_in_the_launchpad_fails_the_run_with_the_one_line_error(tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    result = _launch_from_the_ui(instance, tmp_path / "h", {"recipe": "tiny", "overrides": ["dapt.lrr=1"]})
    assert not result.success
    failure = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"][0]
    message = failure.step_failure_data.user_failure_data.description
    assert message.count("\n") == 0 and "unknown key 'dapt.lrr'" in message
    assert [r.run_id for r in instance.get_runs()] == [result.run_id]  # nothing else ran
    pasted = _launch_from_the_ui(instance, tmp_path / "h", {"recipe": "extends: tiny.yaml\ndapt: {lr: fast}\n"})
    failure = [e for e in pasted.all_events if e.event_type_value == "STEP_FAILURE"][0]
    assert "dapt.lr" in failure.step_failure_data.user_failure_data.description
    assert "Launchpad" in failure.step_failure_data.user_failure_data.description


def _output_metadata(instance, run_id: str) -> dict:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_OUTPUT).records
    data = records[0].event_log_entry.dagster_event.event_specific_data
    return {k: getattr(v, "value", v) for k, v in data.metadata.items()}


def test_an_asset_materialized_on_its_own_from_the_graph_takes_the_recipe(tmp_path):
    """The UI's Materialize button on one asset runs Dagster's implicit asset job, whose Launchpad starts from the
    config defaults: those are the recipe's (not the libraries'), for assets and checks alike."""
    from pipelines.definitions import build_definitions

    docs = FIXTURES / "seed_docs"
    chunks = {}
    for words in (30, 120):
        recipe = load_recipe("tiny", [f"inputs.seed_docs={docs}", f"seed.max_chunk_words={words}",
                                      "seed.min_chunk_words=10", "checks.blind_baselines_at_chance.tolerance=0.2"])
        defs = build_definitions(recipe=recipe, home=str(tmp_path / f"h{words}"))
        job = defs.resolve_implicit_global_asset_job_def()
        defaults = {nd.name: {k: f.default_value for k, f in nd.config_schema.config_type.fields.items()
                              if f.default_provided} for nd in job.graph.node_defs
                    if isinstance(getattr(nd.config_schema, "config_type", None), dg.Shape)}
        assert defaults["seed_corpus"]["max_chunk_words"] == words and defaults["seed_corpus"]["source_dir"] == str(docs)
        assert defaults["dapt_model"]["lr"] == recipe.data["dapt"]["lr"]
        assert defaults["benchmark_suite_blind_baselines_at_chance"]["tolerance"] == 0.2
        result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), run_config={},
                                        asset_selection=[dg.AssetKey("seed_corpus")])
        assert result.success
        chunks[words] = result.asset_materializations_for_node("seed_corpus")[0].metadata["chunks"].value
    assert chunks[30] > chunks[120]  # the setting reached the asset with no run config at all
