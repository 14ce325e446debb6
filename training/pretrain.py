"""Pretrain (or continue pretraining, DAPT) a Llama causal LM on packed token shards."""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM, PreTrainedModel

from training.checkpoint import Checkpointer
from training.config import PretrainConfig  # noqa: F401  (re-exported)
from training.data import GlobalBatchSampler
from training.lora import (LoraOptions, apply_lora, base_model_class, is_lora_model, merge_lora,
                           trainable_parameters)
from training.packing import PackedTokenDataset, check_tokenizer_matches
from training.parallelize import (DistEnv, all_reduce_mean, barrier, destroy_distributed, init_distributed, no_grad_sync,
                                 parallelize)
from training.presets import llama_config, preset_seq_len

LogFn = Callable[[int, dict[str, float]], None]

METRICS_FILE = "training_metrics.json"

# Peak dense FLOP/s used as the MFU denominator when the config gives none. GPU: A100 bf16 tensor
# cores (the figure nanoGPT uses). CPU: one AVX2 core at ~2.5 GHz doing 2 FMA x 8 fp32 lanes per cycle
# (= 80 GFLOP/s) — an assumption, so CPU MFU is only comparable against itself.
DEFAULT_PEAK_FLOPS_GPU = 312e12
DEFAULT_PEAK_FLOPS_PER_CPU_THREAD = 80e9


@dataclass
class PretrainResult:
    model_dir: str
    loss_curve: list[tuple[int, float]]
    final_loss: float
    n_params: int
    tokens_seen: int
    tokens_per_s: float
    flops_per_token: float
    mfu: float
    peak_memory_bytes: int
    wall_time_s: float
    device: str
    config: dict[str, Any] = field(default_factory=dict)
    log_history: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lr_at(step: int, c: PretrainConfig) -> float:
    """Learning rate for 0-based `step`: linear warmup, then cosine decay or warmup-stable-decay."""
    min_lr = c.lr * c.min_lr_ratio
    if step < c.warmup_steps:
        return c.lr * (step + 1) / c.warmup_steps
    if c.schedule == "cosine":
        progress = (step - c.warmup_steps) / max(1, c.max_steps - c.warmup_steps)
        return min_lr + 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))) * (c.lr - min_lr)
    if c.schedule == "wsd":
        # WSD (Hu et al. 2024, MiniCPM): hold the peak lr, then decay linearly over the final fraction,
        # so a run can be extended from any pre-decay point without restarting the schedule.
        decay_start = c.max_steps - int(c.wsd_decay_fraction * c.max_steps)
        if step < decay_start:
            return c.lr
        progress = (step - decay_start) / max(1, c.max_steps - decay_start)
        return c.lr - min(progress, 1.0) * (c.lr - min_lr)
    raise ValueError(f"unknown schedule {c.schedule!r}")


def flops_per_token(model: PreTrainedModel, seq_len: int) -> float:
    """Training FLOPs per token: 6*N + 12*L*H*Q*T (PaLM appendix B, as in nanoGPT's estimate_mfu).

    6*N: forward (2N) + backward (4N) through the weight matmuls, N = non-embedding params plus the
    LM head (its matmul is real compute even when tied; the input embedding is a lookup, no FLOPs).
    12*L*H*Q*T: the attention score and value matmuls (L layers, H heads, Q head dim, T context).
    With LoRA the frozen weights get no weight gradient: 4*N + 2*N_trainable + 12*L*H*Q*T (the
    backward still computes every activation gradient, 2N, to reach the adapters below).
    """
    cfg = model.config
    embedding = model.get_input_embeddings().weight
    n = sum(p.numel() for p in model.parameters() if p is not embedding) + cfg.vocab_size * cfg.hidden_size
    if not cfg.tie_word_embeddings:
        n -= cfg.vocab_size * cfg.hidden_size  # the untied head is already among the parameters
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    attention = 12 * cfg.num_hidden_layers * cfg.num_attention_heads * head_dim * seq_len
    if is_lora_model(model):
        return 4 * n + 2 * trainable_parameters(model) + attention
    return 6 * n + attention


def peak_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    # ru_maxrss is KiB on Linux; it is the process's peak RSS, so it includes anything loaded before.
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _param_groups(model: PreTrainedModel, weight_decay: float) -> list[dict]:
    # Decay only matmul weights: decaying norms, biases and embeddings hurts (GPT-3, nanoGPT), and the
    # embedding is shared with the head when tied, so it is excluded by identity.
    embedding = model.get_input_embeddings().weight
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 and p is not embedding else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def save_model_dir(model: PreTrainedModel, tokenizer, out_dir: str | os.PathLike, extra: dict | None = None) -> Path:
    """Save model (safetensors) + tokenizer to `out_dir` atomically: write a temp dir beside, then rename."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if extra is not None:
            (tmp / METRICS_FILE).write_text(json.dumps(extra, indent=2))
        if out.exists():
            # Move the old dir aside first so there is no moment without a valid directory at `out`...
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / "d")
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _autocast(device: torch.device):
    # bf16 autocast on GPU keeps fp32 master weights; on CPU fp32 is faster than emulated bf16.
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def next_token_loss(model: PreTrainedModel, batch: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of predicting batch[:, 1:] from batch[:, :-1]."""
    logits = model(input_ids=batch[:, :-1]).logits
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1))


def kl_to_reference(logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:
    """Mean over tokens of KL(ref || model), both given as logits (..., vocab)."""
    ref_logp = F.log_softmax(ref_logits.float(), dim=-1)
    logp = F.log_softmax(logits.float(), dim=-1)
    return (ref_logp.exp() * (ref_logp - logp)).sum(-1).mean()


def _reference_logits(model, reference, inputs: torch.Tensor) -> torch.Tensor:
    """The start model's logits on `inputs`: a frozen copy's, or (LoRA) the same model with adapters off."""
    with torch.no_grad():
        if reference is not None:
            return reference(input_ids=inputs).logits
        with model.disable_adapter():
            return model(input_ids=inputs).logits


def _fsdp_full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    # Collective: gathers every shard; rank 0 gets full CPU tensors, the others an empty dict.
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def pretrain(
    config: PretrainConfig,
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    tokenizer_dir: str | os.PathLike | None = None,
    init_model_dir: str | os.PathLike | None = None,
    replay_data_dir: str | os.PathLike | None = None,
    replay_ratio: float | None = None,
    log_fn: LogFn = print,
    checkpoint_dir: str | os.PathLike | None = None,
) -> PretrainResult:
    """Train from scratch (preset) or continue from `init_model_dir` (DAPT), save an HF model dir.

    Runs on one process, or on every rank of a torchrun job (DDP or FSDP2 per `config.parallelism`);
    only rank 0 calls `log_fn` and writes the model. With DAPT, a fraction `replay_ratio` of the
    samples comes from `replay_data_dir` (general data) to limit forgetting. The tokenizer comes from
    `tokenizer_dir`, else from `init_model_dir`. With `checkpoint_dir`, a checkpoint is written every
    `config.checkpoint_every` steps and a rerun resumes from the latest valid one.
    """
    c = config
    replay_ratio = c.replay_ratio if replay_ratio is None else replay_ratio  # the config's, unless the call overrides
    if tokenizer_dir is None and init_model_dir is None:
        raise ValueError("pass tokenizer_dir (from scratch) or init_model_dir (continued pretraining)")
    if c.lora_r > 0 and init_model_dir is None:
        raise ValueError("LoRA adapts a pretrained model: pass init_model_dir (lora_r > 0 from scratch is meaningless)")
    env = init_distributed(c.backend)
    if c.num_threads:
        torch.set_num_threads(c.num_threads)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    if c.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        return _pretrain(c, env, data_dir, out_dir, tokenizer_dir, init_model_dir, replay_data_dir, replay_ratio,
                         log_fn, checkpoint_dir)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)


def _pretrain(c: PretrainConfig, env: DistEnv, data_dir, out_dir, tokenizer_dir, init_model_dir, replay_data_dir,
              replay_ratio: float, log_fn: LogFn, checkpoint_dir) -> PretrainResult:
    device = env.device
    torch.manual_seed(c.seed)  # the same initial weights on every rank
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir or init_model_dir)
    # Token ids only mean something under the tokenizer that packed them: refuse shards of another one.
    for shards in (data_dir, replay_data_dir if replay_ratio > 0 else None):
        if shards is not None:
            check_tokenizer_matches(shards, tokenizer)
    if init_model_dir is not None:
        model = AutoModelForCausalLM.from_pretrained(init_model_dir, dtype=torch.float32)
        if len(tokenizer) > model.config.vocab_size:
            raise ValueError(f"tokenizer has {len(tokenizer)} tokens but {init_model_dir} embeds only "
                             f"{model.config.vocab_size}: DAPT must use the start model's own tokenizer")
        seq_len = c.seq_len or model.config.max_position_embeddings
    else:
        seq_len = c.seq_len or preset_seq_len(c.preset)
        model_config = llama_config(
            c.preset,
            vocab_size=len(tokenizer),
            max_position_embeddings=max(seq_len, preset_seq_len(c.preset)),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        model = LlamaForCausalLM(model_config)
    model.to(device)
    if c.lora_r > 0:
        if env.distributed and c.parallelism == "fsdp":
            raise ValueError("LoRA runs with parallelism='ddp' (adapters are small; FSDP would shard frozen weights)")
        model = apply_lora(model, c.lora)
    reference = None
    if c.kl_weight > 0:
        if init_model_dir is None or not (replay_data_dir and replay_ratio > 0):
            raise ValueError("kl_weight > 0 distills the start model on replay rows: it needs init_model_dir and replay")
        if c.lora_r == 0:
            import copy

            reference = copy.deepcopy(model).eval().requires_grad_(False)
    model_class = base_model_class(model)  # before fully_shard swaps in its FSDP subclass
    n_params = sum(p.numel() for p in model.parameters())
    n_trainable = trainable_parameters(model)
    fpt = flops_per_token(model, seq_len)

    grad_accum = c.grad_accum_steps
    if c.global_batch_tokens:
        per_pass = c.micro_batch_size * seq_len * env.world_size
        if c.global_batch_tokens % per_pass:
            raise ValueError(f"global_batch_tokens={c.global_batch_tokens} is not a multiple of "
                             f"micro_batch_size * seq_len * world_size = {per_pass}")
        grad_accum = c.global_batch_tokens // per_pass
    sampler = GlobalBatchSampler(data_dir, seq_len, c.micro_batch_size, grad_accum, rank=env.rank,
                                 world_size=env.world_size, seed=c.seed, replay_data_dir=replay_data_dir,
                                 replay_ratio=replay_ratio)

    train_model = parallelize(model, env, c.parallelism, compile=c.compile)
    optimizer = torch.optim.AdamW(
        _param_groups(model, c.weight_decay), lr=c.lr, betas=c.betas, fused=device.type == "cuda"
    )
    peak_flops = env.world_size * (c.peak_flops or (
        DEFAULT_PEAK_FLOPS_GPU if device.type == "cuda" else DEFAULT_PEAK_FLOPS_PER_CPU_THREAD * torch.get_num_threads()
    ))
    tokens_per_step = sampler.global_batch_size * seq_len
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    loss_curve: list[tuple[int, float]] = []
    log_history: list[dict[str, float]] = []
    start_step = 0
    checkpointer = Checkpointer(checkpoint_dir, env, c.checkpoint_every, c.keep_checkpoints) if checkpoint_dir else None
    if checkpointer is not None:
        state = checkpointer.load_latest(train_model, optimizer)
        if state is not None:
            start_step = int(state["step"])
            sampler.load_state_dict(state["data"])
            loss_curve = [tuple(x) for x in state["loss_curve"]]
            log_history = state["log_history"]
            if env.is_main:
                log_fn(start_step, {"resumed_from_step": float(start_step)})

    # --- the training step ---------------------------------------------------------------------
    train_model.train()
    t0 = t_log = time.perf_counter()
    last_log_step = start_step
    for step in range(start_step + 1, c.max_steps + 1):
        lr = lr_at(step - 1, c)
        for group in optimizer.param_groups:
            group["lr"] = lr
        micro_batches = sampler.next_micro_batches()
        loss_sum = torch.zeros((), device=device)
        kl_sum = torch.zeros((), device=device)
        for i, batch in enumerate(micro_batches):
            # Only the last micro-batch all-reduces gradients (DDP) / reduce-scatters them (FSDP).
            sync = contextlib.nullcontext() if i == grad_accum - 1 or not env.distributed else no_grad_sync(train_model)
            with sync:
                with _autocast(device):
                    batch = batch.to(device, non_blocking=True)
                    inputs = batch[:, :-1]
                    logits = train_model(input_ids=inputs).logits
                    loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1))
                    total = loss
                    rows = sampler.last_replay_masks[i].to(device) if c.kl_weight > 0 else None
                    if rows is not None and bool(rows.any()):
                        ref = _reference_logits(model, reference, inputs[rows])
                        kl = kl_to_reference(logits[rows], ref)
                        total = loss + c.kl_weight * kl
                        kl_sum += kl.detach()
                (total / grad_accum).backward()  # accumulate the mean over micro-batches
            loss_sum += loss.detach()
        grad_norm = torch.nn.utils.clip_grad_norm_(train_model.parameters(), c.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step_loss = all_reduce_mean(loss_sum / grad_accum, env).item()
        loss_curve.append((step, step_loss))

        if step % c.log_every == 0 or step == c.max_steps:
            now = time.perf_counter()
            tps = (step - last_log_step) * tokens_per_step / max(now - t_log, 1e-9)
            t_log, last_log_step = now, step
            gn = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
            metrics = {"loss": step_loss, "lr": lr, "grad_norm": float(gn), "tokens_per_s": tps,
                       "mfu": tps * fpt / peak_flops, "elapsed_s": now - t0}
            if c.kl_weight > 0:
                metrics["kl_to_start"] = float(kl_sum / grad_accum)
            log_history.append({"step": step, **metrics})
            if env.is_main:
                log_fn(step, metrics)
        if checkpointer is not None and checkpointer.should_save(step, c.max_steps):
            checkpointer.save(step, train_model, optimizer, {"data": sampler.state_dict(), "loss_curve": loss_curve,
                                                             "log_history": log_history})
    # -----------------------------------------------------------------------------------------------
    wall = time.perf_counter() - t0
    steps_run = c.max_steps - start_step
    tokens_seen = tokens_per_step * c.max_steps
    if steps_run > 0:
        tokens_per_s = steps_run * tokens_per_step / wall
    else:  # everything was already trained before a restart: report what the run measured then
        logged = [h["tokens_per_s"] for h in log_history]
        tokens_per_s = sum(logged) / len(logged) if logged else 0.0
    # Report the mean of the last few steps: a single step's loss is noisy.
    tail = [l for _, l in loss_curve[-max(1, min(10, len(loss_curve) // 10)):]]
    result = PretrainResult(
        model_dir=str(out_dir),
        loss_curve=loss_curve,
        final_loss=sum(tail) / len(tail),
        n_params=n_params,
        tokens_seen=tokens_seen,
        tokens_per_s=tokens_per_s,
        flops_per_token=fpt,
        mfu=tokens_per_s * fpt / peak_flops,
        peak_memory_bytes=peak_memory_bytes(device),
        wall_time_s=wall,
        device=str(device),
        config={**asdict(c), "seq_len": seq_len, "grad_accum_steps": grad_accum,
                "init_model_dir": str(init_model_dir) if init_model_dir else None,
                "tokenizer_dir": str(tokenizer_dir or init_model_dir), "trainable_parameters": n_trainable,
                "replay_ratio": sampler.replay_ratio, "peak_flops": peak_flops, "world_size": env.world_size,
                "resumed_from_step": start_step},
        log_history=log_history,
    )
    # Export: a plain model of the original class, whatever wrapper trained it.
    if env.distributed and c.parallelism == "fsdp":
        full = _fsdp_full_state_dict(model)
        if env.is_main:
            model = model_class(model.config)
            model.load_state_dict(full)
    if env.is_main:
        model = merge_lora(model)  # downstream loads a plain model, never adapters
        model.config.use_cache = True
        if init_model_dir is None:  # a pretrained start keeps its own generation settings (stop tokens)
            model.generation_config.eos_token_id = tokenizer.eos_token_id
            model.generation_config.pad_token_id = tokenizer.pad_token_id
        save_model_dir(model, tokenizer, out_dir, extra=result.to_dict())
    barrier(env)
    return result


@torch.no_grad()
def evaluate_loss(
    model_dir: str | os.PathLike, data_dir: str | os.PathLike, n_batches: int = 10,
    batch_size: int = 8, seq_len: int | None = None, seed: int = 1234,
) -> dict[str, float]:
    """Mean next-token loss (and perplexity) of a saved model on random blocks of a packed token dir.

    The same seed picks the same blocks, so two models (e.g. base vs DAPT) are scored on the same text.
    """
    device = _device()
    model = AutoModelForCausalLM.from_pretrained(model_dir).to(device).eval()
    data = PackedTokenDataset(data_dir, seq_len or model.config.max_position_embeddings)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(n_batches):
        with _autocast(device):
            losses.append(next_token_loss(model, data.sample_batch(batch_size, gen).to(device)).item())
    loss = sum(losses) / len(losses)
    return {"loss": loss, "perplexity": math.exp(loss), "n_tokens": n_batches * batch_size * data.seq_len}


RUN_FIELDS = ("data_dir", "out_dir", "tokenizer_dir", "init_model_dir", "replay_data_dir", "replay_ratio",
              "checkpoint_dir")


def load_run_file(path: str | os.PathLike) -> tuple[PretrainConfig, dict[str, Any]]:
    """Split a run file (PretrainConfig fields plus the RUN_FIELDS paths) into (config, pretrain kwargs)."""
    fields_ = json.loads(Path(path).read_text())
    run = {k: fields_.pop(k) for k in RUN_FIELDS if k in fields_}
    if "betas" in fields_:
        fields_["betas"] = tuple(fields_["betas"])
    return PretrainConfig(**fields_), run


def write_run_file(path: str | os.PathLike, config: PretrainConfig, **run: Any) -> Path:
    unknown = set(run) - set(RUN_FIELDS)
    if unknown:
        raise ValueError(f"unknown run fields {sorted(unknown)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {**asdict(config), **{k: str(v) if isinstance(v, os.PathLike) else v for k, v in run.items()}}
    path.write_text(json.dumps(body, indent=2))
    return path


def _die_with_launcher() -> None:
    # Under torchrun each rank runs in its own session; if the launcher is SIGKILLed, nothing would stop the
    # ranks, and orphans would keep writing checkpoints a rerun is reading. Linux: die with the parent.
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:
            os._exit(1)
    except (OSError, AttributeError):
        pass


def pipes_metadata(result: PretrainResult) -> dict[str, Any]:
    """Scalar metrics of a finished run, as reported to Dagster (and stored with the model)."""
    return {
        "final_loss": round(result.final_loss, 4), "parameters": result.n_params, "tokens_seen": result.tokens_seen,
        "tokens_per_s": round(result.tokens_per_s, 1), "flops_per_token": result.flops_per_token,
        "mfu": round(result.mfu, 5), "mfu_formula": MFU_FORMULA,
        "peak_memory_mb": round(result.peak_memory_bytes / 2**20, 1), "wall_time_s": round(result.wall_time_s, 1),
        "device": result.device, "world_size": result.config.get("world_size", 1),
        "resumed_from_step": result.config.get("resumed_from_step", 0),
        "trainable_parameters": result.config.get("trainable_parameters", result.n_params),
        "lora_r": result.config.get("lora_r", 0), "init_model_dir": result.config.get("init_model_dir") or "",
    }


MFU_FORMULA = "(6*N + 12*L*H*Q*T) * tokens/s / (world_size * peak FLOP/s per device)  (PaLM app. B)"


def main(argv: list[str] | None = None, open_reporter: Callable[[], Any] | None = None) -> None:
    """Entry point: `torchrun --nproc-per-node N -m training.pretrain RUN.json` (or plain `python -m ...`).

    RUN.json holds PretrainConfig fields plus data_dir, out_dir, tokenizer_dir | init_model_dir,
    replay_data_dir, replay_ratio and checkpoint_dir; flags override it. From a pretrained model
    (init_model_dir, e.g. SmolLM2 converted by training.open_model), the shards must be packed with that
    model's tokenizer (checked), `lora_r > 0` trains LoRA adapters that are merged before the save, and
    the saved directory carries the model's tokenizer and chat template. Every rank trains; rank 0 alone
    prints one JSON line per log step. `open_reporter`, called on rank 0 alone, may return an object with
    `.log.info(text)`, `.report_asset_materialization(metadata=...)` and `.close()` (a Dagster Pipes context:
    `pipelines.pretrain_job` is the entry point Dagster launches); it gets the same metrics as they come
    and the final ones (two ranks reporting would interleave two message streams into one run).
    """
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("run_file", nargs="?", help="JSON run file (PretrainConfig fields + paths)")
    parser.add_argument("--config", help="JSON file with PretrainConfig fields (older form)")
    for name in RUN_FIELDS:
        parser.add_argument("--" + name.replace("_", "-"), type=float if name == "replay_ratio" else str)
    args = parser.parse_args(argv)
    config, run = load_run_file(args.run_file or args.config) if (args.run_file or args.config) else (PretrainConfig(), {})
    run.update({k: v for k in RUN_FIELDS if (v := getattr(args, k)) is not None})
    if "data_dir" not in run or "out_dir" not in run:
        parser.error("data_dir and out_dir are required (in the run file or as flags)")

    env = init_distributed(config.backend)
    if "TORCHELASTIC_RUN_ID" in os.environ:
        _die_with_launcher()
    pipes = open_reporter() if env.is_main and open_reporter is not None else None
    try:
        def log(step: int, metrics: dict[str, float]) -> None:
            print(json.dumps({"step": step, **metrics}), flush=True)
            if pipes is not None:
                shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items())
                pipes.log.info(f"step {step}/{config.max_steps}: {shown}")

        result = pretrain(config, log_fn=log, **run)
        if env.is_main:
            summary = {k: v for k, v in result.to_dict().items() if k not in ("loss_curve", "log_history")}
            print(json.dumps({"result": summary}), flush=True)
            if pipes is not None:
                pipes.report_asset_materialization(metadata={**pipes_metadata(result), "path": {
                    "raw_value": str(run["out_dir"]), "type": "path"}})
    finally:
        if pipes is not None:
            pipes.close()
        destroy_distributed()


if __name__ == "__main__":
    main()
