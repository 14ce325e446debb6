"""Generated benchmarks that only knowledge can pass (issue 16): distractors of the key's type, length and context,
blind-passable items rejected, blind baselines measured when the suite is built, and a blocking check on them.

The real-looking documents are part of the httpx documentation (BSD-3, tests/fixtures/real_docs/httpx/LICENSE.md):
hard-wrapped Markdown with code spans, option names, numbers and admonitions.
"""
import hashlib
import json
from pathlib import Path

import dagster as dg
import pytest

from curation.seed import Chunk, chunk_documents, read_seed_documents
from curation.synthetic.chain import ChainConfig, generate_benchmark_items
from curation.synthetic.rules import RulesTeacher
from evaluation.baselines import (BLIND_TOLERANCE, blind_giveaways, central_option, shortest_option,
                                  word_overlap)
from evaluation.benchmark_items import OptionBuilder, find_slots, match_form

HTTPX = Path(__file__).resolve().parent / "fixtures" / "real_docs" / "httpx"
QUIET = lambda m: None  # noqa: E731
CHANCE = 0.25


def _httpx_docs():
    docs, _ = read_seed_documents(HTTPX)
    return [d for d in docs if d.source != "LICENSE.md"]


@pytest.fixture(scope="module")
def httpx_benchmark():
    docs = _httpx_docs()
    chunks = chunk_documents(docs, max_words=120, min_words=40)
    return docs, chunks, generate_benchmark_items(chunks, RulesTeacher(), ChainConfig(), log=QUIET)


def _as_mcq(item: dict) -> dict:
    if item["kind"] == "mcq":
        return item
    return {"question": item["context"], "choices": item["endings"], "answer": item["label"], "id": item["id"]}


def test_generated_items_on_real_docs_keep_every_blind_rule_at_chance(httpx_benchmark):
    _, _, result = httpx_benchmark
    for kind, least in (("mcq", 50), ("completion", 50)):
        items = [_as_mcq(i) for i in result.items if i["kind"] == kind]
        assert len(items) >= least, (kind, len(items), result.stats["quarantine_by_reason"])
        for name, rule in (("shortest", shortest_option), ("overlap", word_overlap), ("central", central_option)):
            acc = sum(rule(i) for i in items) / len(items)
            assert acc <= CHANCE + BLIND_TOLERANCE, (kind, name, acc)
        # no item is blind-passable on its own either
        assert not [i for i in items if blind_giveaways(i["question"], i["choices"], i["answer"])]
    # measured as the benchmark is built, in its stats
    assert set(result.stats["blind_baselines"]) == {"mcq", "completion"}


def test_distractors_are_of_the_answers_form_and_from_its_own_document(httpx_benchmark):
    docs, chunks, result = httpx_benchmark
    corpus = " ".join(" ".join(d.text.split()) for d in docs)
    doc_text = {d.id: d.text.lower() for d in docs}
    mcq = [i for i in result.items if i["kind"] == "mcq"]
    for item in mcq:
        key = item["choices"][item["answer"]]
        for k, option in enumerate(item["choices"]):
            # one form: the key's trailing punctuation, lengths within the ratio bounds (or a few characters)
            assert option.rstrip()[-1:].isalnum() == key.rstrip()[-1:].isalnum() or option[-1] == key[-1]
            assert len(option) <= 1.5 * len(key) + 6 and len(key) <= 1.5 * len(option) + 6
            if k != item["answer"] and len(option.split()) >= 5:
                # a false statement: never a sentence the documents say
                assert option.rstrip(".") not in corpus, option
        # plausible in context: most of every distractor's words come from the item's own document
        words = lambda t: {w for w in t.lower().replace("`", " ").split() if w.isalpha() and len(w) > 3}  # noqa: E731
        for option in item["choices"]:
            w = words(option)
            assert not w or len(w & set(doc_text[item["doc_id"]].replace("`", " ").split())) >= len(w) / 2
    # distractors are no longer sentences of other documents: they come from the key, its document, or the teacher
    sources = {s.split("+")[0].split(":")[0] for i in mcq for s in i["distractor_sources"]}
    assert sources <= {"slot", "label", "teacher", "tail"} and "slot" in sources


def _as_the_teacher_wrote_them(self, question, key, teacher, chunk, item_id="", completion=False):
    """The options before issue 16: the key among the teacher's sentences of other documents."""
    from evaluation.benchmark_items import BuiltOptions

    options = sorted([key] + list(teacher), key=lambda o: hashlib.sha256(f"{item_id}|{o}".encode()).hexdigest())
    return BuiltOptions(options=options, answer=options.index(key), sources=["teacher"] * len(teacher))


def test_the_teachers_own_options_were_blind_passable(httpx_benchmark, monkeypatch):
    """What the issue measured: on real documents the teacher's options give the key away; the rebuilt ones do not."""
    from evaluation.benchmark_items import OptionBuilder as Builder

    _, chunks, after = httpx_benchmark
    monkeypatch.setattr(Builder, "build", _as_the_teacher_wrote_them)
    before = generate_benchmark_items(chunks, RulesTeacher(), ChainConfig(), log=QUIET)
    raw = [i for i in before.items if i["kind"] == "mcq"]
    new = [i for i in after.items if i["kind"] == "mcq"]
    assert sum(map(word_overlap, raw)) / len(raw) > CHANCE + BLIND_TOLERANCE
    assert sum(map(word_overlap, new)) / len(new) <= CHANCE + BLIND_TOLERANCE


def _chunk(text: str, doc: str = "d1", i: int = 0) -> Chunk:
    return Chunk(id=f"{doc}-{i}", doc_id=doc, source=f"{doc}.md", heading="Pools", text=text, index=i)


def test_an_item_whose_key_is_the_unique_shortest_option_is_rejected():
    assert blind_giveaways("Which one?", ["Use a pool.", "Use a proxy always.", "Use a transport.",
                                          "Use a mount here."], 0) == ["key_unique_shortest"]
    assert "key_unique_longest" in blind_giveaways("Which?", ["A long key option here.", "Short one.",
                                                              "Short two.", "Short three."], 0)
    assert blind_giveaways("Which timeout applies?", ["The timeout.", "The pool.", "The proxy.", "The mount."], 0) \
        == ["key_unique_word_overlap"]
    assert blind_giveaways("Which?", ["The pool.", "the pool", "A proxy.", "A mount."], 0) == ["duplicate_options"]
    assert blind_giveaways("Which?", ["The pools.", "The proxy.", "The mount.", "The limit."], 0) == []
    # through the builder: the teacher's distractors fit the length bounds but are all longer, and nothing in
    # the key can change, so the item goes to the quarantine with its reason
    chunk = _chunk("Pools\n\nUse a pool. A transport, a limiter or a session may be used too.\n")
    built = OptionBuilder([chunk]).build("Which statement holds?", "Use a pool.",
                                         ["Use a transport.", "Use a limiter.", "Use a session."], chunk)
    assert built.rejected and built.reason == "key_unique_shortest"


def test_one_slot_of_the_key_is_replaced_by_a_value_of_its_own_kind():
    text = ("Timeouts\n\nThe default `connect` timeout is 5 seconds, and the `read` timeout is\n30 seconds. "
            "Set `pool` to 10 seconds and `write` to 20 seconds, or pass `timeout=None`.\n\n"
            "Use `httpx.Client()` or `httpx.AsyncClient()` to reuse connections; `httpx.get()` and `httpx.post()` "
            "do not.\n")
    chunk = _chunk(text)
    slots = {s.value: s.kind for s in find_slots("The default `connect` timeout is 5 seconds.")}
    assert slots == {"`connect`": "code:name", "5 seconds": "number:s", "is": "opposite"}
    built = OptionBuilder([chunk], seed=1).build("Which statement about timeouts is true?",
                                                 "The default `connect` timeout is 5 seconds.", [], chunk)
    assert not built.rejected, built.reason
    key = built.options[built.answer]
    assert key == "The default `connect` timeout is 5 seconds."
    for option in built.options:
        assert option.startswith("The default `") and option.endswith(".")
    assert len({o for o in built.options}) == 4
    # a call is replaced by a call, never by a name
    built = OptionBuilder([chunk]).build("Which?", "Use `httpx.Client()` to reuse connections.", [], chunk)
    assert not built.rejected
    assert all(o.count("`") == 2 and "()`" in o for o in built.options), built.options
    # the teacher's options are put in the key's form
    assert match_form("**uses a pool**", "Uses a proxy.") == "Uses a pool."


def _blind_passable_rows(n: int = 40) -> list[dict]:
    """MCQ rows whose key is always the unique shortest option (and shares the question's words)."""
    rows = []
    for k in range(n):
        key = f"Pool {k}"
        rows.append({"id": f"q{k}", "question": f"Which pool {k} setting applies?", "group": f"g{k}",
                     "choices": [f"A much longer distractor number {k} {j}" for j in range(3)] + [key],
                     "answer": 3})
    return rows


def test_the_manifest_records_blind_baselines_when_the_suite_is_built(tmp_path):
    from evaluation.benchmarks import blind_baseline_failures, record_blind_baselines
    from evaluation.suite import build_benchmark_suite

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "bad_mcq.jsonl").write_text("\n".join(json.dumps(r) for r in _blind_passable_rows()))
    manifest = build_benchmark_suite([tmp_path / "src"], tmp_path / "suite", val_fraction=0.3)
    test = manifest["benchmarks"]["bad_mcq"]["blind_baselines"]["test"]
    assert test["shortest option"]["acc"] == 1.0 and test["shortest option"]["above_tolerance"]
    assert test["shortest option"]["lo"] <= test["shortest option"]["acc"] <= test["shortest option"]["hi"]
    assert "option never seen in post-training data" not in test  # no post-training texts given
    manifest = record_blind_baselines(tmp_path / "suite", ["Pool settings are documented."], origin="generated")
    assert manifest["origin"] == "generated" and manifest["never_seen_measured"]
    assert "option never seen in post-training data" in manifest["benchmarks"]["bad_mcq"]["blind_baselines"]["test"]
    failures = blind_baseline_failures(manifest)
    assert {f["rule"] for f in failures} >= {"shortest option", "most word overlap with the question"}
    assert not blind_baseline_failures(manifest, tolerance=1.0)


@dg.asset(deps=["benchmark_suite"])
def after_the_benchmarks() -> None:
    """Stands for everything downstream of the suite (decontamination, evaluation)."""


def _materialize(tmp_path, bench_config: dict, source_dir: Path):
    from assets.benchmarks import benchmark_suite, blind_baselines_at_chance
    from assets.seed import seed_corpus
    from assets.storage import ModelworksStorage
    from assets.teacher import TeacherResource

    storage = ModelworksStorage(root=str(tmp_path / "home"))
    resources = {"storage": storage, "teacher": TeacherResource(backend="rules")}
    run_config = {"ops": {"seed_corpus": {"config": {"source_dir": str(source_dir), "heldout_fraction": 0.5,
                                                     "max_chunk_words": 300}},
                          "benchmark_suite": {"config": bench_config}}}
    result = dg.materialize([seed_corpus, benchmark_suite, blind_baselines_at_chance, after_the_benchmarks],
                            resources=resources, run_config=run_config, raise_on_error=False)
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    done = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    return result, checks["blind_baselines_at_chance"], done


def test_the_blocking_check_stops_a_generated_benchmark_that_blind_rules_pass(tmp_path, monkeypatch):
    from evaluation.benchmark_items import OptionBuilder as Builder

    monkeypatch.setattr(Builder, "build", _as_the_teacher_wrote_them)
    result, check, done = _materialize(tmp_path, {"source": "heldout", "val_fraction": 0.0}, HTTPX)
    assert "benchmark_suite" in done
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    above = check.metadata["above_tolerance"].value
    assert any(f["rule"] == "most word overlap with the question" for f in above)
    assert "after_the_benchmarks" not in done  # blocked


def test_the_check_passes_a_generated_benchmark_and_only_warns_on_the_users_own_files(tmp_path):
    result, check, done = _materialize(tmp_path / "gen", {"source": "heldout", "val_fraction": 0.0}, HTTPX)
    assert check.passed, check.metadata["above_tolerance"].value
    assert "after_the_benchmarks" in done and check.metadata["origin"].value == "generated"

    src = tmp_path / "user"
    src.mkdir()
    (src / "mine_mcq.jsonl").write_text("\n".join(json.dumps(r) for r in _blind_passable_rows()))
    result, check, done = _materialize(tmp_path / "files", {"source": "files", "benchmark_sources": [str(src)],
                                                            "val_fraction": 0.0}, HTTPX)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN  # their benchmark is theirs
    assert "after_the_benchmarks" in done and result.success
    meta = result.asset_materializations_for_node("benchmark_suite")[0].metadata
    assert "shortest option" in meta["blind_baselines_test"].value["mine_mcq"]


def test_the_blind_gate_does_not_stop_the_chain_on_one_lucky_item():
    """Seen on a real run (httpx's docs, one held-out document): a 2-item completion benchmark where a blind rule
    got 1 of 2 (0.5 > chance 0.25 + 0.05) stopped the whole chain. On fewer than MIN_UNITS independent units the
    gate blocks only what chance does not explain (one-sided binomial test over the items); the teacher-written
    benchmark of the test above (22 of 47 by word overlap, 8 groups) is still blocked, and so is any large one."""
    from evaluation.benchmarks import blind_baseline_failures

    def manifest(acc, n, units):
        rule = {"acc": acc, "lo": acc, "hi": acc, "n": n, "units": units, "chance": 0.25}
        return {"benchmarks": {"b": {"blind_baselines": {"test": {"most word overlap with the question": rule}}}}}

    for acc, n, units, blocked in ((0.5, 2, 1, False), (1.0, 2, 2, False), (0.4628, 47, 8, True),
                                   (0.32, 400, 40, True), (0.29, 400, 40, False)):
        too_few: list = []
        failures = blind_baseline_failures(manifest(acc, n, units), too_few=too_few)
        assert bool(failures) is blocked, (acc, n, units)
        assert bool(too_few) is (not blocked and acc > 0.3), (acc, n, units)
