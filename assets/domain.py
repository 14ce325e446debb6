"""Domain group: bottom-up selection of domain pages from the curated web by similarity to the seed corpus."""

import dagster as dg
import numpy as np
import pyarrow as pa

from assets.curation import demo_truth, read_table
from assets.dedup import deduplicated_pages
from assets.seed import seed_corpus
from assets.storage import ModelworksStorage
from curation.domain import DEFAULT_DOMAIN_THRESHOLD, domain_similarity, holdout_mask, select_domain
from curation.tables import write_parquet_atomic


class DomainSelectionConfig(dg.Config):
    similarity_threshold: float = DEFAULT_DOMAIN_THRESHOLD
    general_heldout_fraction: float = 0.1  # general pages set aside to measure forgetting (perplexity)
    general_heldout_max_docs: int = 200


@dg.multi_asset(
    specs=[
        dg.AssetSpec("domain_corpus", group_name="domain", code_version="1", kinds={"parquet"},
                     deps=[deduplicated_pages, seed_corpus],
                     description="Curated web pages similar to the seed corpus: the DAPT corpus."),
        dg.AssetSpec("general_corpus", group_name="domain", code_version="3", kinds={"parquet"},
                     deps=[deduplicated_pages, seed_corpus],
                     description="The rest of the curated web: the general pretraining corpus."),
        dg.AssetSpec("general_heldout_text", group_name="domain", code_version="2", kinds={"parquet"},
                     deps=[deduplicated_pages, seed_corpus],
                     description="General web pages set aside by a seeded hash and never trained on: the "
                                 "general-text perplexity that shows forgetting during DAPT and SFT."),
    ],
)
def domain_selection(config: DomainSelectionConfig, storage: ModelworksStorage):
    pages = read_table(storage, storage.deduplicated_pages())
    # Only the generation part of the seed corpus steers selection; held-out documents stay unseen.
    chunks = read_table(storage, storage.seed_chunks(), columns=["doc_id", "text", "split"])
    by_doc: dict[str, list[str]] = {}
    for doc, text, split in zip(*(chunks.column(c).to_pylist() for c in ("doc_id", "text", "split"))):
        if split == "generation":
            by_doc.setdefault(doc, []).append(text)
    seed_texts = ["\n\n".join(parts) for parts in by_doc.values()]
    scores = domain_similarity(seed_texts, pages.column("text").to_pylist())
    mask = select_domain(scores, config.similarity_threshold)
    pages = pages.append_column("domain_score", pa.array(scores.astype(np.float64)))
    domain = pages.filter(pa.array(mask))
    held = ~mask & holdout_mask(pages.column("id").to_pylist(), config.general_heldout_fraction)
    held[np.flatnonzero(held)[config.general_heldout_max_docs:]] = False
    general = pages.filter(pa.array(~mask & ~held))
    heldout = pages.filter(pa.array(held))
    for table, name in ((domain, "domain_corpus"), (general, "general_corpus"), (heldout, "general_heldout_text")):
        with storage.writing(storage.corpus(name)) as tmp:
            write_parquet_atomic(table, tmp)
    truth = demo_truth(storage)
    quality = {}
    if truth:
        from curation.demo.truth import score_domain

        quality["vs_ground_truth"] = dg.MetadataValue.json(score_domain(
            set(domain.column("url").to_pylist()), set(pages.column("url").to_pylist()), truth))
    hist = np.histogram(scores, bins=10, range=(0.0, 1.0))[0].tolist()
    yield dg.MaterializeResult(asset_key="domain_corpus", metadata={
        "rows": domain.num_rows, "words": int(pa.compute.sum(domain.column("n_words")).as_py() or 0),
        "selected_fraction": round(domain.num_rows / max(1, pages.num_rows), 4),
        "threshold": config.similarity_threshold, "score_histogram_0_to_1": dg.MetadataValue.json(hist),
        "seed_documents_used": len(seed_texts),
        "path": dg.MetadataValue.path(storage.corpus("domain_corpus")), **quality})
    yield dg.MaterializeResult(asset_key="general_corpus", metadata={
        "rows": general.num_rows, "words": int(pa.compute.sum(general.column("n_words")).as_py() or 0),
        "path": dg.MetadataValue.path(storage.corpus("general_corpus"))})
    yield dg.MaterializeResult(asset_key="general_heldout_text", metadata={
        "rows": heldout.num_rows, "words": int(pa.compute.sum(heldout.column("n_words")).as_py() or 0),
        "path": dg.MetadataValue.path(storage.corpus("general_heldout_text"))})


@dg.asset_check(asset="domain_corpus", description="The domain corpus is non-empty and clearly more similar to the "
                                                   "seed corpus than the general corpus is.")
def domain_corpus_separates_from_general(storage: ModelworksStorage) -> dg.AssetCheckResult:
    domain = read_table(storage, storage.corpus("domain_corpus"), columns=["domain_score"])
    general = read_table(storage, storage.corpus("general_corpus"), columns=["domain_score"])
    d = float(np.mean(domain.column("domain_score").to_numpy())) if domain.num_rows else 0.0
    g = float(np.mean(general.column("domain_score").to_numpy())) if general.num_rows else 0.0
    return dg.AssetCheckResult(passed=domain.num_rows > 0 and d > 2 * g,
                               metadata={"domain_rows": domain.num_rows, "mean_score_domain": round(d, 4),
                                         "mean_score_general": round(g, 4)})


@dg.asset(group_name="catalog", code_version="1", deps=["deduplicated_pages", "domain_corpus", "general_corpus"],
          kinds={"duckdb"},
          description="A DuckDB file with one view per Parquet table, for ad-hoc SQL over every stage's rows.")
def table_catalog(storage: ModelworksStorage) -> dg.MaterializeResult:
    from curation.catalog import build_catalog, query

    with storage.reading(storage.tables_root()) as tables, storage.writing(storage.catalog_db()) as db:
        rows = build_catalog(tables, db)
        reasons = query(db, "SELECT drop_reason, count(*) AS pages FROM curated_pages_dropped "
                            "GROUP BY 1 ORDER BY 2 DESC") if "curated_pages_dropped" in rows else []
    md = "| drop reason | pages |\n|---|---|\n" + "\n".join(f"| {r} | {n} |" for r, n in reasons)
    return dg.MaterializeResult(metadata={"rows_per_view": dg.MetadataValue.json(rows),
                                          "drop_reasons_all_shards": dg.MetadataValue.md(md),
                                          "path": dg.MetadataValue.path(storage.catalog_db())})
