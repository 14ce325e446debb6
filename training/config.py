"""Every training setting and its default, in one place: pretraining and DAPT, SFT, DPO, LoRA, the tokenizer and
the token shards.

Light on purpose (dataclasses only, no torch): the Dagster assets derive their `Config` classes from these
(assets/configs.py) when the code location loads, and the recipes' `pretrain:`, `dapt:`, `sft:`, `dpo:`,
`tokenizer:` and `tokens:` sections are these fields. `training.pretrain` and `training.posttrain` take them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class LoraOptions:
    """LoRA fields of a run config (pretraining, SFT, DPO): adapters when lora_r > 0, merged before saving.

    lora_r = 0 is full fine-tuning.
    """

    lora_r: int = 0
    lora_alpha: float = 32.0
    lora_dropout: float = 0.0
    lora_target_modules: list[str] | None = None  # None: every linear projection of the blocks

    @property
    def lora(self):
        from training.lora import LoraSettings  # torch: only where a model is built

        settings = LoraSettings(r=self.lora_r, alpha=self.lora_alpha, dropout=self.lora_dropout)
        if self.lora_target_modules:
            settings.target_modules = list(self.lora_target_modules)
        return settings


@dataclass
class PretrainConfig(LoraOptions):  # LoRA only when continuing from init_model_dir
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
    # Global batch in tokens = micro_batch_size * seq_len * grad_accum_steps * world_size; when set,
    # grad_accum_steps is derived from it so the global batch is the same on any number of ranks.
    global_batch_tokens: int | None = None
    parallelism: Literal["ddp", "fsdp"] = "ddp"  # how a multi-rank run is distributed (see parallelize.py)
    backend: str | None = None  # process-group backend; None: nccl on GPU, gloo on CPU
    compile: bool = False  # torch.compile each decoder layer
    deterministic: bool = True  # torch.use_deterministic_algorithms during training (bitwise-resumable on CPU)
    checkpoint_every: int = 0  # steps between checkpoints (when a checkpoint_dir is given); 0: only at the end
    # DAPT only: on the replay (general) rows, add kl_weight * KL(start model || model) per token, a distillation
    # term that keeps the model's general-text predictions near the pretrained model's (LwF, Li & Hoiem 2016;
    # the KL anchor of continual-pretraining recipes). With LoRA the start model is the same network with its
    # adapters switched off (no second copy); with full fine-tuning a frozen copy is kept.
    kl_weight: float = 0.0
    # DAPT only: the share of every batch drawn from the general (replay) corpus, against forgetting
    replay_ratio: float = 0.0
    keep_checkpoints: int = 2  # the latest k valid checkpoints are kept


@dataclass
class SFTRunConfig(LoraOptions):
    num_train_epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides num_train_epochs
    learning_rate: float = 1e-4
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    max_length: int = 512  # tokens; longer chats are truncated at the end
    # < 1: a fraction of the run's steps (transformers' convention). LoRA's B matrices start at zero and Adam's first
    # steps move every entry by ~lr whatever the gradient, so without warmup a LoRA run at a high lr jumps out of its
    # basin in its first steps (measured on the test's 64-wide model at lr 2e-2: loss 4.23 -> 6.02 at step 4, grad
    # norm 2.7 -> 24.8, and only -0.09 nats after 16 steps; with 10% warmup -0.70 to -0.84 over three seeds).
    # 0.1 is the post-training recipes' usual value (Zephyr, TRL's examples).
    warmup_steps: float = 0.1
    lr_scheduler_type: str = "cosine"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    # Loss only on assistant tokens (incl. their end-of-turn token): through the template's {% generation %}
    # markers when it has them, else on the last assistant turn as a completion (see sft()).
    assistant_only_loss: bool = True
    logging_steps: int = 5
    seed: int = 0
    num_threads: int | None = None


@dataclass
class DPORunConfig(LoraOptions):
    num_train_epochs: float = 1.0
    max_steps: int = -1
    learning_rate: float = 5e-6
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    max_length: int = 512  # prompt + completion tokens (the end of a longer completion is cut)
    max_prompt_length: int | None = None  # tokens; a longer prompt keeps its end (where the question is)
    beta: float = 0.1  # KL strength toward the reference (the SFT model), Rafailov et al. 2023
    loss_type: str = "sigmoid"  # the original DPO loss
    warmup_steps: float = 0.1  # < 1: a fraction of the steps; why, see SFTRunConfig
    lr_scheduler_type: str = "cosine"
    max_grad_norm: float = 1.0
    logging_steps: int = 5
    seed: int = 0
    num_threads: int | None = None


@dataclass
class TokenizerSettings:
    vocab_size: int = 2048  # byte-level BPE trained from scratch (an open model keeps its own tokenizer)
    min_frequency: int = 2  # a merge must occur at least this often


@dataclass
class PackingSettings:
    seq_len: int = 256  # tokens per packed row (documents joined with EOS, rows cut at this length)


@dataclass
class LaunchSettings:
    """How torchrun starts a pretraining or DAPT run (training/launch.py)."""

    nproc_per_node: int = 1  # processes per node (GPUs, or CPU processes with gloo)
    nnodes: int = 1  # nodes; > 1 joins them by c10d rendezvous
    rdzv_endpoint: str = ""  # host:port of the rendezvous when nnodes > 1 (empty + local_nodes: a free port)
    local_nodes: bool = False  # nnodes > 1 started on this host (tests, rehearsal of a multi-node run)
