"""Run profiles: `tiny` (tests), `demo` (the README's main command), `smollm` (the real-model recipe on 2 CPU
cores), `smollm_gpu` (the same on one GPU), `gpu` (one GPU, ~125M model from scratch).

A profile chooses sizes, never code paths. It is resolved once, where the Definitions are built
(`pipelines.definitions.build_definitions`), and handed to the assets as the `profile` resource;
an asset's `Config` field left at None takes the profile's value, and any value can still be set
per run in the Launchpad (the asset's config, or the `profile` resource's config).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import dagster as dg


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
    # "scratch": pretrain a small Llama; "smollm2" (or a GGUF file / HF dir): start from that open model
    base_start: str = "scratch"
    # LoRA ranks (0 = full fine-tuning) and post-training sequence length
    dapt_lora_r: int = 0
    post_lora_r: int = 0
    post_max_length: int = 512
    # seed chunks and synthetic data: smaller chunks and more topics per chunk give more items
    seed_chunk_words: int = 120
    synthetic_topics_per_chunk: int = 4
    # the teacher resource's settings (backend, model_path, ...): see assets/teacher.py
    teacher: dict = dataclasses.field(default_factory=lambda: {"backend": "rules"})
    # score every stage's perplexity on real English shipped with Python too (evaluation/reference_text.py): the
    # demo's general pages are templated, so only this shows what a *pretrained* model forgets
    reference_text_probe: bool = False
    # DAPT: weight of the KL distillation to the start model on the replay rows (training/pretrain.py); 0 = off
    dapt_kl_weight: float = 0.0


PROFILES = {
    "tiny": Profile("tiny", n_shards=2, pages_per_shard=60, vocab_size=512, model_preset="tiny", seq_len=128,
                    micro_batch_size=8, base_steps=30, dapt_steps=20, base_lr=3e-3, dapt_lr=1e-3,
                    dapt_replay_ratio=0.2, sft_epochs=1, sft_lr=5e-4, dpo_epochs=1, dpo_lr=5e-5,
                    eval_batch_size=16, eval_limit=8,
                    seed_chunk_words=300, synthetic_topics_per_chunk=1),
    "demo": Profile("demo", n_shards=4, pages_per_shard=250, vocab_size=2048, model_preset="demo", seq_len=256,
                    micro_batch_size=16, base_steps=250, dapt_steps=300, base_lr=3e-3, dapt_lr=3e-3,
                    dapt_replay_ratio=0.2, sft_epochs=2, sft_lr=2e-4, dpo_epochs=2, dpo_lr=2e-5,
                    eval_batch_size=32, eval_limit=None),
    # The DiagnosticSLM recipe on a real open model, sized for 2 CPU cores (see README "Profiles"): SmolLM2-135M
    # from PyPI's GGUF, LoRA r16 everywhere (1.3-1.5x faster per token here than full fine-tuning, no second
    # DPO reference copy), ~172k DAPT tokens (168 steps x 4 x 256: what fits the 60-minute budget); learning rates chosen on validation with pipelines.tune. The SFT/DPO
    # data come from the rules writer: SmolLM2-135M as the teacher kept 2 of 45 questions on 12 chunks (measured,
    # README "Profiles"), too few to train on; set the teacher resource to a real server for real use.
    "smollm": Profile("smollm", n_shards=4, pages_per_shard=250, vocab_size=49152, model_preset="demo", seq_len=256,
                      micro_batch_size=4, base_steps=0, dapt_steps=168, base_lr=0.0, dapt_lr=1.5e-3,
                      dapt_replay_ratio=0.5, sft_epochs=2, sft_lr=2e-4, dpo_epochs=1, dpo_lr=2e-5,
                      eval_batch_size=16, eval_limit=None, checkpoint_every=42, base_start="smollm2",
                      dapt_lora_r=16, post_lora_r=16, post_max_length=256, seed_chunk_words=200,
                      synthetic_topics_per_chunk=1, reference_text_probe=True, dapt_kl_weight=1.0),
    # The same recipe on one GPU: the same code with larger sizes (full fine-tuning, longer sequences, more DAPT
    # tokens); point the teacher resource at a served model (openai backend) for real SFT/DPO data.
    "smollm_gpu": Profile("smollm_gpu", n_shards=16, pages_per_shard=2000, vocab_size=49152, model_preset="demo",
                          seq_len=1024, micro_batch_size=16, base_steps=0, dapt_steps=2000, base_lr=0.0,
                          dapt_lr=1e-4, dapt_replay_ratio=0.25, sft_epochs=2, sft_lr=2e-5, dpo_epochs=1,
                          dpo_lr=5e-7, eval_batch_size=64, eval_limit=None, checkpoint_every=500,
                          base_start="smollm2", post_max_length=1024, seed_chunk_words=200,
                          synthetic_topics_per_chunk=2, reference_text_probe=True),
    "gpu": Profile("gpu", n_shards=16, pages_per_shard=2000, vocab_size=16384, model_preset="125m", seq_len=1024,
                   micro_batch_size=16, base_steps=5000, dapt_steps=2000, base_lr=6e-4, dapt_lr=3e-4,
                   dapt_replay_ratio=0.2, sft_epochs=2, sft_lr=5e-5, dpo_epochs=1, dpo_lr=5e-7,
                   eval_batch_size=64, eval_limit=None, checkpoint_every=500),
}


def profile_named(name: str | None = None) -> Profile:
    """The named profile, or `MODELWORKS_PROFILE` (default `demo`) when no name is given."""
    name = name or os.environ.get("MODELWORKS_PROFILE", "demo")
    if name not in PROFILES:
        raise ValueError(f"profile {name!r} is not one of {sorted(PROFILES)}")
    return PROFILES[name]


class ProfileResource(dg.ConfigurableResource):
    """The active profile's sizes, as a resource: asset config fields left at None fall back to these."""

    name: str
    values: dict

    @classmethod
    def of(cls, profile: Profile) -> "ProfileResource":
        return cls(name=profile.name, values=dataclasses.asdict(profile))

    @property
    def p(self) -> Profile:
        return Profile(**self.values)

    def pick(self, value, field: str):
        """`value` if the run set it, else the profile's `field`."""
        return getattr(self.p, field) if value is None else value

    def resolve(self, config, fields: dict[str, str]):
        """A copy of an asset's `config` whose None fields (keys of `fields`) take the profile's values."""
        return config.model_copy(update={k: self.pick(getattr(config, k), f) for k, f in fields.items()})
