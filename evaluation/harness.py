"""Run Modelworks lm-eval tasks on a local Hugging Face model directory and flatten the scores."""

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


def evaluate_model(
    model_dir: str | os.PathLike,
    tasks_dir: str | os.PathLike,
    task_names: list[str],
    batch_size: int = 16,
    limit: int | float | None = None,
    device: str = "cpu",
    bootstrap_iters: int = 1000,
) -> dict:
    """Score one model on Modelworks lm-eval tasks, zero-shot, plain prompts (no chat template).

    Returns {task: {metric: value, "<metric>_stderr": value or None, "n_samples": int}, ...,
    "_meta": {"wall_time_s", "model_dir", "lm_eval_version", "limit", ...}}. Keys starting with
    "_" are not tasks.
    """
    # Every input is local (model directory, JSONL data files): a Hub lookup could only hang or fail.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _quiet_logging()
    import lm_eval
    from lm_eval.tasks import TaskManager

    _quiet_logging()  # lm_eval configures its loggers on import
    model_dir = Path(model_dir).resolve()
    started = time.perf_counter()
    # include_defaults=False: indexing lm-eval's thousands of built-in YAMLs costs seconds, and a
    # Modelworks task name must never resolve to a built-in one.
    task_manager = TaskManager(include_path=str(Path(tasks_dir).resolve()), include_defaults=False)
    results = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={model_dir},dtype=float32",
        tasks=list(task_names),
        num_fewshot=0,
        batch_size=batch_size,
        device=device,
        limit=limit,
        task_manager=task_manager,
        apply_chat_template=False,
        log_samples=False,
        bootstrap_iters=bootstrap_iters,
        random_seed=RANDOM_SEED,
        numpy_random_seed=NUMPY_SEED,
        torch_random_seed=TORCH_SEED,
        fewshot_random_seed=FEWSHOT_SEED,
    )
    wall_time_s = time.perf_counter() - started
    if results is None:  # only non-zero ranks of a distributed run get None
        raise RuntimeError("lm-eval returned no results (not rank 0?)")

    flat = flatten_results(results)
    missing = [t for t in task_names if t not in flat]
    if missing:
        raise RuntimeError(f"lm-eval returned no results for {missing}")
    flat["_meta"] = {
        "model_dir": str(model_dir),
        "wall_time_s": round(wall_time_s, 3),
        "lm_eval_version": lm_eval.__version__,
        "limit": limit,
        "batch_size": batch_size,
        "device": device,
        "num_fewshot": 0,
        "chat_template": False,
    }
    return flat
