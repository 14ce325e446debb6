"""LoRA (peft) for continued pretraining, SFT and DPO: wrap a model with adapters, merge them back before saving.

Every stage saves a plain model directory (the adapters merged into the weights), so lm-eval, TRL, the next
stage and `transformers serve` load it as they would any Hugging Face model; no stage reads adapter files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from training.config import LoraOptions  # noqa: F401  (re-exported: the LoRA fields of every run config)

# Every linear projection of a Llama block (attention and SwiGLU MLP), as in the QLoRA paper (Dettmers et al.
# 2023): adapting all of them matches full fine-tuning far better than attention-only LoRA at a similar cost.
LLAMA_LINEAR_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class LoraSettings:
    """LoRA hyperparameters; r = 0 means full fine-tuning (no adapters)."""

    r: int = 0
    alpha: float = 32.0  # the update is scaled by alpha / r
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: list(LLAMA_LINEAR_MODULES))

    @property
    def enabled(self) -> bool:
        return self.r > 0


def peft_config(settings: LoraSettings):
    """The peft LoraConfig for `settings`, or None for full fine-tuning."""
    if not settings.enabled:
        return None
    from peft import LoraConfig

    return LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                      target_modules=list(settings.target_modules), bias="none", task_type="CAUSAL_LM")


def apply_lora(model: nn.Module, settings: LoraSettings) -> nn.Module:
    """`model` with trainable LoRA adapters and every original weight frozen (or `model` itself when r = 0)."""
    config = peft_config(settings)
    if config is None:
        return model
    from peft import get_peft_model

    return get_peft_model(model, config)


def is_lora_model(model: nn.Module) -> bool:
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def merge_lora(model: nn.Module) -> nn.Module:
    """The plain base-class model with the adapters added into its weights (W + alpha/r * B A); others unchanged."""
    if not is_lora_model(model):
        return model
    merged = model.merge_and_unload()
    for p in merged.parameters():  # a saved model is a plain model again: nothing frozen
        p.requires_grad_(True)
    return merged


def base_model_class(model: nn.Module) -> type:
    """The class of the underlying transformers model, through a peft wrapper."""
    return type(model.get_base_model()) if is_lora_model(model) else type(model)


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
