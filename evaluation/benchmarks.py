"""Domain benchmarks (MCQ, QA, sentence completion, summarization, held-out text) from held-out facts.

Only held-out facts are used, so an item can be answered only by a model that learned the fact
from curated web pages; the synthetic SFT/preference data never mention them. The question
wording deliberately differs from every phrasing the web pages use (see curation.demo.text),
so a 13-gram decontamination pass removes planted verbatim leaks without removing the pages
that legitimately teach the facts.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from curation.demo.facts import FactBase, Fault, capitalize, distractors
from curation.tables import write_jsonl_atomic

TASKS = ("mcq", "qa", "completion", "summarization", "heldout")

# Chance level of each headline metric (four choices), for the report's "chance" row.
CHANCE = {"mcq_acc": 0.25, "completion_acc": 0.25}


@dataclass(frozen=True)
class BenchmarkSet:
    mcq: list[dict]
    qa: list[dict]
    completion: list[dict]
    summarization: list[dict]
    heldout: list[dict]

    def items(self, task: str) -> list[dict]:
        return getattr(self, task)

    def texts(self) -> dict[str, list[str]]:
        """Every string of every item, per task: what decontamination must keep out of training data."""
        # Questions alone too: a copied question followed by "Answer:" breaks every question+answer n-gram.
        return {
            "mcq": [f"{i['question']} {i['choices'][i['answer']]}" for i in self.mcq] + [i["question"] for i in self.mcq],
            "qa": [f"{i['question']} {i['answer']}" for i in self.qa] + [i["question"] for i in self.qa],
            "completion": [f"{i['context']} {i['endings'][i['label']]}" for i in self.completion],
            "summarization": [f"{i['document']} {i['summary']}" for i in self.summarization],
        }


def _mcq(fact: Fault, facts: list[Fault], attr: str, rng: random.Random) -> dict:
    if attr == "cause":
        question = f"What is the most likely cause of {fact.symptom} in a {fact.equipment}?"
    else:
        question = f"Which repair corrects {fact.symptom} in a {fact.equipment}?"
    choices = distractors(fact, facts, attr, 3, rng) + [getattr(fact, attr)]
    rng.shuffle(choices)
    return {"id": f"mcq-{attr}-{fact.fact_id}", "question": question, "choices": choices,
            "answer": choices.index(getattr(fact, attr)), "fact_id": fact.fact_id}


def build_benchmarks(facts: FactBase, seed: int = 0) -> BenchmarkSet:
    """Deterministically build every benchmark task from `facts.heldout`."""
    rng = random.Random(seed)
    pool = facts.all
    mcq, qa, completion, summarization, heldout = [], [], [], [], []
    for fact in facts.heldout:
        mcq.append(_mcq(fact, pool, "cause", rng))
        mcq.append(_mcq(fact, pool, "fix", rng))
        qa.append({"id": f"qa-{fact.fact_id}",
                   "question": f"Name the usual cause of {fact.symptom} in a {fact.equipment}.",
                   "answer": fact.cause, "aliases": [fact.cause.removeprefix("a ").removeprefix("an ")],
                   "fact_id": fact.fact_id})
        endings = [f" {d}." for d in distractors(fact, pool, "cause", 3, rng)] + [f" {fact.cause}."]
        rng.shuffle(endings)
        completion.append({
            "id": f"completion-{fact.fact_id}",
            "context": f"The {fact.equipment} was inspected after operators reported {fact.symptom}. "
                       f"The inspection confirmed",
            "endings": endings, "label": endings.index(f" {fact.cause}."), "fact_id": fact.fact_id})
        document = (
            f"Work order for the {fact.equipment} on line two. During the morning shift the operators "
            f"noticed {fact.symptom} and stopped the machine. The technician opened the housing and found "
            f"{fact.cause}. After the team had to {fact.fix}, the machine was started again and ran normally "
            f"for the rest of the week.")
        summarization.append({"id": f"summarization-{fact.fact_id}", "document": document,
                              "summary": f"{capitalize(fact.equipment)} {fact.symptom} was caused by "
                                         f"{fact.cause}; the fix was to {fact.fix}.",
                              "fact_id": fact.fact_id})
        heldout.append({"id": f"heldout-{fact.fact_id}",
                        "text": f"Maintenance bulletin. Equipment: {fact.equipment}. Observed problem: "
                                f"{fact.symptom}. Diagnosed cause: {fact.cause}. Corrective action: "
                                f"{fact.fix}."})
    return BenchmarkSet(mcq, qa, completion, summarization, heldout)


def write_benchmarks(bench: BenchmarkSet, out_dir: str | Path) -> dict[str, int]:
    """Write one JSONL file per task; returns item counts per task."""
    out_dir = Path(out_dir)
    return {task: write_jsonl_atomic(bench.items(task), out_dir / f"{task}.jsonl") for task in TASKS}
