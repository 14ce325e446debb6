"""The guided chain against a live teacher: `transformers serve` on 127.0.0.1 serving the embedded SmolLM2.

One server for the module (started by `curation.synthetic.serve.serve_model`, stopped by pid).
The teacher reaches it through a small recording proxy on 127.0.0.1, which counts at the
server side which prompts were requested and answered, and can kill the server mid-run.
Sizes are tiny (one or a few chunks, few tokens) so the module stays within a few minutes on
2 busy cores.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from curation.seed import chunk_document, read_seed_documents
from curation.synthetic.chain import ChainConfig, run_chain
from curation.synthetic.serve import ServeConfig, TeacherServer, serve_model
from curation.synthetic.teacher import TeacherConfig, TeacherUnavailable, make_teacher

KEY_ENV = "MW_TEST_TEACHER_API_KEY"

SEED_MD = """# Centrifugal pump P-100 service manual

## Seal leaks

A steady drip at the shaft of the P-100 pump means the mechanical seal faces are worn. Stop the
pump, isolate it with the suction and discharge valves, and replace the seal cartridge. Check
that the shaft runout stays below 0.05 mm before fitting the new seal, because a bent shaft
wears a new seal within days.

## Cavitation noise

A rattling noise like gravel at the pump inlet is cavitation: the suction pressure has fallen
below the vapour pressure of the water. Open the suction valve fully, clean the inlet strainer
and check that the tank level is above the minimum mark. Running the pump while it cavitates
pits the impeller vanes.

## Bearing temperature

The drive-end bearing must stay below 80 degrees Celsius. A hotter bearing usually lacks grease
or has too much of it; add 10 grams of lithium grease every 2000 running hours and no more.
Replace a bearing that stays hot after greasing.

## Motor overload trips

If the motor overload relay trips at start, measure the current of each phase. A current more
than 10 percent above the nameplate value points to a seized impeller or a closed discharge
valve. Never reset the relay more than twice in a row: the motor windings overheat.
"""


def _request_key(body: dict) -> str:
    """What makes two requests the same prompt: messages and sampling (not the transport)."""
    keep = {k: body.get(k) for k in ("model", "messages", "temperature", "top_p", "max_tokens", "seed")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()


class RecordingProxy:
    """Forwards to the current upstream server, recording each chat request and whether it was answered.

    Once `kill_after` answers have been passed on to the client, the upstream server is killed
    (SIGKILL of its own process group), so "answered" means exactly: the client received it.
    """

    def __init__(self):
        self.upstream: TeacherServer | None = None
        self.requested: list[str] = []
        self.answered: list[str] = []
        self.headers_seen: list[str] = []
        self.kill_after: int | None = None
        self.killed = threading.Event()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output quiet
                pass

            def _forward(self, method: str) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if method == "POST" else None
                key = None
                if method == "POST" and self.path.endswith("/chat/completions"):
                    key = _request_key(json.loads(data))
                    with proxy._lock:
                        proxy.requested.append(key)
                        proxy.headers_seen.append(self.headers.get("Authorization", ""))
                up = proxy.upstream
                url = f"http://{up.host}:{up.port}{self.path}"
                req = urllib.request.Request(url, data=data, method=method,
                                             headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(req, timeout=600) as r:
                        status, body = r.status, r.read()
                except urllib.error.HTTPError as e:
                    status, body = e.code, e.read()
                except (urllib.error.URLError, OSError) as e:
                    status, body = 502, json.dumps({"error": f"upstream down: {type(e).__name__}"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                if key is not None and status == 200:
                    with proxy._lock:
                        proxy.answered.append(key)
                        n = len(proxy.answered)
                    if proxy.kill_after is not None and n >= proxy.kill_after and not proxy.killed.is_set():
                        proxy.killed.set()
                        up.kill()  # by the server's own pid (its process group)

            def do_GET(self):
                self._forward("GET")

            def do_POST(self):
                self._forward("POST")

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._http.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()

    def reset(self) -> None:
        with self._lock:
            self.requested, self.answered, self.headers_seen = [], [], []
            self.kill_after = None
            self.killed.clear()

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()


@pytest.fixture(scope="module")
def model_dir():
    from training.open_model import ensure_hf_model

    return ensure_hf_model("smollm2", Path(os.environ.get("MODELWORKS_OPEN_MODEL_DIR", "/tmp/mw_models/smollm2")))


@pytest.fixture(scope="module")
def secret_key():
    key = "sk-mw-" + secrets.token_hex(16)
    old = os.environ.get(KEY_ENV)
    os.environ[KEY_ENV] = key
    yield key
    if old is None:
        os.environ.pop(KEY_ENV, None)
    else:
        os.environ[KEY_ENV] = old


@pytest.fixture(scope="module")
def live(model_dir, tmp_path_factory):
    """One live server behind the recording proxy; tests may kill and restart it (same flags)."""
    logs = tmp_path_factory.mktemp("server-logs")
    state = {"logs": logs, "n": 0, "cfg": ServeConfig(view_root=str(logs.parent / "views"))}

    def start() -> TeacherServer:
        state["n"] += 1
        srv = serve_model(model_dir, log_path=logs / f"server-{state['n']}.log", cfg=state["cfg"])
        proxy.upstream = srv
        state["server"] = srv
        return srv

    proxy = RecordingProxy()
    state["proxy"], state["start"] = proxy, start
    start()
    try:
        yield state
    finally:
        state["server"].stop()
        proxy.close()


@pytest.fixture(scope="module")
def chunks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seed")
    (folder / "p100.md").write_text(SEED_MD, encoding="utf-8")
    docs, _ = read_seed_documents(folder)
    out = [c for d in docs for c in chunk_document(d, max_words=80, min_words=20)]
    assert len(out) >= 4, [c.heading for c in out]
    return out


def _teacher(live, cache_dir: Path, **kw):
    return make_teacher(TeacherConfig(backend="openai", base_url=live["proxy"].base_url,
                                      model=live["server"].model_name, cache_dir=str(cache_dir),
                                      max_concurrency=4, timeout_s=300, **kw))


SMALL = dict(kinds=("qa",), topics_per_chunk=1, questions_per_topic=1, answers_per_question=2, temperature=0.0,
             topics_max_tokens=24, max_tokens=40, judge_max_tokens=48, judge_threshold=1.0, preference_margin=0.0)


def keyed_chunks(chunks):
    # Every chunk of the page: which ones a 135M model answers with well-formed "Topic:" lines under greedy decoding
    # depends on the exact chunk text and the torch build; over all of them at least one gets through.
    return chunks


@pytest.fixture(scope="module")
def keyed_run(live, chunks, secret_key, tmp_path_factory):
    """One chain run on one chunk with an API key from the environment, logs and outputs captured."""
    out_dir = tmp_path_factory.mktemp("keyed")
    live["proxy"].reset()
    log_lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda rec: log_lines.append(handler.format(rec))  # type: ignore[method-assign]
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)  # the openai/httpx debug logs would show headers if anything did
    try:
        teacher = _teacher(live, out_dir / "cache", api_key_env=KEY_ENV)
        result = run_chain(keyed_chunks(chunks), teacher, ChainConfig(**SMALL), log=log_lines.append)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    for name, rows in (("sft", result.sft), ("preferences", result.preferences), ("quarantine", result.quarantine),
                       ("items", result.items)):
        (out_dir / f"{name}.jsonl").write_text("".join(json.dumps(r, default=str) + "\n" for r in rows))
    (out_dir / "stats.json").write_text(json.dumps(result.stats, default=str))
    return {"result": result, "teacher": teacher, "logs": log_lines, "out_dir": out_dir,
            "requested": list(live["proxy"].requested), "answered": list(live["proxy"].answered),
            "headers": list(live["proxy"].headers_seen), "server": live["server"]}


def test_chain_generates_items_end_to_end_through_the_openai_backend(keyed_run, chunks):
    result, teacher = keyed_run["result"], keyed_run["teacher"]
    # Every stage went to the live server: topics, questions, answers, judge verdicts.
    assert teacher.stats["errors"] == 0
    assert teacher.stats["requests"] == len(keyed_run["answered"]) == len(set(keyed_run["requested"])) >= 4
    assert result.stats["completion_tokens"] > 0 and result.stats["teacher_model"] == keyed_run["server"].model_name
    # The real model's replies were parsed into questions (kept, or quarantined with a reason), each row traceable.
    # Whether a 135M model's greedy output passes the chain's form checks on this page is not guaranteed: it changes
    # with the chunk text, the torch build and how the server batches requests (seen kept, and seen all quarantined).
    ids = {c.id for c in keyed_chunks(chunks)}
    reached = {q["stage"] for q in result.quarantine} | ({"question"} if result.items else set())
    assert reached - {"topics"}, result.quarantine
    assert all(q["chunk_id"] in ids and q["reason"] for q in result.quarantine)
    for it in result.items:
        assert it["chunk_id"] in {c.id for c in keyed_chunks(chunks)}
        assert it["doc_id"] == chunks[0].doc_id and it["source"] == "p100.md"
        assert it["answers"] and all(a["text"].strip() for a in it["answers"])
    judged = [a for it in result.items for a in it["answers"] if "scores" in a]
    kept = result.sft + [q for q in result.quarantine if q["stage"] == "judge"]
    assert judged or kept or not result.items, "no kept question's answer reached the judge stage"
    for row in result.sft:
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
        assert row["teacher_model"] == keyed_run["server"].model_name and row["prompt_version"] == "v1"


def test_api_key_from_env_reaches_the_server_but_no_log_row_or_file(keyed_run, secret_key, live):
    # The key was really used: the server side received it as the bearer token.
    assert keyed_run["headers"] and all(h == f"Bearer {secret_key}" for h in keyed_run["headers"])
    logs = "\n".join(keyed_run["logs"])
    assert "synthetic:" in logs  # the chain's progress lines were captured
    assert secret_key not in logs
    assert secret_key not in repr(keyed_run["teacher"])
    server_logs = "".join(p.read_text(errors="replace") for p in live["logs"].glob("*.log"))
    assert "POST /v1/chat/completions" in server_logs and secret_key not in server_logs
    r = keyed_run["result"]
    dumped = json.dumps([r.sft, r.preferences, r.quarantine, r.items, r.stats], default=str)
    assert secret_key not in dumped
    files = [p for p in keyed_run["out_dir"].rglob("*") if p.is_file()]
    assert any(p.name.startswith("responses.sqlite") for p in files) and len(files) >= 6
    for p in files:
        assert secret_key.encode() not in p.read_bytes(), p


def test_killed_server_fails_clearly_and_rerun_asks_nothing_twice(live, chunks, tmp_path):
    proxy = live["proxy"]
    proxy.reset()
    cfg = ChainConfig(**{**SMALL, "answers_per_question": 1})
    chunk_set = chunks[:4]
    proxy.kill_after = 2  # the server dies after answering 2 of the 4 topic prompts
    teacher = _teacher(live, tmp_path / "cache", max_retries=1, backoff_base_s=0.2)
    with pytest.raises(TeacherUnavailable) as err:
        run_chain(chunk_set, teacher, cfg, log=lambda s: None)
    assert proxy.killed.is_set() and not live["server"].alive()
    msg = str(err.value)
    assert proxy.base_url in msg and "restart" in msg.lower()
    answered_before = set(proxy.answered)
    assert len(answered_before) >= 2
    assert teacher.stats["requests"] - teacher.stats["errors"] == len(answered_before)

    proxy.reset()
    live["start"]()  # a fresh server, same model and flags, behind the same proxy address
    teacher2 = _teacher(live, tmp_path / "cache")
    result = run_chain(chunk_set, teacher2, cfg, log=lambda s: None)
    # Server side: no prompt answered before the kill was requested again; nothing was asked twice.
    assert not answered_before & set(proxy.requested)
    assert len(proxy.requested) == len(set(proxy.requested)) == teacher2.stats["requests"]
    assert teacher2.stats["cache_hits"] >= len(answered_before)
    # No duplicate rows in what the rerun produced.
    for rows in (result.sft, result.preferences, result.items, result.quarantine):
        ids = [r["id"] for r in rows]
        assert len(ids) == len(set(ids))
    assert {it["chunk_id"] for it in result.items} <= {c.id for c in chunk_set}
    assert result.stats["chunks"] == len(chunk_set)


def test_truncated_replies_from_the_server_are_quarantined_with_reason(live, chunks, tmp_path):
    tiny = ChainConfig(**{**SMALL, "answers_per_question": 1, "topics_max_tokens": 3, "max_tokens": 3,
                          "judge_max_tokens": 3})
    teacher = _teacher(live, tmp_path / "cache")
    result = run_chain(chunks[1:2], teacher, tiny, log=lambda s: None)  # must not raise
    assert teacher.stats["requests"] >= 1 and teacher.stats["errors"] == 0
    assert result.sft == [] and result.preferences == []  # four rubric scores never fit in 3 tokens
    assert result.quarantine
    known = {"invalid_format", "off_topic", "empty", "judge_unparseable", "wrong_option_count", "duplicate"}
    for q in result.quarantine:
        assert q["reason"] in known, q
        assert q["chunk_id"] == chunks[1].id and q["stage"] in {"topics", "question", "answer", "judge"}
    assert sum(result.stats["quarantine_by_reason"].values()) == len(result.quarantine)
