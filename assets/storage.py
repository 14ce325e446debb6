"""The one storage owner: names every location an asset reads or writes, on a local path or an fsspec URL.

Assets never build a path: they ask this resource for a location (`storage.curated_pages(shard)`,
`storage.model("dapt")`, ...) and read or write it through two context managers:

- `storage.reading(loc)` yields a local path to read: the location itself on a local root; on
  object storage, a copy fetched into a local cache.
- `storage.writing(loc)` yields a local path to write (a file or a folder) and commits it when
  the block ends without error: on a local root, written beside and renamed into place; on
  object storage, the whole object (or folder, then a `_COMMITTED` marker written last) is
  uploaded only after the write succeeded. A killed run never leaves a half table a reader
  would take for whole; a failed block leaves the previous version untouched.

Layout under the root:

    landing/                         new crawl shards (the sensor watches it; a recipe's inputs.crawl is read where
                                     it is instead, see `crawl`)
    raw/crawl/<shard file>           ingested shards
    tables/<asset>/[<shard>/]<file>  Parquet tables (curated, dropped, signatures, deduplicated, corpora)
    seed/                            the seed documents as ingested; seed/chunks.parquet
    synthetic/                       SFT, preference and quarantine JSONL; teacher_cache/
    benchmarks/                      benchmark JSONL per task and split; lm_eval_tasks/
    decontaminated/                  every training set after decontamination
    models/<stage>/                  Hugging Face model directories (tokenizer, base, dapt, sft, dpo, open)
    tokens/<corpus>/                 packed token shards
    checkpoints/<stage>/             resumable training checkpoints
    eval/<stage>.json                scores; reports/ the stage report
    demo/                            the generated demo world (only when the demo is run)
    recipe.resolved.yaml             the recipe of the latest `modelworks run` here; recipes/ every one that ran
    logs/                            the full logs of `modelworks` commands
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import dagster as dg

SHARD_SUFFIXES = (".warc.gz", ".warc", ".arc.gz", ".arc", ".jsonl.gz", ".jsonl", ".parquet")
COMMITTED = "_COMMITTED"
# The asset op that writes a model stage's directory (and its checkpoints).
MODEL_OPS = {"tokenizer": "tokenizer", "open": "open_model", "base": "base_model", "dapt": "dapt_model",
             "sft": "sft_model", "dpo": "dpo_model"}


def shard_key(filename: str) -> str | None:
    """The partition key of a crawl shard file (its name without the shard suffix), or None."""
    for suffix in SHARD_SUFFIXES:
        if filename.endswith(suffix) and not filename.startswith("."):
            return filename[: -len(suffix)]
    return None


class ModelworksStorage(dg.ConfigurableResource):
    """The storage root (`MODELWORKS_HOME`): a local folder or an fsspec URL such as `s3://bucket/prefix`."""

    root: str
    cache_dir: str = ""  # local copies of remote inputs; empty = a folder under the system temp dir
    # The crawl, read where it is (a recipe's inputs.crawl): files, folders or globs, local or fsspec URLs.
    # Empty: the crawl is whatever lies in the landing folder.
    crawl: list[str] = []
    # Content keys of stages (op name -> a hash of the stage's resolved settings and of its inputs' keys, as
    # `pipelines.runner` computes them for the variants of an ablation). A keyed stage's locations move under
    # `stages/<op>/<key>/`, so variants whose settings and inputs agree share its output and the others write
    # their own. Empty (a plain `modelworks run`): the layout below, unchanged.
    stage_keys: dict[str, str] = {}

    # ---------------------------------------------------------------- the layout
    def _loc(self, *parts: str) -> str:
        if self.is_local:
            return str(Path(self.root).joinpath(*parts))
        return "/".join([self.root.rstrip("/"), *parts])

    def _staged(self, op: str | None, *parts: str) -> str:
        """A location written by the asset op `op`: under its content key when the stage has one."""
        key = self.stage_keys.get(op) if op else None
        return self._loc("stages", op, key, *parts) if key else self._loc(*parts)

    def stage_dir(self, op: str, key: str) -> str:
        """Everything one stage wrote under one content key (and its `_done/` markers)."""
        return self._loc("stages", op, key)

    def stage_done(self, op: str, key: str, partition: str | None = None) -> str:
        """The marker the runner writes once a keyed stage (one partition of it) was materialized."""
        return self._loc("stages", op, key, "_done", f"{partition or '_all'}.json")

    def current_stage(self, op: str, partition: str | None = None) -> str:
        """What a plain run last materialized for a stage (partition) here: its content key and run id (the runner
        skips the stage while both still hold)."""
        return self._loc("stages", op, "_current", f"{partition or '_all'}.json")

    def with_stage_keys(self, stage_keys: dict[str, str]) -> "ModelworksStorage":
        """The same root seen with another variant's stage keys."""
        return ModelworksStorage(root=self.root, cache_dir=self.cache_dir, crawl=list(self.crawl),
                                 stage_keys=dict(stage_keys))

    def variants_manifest(self) -> str:
        """The latest ablation here: every variant, its overrides and its stage keys (written by the runner)."""
        return self._loc("reports", "variants.json")

    def comparison(self, suffix: str) -> str:
        """The variants side by side: comparison.json, .md, .html, .png."""
        return self._loc("reports", f"comparison.{suffix}")

    def reuse_log(self) -> str:
        """One JSON line per stage (partition) an ablation variant reused or materialized."""
        return self._loc("reports", "reuse.jsonl")

    def keep_ablation_outputs(self, new_reports: Path) -> list[str]:
        """Copy an earlier ablation's files (comparison.*, variants.json, reuse.jsonl) into `new_reports`, the
        folder a plain run's stage_report is about to put in place of reports/, so that they survive it. Nothing
        when this view's report is written elsewhere (an ablation variant's own key). Returns the names kept."""
        if self.reports() != self._loc("reports"):
            return []
        kept = []
        new_reports.mkdir(parents=True, exist_ok=True)
        for loc in (self.variants_manifest(), self.reuse_log(),
                    *(self.comparison(s) for s in ("json", "md", "html", "png"))):
            if self.exists(loc):
                with self.reading(loc) as path:
                    shutil.copy2(path, new_reports / Path(path).name)
                kept.append(Path(path).name)
        return kept

    def landing(self) -> str:
        return self._loc("landing")

    def landing_file(self, filename: str) -> str:
        return self._loc("landing", filename)

    def crawl_files(self) -> dict[str, str]:
        """Every crawl shard: partition key -> the location of its file (in `crawl`, else in the landing folder)."""
        if not self.crawl:
            names = self.listdir(self.landing())
            files: dict[str, str] = {}
            for suffix in SHARD_SUFFIXES:  # a.warc.gz beside a.jsonl: the first suffix listed wins, as it always has
                for name in names:
                    key = shard_key(name)
                    if key and name.endswith(suffix) and key not in files:
                        files[key] = self.landing_file(name)
            return dict(sorted(files.items()))
        from curation.readers import expand_sources

        files = {}
        for loc in expand_sources(self.crawl):
            key = shard_key(loc.rstrip("/").rsplit("/", 1)[-1].rsplit(os.sep, 1)[-1])
            if key is None:
                continue
            if key in files:
                raise ValueError(f"two crawl files would be shard {key!r}: {files[key]} and {loc} (shards are "
                                 "named by their file name)")
            files[key] = loc
        return files

    def crawl_file(self, shard: str) -> str | None:
        """The location of a crawl shard's file, or None."""
        return self.crawl_files().get(shard)

    def raw_shard(self, filename: str) -> str:
        return self._staged("crawl_shard", "raw", "crawl", filename)

    def curated_pages(self, shard: str) -> str:
        return self._staged("curated_pages", "tables", "curated_pages", shard, "pages.parquet")

    def curated_dropped(self, shard: str) -> str:
        return self._staged("curated_pages", "tables", "curated_pages_dropped", shard, "pages.parquet")

    def signatures(self, shard: str) -> str:
        return self._staged("minhash_signatures", "tables", "minhash_signatures", shard, "signatures.parquet")

    def deduplicated_pages(self) -> str:
        return self._staged("deduplicated_pages", "tables", "deduplicated_pages", "pages.parquet")

    def duplicates_removed(self) -> str:
        return self._staged("deduplicated_pages", "tables", "deduplicated_pages_removed", "pages.parquet")

    def corpus(self, name: str) -> str:
        """`domain_corpus` or `general_corpus` (Parquet)."""
        return self._staged("domain_selection", "tables", name, "pages.parquet")

    def tables_root(self) -> str:
        """Every table's folder. With stage keys (an ablation variant) on a local root: a folder of links to this
        variant's keyed tables (`stages/table_catalog/<key>/tables/`), so the catalog sees what the variant sees."""
        key = self.stage_keys.get("table_catalog")
        if not key or not self.is_local:
            return self._loc("tables")
        view = Path(self._loc("stages", "table_catalog", key, "tables"))
        view.mkdir(parents=True, exist_ok=True)
        for name, loc in (("curated_pages", self.curated_pages("_")), ("curated_pages_dropped", self.curated_dropped("_")),
                          ("minhash_signatures", self.signatures("_")),
                          ("deduplicated_pages", self.deduplicated_pages()),
                          ("deduplicated_pages_removed", self.duplicates_removed()),
                          *((c, self.corpus(c)) for c in ("domain_corpus", "general_corpus", "general_heldout_text"))):
            target = Path(loc).parent.parent if loc.endswith("_/pages.parquet") or "/_/" in loc else Path(loc).parent
            link = view / name
            if target.exists() and not link.exists():
                link.symlink_to(target, target_is_directory=True)
        return str(view)

    def seed_documents(self) -> str:
        return self._staged("seed_corpus", "seed", "documents")

    def seed_chunks(self) -> str:
        return self._staged("seed_corpus", "seed", "chunks.parquet")

    def synthetic(self, name: str, batch: str) -> str:
        """`sft`, `preferences`, `quarantine` (JSONL) of one batch of seed documents."""
        return self._staged("synthetic_data", "synthetic", batch, f"{name}.jsonl")

    def teacher_cache(self) -> str:
        return self._loc("synthetic", "teacher_cache")

    def benchmark_sources(self) -> str:
        """Benchmark JSONL files as generated here (demo facts, held-out seed documents), before validation."""
        return self._staged("benchmark_suite", "benchmarks", "sources")

    def benchmark_suite(self) -> str:
        """The validated suite: manifest.json (written last), data/<name>.<split>.jsonl, lm_eval_tasks/."""
        return self._staged("benchmark_suite", "benchmarks", "suite")

    def benchmark_generation_quarantine(self) -> str:
        return self._staged("benchmark_suite", "benchmarks", "generation_quarantine.jsonl")

    def external_tasks(self) -> str:
        """The user's lm-eval task names and YAML folders that every stage is also scored on."""
        return self._staged("benchmark_suite", "benchmarks", "external_tasks.json")

    def decontaminated(self, name: str) -> str:
        """A training set after decontamination: web corpora as Parquet, synthetic chat sets as JSONL."""
        return self._staged("decontaminated_training_sets", "decontaminated",
                            f"{name}.parquet" if name.endswith("_corpus") else f"{name}.jsonl")

    def decontamination_log(self) -> str:
        """One row per training document that decontamination cut or dropped, with the items it leaked."""
        return self._staged("decontaminated_training_sets", "decontaminated", "actions.jsonl")

    def model(self, stage: str) -> str:
        """A Hugging Face model directory: tokenizer, open, base, dapt, sft, dpo."""
        return self._staged(MODEL_OPS.get(stage), "models", stage)

    def open_model_card(self) -> str:
        """Which start the chain took: {"start": "scratch" | source, parameters, ...}."""
        return self._staged("open_model", "models", "open_model.json")

    def tokens(self, corpus: str) -> str:
        return self._staged("token_shards", "tokens", corpus)

    def checkpoints(self, stage: str) -> str:
        return self._staged(MODEL_OPS.get(stage), "checkpoints", stage)

    def checkpoint_run(self, stage: str, fingerprint: str) -> str:
        """One training run's checkpoints, named by the fingerprint of everything it computes from."""
        return self._staged(MODEL_OPS.get(stage), "checkpoints", stage, fingerprint)

    def run_file(self, stage: str, fingerprint: str) -> str:
        """The torchrun entry point's RUN.json for that run."""
        return self._staged(MODEL_OPS.get(stage), "checkpoints", stage, fingerprint, "run.json")

    def scores(self, stage: str, split: str = "test") -> str:
        return self._staged(f"{stage}_model_scores", "eval", f"{stage}.{split}.json")

    def reports(self) -> str:
        return self._staged("stage_report", "reports")

    def report_json(self) -> str:
        return self._staged("stage_report", "reports", "report.json")

    def recipe_resolved(self) -> str:
        """The resolved recipe (YAML) of the latest `modelworks run` into this root."""
        return self._loc("recipe.resolved.yaml")

    def recipe_copy(self, name: str, digest: str) -> str:
        """Every resolved recipe that ran here, by name and hash."""
        return self._loc("recipes", f"{name}-{digest}.yaml")

    def log_file(self, name: str) -> str:
        """A `modelworks` command's full log."""
        return self._loc("logs", name)

    def catalog_db(self) -> str:
        return self._staged("table_catalog", "catalog.duckdb")

    def demo(self, *parts: str) -> str:
        return self._loc("demo", *parts)

    def demo_seed(self) -> str:
        """The demo world's maintenance manuals: the default seed folder when the demo is run."""
        return self._loc("demo", "seed")

    def demo_truth(self) -> str:
        """The demo crawl's ground-truth sidecar (one JSONL per shard)."""
        return self._loc("demo", "truth")

    def demo_facts(self) -> str:
        """The demo world's fact base: present only where the demo generator wrote its world."""
        return self._loc("demo", "facts.json")

    # ---------------------------------------------------------------- access
    @property
    def is_local(self) -> bool:
        return "://" not in self.root or self.root.startswith("file://")

    @property
    def fs(self):
        import fsspec

        return fsspec.core.url_to_fs(self.root)[0]

    @staticmethod
    def _is_local_loc(loc: str) -> bool:
        return "://" not in loc or loc.startswith("file://")

    @staticmethod
    def _fs_of(loc: str):
        """The filesystem of a location: the root's, or another one's for inputs read where they are."""
        import fsspec

        return fsspec.core.url_to_fs(loc)[0]

    def exists(self, loc: str) -> bool:
        if self._is_local_loc(loc):
            return Path(loc.removeprefix("file://")).exists()
        fs = self._fs_of(loc)
        return fs.isfile(loc) or fs.exists(f"{loc.rstrip('/')}/{COMMITTED}")

    def listdir(self, loc: str) -> list[str]:
        """Names inside a folder location (empty when it does not exist)."""
        if self.is_local:
            return sorted(p.name for p in Path(loc).iterdir()) if Path(loc).is_dir() else []
        fs = self.fs
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(loc, detail=False)) if fs.exists(loc) else []

    def _cache_root(self) -> Path:
        base = Path(self.cache_dir) if self.cache_dir else Path(tempfile.gettempdir()) / "modelworks-cache"
        return base / hashlib.sha256(self.root.encode()).hexdigest()[:12]

    @contextlib.contextmanager
    def reading(self, loc: str) -> Iterator[Path]:
        """A local path holding `loc` (a file or a folder) for the duration of the block."""
        if self._is_local_loc(loc):
            if not Path(loc.removeprefix("file://")).exists():
                raise FileNotFoundError(f"{loc} does not exist: materialize the asset that writes it first")
            yield Path(loc.removeprefix("file://"))
            return
        if not self.exists(loc):
            raise FileNotFoundError(f"{loc} does not exist (or was never committed) in {self.root}")
        local = self._cache_root() / hashlib.sha256(loc.encode()).hexdigest()[:16] / loc.rstrip("/").rsplit("/", 1)[-1]
        shutil.rmtree(local.parent, ignore_errors=True)
        local.parent.mkdir(parents=True, exist_ok=True)
        fs = self._fs_of(loc)
        if fs.isfile(loc):
            fs.get(loc, str(local))
        else:
            fs.get(loc.rstrip("/") + "/", str(local) + "/", recursive=True)
            (local / COMMITTED).unlink(missing_ok=True)
        try:
            yield local
        finally:
            shutil.rmtree(local.parent, ignore_errors=True)

    def local_path(self, loc: str) -> Path:
        """`loc` as a local path, for steps that need a lasting local folder (training, serving)."""
        if not self.is_local:
            raise ValueError(f"{loc} is on object storage; this step needs a local root (MODELWORKS_HOME)")
        return Path(loc)

    @contextlib.contextmanager
    def writing(self, loc: str) -> Iterator[Path]:
        """A fresh local path to write `loc` into (file or folder); committed only if the block succeeds."""
        if self.is_local:
            target = Path(loc)
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        else:
            staging = Path(tempfile.mkdtemp(prefix="modelworks-write-"))
        tmp = staging / Path(loc.rstrip("/")).name
        try:
            yield tmp
            if not tmp.exists():
                raise FileNotFoundError(f"nothing was written for {loc}")
            if self.is_local:
                if tmp.is_dir() and target.exists():
                    # Folder replace: move the old one aside first, so a reader never sees a mix.
                    old = staging / ".old"
                    os.replace(target, old)
                    os.replace(tmp, target)
                else:
                    os.replace(tmp, target)
            else:
                fs = self.fs
                if tmp.is_dir():
                    if fs.exists(loc):
                        fs.rm(loc, recursive=True)
                    fs.put(str(tmp) + "/", loc.rstrip("/") + "/", recursive=True)
                    with fs.open(f"{loc.rstrip('/')}/{COMMITTED}", "wb") as f:  # written last: the folder is whole
                        f.write(b"")
                else:
                    fs.put_file(str(tmp), loc)  # one object: visible only once the upload completed
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def write_text(self, text: str, loc: str) -> str:
        with self.writing(loc) as p:
            p.write_text(text, encoding="utf-8")
        return loc

    def read_text(self, loc: str) -> str:
        with self.reading(loc) as p:
            return p.read_text(encoding="utf-8")


def modelworks_home() -> str:
    """The storage root: `MODELWORKS_HOME`, or `.modelworks/` in the checkout."""
    return os.environ.get("MODELWORKS_HOME", str(Path(__file__).resolve().parent.parent / ".modelworks"))
