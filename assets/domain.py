"""Domain group: bottom-up selection of domain pages from the curated web by a seed-vs-crawl classifier."""

import dagster as dg
import numpy as np
import pyarrow as pa
from pydantic import Field

from assets.curation import read_table
from assets.dedup import deduplicated_pages
from assets.seed import seed_corpus
from assets.storage import ModelworksStorage
from assets.configs import derived_config, library_default, to_library
from curation.domain import DomainClassifierConfig, HeldoutTextSettings, holdout_mask, seed_vocabulary_share, select_domain_pages
from curation.tables import write_parquet_atomic

DomainSelectionConfig = derived_config(
    "DomainSelectionConfig", DomainClassifierConfig,
    extra={"general_heldout_fraction": (float, Field(default=library_default(HeldoutTextSettings, "fraction"),
                                                     description="General pages set aside to measure forgetting "
                                                                 "(perplexity), by a seeded hash of their id.")),
           "general_heldout_max_docs": (int, library_default(HeldoutTextSettings, "max_docs"))})


def _generation_chunks(storage: ModelworksStorage) -> tuple[list[str], list[str]]:
    """(texts, document ids) of the seed chunks of the generation part; held-out documents stay unseen."""
    chunks = read_table(storage, storage.seed_chunks(), columns=["doc_id", "text", "split"])
    rows = [(d, t) for d, t, s in zip(*(chunks.column(c).to_pylist() for c in ("doc_id", "text", "split")))
            if s == "generation"]
    return [t for _, t in rows], [d for d, _ in rows]


@dg.multi_asset(
    specs=[
        dg.AssetSpec("domain_corpus", group_name="domain", code_version="2", kinds={"parquet"},
                     deps=[deduplicated_pages, seed_corpus],
                     description="Curated web pages a seed-vs-crawl classifier selects at a target precision "
                                 "(threshold and error measured on held-out data): the DAPT corpus."),
        dg.AssetSpec("general_corpus", group_name="domain", code_version="4", kinds={"parquet"},
                     deps=[deduplicated_pages, seed_corpus],
                     description="The rest of the curated web: the general pretraining corpus."),
        dg.AssetSpec("general_heldout_text", group_name="domain", code_version="3", kinds={"parquet"},
                     deps=[deduplicated_pages, seed_corpus],
                     description="General web pages set aside by a seeded hash and never trained on: the "
                                 "general-text perplexity that shows forgetting during DAPT and SFT."),
    ],
)
def domain_selection(context: dg.AssetExecutionContext, config: DomainSelectionConfig, storage: ModelworksStorage):
    pages = read_table(storage, storage.deduplicated_pages())
    seed_texts, seed_docs = _generation_chunks(storage)
    if not seed_texts:
        raise dg.Failure("the seed corpus has no generation chunks: nothing to select domain pages by")
    cfg = to_library(DomainClassifierConfig, config)
    langs = pages.column("lang").to_pylist() if "lang" in pages.column_names else None
    sel = select_domain_pages(seed_texts, seed_docs, pages.column("text").to_pylist(), cfg,
                              page_ids=pages.column("id").to_pylist(), page_languages=langs)
    if sel.warning:
        context.log.warning(sel.warning)
    mask = sel.selected
    pages = pages.append_column("domain_score", pa.array(sel.scores.astype(np.float64)))
    pages = pages.append_column("domain_probability", pa.array(sel.domain_probability.astype(np.float64)))
    domain = pages.filter(pa.array(mask))
    held = ~mask & holdout_mask(pages.column("id").to_pylist(), config.general_heldout_fraction)
    held[np.flatnonzero(held)[config.general_heldout_max_docs:]] = False
    general = pages.filter(pa.array(~mask & ~held))
    heldout = pages.filter(pa.array(held))
    for table, name in ((domain, "domain_corpus"), (general, "general_corpus"), (heldout, "general_heldout_text")):
        with storage.writing(storage.corpus(name)) as tmp:
            write_parquet_atomic(table, tmp)
    v = sel.validation
    estimates = {key: v[key] for key in ("expected_precision", "expected_recall") if v[key] is not None}
    hist = np.histogram(sel.scores, bins=10, range=(0.0, 1.0))[0].tolist()
    yield dg.MaterializeResult(asset_key="domain_corpus", metadata={
        "rows": domain.num_rows, "words": int(pa.compute.sum(domain.column("n_words")).as_py() or 0),
        "selected_fraction": round(domain.num_rows / max(1, pages.num_rows), 4),
        "threshold": v["threshold"], "min_precision": config.min_precision, **estimates,
        "recall_heldout_seed_chunks": v["recall_heldout_seed_chunks"],
        "estimated_domain_fraction": v["estimated_domain_fraction_of_crawl"], "seed_agreement": v["seed_agreement"],
        "validation": dg.MetadataValue.json(v),
        **({"warning": sel.warning} if sel.warning else {}), "score_histogram_0_to_1": dg.MetadataValue.json(hist),
        "seed_chunks_used": len(seed_texts), "seed_documents_used": len(set(seed_docs)),
        "path": dg.MetadataValue.path(storage.corpus("domain_corpus"))})
    yield dg.MaterializeResult(asset_key="general_corpus", metadata={
        "rows": general.num_rows, "words": int(pa.compute.sum(general.column("n_words")).as_py() or 0),
        "path": dg.MetadataValue.path(storage.corpus("general_corpus"))})
    yield dg.MaterializeResult(asset_key="general_heldout_text", metadata={
        "rows": heldout.num_rows, "words": int(pa.compute.sum(heldout.column("n_words")).as_py() or 0),
        "path": dg.MetadataValue.path(storage.corpus("general_heldout_text"))})


@dg.asset_check(asset="domain_corpus",
                description="The classifier found domain pages in the crawl. A warning, not a failure: a crawl "
                            "without pages of the seed documents' domain gives an empty domain corpus, and DAPT "
                            "then trains on the generation part of the seed documents instead.")
def domain_corpus_found_domain_pages(storage: ModelworksStorage) -> dg.AssetCheckResult:
    domain = read_table(storage, storage.corpus("domain_corpus"), columns=["id"])
    general = read_table(storage, storage.corpus("general_corpus"), columns=["id"])
    found = domain.num_rows > 0
    return dg.AssetCheckResult(passed=found, severity=dg.AssetCheckSeverity.WARN, metadata={
        "domain_rows": domain.num_rows, "general_rows": general.num_rows,
        "note": "" if found else "no crawl page scored like the held-out seed documents: the crawl holds no pages "
                                 "of this domain (see domain_corpus's validation metadata); DAPT falls back to "
                                 "the seed documents' generation part"})


@dg.asset_check(asset="domain_corpus", description="The domain corpus is lexically closer to the seed documents "
                                                   "than the general corpus: the share of its running words found "
                                                   "in the seed vocabulary is at least 1.25 times the general "
                                                   "corpus's (a plain word count, not the selecting classifier). "
                                                   "An empty domain corpus has nothing to separate and passes; "
                                                   "domain_corpus_found_domain_pages warns about it.")
def domain_corpus_separates_from_general(storage: ModelworksStorage) -> dg.AssetCheckResult:
    domain = read_table(storage, storage.corpus("domain_corpus"), columns=["text"]).column("text").to_pylist()
    general = read_table(storage, storage.corpus("general_corpus"), columns=["text"]).column("text").to_pylist()
    if not domain:
        return dg.AssetCheckResult(passed=True, metadata={
            "domain_rows": 0, "general_rows": len(general),
            "note": "empty domain corpus: nothing to separate (see domain_corpus_found_domain_pages)"})
    seed_texts, _ = _generation_chunks(storage)
    d = float(np.mean(seed_vocabulary_share(domain, seed_texts)))
    g = float(np.mean(seed_vocabulary_share(general, seed_texts))) if general else 0.0
    return dg.AssetCheckResult(passed=d >= 1.25 * g, metadata={
        "domain_rows": len(domain), "general_rows": len(general),
        "seed_word_share_domain": round(d, 4), "seed_word_share_general": round(g, 4)})


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
