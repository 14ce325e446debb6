"""The demo fenced in the code: its benchmarks are ordinary files the generator writes, its ground-truth scores are
asset checks that only a demo run registers, and no asset switches to the demo world because its files exist."""
import json

from curation.tables import read_jsonl


def test_the_generator_writes_the_demo_benchmarks_as_ordinary_files(demo_root):
    from curation.demo.benchmarks import TASKS, build_benchmarks
    from curation.demo.crawl import load_fact_base
    from evaluation.benchmarks import load_benchmark_folder

    root, summary = demo_root
    bench_dir = root / "demo" / "benchmarks"
    assert summary["benchmarks_dir"] == str(bench_dir)
    # the very items benchmark_suite built from the fact base before (same seed): the demo table does not move
    expected = build_benchmarks(load_fact_base(root / "demo"), 0)
    for task in TASKS:
        assert read_jsonl(bench_dir / f"{task}.jsonl") == expected.items(task)
    kinds = {b.name: b.kind for b in load_benchmark_folder(bench_dir)}
    assert {"mcq": "mcq", "qa": "qa", "completion": "completion", "summarization": "summarization"}.items() \
        <= kinds.items()


def test_only_a_recipe_that_declares_the_demo_world_registers_the_demo_checks(demo_root, tmp_path):
    from assets.storage import ModelworksStorage
    from pipelines.definitions import build_definitions
    from pipelines.demo_checks import CHECK_NAMES, demo_overrides
    from pipelines.recipe import load_recipe

    def check_names(defs) -> set[str]:
        return {k.name for c in defs.asset_checks for k in c.check_keys}

    root, _ = demo_root
    plain = load_recipe("tiny")
    assert not set(CHECK_NAMES) & check_names(build_definitions(recipe=plain, home=str(tmp_path)))
    assert not set(CHECK_NAMES) & check_names(build_definitions("tiny", home=str(tmp_path)))
    extra = demo_overrides(plain, ModelworksStorage(root=str(root)))
    demo = load_recipe("tiny", extra)
    assert demo.ground_truth == str(root / "demo")
    assert demo.op_config()["benchmark_suite"]["benchmark_sources"] == [str(root / "demo" / "benchmarks")]
    assert demo.op_config()["benchmark_suite"]["generated_files"] is True
    assert set(CHECK_NAMES) <= check_names(build_definitions(recipe=demo, home=str(root)))
    # a recipe naming its own benchmark files keeps them
    own = load_recipe("tiny", [f"inputs.benchmarks={json.dumps([str(tmp_path)])}"])
    assert not any(e.startswith("inputs.benchmarks") for e in demo_overrides(own, ModelworksStorage(root=str(root))))


def test_benchmark_suite_never_switches_to_the_demo_because_a_fact_base_exists(demo_root):
    from assets.benchmarks import BenchmarkConfig, _resolve_source

    root, _ = demo_root
    assert (root / "demo" / "facts.json").exists()
    assert _resolve_source(BenchmarkConfig()) == "heldout"
    assert _resolve_source(BenchmarkConfig(benchmark_sources=[str(root / "demo" / "benchmarks")])) == "files"
