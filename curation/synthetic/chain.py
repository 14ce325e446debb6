"""The guided chain (after Nemotron-4 SDG and DiagnosticSLM): chunks -> topics -> questions -> answers -> judge.

For every chunk of the generation documents the teacher lists topics (the chunk's heading when it
lists none usable); for every topic it writes
questions of four kinds (multiple choice with distractors, open QA, sentence completion, summary
request); exact and near-duplicate questions are dropped; `answers_per_question` answers are
drawn, the first greedily and the rest sampled (from the teacher, which sees the chunk, or on-policy from a given model, which sees
only the question); a judge scores every answer on a rubric (grounded, correct, helpful, well
formed; 1-5 each). The best answer whose mean reaches `judge_threshold`, with grounded and correct at
3 or more (`judge_min_scores`), becomes an SFT conversation; best vs
worst, when their mean scores differ by `preference_margin` or more, a preference pair. Every
stage works breadth-first over all chunks, so a concurrent teacher sees many requests at once.
Replies that do not parse, are empty or off-topic, and judge verdicts that do not parse, are kept
in the quarantine with their reason; the run never stops on them.

Whatever the teacher (the rules writer, SmolLM2, a server), the chain checks what it wrote
(`curation.synthetic.checks`): every topic, question, option, completion, summary request and
answer has a form check of its kind (a question ends in "?" and asks something with a subject,
with no empty template slot, broken phrase or Markdown fragment; a completion is cut at a clause
boundary, both halves substantial; a summary is whole sentences; an answer is no lead-in "...:"),
and what fails it is quarantined with the reason. The judge's verdict is joined by the chain's own
grounding criterion (`claim_support`: each claim of the answer must be covered by one or two
adjacent units of the chunk that are about what the question asks, with the same polarity): an
answer that fails it scores grounded = 1, so it is never kept, whatever the judge said, and a
question whose best answer fails it is quarantined as `unsupported_by_chunk`, `answer_off_question`,
`contradicts_chunk` or `answer_adds_nothing`. The blocking asset check tests the kept answers again
with another method (`grounding.answer_supported_by_chunk`); in a healthy run it finds nothing.

`generate_benchmark_items` runs the same chain on held-out chunks and writes benchmark items in
the JSONL schema of each kind (mcq: question, choices, answer; qa: question, answers;
completion: context, endings, label; summarization: document, summary).
"""
from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from curation.seed import Chunk
from curation.synthetic.base import Sampling, Teacher
from curation.synthetic.checks import (answer_problem, claim_support, completion_problem, markup_fragment,
                                       options_problem, question_problem, request_problem, topic_problem)
from curation.synthetic.grounding import answer_supported_by_chunk  # noqa: F401  (re-exported for asset checks)
from curation.synthetic.parse import (RUBRIC, ParseError, answer_letter, parse_answer, parse_completion,
                                      parse_judge, parse_mcq, parse_question, parse_request, parse_topics)
from curation.synthetic.prompts import PromptSet, load_prompts
from curation.synthetic.text import content_words, jaccard, normalize, shingles

KINDS = ("mcq", "qa", "completion", "summarization")
# quarantine reasons for answers the chain's grounding criterion rejects (checks.Support.reason -> reason)
SUPPORT_REASONS = {"unsupported": "unsupported_by_chunk", "off_question": "answer_off_question",
                   "contradicts_chunk": "contradicts_chunk", "no_new_content": "answer_adds_nothing"}


@dataclass
class ChainConfig:
    kinds: tuple[str, ...] = KINDS  # item kinds asked of every topic: mcq, qa, completion, summarization
    topics_per_chunk: int = 2
    questions_per_topic: int = 1
    answers_per_question: int = 3         # sampled per question; best/worst become a preference pair
    judge_threshold: float = 3.5          # mean rubric score (1-5) an SFT answer must reach
    # ... and the least each of these criteria must reach: a fluent, helpful-looking answer that the judge
    # finds ungrounded or wrong is not kept however high its mean (Nemotron-style per-attribute filtering)
    judge_min_scores: dict[str, float] = field(default_factory=lambda: {"grounded": 3.0, "correct": 3.0})
    # a chunk whose topic list the teacher botched still gets questions, about its heading
    heading_topic_fallback: bool = True
    # answer sample 0 is greedy (small teachers are far more extractive without sampling), the rest sampled
    greedy_first_answer: bool = True
    preference_margin: float = 1.0        # chosen mean - rejected mean, at least
    near_dup_threshold: float = 0.8       # Jaccard of word 3-gram shingles between two questions of one kind
    # form checks of every topic, question and answer (quarantined with the reason when they fail)
    form_checks: bool = True
    # the chain's own grounding criterion beside the judge: an answer whose claims its chunk does not support
    # (or contradicts) scores grounded = 1; min_support: the share of a claim's new words its evidence must cover
    support_check: bool = True
    min_support: float = 0.75
    prompt_version: str = "v1"
    # answers in the form and length of benchmark references: qa in a few words ("Worn spindle bearings."), not one
    # or two sentences, and summaries in one sentence naming what happened, its cause and its fix (the answer
    # prompt's `qa_short` / `summarization_short` formats). F1 and ROUGE-L count words: a right answer padded with
    # sentences scores like a wrong one.
    short_answers: bool = False
    prompts_dir: str = ""                 # empty = the packaged prompts (curation/synthetic/prompts)
    seed: int = 0
    temperature: float = 0.7              # questions and answers
    top_p: float = 0.95
    max_tokens: int = 256                 # questions and answers
    topics_max_tokens: int = 96
    judge_temperature: float = 0.0
    judge_max_tokens: int = 64
    quarantine_raw_chars: int = 500       # raw replies are truncated to this in the quarantine


@dataclass
class ChainResult:
    sft: list[dict] = field(default_factory=list)          # TRL {"messages": [user, assistant]} + provenance
    # TRL conversational form: {"prompt": [user], "chosen": [assistant], "rejected": [assistant]} + provenance
    preferences: list[dict] = field(default_factory=list)
    quarantine: list[dict] = field(default_factory=list)   # {stage, reason, chunk_id, raw, ...}
    items: list[dict] = field(default_factory=list)        # every question with its scored answers (or benchmark items)
    stats: dict = field(default_factory=dict)


def _id(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16]


def deduplicate(rows: list[dict], text: Callable[[dict], str], threshold: float = 0.8,
                kind: Callable[[dict], str] = lambda r: r.get("kind", ""),
                ) -> tuple[list[dict], list[tuple[dict, str]]]:
    """(kept rows, [(dropped row, id of the kept row it repeats)]): exact, then near duplicates per kind.

    Near duplicates: Jaccard similarity of word 3-gram shingles >= `threshold`. MinHash LSH only
    proposes candidates (at a lower threshold, so few are missed); the exact Jaccard decides. The
    first row of a group is kept, so the order of `rows` decides which one survives. Also usable
    on merged SFT rows of several partitions: `text=lambda r: r["messages"][0]["content"]`.
    """
    from datasketch import MinHash, MinHashLSH

    kept: list[dict] = []
    dropped: list[tuple[dict, str]] = []
    by_kind: dict[str, tuple[dict, MinHashLSH, dict]] = {}
    for row in rows:
        k = kind(row)
        if k not in by_kind:
            by_kind[k] = ({}, MinHashLSH(threshold=max(0.05, threshold * 0.6), num_perm=64), {})
        exact, lsh, sigs = by_kind[k]
        key = normalize(text(row))
        if key in exact:
            dropped.append((row, exact[key]))
            continue
        sh = shingles(text(row))
        m = MinHash(num_perm=64, seed=1)
        for s in sh:
            m.update(s.encode())
        near = sorted(c for c in lsh.query(m) if jaccard(sh, sigs[c]) >= threshold)
        if near:
            dropped.append((row, near[0]))
            continue
        row_id = row.get("id") or _id(k, key)
        exact[key] = row_id
        if row_id not in sigs:
            lsh.insert(row_id, m)
            sigs[row_id] = sh
        kept.append(row)
    return kept, dropped


class _Run:
    """State of one chain run: prompts, teachers, quarantine and counters."""

    def __init__(self, chunks, teacher, cfg, judge, answerer, log, benchmark: bool):
        self.chunks, self.teacher, self.cfg, self.log = chunks, teacher, cfg, log
        self.judge = judge or teacher
        self.answerer = answerer
        self.benchmark = benchmark
        self.prompts: PromptSet = load_prompts(cfg.prompt_version, cfg.prompts_dir)
        self.quarantine: list[dict] = []
        self.teachers = list({id(t): t for t in (teacher, self.judge, answerer) if t is not None}.values())
        self.before = [dict(t.stats) for t in self.teachers]
        self.started = time.perf_counter()
        self.questions_by_kind: Counter = Counter()
        self.topics_from_heading = 0

    def quarantined(self, stage: str, reason: str, chunk: Chunk, raw: str | None = None, **extra) -> None:
        self.quarantine.append({"id": _id(stage, reason, chunk.id, extra.get("kind", ""), extra.get("item_id", ""),
                                          extra.get("sample", ""), extra.get("topic", ""), raw or ""),
                                "stage": stage, "reason": reason, "chunk_id": chunk.id, "doc_id": chunk.doc_id,
                                "source": chunk.source, "raw": (raw or "")[: self.cfg.quarantine_raw_chars], **extra})

    def sampling(self, kind: str, seed_offset: int = 0) -> Sampling:
        c = self.cfg
        if kind == "judge":
            return Sampling(c.judge_temperature, c.top_p, c.judge_max_tokens, c.seed)
        if kind == "topics":
            return Sampling(c.temperature, c.top_p, c.topics_max_tokens, c.seed)
        return Sampling(c.temperature, c.top_p, c.max_tokens, c.seed + seed_offset)

    def call(self, teacher: Teacher, stage: str, prompts: list[list[dict]], sampling: list[Sampling] | Sampling):
        """Generate one stage's prompts in one call (mixed samplings go out together), results in prompt order."""
        t0 = time.perf_counter()
        out = teacher.generate(prompts, sampling)
        hits = sum(bool(c and c.cached) for c in out)
        self.log(f"synthetic: {stage}: {len(prompts)} prompts ({hits} from cache) in {time.perf_counter() - t0:.1f}s")
        return out

    # ------------------------------------------------------------------ stages
    def topics(self) -> list[tuple[Chunk, str]]:
        c = self.cfg
        msgs = [self.prompts.messages("topics", n=c.topics_per_chunk, heading=ch.heading, passage=ch.text)
                for ch in self.chunks]
        out = []
        for ch, comp in zip(self.chunks, self.call(self.teacher, "topics", msgs, self.sampling("topics"))):
            if comp.text is None:
                self.quarantined("topics", "teacher_error", ch, comp.error)
                continue
            try:
                topics = parse_topics(comp.text, c.topics_per_chunk)
            except ParseError as e:
                self.quarantined("topics", e.reason, ch, comp.text)
                topics = []
            vocab = set(content_words(ch.text + " " + ch.heading))
            kept = 0
            for t in topics:
                problem = topic_problem(t) if c.form_checks else None
                if problem:
                    self.quarantined("topics", problem, ch, comp.text, topic=t)
                elif set(content_words(t)) & vocab:
                    out.append((ch, t))
                    kept += 1
                else:
                    self.quarantined("topics", "off_topic", ch, comp.text, topic=t)
            if not kept and c.heading_topic_fallback and ch.heading.strip():
                self.topics_from_heading += 1
                out.append((ch, ch.heading.strip()))
        return out

    def questions(self, topics: list[tuple[Chunk, str]]) -> list[dict]:
        c = self.cfg
        jobs = [(ch, t, kind, q) for ch, t in topics for kind in c.kinds for q in range(c.questions_per_topic)]
        msgs = [self.prompts.messages(f"question_{kind}", topic=t, heading=ch.heading, passage=ch.text)
                for ch, t, kind, _ in jobs]
        samplings = [self.sampling("question", q) for *_, q in jobs]
        items = []
        for (ch, topic, kind, q), comp in zip(jobs, self.call(self.teacher, "questions", msgs, samplings)):
            self.questions_by_kind[kind] += 1
            if comp.text is None:
                self.quarantined("question", "teacher_error", ch, comp.error, kind=kind, topic=topic)
                continue
            try:
                item = self._parse_question(kind, comp.text, ch)
            except ParseError as e:
                self.quarantined("question", e.reason, ch, comp.text, kind=kind, topic=topic)
                continue
            if not set(content_words(item["dedup_text"])) & set(content_words(ch.text)):
                self.quarantined("question", "off_topic", ch, comp.text, kind=kind, topic=topic)
                continue
            problem = self._form_problem(kind, item) if c.form_checks else None
            if problem:
                self.quarantined("question", problem, ch, comp.text, kind=kind, topic=topic)
                continue
            item.update(id=_id(ch.id, kind, normalize(item["user"])), kind=kind, topic=topic, chunk_id=ch.id,
                        doc_id=ch.doc_id, source=ch.source, chunk=ch)
            items.append(item)
        return self.dedup(items)

    def _parse_question(self, kind: str, text: str, ch: Chunk) -> dict:
        p = self.prompts
        if kind == "mcq":
            question, options, key = parse_mcq(text)
            opts = "\n".join(f"{'ABCD'[k]}) {o}" for k, o in enumerate(options))
            return {"question": question, "options": options, "key": key, "dedup_text": question,
                    "user": p.sft_user("mcq", question=question, options=opts)}
        if kind == "qa":
            question = parse_question(text)
            return {"question": question, "dedup_text": question, "user": p.sft_user("qa", question=question)}
        if kind == "completion":
            context, ending, wrong = parse_completion(text)
            if self.cfg.form_checks:  # a wrong ending that is a Markdown fragment would give itself away
                wrong = [w for w in wrong if not markup_fragment(w)]
            if self.benchmark and len(wrong) < 3:
                raise ParseError("wrong_option_count", f"{len(wrong)} wrong endings")
            return {"context": context, "ending": ending, "wrong_endings": wrong[:3], "dedup_text": context,
                    "user": p.sft_user("completion", context=context)}
        if kind == "summarization":
            request = parse_request(text)
            return {"request": request, "dedup_text": request,
                    "user": p.sft_user("summarization", request=request, passage=ch.text)}
        raise ValueError(f"unknown kind {kind!r}")

    @staticmethod
    def _form_problem(kind: str, item: dict) -> str | None:
        """The reason an item of this kind fails its form check, None when it passes."""
        if kind == "mcq":
            return question_problem(item["question"]) or options_problem(item["options"])
        if kind == "qa":
            return question_problem(item["question"])
        if kind == "completion":
            return completion_problem(item["context"], item["ending"])
        return request_problem(item["request"])

    def dedup(self, items: list[dict]) -> list[dict]:
        """Drop exact, then near-duplicate questions within each kind (first one kept, in chunk order)."""
        kept, dropped = deduplicate(items, text=lambda it: it["dedup_text"], threshold=self.cfg.near_dup_threshold)
        for it, first in dropped:
            self.quarantined("question", "duplicate", it["chunk"], it["dedup_text"], kind=it["kind"],
                             item_id=it["id"], duplicate_of=first)
        return kept

    def _answer_format(self, kind: str) -> str:
        if self.cfg.short_answers and self.prompts.answer_format.get(f"{kind}_short"):
            return self.prompts.answer_format[f"{kind}_short"]
        return self.prompts.answer_format[kind]

    def answers(self, items: list[dict], n: int, greedy: bool = False) -> None:
        jobs = [(it, s) for it in items for s in range(n)]
        if self.answerer is not None:  # on-policy: the model answers the question as a user would ask it
            teacher, msgs = self.answerer, [[{"role": "user", "content": it["user"]}] for it, _ in jobs]
        else:
            teacher = self.teacher
            msgs = [self.prompts.messages("answer", heading=it["chunk"].heading, passage=it["chunk"].text,
                                          question=it["user"], answer_format=self._answer_format(it["kind"]))
                    for it, _ in jobs]
        greedy_sample = lambda s: greedy or (self.cfg.greedy_first_answer and s == 0)  # noqa: E731
        samplings = [Sampling(0.0, self.cfg.top_p, self.cfg.max_tokens, self.cfg.seed) if greedy_sample(s)
                     else self.sampling("answer", s) for _, s in jobs]
        for it in items:
            it["answers"] = []
        for (it, s), comp in zip(jobs, self.call(teacher, "answers", msgs, samplings)):
            if comp.text is None:
                self.quarantined("answer", "teacher_error", it["chunk"], comp.error, kind=it["kind"],
                                 item_id=it["id"], sample=s)
                continue
            text = parse_answer(comp.text) if comp.text.strip() else ""
            if not text:
                self.quarantined("answer", "empty", it["chunk"], comp.text, kind=it["kind"], item_id=it["id"], sample=s)
                continue
            problem = answer_problem(it["kind"], text) if self.cfg.form_checks else None
            if problem:
                self.quarantined("answer", problem, it["chunk"], comp.text, kind=it["kind"], item_id=it["id"], sample=s)
                continue
            it["answers"].append({"sample": s, "text": text, "model": teacher.model_name})

    def judge_answers(self, items: list[dict]) -> None:
        jobs = [(it, a) for it in items for a in it["answers"]]
        msgs = [self.prompts.messages("judge", heading=it["chunk"].heading, passage=it["chunk"].text,
                                      question=it["user"], answer=a["text"]) for it, a in jobs]
        for (it, a), comp in zip(jobs, self.call(self.judge, "judge", msgs, self.sampling("judge"))):
            try:
                if comp.text is None:
                    raise ParseError("teacher_error", comp.error or "")
                scores = parse_judge(comp.text)
            except ParseError as e:
                self.quarantined("judge", e.reason, it["chunk"], comp.text if comp.text is not None else comp.error,
                                 kind=it["kind"], item_id=it["id"], sample=a["sample"])
                continue
            if it["kind"] == "mcq" and answer_letter(a["text"]) != it["key"]:
                scores["correct"] = 1  # the answer picks another option than the question's key
            if self.cfg.support_check:
                support = self.support(it, a["text"])
                a["support"] = support.score
                if not support.ok:  # whatever the judge said, the chunk does not back this answer
                    scores["grounded"] = 1
                    a["unsupported"] = SUPPORT_REASONS[support.reason]
            a["scores"] = scores
            a["mean"] = round(sum(scores.values()) / len(scores), 3)

    def support(self, it: dict, answer: str):
        """The chain's grounding criterion for one answer of an item (see `checks.claim_support`)."""
        ch, kind = it["chunk"], it["kind"]
        if kind == "completion":  # the claim is the whole sentence, beginning and ending
            return claim_support(f"{it['context']} {answer}", ch.text, kind=kind, heading=ch.heading,
                                 min_support=self.cfg.min_support)
        if kind == "summarization":
            return claim_support(answer, ch.text, kind=kind, heading=ch.heading, min_support=self.cfg.min_support)
        if kind == "mcq":  # the chosen option (and any explanation) against the question's stem
            letter = answer_letter(answer)
            text = answer
            if letter is not None and re.match(r"^\s*\(?[A-Da-d][\).:]?\s*$", answer):
                text = it["options"][letter]  # a bare letter stands for its option
            return claim_support(text, ch.text, question=it["question"], kind=kind, heading=ch.heading,
                                 min_support=self.cfg.min_support)
        return claim_support(answer, ch.text, question=it["question"], kind=kind, heading=ch.heading,
                             min_support=self.cfg.min_support)

    def stats(self, items: list[dict], accepted: Counter, extra: dict) -> dict:
        totals = Counter()
        for t, before in zip(self.teachers, self.before):
            for k, v in t.stats.items():
                totals[k] += v - before.get(k, 0)
        judged = [a for it in items for a in it.get("answers", []) if "scores" in a]
        hist = Counter(str(int(round(a["mean"]))) for a in judged)
        per_criterion = {k: round(sum(a["scores"][k] for a in judged) / len(judged), 3) if judged else None
                         for k in RUBRIC}
        return {
            "chunks": len(self.chunks), "requests": totals["requests"], "cache_hits": totals["cache_hits"],
            "prompt_tokens": totals["prompt_tokens"], "completion_tokens": totals["completion_tokens"],
            "retries": totals["retries"], "request_errors": totals["errors"],
            "topics_from_heading": self.topics_from_heading,
            "questions_by_kind": dict(self.questions_by_kind), "accepted_by_kind": dict(accepted),
            "acceptance_rate_by_kind": {k: round(accepted[k] / n, 3) if n else 0.0
                                        for k, n in self.questions_by_kind.items()},
            "judge_mean_histogram": {k: hist.get(k, 0) for k in "12345"}, "judge_mean_by_criterion": per_criterion,
            "quarantine_by_reason": dict(Counter(q["reason"] for q in self.quarantine)),
            "quarantined": len(self.quarantine), "duplicates_removed": sum(q["reason"] == "duplicate"
                                                                           for q in self.quarantine),
            "teacher_model": self.teacher.model_name, "judge_model": self.judge.model_name,
            "answer_model": (self.answerer or self.teacher).model_name,
            "prompt_version": self.prompts.version, "prompt_sha": self.prompts.sha,
            "elapsed_s": round(time.perf_counter() - self.started, 2), **extra}

    def provenance(self, it: dict) -> dict:
        return {"id": it["id"], "doc_id": it["doc_id"], "source": it["source"], "chunk_id": it["chunk_id"],
                "kind": it["kind"], "topic": it["topic"], "teacher_model": self.teacher.model_name,
                "judge_model": self.judge.model_name, "prompt_version": self.prompts.version,
                "prompt_sha": self.prompts.sha}


def passes_judge(answer: dict, cfg: ChainConfig) -> bool:
    """The judged answer's mean reaches the threshold and each floored criterion its floor."""
    scores = answer.get("scores") or {}
    return answer["mean"] >= cfg.judge_threshold and all(
        scores.get(name, 0) >= floor for name, floor in cfg.judge_min_scores.items() if name in scores)


def _public(it: dict) -> dict:
    return {k: v for k, v in it.items() if k != "chunk"}


def run_chain(chunks: list[Chunk], teacher: Teacher, cfg: ChainConfig = ChainConfig(), judge: Teacher | None = None,
              answerer: Teacher | None = None, log: Callable[[str], None] = print) -> ChainResult:
    """SFT conversations and preference pairs from generation chunks (see the module docstring)."""
    run = _Run(chunks, teacher, cfg, judge, answerer, log, benchmark=False)
    log(f"synthetic: {len(chunks)} chunks, kinds {list(cfg.kinds)}, teacher {teacher.model_name}, "
        f"judge {run.judge.model_name}, prompts {run.prompts.version}")
    items = run.questions(run.topics())
    run.answers(items, cfg.answers_per_question)
    run.judge_answers(items)
    sft, prefs, accepted = [], [], Counter()
    for it in items:
        scored = sorted((a for a in it["answers"] if "scores" in a), key=lambda a: (-a["mean"], a["sample"]))
        if not scored:
            it["status"] = "no_judged_answer"
            continue
        best, worst = scored[0], scored[-1]
        if not passes_judge(best, cfg):
            reason = best.get("unsupported") or "below_threshold"
            it["status"] = reason
            run.quarantined("judge", reason, it["chunk"], best["text"], kind=it["kind"], item_id=it["id"],
                            judge_scores=best["scores"], judge_mean=best["mean"])
            continue
        it["status"] = "accepted"
        accepted[it["kind"]] += 1
        prov = run.provenance(it)
        sft.append({"messages": [{"role": "user", "content": it["user"]},
                                 {"role": "assistant", "content": best["text"]}],
                    **prov, "answer_model": best["model"], "judge_scores": best["scores"], "judge_mean": best["mean"],
                    "support": best.get("support")})
        if len(scored) > 1 and best["mean"] - worst["mean"] >= cfg.preference_margin \
                and normalize(best["text"]) != normalize(worst["text"]):
            prefs.append({"prompt": [{"role": "user", "content": it["user"]}],
                          "chosen": [{"role": "assistant", "content": best["text"]}],
                          "rejected": [{"role": "assistant", "content": worst["text"]}],
                          **prov, "answer_model": best["model"],
                          "chosen_scores": best["scores"], "chosen_mean": best["mean"],
                          "rejected_scores": worst["scores"], "rejected_mean": worst["mean"]})
    stats = run.stats(items, accepted, {"sft_conversations": len(sft), "preference_pairs": len(prefs)})
    log(f"synthetic: {len(sft)} SFT conversations, {len(prefs)} preference pairs, {len(run.quarantine)} quarantined "
        f"{stats['quarantine_by_reason']}; {stats['requests']} requests, {stats['cache_hits']} cache hits")
    return ChainResult(sft=sft, preferences=prefs, quarantine=run.quarantine, items=[_public(i) for i in items],
                       stats=stats)


def generate_benchmark_items(chunks: list[Chunk], teacher: Teacher, cfg: ChainConfig = ChainConfig(),
                             judge: Teacher | None = None, log: Callable[[str], None] = print) -> ChainResult:
    """Benchmark items from HELD-OUT chunks, one row per kept question in its kind's JSONL schema.

    The reference answer is the teacher's greedy answer; the judge must rate it above the
    threshold, and for multiple choice it must pick the question's own key (a second reading
    that catches wrong keys). Then the options of multiple-choice and completion items are
    rebuilt so that only knowledge tells them apart (`evaluation.benchmark_items`): distractors
    of the key's type and length from the teacher and the item's own document, the item
    quarantined (stage "options") when a blind rule could still pick its key. Choices/endings are
    ordered by a seeded hash, so the correct position is not always the same.
    """
    from evaluation.benchmark_items import OptionBuilder
    from evaluation.baselines import baseline_summary

    options = OptionBuilder(chunks, seed=cfg.seed)
    run = _Run(chunks, teacher, cfg, judge, None, log, benchmark=True)
    log(f"synthetic benchmark: {len(chunks)} held-out chunks, kinds {list(cfg.kinds)}")
    items = run.questions(run.topics())
    run.answers(items, 1, greedy=True)
    run.judge_answers(items)
    rows, accepted = [], Counter()
    for it in items:
        a = next((a for a in it["answers"] if "scores" in a), None)
        if a is None:
            it["status"] = "no_judged_answer"
            continue
        if it["kind"] == "mcq" and answer_letter(a["text"]) != it["key"]:
            it["status"] = "answer_disagrees_with_key"
            run.quarantined("judge", "answer_disagrees_with_key", it["chunk"], a["text"], kind="mcq", item_id=it["id"])
            continue
        if not passes_judge(a, cfg):
            it["status"] = "below_threshold"
            run.quarantined("judge", "below_threshold", it["chunk"], a["text"], kind=it["kind"], item_id=it["id"],
                            judge_scores=a["scores"], judge_mean=a["mean"])
            continue
        prov = {**run.provenance(it), "judge_scores": a["scores"], "judge_mean": a["mean"]}
        if it["kind"] in ("mcq", "completion"):
            mcq = it["kind"] == "mcq"
            asked, key = (it["question"], it["options"][it["key"]]) if mcq else (it["context"], it["ending"])
            wrong = [o for k, o in enumerate(it["options"]) if k != it["key"]] if mcq else it["wrong_endings"]
            built = options.build(asked, key, wrong, it["chunk"], item_id=it["id"], completion=not mcq)
            if built.rejected:
                it["status"] = "options_rejected"
                run.quarantined("options", built.reason, it["chunk"], key, kind=it["kind"], item_id=it["id"])
                continue
            prov["distractor_sources"] = built.sources
            body = ({"question": asked, "choices": built.options, "answer": built.answer} if mcq else
                    {"context": asked, "endings": built.options, "label": built.answer})
        elif it["kind"] == "qa":
            body = {"question": it["question"], "answers": [a["text"]]}
        else:
            body = {"document": it["chunk"].text, "summary": a["text"]}
        it["status"] = "accepted"
        accepted[it["kind"]] += 1
        rows.append({**body, **prov})
    blind = {kind: baseline_summary([r for r in rows if r["kind"] == kind]) for kind in ("mcq", "completion")}
    stats = run.stats(items, accepted, {"benchmark_items": len(rows),
                                        "items_by_kind": dict(Counter(r["kind"] for r in rows)),
                                        "blind_baselines": {k: {rule: v["acc"] for rule, v in b.items()}
                                                            for k, b in blind.items() if b}})
    log(f"synthetic benchmark: {len(rows)} items {stats['items_by_kind']}, {len(run.quarantine)} quarantined")
    return ChainResult(items=rows, quarantine=run.quarantine, stats=stats)
