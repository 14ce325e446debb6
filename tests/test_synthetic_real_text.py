"""Synthetic data from real documentation: Markdown read as text, real questions of real sentences, a judge that
rejects ungrounded answers whatever the teacher, and a failed blocking check that keeps its batch out of later runs.

Inputs: tests/fixtures/printer_docs (fictional docs written for these tests, in the shape of a hardware-control
program's Markdown: hard-wrapped lines, links that wrap, code spans, a table, admonitions, a long command
reference) and tests/fixtures/real_docs/httpx (sixteen pages of the httpx documentation, BSD-3, see its LICENSE.md).
"""
import re
from pathlib import Path

import dagster as dg
import pytest

from curation.seed import chunk_documents, plain_markdown, read_seed_documents
from curation.synthetic.base import Completion, Sampling, Teacher
from curation.synthetic.chain import ChainConfig, run_chain
from curation.synthetic.checks import (answer_problem, claim_support, completion_problem, options_problem,
                                       question_problem, request_problem)
from curation.synthetic.grounding import answer_supported_by_chunk
from curation.synthetic.rules import RulesTeacher

FIXTURES = Path(__file__).parent / "fixtures"
PRINTER = FIXTURES / "printer_docs"
HTTPX = FIXTURES / "real_docs" / "httpx"
QUIET = lambda msg: None  # noqa: E731


def _md_sources(folder: Path) -> list[str]:
    return [p.read_text() for p in sorted(folder.rglob("*.md"))]


def _wrapped_lines(folder: Path) -> set[str]:
    """Lines of Markdown paragraphs that the next line continues: never a heading, never a topic."""
    out = set()
    for text in _md_sources(folder):
        lines = text.split("\n")
        fence = False
        for line, nxt in zip(lines, lines[1:] + [""]):
            if line.strip().startswith("```"):
                fence = not fence
            if fence or not line.strip() or line.lstrip().startswith(("#", "-", "*", "|", "!", "`")):
                continue
            if nxt.strip() and not re.match(r"^\s*(=+|-+|#|[-*]\s|\||```)", nxt):
                out.add(plain_markdown(line).strip())
    return out


def _headings(folder: Path) -> set[str]:
    out = set()
    for text in _md_sources(folder):
        lines = text.split("\n")
        for line, nxt in zip(lines, lines[1:] + [""]):
            if m := re.match(r"^#{1,6}\s+(.+?)\s*$", line):
                out.add(m.group(1))
            elif line.strip() and re.match(r"^(=+|-+)\s*$", nxt):
                out.add(line.strip())
    return out


@pytest.fixture(scope="module", params=["printer", "httpx"])
def real_run(request):
    folder = PRINTER if request.param == "printer" else HTTPX
    docs, _ = read_seed_documents(folder)
    chunks = chunk_documents(docs, max_words=120 if request.param == "printer" else 200, min_words=20)
    return folder, docs, chunks, run_chain(chunks, RulesTeacher(), ChainConfig(topics_per_chunk=3), log=QUIET)


def test_markdown_is_read_as_text_and_a_hard_wrapped_line_is_never_a_heading(tmp_path):
    docs, skipped = read_seed_documents(PRINTER)
    assert sorted(d.source for d in docs) == ["Bed_Level.md", "FAQ.md", "G-Codes.md"] and skipped["unsupported"] == 1
    bed = next(d for d in docs if d.source == "Bed_Level.md")
    # a link that wraps over two lines becomes its text; code spans stay; the table stays for a reader
    assert "See the leveling guide and command\nreference for the details" in bed.text
    assert "](" not in bed.text and "`BED_MESH_CALIBRATE`" in bed.text and "| `probe_count` | 3,3 |" in bed.text
    faq = next(d for d in docs if d.source == "FAQ.md")
    assert "!!! note" not in faq.text and "A Raspberry Pi 3 has enough processing power" in faq.text
    chunks = chunk_documents(docs, max_words=120, min_words=20)
    real = _headings(PRINTER)
    for c in chunks:  # every heading of the path is a real heading of the document
        assert all(h in real for h in c.heading.split(" > ")), c.heading
    # the same in a plain-text file: the first line of a hard-wrapped paragraph is body text
    (tmp_path / "notes.txt").write_text("Pump notes\n\nThen clone your fork with the following command replacing\n"
                                        "the user name with yours before you start.\n\n2.1 Seal leaks\nA steady "
                                        "stream means the faces are worn.\n")
    plain, _ = read_seed_documents(tmp_path)
    headings = {h for c in chunk_documents(plain, 25, 1) for h in c.heading.split(" > ")}
    assert headings == {"Pump notes", "2.1 Seal leaks"}


def test_every_kept_item_is_a_real_question_of_real_text_and_passes_its_form_check(real_run):
    folder, docs, chunks, r = real_run
    assert len(r.sft) >= 2 * len(chunks) and r.preferences
    assert {row["kind"] for row in r.sft} == {"mcq", "qa", "completion", "summarization"}
    wrapped = _wrapped_lines(folder)
    by_id = {c.id: c for c in chunks}
    for it in r.items:  # no topic is a fragment of a hard-wrapped line; each is named in its chunk
        topic = it["topic"]
        assert topic not in wrapped and not any(w.startswith(topic) and len(topic.split()) > 3 for w in wrapped), topic
        where = " ".join((by_id[it["chunk_id"]].text + " " + by_id[it["chunk_id"]].heading).split()).lower()
        assert topic.lower().rstrip("?") in where, topic
    items = {it["id"]: it for it in r.items}
    for row in r.sft:
        it, answer = items[row["id"]], row["messages"][1]["content"]
        if row["kind"] == "mcq":
            assert question_problem(it["question"]) is None and options_problem(it["options"]) is None, it
        elif row["kind"] == "qa":
            assert question_problem(it["question"]) is None, it["question"]
        elif row["kind"] == "completion":
            assert completion_problem(it["context"], it["ending"]) is None, (it["context"], it["ending"])
        else:
            assert request_problem(it["request"]) is None, it["request"]
        assert answer_problem(row["kind"], answer) is None, answer
        for text in (it.get("question") or it.get("context") or it.get("request"), answer):
            assert "](" not in text and not re.search(r"\]\(|https?://\S+\)", text), text
        # the blocking gate (another method) finds nothing to block in this healthy run
        question = "" if row["kind"] == "summarization" else row["messages"][0]["content"]
        assert answer_supported_by_chunk(answer, by_id[row["chunk_id"]].text, question=question)[0], row


def test_answers_on_the_printer_faq_say_what_the_document_says():
    docs, _ = read_seed_documents(PRINTER)
    r = run_chain(chunk_documents(docs, max_words=120, min_words=20), RulesTeacher(), ChainConfig(kinds=("qa",)),
                  log=QUIET)
    qa = {row["messages"][0]["content"]: row["messages"][1]["content"] for row in r.sft if row["kind"] == "qa"}
    assert "Sponsors page" in qa["How can I donate to the project?"]
    assert qa["Can I run multiple instances on one computer?"].startswith("Yes, it is possible to run multiple")
    assert "`ls /dev/serial/by-id/*`" in qa["How do I find the serial port?"]


class SmolLikeTeacher(Teacher):
    """A small model's failure modes: fluent hallucinated answers, and a judge that rates everything 5.

    It writes the rules teacher's topics and questions; its greedy answer (sample 0) is the scripted
    hallucination when the question has one, its other samples the rules teacher's best answer."""

    model_name = "smol-like"
    HALLUCINATIONS = {
        "How can I donate to the project?": "To donate to the project, you need to know the serial port.",
        "Can I run multiple instances on one computer?":
            "No, you cannot run multiple instances of the host software on a Raspberry Pi 3.",
        "How do I find the serial port?": "Run the `SAVE_CONFIG` command and restart the host software.",
    }

    def __init__(self):
        super().__init__()
        self.rules = RulesTeacher()

    def observe(self, prompts):
        self.rules.observe(prompts)

    def _complete(self, prompts, sampling):
        for i, p in enumerate(prompts):
            text = p[-1]["content"]
            if "Task: grade the answer" in text:
                yield i, Completion(text="Grounded: 5\nCorrect: 5\nHelpful: 5\nWell-formed: 5")
                continue
            q = re.search(r"\nQuestion: (.+?)\n", text)
            if "Task: answer the question" in text and q and q.group(1) in self.HALLUCINATIONS and sampling.seed == 0 \
                    and sampling.temperature == 0:
                yield i, Completion(text=self.HALLUCINATIONS[q.group(1)])
                continue
            if "Task: answer the question" in text:
                sampling = Sampling(temperature=0.0, max_tokens=sampling.max_tokens, seed=sampling.seed)
            yield i, Completion(text=self.rules.reply(text, sampling))


def test_the_chain_rejects_hallucinated_answers_that_a_lenient_judge_passes():
    docs, _ = read_seed_documents(PRINTER)
    # the whole FAQ in one chunk: the serial port is in the chunk, just not in the answer to a donation question
    chunks = [c for c in chunk_documents(docs, max_words=400, min_words=20) if c.source == "FAQ.md"]
    assert len(chunks) == 1 and "serial port" in chunks[0].text
    cfg = ChainConfig(kinds=("qa",), topics_per_chunk=4, answers_per_question=2)
    r = run_chain(chunks, SmolLikeTeacher(), cfg, log=QUIET)
    kept = {row["messages"][0]["content"]: row["messages"][1]["content"] for row in r.sft}
    for question, made_up in SmolLikeTeacher.HALLUCINATIONS.items():
        assert question in kept and kept[question] != made_up  # the grounded sample wins, whatever the judge said
    text = " ".join(kept.values())
    assert "need to know the serial port" not in text and "cannot run multiple" not in text
    # the hallucinations are the rejected side of preference pairs, judged grounded = 1 by the chain's criterion
    rejected = {p["prompt"][0]["content"]: p for p in r.preferences}
    for question, made_up in SmolLikeTeacher.HALLUCINATIONS.items():
        assert rejected[question]["rejected"][0]["content"] == made_up
        assert rejected[question]["rejected_scores"]["grounded"] == 1
    # with only the hallucinated answer, the question is quarantined with the reason
    alone = run_chain(chunks, SmolLikeTeacher(), ChainConfig(kinds=("qa",), topics_per_chunk=4,
                                                             answers_per_question=1), log=QUIET)
    reasons = {alone_q["raw"]: alone_q["reason"] for alone_q in alone.quarantine if alone_q["stage"] == "judge"}
    assert reasons[SmolLikeTeacher.HALLUCINATIONS["How can I donate to the project?"]] == "answer_off_question"
    assert reasons[SmolLikeTeacher.HALLUCINATIONS["Can I run multiple instances on one computer?"]] == \
        "contradicts_chunk"
    assert reasons[SmolLikeTeacher.HALLUCINATIONS["How do I find the serial port?"]] in ("unsupported_by_chunk",
                                                                                         "answer_off_question")
    assert not [row for row in alone.sft if row["messages"][1]["content"] in SmolLikeTeacher.HALLUCINATIONS.values()]


def test_form_checks_reject_what_a_template_made_of_fragments_writes():
    bad_questions = ["Which statement about if using the TMC2208 (or TMC2224) driver in  is true?",
                     "What is the for more information run for see the in debugging?",
                     "Which statement about then clone your fork with the following command replacing "
                     "`YOUR-USERNAME` with is true?",
                     "Which statement about HTTP/2 support is available on both `Client` and `AsyncClient`, "
                     "although it's is true?",
                     "Which statement about why use a Client? is true?",
                     "What does [the guide](Bed_Level.md) say?", "Describe the bed mesh.", "Which one?"]
    assert all(question_problem(q) for q in bad_questions)
    for good in ("How can I donate to the project?", "What is the most likely cause of chatter marks?",
                 "Can I run multiple instances of the host software on a Raspberry Pi 3?",
                 "What is `max_connections`?"):
        assert question_problem(good) is None, good
    assert completion_problem("See the [leveling guide](Bed_Level.md) and [command",
                              "reference](G-Codes.md#bed_mesh).") == "markup_fragment"
    assert completion_problem("When a request is made to a host that is found in the netrc",
                              "file, the username and password will be included.") == "bad_cut"
    assert completion_problem("Cookies are returned in a `Cookies` instance,",
                              "which is a dict-like data structure.") is None
    assert completion_problem("Set the", "fan speed.") == "short_half"
    assert options_problem(["Your GitHub username:", "a", "b", "c"]) == "fragment_option"
    assert answer_problem("summarization", "of the following ways:") == "lead_in_answer"
    assert answer_problem("summarization", "Bed leveling compensates for a print bed. It supports") == \
        "not_whole_sentences"
    assert answer_problem("qa", "How can I donate to the project?") == "question_as_answer"
    assert request_problem("Summarize what the passage says about we differ in behaviour here [because") is not None


def test_the_chains_criterion_and_the_gate_read_real_markdown():
    chunk = ("Set heater temperature\n\n`SET_HEATER_TEMPERATURE HEATER=<name> [TARGET=<t>]`: Sets the target\n"
             "temperature for a heater. If a target temperature is not supplied, the target is 0.\n\n"
             "See the [leveling guide](Bed_Level.md) and [command\nreference](G-Codes.md#bed_mesh) for details.\n\n"
             "| Parameter | Default |\n|---|---|\n| `speed` | 50 |\n")
    q = "What is the target when no target temperature is supplied?\nA) To 100.\nB) To 50.\nC) To 0.\nD) To 5."
    assert answer_supported_by_chunk("C) To 0.", chunk, question=q)[0]  # a digit is a word the chunk has
    assert answer_supported_by_chunk("See the leveling guide and command reference for details.", chunk)[0]
    assert answer_supported_by_chunk("Yes, the target is 0 if a target temperature is not supplied.", chunk)[0]
    assert claim_support("C) To 0.", chunk, question=q.split("\n")[0], kind="mcq").ok
    assert claim_support("See the leveling guide and command reference for details.", chunk).ok
    # the polarity of the clause that says it: "is not supplied" against "is supplied"
    v = claim_support("If a target temperature is supplied, the target is 0.", chunk)
    assert not v.ok and v.reason == "contradicts_chunk"
    assert claim_support("`speed` defaults to 50.", chunk).ok  # a table row is evidence, not a sentence to ask about


def test_a_failed_blocking_check_keeps_its_batch_out_of_every_later_read(tmp_path, monkeypatch):
    from assets import seed as seed_assets
    from assets import synthetic as synthetic_assets
    from assets.partitions import SEED_BATCHES
    from assets.storage import ModelworksStorage
    from assets.synthetic import read_audit, read_synthetic
    from assets.teacher import TeacherResource
    from curation.seed import seed_batch

    storage = ModelworksStorage(root=str(tmp_path / "home"))
    resources = {"storage": storage, "teacher": TeacherResource()}
    instance = dg.DagsterInstance.ephemeral()
    seed = {"ops": {"seed_corpus": {"config": {"source_dir": str(PRINTER), "heldout_fraction": 0.0,
                                               "max_chunk_words": 300}}}}
    assert dg.materialize([seed_assets.seed_corpus], instance=instance, resources=resources, run_config=seed).success
    docs, _ = read_seed_documents(PRINTER)
    batch_of = {d.source: SEED_BATCHES[seed_batch(d.id, len(SEED_BATCHES))] for d in docs}
    batch = batch_of[docs[0].source]
    in_batch = {src for src, b in batch_of.items() if b == batch}

    def synthetic():  # what synthetic_job runs for one batch: the sets and their checks
        return dg.materialize([synthetic_assets.synthetic_data, synthetic_assets.synthetic_answers_supported_by_chunk,
                               synthetic_assets.synthetic_batch_yielded_items], partition_key=batch,
                              instance=instance, resources=resources, raise_on_error=False,
                              run_config={"ops": {"synthetic_data": {"config": {"topics_per_chunk": 1}}}})

    assert synthetic().success
    assert read_audit(storage, batch)["status"] == "passed"
    good = [r for r in read_synthetic(storage, "sft") if r["source"] in in_batch]
    assert good and Path(storage.synthetic("sft", batch)).exists()

    # The gate now finds an unsupported answer: the rematerialized batch fails its blocking check ...
    monkeypatch.setattr("curation.synthetic.grounding.answer_supported_by_chunk", lambda *a, **k: (False, 0.1))
    result = synthetic()
    assert not result.success
    evals = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert any(ev.check_name == "synthetic_answers_supported_by_chunk" and not ev.passed for ev in evals)
    # ... and every later read leaves the batch out (its earlier published version too), saying why
    left, logged = [], []
    for name in ("sft", "preferences"):
        rows = read_synthetic(storage, name, log=logged.append, left_out=left)
        assert not [r for r in rows if r["source"] in in_batch]
    assert {(x["batch"], x["status"]) for x in left if x["status"] != "missing"} == {(batch, "failed")}
    assert any(batch in m and "synthetic_answers_supported_by_chunk failed" in m for m in logged)
    assert Path(storage.synthetic("sft", batch)).exists()  # still on disk, but no longer read

    # Fixed: the next materialization passes its audit and publishes the batch again.
    monkeypatch.undo()
    assert synthetic().success
    assert [r for r in read_synthetic(storage, "sft") if r["source"] in in_batch] == good
