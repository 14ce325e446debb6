"""Specification of the training library: tokenizer, packing, presets, pretraining, DAPT, SFT and DPO."""

from __future__ import annotations

import json
import os
import random

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in these tests may touch the network

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

from training.packing import PackedTokenDataset, pack_token_shards, read_index
from training.posttrain import DPORunConfig, SFTRunConfig, dpo, sft
from training.presets import llama_config
from training.pretrain import PretrainConfig, evaluate_loss, lr_at, pretrain
from training.tokenizer import train_bpe_tokenizer

EQUIPMENT = ["pump", "motor", "valve", "compressor", "fan", "gearbox"]
SYMPTOMS = ["overheats", "vibrates", "leaks", "stalls", "hums loudly", "trips the breaker"]
CAUSES = ["bearing", "seal", "impeller", "winding", "coupling", "filter"]
STATES = ["worn", "cracked", "loose", "clogged", "misaligned"]


def general_sentence(rng: random.Random) -> str:
    eq, sym, cause, state = (rng.choice(x) for x in (EQUIPMENT, SYMPTOMS, CAUSES, STATES))
    return f"The {eq} {sym} because the {cause} is {state}. Replace the {cause} and check the {eq} again."


def domain_sentence(rng: random.Random) -> str:
    # A narrower register (fault codes), so DAPT has something new to learn.
    return (f"Fault code E{rng.randint(10, 40)}: {rng.choice(EQUIPMENT)} {rng.choice(SYMPTOMS)}. "
            f"Cause: {rng.choice(STATES)} {rng.choice(CAUSES)}. Action: replace {rng.choice(CAUSES)}.")


def documents(make, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(make(rng) for _ in range(rng.randint(1, 6))) for _ in range(n)]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("training")
    general, domain = documents(general_sentence, 1500, 0), documents(domain_sentence, 800, 1)
    tokenizer = train_bpe_tokenizer(general + domain, vocab_size=512, out_dir=root / "tokenizer")
    pack_token_shards(general, tokenizer, root / "general", seq_len=128, shard_tokens=20_000)
    pack_token_shards(domain, tokenizer, root / "domain", seq_len=128, shard_tokens=20_000)
    return {"root": root, "general": general, "domain": domain, "tokenizer": tokenizer}


@pytest.fixture(scope="module")
def base_model(work):
    # One thread: on a shared 2-core machine, 2 OpenMP threads stall badly whenever another process runs.
    config = PretrainConfig(preset="tiny", seq_len=128, micro_batch_size=8, max_steps=30, lr=3e-3,
                            warmup_steps=5, log_every=10, num_threads=1)
    logged = []
    result = pretrain(config, work["root"] / "general", work["root"] / "base", tokenizer_dir=work["root"] / "tokenizer",
                      log_fn=lambda step, m: logged.append((step, m)))
    return result, logged


# --- tokenizer -------------------------------------------------------------------------------------


def test_tokenizer_loads_offline_with_special_tokens_and_round_trips(work):
    tok = AutoTokenizer.from_pretrained(work["root"] / "tokenizer")
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<|bos|>", "<|eos|>", "<|pad|>")
    for special in ["<|user|>", "<|assistant|>", "<|end|>"]:
        assert len(tok(special, add_special_tokens=False)["input_ids"]) == 1
    text = "The pump overheats — café 42°C!\n\tÜnicode survives byte-level BPE."
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    # Learned merges make domain words single tokens.
    assert len(tok(" compressor", add_special_tokens=False)["input_ids"]) == 1


def test_chat_template_renders_as_specified(work):
    tok = AutoTokenizer.from_pretrained(work["root"] / "tokenizer")
    chat = [{"role": "user", "content": "Why does the pump leak?"},
            {"role": "assistant", "content": "The seal is worn."}]
    assert tok.apply_chat_template(chat, tokenize=False) == (
        "<|user|>\nWhy does the pump leak?<|end|>\n<|assistant|>\nThe seal is worn.<|end|>\n")
    assert tok.apply_chat_template(chat[:1], tokenize=False, add_generation_prompt=True) == (
        "<|user|>\nWhy does the pump leak?<|end|>\n<|assistant|>\n")
    # Assistant-only loss: the mask covers exactly the answer and its <|end|>.
    out = tok.apply_chat_template(chat, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    masked = [i for i, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert tok.decode(masked) == "The seal is worn.<|end|>"


# --- packing ---------------------------------------------------------------------------------------


def test_packing_writes_index_and_shards_that_memmap_back_to_the_token_stream(work):
    root, tok, docs = work["root"], work["tokenizer"], work["general"]
    index = read_index(root / "general")
    expected = np.concatenate([tok(d, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for d in docs])
    assert index["dtype"] == "uint16" and index["seq_len"] == 128 and index["vocab_size"] == len(tok)
    assert index["n_documents"] == len(docs)
    assert index["n_tokens"] == sum(s["n_tokens"] for s in index["shards"]) == expected.size
    assert len(index["shards"]) > 1 and all(s["n_tokens"] <= 20_000 for s in index["shards"])
    stream = np.concatenate([np.fromfile(root / "general" / s["file"], dtype=np.uint16) for s in index["shards"]])
    np.testing.assert_array_equal(stream, expected)
    assert not list((root / "general").glob(".*tmp*"))  # atomic writes leave no temp files

    data = PackedTokenDataset(root / "general", seq_len=128)
    first = index["shards"][0]["n_tokens"] // 129
    assert len(data) >= first and data[0].shape == (129,)
    np.testing.assert_array_equal(data[1].numpy(), expected[129:258])
    np.testing.assert_array_equal(data[first].numpy(), expected[index["shards"][0]["n_tokens"]:][:129])
    a = data.sample_batch(4, torch.Generator().manual_seed(7))
    b = data.sample_batch(4, torch.Generator().manual_seed(7))
    assert a.shape == (4, 129) and torch.equal(a, b)


# --- presets and schedule -------------------------------------------------------------------------


@pytest.mark.parametrize("preset,vocab,low,high", [
    ("tiny", 2048, 0.2e6, 0.7e6), ("demo", 2048, 0.8e6, 1.5e6), ("125m", 50304, 100e6, 150e6), ("1b", 128256, 1.1e9, 1.4e9),
])
def test_presets_have_the_advertised_sizes(preset, vocab, low, high):
    with torch.device("meta"):  # shapes only, no memory
        model = LlamaForCausalLM(llama_config(preset, vocab_size=vocab))
    assert low <= sum(p.numel() for p in model.parameters()) <= high


def test_lr_schedules_warm_up_then_decay_to_min():
    cos = PretrainConfig(max_steps=100, warmup_steps=10, lr=1.0, min_lr_ratio=0.1, schedule="cosine")
    wsd = PretrainConfig(max_steps=100, warmup_steps=10, lr=1.0, min_lr_ratio=0.1, schedule="wsd")
    assert lr_at(0, cos) == pytest.approx(0.1) and lr_at(9, cos) == pytest.approx(1.0)
    assert lr_at(99, cos) == pytest.approx(0.1, abs=1e-3)
    assert lr_at(50, wsd) == lr_at(79, wsd) == 1.0  # stable phase
    assert lr_at(90, wsd) == pytest.approx(0.55) and lr_at(100, wsd) == pytest.approx(0.1)


# --- pretraining -----------------------------------------------------------------------------------


def test_pretraining_learns_and_saves_a_loadable_model(work, base_model):
    result, logged = base_model
    first = result.loss_curve[0][1]
    assert first > 5.0  # ~ln(vocab): an untrained model
    assert result.final_loss < 0.6 * first
    assert [s for s, _ in logged] == [10, 20, 30] and {"loss", "lr", "tokens_per_s", "mfu"} <= set(logged[0][1])
    assert result.tokens_per_s > 0 and 0 < result.mfu < 1 and result.peak_memory_bytes > 0

    model_dir = work["root"] / "base"
    assert (model_dir / "model.safetensors").exists() and (model_dir / "tokenizer.json").exists()
    assert json.loads((model_dir / "training_metrics.json").read_text())["final_loss"] == result.final_loss
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    prompt = tok("The pump", return_tensors="pt", add_special_tokens=False)
    out = model.generate(**prompt, max_new_tokens=12, do_sample=False)
    assert out.shape[1] > prompt["input_ids"].shape[1]
    assert evaluate_loss(model_dir, work["root"] / "general", n_batches=2)["loss"] < 0.7 * first


def test_dapt_continues_from_base_and_improves_domain_loss(work, base_model):
    root = work["root"]
    config = PretrainConfig(seq_len=128, micro_batch_size=8, max_steps=20, lr=2e-3, warmup_steps=2,
                            schedule="wsd", log_every=10, num_threads=1)
    result = pretrain(config, root / "domain", root / "dapt", init_model_dir=root / "base",
                      replay_data_dir=root / "general", replay_ratio=0.25, log_fn=lambda *_: None)
    assert result.config["init_model_dir"] == str(root / "base") and result.config["replay_ratio"] == 0.25
    before = evaluate_loss(root / "base", root / "domain", n_batches=3)["loss"]
    after = evaluate_loss(root / "dapt", root / "domain", n_batches=3)["loss"]
    # It starts where the base model stands on the mix (3/4 domain, 1/4 replayed general samples), not at a
    # fresh init's ~ln(vocab)...
    general = evaluate_loss(root / "base", root / "general", n_batches=3)["loss"]
    assert abs(result.loss_curve[0][1] - (0.75 * before + 0.25 * general)) < 0.5
    # ...and learns the domain better than the base model knew it.
    assert after < 0.8 * before


def test_dapt_kl_to_the_start_model_keeps_general_text_closer(work, base_model):
    """The distillation term on replay rows (kl_weight) keeps the model's general-text loss nearer the base
    model's than the same run without it; full fine-tuning keeps a frozen copy, LoRA switches adapters off."""
    root = work["root"]
    general_before = evaluate_loss(root / "base", root / "general", n_batches=3)["loss"]
    drift = {}
    for kl, lora in ((0.0, 0), (2.0, 0), (2.0, 4)):
        config = PretrainConfig(seq_len=128, micro_batch_size=8, max_steps=20, lr=2e-3, warmup_steps=2,
                                schedule="wsd", log_every=10, num_threads=1, kl_weight=kl, lora_r=lora)
        logged = []
        pretrain(config, root / "domain", root / f"dapt-kl{kl}-r{lora}", init_model_dir=root / "base",
                 replay_data_dir=root / "general", replay_ratio=0.5, log_fn=lambda s, m: logged.append(m))
        if kl:
            assert all(m["kl_to_start"] >= 0 for m in logged)
        drift[(kl, lora)] = abs(evaluate_loss(root / f"dapt-kl{kl}-r{lora}", root / "general", n_batches=3)["loss"]
                                - general_before)
    assert drift[(2.0, 0)] < drift[(0.0, 0)]
    with pytest.raises(ValueError, match="kl_weight"):
        pretrain(PretrainConfig(max_steps=1, kl_weight=1.0), root / "domain", root / "x", init_model_dir=root / "base")


# --- post-training ---------------------------------------------------------------------------------


def test_sft_then_dpo_produce_loadable_chat_models(work, base_model, tmp_path):
    rng = random.Random(3)
    with open(tmp_path / "sft.jsonl", "w") as sft_f, open(tmp_path / "prefs.jsonl", "w") as dpo_f:
        for _ in range(32):
            eq, cause = rng.choice(EQUIPMENT), rng.choice(CAUSES)
            question, answer = f"Why does the {eq} vibrate?", f"The {cause} is worn. Replace the {cause}."
            sft_f.write(json.dumps({"messages": [{"role": "user", "content": question},
                                                 {"role": "assistant", "content": answer}]}) + "\n")
            dpo_f.write(json.dumps({"prompt": question, "chosen": answer, "rejected": "I do not know."}) + "\n")

    logged = []
    sft_metrics = sft(work["root"] / "base", tmp_path / "sft.jsonl", tmp_path / "sft_model",
                      SFTRunConfig(num_train_epochs=2, learning_rate=1e-3, logging_steps=2),
                      log_fn=lambda step, m: logged.append(step))
    assert sft_metrics["loss_curve"][-1][1] < sft_metrics["loss_curve"][0][1]
    assert sft_metrics["samples_per_s"] > 0 and logged

    dpo_metrics = dpo(tmp_path / "sft_model", tmp_path / "prefs.jsonl", tmp_path / "dpo_model",
                      DPORunConfig(num_train_epochs=2, learning_rate=1e-4, logging_steps=2), log_fn=lambda *_: None)
    assert dpo_metrics["rewards_accuracies"] is not None and dpo_metrics["rewards_accuracies"] >= 0.75
    assert dpo_metrics["rewards_margins"] > 0

    for name in ["sft_model", "dpo_model"]:
        tok = AutoTokenizer.from_pretrained(tmp_path / name)
        model = AutoModelForCausalLM.from_pretrained(tmp_path / name)
        assert tok.convert_tokens_to_ids("<|end|>") in model.generation_config.eos_token_id  # stops after its turn
        ids = tok.apply_chat_template([{"role": "user", "content": "Why does the pump vibrate?"}],
                                      add_generation_prompt=True, return_tensors="pt", return_dict=True)
        out = model.generate(**ids, max_new_tokens=16, do_sample=False)
        assert out.shape[1] > ids["input_ids"].shape[1]
