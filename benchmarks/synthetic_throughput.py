"""Synthetic-data throughput: Modelworks vs distilabel vs a plain sequential loop, on one teacher server.

The job is one stage of the guided chain: the same chat prompts (built by the chain's own
versioned prompt templates from chunks of the demo seed manuals), the same sampling
(temperature, top_p, max_tokens, seed), sent to the same server:

  --job answers  (default) the chain's bulk, one answer prompt per question (24 of the 96),
                 replies from one letter to a summary, max_tokens 256 as in the chain;
  --job topics   the first stage, one prompt per chunk (12), max_tokens 96 as in the chain.

By default the server is `transformers serve` of the embedded SmolLM2-135M-Instruct on
127.0.0.1, started afresh for each arm with identical flags (no arm profits from a prefix cache
warmed by another); `--base-url URL --model NAME` uses a server someone runs instead (vLLM on a
GPU, llama.cpp, a NIM), shared by all arms.

  (0)   the server itself: a bare thread pool over the `openai` client with every prompt of the
        job in flight at once (`--ceiling`, e.g. "1,4,8,all" for a sweep), no framework involved;
  (i)   Modelworks: the `openai` teacher (`make_teacher` + `generate`, bounded concurrent pool,
        response cache in a fresh folder);
  (ii)  distilabel: `TextGeneration` with `OpenAILLM(base_url=...)` in a pipeline, run in a
        THROWAWAY virtualenv (created here if absent; never a project dependency) as a
        subprocess that writes its generations, token counts and timing to a JSON file; at its
        default input batch (50: a whole batch in flight, the next after the batch's last reply)
        and as `distilabel@8` with as many in flight as Modelworks' pool;
  (iii) a plain sequential loop over the `openai` client;
  then Modelworks again on the warm cache (it must send 0 requests; the server's access log
  and the teacher's stats both count).

Completion tokens are counted from the responses' `usage`. Wall time covers the whole job as a
user waits for it (distilabel: pipeline start to distiset; its own pipeline start-up is also
reported apart).

    .venv/bin/python benchmarks/synthetic_throughput.py [--job answers --prompts 24 --max-tokens 256 ...]

Last line: `RESULT speedup_vs_distilabel=<x> cached_rerun_requests=<n>` (speedup = Modelworks'
completion tokens/s over distilabel's on the same job; sampled replies differ in length, so
tokens/s is the fairer rate; the wall-time ratio is printed too).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

DISTILABEL_RUNNER = r'''
import json, sys, time
t_import = time.perf_counter()
from distilabel.models import OpenAILLM
from distilabel.pipeline import Pipeline
from distilabel.steps import LoadDataFromDicts
from distilabel.steps.tasks import TextGeneration
job = json.load(open(sys.argv[1]))
rows = []
for i, msgs in enumerate(job["prompts"]):
    system = [m["content"] for m in msgs if m["role"] == "system"]
    user = [m["content"] for m in msgs if m["role"] == "user"]
    assert len(user) == 1 and len(system) <= 1 and len(msgs) == len(user) + len(system)
    rows.append({"idx": i, "instruction": user[0], "system_prompt": system[0] if system else ""})
gen_kwargs = {"max_new_tokens": job["max_tokens"], "temperature": job["temperature"], "top_p": job["top_p"]}
if job.get("seed") is not None:
    gen_kwargs["extra_body"] = {"seed": job["seed"]}
t0 = time.perf_counter()
with Pipeline(name="mw-synthetic-throughput", cache_dir=job["cache_dir"]) as pipeline:
    load = LoadDataFromDicts(data=rows, batch_size=job.get("batch_size") or 50)
    llm = OpenAILLM(model=job["model"], base_url=job["base_url"], api_key="not-needed", timeout=job["timeout_s"],
                    max_retries=0, generation_kwargs=gen_kwargs)
    kwargs = {"input_batch_size": job["input_batch_size"]} if job.get("input_batch_size") else {}
    gen = TextGeneration(llm=llm, **kwargs)
    load >> gen
t_built = time.perf_counter()
distiset = pipeline.run(use_cache=False)
t1 = time.perf_counter()
out = distiset["default"]["train"]
gens, ctoks, ptoks = {}, 0, 0
for r in out:
    gens[r["idx"]] = r["generation"]
    st = (r.get("distilabel_metadata") or {}).get("statistics_text_generation_0") or {}
    for name, value in (("output_tokens", st.get("output_tokens")), ("input_tokens", st.get("input_tokens"))):
        n = sum(value) if isinstance(value, list) else int(value or 0)  # one int per row (a list per generation)
        if name == "output_tokens":
            ctoks += n
        else:
            ptoks += n
json.dump({"wall_s": t1 - t0, "run_s": t1 - t_built, "import_s": t0 - t_import, "rows": len(out),
           "nonempty": sum(bool(g) for g in gens.values()), "completion_tokens": ctoks, "prompt_tokens": ptoks,
           "input_batch_size": gen.input_batch_size, "sample": gens.get(0)},
          open(sys.argv[2], "w"))
'''


def ensure_distilabel_venv(venv: Path) -> Path:
    """The throwaway virtualenv with distilabel + openai (created once; never the project's environment)."""
    py = venv / "bin" / "python"
    probe = [str(py), "-c", "import distilabel.models, distilabel.pipeline, openai"]
    if py.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return py
    print(f"creating throwaway virtualenv {venv} for distilabel ...", flush=True)
    base = getattr(sys, "_base_executable", sys.executable)  # the base interpreter, not this project's venv
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    # distilabel 1.5 imports `requests` without declaring it.
    subprocess.run([str(py), "-m", "pip", "install", "-q", "distilabel", "openai", "requests"], check=True)
    return py


def seed_prompts(n: int, topics_per_chunk: int, tmp: Path, job: str = "topics") -> list[list[dict]]:
    """The chain's prompts of one stage for the demo seed manuals, the first `n` of them.

    topics:  the first stage, one prompt per chunk (short replies);
    answers: the chain's bulk, one answer prompt per question (the questions written by the offline
             rules teacher, so both arms get the same, well-formed ones); replies of very different
             lengths (a letter, a sentence, a summary), the long tail a batch barrier waits for.
    """
    from curation.demo.crawl import write_seed_corpus
    from curation.demo.facts import build_fact_base
    from curation.seed import chunk_document, read_seed_documents
    from curation.synthetic.prompts import load_prompts

    seed_dir = tmp / "seed"
    write_seed_corpus(build_fact_base(seed=0), seed_dir, seed=0)
    docs, _ = read_seed_documents(seed_dir)
    chunks = [c for d in docs for c in chunk_document(d)]
    prompts = load_prompts("v1")
    if job == "topics":
        out = [prompts.messages("topics", n=topics_per_chunk, heading=c.heading, passage=c.text) for c in chunks]
    elif job == "answers":
        from curation.synthetic.chain import ChainConfig, run_chain
        from curation.synthetic.rules import RulesTeacher

        by_id = {c.id: c for c in chunks}
        items = run_chain(chunks, RulesTeacher(), ChainConfig(topics_per_chunk=topics_per_chunk,
                                                              answers_per_question=1), log=lambda m: None).items
        by_kind: dict[str, list[dict]] = {}
        for it in items:
            by_kind.setdefault(it["kind"], []).append(it)
        # kinds interleaved, so the first n prompts hold every reply length (a letter ... a summary)
        items = [it for group in itertools.zip_longest(*by_kind.values()) for it in group if it is not None]
        out = [prompts.messages("answer", heading=by_id[it["chunk_id"]].heading, passage=by_id[it["chunk_id"]].text,
                                question=it["user"], answer_format=prompts.answer_format[it["kind"]]) for it in items]
    else:
        raise SystemExit(f"unknown job {job!r}: topics or answers")
    if len(out) < n:
        raise SystemExit(f"only {len(out)} {job} prompts from the demo seed corpus; ask for fewer")
    return out[:n]


class ExternalServer:
    """A server someone else runs (vLLM on a GPU, llama.cpp, a NIM): used as it is, never started or stopped."""

    def __init__(self, base_url: str, model: str):
        self.base_url, self.model_name = base_url, model

    def request_count(self) -> None:  # its access log is not ours to read
        return None

    def stop(self) -> None:
        pass


def _delta(srv, before):
    now = srv.request_count()
    return None if now is None or before is None else now - before


def server_ceiling(srv, prompts, a, levels) -> dict:
    """Completion tokens/s the server gives at a fixed number of requests in flight (the same prompts each time).

    A bare thread pool over the `openai` client, no framework: it shows what the server itself does when
    that many requests are in flight. Level 1 is the plain loop's, Modelworks' pool holds `--concurrency`,
    distilabel holds a whole input batch (default 50) in flight.
    """
    from concurrent.futures import ThreadPoolExecutor

    from openai import OpenAI

    client = OpenAI(base_url=srv.base_url, api_key="not-needed", max_retries=0, timeout=a.timeout_s)

    def one(msgs):
        r = client.chat.completions.create(model=srv.model_name, messages=msgs, temperature=a.temperature,
                                           top_p=a.top_p, max_tokens=a.max_tokens, seed=a.seed)
        return r.usage.completion_tokens if r.usage else 0

    out = {}
    for c in levels:
        job = prompts[: max(c, a.ceiling_prompts)] if a.ceiling_prompts else prompts
        t0 = time.perf_counter()
        with ThreadPoolExecutor(c) as pool:
            toks = sum(pool.map(one, job))
        wall = time.perf_counter() - t0
        out[c] = {"prompts": len(job), "wall_s": wall, "completion_tokens": toks, "tok_s": toks / wall}
        print(f"  bare client, {c:>2} in flight: {wall:7.1f}s  {toks / wall:6.2f} tok/s ({len(job)} prompts, "
              f"{toks} completion tokens)", flush=True)
    return out


def warm_up(srv) -> None:
    """Two short requests unrelated to the job: the server's one-off batching set-up is paid before any arm's clock."""
    from concurrent.futures import ThreadPoolExecutor

    from openai import OpenAI

    client = OpenAI(base_url=srv.base_url, api_key="not-needed", max_retries=2, timeout=600)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda i: client.chat.completions.create(
            model=srv.model_name, messages=[{"role": "user", "content": f"Say hello {i}."}], max_tokens=4,
            temperature=0.0), range(2)))


def run_plain_loop(srv, prompts, a) -> dict:
    from openai import OpenAI

    client = OpenAI(base_url=srv.base_url, api_key="not-needed", max_retries=0, timeout=a.timeout_s)
    before = srv.request_count()
    t0 = time.perf_counter()
    ctoks = ptoks = nonempty = 0
    for msgs in prompts:
        r = client.chat.completions.create(model=srv.model_name, messages=msgs, temperature=a.temperature,
                                           top_p=a.top_p, max_tokens=a.max_tokens, seed=a.seed)
        ctoks += r.usage.completion_tokens if r.usage else 0
        ptoks += r.usage.prompt_tokens if r.usage else 0
        nonempty += bool(r.choices and r.choices[0].message.content)
    return {"wall_s": time.perf_counter() - t0, "completion_tokens": ctoks, "prompt_tokens": ptoks,
            "rows": len(prompts), "nonempty": nonempty, "server_requests": _delta(srv, before)}


def run_modelworks(srv, prompts, a, cache_dir: Path) -> dict:
    from curation.synthetic.base import Sampling
    from curation.synthetic.teacher import TeacherConfig, make_teacher

    teacher = make_teacher(TeacherConfig(backend="openai", base_url=srv.base_url, model=srv.model_name,
                                         max_concurrency=a.concurrency, timeout_s=a.timeout_s,
                                         cache_dir=str(cache_dir)))
    before = srv.request_count()
    t0 = time.perf_counter()
    out = teacher.generate(prompts, Sampling(temperature=a.temperature, top_p=a.top_p, max_tokens=a.max_tokens,
                                             seed=a.seed))
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "completion_tokens": sum(c.completion_tokens for c in out if not c.cached),
            "all_completion_tokens": sum(c.completion_tokens for c in out),
            "rows": len(out), "nonempty": sum(bool(c.text) for c in out), "errors": sum(c.text is None for c in out),
            "teacher_requests": teacher.stats["requests"], "cache_hits": teacher.stats["cache_hits"],
            "server_requests": _delta(srv, before), "concurrency": a.concurrency}


def run_distilabel(srv, prompts, a, py: Path, tmp: Path, input_batch_size: int = 0) -> dict:
    job = {"prompts": prompts, "base_url": srv.base_url, "model": srv.model_name, "max_tokens": a.max_tokens,
           "temperature": a.temperature, "top_p": a.top_p, "seed": a.seed, "timeout_s": a.timeout_s,
           "cache_dir": str(tmp / "distilabel-cache"), "input_batch_size": input_batch_size}
    (tmp / "job.json").write_text(json.dumps(job))
    (tmp / "runner.py").write_text(DISTILABEL_RUNNER)
    env = dict(os.environ, HF_HUB_OFFLINE="1", DISTILABEL_CACHE_DIR=str(tmp / "distilabel-cache"),
               PYTHONPATH="")  # nothing of this project leaks into the throwaway venv
    before = srv.request_count()
    t0 = time.perf_counter()
    proc = subprocess.run([str(py), str(tmp / "runner.py"), str(tmp / "job.json"), str(tmp / "distilabel.json")],
                          env=env, capture_output=True, text=True, timeout=a.timeout_s * len(prompts) + 600)
    outer = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"distilabel run failed (rc={proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    res = json.loads((tmp / "distilabel.json").read_text())
    res.update(process_s=outer, server_requests=_delta(srv, before))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--job", choices=("topics", "answers"), default="answers",
                    help="which stage's prompts: topics (one per chunk) or answers (one per question, long-tailed)")
    ap.add_argument("--prompts", type=int, default=24, help="prompts per arm (the demo manuals give 12 topics "
                    "prompts and 96 answers prompts)")
    ap.add_argument("--topics-per-chunk", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=0, help="0 = the chain's own setting for the job "
                    "(ChainConfig: 96 for topics, 256 for answers)")
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--top-p", type=float, default=0.95)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--concurrency", type=int, default=8, help="Modelworks requests in flight (TeacherConfig default)")
    ap.add_argument("--continuous-batching", choices=("on", "off"), default="on",
                    help="the server's continuous batching (see curation/synthetic/serve.py)")
    ap.add_argument("--torch-threads", type=int, default=1, help="the local server's threads (0 = torch's default)")
    ap.add_argument("--base-url", default="", help="use this running OpenAI-compatible server (e.g. vLLM on a GPU) "
                    "instead of starting `transformers serve` per arm")
    ap.add_argument("--model", default="", help="the model name on --base-url")
    ap.add_argument("--ceiling", default="all", help="requests in flight (numbers or 'all') at which a bare client "
                    "measures the server's rate before the arms ('' = skip)")
    ap.add_argument("--ceiling-prompts", type=int, default=0, help="prompts per ceiling level (0 = all of the job)")
    ap.add_argument("--model-dir", default=os.environ.get("MODELWORKS_OPEN_MODEL_DIR", "/tmp/mw_models/smollm2"))
    ap.add_argument("--distilabel-venv", default="/tmp/venv-distilabel")
    ap.add_argument("--timeout-s", type=float, default=900.0)
    ap.add_argument("--arms", default="plain,distilabel,distilabel@8,modelworks",
                    help="order of the cold arms; distilabel@N = distilabel with input_batch_size N (N requests in "
                    "flight, as many as Modelworks' pool by default), plain distilabel = its default (50)")
    ap.add_argument("--json-out", default="")
    a = ap.parse_args()
    if not a.max_tokens:
        from curation.synthetic.chain import ChainConfig

        a.max_tokens = ChainConfig().topics_max_tokens if a.job == "topics" else ChainConfig().max_tokens
    if a.base_url and not a.model:
        raise SystemExit("--base-url needs --model (the name the server serves)")

    py = ensure_distilabel_venv(Path(a.distilabel_venv)) if "distilabel" in a.arms else None
    tmp = Path(tempfile.mkdtemp(prefix="mw-synth-bench-"))
    prompts = seed_prompts(a.prompts, a.topics_per_chunk, tmp, a.job)
    if a.base_url:
        def start(name: str):
            return ExternalServer(a.base_url, a.model)
        where = f"the server at {a.base_url} (model {a.model}), shared by all arms"
    else:
        from curation.synthetic.serve import ServeConfig, serve_model
        from training.open_model import ensure_hf_model

        model_dir = ensure_hf_model("smollm2", Path(a.model_dir))
        scfg = ServeConfig(continuous_batching=a.continuous_batching == "on", torch_threads=a.torch_threads)

        def start(name: str):
            srv = serve_model(model_dir, log_path=tmp / f"server-{name}.log", cfg=scfg)
            warm_up(srv)
            return srv
        where = (f"transformers serve {model_dir} (continuous batching {a.continuous_batching}, "
                 f"{a.torch_threads or 'default'} torch threads), a fresh server per arm")
    print(f"job: {len(prompts)} {a.job} prompts, max_tokens={a.max_tokens}, temperature={a.temperature}, "
          f"top_p={a.top_p}, seed={a.seed}; {where}", flush=True)

    results: dict[str, dict] = {}
    cache_dir = tmp / "mw-cache"
    srv = None
    try:
        levels = [len(prompts) if x.strip() == "all" else int(x) for x in a.ceiling.split(",") if x.strip()]
        if levels:
            srv = start("ceiling")
            results["server_ceiling"] = server_ceiling(srv, prompts, a, levels)
            srv.stop()
            srv = None
        for arm in a.arms.split(","):
            srv = start(arm)
            if arm == "plain":
                results[arm] = run_plain_loop(srv, prompts, a)
            elif arm == "distilabel" or arm.startswith("distilabel@"):
                results[arm] = run_distilabel(srv, prompts, a, py, tmp, int(arm.partition("@")[2] or 0))
            elif arm == "modelworks":
                results[arm] = run_modelworks(srv, prompts, a, cache_dir)
            else:
                raise SystemExit(f"unknown arm {arm!r}")
            r = results[arm]
            print(f"{arm:>11}: {r['wall_s']:7.1f}s  {r['rows'] / r['wall_s'] * 60:6.2f} items/min  "
                  f"{r['completion_tokens'] / r['wall_s']:6.2f} tok/s  ({r['completion_tokens']} completion tokens, "
                  f"{r['nonempty']}/{r['rows']} non-empty, server saw {r.get('server_requests', '?')} requests)",
                  flush=True)
            srv.stop()
            srv = None
        # The warm-cache rerun gets a fresh server too: whatever it answered would show in its log.
        srv = start("warm")
        warm = results["modelworks_warm_cache"] = run_modelworks(srv, prompts, a, cache_dir)
        print(f"modelworks (warm cache): {warm['wall_s']:.2f}s, {warm['cache_hits']} cache hits, "
              f"{warm['teacher_requests']} requests by the teacher, {warm['server_requests']} seen by the server",
              flush=True)
    finally:
        if srv is not None:
            srv.stop()

    if "modelworks" not in results:
        raise SystemExit("--arms must include modelworks")
    mw, dl = results["modelworks"], results.get("distilabel")
    print(f"Modelworks: max_concurrency={a.concurrency}; plain loop: 1 request at a time")
    speedup = float("nan")
    if dl:
        for name, r in results.items():
            if name.startswith("distilabel"):
                print(f"{name}: input_batch_size={r.get('input_batch_size')} (all rows of a batch in flight at once "
                      f"via asyncio.gather, the next batch after the last reply); pipeline run {r['run_s']:.1f}s of "
                      f"{r['wall_s']:.1f}s, import {r['import_s']:.1f}s, process total {r['process_s']:.1f}s; "
                      f"Modelworks tok/s over it: {(mw['completion_tokens'] / mw['wall_s']) / (r['completion_tokens'] / r['wall_s']):.2f}")
        # Sampled replies may differ in length between arms, so the speedup compares completion tokens per second.
        speedup = (mw["completion_tokens"] / mw["wall_s"]) / (dl["completion_tokens"] / dl["wall_s"])
        print(f"wall-time ratio distilabel/Modelworks: {dl['wall_s'] / mw['wall_s']:.2f}")
    if "plain" in results:
        print(f"wall-time ratio plain loop/Modelworks: {results['plain']['wall_s'] / mw['wall_s']:.2f}")
    ceiling = results.get("server_ceiling")
    if ceiling:
        print("bare client, server rate by requests in flight: "
              + ", ".join(f"{c}: {v['tok_s']:.2f} tok/s" for c, v in ceiling.items()))
    warm = results["modelworks_warm_cache"]
    cached = max(warm["teacher_requests"], warm["server_requests"] or 0)
    if a.json_out:
        Path(a.json_out).write_text(json.dumps({"args": vars(a), "results": results}, indent=2, default=str))
    # The RESULT compares both tools as they come (distilabel's default batch, Modelworks' default pool);
    # the distilabel@N arm above says how much of that is the number in flight rather than the batch barrier.
    print(f"RESULT speedup_vs_distilabel={speedup:.2f} cached_rerun_requests={cached}")


if __name__ == "__main__":
    main()
