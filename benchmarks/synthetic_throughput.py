"""Synthetic-data throughput: Modelworks vs distilabel vs a plain sequential loop, on one local teacher server.

The job is the first generation stage of the guided chain (topics for each seed chunk): the
same chat prompts (built by the chain's own versioned prompt templates from chunks of the demo
seed manuals), the same sampling (temperature, top_p, max_tokens, seed), sent to the same
`transformers serve` configuration of the embedded SmolLM2-135M-Instruct on 127.0.0.1:

  (i)   Modelworks: the `openai` teacher (`make_teacher` + `generate`, bounded concurrent pool,
        response cache in a fresh folder);
  (ii)  distilabel: `TextGeneration` with `OpenAILLM(base_url=...)` in a pipeline, run in a
        THROWAWAY virtualenv (created here if absent; never a project dependency) as a
        subprocess that writes its generations, token counts and timing to a JSON file;
  (iii) a plain sequential loop over the `openai` client;
  then Modelworks again on the warm cache (it must send 0 requests; the server's access log
  and the teacher's stats both count).

Each arm gets a freshly started server with identical flags, so no arm profits from the
server's prefix cache warmed by another. Completion tokens are counted from the responses'
`usage`. Wall time covers the whole job as a user waits for it (distilabel: pipeline start to
distiset; its own pipeline start-up is also reported apart).

    .venv/bin/python benchmarks/synthetic_throughput.py [--prompts 16 --max-tokens 48 ...]

Last line: `RESULT speedup_vs_distilabel=<x> cached_rerun_requests=<n>` (speedup = Modelworks'
completion tokens/s over distilabel's on the same job; sampled replies differ in length, so
tokens/s is the fairer rate; the wall-time ratio is printed too).
"""
from __future__ import annotations

import argparse
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


def seed_prompts(n: int, topics_per_chunk: int, tmp: Path) -> list[list[dict]]:
    """The chain's topics prompts for the first `n` chunks of the demo seed manuals."""
    from curation.demo.crawl import write_seed_corpus
    from curation.demo.facts import build_fact_base
    from curation.seed import chunk_document, read_seed_documents
    from curation.synthetic.prompts import load_prompts

    seed_dir = tmp / "seed"
    write_seed_corpus(build_fact_base(seed=0), seed_dir, seed=0)
    docs, _ = read_seed_documents(seed_dir)
    chunks = [c for d in docs for c in chunk_document(d)]
    if len(chunks) < n:
        raise SystemExit(f"only {len(chunks)} chunks in the demo seed corpus; ask for fewer prompts")
    prompts = load_prompts("v1")
    return [prompts.messages("topics", n=topics_per_chunk, heading=c.heading, passage=c.text) for c in chunks[:n]]


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
            "rows": len(prompts), "nonempty": nonempty, "server_requests": srv.request_count() - before}


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
            "server_requests": srv.request_count() - before, "concurrency": a.concurrency}


def run_distilabel(srv, prompts, a, py: Path, tmp: Path) -> dict:
    job = {"prompts": prompts, "base_url": srv.base_url, "model": srv.model_name, "max_tokens": a.max_tokens,
           "temperature": a.temperature, "top_p": a.top_p, "seed": a.seed, "timeout_s": a.timeout_s,
           "cache_dir": str(tmp / "distilabel-cache"), "input_batch_size": a.distilabel_input_batch_size}
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
    res.update(process_s=outer, server_requests=srv.request_count() - before)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=12, help="seed chunks = prompts per arm (the demo manuals give 12)")
    ap.add_argument("--topics-per-chunk", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--top-p", type=float, default=0.95)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--concurrency", type=int, default=8, help="Modelworks requests in flight (TeacherConfig default)")
    ap.add_argument("--distilabel-input-batch-size", type=int, default=0, help="0 = distilabel's default (50)")
    ap.add_argument("--continuous-batching", choices=("on", "off"), default="on",
                    help="the server's continuous batching (see curation/synthetic/serve.py)")
    ap.add_argument("--model-dir", default=os.environ.get("MODELWORKS_OPEN_MODEL_DIR", "/tmp/mw_models/smollm2"))
    ap.add_argument("--distilabel-venv", default="/tmp/venv-distilabel")
    ap.add_argument("--timeout-s", type=float, default=900.0)
    ap.add_argument("--arms", default="plain,distilabel,modelworks", help="order of the cold arms")
    ap.add_argument("--json-out", default="")
    a = ap.parse_args()

    from curation.synthetic.serve import ServeConfig, serve_model
    from training.open_model import ensure_hf_model

    model_dir = ensure_hf_model("smollm2", Path(a.model_dir))
    py = ensure_distilabel_venv(Path(a.distilabel_venv))
    tmp = Path(tempfile.mkdtemp(prefix="mw-synth-bench-"))
    prompts = seed_prompts(a.prompts, a.topics_per_chunk, tmp)
    scfg = ServeConfig(continuous_batching=a.continuous_batching == "on")
    print(f"job: {len(prompts)} topics prompts, max_tokens={a.max_tokens}, temperature={a.temperature}, "
          f"top_p={a.top_p}, seed={a.seed}; server: transformers serve {model_dir} "
          f"(continuous batching {a.continuous_batching}); fresh server per arm", flush=True)

    results: dict[str, dict] = {}
    cache_dir = tmp / "mw-cache"
    srv = None
    try:
        for arm in a.arms.split(","):
            srv = serve_model(model_dir, log_path=tmp / f"server-{arm}.log", cfg=scfg)
            warm_up(srv)
            if arm == "plain":
                results[arm] = run_plain_loop(srv, prompts, a)
            elif arm == "distilabel":
                results[arm] = run_distilabel(srv, prompts, a, py, tmp)
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
        srv = serve_model(model_dir, log_path=tmp / "server-warm.log", cfg=scfg)
        warm_up(srv)
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
        print(f"distilabel: input_batch_size={dl.get('input_batch_size')} (all rows of a batch in flight at once via "
              f"asyncio.gather); pipeline run {dl['run_s']:.1f}s of {dl['wall_s']:.1f}s, import {dl['import_s']:.1f}s, "
              f"process total {dl['process_s']:.1f}s")
        # Sampled replies may differ in length between arms, so the speedup compares completion tokens per second.
        speedup = (mw["completion_tokens"] / mw["wall_s"]) / (dl["completion_tokens"] / dl["wall_s"])
        print(f"wall-time ratio distilabel/Modelworks: {dl['wall_s'] / mw['wall_s']:.2f}")
    if "plain" in results:
        print(f"wall-time ratio plain loop/Modelworks: {results['plain']['wall_s'] / mw['wall_s']:.2f}")
    cached = max(results["modelworks_warm_cache"]["teacher_requests"],
                 results["modelworks_warm_cache"]["server_requests"])
    if a.json_out:
        Path(a.json_out).write_text(json.dumps({"args": vars(a), "results": results}, indent=2))
    print(f"RESULT speedup_vs_distilabel={speedup:.2f} cached_rerun_requests={cached}")


if __name__ == "__main__":
    main()
