"""Llama model-size presets, from a test-sized toy to a Llama-3.2-1B-shaped model."""

from __future__ import annotations

from typing import Any

from transformers import LlamaConfig

# Shape of each preset; vocab_size comes from the trained tokenizer. intermediate_size is ~8/3 * hidden
# (SwiGLU keeps the MLP's parameter count near a 4x GELU MLP), rounded as the Llama papers do.
PRESETS: dict[str, dict[str, Any]] = {
    # Unit tests: ~0.1M non-embedding params; trains in seconds.
    "tiny": dict(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
        intermediate_size=256, max_position_embeddings=128, tie_word_embeddings=True,
    ),
    # README demo: ~0.8M non-embedding params (~1M with a 2k vocab). Sized to the 2-core CPU budget of
    # `make demo`: ~10k tokens/s there, so base + DAPT see ~2M tokens in about three minutes.
    "demo": dict(
        hidden_size=128, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
        intermediate_size=344, max_position_embeddings=256, tie_word_embeddings=True,
    ),
    # GPT-3 Small shape (Brown et al. 2020, table 2.1) with Llama blocks: ~85M non-embedding params.
    "125m": dict(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=12,
        intermediate_size=2048, max_position_embeddings=1024, tie_word_embeddings=True,
    ),
    # Llama-3.2-1B shape: GQA with 8 KV heads, rope_theta 500k; it ties its embeddings too.
    "1b": dict(
        hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
        intermediate_size=8192, max_position_embeddings=2048, tie_word_embeddings=True,
        rope_theta=500_000.0,
    ),
}


def llama_config(preset: str, vocab_size: int, **overrides: Any) -> LlamaConfig:
    """A LlamaConfig for `preset`; `overrides` (e.g. bos/eos/pad token ids) win over the preset."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    kwargs: dict[str, Any] = dict(
        vocab_size=vocab_size,
        hidden_act="silu",
        rms_norm_eps=1e-5,
        rope_theta=10_000.0,
        initializer_range=0.02,
        attention_bias=False,
        mlp_bias=False,
        use_cache=True,
    )
    kwargs.update(PRESETS[preset])
    kwargs.update(overrides)
    return LlamaConfig(**kwargs)


def preset_seq_len(preset: str) -> int:
    """The context length a preset was sized for."""
    return int(PRESETS[preset]["max_position_embeddings"])
