"""The stage report knows its limits: no verdict on too few independent units, a warning for thin splits,
the asset checks that failed upstream, and where each benchmark came from (issue 16, item 7)."""

import json
from pathlib import Path

import numpy as np
import pytest

from evaluation.stats import MIN_UNITS


def _stage(mcq_acc: dict[str, float], groups: dict[str, str], page_nll: dict[str, float]) -> dict:
    """Stage results in evaluate_model's shape: an MCQ task (items in groups) and a general-text perplexity."""
    return {
        "modelworks_mcq_test": {"output_type": "multiple_choice", "acc": float(np.mean(list(mcq_acc.values())))},
        "general_text": {"output_type": "perplexity", "perplexity": 0.0, "bits_per_byte": 0.0},
        "_items": {
            "modelworks_mcq_test": [{"id": i, "group": groups[i], "acc": a, "acc_norm": a} for i, a in mcq_acc.items()],
            "general_text": [{"id": p, "token_nll": nll, "n_tokens": 100, "bits_per_byte": nll / 2, "n_bytes": 400}
                             for p, nll in page_nll.items()],
        },
    }


def _results(n_groups: int, n_pages: int) -> dict:
    """base → dapt: every MCQ group goes from wrong to right, every general page gets worse (forgetting)."""
    rng = np.random.default_rng(0)
    ids = [f"q{g}-{k}" for g in range(n_groups) for k in range(4)]
    groups = {i: i.split("-")[0] for i in ids}
    pages = {f"page-{p}": 3.0 + rng.random() for p in range(n_pages)}
    base = _stage({i: 0.0 for i in ids}, groups, pages)
    dapt = _stage({i: 1.0 for i in ids}, groups, {p: nll + 0.5 for p, nll in pages.items()})
    return {"base": base, "dapt": dapt}


def _comparison(report: dict, key: str) -> dict:
    (c,) = report["comparisons"][key]
    return c


def test_a_report_on_few_groups_says_too_few_to_tell(tmp_path):
    """Six MCQ groups and five general pages: the bootstrap alone would say helped / hurt at p = 0.0001."""
    from evaluation.report import build_stage_report

    out = build_stage_report(_results(n_groups=6, n_pages=5), tmp_path, stages=["base", "dapt"])
    report = out["report"]
    mcq, ppl = _comparison(report, "modelworks_mcq_test/acc"), _comparison(report, "general_text/perplexity")
    assert mcq["lo"] > 0 and ppl["lo"] > 0  # the intervals alone exclude 0 ...
    assert mcq["n_units"] == 6 and ppl["n_units"] == 5
    assert mcq["verdict"] == ppl["verdict"] == "too few to tell"  # ... but there is too little to tell
    assert report["verdicts"]["general_text/perplexity"] == {"base→dapt": "too few to tell"}
    assert report["units"] == {"modelworks_mcq_test": 6, "general_text": 5}
    warned = " ".join(report["warnings"])
    assert "mcq_test: only 6 independent units" in warned and "general_text: only 5 independent units" in warned
    assert "too few to tell" in out["markdown"] and "## Warnings" in out["markdown"]
    assert " †" in out["markdown"]  # the thin intervals are marked in the table
    assert "too few to tell" in Path(out["paths"]["html"]).read_text()


def test_a_report_on_enough_groups_still_says_helped_and_hurt(tmp_path):
    from evaluation.report import build_stage_report

    report = build_stage_report(_results(n_groups=MIN_UNITS + 2, n_pages=30), tmp_path,
                                stages=["base", "dapt"])["report"]
    assert _comparison(report, "modelworks_mcq_test/acc")["verdict"] == "helped"
    assert _comparison(report, "general_text/perplexity")["verdict"] == "hurt"  # lower is better: it rose
    assert report["warnings"] == []


def test_the_report_lists_failed_checks_and_benchmark_provenance(tmp_path):
    from evaluation.report import build_stage_report, format_stage_table

    checks = [{"asset": "curated_pages", "check": "quality_filters_keep_enough_pages", "status": "failed",
               "partition": "shard-0003", "description": "only 12% of pages kept"},
              {"asset": "domain_corpus", "check": "domain_corpus_is_on_topic", "status": "warned",
               "partition": None, "description": None}]
    provenance = {"suite": {"source": "heldout", "teacher_model": "smollm2-135m"},
                  "benchmarks": {"heldout_mcq": {"kind": "mcq", "n_items": 24, "n_groups": 6, "origin": "generated",
                                                 "teachers": ["smollm2-135m"], "judges": ["rules"],
                                                 "prompt_versions": ["v3"], "n_source_documents": 2,
                                                 "source_documents": ["pumps.md", "fans.md"], "file": "x.jsonl"},
                                 "plant_mcq": {"kind": "mcq", "n_items": 8, "n_groups": 8, "origin": "file",
                                               "file": "/data/plant_mcq.jsonl"}}}
    out = build_stage_report(_results(n_groups=12, n_pages=12), tmp_path, stages=["base", "dapt"], checks=checks,
                             provenance=provenance)
    md = out["markdown"]
    assert "## Asset checks that failed or warned upstream" in md
    assert "**failed** `curated_pages / quality_filters_keep_enough_pages (partition shard-0003)`: only 12% " in md
    assert "**warned** `domain_corpus / domain_corpus_is_on_topic`" in md
    assert "generated by teacher smollm2-135m, judged by rules, prompts v3, from 2 held-out documents " \
           "(pumps.md, fans.md)" in md
    assert "read from `/data/plant_mcq.jsonl`" in md
    saved = json.loads(Path(out["paths"]["json"]).read_text())
    assert saved["checks"][0]["check"] == "quality_filters_keep_enough_pages"
    assert saved["provenance"]["suite"]["source"] == "heldout"
    html = Path(out["paths"]["html"]).read_text()
    assert "quality_filters_keep_enough_pages" in html and "pumps.md" in html
    assert "check failed: curated_pages / quality_filters_keep_enough_pages" in format_stage_table(out["report"])
    # An empty list is an answer too (every check passed); None means nobody looked.
    clean = build_stage_report(_results(12, 12), tmp_path / "clean", stages=["base", "dapt"], checks=[])
    assert "none: every check upstream passed" in clean["markdown"]
    unknown = build_stage_report(_results(12, 12), tmp_path / "unknown", stages=["base", "dapt"])
    assert "Asset checks" not in unknown["markdown"]


def test_suite_provenance_names_teacher_and_held_out_documents(tmp_path):
    from evaluation.suite import build_benchmark_suite, suite_provenance, write_generated_sources

    generated = [{"kind": "mcq", "id": f"g{i}", "question": f"Why does pump {i} vibrate?",
                  "choices": ["worn bearings", "cavitation"], "answer": 0, "doc_id": f"doc-{i % 3}",
                  "source": f"manual_{i % 3}.md", "teacher_model": "smollm2-135m", "judge_model": "rules",
                  "prompt_version": "v3"} for i in range(30)]
    sources = write_generated_sources(generated, tmp_path / "generated")
    user = tmp_path / "user" / "plant_qa.jsonl"
    user.parent.mkdir()
    user.write_text("".join(json.dumps({"question": f"Q{i}?", "answers": ["a"]}) + "\n" for i in range(10)))
    build_benchmark_suite([sources["mcq"], user], tmp_path / "suite", val_fraction=0.0)
    prov = suite_provenance(tmp_path / "suite")
    mcq = prov["heldout_mcq"]
    assert mcq["origin"] == "generated" and mcq["teachers"] == ["smollm2-135m"] and mcq["judges"] == ["rules"]
    assert mcq["prompt_versions"] == ["v3"] and mcq["n_items"] == 30
    assert mcq["source_documents"] == ["manual_0.md", "manual_1.md", "manual_2.md"]
    assert mcq["n_groups"] == 3  # one group per held-out document
    qa = prov["plant_qa"]
    assert qa["origin"] == "file" and qa["file"] == str(user) and qa["teachers"] == []


def test_lineage_check_problems_reads_the_latest_evaluation_of_every_upstream_check(tmp_path):
    """The report asset finds failed and warned checks upstream in the Dagster instance; a fixed one drops out."""
    import dagster as dg

    from assets.evaluation import lineage_check_problems

    state = {"fixed": False}

    @dg.asset
    def pages():
        return 1

    @dg.asset_check(asset=pages, description="enough pages survive the filters")
    def enough_pages():
        return dg.AssetCheckResult(passed=state["fixed"], description="only 3 pages")

    @dg.asset_check(asset=pages)
    def pages_on_topic():
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN)

    @dg.asset_check(asset=pages)
    def pages_have_ids():
        return dg.AssetCheckResult(passed=True)

    @dg.asset(deps=[pages])
    def report(context: dg.AssetExecutionContext):
        # The checks the code location defines (the real report: every check in the assets package).
        known = {k for c in (enough_pages, pages_on_topic, pages_have_ids, unrelated_fails) for k in c.check_keys}
        return dg.MaterializeResult(metadata={"problems": dg.MetadataValue.json(lineage_check_problems(context,
                                                                                                        known))})

    @dg.asset
    def unrelated():
        return 1

    @dg.asset_check(asset=unrelated)
    def unrelated_fails():
        return dg.AssetCheckResult(passed=False)

    defs = [pages, enough_pages, pages_on_topic, pages_have_ids, report, unrelated, unrelated_fails]
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        def problems():
            dg.materialize(defs, instance=instance, selection=["report"])
            event = instance.get_latest_materialization_event(dg.AssetKey("report"))
            return event.asset_materialization.metadata["problems"].value

        assert dg.materialize(defs, instance=instance, selection=["pages", "unrelated"]).success
        found = problems()
        assert [(p["check"], p["status"]) for p in found] == [("enough_pages", "failed"), ("pages_on_topic", "warned")]
        assert found[0]["asset"] == "pages" and found[0]["description"] == "only 3 pages"
        assert found[1]["description"] is None  # neither the result nor the check says more
        state["fixed"] = True
        assert dg.materialize(defs, instance=instance, selection=["pages"]).success
        assert [p["check"] for p in problems()] == ["pages_on_topic"]


def test_the_report_knows_every_check_of_the_code_location():
    """Checks of jobs other than the report's (per crawl shard, per seed batch) count too."""
    from assets.evaluation import code_location_check_keys

    names = {k.name for k in code_location_check_keys()}
    assert {"no_benchmark_text_in_training_sets", "final_model_beats_first_stage_on_mcq"} <= names
    assert any(k.asset_key.to_user_string() == "curated_pages" for k in code_location_check_keys())


def test_too_few_units_never_get_a_verdict_even_with_a_clear_interval():
    from evaluation.stats import paired_bootstrap, verdict

    paired = paired_bootstrap([3.0] * 5, [3.5] * 5, seed=0)
    assert paired["lo"] > 0 and paired["n_units"] == 5
    assert verdict(paired) == "too few to tell"
    assert verdict(paired, min_units=5) == "helped"
    assert verdict(paired_bootstrap([0.0] * 12, [1.0] * 12, groups=[g // 4 for g in range(12)])) == "too few to tell"


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(pytest.main([__file__]))


def test_the_report_says_in_words_what_helped_and_when_a_stage_changed_nothing(tmp_path):
    from evaluation.report import build_stage_report, format_stage_table, plain_findings

    results = _results(n_groups=MIN_UNITS + 2, n_pages=30)
    results["dpo"] = results["dapt"]  # a stage that trained and moved nothing: the same scores item for item
    out = build_stage_report(results, tmp_path, stages=["base", "dapt", "dpo"])
    lines = plain_findings(out["report"])
    helped = next(x for x in lines if x.startswith("base → dapt"))
    assert "helped on mcq_test" in helped and "hurt on general_text" in helped
    nothing = next(x for x in lines if x.startswith("dapt → dpo"))
    assert nothing == "dapt → dpo: no measurable change on any task: every paired 95% CI includes 0."
    assert nothing in out["markdown"] and nothing in format_stage_table(out["report"])
    assert "no measurable change on any task" in Path(out["paths"]["html"]).read_text()


def test_a_comparison_with_only_thin_tasks_claims_no_change_either(tmp_path):
    from evaluation.report import build_stage_report, plain_findings

    out = build_stage_report(_results(n_groups=6, n_pages=5), tmp_path, stages=["base", "dapt"])
    assert plain_findings(out["report"]) == ["base → dapt: too few independent units to tell on any task."]
