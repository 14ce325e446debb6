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

from training.packing import PackedTokenDataset
from training.presets import llama_config, preset_seq_len

LogFn = Callable[[int, dict[str, float]], None]

METRICS_FILE = "training_metrics.json"

# Peak dense FLOP/s used as the MFU denominator when the config gives none. GPU: A100 bf16 tensor
# cores (the figure nanoGPT uses). CPU: one AVX2 core at ~2.5 GHz doing 2 FMA x 8 fp32 lanes per cycle
# (= 80 GFLOP/s) — an assumption, so CPU MFU is only comparable against itself.
DEFAULT_PEAK_FLOPS_GPU = 312e12
DEFAULT_PEAK_FLOPS_PER_CPU_THREAD = 80e9


@dataclass
class PretrainConfig:
    preset: str = "tiny"
    seq_len: int | None = None  # None: the preset's context length
    micro_batch_size: int = 8
    grad_accum_steps: int = 1
    max_steps: int = 100
    lr: float = 3e-3
    min_lr_ratio: float = 0.1  # final lr = lr * min_lr_ratio
    warmup_steps: int = 10
    schedule: Literal["cosine", "wsd"] = "cosine"
    wsd_decay_fraction: float = 0.2  # WSD: linear decay over the last 20% of steps
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 10
    num_threads: int | None = None  # torch intra-op threads; None leaves torch's default
    peak_flops: float | None = None  # per device, for MFU; None: see DEFAULT_PEAK_FLOPS_*


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
    """
    cfg = model.config
    embedding = model.get_input_embeddings().weight
    n = sum(p.numel() for p in model.parameters() if p is not embedding) + cfg.vocab_size * cfg.hidden_size
    if not cfg.tie_word_embeddings:
        n -= cfg.vocab_size * cfg.hidden_size  # the untied head is already among the parameters
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    return 6 * n + 12 * cfg.num_hidden_layers * cfg.num_attention_heads * head_dim * seq_len


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


def pretrain(
    config: PretrainConfig,
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    tokenizer_dir: str | os.PathLike | None = None,
    init_model_dir: str | os.PathLike | None = None,
    replay_data_dir: str | os.PathLike | None = None,
    replay_ratio: float = 0.0,
    log_fn: LogFn = print,
) -> PretrainResult:
    """Train from scratch (preset) or continue from `init_model_dir` (DAPT), save an HF model dir.

    With DAPT, a fraction `replay_ratio` of micro-batches comes from `replay_data_dir` (general data)
    to limit forgetting. The tokenizer comes from `tokenizer_dir`, else from `init_model_dir`.
    """
    c = config
    if tokenizer_dir is None and init_model_dir is None:
        raise ValueError("pass tokenizer_dir (from scratch) or init_model_dir (continued pretraining)")
    if c.num_threads:
        torch.set_num_threads(c.num_threads)
    torch.manual_seed(c.seed)
    device = _device()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir or init_model_dir)

    if init_model_dir is not None:
        model = AutoModelForCausalLM.from_pretrained(init_model_dir)
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

    data = PackedTokenDataset(data_dir, seq_len)
    replay = PackedTokenDataset(replay_data_dir, seq_len) if replay_data_dir and replay_ratio > 0 else None
    data_gen = torch.Generator().manual_seed(c.seed)
    replay_gen = torch.Generator().manual_seed(c.seed + 1)
    mix_gen = torch.Generator().manual_seed(c.seed + 2)

    def next_batch() -> torch.Tensor:
        if replay is not None and torch.rand((), generator=mix_gen).item() < replay_ratio:
            return replay.sample_batch(c.micro_batch_size, replay_gen)
        return data.sample_batch(c.micro_batch_size, data_gen)

    optimizer = torch.optim.AdamW(
        _param_groups(model, c.weight_decay), lr=c.lr, betas=c.betas, fused=device.type == "cuda"
    )
    n_params = sum(p.numel() for p in model.parameters())
    fpt = flops_per_token(model, seq_len)
    peak_flops = c.peak_flops or (
        DEFAULT_PEAK_FLOPS_GPU if device.type == "cuda" else DEFAULT_PEAK_FLOPS_PER_CPU_THREAD * torch.get_num_threads()
    )
    tokens_per_step = c.micro_batch_size * c.grad_accum_steps * seq_len
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    # --- the training step ---------------------------------------------------------------------
    loss_curve: list[tuple[int, float]] = []
    model.train()
    t0 = t_log = time.perf_counter()
    last_log_step = 0
    for step in range(1, c.max_steps + 1):
        lr = lr_at(step - 1, c)
        for group in optimizer.param_groups:
            group["lr"] = lr
        step_loss = 0.0
        for _ in range(c.grad_accum_steps):
            batch = next_batch().to(device, non_blocking=True)
            with _autocast(device):
                loss = next_token_loss(model, batch)
            (loss / c.grad_accum_steps).backward()  # accumulate the mean over micro-batches
            step_loss += loss.item() / c.grad_accum_steps
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss_curve.append((step, step_loss))

        if step % c.log_every == 0 or step == c.max_steps:
            now = time.perf_counter()
            tps = (step - last_log_step) * tokens_per_step / max(now - t_log, 1e-9)
            t_log, last_log_step = now, step
            log_fn(step, {"loss": step_loss, "lr": lr, "grad_norm": float(grad_norm),
                          "tokens_per_s": tps, "mfu": tps * fpt / peak_flops, "elapsed_s": now - t0})
    # -----------------------------------------------------------------------------------------------
    wall = time.perf_counter() - t0
    tokens_seen = tokens_per_step * c.max_steps
    tokens_per_s = tokens_seen / wall
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
        config={**asdict(c), "seq_len": seq_len, "init_model_dir": str(init_model_dir) if init_model_dir else None,
                "replay_ratio": replay_ratio if replay is not None else 0.0, "peak_flops": peak_flops},
    )
    model.config.use_cache = True
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    save_model_dir(model, tokenizer, out_dir, extra=result.to_dict())
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


def main(argv: list[str] | None = None) -> None:
    """Command line: `python -m training.pretrain --data-dir D --out-dir O [--config cfg.json] ...`.

    Prints one JSON line per log step ({"step": .., metrics}) and a final {"result": ..} line, so an
    external launcher (e.g. Dagster Pipes around a subprocess) can stream progress from stdout.
    Single process only: there is no DDP here yet, so WORLD_SIZE > 1 is refused rather than run N copies.
    """
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("--config", help="JSON file with PretrainConfig fields")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--tokenizer-dir")
    parser.add_argument("--init-model-dir")
    parser.add_argument("--replay-data-dir")
    parser.add_argument("--replay-ratio", type=float, default=0.0)
    args = parser.parse_args(argv)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise SystemExit("training.pretrain runs on one process; multi-rank (DDP) training is not implemented")
    fields_ = json.loads(Path(args.config).read_text()) if args.config else {}
    if "betas" in fields_:
        fields_["betas"] = tuple(fields_["betas"])
    result = pretrain(
        PretrainConfig(**fields_), args.data_dir, args.out_dir, tokenizer_dir=args.tokenizer_dir,
        init_model_dir=args.init_model_dir, replay_data_dir=args.replay_data_dir, replay_ratio=args.replay_ratio,
        log_fn=lambda step, metrics: print(json.dumps({"step": step, **metrics}), flush=True),
    )
    summary = {k: v for k, v in result.to_dict().items() if k != "loss_curve"}
    print(json.dumps({"result": summary}), flush=True)


if __name__ == "__main__":
    main()
