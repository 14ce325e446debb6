"""Evaluation library: metrics, lm-eval task configs, harness runs on tiny local models, stage report."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from evaluation.metrics import exact_match, normalize_answer, rouge_l, token_f1

# --- metrics -----------------------------------------------------------------------------------


def test_normalize_answer_drops_case_punctuation_and_articles():
    assert normalize_answer("  The Worn   Bearings! ") == "worn bearings"
    assert normalize_answer("an impeller, imbalanced.") == "impeller imbalanced"


def test_exact_match_accepts_any_alias():
    assert exact_match("Worn bearings.", ["worn bearings"]) == 1.0
    assert exact_match("bearing wear", ["worn bearings", "bearing wear"]) == 1.0
    assert exact_match("worn bearing", "worn bearings") == 0.0
    assert exact_match("", ["worn bearings"]) == 0.0


def test_token_f1_is_squad_f1():
    assert token_f1("worn bearings", "worn bearings") == 1.0
    assert token_f1("cavitation", "worn bearings") == 0.0
    # prediction "worn out bearings" vs "worn bearings": precision 2/3, recall 1 -> F1 0.8
    assert token_f1("worn out bearings", "worn bearings") == pytest.approx(0.8)
    assert token_f1("cavitation", ["worn bearings", "cavitation"]) == 1.0
    assert token_f1("", "") == 1.0
    assert token_f1("", "worn bearings") == 0.0


def test_rouge_l_is_lcs_f_measure():
    assert rouge_l("the impeller is unbalanced", "the impeller is unbalanced") == 1.0
    assert rouge_l("cavitation damage", "worn bearings") == 0.0
    assert rouge_l("", "worn bearings") == 0.0
    # LCS("a b c d", "a c e") = "a c": precision 2/4, recall 2/3 -> F 4/7
    assert rouge_l("a b c d", "a c e") == pytest.approx(4 / 7)
    # order matters, unlike token F1
    assert rouge_l("bearings worn", "worn bearings") == pytest.approx(0.5)
    assert rouge_l("Impeller imbalance!", "impeller IMBALANCE") == 1.0


# --- a tiny benchmark suite and two tiny models ------------------------------------------------

EQUIPMENT = ["centrifugal pump", "screw compressor", "induction motor", "gearbox",
             "cooling fan", "hydraulic press", "steam boiler", "conveyor belt"]
CAUSES = ["impeller imbalance", "worn bearings", "cavitation", "loose coupling"]


def _benchmark_items() -> dict[str, list[dict]]:
    mcq, qa, completion, summarization, heldout = [], [], [], [], []
    for i, equipment in enumerate(EQUIPMENT):
        cause = CAUSES[i % 4]
        choices = CAUSES[i // 2 % 4:] + CAUSES[:i // 2 % 4]  # the same four causes, in varying order
        mcq.append({"id": f"mcq-{i}", "question": f"What is the most likely cause of excessive vibration "
                    f"in a {equipment}?", "choices": choices, "answer": choices.index(cause),
                    "fact_id": f"fact-{i}"})
        qa.append({"id": f"qa-{i}", "question": f"Which fault makes a {equipment} overheat?",
                   "answer": CAUSES[(i + 1) % 4], "aliases": [f"the {CAUSES[(i + 1) % 4]}"],
                   "fact_id": f"fact-{i}"})
        completion.append({"id": f"completion-{i}", "context": f"The {equipment} vibrated badly, so the technician",
                           "endings": ["checked the bearings.", "painted the wall.", "ate lunch.", "sang a song."],
                           "label": 0, "fact_id": f"fact-{i}"})
        summarization.append({"id": f"summarization-{i}",
                              "document": f"The {equipment} vibrated. Technicians found {cause} "
                                          f"and repaired it within a day.",
                              "summary": f"{cause} caused the vibration.", "fact_id": f"fact-{i}"})
        heldout.append({"id": f"heldout-{i}", "text": f"A {equipment} with {cause} runs hot and loud. "
                                                      f"Inspect it weekly and log the readings."})
    return {"mcq": mcq, "qa": qa, "completion": completion, "summarization": summarization, "heldout": heldout}


def _training_texts(items: dict[str, list[dict]]) -> list[str]:
    """What the "trained" model memorizes: the MCQ and QA prompts followed by their answers."""
    texts = [f"Question: {m['question']}\nAnswer: {m['choices'][m['answer']]}." for m in items["mcq"]]
    texts += [f"Question: {q['question']}\nAnswer: {q['answer']}." for q in items["qa"]]
    return texts


def _build_tokenizer(corpus: list[str], out_dir: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(corpus, trainer)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>",
                                      pad_token="<pad>")
    wrapped.save_pretrained(out_dir)
    return wrapped


def _build_model(tokenizer, out_dir: Path, train_texts: list[str] | None = None, steps: int = 150) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    model = LlamaForCausalLM(config)
    if train_texts:
        batch = tokenizer(train_texts, padding=True, return_tensors="pt")
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        model.train()
        for _ in range(steps):
            loss = model(**batch, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        model.eval()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    from evaluation.lm_eval_tasks import write_task_configs

    root = tmp_path_factory.mktemp("evaluation")
    items = _benchmark_items()
    benchmark_dir = root / "benchmarks"
    benchmark_dir.mkdir()
    for kind, rows in items.items():
        (benchmark_dir / f"{kind}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    task_names = write_task_configs(benchmark_dir, root / "tasks")

    corpus = [json.dumps(r) for rows in items.values() for r in rows] + _training_texts(items)
    tokenizer = _build_tokenizer(corpus, root / "tokenizer")
    random_model = _build_model(tokenizer, root / "random_model")
    trained_model = _build_model(tokenizer, root / "trained_model", _training_texts(items))
    return {"root": root, "items": items, "tasks_dir": root / "tasks", "task_names": task_names,
            "random_model": random_model, "trained_model": trained_model}


@pytest.fixture(scope="module")
def scores(suite):
    from evaluation.harness import evaluate_model

    return {
        name: evaluate_model(suite[name], suite["tasks_dir"], suite["task_names"], batch_size=16)
        for name in ("random_model", "trained_model")
    }


# --- task configs ------------------------------------------------------------------------------


def test_write_task_configs_writes_one_yaml_per_benchmark(suite):
    import yaml

    assert suite["task_names"] == ["modelworks_mcq", "modelworks_completion", "modelworks_qa",
                                   "modelworks_summarization", "modelworks_heldout_ppl"]
    tasks_dir = suite["tasks_dir"]
    for name in suite["task_names"]:
        text = (tasks_dir / f"{name}.yaml").read_text()
        config = yaml.load(text.replace("!function", ""), Loader=yaml.SafeLoader)
        assert config["task"] == name
        data_file = Path(config["dataset_kwargs"]["data_files"]["train"])
        assert data_file.is_absolute() and data_file.exists()
    mcq = yaml.safe_load((tasks_dir / "modelworks_mcq.yaml").read_text())
    assert mcq["doc_to_text"] == "Question: {{question}}\nAnswer:"
    assert mcq["output_type"] == "multiple_choice"
    assert yaml.safe_load((tasks_dir / "modelworks_heldout_ppl.yaml").read_text())["output_type"] == \
        "loglikelihood_rolling"


def test_generated_utils_scores_answers_without_the_evaluation_package(suite):
    spec = importlib.util.spec_from_file_location("generated_utils", suite["tasks_dir"] / "utils.py")
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    doc = {"answer": "worn bearings", "aliases": ["bearing wear"]}
    assert utils.process_qa_results(doc, [" Bearing wear"]) == {"exact_match": 1.0, "f1": 1.0}
    assert utils.process_qa_results(doc, [" cavitation"]) == {"exact_match": 0.0, "f1": 0.0}
    assert utils.process_summarization_results({"summary": "pump failed"}, ["pump failed"]) == {"rougeL": 1.0}


def test_write_task_configs_needs_benchmarks(tmp_path):
    from evaluation.lm_eval_tasks import write_task_configs

    with pytest.raises(FileNotFoundError):
        write_task_configs(tmp_path, tmp_path / "tasks")


# --- harness -----------------------------------------------------------------------------------

EXPECTED_METRICS = {
    "modelworks_mcq": ["acc", "acc_norm"],
    "modelworks_completion": ["acc", "acc_norm"],
    "modelworks_qa": ["exact_match", "f1"],
    "modelworks_summarization": ["rougeL"],
    "modelworks_heldout_ppl": ["word_perplexity", "byte_perplexity", "bits_per_byte"],
}


def test_evaluate_model_returns_every_metric_in_range(suite, scores):
    for result in scores.values():
        assert set(result) == set(EXPECTED_METRICS) | {"_meta"}
        for task, metrics in EXPECTED_METRICS.items():
            assert result[task]["n_samples"] == len(suite["items"][task.removeprefix("modelworks_")
                                                                    .removesuffix("_ppl")])
            for metric in metrics:
                value = result[task][metric]
                assert isinstance(value, float) and math.isfinite(value), (task, metric, value)
                if metric in ("word_perplexity", "byte_perplexity"):
                    assert value >= 1.0
                elif metric == "bits_per_byte":
                    assert value > 0.0
                else:
                    assert 0.0 <= value <= 1.0
                    assert f"{metric}_stderr" in result[task]
        assert result["_meta"]["wall_time_s"] > 0
    json.dumps(scores)  # the flat dict goes straight into Dagster metadata and report.json


def test_evaluate_model_is_deterministic_and_honours_limit(suite, scores):
    from evaluation.harness import evaluate_model

    again = evaluate_model(suite["random_model"], suite["tasks_dir"], ["modelworks_mcq", "modelworks_qa"], limit=4)
    assert again["modelworks_mcq"]["n_samples"] == 4
    assert again["modelworks_qa"]["n_samples"] == 4
    full = evaluate_model(suite["random_model"], suite["tasks_dir"], ["modelworks_mcq"])
    assert full["modelworks_mcq"]["acc"] == scores["random_model"]["modelworks_mcq"]["acc"]


def test_a_model_trained_on_the_answers_beats_a_random_one(scores):
    random_model, trained_model = scores["random_model"], scores["trained_model"]
    assert trained_model["modelworks_mcq"]["acc"] >= 0.75 > random_model["modelworks_mcq"]["acc"]
    assert trained_model["modelworks_qa"]["exact_match"] >= 0.5
    assert trained_model["modelworks_qa"]["f1"] > random_model["modelworks_qa"]["f1"]


# --- report ------------------------------------------------------------------------------------


def test_stage_report_has_every_stage_and_every_file(scores, tmp_path):
    from evaluation.report import build_stage_report, format_stage_table

    random_model, trained_model = scores["random_model"], scores["trained_model"]
    stage_scores = {"dpo": trained_model, "base": random_model, "dapt": random_model, "sft": trained_model}
    chance = {"mcq_acc": 0.25, "completion_acc": 0.25, "qa_exact_match": 0.0}
    report = build_stage_report(stage_scores, tmp_path / "report", chance)

    assert list(report["headline"]) == ["base", "dapt", "sft", "dpo"]
    assert report["headline"]["sft"]["mcq_acc"] == trained_model["modelworks_mcq"]["acc"]
    assert report["headline"]["base"]["heldout_word_perplexity"] == \
        random_model["modelworks_heldout_ppl"]["word_perplexity"]
    for path in report["paths"].values():
        assert Path(path).exists()
    assert not list((tmp_path / "report").glob(".*.tmp"))

    table_rows = [line for line in report["markdown"].splitlines() if line.startswith("| ")]
    for stage in ["base", "dapt", "sft", "dpo", "chance"]:
        assert any(row.startswith(f"| {stage} |") for row in table_rows), stage
    assert Path(report["paths"]["markdown"]).read_text() == report["markdown"]
    assert Path(report["paths"]["chart"]).read_bytes().startswith(b"\x89PNG")
    page = Path(report["paths"]["html"]).read_text()
    assert "data:image/png;base64," in page and "<table>" in page
    saved = json.loads(Path(report["paths"]["json"]).read_text())
    assert saved["stages"] == ["base", "dapt", "sft", "dpo"] and saved["chance"] == chance

    terminal = format_stage_table(stage_scores)
    assert [line.split()[0] for line in terminal.splitlines()[2:]] == ["base", "dapt", "sft", "dpo"]
    assert "MCQ acc" in terminal.splitlines()[0]
