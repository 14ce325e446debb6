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
from trl.chat_template_utils import has_generation_markers  # noqa: E402

from training.config import DPORunConfig, SFTRunConfig  # noqa: E402,F401  (re-exported)
from training.lora import merge_lora, peft_config, trainable_parameters  # noqa: E402
from training.pretrain import save_model_dir  # noqa: E402

LogFn = Callable[[int, dict[str, float]], None]

# transformers 5 renamed gradient_checkpointing to activation_checkpointing (the old name warns).
_CHECKPOINTING_ARG = (
    "activation_checkpointing"
    if "activation_checkpointing" in {f.name for f in fields(TrainingArguments)}
    else "gradient_checkpointing"
)


# End-of-turn tokens of common chat formats (Modelworks' own, ChatML/SmolLM2, Llama 3, Gemma): generation must
# stop at the end of the assistant's turn, which is not always the tokenizer's eos.
END_OF_TURN_TOKENS = ("<|end|>", "<|im_end|>", "<|eot_id|>", "<end_of_turn>")


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
        "steps_per_s": summary.get("train_steps_per_second"),
        "trainable_parameters": trainable_parameters(trainer.model),
        "steps": trainer.state.global_step,
        "n_examples": n_examples,
        "log_history": history,
    }


def _stop_at_end_of_turn(model, tokenizer) -> None:
    # A chat model ends its answer with its end-of-turn token (<|end|>, <|im_end|>, ...), not always eos;
    # make generate() stop at either.
    added = tokenizer.get_added_vocab()
    stops = [added[t] for t in END_OF_TURN_TOKENS if t in added] + [tokenizer.eos_token_id]
    model.generation_config.eos_token_id = list(dict.fromkeys(i for i in stops if i is not None))
    model.generation_config.pad_token_id = (tokenizer.pad_token_id if tokenizer.pad_token_id is not None
                                            else tokenizer.eos_token_id)


def _load_policy(model_dir: str | os.PathLike):
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if not tokenizer.chat_template:
        raise ValueError(f"{model_dir}: the tokenizer has no chat template; post-training renders chats through it")
    # fp32 master weights: a checkpoint saved in bf16/fp16 would otherwise train in low precision on CPU.
    return tokenizer, AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)


def _last_turn_as_completion(example: dict[str, Any]) -> dict[str, Any]:
    # Chats ending in an assistant turn become prompt (every earlier turn) + completion (that turn): TRL then
    # puts the loss on the completion only, with any chat template (no {% generation %} markers needed).
    messages = example["messages"]
    return {"prompt": messages[:-1], "completion": messages[-1:]}


def _truncate_prompt(example: dict[str, Any], tokenizer, max_prompt_length: int) -> dict[str, Any]:
    """Cut the start of the last user message until the rendered prompt fits `max_prompt_length` tokens."""
    prompt = [dict(m) for m in example["prompt"]]

    def n_tokens() -> int:
        text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    last_user = max((i for i, m in enumerate(prompt) if m["role"] == "user"), default=None)
    truncated = False
    for _ in range(4):  # re-tokenizing a cut string can shift a token or two; a few passes always fit
        excess = n_tokens() - max_prompt_length
        if excess <= 0 or last_user is None:
            break
        ids = tokenizer(prompt[last_user]["content"], add_special_tokens=False)["input_ids"]
        prompt[last_user]["content"] = tokenizer.decode(ids[min(len(ids), excess + 1):])
        truncated = True
    return {**example, "prompt": prompt, "prompt_truncated": truncated}


def _load_jsonl(path: str | os.PathLike) -> Dataset:
    with open(path, encoding="utf-8") as f:
        empty = not any(line.strip() for line in f)  # stops at the first row
    if empty:
        raise ValueError(f"{path} holds no rows to train on: the synthetic stage kept nothing (see its quarantine "
                         f"and the judge's scores; a stronger teacher or a lower judge threshold yields more)")
    return load_dataset("json", data_files=str(path), split="train")


def _sft_dataset(path: str | os.PathLike, tokenizer, assistant_only_loss: bool) -> tuple[Dataset, str, int]:
    """(dataset, what the loss covers, chats dropped) for `{"messages": [...]}` JSONL under this tokenizer."""
    dataset = _load_jsonl(path).select_columns(["messages"])
    if not assistant_only_loss:
        return dataset, "all_tokens", 0
    if has_generation_markers(tokenizer.chat_template):
        return dataset, "assistant_turns", 0
    # Open models' templates (SmolLM2, Llama, Qwen...) rarely carry {% generation %} markers: train on the
    # last assistant turn as a completion instead (synthetic SFT chats have one answer turn anyway).
    n_before = len(dataset)
    dataset = dataset.filter(lambda ex: bool(ex["messages"]) and ex["messages"][-1]["role"] == "assistant")
    dataset = dataset.map(_last_turn_as_completion, remove_columns=["messages"])
    return dataset, "last_assistant_turn", n_before - len(dataset)


def sft(
    model_dir: str | os.PathLike,
    dataset_jsonl: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: SFTRunConfig | None = None,
    log_fn: LogFn = print,
    eval_jsonl: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Fine-tune the model in `model_dir` on `{"messages": [...]}` JSONL; save model + tokenizer to `out_dir`.

    The chats are rendered with the model's own chat template; with LoRA (`config.lora_r > 0`) the adapters
    are merged before saving. `eval_jsonl` (held-out validation chats, same format) adds `eval_loss` to the
    returned metrics: the number to choose the learning rate and epochs by, never a test score.
    """
    c = config or SFTRunConfig()
    if c.num_threads:
        torch.set_num_threads(c.num_threads)
    tokenizer, model = _load_policy(model_dir)
    dataset, loss_on, dropped = _sft_dataset(dataset_jsonl, tokenizer, c.assistant_only_loss)
    if dropped:
        log_fn(0, {"sft_chats_without_final_answer_dropped": float(dropped)})
    eval_dataset = _sft_dataset(eval_jsonl, tokenizer, c.assistant_only_loss)[0] if eval_jsonl else None
    with tempfile.TemporaryDirectory(prefix="sft-") as work_dir:
        args = SFTConfig(
            **_common_args(c, work_dir),
            weight_decay=c.weight_decay,
            assistant_only_loss=loss_on == "assistant_turns",
            completion_only_loss=True if loss_on == "last_assistant_turn" else None,
            packing=False,  # padding-free packing needs FlashAttention; chats are short anyway
        )
        trainer = SFTTrainer(
            model=model, args=args, train_dataset=dataset, eval_dataset=eval_dataset, processing_class=tokenizer,
            peft_config=peft_config(c.lora), callbacks=[_ForwardLogs(log_fn)],
        )
        trainer.remove_callback(PrinterCallback)  # logs go to log_fn instead of stdout
        t0 = time.perf_counter()
        trainer.train()
        metrics = _metrics(trainer, time.perf_counter() - t0, len(dataset))
        if eval_dataset is not None:
            metrics["eval_loss"] = trainer.evaluate()["eval_loss"]
    metrics["config"] = asdict(c)
    metrics["loss_on"] = loss_on
    metrics["chats_dropped"] = dropped
    model = merge_lora(trainer.model)  # downstream loads a plain model, never adapters
    _stop_at_end_of_turn(model, tokenizer)
    save_model_dir(model, tokenizer, out_dir, extra={k: v for k, v in metrics.items() if k != "log_history"})
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


def _dpo_dataset(path: str | os.PathLike, tokenizer, max_prompt_length: int | None) -> tuple[Dataset, int]:
    """(conversational preference dataset, prompts truncated) for `{"prompt","chosen","rejected"}` JSONL."""
    raw = _load_jsonl(path)
    dataset = raw.map(_as_conversation, remove_columns=raw.column_names)
    if not max_prompt_length:
        return dataset, 0
    dataset = dataset.map(_truncate_prompt, fn_kwargs={"tokenizer": tokenizer, "max_prompt_length": max_prompt_length})
    n_truncated = int(sum(dataset["prompt_truncated"]))
    return dataset.remove_columns(["prompt_truncated"]), n_truncated


def dpo(
    model_dir: str | os.PathLike,
    dataset_jsonl: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: DPORunConfig | None = None,
    log_fn: LogFn = print,
    eval_jsonl: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """DPO on `{"prompt","chosen","rejected"}` JSONL with the model in `model_dir` (the SFT model) as reference.

    Fields may be plain strings (a user prompt and two assistant answers) or TRL conversational lists
    (`prompt`: messages ending with a user turn; `chosen`/`rejected`: one assistant message each).
    Both are rendered through the tokenizer's chat template. Returns metrics incl. the last logged
    `rewards/accuracies` and `rewards/margins` (the fraction of pairs where the policy prefers the
    chosen answer more than the reference does, and by how much). With LoRA the reference is the policy
    with its adapters disabled (no second model). `eval_jsonl` (held-out validation pairs) adds
    `eval_loss` and `eval_rewards_accuracies`, to choose lr / beta / epochs by.
    """
    c = config or DPORunConfig()
    if c.num_threads:
        torch.set_num_threads(c.num_threads)
    tokenizer, model = _load_policy(model_dir)
    # The reference is the starting (SFT) model. With LoRA it is the policy itself with its adapters disabled
    # (TRL does that when ref_model is None), so no second copy of the weights is held or run separately.
    ref_model = None if c.lora.enabled else AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    dataset, n_truncated = _dpo_dataset(dataset_jsonl, tokenizer, c.max_prompt_length)
    eval_dataset = _dpo_dataset(eval_jsonl, tokenizer, c.max_prompt_length)[0] if eval_jsonl else None
    with tempfile.TemporaryDirectory(prefix="dpo-") as work_dir:
        args = DPOConfig(**_common_args(c, work_dir), beta=c.beta, loss_type=[c.loss_type])
        trainer = DPOTrainer(
            model=model, ref_model=ref_model, args=args, train_dataset=dataset, eval_dataset=eval_dataset,
            processing_class=tokenizer, peft_config=peft_config(c.lora), callbacks=[_ForwardLogs(log_fn)],
        )
        trainer.remove_callback(PrinterCallback)  # logs go to log_fn instead of stdout
        t0 = time.perf_counter()
        trainer.train()
        metrics = _metrics(trainer, time.perf_counter() - t0, len(dataset))
        if eval_dataset is not None:
            scores = trainer.evaluate()
            metrics["eval_loss"] = scores["eval_loss"]
            metrics["eval_rewards_accuracies"] = scores.get("eval_rewards/accuracies")
    reward_logs = [h for h in metrics["log_history"] if "rewards/accuracies" in h]
    for key in ("rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected"):
        metrics[key.replace("/", "_")] = reward_logs[-1][key] if reward_logs else None
        metrics[key.replace("/", "_") + "_curve"] = [(h["step"], h[key]) for h in reward_logs]
    metrics["config"] = asdict(c)
    metrics["prompts_truncated"] = n_truncated
    model = merge_lora(trainer.model)  # downstream loads a plain model, never adapters
    _stop_at_end_of_turn(model, tokenizer)
    save_model_dir(model, tokenizer, out_dir, extra={k: v for k, v in metrics.items() if k != "log_history"})
    metrics["model_dir"] = str(out_dir)
    return metrics
