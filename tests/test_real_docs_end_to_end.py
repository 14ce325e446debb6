"""A real project's documentation as the user's seed documents, end to end, with configuration only.

The seed folder is sixteen pages of the httpx documentation (tests/fixtures/real_docs/httpx, BSD-3, written by
the httpx authors, not for this test): hard-wrapped Markdown with links, code spans, tables and long reference
sections. The crawl is the generated test crawl, which holds nothing about HTTP clients (its real English is notes on
Python's standard library). So the run must select no page of another domain, keep every blocking gate green,
generate a benchmark from the held-out pages that no blind rule can pass, and write the report.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

REPO = Path(__file__).resolve().parent.parent
HTTPX = REPO / "tests" / "fixtures" / "real_docs" / "httpx"


def _check_results(instance: dg.DagsterInstance, asset: str, check: str) -> list[dg.AssetCheckEvaluation]:
    """Every evaluation of one asset check in this instance (newest first, one per run and partition)."""
    key = dg.AssetCheckKey(dg.AssetKey(asset), check)
    records = instance.event_log_storage.get_asset_check_execution_history(key, limit=100)
    return [r.evaluation for r in records if isinstance(r.evaluation, dg.AssetCheckEvaluation)]


@pytest.mark.e2e
def test_real_documentation_runs_from_crawl_to_report_with_configuration_only(demo_root, tmp_path):
    root, _ = demo_root
    seed_docs = tmp_path / "httpx-docs"
    shutil.copytree(HTTPX, seed_docs, ignore=shutil.ignore_patterns("LICENSE.md"))  # the docs, not their licence
    home, dagster_home = tmp_path / "home", tmp_path / "dagster_home"
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "MODELWORKS_HOME": str(home),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    env.pop("MODELWORKS_RECIPE", None)
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", "recipes/tiny.yaml",
                           "--set", f"inputs.crawl={root / 'landing'}", "--set", f"inputs.seed_docs={seed_docs}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    instance = dg.DagsterInstance.from_config(str(dagster_home))

    # The crawl's pages are equipment-fault pages, spam, pages in other languages, and (its real English) notes on
    # Python's standard-library modules. The only ones near a Python HTTP client's documentation are the Python
    # notes: selection may take those, never a fault page or anything else; if it takes nothing it says so.
    import pyarrow.parquet as pq

    selected = pq.read_table(home / "tables" / "domain_corpus").to_pylist()
    kinds = {r["url"].split("/")[3] for r in selected}
    assert kinds <= {"general"} and all("Python" in r["text"] for r in selected), kinds
    domain_meta = instance.get_latest_materialization_event(dg.AssetKey("domain_corpus")).asset_materialization.metadata
    found = _check_results(instance, "domain_corpus", "domain_corpus_found_domain_pages")
    assert found and found[0].passed == bool(selected)
    if not selected:  # ... and DAPT goes on with what there is: the seed documents themselves.
        assert "warning" in domain_meta and found[0].severity == dg.AssetCheckSeverity.WARN
        tokens = instance.get_latest_materialization_event(dg.AssetKey("domain_tokens")).asset_materialization
        assert "seed" in json.dumps({k: str(v.value) for k, v in tokens.metadata.items()}).lower()

    # Every blocking gate passed: synthetic answers grounded in their chunks, decontamination, blind baselines.
    for asset, check in (("sft_conversations", "synthetic_answers_supported_by_chunk"),
                         ("benchmark_suite", "blind_baselines_at_chance")):
        results = _check_results(instance, asset, check)
        assert results and all(r.passed for r in results), (check, [r.metadata for r in results if not r.passed])
    sft = [json.loads(line) for batch in (home / "synthetic").iterdir() if (batch / "sft.jsonl").exists()
           for line in (batch / "sft.jsonl").read_text().splitlines() if line.strip()]
    assert len(sft) >= 20 and {r["source"] for r in sft} <= {p.relative_to(seed_docs).as_posix()
                                                                for p in seed_docs.rglob("*.md")}

    # The generated MCQ benchmark comes from the held-out pages only, and no blind rule passes it.
    manifest = json.loads(next((home / "benchmarks").rglob("manifest.json")).read_text())
    baselines = json.dumps(manifest)
    assert "shortest" in baselines and "overlap" in baselines
    seed_meta = instance.get_latest_materialization_event(dg.AssetKey("seed_corpus")).asset_materialization.metadata
    heldout = set(seed_meta["heldout_sources"].value)
    assert heldout and not heldout & {r["source"] for r in sft}

    # The report: four stages, where its benchmarks came from, and the check that warned.
    report = json.loads((home / "reports" / "report.json").read_text())
    assert len(report["stages"]) == 4
    assert report["provenance"] and report["checks"] is not None
