"""A user's own inputs, configuration only: a crawl with no demo ground truth, a folder of their documents, their
JSONL benchmark and lm-eval YAML folder; the whole chain runs to the report and touches no demo file."""
import json
import shutil
from pathlib import Path

import dagster as dg
import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="module")
def byo_run(demo_root, tmp_path_factory):
    from assets.partitions import SEED_BATCHES
    from assets.storage import ModelworksStorage
    from pipelines.definitions import build_definitions

    root, summary = demo_root
    home = tmp_path_factory.mktemp("byo")
    shutil.copytree(root / "landing", home / "landing")  # WARC shards only: no demo/ folder, no ground truth
    defs = build_definitions("tiny", home=str(home))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("crawl_shards", summary["shards"])
    for shard in summary["shards"]:
        assert defs.resolve_job_def("shard_curation_job").execute_in_process(partition_key=shard,
                                                                             instance=instance).success
    seed = {"ops": {"seed_corpus": {"config": {"source_dir": str(FIXTURES / "seed_docs"), "heldout_fraction": 0.0}}}}
    assert defs.resolve_job_def("seed_job").execute_in_process(run_config=seed, instance=instance).success
    for batch in SEED_BATCHES:
        assert defs.resolve_job_def("synthetic_job").execute_in_process(partition_key=batch, instance=instance).success
    tasks = home.parent / f"{home.name}-my-lm-eval-tasks"  # the user's YAML folder, pointing at its data file
    shutil.copytree(FIXTURES / "user_bench" / "lm_eval_tasks", tasks)
    (tasks / "plant_yesno.yaml").write_text((tasks / "plant_yesno.yaml").read_text().replace("DATA_DIR", str(tasks)))
    bench = {"ops": {"benchmark_suite": {"config": {
        "benchmark_sources": [str(FIXTURES / "user_bench" / "jsonl")],
        "lm_eval_task_dirs": [str(tasks)], "lm_eval_tasks": ["plant_yesno"],
        "val_fraction": 0.3}}}}
    result = defs.resolve_job_def("corpus_to_model_job").execute_in_process(run_config=bench, instance=instance)
    assert result.success
    return ModelworksStorage(root=str(home)), instance, result


def test_a_crawl_without_ground_truth_runs_to_the_report(byo_run):
    storage, instance, _ = byo_run
    assert not Path(storage.demo()).exists()
    report = json.loads(Path(storage.report_json()).read_text())
    assert report["stages"][0] == "base (from scratch)" and len(report["stages"]) == 4
    meta = instance.get_latest_materialization_event(dg.AssetKey("curated_pages"))
    assert "vs_ground_truth" not in meta.asset_materialization.metadata


def test_the_users_documents_feed_synthetic_data_with_provenance(byo_run):
    storage, instance, _ = byo_run
    from assets.synthetic import read_synthetic

    rows = read_synthetic(storage, "sft")
    assert rows
    sources = {r["source"] for r in rows}
    assert sources and all(not s.startswith("demo") for s in sources)
    assert "gearbox-service-manual.pdf" in sources  # a PDF among the user's documents feeds data like the rest
    meta = instance.get_latest_materialization_event(dg.AssetKey("seed_corpus")).asset_materialization.metadata
    assert meta["documents_by_type"].value == {"html": 1, "markdown": 2, "pdf": 1, "text": 1}
    assert meta["skipped_files"].value == {"empty": 1, "undecodable": 2, "unsupported": 1}
    assert all(r["chunk_id"] and r["teacher_model"] and r["prompt_version"] for r in rows)


def test_the_users_benchmarks_are_scored_and_reported(byo_run):
    storage, _, _ = byo_run
    scores = json.loads(Path(storage.scores("sft")).read_text())
    user_tasks = [t for t in scores if not t.startswith("_") and "plant" in t]
    assert "plant_yesno" in scores and any(t.startswith("modelworks_plant_mcq") for t in user_tasks)
    assert scores["_items"]["plant_yesno"]
    report = json.loads(Path(storage.report_json()).read_text())
    assert any("plant_mcq" in key for key in report["rows"])
    assert any("plant_yesno" in key for key in report["rows"])


def test_a_run_on_your_own_inputs_registers_no_demo_checks(byo_run):
    storage, instance, result = byo_run
    from pipelines.demo_checks import CHECK_NAMES

    ran = {c.check_name for c in result.get_asset_check_evaluations()}
    assert ran and not ran & set(CHECK_NAMES)
    meta = instance.get_latest_materialization_event(dg.AssetKey("benchmark_suite")).asset_materialization.metadata
    assert meta["source"].value == "files"  # the user's files; nothing looked for a demo fact base
