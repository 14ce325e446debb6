"""Curation throughput and quality: Modelworks' chain vs DataTrove's FineWeb-style chain on the same WARC.

    python benchmarks/curation_throughput.py                 # ~3-4 minutes on 2 cores
    python benchmarks/curation_throughput.py --memory-sizes 1000,10000,50000

What it does, all in one run so the ratios are measured side by side:
1. builds one WARC.gz: a generated demo-crawl shard (`--pages` pages) plus hand-written realistic
   pages (news article, blog with comments, forum thread, product page from tests/fixtures), one
   copy per ten demo pages;
2. runs DataTrove (WarcReader -> Trafilatura -> GopherRepetition -> GopherQuality -> C4Quality ->
   FineWebQuality) with one worker, in its own virtualenv (DATATROVE_PYTHON, default
   /tmp/dt-venv-cur/bin/python; created with pip if missing, never a project dependency);
3. runs Modelworks' chain (read -> extract -> language id -> the same four filters -> PII
   redaction, writing Parquet) with one worker, then with every core;
4. scores extraction (word-level F1 against the known main content of every page, and against
   trafilatura's default output) for Modelworks' extractor, trafilatura's default and DataTrove's
   settings, and keep/drop precision/recall against the demo crawl's ground truth;
5. measures peak memory (max RSS) of a shard's curation at several shard sizes.
The last line is `RESULT speedup_vs_datatrove=<Modelworks docs/s ÷ DataTrove docs/s, one worker each>`.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
FIXTURES = REPO / "tests" / "fixtures" / "real_pages"
DEFAULT_DT_PYTHON = "/tmp/dt-venv-cur/bin/python"
DT_PACKAGES = ["datatrove", "spacy", "lxml_html_clean", "trafilatura", "warcio", "faust-cchardet", "python-magic"]

DT_RUNNER = r'''
import json, sys, tempfile, time
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import WarcReader
from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                        GopherRepetitionFilter)
folder, pattern, out = sys.argv[1], sys.argv[2], sys.argv[3]
seen, kept = [], []
def count_read(data, rank=0, world_size=1):
    for d in data:
        seen.append(1)
        yield d
def collect(data, rank=0, world_size=1):
    for d in data:
        kept.append(d.metadata.get("url"))
        yield d
pipeline = [WarcReader(folder, glob_pattern=pattern), count_read, Trafilatura(), GopherRepetitionFilter(),
            GopherQualityFilter(), C4QualityFilter(), FineWebQualityFilter(), collect]
t0 = time.perf_counter()
LocalPipelineExecutor(pipeline=pipeline, tasks=1, workers=1, logging_dir=tempfile.mkdtemp()).run()
seconds = time.perf_counter() - t0
json.dump({"seconds": seconds, "docs": len(seen), "kept_urls": kept}, open(out, "w"))
'''

MW_RUNNER = r'''
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from curation.pipeline import CurationConfig, curate_shard

if __name__ == "__main__":  # the worker pool spawns processes that re-import this file
    warc, workers, out_dir, out = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
    result = curate_shard(warc, CurationConfig(workers=workers), "bench", kept_path=out_dir + "/kept.parquet",
                          dropped_path=out_dir + "/dropped.parquet")
    s = result.stats
    s["peak_rss_mib_main"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    s["peak_rss_mib_largest_worker"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    json.dump(s, open(out, "w"))
'''


def log(msg: str) -> None:
    print(msg, flush=True)


def ensure_datatrove(python: str) -> str:
    if Path(python).exists():
        return python
    venv = Path(python).parent.parent
    log(f"DataTrove virtualenv not found: creating {venv} and installing {' '.join(DT_PACKAGES)} (throwaway, "
        "not a project dependency)")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *DT_PACKAGES], check=True)
    return python


# --- input ------------------------------------------------------------------------------------


def fixture_pages() -> list[tuple[str, str, str]]:
    """(name, html, main text) of the hand-written realistic pages."""
    return [(p.stem, p.read_text(encoding="utf-8"), p.with_suffix(".txt").read_text(encoding="utf-8"))
            for p in sorted(FIXTURES.glob("*.html"))]


def build_input(workdir: Path, pages: int) -> tuple[Path, list[dict]]:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    from curation.demo.crawl import DemoCrawlConfig, generate_demo_crawl, load_truth

    crawl = workdir / "crawl"
    summary = generate_demo_crawl(crawl, DemoCrawlConfig(n_shards=1, pages_per_shard=pages, seed=0))
    (shard,) = summary["shards"]
    truth = load_truth(crawl / "demo")
    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=True)
    fixtures = fixture_pages()
    for i in range(max(1, pages // 10)):
        name, html, _ = fixtures[i % len(fixtures)]
        http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
        writer.write_record(writer.create_warc_record(f"https://real.example/{name}/{i}", "response",
                                                      payload=io.BytesIO(html.encode("utf-8")),
                                                      http_headers=http))
    bench_dir = workdir / "bench"
    bench_dir.mkdir(parents=True, exist_ok=True)
    warc = bench_dir / "bench.warc.gz"
    # Concatenated gzip members are one valid WARC.gz.
    warc.write_bytes((crawl / "landing" / f"{shard}.warc.gz").read_bytes() + buf.getvalue())
    return warc, truth


# --- runs -------------------------------------------------------------------------------------


def run_datatrove(python: str, warc: Path, workdir: Path) -> dict:
    runner = workdir / "dt_runner.py"
    runner.write_text(DT_RUNNER)
    out = workdir / "dt_out.json"
    proc = subprocess.run([python, str(runner), str(warc.parent), warc.name, str(out)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"DataTrove run failed:\n{proc.stderr[-3000:]}")
    res = json.loads(out.read_text())
    res["docs_per_s"] = res["docs"] / res["seconds"]
    return res


def run_modelworks(warc: Path, workers: int, workdir: Path, tag: str) -> dict:
    runner = workdir / "mw_runner.py"
    runner.write_text(MW_RUNNER)
    out_dir = workdir / f"mw_{tag}"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = workdir / f"mw_{tag}.json"
    proc = subprocess.run([sys.executable, str(runner), str(REPO), str(warc), str(workers), str(out_dir), str(out)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"Modelworks run failed:\n{proc.stderr[-3000:]}")
    res = json.loads(out.read_text())
    res["out_dir"] = str(out_dir)
    return res


# --- quality ----------------------------------------------------------------------------------

_WORD = re.compile(r"\w+")


def word_prf(output: str | None, reference: str) -> tuple[float, float, float]:
    """Bag-of-words precision, recall, F1 of `output` against `reference` (both empty: perfect)."""
    out, ref = Counter(_WORD.findall((output or "").lower())), Counter(_WORD.findall(reference.lower()))
    if not out and not ref:
        return 1.0, 1.0, 1.0
    overlap = sum((out & ref).values())
    p = overlap / sum(out.values()) if out else 0.0
    r = overlap / sum(ref.values()) if ref else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def demo_main_text(html: str) -> str:
    """The demo crawl's main content: the article's heading and paragraphs (no byline); '' if none."""
    import lxml.html

    article = lxml.html.fromstring(html).xpath("//main/article")
    if not article:
        return ""
    return "\n".join(e.text_content() for e in article[0].xpath("./h1|./p[not(@class='byline')]"))


def extraction_quality(warc: Path) -> dict:
    import trafilatura

    from curation.extract import ExtractionSettings, extract_main_text
    from curation.warc import ReadStats, iter_warc_documents

    def traf(html, **kw):
        return trafilatura.extract(html, output_format="txt", include_comments=False, deduplicate=False, **kw)

    extractors = {
        "modelworks": lambda h, u: extract_main_text(h, u, ExtractionSettings(time_limit_s=0)),
        "trafilatura_default": lambda h, u: traf(h, url=u),
        "datatrove_settings": lambda h, u: traf(h, url=u, favor_precision=True),
    }
    seen_fixture: set[str] = set()
    samples: list[tuple[str, str, str, str]] = []  # (set, url, html, reference)
    for doc in iter_warc_documents(warc, ReadStats()):
        if doc["url"].startswith("https://real.example/"):
            continue
        samples.append(("demo", doc["url"], doc["html"], demo_main_text(doc["html"])))
    for name, html, ref in fixture_pages():
        if name not in seen_fixture:
            seen_fixture.add(name)
            samples.append(("real", f"https://real.example/{name}", html, ref))
    outputs: dict[str, list] = {}
    report: dict = {}
    for name, fn in extractors.items():
        t0 = time.perf_counter()
        outputs[name] = [fn(html, url) for _, url, html, _ in samples]
        seconds = time.perf_counter() - t0
        row = {"ms_per_page": round(1000 * seconds / len(samples), 3)}
        for subset in ("demo", "real"):
            idx = [i for i, s in enumerate(samples) if s[0] == subset]
            prf = [word_prf(outputs[name][i], samples[i][3]) for i in idx]
            row[f"{subset}_f1_vs_truth"] = round(sum(f for _, _, f in prf) / len(prf), 4)
            row[f"{subset}_recall_vs_truth"] = round(sum(r for _, r, _ in prf) / len(prf), 4)
            row[f"{subset}_precision_vs_truth"] = round(sum(p for p, _, _ in prf) / len(prf), 4)
        outputs_default = outputs.get("trafilatura_default")
        if outputs_default is not None:
            row["f1_vs_trafilatura_default"] = round(
                sum(word_prf(o, d or "")[2] for o, d in zip(outputs[name], outputs_default)) / len(samples), 4)
        report[name] = row
    if "f1_vs_trafilatura_default" not in report["modelworks"]:
        report["modelworks"]["f1_vs_trafilatura_default"] = round(
            sum(word_prf(o, d or "")[2] for o, d in zip(outputs["modelworks"], outputs["trafilatura_default"]))
            / len(samples), 4)
    report["pages"] = {"demo": sum(s[0] == "demo" for s in samples), "real": sum(s[0] == "real" for s in samples)}
    per_fixture = {}
    for i, s in enumerate(samples):
        if s[0] == "real":
            per_fixture[s[1].rsplit("/", 1)[1]] = {n: round(word_prf(outputs[n][i], s[3])[2], 3) for n in extractors}
    report["real_pages_f1"] = per_fixture
    return report


def filter_quality(kept_urls: set[str], truth: list[dict]) -> dict:
    from curation.demo.truth import score_curation

    return score_curation(kept_urls, truth)


# --- memory -----------------------------------------------------------------------------------


def memory_profile(base_warc: Path, sizes: list[int], base_pages: int, workers: int, workdir: Path) -> list[dict]:
    """Peak RSS of curating shards of `sizes` documents, built by repeating the base shard's gzip members."""
    rows = []
    data = base_warc.read_bytes()
    for size in sizes:
        copies = max(1, round(size / base_pages))
        path = workdir / f"mem_{size}.warc.gz"
        with open(path, "wb") as f:
            for _ in range(copies):
                f.write(data)
        t0 = time.perf_counter()
        res = run_modelworks(path, workers, workdir, f"mem_{size}")
        rows.append({"documents": res["documents_read"], "workers": res["workers"],
                     "peak_rss_mib_main": round(res["peak_rss_mib_main"], 1),
                     "peak_rss_mib_largest_worker": round(res["peak_rss_mib_largest_worker"], 1),
                     "seconds": round(time.perf_counter() - t0, 1)})
        log(f"  memory @ {res['documents_read']:>6} docs: main {rows[-1]['peak_rss_mib_main']} MiB, "
            f"largest worker {rows[-1]['peak_rss_mib_largest_worker']} MiB ({rows[-1]['seconds']} s)")
        path.unlink()
        shutil.rmtree(res["out_dir"], ignore_errors=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=1000, help="demo pages in the benchmark shard")
    ap.add_argument("--memory-sizes", default="1000,10000", help="shard sizes for the memory profile ('' skips)")
    ap.add_argument("--memory-workers", type=int, default=0, help="workers for the memory runs (0 = every core)")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--json", default=None, help="also write the full report here")
    args = ap.parse_args()

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="curation-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    dt_python = ensure_datatrove(os.environ.get("DATATROVE_PYTHON", DEFAULT_DT_PYTHON))
    warc, truth = build_input(workdir, args.pages)
    log(f"input: {warc} ({warc.stat().st_size / 1e6:.1f} MB, {args.pages} demo pages + {max(1, args.pages // 10)} "
        f"realistic pages); machine: {os.cpu_count()} cores")

    dt = run_datatrove(dt_python, warc, workdir)
    log(f"DataTrove  (1 worker): {dt['docs']} docs in {dt['seconds']:.2f} s = {dt['docs_per_s']:.1f} docs/s")
    mw1 = run_modelworks(warc, 1, workdir, "single")
    log(f"Modelworks (1 worker): {mw1['documents_read']} docs in {mw1['seconds_total']:.2f} s = "
        f"{mw1['docs_per_s']:.1f} docs/s   stage seconds {mw1['seconds_per_stage']}")
    mwn = run_modelworks(warc, 0, workdir, "multi")
    log(f"Modelworks ({mwn['workers']} workers): {mwn['documents_read']} docs in {mwn['seconds_total']:.2f} s = "
        f"{mwn['docs_per_s']:.1f} docs/s")

    import pyarrow.parquet as pq

    mw_kept = set(pq.read_table(Path(mw1["out_dir"]) / "kept.parquet", columns=["url"]).column("url").to_pylist())
    demo_urls = {t["url"] for t in truth}
    report = {
        "throughput": {"datatrove_docs_per_s": round(dt["docs_per_s"], 2),
                       "modelworks_single_docs_per_s": mw1["docs_per_s"],
                       "modelworks_multi_docs_per_s": mwn["docs_per_s"], "multi_workers": mwn["workers"]},
        "keep_drop_vs_ground_truth": {
            "modelworks": filter_quality(mw_kept & demo_urls, truth),
            "datatrove": filter_quality(set(dt["kept_urls"]) & demo_urls, truth),
        },
        "modelworks_drops": mw1["dropped_by_reason"],
    }
    log("keep/drop vs demo ground truth (positives: English content pages): "
        + json.dumps(report["keep_drop_vs_ground_truth"]))
    report["extraction"] = extraction_quality(warc)
    log("extraction quality: " + json.dumps(report["extraction"], indent=1))
    sizes = [int(s) for s in args.memory_sizes.split(",") if s.strip()]
    if sizes:
        report["memory"] = memory_profile(warc, sizes, mw1["documents_read"], args.memory_workers, workdir)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    speedup = mw1["docs_per_s"] / dt["docs_per_s"]
    print(f"RESULT speedup_vs_datatrove={speedup:.2f}", flush=True)


if __name__ == "__main__":
    main()
