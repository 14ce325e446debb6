"""Near-dedup quality and speed: F1 on planted near duplicates, signatures/s vs datasketch and DataTrove, scaling.

    /tmp/venv1/bin/python benchmarks/dedup_quality.py                 # default: a few minutes
    /tmp/venv1/bin/python benchmarks/dedup_quality.py --sizes 10000,100000,300000

1. Quality: a `curation.demo.dedup_testbed` corpus (300-word pages, one near duplicate for 20% of
   them at edit levels of true Jaccard 0.97 ... 0.47, half the pages sharing boilerplate blocks)
   through the pipeline's defaults (112 permutations, 5-grams, 16 x 7 bands, verified at J >= 0.8).
   Pairwise precision / recall / F1; positives are pairs with true Jaccard >= 0.8. Each engine
   (in-memory numpy; DuckDB over 4 shards of signature and text Parquet, `engine: duckdb`) with
   each verification (`verify: text`, the default; `verify: signature`), clustering time beside.
2. Throughput, one process (= one core), the same documents for every contender:
   Modelworks `minhash_signatures`; datasketch with one `update` per shingle (naive loop);
   datasketch `MinHash.bulk`; DataTrove's `MinhashDedupSignature.run` (its signature step,
   14 x 8 = 112 hashes, in a throwaway virtualenv: $DATATROVE_PYTHON, default /tmp/dt-venv/bin/python,
   created with pip if missing; never a dependency of Modelworks). Shingling is included for everyone;
   DataTrove's time includes writing and sorting its bucket files, which is part of its signature step.
3. Scaling: signatures + exact dedup + clustering at each size, in a fresh process each, with
   its wall time and peak RSS (the texts themselves included).
Last line: RESULT f1=<pairwise F1> speedup_vs_datatrove=<Modelworks docs/s / DataTrove docs/s>.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


from curation.dedup import (exact_duplicate_mask, minhash_signatures, near_duplicate_clusters,  # noqa: E402
                            shingles)
from curation.demo.dedup_testbed import make_testbed, score_pairs  # noqa: E402

NUM_PERM = 112
DATATROVE_PYTHON = os.environ.get("DATATROVE_PYTHON", "/tmp/dt-venv/bin/python")

# Runs inside DataTrove's virtualenv: time only MinhashDedupSignature.run over the given documents.
_DATATROVE_WORKER = r"""
import json, sys, tempfile, time
from datatrove.data import Document
from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature
texts = json.load(open(sys.argv[1]))
docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
with tempfile.TemporaryDirectory() as out:
    step = MinhashDedupSignature(output_folder=out, config=MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8))
    step.get_shingles("warm up the word tokenizer")
    t0 = time.perf_counter()
    result = step.run(iter(docs))
    if result is not None:
        for _ in result:
            pass
    print(json.dumps({"seconds": time.perf_counter() - t0, "docs": len(docs)}))
"""


def _log(msg: str) -> None:
    print(msg, flush=True)


# DataTrove's MinHash step also needs these at import or run time (xxhash 4 refuses str input).
DATATROVE_PACKAGES = ["datatrove", "spacy", "lxml_html_clean", "regex", "tokenizers", "xxhash<4"]


def ensure_datatrove(python: str) -> str | None:
    """Path of a Python with DataTrove; creates (or completes) the throwaway virtualenv if needed."""
    check = [python, "-c", "import datatrove.pipeline.dedup.minhash"]
    if Path(python).exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    venv = Path(python).parent.parent
    try:
        if not venv.exists():
            base = shutil.which("python3") or sys.executable
            _log(f"creating a throwaway virtualenv for DataTrove: {base} -m venv {venv}")
            subprocess.run([base, "-m", "venv", str(venv)], check=True)
        _log(f"installing into it: {venv}/bin/pip install {' '.join(DATATROVE_PACKAGES)}")
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *DATATROVE_PACKAGES], check=True)
        subprocess.run(check, check=True)
    except (subprocess.CalledProcessError, OSError) as err:
        _log(f"could not set up DataTrove ({err}); skipping it")
        return None
    return python


def _timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def throughput(texts: list[str], datatrove_python: str | None) -> dict[str, float]:
    """Signatures per second on one core for each contender, over (prefixes of) the same texts."""
    from datasketch import MinHash

    def naive(docs):
        for t in docs:
            m = MinHash(num_perm=NUM_PERM, seed=1)
            for s in shingles(t, 5):
                m.update(s.encode("utf-8"))

    def bulk(docs):
        MinHash.bulk([[s.encode("utf-8") for s in shingles(t, 5)] for t in docs], num_perm=NUM_PERM, seed=1)

    out = {}
    minhash_signatures(texts[:200])  # warm-up: imports, Arrow kernels
    n = len(texts)
    out["modelworks"] = n / _timed(lambda: minhash_signatures(texts), repeat=3)
    k = max(n // 4, 1)
    out["datasketch_bulk"] = k / _timed(lambda: bulk(texts[:k]))
    k = max(n // 8, 1)
    out["datasketch_naive_update"] = k / _timed(lambda: naive(texts[:k]))
    if datatrove_python:
        k = max(n // 4, 1)
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(texts[:k], f)
        try:
            env = {**os.environ, "HF_HUB_OFFLINE": "1"}
            res = subprocess.run([datatrove_python, "-c", _DATATROVE_WORKER, f.name], capture_output=True,
                                 text=True, env=env, check=True)
            got = json.loads(res.stdout.strip().splitlines()[-1])
            out["datatrove"] = got["docs"] / got["seconds"]
        except (subprocess.CalledProcessError, ValueError, IndexError) as err:
            _log(f"DataTrove run failed: {err}\n{getattr(err, 'stderr', '')[-2000:]}")
        finally:
            os.unlink(f.name)
    return {k: round(v, 1) for k, v in out.items()}


def _duckdb_clusters(bed, sigs, verify: str, shards: int = 4) -> tuple[list[str], float]:
    """Cluster ids per row from the DuckDB engine over per-shard signature and text Parquet files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curation.dedup_scale import near_duplicate_clusters_duckdb

    with tempfile.TemporaryDirectory(prefix="dedup-bench-") as tmp:
        sig_files, text_files = [], []
        for shard in range(shards):
            rows = slice(shard, None, shards)
            sig_files.append(Path(tmp) / f"signatures-{shard}.parquet")
            text_files.append(Path(tmp) / f"pages-{shard}.parquet")
            pq.write_table(pa.table({"id": bed.ids[rows], "signature": pa.FixedSizeListArray.from_arrays(
                pa.array(sigs[rows].reshape(-1), pa.uint64()), NUM_PERM)}), sig_files[-1])
            pq.write_table(pa.table({"id": bed.ids[rows], "text": bed.texts[rows]}), text_files[-1])
        t0 = time.perf_counter()
        got = near_duplicate_clusters_duckdb(sig_files, 0.8, verify=verify, text_files=text_files,
                                             temp_directory=tmp)
        seconds = time.perf_counter() - t0
    by_id = dict(zip(got.column("id").to_pylist(), got.column("cluster_id").to_pylist()))
    return [by_id[i] for i in bed.ids], seconds


def quality(n_docs: int, seed: int, duckdb: bool = True) -> dict:
    """Pairwise scores of each engine x verification mode on one testbed (clustering time beside)."""
    bed = make_testbed(n_docs, seed=seed)
    sigs = minhash_signatures(bed.texts, num_perm=NUM_PERM)
    out = {"docs": n_docs}
    for verify in ("text", "signature"):
        t0 = time.perf_counter()
        cluster_id, _, _ = near_duplicate_clusters(bed.ids, sigs, 0.8, NUM_PERM,
                                                   texts=bed.texts if verify == "text" else None)
        seconds = time.perf_counter() - t0
        out[f"{verify}_verified"] = {**score_pairs(bed, cluster_id, 0.8), "cluster_s": round(seconds, 3)}
    if duckdb:
        for verify in ("text", "signature"):
            cluster_id, seconds = _duckdb_clusters(bed, sigs, verify)
            out[f"duckdb_{verify}_verified"] = {**score_pairs(bed, cluster_id, 0.8), "cluster_s": round(seconds, 3)}
    return out


def scale_worker(n_docs: int, seed: int) -> dict:
    """One size in this (fresh) process: time and peak memory of signatures + exact + near dedup."""
    bed = make_testbed(n_docs, seed=seed)
    rss_corpus = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    sigs = minhash_signatures(bed.texts, num_perm=NUM_PERM)
    t_sig = time.perf_counter() - t0
    keep, _ = exact_duplicate_mask(bed.ids, bed.texts)
    t_exact = time.perf_counter() - t0 - t_sig
    cluster_id, _, _ = near_duplicate_clusters(bed.ids, sigs, 0.8, NUM_PERM, texts=bed.texts)
    t_total = time.perf_counter() - t0
    score = score_pairs(bed, cluster_id, 0.8)
    return {"docs": n_docs, "signatures_s": round(t_sig, 2), "exact_s": round(t_exact, 2),
            "cluster_s": round(t_total - t_sig - t_exact, 2), "total_s": round(t_total, 2),
            "docs_per_s": round(n_docs / t_total, 1), "f1": score["f1"], "precision": score["precision"],
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "rss_after_corpus_mib": round(rss_corpus, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quality-docs", type=int, default=10_000)
    ap.add_argument("--throughput-docs", type=int, default=2_000)
    ap.add_argument("--sizes", default="10000,100000,300000", help="comma-separated corpus sizes for scaling")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-datatrove", action="store_true")
    ap.add_argument("--no-duckdb", action="store_true", help="skip the DuckDB engine in the quality section")
    ap.add_argument("--scale-worker", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.scale_worker:
        print(json.dumps(scale_worker(a.scale_worker, a.seed)))
        return

    _log(f"== quality: {a.quality_docs} docs, threshold 0.8")
    q = quality(a.quality_docs, a.seed, duckdb=not a.no_duckdb)
    _log(json.dumps(q, indent=1))
    _log(f"  {'engine':<8} {'verify':<10} {'precision':>9} {'recall':>7} {'f1':>7} {'cluster_s':>9}")
    for key, engine in (("text_verified", "numpy"), ("signature_verified", "numpy"),
                        ("duckdb_text_verified", "duckdb"), ("duckdb_signature_verified", "duckdb")):
        if key in q:
            r = q[key]
            _log(f"  {engine:<8} {key.split('_')[-2]:<10} {r['precision']:>9.4f} {r['recall']:>7.4f} "
                 f"{r['f1']:>7.4f} {r['cluster_s']:>9.3f}")

    _log(f"== throughput: {a.throughput_docs} docs of ~300 words, {NUM_PERM} permutations, one process")
    dt = None if a.no_datatrove else ensure_datatrove(DATATROVE_PYTHON)
    texts = make_testbed(a.throughput_docs, seed=a.seed + 1).texts
    tp = throughput(texts, dt)
    for name, v in tp.items():
        _log(f"  {name:<26} {v:>10.1f} docs/s   x{v / tp['modelworks']:.4f} of modelworks")

    _log("== scaling (fresh process per size; time = signatures + exact dedup + clustering)")
    rows = []
    for n in [int(x) for x in a.sizes.split(",") if x]:
        res = subprocess.run([sys.executable, __file__, "--scale-worker", str(n), "--seed", str(a.seed)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        _log("  " + json.dumps(rows[-1]))
    if len(rows) >= 2:
        r0, r1 = rows[0], rows[-1]
        _log(f"  time ratio {r1['total_s'] / r0['total_s']:.1f} for a size ratio {r1['docs'] / r0['docs']:.1f}")

    speedup = tp["modelworks"] / tp["datatrove"] if "datatrove" in tp else float("nan")
    print(f"RESULT f1={q['text_verified']['f1']:.4f} speedup_vs_datatrove={speedup:.1f}")


if __name__ == "__main__":
    main()
