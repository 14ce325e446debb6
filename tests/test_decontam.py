"""Decontamination against benchmark files: span cutting, the n-gram policy, and leak removal on the demo world."""
from __future__ import annotations

import json

import pytest

from curation.decontam import (DecontamConfig, decontaminate_texts, decide, find_contaminated, index_from_suite,
                               ngram_index, remaining_leaks)
from evaluation.benchmarks import load_benchmark_folder, write_benchmark_suite

QUESTION = "Which valve on the reheater skid is the usual reason the outlet temperature swings by ten degrees?"
ANSWER = "a sticking spray water valve"
TEACHING = ("A sticking spray water valve is the usual suspect when the reheater outlet swings. Technicians "
            "stroke the valve, clean the positioner and check the spray nozzle for erosion before restart. ") * 3


@pytest.fixture()
def suite(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    rows = [{"id": "q1", "question": QUESTION, "choices": [ANSWER, "a torn bellows", "a loose flange", "low steam"],
             "answer": "A"},
            {"id": "q2", "question": "What fails first?", "choices": ["x", "y"], "answer": 0}]
    (src / "plant_mcq.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_benchmark_suite(load_benchmark_folder(src), tmp_path / "suite", val_fraction=0.5)
    return tmp_path / "suite"


def test_a_page_with_a_copied_quiz_keeps_its_teaching_text(suite):
    index = index_from_suite(suite)
    page = TEACHING + f"Practice quiz. {QUESTION} Answer: {ANSWER}. " + TEACHING
    (after,), (action,) = decontaminate_texts([page], index)
    assert action.action == "cut" and action.items == ["plant_mcq/q1"]
    assert QUESTION not in after and f"Answer: {ANSWER}" not in after
    assert after.count("stroke the valve") == 6  # every teaching sentence survives
    assert remaining_leaks([after], index) == 0


def test_a_short_answer_string_alone_is_not_a_leak(suite):
    index = index_from_suite(suite)
    assert decide(TEACHING, index).action == "keep"
    # the 2-word question "What fails first?" is too generic to index (min_whole_words)
    assert decide("What fails first? Nobody knows.", index).action == "keep"


def test_a_page_that_is_mostly_benchmark_is_dropped_and_chat_rows_are_dropped_whole(suite):
    index = index_from_suite(suite)
    assert decide(f"{QUESTION} Answer: {ANSWER}.", index).action == "drop"
    row = f"user: {QUESTION}\nassistant: It is {ANSWER}, mostly." + " Some more explanation." * 20
    assert decide(row, index).action == "cut"
    assert decide(row, index, whole_rows=True).action == "drop"


def test_the_index_is_read_from_the_files_as_written(suite):
    # Editing the written test split is what decontamination sees: nothing is regenerated.
    manifest = json.loads((suite / "manifest.json").read_text())
    files = manifest["benchmarks"]["plant_mcq"]["files"]
    question = "Which lever of the sample press jams when the guard is open for longer than a minute?"
    for path in files.values():
        with open(path, "a") as f:
            f.write(json.dumps({"id": "q9", "question": question, "choices": ["a", "b"], "answer": 0,
                                "group": "q9"}) + "\n")
    assert decide(TEACHING + question + " " + TEACHING, index_from_suite(suite)).action == "cut"


def test_demo_leak_removal_is_exact_and_spares_clean_pages(tmp_path):
    from curation.demo.benchmarks import build_benchmarks, leak_items, score_leak_removal, write_benchmark_sources
    from curation.demo.crawl import DemoCrawlConfig, plan_pages
    from curation.demo.facts import build_fact_base

    facts = build_fact_base(0)
    bench = build_benchmarks(facts, 0)
    shards = plan_pages(DemoCrawlConfig(n_shards=4, pages_per_shard=250), facts, leak_items(bench))
    pages = [p for s in shards for p in s if p.paragraphs and p.lang == "en" and p.kind in ("domain", "general", "leak")]
    texts = ["\n".join(p.paragraphs) for p in pages]
    truth = [{"url": p.url, "kind": p.kind, "leaked_items": p.leaked_items} for p in pages]
    questions = {i["id"]: i["question"] for i in leak_items(bench)}
    write_benchmark_sources(bench, tmp_path / "src")
    write_benchmark_suite(load_benchmark_folder(tmp_path / "src"), tmp_path / "suite")

    config = DecontamConfig(ngram=13)
    after, actions = decontaminate_texts(texts, index_from_suite(tmp_path / "suite", config), config)
    rows = [{"url": p.url, "action": a.action, "items": a.items, "text_after": t,
             "planted_questions": [questions[i] for i in p.leaked_items]} for p, a, t in zip(pages, actions, after)]
    score = score_leak_removal(rows, truth)
    assert score["leak_pages"] >= 10
    assert score["precision"] == 1.0 and score["recall"] == 1.0
    assert score["clean_domain_pages_dropped"] == 0 and score["clean_pages_cut"] == 0
    assert score["leak_pages_cut"] == score["leak_pages"]  # their teaching text is kept

    # Before: the 8-gram "drop any page with a benchmark n-gram" policy threw away clean domain pages.
    old_texts = [f"{i['question']} {i['choices'][i['answer']]}" for i in bench.mcq] + [i["question"] for i in bench.mcq]
    old_texts += [f"{i['question']} {i['answers'][0]}" for i in bench.qa] + [i["question"] for i in bench.qa]
    old_texts += [f"{i['document']} {i['summary']}" for i in bench.summarization]
    hits = find_contaminated(texts, ngram_index(old_texts, 8), 8) > 0
    clean_domain_dropped = sum(1 for p, h in zip(pages, hits) if h and p.kind == "domain" and not p.leaked_items)
    assert clean_domain_dropped > 30
