"""Run profiles: `tiny` (tests), `demo` (the README's main command), `gpu` (one GPU, ~125M model).

A profile chooses sizes, never code paths. It is picked by `MODELWORKS_PROFILE` when the code
location loads, and every asset's `Config` takes its defaults from it, so any value can still be
overridden per run in the Launchpad.
"""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    # demo crawl
    n_shards: int
    pages_per_shard: int
    # tokenizer and models
    vocab_size: int
    model_preset: str
    seq_len: int
    micro_batch_size: int
    base_steps: int
    dapt_steps: int
    base_lr: float
    dapt_lr: float
    dapt_replay_ratio: float
    sft_epochs: float
    sft_lr: float
    dpo_epochs: float
    dpo_lr: float
    # evaluation
    eval_batch_size: int
    eval_limit: int | None
    # distributed pretraining (torchrun): processes per node, steps between checkpoints
    nproc_per_node: int = 1
    checkpoint_every: int = 50


PROFILES = {
    "tiny": Profile("tiny", n_shards=2, pages_per_shard=60, vocab_size=512, model_preset="tiny", seq_len=128,
                    micro_batch_size=8, base_steps=30, dapt_steps=20, base_lr=3e-3, dapt_lr=1e-3,
                    dapt_replay_ratio=0.2, sft_epochs=1, sft_lr=5e-4, dpo_epochs=1, dpo_lr=5e-5,
                    eval_batch_size=16, eval_limit=8),
    "demo": Profile("demo", n_shards=4, pages_per_shard=250, vocab_size=2048, model_preset="demo", seq_len=256,
                    micro_batch_size=16, base_steps=250, dapt_steps=300, base_lr=3e-3, dapt_lr=1.5e-3,
                    dapt_replay_ratio=0.2, sft_epochs=2, sft_lr=2e-4, dpo_epochs=2, dpo_lr=5e-5,
                    eval_batch_size=32, eval_limit=None),
    "gpu": Profile("gpu", n_shards=16, pages_per_shard=2000, vocab_size=16384, model_preset="125m", seq_len=1024,
                   micro_batch_size=16, base_steps=5000, dapt_steps=2000, base_lr=6e-4, dapt_lr=3e-4,
                   dapt_replay_ratio=0.2, sft_epochs=2, sft_lr=5e-5, dpo_epochs=1, dpo_lr=5e-7,
                   eval_batch_size=64, eval_limit=None, checkpoint_every=500),
}


def active_profile() -> Profile:
    name = os.environ.get("MODELWORKS_PROFILE", "demo")
    if name not in PROFILES:
        raise ValueError(f"MODELWORKS_PROFILE={name!r} is not one of {sorted(PROFILES)}")
    return PROFILES[name]
