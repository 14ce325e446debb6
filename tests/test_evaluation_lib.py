"""Evaluation library: metrics, benchmark files and splits, lm-eval tasks (generated and user YAML), per-item
scoring on tiny local models, perplexity, blind baselines on the demo benchmark, and the stage report."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from evaluation.baselines import BASELINES
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


def _build_model(tokenizer, out_dir: Path, train_texts: list[str] | None = None, steps: int = 150,
                 max_positions: int = 256) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=max_positions,
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

TASK_NAMES = ["modelworks_completion", "modelworks_heldout", "modelworks_mcq", "modelworks_qa",
              "modelworks_summarization"]


def test_write_task_configs_writes_one_yaml_per_benchmark(suite):
    import yaml

    assert suite["task_names"] == TASK_NAMES
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
    assert yaml.safe_load((tasks_dir / "modelworks_heldout.yaml").read_text())["output_type"] == \
        "loglikelihood_rolling"


def test_completion_prompt_joins_context_and_ending_with_one_space(tmp_path):
    """lm-eval adds target_delimiter " " itself; endings with a leading space used to give two."""
    import yaml

    from evaluation.benchmarks import load_benchmark_file
    from evaluation.lm_eval_tasks import write_task_configs

    path = tmp_path / "plant_completion.jsonl"
    path.write_text(json.dumps({"context": "The pump was opened. It showed ", "endings": [" worn rings.", " rust."],
                                "label": 0}) + "\n")
    item = load_benchmark_file(path).items[0]
    assert item["endings"] == ["worn rings.", "rust."] and item["context"] == "The pump was opened. It showed"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "plant_completion.jsonl").write_text(json.dumps(item) + "\n")
    write_task_configs(tmp_path / "data", tmp_path / "tasks")
    config = yaml.safe_load((tmp_path / "tasks" / "modelworks_plant_completion.yaml").read_text())
    joined = item["context"] + config["target_delimiter"] + item["endings"][0]
    assert "  " not in joined


def test_generated_utils_scores_answers_without_the_evaluation_package(suite):
    spec = importlib.util.spec_from_file_location("generated_utils", suite["tasks_dir"] / "utils.py")
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    doc = {"answers": ["worn bearings", "bearing wear"]}
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
    "modelworks_heldout": ["word_perplexity", "byte_perplexity", "bits_per_byte"],
}


def test_evaluate_model_returns_every_metric_and_every_item(suite, scores):
    for result in scores.values():
        assert set(result) == set(EXPECTED_METRICS) | {"_meta", "_items"}
        for task, metrics in EXPECTED_METRICS.items():
            n_items = len(suite["items"][task.removeprefix("modelworks_")])
            assert result[task]["n_samples"] == n_items
            rows = result["_items"][task]
            assert [r["id"] for r in rows] == [i["id"] for i in suite["items"][task.removeprefix("modelworks_")]]
            for metric in metrics:
                value = result[task][metric]
                assert isinstance(value, float) and math.isfinite(value), (task, metric, value)
                if metric in ("word_perplexity", "byte_perplexity"):
                    assert value >= 1.0
                elif metric == "bits_per_byte":
                    assert value > 0.0
                else:
                    assert 0.0 <= value <= 1.0
                    # the aggregate is the mean of the per-item scores the report resamples
                    assert value == pytest.approx(sum(r[metric] for r in rows) / len(rows))
        assert result["_meta"]["wall_time_s"] > 0
    json.dumps(scores)  # the flat dict goes straight into Dagster metadata and report.json


def test_evaluate_model_is_deterministic_and_honours_limit(suite, scores):
    from evaluation.harness import evaluate_model

    again = evaluate_model(suite["random_model"], suite["tasks_dir"], ["modelworks_mcq", "modelworks_qa"], limit=4)
    assert again["modelworks_mcq"]["n_samples"] == 4
    assert again["modelworks_qa"]["n_samples"] == 4
    assert again["_items"]["modelworks_mcq"] == scores["random_model"]["_items"]["modelworks_mcq"][:4]


def test_a_model_trained_on_the_answers_beats_a_random_one(scores):
    random_model, trained_model = scores["random_model"], scores["trained_model"]
    assert trained_model["modelworks_mcq"]["acc"] >= 0.75 > random_model["modelworks_mcq"]["acc"]
    assert trained_model["modelworks_qa"]["exact_match"] >= 0.5
    assert trained_model["modelworks_qa"]["f1"] > random_model["modelworks_qa"]["f1"]


def test_generative_tasks_are_also_scored_through_the_chat_template(suite, tmp_path):
    import shutil

    from transformers import AutoTokenizer

    from evaluation.harness import evaluate_model

    model = tmp_path / "chat_model"
    shutil.copytree(suite["trained_model"], model)
    tokenizer = AutoTokenizer.from_pretrained(model)
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    tokenizer.save_pretrained(model)
    result = evaluate_model(model, suite["tasks_dir"], ["modelworks_mcq", "modelworks_qa"], limit=4,
                            chat_template=True)
    assert result["modelworks_qa@chat"]["prompt_style"] == "chat"
    assert result["modelworks_qa"]["prompt_style"] == "plain"
    assert "modelworks_mcq@chat" not in result  # log-likelihood tasks keep plain prompts
    assert len(result["_items"]["modelworks_qa@chat"]) == 4
    assert result["_meta"]["chat_template"] == ["modelworks_qa"]


def test_items_longer_than_the_models_context_are_fitted_or_set_aside_never_a_crash(suite, tmp_path):
    """lm-eval asserts that every option fits the model's context: one long option used to crash the stage.

    A model with a 32-token context; MCQ and completion items whose option alone is longer
    (set aside, with their reason), items whose question/context is longer but whose options fit
    (scored with the context cut from the left: "fitted"), and items that fit as they are.
    """
    from transformers import AutoTokenizer

    from evaluation.harness import evaluate_model
    from evaluation.lm_eval_tasks import write_task_configs

    tokenizer = AutoTokenizer.from_pretrained(suite["random_model"])
    model = _build_model(tokenizer, tmp_path / "short_model", max_positions=32)
    long_text = " ".join(f"the {EQUIPMENT[k % 8]} showed {CAUSES[k % 4]}" for k in range(10))
    mcq, completion = [], []
    for i, equipment in enumerate(EQUIPMENT):
        question, choices = f"Cause in a {equipment}?", list(CAUSES)
        if i < 2:  # one option longer than the whole context: set aside
            choices[3] = f"{long_text} then {i}"
        elif i < 5:  # a long question, short options: fitted
            question = f"{long_text}. What made the {equipment} vibrate?"
        mcq.append({"id": f"mcq-{i}", "question": question, "choices": choices, "answer": 0, "fact_id": f"f{i}"})
        context, endings = f"The {equipment} vibrated, so the technician", ["checked it.", "left."]
        if i == 0:
            endings[1] = long_text
        elif i < 3:
            context = f"{long_text}. The {equipment} vibrated, so the technician"
        completion.append({"id": f"completion-{i}", "context": context, "endings": endings, "label": 0})
    summaries = [{"id": f"summary-{i}", "document": f"The {e} vibrated.", "summary": "It vibrated."}
                 for i, e in enumerate(EQUIPMENT[:2])]
    data = tmp_path / "benchmarks"
    data.mkdir()
    for kind, rows in (("mcq", mcq), ("completion", completion), ("summarization", summaries)):
        (data / f"{kind}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tasks = write_task_configs(data, tmp_path / "tasks")

    def n_tokens(text):
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    # The cases are what they claim to be for this tokenizer (lm-eval's limit: continuation <= 32,
    # context + continuation <= 33).
    assert n_tokens(" " + mcq[0]["choices"][3]) > 32 and n_tokens(" " + completion[0]["endings"][1]) > 32
    assert n_tokens(f"Question: {mcq[2]['question']}\nAnswer:") > 40
    assert all(n_tokens(f"Question: {m['question']}\nAnswer: {c}") <= 33 for m in mcq[5:] for c in m["choices"])

    result = evaluate_model(model, tmp_path / "tasks", tasks)  # used to raise AssertionError

    fit = result["modelworks_mcq"]["fit"]
    assert fit["max_length"] == 32 and (fit["n_set_aside"], fit["n_fitted"]) == (2, 3)
    assert [a["id"] for a in fit["set_aside"]] == ["mcq-0", "mcq-1"]
    assert all("longer than the model's context of 32 tokens" in a["reason"] for a in fit["set_aside"])
    rows = result["_items"]["modelworks_mcq"]
    assert [r["id"] for r in rows] == [f"mcq-{i}" for i in range(2, 8)]
    assert [r["id"] for r in rows if r.get("fitted")] == ["mcq-2", "mcq-3", "mcq-4"]
    assert result["modelworks_mcq"]["n_samples"] == 6
    # The task's score is over the items that were scored, not the set-aside ones.
    assert result["modelworks_mcq"]["acc"] == pytest.approx(sum(r["acc"] for r in rows) / len(rows))
    assert result["modelworks_completion"]["fit"]["n_set_aside"] == 1
    assert result["modelworks_completion"]["fit"]["n_fitted"] == 2
    assert len(result["_items"]["modelworks_completion"]) == 7
    # A generation budget (48 tokens) larger than the context: every summary set aside, none scored.
    summary = result["modelworks_summarization"]
    assert summary["fit"]["n_set_aside"] == 2 and summary["n_samples"] == 0 and summary["rougeL"] is None
    assert "max_gen_toks 48" in summary["fit"]["set_aside"][0]["reason"]
    assert result["_meta"]["fit"]["modelworks_mcq"] == {"fitted": 3, "set_aside": 2}
    json.dumps(result)


def test_text_perplexity_keeps_every_document(suite):
    from evaluation.harness import text_perplexity

    texts = [r["text"] for r in suite["items"]["heldout"]]
    random_ppl = text_perplexity(suite["random_model"], texts, max_tokens=16)
    assert len(random_ppl["items"]) == len(texts)
    total_nll = sum(i["nll"] for i in random_ppl["items"])
    total_tokens = sum(i["n_tokens"] for i in random_ppl["items"])
    assert random_ppl["perplexity"] == pytest.approx(math.exp(total_nll / total_tokens))
    # windowing must not change what is predicted: every token after the first, once
    whole = text_perplexity(suite["random_model"], texts, max_tokens=256)
    assert whole["n_tokens"] == random_ppl["n_tokens"]
    assert random_ppl["perplexity"] > 1.0


# --- user benchmarks: JSONL files with bad rows, and a folder of lm-eval task YAML --------------

USER_BENCH = Path(__file__).parent / "fixtures" / "user_bench"


def test_user_jsonl_benchmark_is_validated_split_and_scored(suite, tmp_path):
    from evaluation.benchmarks import load_benchmark_folder, write_benchmark_suite
    from evaluation.harness import evaluate_model
    from evaluation.lm_eval_tasks import write_suite_task_configs

    benches = {b.name: b for b in load_benchmark_folder(USER_BENCH / "jsonl")}
    mcq = benches["plant_mcq"]
    assert mcq.kind == "mcq" and len(mcq.items) == 8
    assert len(mcq.quarantined) == 5, mcq.quarantined
    assert any("not valid JSON" in q["reason"] for q in mcq.quarantined)
    assert any("out of range" in q["reason"] for q in mcq.quarantined)
    assert any("duplicate id" in q["reason"] for q in mcq.quarantined)
    assert benches["field_notes"].kind == "qa"  # kind from the fields when the name does not say
    assert [i["answer"] for i in mcq.items[:2]] == [1, 0]  # letters become indexes

    manifest = write_benchmark_suite(list(benches.values()), tmp_path / "suite", val_fraction=0.3)
    entry = manifest["benchmarks"]["plant_mcq"]
    assert entry["n_validation"] + entry["n_test"] == 8 and entry["n_quarantined"] == 5
    assert (tmp_path / "suite" / "quarantine" / "plant_mcq.jsonl").exists()
    again = write_benchmark_suite(list(benches.values()), tmp_path / "again", val_fraction=0.3)
    assert again["benchmarks"]["plant_mcq"]["n_test"] == entry["n_test"]  # deterministic split
    assert (tmp_path / "suite" / "data" / "plant_mcq.test.jsonl").read_text() == \
        (tmp_path / "again" / "data" / "plant_mcq.test.jsonl").read_text()

    tasks = write_suite_task_configs(tmp_path / "suite", tmp_path / "tasks")
    test_task = tasks["plant_mcq"]["test"]
    result = evaluate_model(suite["random_model"], tmp_path / "tasks", [test_task])
    assert result[test_task]["n_samples"] == entry["n_test"]
    assert {r["id"] for r in result["_items"][test_task]} <= {i["id"] for i in mcq.items}


def test_user_lm_eval_yaml_folder_is_picked_up_and_scored(suite, tmp_path):
    import shutil

    from evaluation.harness import evaluate_model, list_tasks

    folder = tmp_path / "my_tasks"
    shutil.copytree(USER_BENCH / "lm_eval_tasks", folder)
    # The user's YAML points at its data file relative to the folder; lm-eval needs a real path.
    config = (folder / "plant_yesno.yaml").read_text().replace("DATA_DIR", str(folder))
    (folder / "plant_yesno.yaml").write_text(config)
    assert "plant_yesno" in list_tasks(folder)
    result = evaluate_model(suite["trained_model"], [suite["tasks_dir"], folder], ["plant_yesno", "modelworks_mcq"])
    assert result["plant_yesno"]["n_samples"] == 6
    assert len(result["_items"]["plant_yesno"]) == 6 and "acc" in result["_items"]["plant_yesno"][0]


# --- blind baselines on the demo benchmark -----------------------------------------------------


def test_demo_benchmark_has_200_test_items_and_blind_baselines_sit_at_chance(tmp_path):
    from curation.demo.benchmarks import build_benchmarks, post_training_proxy_texts, write_benchmark_sources
    from curation.demo.facts import build_fact_base
    from evaluation.benchmarks import read_split
    from evaluation.stats import bootstrap_ci
    from evaluation.suite import build_benchmark_suite, suite_baselines, suite_chance, suite_tasks

    facts = build_fact_base(0)
    write_benchmark_sources(build_benchmarks(facts, 0), tmp_path / "src")
    manifest = build_benchmark_suite([tmp_path / "src"], tmp_path / "suite")
    assert manifest["benchmarks"]["mcq"]["n_test"] >= 200 and manifest["benchmarks"]["mcq"]["n_validation"] > 0
    assert manifest["tasks"]["mcq"] == {"validation": "modelworks_mcq_validation", "test": "modelworks_mcq_test"}
    assert "modelworks_mcq_test" in suite_tasks(tmp_path / "suite")
    test_items = read_split(tmp_path / "suite", "mcq", "test")
    assert not {i["fact_id"] for i in test_items} & {f.fact_id for f in facts.train}
    val_facts = {i["fact_id"] for i in read_split(tmp_path / "suite", "mcq", "validation")}
    assert not val_facts & {i["fact_id"] for i in test_items}  # a fact's questions stay in one split
    chance = suite_chance(tmp_path / "suite")["modelworks_mcq_test"]
    # The demo's post-training data are generated from the train facts only: their text is the proxy.
    baselines = suite_baselines(tmp_path / "suite", [{"text": t} for t in post_training_proxy_texts(facts)])
    assert set(baselines) == set(BASELINES)
    for name in BASELINES:
        mean, _, _ = bootstrap_ci([r["acc"] for r in baselines[name]["modelworks_mcq_test"]])
        assert abs(mean - chance) <= 0.05, (name, mean)
        completion, _, _ = bootstrap_ci([r["acc"] for r in baselines[name]["modelworks_completion_test"]])
        assert abs(completion - 0.25) <= 0.08, (name, completion)

    # The old design (distractors = answers of *train* facts, i.e. of the SFT data) fails this test.
    from evaluation.baselines import SeenIndex, never_seen

    seen = SeenIndex(post_training_proxy_texts(facts))
    train_causes = [f.cause for f in facts.train]
    old = [{"question": i["question"], "choices": [i["choices"][i["answer"]]] + train_causes[k % 50: k % 50 + 3],
            "answer": 0} for k, i in enumerate(test_items) if i["question_type"] == "cause"]
    assert sum(never_seen(i, seen) for i in old) / len(old) > 0.9


# --- report ------------------------------------------------------------------------------------


def test_stage_report_carries_cis_verdicts_baselines_and_perplexity(scores, suite, tmp_path):
    from evaluation.harness import add_task_scores, text_perplexity
    from evaluation.report import build_stage_report, format_stage_table

    texts = [r["text"] for r in suite["items"]["heldout"]]
    stages = {}
    for stage, model in (("base", "random_model"), ("dapt", "trained_model"), ("sft", "trained_model")):
        stages[stage] = dict(scores[model])
        stages[stage]["_items"] = dict(scores[model]["_items"])
        add_task_scores(stages[stage], "general_text", text_perplexity(suite[model], texts))
    baselines = {"shortest option": {"modelworks_mcq": [{"id": i["id"], "acc": 0.25} for i in suite["items"]["mcq"]]}}
    report = build_stage_report(stages, tmp_path / "report", stages=["base", "dapt", "sft"], baselines=baselines,
                                chance={"modelworks_mcq": 0.25})
    data = report["report"]
    mcq = data["rows"]["modelworks_mcq/acc"]
    assert list(mcq) == ["base", "dapt", "sft", "shortest option", "chance"]
    for stage in ("base", "dapt", "sft"):
        assert mcq[stage]["lo"] <= mcq[stage]["value"] <= mcq[stage]["hi"]
    assert mcq["dapt"]["value"] == pytest.approx(scores["trained_model"]["modelworks_mcq"]["acc"])
    comparisons = {(c["from"], c["to"]): c for c in data["comparisons"]["modelworks_mcq/acc"]}
    assert set(comparisons) == {("base", "dapt"), ("dapt", "sft"), ("base", "sft")}
    # 8 facts are fewer independent groups than a verdict needs (stats.MIN_UNITS), even for the same model.
    assert {c["verdict"] for c in comparisons.values()} == {"too few to tell"}
    assert comparisons[("base", "dapt")]["n_units"] == 8 and "mcq: only 8 independent units" in " ".join(
        data["warnings"])
    assert comparisons[("base", "dapt")]["diff"] > 0 and "mcnemar" in comparisons[("base", "dapt")]
    # With the bar lowered to what this toy suite has, the same model still shows no change.
    lowered = build_stage_report(stages, tmp_path / "lowered", stages=["base", "dapt", "sft"], min_units=8)
    same = [c for c in lowered["report"]["comparisons"]["modelworks_mcq/acc"] if (c["from"], c["to"]) == ("dapt", "sft")]
    assert same[0]["verdict"] == "no significant change" and lowered["report"]["warnings"] == []
    assert "general_text/perplexity" in data["rows"] and "ratio" in data["comparisons"]["general_text/perplexity"][0]
    for path in report["paths"].values():
        assert Path(path).exists()
    assert Path(report["paths"]["chart"]).read_bytes().startswith(b"\x89PNG")
    assert "[" in report["markdown"] and "too few to tell" in report["markdown"]
    saved = json.loads(Path(report["paths"]["json"]).read_text())
    assert saved["stages"] == ["base", "dapt", "sft"] and saved["verdicts"]["modelworks_mcq/acc"]
    assert "<table>" in Path(report["paths"]["html"]).read_text()
    table = format_stage_table(data).splitlines()
    assert table[0].split()[-4:] == ["base", "dapt", "sft", "chance"]
    assert any(line.startswith("mcq acc ↑") for line in table[2:])
    assert any("base → dapt" in line for line in table) and len(table) <= 40
