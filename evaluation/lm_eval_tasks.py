"""lm-evaluation-harness task configs (YAML + a self-contained utils.py) over local benchmark JSONL files."""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from curation.tables import write_text_atomic

from evaluation import metrics

# Benchmark file stem -> lm-eval task suffix. A benchmark whose file is absent is skipped.
BENCHMARK_TASKS: dict[str, str] = {
    "mcq": "mcq",
    "completion": "completion",
    "qa": "qa",
    "summarization": "summarization",
    "heldout": "heldout_ppl",
}

QA_MAX_GEN_TOKS = 24
SUMMARY_MAX_GEN_TOKS = 48


@dataclass(frozen=True)
class _Function:
    """A `!function module.name` reference in an lm-eval YAML file."""

    qualname: str


class _TaskDumper(yaml.SafeDumper):
    pass


_TaskDumper.add_representer(_Function, lambda dumper, f: dumper.represent_scalar("!function", f.qualname))
# Prompts with newlines read best double-quoted ("Question: {{question}}\nAnswer:").
_TaskDumper.add_representer(
    str, lambda dumper, s: dumper.represent_scalar("tag:yaml.org,2002:str", s, style='"' if "\n" in s else None)
)


def _mean(metric: str) -> dict:
    return {"metric": metric, "aggregation": "mean", "higher_is_better": True}


def _task_config(kind: str, name: str, data_file: Path, cache_dir: Path) -> dict:
    """The lm-eval config for one benchmark; every task is zero-shot over the `train` split of its file."""
    config: dict = {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"train": str(data_file)}, "cache_dir": str(cache_dir)},
        "test_split": "train",
        "num_fewshot": 0,
    }
    if kind == "mcq":
        # target_delimiter " " puts the leading space before every choice: "Answer: impeller imbalance".
        config |= {
            "output_type": "multiple_choice",
            "doc_to_text": "Question: {{question}}\nAnswer:",
            "doc_to_choice": "choices",
            "doc_to_target": "answer",
            "target_delimiter": " ",
            "metric_list": [_mean("acc"), _mean("acc_norm")],
        }
    elif kind == "completion":
        config |= {
            "output_type": "multiple_choice",
            "doc_to_text": "{{context}}",
            "doc_to_choice": "endings",
            "doc_to_target": "label",
            "target_delimiter": " ",
            "metric_list": [_mean("acc"), _mean("acc_norm")],
        }
    elif kind == "qa":
        config |= {
            "output_type": "generate_until",
            "doc_to_text": "Question: {{question}}\nAnswer:",
            "doc_to_target": "answer",
            "generation_kwargs": {
                "until": ["\n", "."],
                "max_gen_toks": QA_MAX_GEN_TOKS,
                "do_sample": False,
                "temperature": 0.0,
            },
            "process_results": _Function("utils.process_qa_results"),
            "metric_list": [_mean("exact_match"), _mean("f1")],
        }
    elif kind == "summarization":
        config |= {
            "output_type": "generate_until",
            "doc_to_text": "Document: {{document}}\nSummary:",
            "doc_to_target": "summary",
            "generation_kwargs": {
                "until": ["\n"],
                "max_gen_toks": SUMMARY_MAX_GEN_TOKS,
                "do_sample": False,
                "temperature": 0.0,
            },
            "process_results": _Function("utils.process_summarization_results"),
            "metric_list": [_mean("rougeL")],
        }
    elif kind == "heldout":
        # lm-eval's built-in process_results counts words and UTF-8 bytes of doc_to_target.
        config |= {
            "output_type": "loglikelihood_rolling",
            "doc_to_text": "",
            "doc_to_target": "text",
            "metric_list": [
                {"metric": "word_perplexity", "aggregation": "weighted_perplexity", "higher_is_better": False},
                {"metric": "byte_perplexity", "aggregation": "weighted_perplexity", "higher_is_better": False},
                {"metric": "bits_per_byte", "aggregation": "bits_per_byte", "higher_is_better": False},
            ],
        }
    else:
        raise ValueError(f"unknown benchmark kind {kind!r}")
    config["metadata"] = {"version": 1.0}
    return config


_UTILS_FOOTER = '''

# --- lm-eval process_results hooks -------------------------------------------------------------


def process_qa_results(doc, results):
    prediction = results[0]
    references = [doc["answer"], *(doc.get("aliases") or [])]
    return {"exact_match": exact_match(prediction, references), "f1": token_f1(prediction, references)}


def process_summarization_results(doc, results):
    return {"rougeL": rouge_l(results[0], doc["summary"])}
'''


def _utils_source() -> str:
    # The tasks folder must run under a bare `lm_eval --include_path`, where `evaluation` may not
    # be importable, so utils.py carries a copy of evaluation/metrics.py rather than importing it.
    header = '"""Generated by evaluation/lm_eval_tasks.py: Modelworks metric hooks for lm-eval. Do not edit."""\n'
    body = inspect.getsource(metrics).split("\n", 1)[1]  # drop metrics.py's own docstring line
    return header + body + _UTILS_FOOTER




def task_name(kind: str, prefix: str = "modelworks") -> str:
    """The lm-eval task name of a benchmark kind, e.g. `modelworks_heldout_ppl` for `heldout`."""
    return f"{prefix}_{BENCHMARK_TASKS[kind]}"


def write_task_configs(
    benchmark_dir: str | os.PathLike,
    tasks_dir: str | os.PathLike,
    prefix: str = "modelworks",
) -> list[str]:
    """Write one lm-eval YAML per benchmark JSONL found in `benchmark_dir`, plus utils.py; return the task names.

    Data files are referenced by absolute path, and the `datasets` cache lives in
    `tasks_dir/.hf_datasets_cache`, so evaluation never touches the network or ~/.cache.
    """
    benchmark_dir = Path(benchmark_dir).resolve()
    tasks_dir = Path(tasks_dir).resolve()
    tasks_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = tasks_dir / ".hf_datasets_cache"

    names = []
    for kind in BENCHMARK_TASKS:
        data_file = benchmark_dir / f"{kind}.jsonl"
        if not data_file.exists():
            continue
        name = task_name(kind, prefix)
        config = _task_config(kind, name, data_file, cache_dir)
        text = yaml.dump(config, Dumper=_TaskDumper, sort_keys=False, allow_unicode=True, width=1000)
        write_text_atomic(text, tasks_dir / f"{name}.yaml")
        names.append(name)
    if not names:
        raise FileNotFoundError(f"no benchmark files ({', '.join(BENCHMARK_TASKS)}).jsonl in {benchmark_dir}")
    write_text_atomic(_utils_source(), tasks_dir / "utils.py")
    return names
