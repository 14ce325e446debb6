"""The demo's benchmark items, built from the held-out facts of the demo fact base.

Only held-out facts are asked about, and only held-out facts supply the options: the correct
option and every distractor are causes, fixes or symptoms of held-out facts, which the web
pages teach and the seed manuals (hence the SFT/DPO data) never mention. So no option is more
"seen" in post-training data than another, and the blind rule "pick the option never seen in
post-training data" is at chance. Distractors come from the same machine, and among the
possible distractor triples the builder picks the one that keeps the running score of the
blind baselines (shortest option, word overlap with the question, never seen) closest to
chance, so no surface cue gives the answer away.

Question wording deliberately differs from every phrasing the web pages use (see
curation.demo.text), so a 13-gram decontamination pass removes planted verbatim leaks without
removing the pages that legitimately teach the facts.

The real chain never imports this module: it reads benchmark files (`evaluation.benchmarks`).
The demo generator (`generate_demo_crawl`) writes these items as such files into the demo's home
(demo/benchmarks/), and `modelworks demo` passes that folder as the recipe's inputs.benchmarks.
"""
from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from pathlib import Path

from curation.demo import text as T
from curation.demo.facts import FactBase, Fault, capitalize
from curation.tables import write_jsonl_atomic
from evaluation.benchmarks import SPLIT_SEED, VAL_FRACTION, split_of

TASKS = ("mcq", "qa", "completion", "summarization", "heldout")
N_OPTIONS = 4

# (question type, attribute asked for, question template). Symptom questions run the fact
# "backwards" (from cause or fix to symptom): a model that only memorized one direction of the
# pages' sentences gets them wrong, which is worth seeing.
MCQ_TYPES = (
    ("cause", "cause", "What is the most likely cause of {symptom} in a {equipment}?"),
    ("fix", "fix", "Which repair corrects {symptom} in a {equipment}?"),
    ("symptom_from_cause", "symptom", "Which symptom would a {equipment} show because of {cause}?"),
    ("symptom_from_fix", "symptom", "Which problem on a {equipment} is solved when technicians {fix}?"),
)


@dataclass(frozen=True)
class BenchmarkSet:
    mcq: list[dict]
    qa: list[dict]
    completion: list[dict]
    summarization: list[dict]
    heldout: list[dict]

    def items(self, task: str) -> list[dict]:
        return getattr(self, task)


def post_training_proxy_texts(facts: FactBase) -> list[str]:
    """What the demo's SFT/DPO data can contain: text about the *train* facts only.

    The demo's seed manuals cover the train facts only, and the synthetic SFT/DPO data are
    generated from the seed manuals, so every phrasing of every train fact (plus the manuals'
    "Probable cause / Corrective action" lines) is a superset of what post-training data can say.
    The never-seen baseline is balanced against these texts when the benchmark is built, and the
    test measures it on them; on a real run the report measures it on the real SFT/DPO rows.
    """
    texts = []
    for f in facts.train:
        texts += [template.format(symptom=f.symptom, Symptom=capitalize(f.symptom), equipment=f.equipment,
                                  Equipment=capitalize(f.equipment), cause=f.cause, fix=f.fix)
                  for template in T.FACT_PHRASINGS]
        texts.append(f"{capitalize(f.symptom)}. Probable cause: {f.cause}. Corrective action: {f.fix}.")
    return texts


def _balanced_options(correct: str, candidates: list[str], question: str, running: dict[str, float],
                      n_done: int, scorers: dict, rng: random.Random) -> list[str]:
    """Pick the distractor triple that keeps every blind baseline's running score nearest chance."""
    k = N_OPTIONS - 1
    triples = list(itertools.combinations(candidates, k)) if len(candidates) > k else [tuple(candidates)]
    rng.shuffle(triples)  # ties go to a random triple, not always the first in table order
    target = (n_done + 1) / N_OPTIONS
    best, best_cost = None, None
    for triple in triples:
        options = [correct, *triple]
        item = {"question": question, "choices": options, "answer": 0}
        scores = {name: score(item) for name, score in scorers.items()}
        cost = sum((running[name] + s - target) ** 2 for name, s in scores.items())
        if best_cost is None or cost < best_cost - 1e-12:
            best, best_cost, best_scores = options, cost, scores
    for name, s in best_scores.items():
        running[name] += s
    choices = list(best)
    rng.shuffle(choices)
    return choices


def _scorers(facts: FactBase) -> dict:
    from evaluation.baselines import NEVER_SEEN, SHORTEST, WORD_OVERLAP, SeenIndex, never_seen, shortest_option, \
        word_overlap

    seen = SeenIndex(post_training_proxy_texts(facts))
    return {SHORTEST: shortest_option, WORD_OVERLAP: word_overlap, NEVER_SEEN: lambda i: never_seen(i, seen)}


def _pool(fact: Fault, heldout: list[Fault], attr: str) -> list[str]:
    """Values of `attr` of the other held-out facts of the same machine (never a train fact's)."""
    value = getattr(fact, attr)
    return [getattr(f, attr) for f in heldout
            if f.equipment == fact.equipment and f.fact_id != fact.fact_id and getattr(f, attr) != value]


def build_benchmarks(facts: FactBase, seed: int = 0, val_fraction: float = VAL_FRACTION,
                     split_seed: int = SPLIT_SEED) -> BenchmarkSet:
    """Deterministically build every benchmark task from `facts.heldout` (options from held-out facts only).

    The blind baselines are balanced separately within each split that `evaluation.benchmarks`
    will later assign (by fact, from `val_fraction` and `split_seed`), so that they sit at chance
    on the test split itself, not only on the whole set.
    """
    rng = random.Random(seed)
    scorers = _scorers(facts)
    heldout = facts.heldout
    mcq, qa, completion, summarization, held_text = [], [], [], [], []
    running: dict[tuple, dict[str, float]] = {}
    done: dict[tuple, int] = {}
    for fact in heldout:
        fields = {"symptom": fact.symptom, "equipment": fact.equipment, "cause": fact.cause, "fix": fact.fix}
        split = split_of(fact.fact_id, val_fraction, split_seed)
        for qtype, attr, template in MCQ_TYPES:
            question = template.format(**fields)
            key = (split, qtype)
            running.setdefault(key, {name: 0.0 for name in scorers})
            done.setdefault(key, 0)
            choices = _balanced_options(getattr(fact, attr), _pool(fact, heldout, attr), question,
                                        running[key], done[key], scorers, rng)
            done[key] += 1
            mcq.append({"id": f"mcq-{qtype}-{fact.fact_id}", "question": question, "choices": choices,
                        "answer": choices.index(getattr(fact, attr)), "fact_id": fact.fact_id,
                        "group": fact.fact_id, "question_type": qtype})
        qa.append({"id": f"qa-{fact.fact_id}",
                   "question": f"Name the usual cause of {fact.symptom} in a {fact.equipment}.",
                   "answers": [fact.cause, fact.cause.removeprefix("a ").removeprefix("an ")],
                   "fact_id": fact.fact_id, "group": fact.fact_id})
        context = (f"The {fact.equipment} was inspected after operators reported {fact.symptom}. "
                   f"The inspection confirmed")
        key = (split, "completion")
        running.setdefault(key, {name: 0.0 for name in scorers})
        done.setdefault(key, 0)
        endings = _balanced_options(fact.cause, _pool(fact, heldout, "cause"), context, running[key],
                                    done[key], scorers, rng)
        done[key] += 1
        completion.append({"id": f"completion-{fact.fact_id}", "context": context,
                           "endings": [f"{e}." for e in endings], "label": endings.index(fact.cause),
                           "fact_id": fact.fact_id, "group": fact.fact_id})
        document = (
            f"Work order for the {fact.equipment} on line two. During the morning shift the operators "
            f"noticed {fact.symptom} and stopped the machine. The technician opened the housing and found "
            f"{fact.cause}. After the team had to {fact.fix}, the machine was started again and ran normally "
            f"for the rest of the week.")
        summarization.append({"id": f"summarization-{fact.fact_id}", "document": document,
                              "summary": f"{capitalize(fact.equipment)} {fact.symptom} was caused by "
                                         f"{fact.cause}; the fix was to {fact.fix}.",
                              "fact_id": fact.fact_id, "group": fact.fact_id})
        held_text.append({"id": f"heldout-{fact.fact_id}", "group": fact.fact_id,
                          "text": f"Maintenance bulletin. Equipment: {fact.equipment}. Observed problem: "
                                  f"{fact.symptom}. Diagnosed cause: {fact.cause}. Corrective action: "
                                  f"{fact.fix}."})
    return BenchmarkSet(mcq, qa, completion, summarization, held_text)


def leak_items(bench: BenchmarkSet) -> list[dict]:
    """Items the demo crawl copies verbatim into "practice quiz" pages: question and answer text."""
    items = [{"id": i["id"], "question": i["question"], "answer_text": i["choices"][i["answer"]]} for i in bench.mcq]
    items += [{"id": i["id"], "question": i["question"], "answer_text": i["answers"][0]} for i in bench.qa]
    return items


def write_benchmark_sources(bench: BenchmarkSet, out_dir: str | Path) -> dict[str, Path]:
    """Write one `<task>.jsonl` per task, in the schemas `evaluation.benchmarks` loads; returns the paths.

    These files are the demo's stand-in for a user's own benchmark folder: from here on the chain
    treats them like any user file (validation, splits, lm-eval tasks, decontamination).
    """
    out_dir = Path(out_dir)
    paths = {}
    for task in TASKS:
        paths[task] = out_dir / f"{task}.jsonl"
        write_jsonl_atomic(bench.items(task), paths[task])
    return paths


def score_leak_removal(pages: list[dict], truth: list[dict]) -> dict:
    """Leak removal against the demo crawl's ground truth.

    `pages`: one row per training page {"url", "action" ("keep"|"cut"|"drop"), "items" (leaked
    item keys "<benchmark>/<id>"), "text_after" (None when dropped)}. Positives are pages the
    crawl planted benchmark items in. A leak page counts as cleaned when none of its planted
    questions survives verbatim in its text after decontamination.
    """
    planted = {t["url"]: set(t["leaked_items"]) for t in truth if t["leaked_items"]}
    acted = [p for p in pages if p["action"] != "keep"]
    true_hits = [p for p in acted if p["url"] in planted]
    leak_pages = [p for p in pages if p["url"] in planted]
    cleaned = [p for p in leak_pages if p["text_after"] is None
               or not any(q in p["text_after"] for q in p.get("planted_questions", []))]
    found_items = {k.split("/", 1)[1] for p in true_hits for k in p["items"]}
    planted_items = set().union(*planted.values()) if planted else set()
    kinds = {t["url"]: t["kind"] for t in truth}
    return {
        "leak_pages": len(leak_pages), "acted_pages": len(acted),
        "precision": round(len(true_hits) / len(acted), 4) if acted else 1.0,
        "recall": round(len(cleaned) / len(leak_pages), 4) if leak_pages else 1.0,
        "planted_items_found": len(found_items & planted_items),
        "clean_pages_dropped": sum(1 for p in acted if p["url"] not in planted and p["action"] == "drop"),
        "clean_domain_pages_dropped": sum(1 for p in acted if p["url"] not in planted and p["action"] == "drop"
                                          and kinds.get(p["url"]) == "domain"),
        "clean_pages_cut": sum(1 for p in acted if p["url"] not in planted and p["action"] == "cut"),
        "leak_pages_dropped": sum(1 for p in true_hits if p["action"] == "drop"),
        "leak_pages_cut": sum(1 for p in true_hits if p["action"] == "cut"),
    }
