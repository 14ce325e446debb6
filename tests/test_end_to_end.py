"""End to end: `python -m pipelines.demo --profile tiny` materializes the whole graph into a fresh
DAGSTER_HOME and storage root; the outcomes a user cares about are checked on what it wrote."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parent.parent
STAGES = ("base", "dapt", "sft", "dpo")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    env = {**os.environ, "DAGSTER_HOME": str(tmp / "dagster_home"), "MODELWORKS_HOME": str(tmp / "home"),
           "MODELWORKS_PROFILE": "tiny", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    (tmp / "dagster_home").mkdir()
    proc = subprocess.run([sys.executable, "-m", "pipelines.demo", "--profile", "tiny"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return tmp / "home", tmp / "dagster_home", proc.stdout


def _texts(path: Path) -> list[str]:
    return pq.read_table(path, columns=["text"]).column("text").to_pylist()


def _urls(path: Path) -> set[str]:
    return set(pq.read_table(path, columns=["url"]).column("url").to_pylist())


def test_every_asset_in_the_graph_is_materialized(demo_run):
    home, dagster_home, _ = demo_run
    import dagster as dg

    from pipelines.definitions import defs

    instance = dg.DagsterInstance.from_config(str(dagster_home))
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    # variant_comparison sets the variants of an ablation side by side: only an ablation launch builds it.
    missing = [k.to_user_string() for k in keys
               if k != dg.AssetKey("variant_comparison") and not instance.get_latest_materialization_event(k)]
    assert not missing
    assert len(keys) >= 20


def test_planted_exact_duplicates_are_gone(demo_run):
    home, _, _ = demo_run
    from curation.demo.crawl import load_truth

    truth = load_truth(home / "demo")
    kept = _urls(home / "tables" / "deduplicated_pages" / "pages.parquet")
    pairs = [(t["url"], t["exact_duplicate_of"]) for t in truth if t["exact_duplicate_of"]]
    assert pairs
    assert not [p for p in pairs if p[0] in kept and p[1] in kept]
    texts = _texts(home / "tables" / "deduplicated_pages" / "pages.parquet")
    assert len(texts) == len(set(texts))


def test_planted_pii_is_gone_from_every_table(demo_run):
    home, _, _ = demo_run
    from curation.demo.crawl import load_truth

    values = [p["value"] for t in load_truth(home / "demo") for p in t["pii"]]
    assert values
    tables = list((home / "tables").rglob("*.parquet")) + list((home / "decontaminated").glob("*.parquet"))
    blob = "\n".join(t for path in tables if "signature" not in path.name for t in _texts(path))
    assert "<EMAIL>" in blob or "<PHONE>" in blob
    assert not [v for v in values if v in blob]


def test_no_benchmark_question_survives_into_training_sets(demo_run):
    home, _, _ = demo_run
    from assets.storage import ModelworksStorage
    from evaluation.benchmarks import read_manifest

    storage = ModelworksStorage(root=str(home))
    manifest = read_manifest(storage.benchmark_suite())
    questions = [json.loads(line)["question"] for split in ("validation", "test")
                 for line in open(manifest["benchmarks"]["mcq"]["files"][split])]
    assert len(questions) > 20
    corpus = "\n".join(_texts(Path(storage.decontaminated("domain_corpus"))) +
                       _texts(Path(storage.decontaminated("general_corpus"))))
    assert not [q for q in questions if q in corpus]
    # Leak pages lose the leaked spans, not their teaching text: no leak page is dropped whole.
    log = [json.loads(line) for line in open(storage.decontamination_log())]
    assert any(r["action"] == "cut" for r in log)


def test_the_report_gives_every_stage_a_ci_and_every_step_a_verdict(demo_run):
    home, _, stdout = demo_run
    from assets.storage import ModelworksStorage

    storage = ModelworksStorage(root=str(home))
    for stage in STAGES:
        assert (home / "models" / stage / "config.json").exists()
        scores = json.loads(Path(storage.scores(stage)).read_text())
        assert scores["_items"]["modelworks_mcq_test"], "per-item scores are kept for paired comparisons"
    report = json.loads(Path(storage.report_json()).read_text())
    mcq = report["rows"]["modelworks_mcq_test/acc"]
    stages = report["stages"]
    assert len(stages) == 4 and stages[0].startswith("base")
    for name in stages:
        row = mcq[name]
        assert row["lo"] <= row["value"] <= row["hi"] and row["n"] > 0
    verdicts = report["verdicts"]["modelworks_mcq_test/acc"]
    assert {f"{a}→{b}" for a, b in zip(stages, stages[1:])} <= set(verdicts)
    # A verdict needs enough independent units (held-out facts): below the report's minimum it must say so.
    enough = mcq[stages[0]]["n_units"] >= report["min_units"]
    expected = {"helped", "no significant change", "hurt"} if enough else {"too few to tell"}
    assert set(verdicts.values()) <= expected, (mcq[stages[0]]["n_units"], verdicts)
    # Blind baselines stand beside the models, at chance on the demo's MCQ test split.
    for baseline in report["baselines"]:
        assert abs(mcq[baseline]["value"] - 0.25) <= 0.05, baseline
    for name in ("report.html", "report.md", "scores.png", "report.json"):
        assert (Path(storage.reports()) / name).stat().st_size > 0
    assert any(v in stdout for v in ("no significant change", "helped", "hurt", "too few to tell"))


def test_base_pretraining_loss_went_down(demo_run):
    home, _, _ = demo_run
    metrics = json.loads((home / "models" / "base" / "training_metrics.json").read_text())
    curve = metrics["loss_curve"]
    assert curve[-1][1] < curve[0][1]


def test_the_demo_checks_report_every_stage_against_the_ground_truth(demo_run):
    """The demo run scores curation, dedup, domain selection and leak removal against the generator's truth through
    the demo's own asset checks (pipelines/demo_checks.py); the assets themselves carry no demo metadata."""
    home, dagster_home, _ = demo_run
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(dagster_home))

    def latest(asset: str, check: str) -> dict:
        key = dg.AssetCheckKey(dg.AssetKey(asset), check)
        records = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)
        assert records and records[0].event, f"{check} never ran"
        evaluation = records[0].event.dagster_event.event_specific_data
        assert evaluation.passed, check
        return {k: v.value for k, v in evaluation.metadata.items()}

    curation = latest("curated_pages", "curated_pages_vs_ground_truth")
    assert curation["vs_ground_truth"]["precision"] > 0.9 and curation["planted_pii"]["surviving"] == 0
    dedup = latest("deduplicated_pages", "deduplicated_pages_vs_ground_truth")["vs_ground_truth"]
    assert dedup["exact_duplicate"]["planted_pairs"] > 0 and dedup["exact_duplicate"]["recall"] == 1.0
    domain = latest("domain_corpus", "domain_corpus_vs_ground_truth")["vs_ground_truth"]
    assert domain["precision"] > 0.8 and domain["recall"] > 0.8
    leaks = latest("decontaminated_training_sets",
                   "decontaminated_training_sets_vs_ground_truth")["leak_removal_vs_ground_truth"]
    assert leaks["leak_pages"] > 0 and leaks["planted_items_found"] > 0
    for asset in ("curated_pages", "deduplicated_pages", "domain_corpus", "decontaminated_training_sets"):
        event = instance.get_latest_materialization_event(dg.AssetKey(asset))
        assert not [k for k in event.asset_materialization.metadata if "ground_truth" in k]
    # the benchmarks came in as files (the generator's, in the demo's home), marked generated
    meta = instance.get_latest_materialization_event(dg.AssetKey("benchmark_suite")).asset_materialization.metadata
    assert meta["source"].value == "files"
    from assets.storage import ModelworksStorage
    from evaluation.benchmarks import read_manifest

    manifest = read_manifest(ModelworksStorage(root=str(home)).benchmark_suite())
    assert manifest["origin"] == "generated"
    folders = {Path(b["source"]).parent for b in manifest["benchmarks"].values() if b.get("source")}
    assert folders <= {home / "demo" / "benchmarks"}
