"""Synthetic group: grounded SFT conversations and preference pairs generated from the seed corpus."""

from collections import Counter

import dagster as dg

from assets.ingest import seed_corpus
from curation.synthetic import SyntheticConfig, generate, parse_seed_corpus
from curation.tables import write_jsonl_atomic
from pipelines.resources import ModelworksStorage


class SyntheticDataConfig(dg.Config):
    questions_per_entry: int = 4
    seed: int = 0


@dg.multi_asset(
    specs=[
        dg.AssetSpec("sft_conversations", group_name="synthetic", code_version="1", kinds={"jsonl"},
                     deps=[seed_corpus], description='SFT chats {"messages": [...]} grounded in the seed manuals.'),
        dg.AssetSpec("preference_pairs", group_name="synthetic", code_version="1", kinds={"jsonl"},
                     deps=[seed_corpus],
                     description="DPO pairs: chosen = grounded answer, rejected = a plausible wrong answer."),
    ],
)
def synthetic_data(context: dg.AssetExecutionContext, config: SyntheticDataConfig, storage: ModelworksStorage):
    entries = parse_seed_corpus(sorted(storage.path("seed").glob("*.txt")))
    out = generate(entries, SyntheticConfig(config.questions_per_entry, config.seed))
    context.log.info(f"synthetic data: {out['stats']}")
    sft_path = storage.path("synthetic", "sft.jsonl")
    pref_path = storage.path("synthetic", "preferences.jsonl")
    write_jsonl_atomic(out["sft"], sft_path)
    write_jsonl_atomic(out["preferences"], pref_path)
    example = out["sft"][0]["messages"] if out["sft"] else []
    yield dg.MaterializeResult(asset_key="sft_conversations", metadata={
        **{k: v for k, v in out["stats"].items()},
        "by_equipment": dg.MetadataValue.json(dict(Counter(r["equipment"] for r in out["sft"]))),
        "example": dg.MetadataValue.json(example), "path": dg.MetadataValue.path(str(sft_path))})
    yield dg.MaterializeResult(asset_key="preference_pairs", metadata={
        "pairs": len(out["preferences"]),
        "example": dg.MetadataValue.json(out["preferences"][0] if out["preferences"] else {}),
        "path": dg.MetadataValue.path(str(pref_path))})


@dg.asset_check(asset="sft_conversations", description="Every synthetic answer is grounded: it names the cause and "
                                                       "fix of a seed-manual entry for the asked symptom.")
def synthetic_answers_are_grounded(storage: ModelworksStorage) -> dg.AssetCheckResult:
    from curation.synthetic import judge
    from curation.tables import read_jsonl

    entries = parse_seed_corpus(sorted(storage.path("seed").glob("*.txt")))
    rows = read_jsonl(storage.path("synthetic", "sft.jsonl"))
    ungrounded = 0
    for row in rows:
        question, answer = row["messages"][0]["content"], row["messages"][1]["content"]
        matches = [e for e in entries if e.symptom in question and e.equipment in question]
        ungrounded += not any(judge(answer, e) for e in matches)
    return dg.AssetCheckResult(passed=bool(rows) and ungrounded == 0,
                               metadata={"conversations": len(rows), "ungrounded": ungrounded})
