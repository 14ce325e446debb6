"""Score a local Hugging Face model: lm-eval tasks with every item's score kept, and held-out text perplexity."""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

# Fixed seeds of lm-eval's Python / NumPy / torch / few-shot samplers: the same model scores the same.


@dataclass
class EvalSettings:
    """How every stage's model is scored (the `*_model_scores` assets; the recipe's `eval:` section)."""

    split: str = "test"  # test: the report's split; validation: for choosing hyperparameters (never test for that)
    batch_size: int = 16  # items per forward pass
    limit: int | None = None  # items per task (None or 0: all)
    chat_template: bool | None = None  # also score generative tasks in chat format; None: every model that has one
    perplexity_max_tokens: int = 512  # tokens per document of the perplexity probes
    reference_text: bool = False  # also the perplexity of real English shipped with Python (a forgetting probe)


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


# --- fitting items into the model's context ----------------------------------------------------
#
# lm-eval's HF model cuts an over-long context from the left itself (keeping the end of the
# context and the whole continuation), but it asserts that a continuation alone fits: one MCQ
# option or completion ending longer than the model's context crashes the whole evaluation, and
# a generative task whose max_gen_toks leaves no room for a prompt fails too. The model class
# below looks at every request before lm-eval does: requests that lm-eval will cut are counted
# as "fitted"; items with a request that cannot fit at all are "set aside" (never sent to the
# model, their reason kept) and dropped from the task's scores afterwards. An item is one
# benchmark document: set aside as soon as one of its requests is.

FITTED, SET_ASIDE = "fitted", "set_aside"

_FITTING_LM = None


def _fitting_lm_class():
    """lm-eval's HFLM, plus the fitting above (the class is built on first use: lm_eval imports slowly)."""
    global _FITTING_LM
    if _FITTING_LM is not None:
        return _FITTING_LM
    from lm_eval.models.huggingface import HFLM

    class FittingHFLM(HFLM):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.fit_log: dict[tuple[str, int], dict] = {}  # (task, doc_id) -> {"status", "reason"}
            self._pending = None

        def _note(self, instance, status: str, reason: str | None = None) -> None:
            key = (instance.task_name, instance.doc_id)
            if self.fit_log.get(key, {}).get("status") == SET_ASIDE:
                return  # set aside wins over fitted: the item is not scored at all
            self.fit_log[key] = {"status": status, "reason": reason}

        def loglikelihood(self, requests, disable_tqdm: bool = False):
            # TemplateLM.loglikelihood tokenizes the requests and hands them, in the same order, to
            # _loglikelihood_tokens, which sees only tokens: remember which item each one is.
            self._pending = list(requests)
            try:
                return super().loglikelihood(requests, disable_tqdm=disable_tqdm)
            finally:
                self._pending = None

        def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs=None):
            instances, self._pending = self._pending, None
            if instances is None or len(instances) != len(requests):
                # Rolling windows of a perplexity task: lm-eval cuts those to the context itself.
                return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
            limit = self.max_length
            keep = []
            for i, (instance, (_, context_enc, continuation_enc)) in enumerate(zip(instances, requests)):
                if len(continuation_enc) > limit:
                    self._note(instance, SET_ASIDE, f"an option of {len(continuation_enc)} tokens is longer than "
                                                    f"the model's context of {limit} tokens")
                    continue
                if len(context_enc) + len(continuation_enc) > limit + 1:  # lm-eval's own cut-off
                    self._note(instance, FITTED)
                keep.append(i)
            scored = super()._loglikelihood_tokens([requests[i] for i in keep], disable_tqdm=disable_tqdm,
                                                   override_bs=override_bs) if keep else []
            # A set-aside request gets an impossible score so lm-eval's scoring of the item runs
            # unchanged; the item is removed from every score afterwards (_apply_fit_log).
            out = [(-math.inf, False)] * len(requests)
            for i, result in zip(keep, scored):
                out[i] = result
            return out

        def generate_until(self, requests, disable_tqdm: bool = False):
            limit, keep = self.max_length, []
            for i, instance in enumerate(requests):
                context, gen_kwargs = instance.args
                max_gen = int((gen_kwargs or {}).get("max_gen_toks") or self.max_gen_toks)
                room = limit - max_gen if self.backend == "causal" else limit
                if room <= 0:
                    self._note(instance, SET_ASIDE, f"max_gen_toks {max_gen} leaves no room for a prompt in the "
                                                    f"model's context of {limit} tokens")
                    continue
                if len(self.tok_encode(context)) > room:  # lm-eval keeps the last `room` tokens
                    self._note(instance, FITTED)
                keep.append(i)
            generated = super().generate_until([requests[i] for i in keep], disable_tqdm=disable_tqdm) if keep else []
            out = [""] * len(requests)
            for i, text in zip(keep, generated):
                out[i] = text
            return out

    _FITTING_LM = FittingHFLM
    return FittingHFLM


def _aggregation(config: dict, metric: str):
    """The aggregation function lm-eval uses for `metric` of a task (its metric_list, else the metric's default)."""
    from lm_eval.api.registry import get_aggregation, get_metric_aggregation

    for entry in config.get("metric_list") or []:
        if entry.get("metric") == metric and entry.get("aggregation") is not None:
            agg = entry["aggregation"]
            return agg if callable(agg) else get_aggregation(str(agg))
    return get_metric_aggregation(metric)


def _apply_fit_log(flat: dict, items: dict, results: dict, fit_log: dict, max_length: int, suffix: str = "") -> None:
    """Record fitted / set-aside counts per task and take set-aside items out of its scores.

    Each task's scores get "fit": {"max_length", "n_fitted", "n_set_aside", "set_aside": [{"doc_id",
    "id", "reason"}]}; its per-item rows lose the set-aside items (fitted rows get "fitted": True)
    and every aggregate lm-eval computed over them is recomputed without them (with lm-eval's own
    aggregation), its stderr set to None (it counted the set-aside items).
    """
    samples, configs = results.get("samples", {}), results.get("configs", {})
    for task in list(samples):
        key = task + suffix
        if key not in flat:
            continue
        notes = {doc_id: note for (t, doc_id), note in fit_log.items() if t == task}
        aside = {d for d, n in notes.items() if n["status"] == SET_ASIDE}
        rows = items.get(key, [])
        for row in rows:
            if notes.get(row["doc_id"], {}).get("status") == FITTED:
                row["fitted"] = True
        items[key] = [r for r in rows if r["doc_id"] not in aside]
        ids = {r["doc_id"]: r["id"] for r in rows}
        scores = flat[key]
        scores["fit"] = {"max_length": max_length,
                         "n_fitted": sum(n["status"] == FITTED for n in notes.values()),
                         "n_set_aside": len(aside),
                         "set_aside": [{"doc_id": d, "id": ids.get(d, str(d)), "reason": notes[d]["reason"]}
                                       for d in sorted(aside)]}
        if not aside:
            continue
        kept = [s for s in samples[task] if s.get("doc_id") not in aside]
        for flat_key in [k for k in scores if k not in ("n_samples", "fit", "output_type", "prompt_style")]:
            if flat_key.endswith("_stderr"):
                scores[flat_key] = None
                continue
            metric, _, filter_name = flat_key.partition("/")
            values = [s[metric] for s in kept if s.get("filter", "none") == (filter_name or "none") and metric in s]
            try:
                scores[flat_key] = _number(_aggregation(configs.get(task, {}), metric)(values)) if values else None
            except Exception:  # an aggregation that cannot be redone here: no number rather than a wrong one
                scores[flat_key] = None
        scores["n_samples"] = len({s.get("doc_id") for s in kept})


def _load_model(model_dir: Path, batch_size, device, dtype: str):
    """The fitting HF model lm-eval scores with, loaded once for the plain and the chat run."""
    return _fitting_lm_class().create_from_arg_string(f"pretrained={model_dir},dtype={dtype}",
                                                      {"batch_size": batch_size, "device": device})


def _run(lm, task_names: list[str], manager, limit, bootstrap_iters, chat: bool):
    import lm_eval

    lm.fit_log = {}
    return lm_eval.simple_evaluate(
        model=lm,
        tasks=list(task_names),
        num_fewshot=0,
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
    batch_size: int = EvalSettings.batch_size,
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

    Items longer than the model's context never crash the run: an item whose context is too long
    is scored with the context cut from the left (the continuation whole), and one whose option
    (or generation budget) alone does not fit is set aside with its reason and left out of every
    score; each task reports both under "fit" (see `_apply_fit_log`).

    Returns {task: {metric: value, "<metric>_stderr": value or None, "n_samples": int,
    "output_type": str, "prompt_style": "plain"|"chat", "fit": {"max_length", "n_fitted",
    "n_set_aside", "set_aside": [...]}}, ..., "_items": {task: [{"doc_id", "id", "group"?,
    <metric>: per-item value, "prediction"?, "fitted"?}]}, "_meta": {...}}. Keys starting with "_"
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
    lm = _load_model(model_dir, batch_size, device, dtype)
    results = _run(lm, task_names, manager, limit, bootstrap_iters, False)
    if results is None:  # only non-zero ranks of a distributed run get None
        raise RuntimeError("lm-eval returned no results (not rank 0?)")
    flat = flatten_results(results)
    items = {task: _item_rows(samples) for task, samples in results.get("samples", {}).items()}
    configs = results.get("configs", {})
    for task, scores in flat.items():
        scores["output_type"] = configs.get(task, {}).get("output_type")
        scores["prompt_style"] = "plain"
    _apply_fit_log(flat, items, results, lm.fit_log, lm.max_length)
    missing = [t for t in task_names if t not in flat and t not in results.get("group_subtasks", {})]
    if missing:
        raise RuntimeError(f"lm-eval returned no results for {missing}")

    use_chat = has_chat_template(model_dir) if chat_template == "auto" else bool(chat_template)
    generative = [t for t, s in flat.items() if s["output_type"] == "generate_until"]
    chat_scored = []
    if use_chat and generative and has_chat_template(model_dir):
        chat = _run(lm, generative, manager, limit, bootstrap_iters, True)
        for task, scores in flatten_results(chat).items():
            scores["output_type"] = "generate_until"
            scores["prompt_style"] = "chat"
            flat[task + CHAT_SUFFIX] = scores
            chat_scored.append(task)
        for task, samples in chat.get("samples", {}).items():
            items[task + CHAT_SUFFIX] = _item_rows(samples)
        _apply_fit_log(flat, items, chat, lm.fit_log, lm.max_length, CHAT_SUFFIX)
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
        "max_length": lm.max_length,
        # {task: {"fitted": n, "set_aside": n}} for the tasks where any item did not fit as it was.
        "fit": {task: {"fitted": s["fit"]["n_fitted"], "set_aside": s["fit"]["n_set_aside"]}
                for task, s in flat.items() if not task.startswith("_") and isinstance(s, dict) and "fit" in s
                and (s["fit"]["n_fitted"] or s["fit"]["n_set_aside"])},
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
