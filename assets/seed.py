"""Seed group: the user's own domain documents, read, cleaned, chunked and split into generation / held-out parts."""

import time
from collections import Counter

import dagster as dg
import pyarrow as pa
from pydantic import Field

from assets.partitions import SEED_BATCHES
from assets.configs import derived_config
from assets.storage import ModelworksStorage
from curation.seed import SeedSettings
from curation.tables import write_parquet_atomic


SeedCorpusConfig = derived_config(
    "SeedCorpusConfig", SeedSettings,
    extra={"source_dir": (str, Field(default="", description="A folder (local path or fsspec URL) of Markdown, text, "
                                                             "HTML and PDF documents (recipe: inputs.seed_docs; "
                                                             "`modelworks demo` sets it to the demo world's manuals)."))})


@dg.asset(group_name="ingest", code_version="4", kinds={"parquet"},
          description="The domain seed corpus: documents split along headings and paragraphs into chunks with stable "
                      "ids, each document assigned to the generation or the held-out part by a seeded hash.")
def seed_corpus(context: dg.AssetExecutionContext, config: SeedCorpusConfig, storage: ModelworksStorage) -> dg.MaterializeResult:
    from curation.seed import chunk_document, read_seed_documents, seed_batch, split_documents

    source = config.source_dir
    if not source:
        raise dg.Failure("no seed documents: set inputs.seed_docs in the recipe (or --set inputs.seed_docs=DIR; in "
                         "the Launchpad seed_corpus.config.source_dir) to a folder of your documents (Markdown, text, "
                         "HTML, PDF), or run `modelworks demo` for the generated demo world")
    t0 = time.perf_counter()
    try:
        docs, skipped = read_seed_documents(source)
    except FileNotFoundError as err:
        raise dg.Failure(str(err)) from err
    if not docs:
        raise dg.Failure(f"no readable seed documents in {source}", metadata={"skipped": dg.MetadataValue.json(skipped)})
    generation, heldout = split_documents(docs, config.heldout_fraction, config.split_seed)
    split_of = {d.id: "generation" for d in generation} | {d.id: "heldout" for d in heldout}
    rows = []
    for doc in docs:
        for c in chunk_document(doc, max_words=config.max_chunk_words, min_words=config.min_chunk_words):
            rows.append({"chunk_id": c.id, "doc_id": c.doc_id, "source": c.source, "heading": c.heading,
                         "text": c.text, "index": c.index, "split": split_of[doc.id],
                         "batch": SEED_BATCHES[seed_batch(doc.id, len(SEED_BATCHES))]})
    table = pa.Table.from_pylist(rows)
    with storage.writing(storage.seed_chunks()) as tmp:
        write_parquet_atomic(table, tmp)
    context.log.info(f"seed corpus: {len(docs)} documents, {len(rows)} chunks from {source}")
    words = sum(len(r["text"].split()) for r in rows)
    per_split = {s: sum(1 for r in rows if r["split"] == s) for s in ("generation", "heldout")}
    by_type = Counter(d.kind for d in docs)
    return dg.MaterializeResult(metadata={
        "source": str(source), "documents": len(docs), "generation_documents": len(generation),
        "heldout_documents": len(heldout), "chunks": len(rows), "chunks_per_split": dg.MetadataValue.json(per_split),
        "words": words, "documents_by_type": dg.MetadataValue.json(dict(sorted(by_type.items()))),
        "skipped_files": dg.MetadataValue.json(skipped),
        "heldout_sources": dg.MetadataValue.json(sorted(d.source for d in heldout)),
        "read_s": round(time.perf_counter() - t0, 2), "path": dg.MetadataValue.path(storage.seed_chunks())})


@dg.asset_check(asset=seed_corpus, blocking=True,
                description="Both parts are non-empty and no document has chunks in both parts.")
def seed_split_is_by_document(storage: ModelworksStorage) -> dg.AssetCheckResult:
    from assets.curation import read_table

    t = read_table(storage, storage.seed_chunks(), columns=["doc_id", "split"])
    splits: dict[str, set] = {}
    for doc, split in zip(t.column("doc_id").to_pylist(), t.column("split").to_pylist()):
        splits.setdefault(doc, set()).add(split)
    mixed = [d for d, s in splits.items() if len(s) > 1]
    parts = {s for v in splits.values() for s in v}
    return dg.AssetCheckResult(passed=not mixed and "generation" in parts,
                               metadata={"documents": len(splits), "documents_in_both_parts": len(mixed),
                                         "parts": dg.MetadataValue.json(sorted(parts))})
