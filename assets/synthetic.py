"""Synthetic group: guided SFT conversations and preference pairs from the generation part of the seed corpus.

Write-audit-publish: `synthetic_data` writes a batch's sets to a staging location
(`synthetic/<batch>/<set>.staged.jsonl`) and marks the batch `pending`; the blocking check
`synthetic_answers_supported_by_chunk` audits the staged SFT rows and, only when they pass,
publishes the three sets (`synthetic/<batch>/<set>.jsonl`) and marks the batch `passed`; a failed
audit marks it `failed` and publishes nothing. `read_synthetic`, the one reader of the synthetic sets
for everything downstream (decontamination, hence SFT and DPO training and the report), reads only
batches whose latest audit passed, and logs every batch it leaves out and why: a batch whose
blocking check failed, or whose latest materialization was never audited, stays out of every later
run (an earlier published version of it too) until a rematerialization passes.
"""

import time
from collections import Counter

import dagster as dg
from pydantic import Field

from assets.curation import read_table
from assets.partitions import seed_batch_partitions
from assets.configs import derived_config, to_library
from assets.seed import seed_corpus
from assets.storage import ModelworksStorage
from assets.teacher import TeacherResource
from curation.synthetic.chain import ChainConfig
from curation.tables import read_jsonl, write_jsonl_atomic

SYNTHETIC_SETS = ("sft", "preferences", "quarantine")
AUDIT_CHECK = "synthetic_answers_supported_by_chunk"


def staged_location(storage: ModelworksStorage, name: str, batch: str) -> str:
    """Where `synthetic_data` writes a set of a batch before its audit."""
    return storage.synthetic(f"{name}.staged", batch)


def audit_location(storage: ModelworksStorage, batch: str) -> str:
    """A batch's audit record (one JSON row): status pending | passed | failed, run ids, counts."""
    return storage.synthetic("audit", batch)


def _write_audit(storage: ModelworksStorage, batch: str, record: dict) -> None:
    with storage.writing(audit_location(storage, batch)) as tmp:
        write_jsonl_atomic([{"batch": batch, "time": round(time.time(), 3), **record}], tmp)


def read_audit(storage: ModelworksStorage, batch: str) -> dict:
    """The batch's latest audit record; {"status": "missing"} when it was never written."""
    loc = audit_location(storage, batch)
    if not storage.exists(loc):
        return {"batch": batch, "status": "missing"}
    with storage.reading(loc) as p:
        rows = read_jsonl(p)
    return rows[-1] if rows else {"batch": batch, "status": "missing"}


SyntheticDataConfig = derived_config(
    "SyntheticDataConfig", ChainConfig,
    extra={"on_policy_model": (str, Field(default="", description="On-policy preference answers: a model stage "
                                                                  "('sft') or an HF directory that samples the answers "
                                                                  "instead of the teacher."))},
    doc="The guided chain (topics -> questions of four kinds -> grounded answers -> judge): "
        "curation.synthetic.chain.ChainConfig's settings, defaults there.")


def _chain_config(config) -> ChainConfig:
    return to_library(ChainConfig, config)


def load_chunks(storage: ModelworksStorage, split: str, batch: str | None = None):
    """Seed chunks of one part (generation / heldout), optionally of one batch, as library Chunk objects."""
    from curation.seed import Chunk

    t = read_table(storage, storage.seed_chunks()).to_pylist()
    return [Chunk(id=r["chunk_id"], doc_id=r["doc_id"], source=r["source"], heading=r["heading"], text=r["text"],
                  index=r["index"]) for r in t if r["split"] == split and (batch is None or r["batch"] == batch)]


def teacher_failure(err: Exception, stats: dict) -> dg.Failure:
    return dg.Failure(f"the teacher stopped answering: {err}. Answers received so far are cached; rematerialize once "
                      "the server is back and only the unanswered prompts are sent again.",
                      metadata={"teacher_stats": dg.MetadataValue.json(stats)})


@dg.multi_asset(
    partitions_def=seed_batch_partitions,
    specs=[
        dg.AssetSpec("sft_conversations", group_name="synthetic", code_version="3", kinds={"jsonl"}, deps=[seed_corpus],
                     description='SFT chats {"messages": [...]} written by the teacher from seed chunks, judged on a '
                                 "rubric; every row names its document, chunk, teacher, prompt version and scores."),
        dg.AssetSpec("preference_pairs", group_name="synthetic", code_version="3", kinds={"jsonl"}, deps=[seed_corpus],
                     description="DPO pairs: several sampled answers per question ranked by the judge "
                                 "(chosen = best, rejected = worst, kept above a score margin)."),
        dg.AssetSpec("synthetic_quarantine", group_name="synthetic", code_version="3", kinds={"jsonl"},
                     deps=[seed_corpus], description="Teacher output that was malformed, off-topic, duplicated or "
                                                     "below the judge threshold, with its reason."),
    ],
)
def synthetic_data(context: dg.AssetExecutionContext, config: SyntheticDataConfig, storage: ModelworksStorage,
                   teacher: TeacherResource):
    from curation.synthetic.chain import run_chain
    from curation.synthetic.teacher import TeacherUnavailable

    batch = context.partition_key
    chunks = load_chunks(storage, "generation", batch)
    context.log.info(f"synthetic data for {batch}: {len(chunks)} chunks, teacher backend={teacher.backend}")
    # The batch's published sets stop counting from here: only an audit of what this run writes publishes again.
    _write_audit(storage, batch, {"status": "pending", "materialized_run": context.run.run_id})
    if not chunks:  # a batch with no generation documents: empty sets, and no teacher model is loaded for it
        for name in SYNTHETIC_SETS:
            with storage.writing(staged_location(storage, name, batch)) as tmp:
                write_jsonl_atomic([], tmp)
        for key, count in (("sft_conversations", "conversations"), ("preference_pairs", "pairs"),
                           ("synthetic_quarantine", "rows")):
            yield dg.MaterializeResult(asset_key=key, metadata={"chunks": 0, count: 0, "requests": 0,
                                                                "teacher_backend": teacher.backend})
        return
    t, judge = teacher.build(storage), teacher.build_judge(storage)
    answerer = None
    if config.on_policy_model:
        stage = config.on_policy_model
        model_dir = str(storage.local_path(storage.model(stage))) if stage in ("base", "dapt", "sft", "dpo") else stage
        answerer = teacher.on_policy(storage, model_dir)
    t0 = time.perf_counter()
    try:
        result = run_chain(chunks, t, _chain_config(config), judge=judge, answerer=answerer, log=context.log.info)
    except TeacherUnavailable as err:
        raise teacher_failure(err, t.stats) from err
    elapsed = time.perf_counter() - t0
    for name, rows in (("sft", result.sft), ("preferences", result.preferences), ("quarantine", result.quarantine)):
        with storage.writing(staged_location(storage, name, batch)) as tmp:  # published only once audited
            write_jsonl_atomic(rows, tmp)
    stats = result.stats
    from evaluation.histogram import histogram_png
    from evaluation.plots import png_markdown

    scores = [r["judge_mean"] for r in result.sft + result.quarantine if isinstance(r.get("judge_mean"), (int, float))]
    judge_hist = png_markdown(histogram_png(scores, "judge score of judged items", "rubric mean"), "judge scores")
    common = {"teacher_model": t.model_name, "teacher_backend": teacher.backend,
              "judge_model": (judge or t).model_name, "chunks": len(chunks),
              "generation_s": round(elapsed, 1)}
    yield dg.MaterializeResult(asset_key="sft_conversations", metadata={
        **common, "conversations": len(result.sft),
        "by_kind": dg.MetadataValue.json(dict(Counter(r.get("kind") for r in result.sft))),
        "documents": len({r.get("doc_id") for r in result.sft}),
        # teacher + judge + answerer together, as the chain counted them
        "requests": stats.get("requests", 0), "cache_hits": stats.get("cache_hits", 0),
        "tokens_in": stats.get("prompt_tokens", 0), "tokens_out": stats.get("completion_tokens", 0),
        "retries": stats.get("retries", 0), "request_errors": stats.get("request_errors", 0),
        "judge_mean_by_criterion": dg.MetadataValue.json(stats.get("judge_mean_by_criterion", {})),
        "quarantine_by_reason": dg.MetadataValue.json(stats.get("quarantine_by_reason", {})),
        "acceptance_rate_per_kind": dg.MetadataValue.json(stats.get("acceptance_rate_by_kind", {})),
        "judge_score_histogram": dg.MetadataValue.md(judge_hist),
        "sample": dg.MetadataValue.json(result.sft[:3]),
        "path": dg.MetadataValue.path(staged_location(storage, "sft", batch)),
        "published_path": dg.MetadataValue.path(storage.synthetic("sft", batch))})
    yield dg.MaterializeResult(asset_key="preference_pairs", metadata={
        **common, "pairs": len(result.preferences), "sample": dg.MetadataValue.json(result.preferences[:2]),
        "on_policy_model": config.on_policy_model or "(teacher)",
        "path": dg.MetadataValue.path(staged_location(storage, "preferences", batch)),
        "published_path": dg.MetadataValue.path(storage.synthetic("preferences", batch))})
    yield dg.MaterializeResult(asset_key="synthetic_quarantine", metadata={
        **common, "rows": len(result.quarantine),
        "by_reason": dg.MetadataValue.json(dict(Counter(r.get("reason") for r in result.quarantine))),
        "sample": dg.MetadataValue.json(result.quarantine[:3]),
        "path": dg.MetadataValue.path(staged_location(storage, "quarantine", batch)),
        "published_path": dg.MetadataValue.path(storage.synthetic("quarantine", batch))})


def synthetic_batch_status(storage: ModelworksStorage) -> dict[str, dict]:
    """Every seed batch's audit record (status pending | passed | failed | missing)."""
    from assets.partitions import SEED_BATCHES

    return {batch: read_audit(storage, batch) for batch in SEED_BATCHES}


def read_synthetic(storage: ModelworksStorage, name: str, log=None, left_out: list | None = None) -> list[dict]:
    """One synthetic set over every seed batch whose latest blocking audit passed (see the module docstring).

    A batch left out (its check failed, its latest materialization was never audited, or it was never
    generated) is logged (`log`, default the Dagster logger) and, when `left_out` is given, appended to it.
    """
    rows = []
    log = log or dg.get_dagster_logger().warning
    for batch, audit in synthetic_batch_status(storage).items():
        loc = storage.synthetic(name, batch)
        if audit.get("status") == "passed" and storage.exists(loc):
            with storage.reading(loc) as p:
                rows += read_jsonl(p)
            continue
        if audit.get("status") == "missing" and not storage.exists(staged_location(storage, name, batch)) \
                and not storage.exists(loc):
            why = "never generated"
        elif audit.get("status") == "failed":
            why = (f"its blocking check {AUDIT_CHECK} failed in run {audit.get('audit_run', '?')} "
                   f"({audit.get('unsupported', '?')} unsupported answers)")
        elif audit.get("status") == "pending":
            why = f"its latest materialization (run {audit.get('materialized_run', '?')}) was never audited"
        else:
            why = "it has no audit record (generated before audits, or its check never ran): rematerialize it"
        if left_out is not None:
            left_out.append({"batch": batch, "set": name, "status": audit.get("status"), "why": why})
        if why != "never generated":
            log(f"synthetic {name}: seed batch {batch} left out: {why}")
    return rows


@dg.asset_check(asset="sft_conversations", blocking=True, partitions_def=seed_batch_partitions,
                description="Every kept answer is supported by its own seed chunk, by a lexical support test that "
                            "neither the generator nor the judge uses. The audit of write-audit-publish: only a "
                            "batch that passes is published to the sets that decontamination and training read.")
def synthetic_answers_supported_by_chunk(context: dg.AssetCheckExecutionContext,
                                         storage: ModelworksStorage) -> dg.AssetCheckResult:
    from curation.synthetic.grounding import answer_supported_by_chunk

    batch = context.partition_key
    chunks = {c.id: c.text for c in load_chunks(storage, "generation", batch)}
    with storage.reading(staged_location(storage, "sft", batch)) as p:
        rows = read_jsonl(p)
    unsupported, missing_chunk, examples = 0, 0, []
    for row in rows:
        text = chunks.get(row.get("chunk_id"))
        if text is None:
            missing_chunk += 1
            continue
        answer = next(m["content"] for m in row["messages"] if m["role"] == "assistant")
        # Words the answer merely repeats from the question need no support; the rest must come from the chunk
        # (a summary request carries the chunk itself, so there every word of the answer is checked).
        question = "" if row.get("kind") == "summarization" else next(
            (m["content"] for m in row["messages"] if m["role"] == "user"), "")
        ok, score = answer_supported_by_chunk(answer, text, question=question)
        if not ok:
            unsupported += 1
            examples.append({"chunk_id": row.get("chunk_id"), "support": round(score, 3), "answer": answer[:200]})
    passed = unsupported == 0 and missing_chunk == 0
    record = {"status": "passed" if passed else "failed", "audit_run": context.run.run_id, "check": AUDIT_CHECK,
              "conversations": len(rows), "unsupported": unsupported, "rows_without_a_known_chunk": missing_chunk}
    if passed:  # publish: the audited staged sets become the batch's sets that every later run reads
        for name in SYNTHETIC_SETS:
            with storage.reading(staged_location(storage, name, batch)) as src, \
                    storage.writing(storage.synthetic(name, batch)) as tmp:
                tmp.write_bytes(src.read_bytes())
    _write_audit(storage, batch, record)
    return dg.AssetCheckResult(
        passed=passed,
        metadata={"chunks": len(chunks), "conversations": len(rows), "unsupported": unsupported,
                  "rows_without_a_known_chunk": missing_chunk, "examples": dg.MetadataValue.json(examples[:5]),
                  "published": passed, "published_path": dg.MetadataValue.path(storage.synthetic("sft", batch))})


@dg.asset_check(asset="sft_conversations", partitions_def=seed_batch_partitions,
                description="A seed batch that holds generation chunks yielded SFT conversations (a warning: a weak "
                            "teacher can write nothing that passes the judge; see the quarantine for why).")
def synthetic_batch_yielded_items(context: dg.AssetCheckExecutionContext,
                                  storage: ModelworksStorage) -> dg.AssetCheckResult:
    batch = context.partition_key
    chunks = load_chunks(storage, "generation", batch)
    with storage.reading(staged_location(storage, "sft", batch)) as p:
        rows = read_jsonl(p)
    with storage.reading(staged_location(storage, "quarantine", batch)) as p:
        reasons = Counter(r.get("reason") for r in read_jsonl(p))
    return dg.AssetCheckResult(passed=bool(rows) or not chunks, severity=dg.AssetCheckSeverity.WARN,
                               metadata={"chunks": len(chunks), "conversations": len(rows),
                                         "quarantine_by_reason": dg.MetadataValue.json(dict(reasons))})
