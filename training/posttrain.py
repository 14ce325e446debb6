"""Post-training with TRL: supervised fine-tuning (SFT) on chats, then DPO on preference pairs."""

from __future__ import annotations

import os

# Set before TRL/transformers import hub code: every model and tokenizer here is a local directory,
# and a run must never block on (or leak to) the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import asdict, dataclass, fields  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from datasets import Dataset, load_dataset  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback, TrainingArguments  # noqa: E402
from transformers.trainer_callback import PrinterCallback  # noqa: E402
from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer  # noqa: E402

from training.pretrain import save_model_dir  # noqa: E402

LogFn = Callable[[int, dict[str, float]], None]

# transformers 5 renamed gradient_checkpointing to activation_checkpointing (the old name warns).
_CHECKPOINTING_ARG = (
    "activation_checkpointing"
    if "activation_checkpointing" in {f.name for f in fields(TrainingArguments)}
    else "gradient_checkpointing"
)


@dataclass
class SFTRunConfig:
    num_train_epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides num_train_epochs
    learning_rate: float = 1e-4
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    max_length: int = 512  # tokens; longer chats are truncated at the end
    warmup_steps: int = 0
    lr_scheduler_type: str = "cosine"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    # Loss only on assistant tokens (incl. their <|end|>), via the template's {% generation %} markers.
    assistant_only_loss: bool = True
    logging_steps: int = 5
    seed: int = 0
    num_threads: int | None = None


@dataclass
class DPORunConfig:
    num_train_epochs: float = 1.0
    max_steps: int = -1
    learning_rate: float = 5e-6
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    max_length: int = 512  # prompt + completion tokens
    beta: float = 0.1  # KL strength toward the reference (the SFT model), Rafailov et al. 2023
    loss_type: str = "sigmoid"  # the original DPO loss
    warmup_steps: int = 0
    lr_scheduler_type: str = "cosine"
    max_grad_norm: float = 1.0
    logging_steps: int = 5
    seed: int = 0
    num_threads: int | None = None


class _ForwardLogs(TrainerCallback):
    """Hands every trainer log record to the caller's `log_fn(step, metrics)` (e.g. a Dagster logger)."""

    def __init__(self, log_fn: LogFn):
        self.log_fn = log_fn

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs:
            self.log_fn(state.global_step, {k: v for k, v in logs.items() if isinstance(v, int | float)})


def _common_args(c: SFTRunConfig | DPORunConfig, output_dir: str) -> dict[str, Any]:
    # Shared TrainingArguments: no checkpoints (we save once, atomically), no reporting
    # integrations, no hub; fp32 and no gradient checkpointing on CPU (TRL defaults both on, which
    # only slows small CPU runs down).
    on_gpu = torch.cuda.is_available()
    return dict(
        output_dir=output_dir,
        num_train_epochs=c.num_train_epochs,
        max_steps=c.max_steps,
        learning_rate=c.learning_rate,
        per_device_train_batch_size=c.per_device_train_batch_size,
        gradient_accumulation_steps=c.gradient_accumulation_steps,
        max_length=c.max_length,
        warmup_steps=c.warmup_steps,
        lr_scheduler_type=c.lr_scheduler_type,
        max_grad_norm=c.max_grad_norm,
        logging_steps=c.logging_steps,
        logging_first_step=True,
        seed=c.seed,
        save_strategy="no",
        report_to="none",
        push_to_hub=False,
        disable_tqdm=True,
        bf16=on_gpu,
        **{_CHECKPOINTING_ARG: False},
        use_cpu=not on_gpu,
        dataloader_num_workers=0,
        dataloader_pin_memory=on_gpu,
    )


def _metrics(trainer, wall_s: float, n_examples: int) -> dict[str, Any]:
    history = trainer.state.log_history
    summary = next((h for h in reversed(history) if "train_runtime" in h), {})
    return {
        "loss_curve": [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h],
        "train_loss": summary.get("train_loss"),
        "runtime_s": summary.get("train_runtime", wall_s),
        "samples_per_s": summary.get("train_samples_per_second"),
        "steps": trainer.state.global_step,
        "n_examples": n_examples,
        "log_history": history,
    }


def _stop_at_end_of_turn(model, tokenizer) -> None:
    # A chat model ends its answer with <|end|>, not <|eos|>; make generate() stop at either.
    end_id = tokenizer.convert_tokens_to_ids("<|end|>")
    stops = [i for i in (end_id, tokenizer.eos_token_id) if i is not None and i != tokenizer.unk_token_id]
    model.generation_config.eos_token_id = stops
    model.generation_config.pad_token_id = tokenizer.pad_token_id


def _load_jsonl(path: str | os.PathLike) -> Dataset:
    return load_dataset("json", data_files=str(path), split="train")


def sft(
    model_dir: str | os.PathLike,
    dataset_jsonl: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: SFTRunConfig | None = None,
    log_fn: LogFn = print,
) -> dict[str, Any]:
    """Fine-tune the model in `model_dir` on `{"messages": [...]}` JSONL; save model + tokenizer to `out_dir`."""
    c = config or SFTRunConfig()
    if c.num_threads:
        torch.set_num_threads(c.num_threads)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    dataset = _load_jsonl(dataset_jsonl).select_columns(["messages"])
    with tempfile.TemporaryDirectory(prefix="sft-") as work_dir:
        args = SFTConfig(
            **_common_args(c, work_dir),
            weight_decay=c.weight_decay,
            assistant_only_loss=c.assistant_only_loss,
            packing=False,  # padding-free packing needs FlashAttention; chats are short anyway
        )
        trainer = SFTTrainer(
            model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
            callbacks=[_ForwardLogs(log_fn)],
        )
        trainer.remove_callback(PrinterCallback)  # logs go to log_fn instead of stdout
        t0 = time.perf_counter()
        trainer.train()
        metrics = _metrics(trainer, time.perf_counter() - t0, len(dataset))
    metrics["config"] = asdict(c)
    _stop_at_end_of_turn(trainer.model, tokenizer)
    save_model_dir(trainer.model, tokenizer, out_dir, extra={k: v for k, v in metrics.items() if k != "log_history"})
    metrics["model_dir"] = str(out_dir)
    return metrics


def _as_conversation(example: dict[str, Any]) -> dict[str, Any]:
    # Plain-string pairs become a one-turn chat, so DPO sees exactly the chat format SFT trained on:
    # "<|user|>\n{prompt}<|end|>\n<|assistant|>\n" then "{answer}<|end|>\n" as the completion.
    prompt, chosen, rejected = example["prompt"], example["chosen"], example["rejected"]
    return {
        "prompt": [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt,
        "chosen": [{"role": "assistant", "content": chosen}] if isinstance(chosen, str) else chosen,
        "rejected": [{"role": "assistant", "content": rejected}] if isinstance(rejected, str) else rejected,
    }


def dpo(
    model_dir: str | os.PathLike,
    dataset_jsonl: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: DPORunConfig | None = None,
    log_fn: LogFn = print,
) -> dict[str, Any]:
    """DPO on `{"prompt","chosen","rejected"}` JSONL with the model in `model_dir` (the SFT model) as reference.

    Fields may be plain strings (a user prompt and two assistant answers) or TRL conversational lists
    (`prompt`: messages ending with a user turn; `chosen`/`rejected`: one assistant message each).
    Both are rendered through the tokenizer's chat template. Returns metrics incl. the last logged
    `rewards/accuracies` and `rewards/margins` (the fraction of pairs where the policy prefers the
    chosen answer more than the reference does, and by how much).
    """
    c = config or DPORunConfig()
    if c.num_threads:
        torch.set_num_threads(c.num_threads)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    ref_model = AutoModelForCausalLM.from_pretrained(model_dir)  # frozen copy of the SFT model
    raw = _load_jsonl(dataset_jsonl)
    dataset = raw.map(_as_conversation, remove_columns=raw.column_names)
    with tempfile.TemporaryDirectory(prefix="dpo-") as work_dir:
        args = DPOConfig(**_common_args(c, work_dir), beta=c.beta, loss_type=[c.loss_type])
        trainer = DPOTrainer(
            model=model, ref_model=ref_model, args=args, train_dataset=dataset, processing_class=tokenizer,
            callbacks=[_ForwardLogs(log_fn)],
        )
        trainer.remove_callback(PrinterCallback)  # logs go to log_fn instead of stdout
        t0 = time.perf_counter()
        trainer.train()
        metrics = _metrics(trainer, time.perf_counter() - t0, len(dataset))
    reward_logs = [h for h in metrics["log_history"] if "rewards/accuracies" in h]
    for key in ("rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected"):
        metrics[key.replace("/", "_")] = reward_logs[-1][key] if reward_logs else None
        metrics[key.replace("/", "_") + "_curve"] = [(h["step"], h[key]) for h in reward_logs]
    metrics["config"] = asdict(c)
    _stop_at_end_of_turn(trainer.model, tokenizer)
    save_model_dir(trainer.model, tokenizer, out_dir, extra={k: v for k, v in metrics.items() if k != "log_history"})
    metrics["model_dir"] = str(out_dir)
    return metrics
