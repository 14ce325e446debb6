"""Score a local Hugging Face model: lm-eval tasks with every item's score kept, and held-out text perplexity."""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

# Fixed seeds of lm-eval's Python / NumPy / torch / few-shot samplers: the same model scores the same.
RANDOM_SEED = 0
NUMPY_SEED = 1234
TORCH_SEED = 1234
FEWSHOT_SEED = 1234

_QUIET_LOGGERS = ("lm_eval", "transformers", "datasets", "accelerate", "huggingface_hub")


def _quiet_logging() -> None:
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _number(value) -> float | None:
    """lm-eval reports a missing stderr as the string "N/A"; the flat dict uses None (JSON null)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def flatten_results(results: dict) -> dict[str, dict]:
    """{task: {metric: value, metric_stderr: value, n_samples: int}} from lm-eval's results dict.

    lm-eval keys a metric as "<metric>,<filter>" ("acc,none"); Modelworks tasks use no filters,
    so the filter suffix "none" is dropped ("acc", "acc_stderr"); any other filter is kept as
    "<metric>/<filter>".
    """
    flat: dict[str, dict] = {}
    n_samples = results.get("n-samples", {})
    for task, task_results in results["results"].items():
        scores: dict = {}
        for key, value in task_results.items():
            if "," not in key:  # "alias", "sample_len", ...
                continue
            metric, filter_name = key.split(",", 1)
            flat_key = metric if filter_name == "none" else f"{metric}/{filter_name}"
            scores[flat_key] = _number(value)
        counts = n_samples.get(task, {})
        scores["n_samples"] = int(counts.get("effective", counts.get("original", 0)))
        flat[task] = scores
    return flat


def task_manager_for(task_names: list[str], include_paths: list[str | os.PathLike] = ()):
    """An lm-eval TaskManager that knows every name in `task_names`.

    Local folders (Modelworks' generated tasks, a user's folder of lm-eval task YAML) are indexed
    first without lm-eval's built-in tasks, which cost seconds to index; the built-ins are added
    only when a name is not found locally (a user asked for e.g. "hellaswag"). A name found
    nowhere is a clear error, not a silent skip.
    """
    from lm_eval.tasks import TaskManager

    paths = [str(Path(p).resolve()) for p in include_paths]
    manager = TaskManager(include_path=paths or None, include_defaults=False)
    missing = [t for t in task_names if t not in manager.all_tasks]
    if missing:
        manager = TaskManager(include_path=paths or None, include_defaults=True)
        missing = [t for t in task_names if t not in manager.all_tasks]
        if missing:
            raise ValueError(f"unknown lm-eval tasks {missing}: not in {paths or 'no folder'} nor built in")
    return manager


def list_tasks(include_path: str | os.PathLike) -> list[str]:
    """The task (and group) names an lm-eval YAML folder defines, e.g. a user's own task folder."""
    from lm_eval.tasks import TaskManager

    _quiet_logging()
    return sorted(TaskManager(include_path=str(Path(include_path).resolve()), include_defaults=False).all_tasks)


def _item_rows(samples: list[dict]) -> list[dict]:
    """Per-item scores from lm-eval's logged samples: {"doc_id", "id", "group", <metric>: value}."""
    rows = []
    for sample in samples:
        doc = sample.get("doc") or {}
        row = {"doc_id": sample.get("doc_id"),
               "id": str(doc.get("id", sample.get("doc_id"))) if isinstance(doc, dict) else str(sample.get("doc_id"))}
        if isinstance(doc, dict) and doc.get("group") is not None:
            row["group"] = str(doc["group"])
        for key in sample.get("metrics", []):
            value = sample.get(key)
            if isinstance(value, (list, tuple)):  # perplexity metrics log (loglikelihood, weight)
                value = [float(v) for v in value]
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                value = float(value)
            elif isinstance(value, bool):
                value = float(value)
            else:
                continue
            row[key] = value
        responses = sample.get("filtered_resps")
        if sample.get("output_type", "") == "generate_until" or (
                responses and isinstance(responses[0], str)):
            row["prediction"] = responses[0] if responses else ""
        rows.append(row)
    rows.sort(key=lambda r: (r["doc_id"] is None, r["doc_id"]))
    return rows


def has_chat_template(model_dir: str | os.PathLike) -> bool:
    """Whether the model's tokenizer carries a chat template (SFT/DPO models and the open model do)."""
    from transformers import AutoTokenizer

    try:
        return bool(getattr(AutoTokenizer.from_pretrained(str(model_dir)), "chat_template", None))
    except Exception:  # no tokenizer files: lm-eval will say so itself
        return False


def _run(model_dir: Path, task_names: list[str], manager, batch_size, device, limit, bootstrap_iters,
         chat: bool, dtype: str):
    import lm_eval

    return lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={model_dir},dtype={dtype}",
        tasks=list(task_names),
        num_fewshot=0,
        batch_size=batch_size,
        device=device,
        limit=limit,
        task_manager=manager,
        apply_chat_template=chat,
        log_samples=True,
        bootstrap_iters=bootstrap_iters,
        random_seed=RANDOM_SEED,
        numpy_random_seed=NUMPY_SEED,
        torch_random_seed=TORCH_SEED,
        fewshot_random_seed=FEWSHOT_SEED,
    )


CHAT_SUFFIX = "@chat"


def evaluate_model(
    model_dir: str | os.PathLike,
    tasks_dir: str | os.PathLike | list[str | os.PathLike] | None,
    task_names: list[str],
    batch_size: int = 16,
    limit: int | float | None = None,
    device: str = "cpu",
    bootstrap_iters: int = 0,
    chat_template: bool | str = False,
    dtype: str = "float32",
) -> dict:
    """Score one model on lm-eval tasks, zero-shot, and keep every item's score.

    `tasks_dir`: one folder or a list of folders of lm-eval task YAML (Modelworks' generated
    tasks, a user's own folder); task names not found there are looked up among lm-eval's
    built-in tasks. `chat_template`: False = plain prompts only; True = also score the
    *generative* tasks with the model's chat template (the way an SFT/DPO model is used) when its
    tokenizer has one, reported under `<task>@chat`; multiple-choice and perplexity tasks compare
    log-likelihoods of fixed continuations and are scored with plain prompts only. "auto" = True
    when the tokenizer has a chat template.

    Returns {task: {metric: value, "<metric>_stderr": value or None, "n_samples": int,
    "output_type": str, "prompt_style": "plain"|"chat"}, ..., "_items": {task: [{"doc_id", "id",
    "group"?, <metric>: per-item value, "prediction"?}]}, "_meta": {...}}. Keys starting with "_"
    are not tasks. `bootstrap_iters` (lm-eval's own stderr) defaults to 0: the report computes
    bootstrap intervals from the per-item scores itself.
    """
    # Every input is local (model directory, JSONL data files): a Hub lookup could only hang or fail.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _quiet_logging()
    import lm_eval

    _quiet_logging()  # lm_eval configures its loggers on import
    model_dir = Path(model_dir).resolve()
    include = [] if tasks_dir is None else [tasks_dir] if isinstance(tasks_dir, (str, os.PathLike)) else list(tasks_dir)
    started = time.perf_counter()
    manager = task_manager_for(task_names, include)
    results = _run(model_dir, task_names, manager, batch_size, device, limit, bootstrap_iters, False, dtype)
    if results is None:  # only non-zero ranks of a distributed run get None
        raise RuntimeError("lm-eval returned no results (not rank 0?)")
    flat = flatten_results(results)
    items = {task: _item_rows(samples) for task, samples in results.get("samples", {}).items()}
    configs = results.get("configs", {})
    for task, scores in flat.items():
        scores["output_type"] = configs.get(task, {}).get("output_type")
        scores["prompt_style"] = "plain"
    missing = [t for t in task_names if t not in flat and t not in results.get("group_subtasks", {})]
    if missing:
        raise RuntimeError(f"lm-eval returned no results for {missing}")

    use_chat = has_chat_template(model_dir) if chat_template == "auto" else bool(chat_template)
    generative = [t for t, s in flat.items() if s["output_type"] == "generate_until"]
    chat_scored = []
    if use_chat and generative and has_chat_template(model_dir):
        chat = _run(model_dir, generative, manager, batch_size, device, limit, bootstrap_iters, True, dtype)
        for task, scores in flatten_results(chat).items():
            scores["output_type"] = "generate_until"
            scores["prompt_style"] = "chat"
            flat[task + CHAT_SUFFIX] = scores
            chat_scored.append(task)
        for task, samples in chat.get("samples", {}).items():
            items[task + CHAT_SUFFIX] = _item_rows(samples)
    wall_time_s = time.perf_counter() - started
    flat["_items"] = items
    flat["_meta"] = {
        "model_dir": str(model_dir),
        "wall_time_s": round(wall_time_s, 3),
        "lm_eval_version": lm_eval.__version__,
        "limit": limit,
        "batch_size": batch_size,
        "device": device,
        "num_fewshot": 0,
        "chat_template": chat_scored,
    }
    return flat


def text_perplexity(
    model_dir: str | os.PathLike,
    texts: list[str],
    ids: list[str] | None = None,
    max_tokens: int = 1024,
    batch_size: int = 4,
    device: str = "cpu",
    dtype: str = "float32",
) -> dict:
    """Token-level perplexity of a causal LM on held-out texts, with every document's NLL kept.

    Each document is tokenized with the model's own tokenizer (BOS prepended when it has one)
    and scored in non-overlapping windows of `max_tokens`; every token after the first is
    predicted. Returns {"perplexity": exp(sum NLL / sum tokens), "bits_per_byte": sum NLL /
    (ln 2 * sum UTF-8 bytes), "n_docs", "n_tokens", "output_type": "perplexity", "items": [{"id",
    "nll", "n_tokens", "n_bytes", "token_nll", "bits_per_byte"}]}; merge it into a stage's scores
    with `add_task_scores(scores, "general_text", result)`. Bits per byte compares models
    with different tokenizers (the from-scratch base and the open model); token perplexity is
    comparable only within one tokenizer.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _quiet_logging()
    ids = ids or [f"doc-{i}" for i in range(len(texts))]
    if len(ids) != len(texts):
        raise ValueError("one id per text")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=getattr(torch, dtype)).to(device).eval()
    max_tokens = min(max_tokens, getattr(model.config, "max_position_embeddings", max_tokens) or max_tokens)
    windows: list[tuple[int, list[int]]] = []  # (doc index, token ids of one window)
    for d, text in enumerate(texts):
        tokens = tokenizer(text, add_special_tokens=False)["input_ids"]
        if tokenizer.bos_token_id is not None:
            tokens = [tokenizer.bos_token_id] + tokens
        for start in range(0, max(len(tokens) - 1, 0), max_tokens - 1):
            # Windows overlap by one token so that every token after the first is predicted once.
            windows.append((d, tokens[start:start + max_tokens]))
    nll = [0.0] * len(texts)
    counted = [0] * len(texts)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with torch.no_grad():
        for b in range(0, len(windows), batch_size):
            batch = windows[b:b + batch_size]
            width = max(len(w) for _, w in batch)
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for i, (_, w) in enumerate(batch):
                input_ids[i, :len(w)] = torch.tensor(w)
                mask[i, :len(w)] = 1
            logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            target = input_ids[:, 1:].to(device)
            token_nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1) * mask[:, 1:].to(device)
            for i, (d, w) in enumerate(batch):
                nll[d] += float(token_nll[i].sum())
                counted[d] += len(w) - 1
    items = []
    for doc_id, text, n, c in zip(ids, texts, nll, counted):
        n_bytes = len(text.encode("utf-8"))
        items.append({"id": str(doc_id), "nll": n, "n_tokens": c, "n_bytes": n_bytes,
                      "token_nll": n / c if c else math.nan,
                      "bits_per_byte": n / math.log(2) / n_bytes if n_bytes else math.nan})
    total_nll, total_tokens = sum(nll), sum(counted)
    total_bytes = sum(i["n_bytes"] for i in items)
    return {"perplexity": math.exp(total_nll / total_tokens) if total_tokens else math.nan,
            "bits_per_byte": total_nll / math.log(2) / total_bytes if total_bytes else math.nan,
            "n_docs": len(texts), "n_tokens": total_tokens, "n_samples": len(texts), "output_type": "perplexity",
            "prompt_style": "plain", "items": items, "max_tokens": max_tokens}


def add_task_scores(scores: dict, task: str, result: dict) -> dict:
    """Put a `text_perplexity` result (or any {metric..., "items": [...]}) into an `evaluate_model` dict."""
    result = dict(result)
    scores.setdefault("_items", {})[task] = result.pop("items", [])
    scores[task] = result
    return scores
