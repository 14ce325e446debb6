"""Blind baselines of a generated benchmark on any documents, before and after knowledge-only options (issue 16).

    .venv/bin/python benchmarks/blind_baselines.py                                  # the httpx docs fixture
    .venv/bin/python benchmarks/blind_baselines.py --docs /path/to/docs --show 10   # your documents, 10 items

Builds the benchmark the way `benchmark_suite` does without benchmark files (the rules teacher,
`generate_benchmark_items` on held-out chunks of `--chunk-words` words) twice: with the options as
the teacher wrote them (the key among its distractors: sentences of other documents), and with the
options rebuilt by `evaluation.benchmark_items`. For multiple choice and completion it prints the
accuracy of each blind rule (shortest option, most word overlap with the question, option most alike
to the others; chance 0.25), the items kept and the reasons items were rejected.

With `--split F`, a share F of the documents generates SFT/DPO data (`run_chain`) and the rest the
benchmark, so the never-seen rule is measured too.
Last line: RESULT mcq_shortest=<after> mcq_overlap=<after> mcq_central=<after> mcq_items=<after>.
"""
from __future__ import annotations

import argparse
import hashlib
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _as_teacher_wrote_them(self, question, key, teacher, chunk, item_id="", completion=False):
    from evaluation.benchmark_items import BuiltOptions

    options = sorted([key] + list(teacher), key=lambda o: hashlib.sha256(f"{item_id}|{o}".encode()).hexdigest())
    return BuiltOptions(options=options, answer=options.index(key), sources=["teacher"] * len(teacher))


def _mc(item: dict) -> dict:
    if item["kind"] == "mcq":
        return item
    return {**item, "question": item["context"], "choices": item["endings"], "answer": item["label"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", default=str(REPO / "tests" / "fixtures" / "real_docs" / "httpx"))
    ap.add_argument("--chunk-words", type=int, default=120)
    ap.add_argument("--split", type=float, default=0.0, help="share of documents that generate SFT data")
    ap.add_argument("--show", type=int, default=0, help="print this many MCQ items after the change")
    args = ap.parse_args()

    from curation.seed import chunk_documents, read_seed_documents, split_documents
    from curation.synthetic.chain import ChainConfig, generate_benchmark_items, run_chain
    from curation.synthetic.rules import RulesTeacher
    from evaluation import benchmark_items
    from evaluation.baselines import (SeenIndex, central_option, never_seen, post_training_texts, shortest_option,
                                      word_overlap)

    docs, _ = read_seed_documents(args.docs)
    docs = [d for d in docs if not d.source.upper().startswith("LICENSE")]
    seen = None
    if args.split:
        gen, held = split_documents(docs, 1.0 - args.split, 0)
        sft = run_chain(chunk_documents(gen, args.chunk_words, 40), RulesTeacher(), ChainConfig(), log=lambda m: None)
        seen = SeenIndex(post_training_texts(sft.sft + sft.preferences))
        docs = held
    chunks = chunk_documents(docs, args.chunk_words, 40)
    print(f"{len(docs)} held-out documents, {len(chunks)} chunks of <= {args.chunk_words} words")
    rules = {"shortest": shortest_option, "overlap": word_overlap, "central": central_option}
    if seen is not None:
        rules["never_seen"] = lambda i: never_seen(i, seen)
    results = {}
    real_build = benchmark_items.OptionBuilder.build
    for label in ("before", "after"):
        benchmark_items.OptionBuilder.build = _as_teacher_wrote_them if label == "before" else real_build
        r = generate_benchmark_items(chunks, RulesTeacher(), ChainConfig(), log=lambda m: None)
        rejected = Counter(q["reason"] for q in r.quarantine if q["stage"] == "options")
        for kind in ("mcq", "completion"):
            items = [_mc(i) for i in r.items if i["kind"] == kind]
            scores = {name: round(sum(map(rule, items)) / len(items), 3) if items else None
                      for name, rule in rules.items()}
            results[label, kind] = {**scores, "items": len(items)}
            print(f"{label:6s} {kind:10s} items {len(items):4d}  " + "  ".join(f"{k} {v}" for k, v in scores.items()))
        print(f"{label:6s} options rejected: {dict(rejected)}")
    benchmark_items.OptionBuilder.build = real_build
    if args.show:
        for item in [i for i in r.items if i["kind"] == "mcq"][:: max(1, len(r.items) // (4 * args.show))][:args.show]:
            print(f"\nQ: {item['question']}   [{', '.join(item['distractor_sources'])}]")
            for k, option in enumerate(item["choices"]):
                print(f"  {'*' if k == item['answer'] else ' '} {option}")
    after = results["after", "mcq"]
    print(f"RESULT mcq_shortest={after['shortest']} mcq_overlap={after['overlap']} mcq_central={after['central']} "
          f"mcq_items={after['items']}")


if __name__ == "__main__":
    main()
