"""Specification of training from an open pretrained model: its own tokenizer and chat template, LoRA merged on save.

A tiny Llama directory stands in for SmolLM2-135M-Instruct: random weights, but SmolLM2's shape of tokenizer
(ChatML specials, eos = <|im_end|>, documents separated by <|endoftext|>) and a ChatML chat template with a
default system prompt and no {% generation %} markers, as most open models ship. One opt-in test runs the
real SmolLM2 (MODELWORKS_OPEN_MODEL_TESTS=1).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from training.lora import LoraSettings, apply_lora, merge_lora
from training.lr_sweep import sweep_dapt_lr
from training.packing import pack_token_shards, read_index
from training.posttrain import DPORunConfig, SFTRunConfig, dpo, sft
from training.pretrain import PretrainConfig, evaluate_loss, pretrain, save_model_dir, write_run_file
from training.tokenizer import train_bpe_tokenizer

REPO = Path(__file__).resolve().parent.parent

# SmolLM2-135M-Instruct's template, verbatim in behaviour: a default system turn, ChatML turns, no markers.
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
EQUIPMENT = ["pump", "motor", "valve", "compressor", "fan", "gearbox"]
CAUSES = ["bearing", "seal", "impeller", "winding", "coupling", "filter"]
TOPICS = ["the weather", "a recipe", "the match", "the garden", "the museum", "the market"]


def general_doc(rng: random.Random) -> str:
    return " ".join(f"We talked about {rng.choice(TOPICS)} and then about {rng.choice(TOPICS)}."
                    for _ in range(rng.randint(2, 6)))


def domain_doc(rng: random.Random) -> str:
    return " ".join(f"Fault E{rng.randint(10, 30)}: the {rng.choice(EQUIPMENT)} stalls. "
                    f"Cause: worn {rng.choice(CAUSES)}. Replace the {rng.choice(CAUSES)}."
                    for _ in range(rng.randint(2, 6)))


def build_chatml_model_dir(texts: list[str], out: Path) -> Path:
    """A random-weight Llama with GQA and tied embeddings plus a ChatML BPE tokenizer, saved as an HF dir."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainer=trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                  pad_token="<|im_end|>", unk_token="<|endoftext|>")
    tok.chat_template = CHATML_TEMPLATE
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=128, max_position_embeddings=256,
                         tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=2)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = 2
    return save_model_dir(model, tok, out)


@pytest.fixture(scope="module")
def open_model(tmp_path_factory):
    """(root, dir of a small *pretrained* open-style model): random weights, then general text, in its own tokens."""
    root = tmp_path_factory.mktemp("open")
    rng = random.Random(0)
    general = [general_doc(rng) for _ in range(600)]
    domain = [domain_doc(rng) for _ in range(500)]
    random_dir = build_chatml_model_dir(general + domain, root / "random")
    tok = AutoTokenizer.from_pretrained(random_dir)
    pack_token_shards(domain[:450], tok, root / "domain", seq_len=64, shard_tokens=20_000)
    pack_token_shards(domain[450:], tok, root / "domain_val", seq_len=64)
    pack_token_shards(general, tok, root / "general", seq_len=64, shard_tokens=20_000)
    pretrain(PretrainConfig(seq_len=64, micro_batch_size=8, max_steps=40, lr=3e-3, warmup_steps=4, num_threads=1,
                            log_every=40), root / "general", root / "start", init_model_dir=random_dir,
             log_fn=lambda *_: None)
    return root, root / "start"


def _dapt_config(lora_r: int) -> PretrainConfig:
    return PretrainConfig(seq_len=64, micro_batch_size=8, max_steps=30, lr=3e-3 if lora_r == 0 else 1e-2,
                          warmup_steps=3, schedule="wsd", log_every=10, num_threads=1, lora_r=lora_r, lora_alpha=16)


@pytest.fixture(scope="module")
def dapt_full(open_model):
    """Full fine-tuning DAPT of the open model on domain text with general replay (in process)."""
    root, model_dir = open_model
    result = pretrain(_dapt_config(0), root / "domain", root / "dapt_r0", init_model_dir=model_dir,
                      tokenizer_dir=model_dir, replay_data_dir=root / "general", replay_ratio=0.2,
                      log_fn=lambda *_: None)
    return result.to_dict()


def _run_entry_point(run_file: Path) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "training.pretrain", str(run_file)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def test_token_shards_use_the_models_own_tokenizer_and_document_separator(open_model):
    root, model_dir = open_model
    tok = AutoTokenizer.from_pretrained(model_dir)
    index = read_index(root / "domain")
    # eos (<|im_end|>) ends chat turns in this tokenizer; documents are separated the way pretraining did.
    assert index["eos_token_id"] == tok.convert_tokens_to_ids("<|endoftext|>") != tok.eos_token_id
    assert index["vocab_size"] == len(tok)


def test_dapt_refuses_shards_packed_with_another_tokenizer(open_model, tmp_path):
    root, model_dir = open_model
    other = train_bpe_tokenizer([domain_doc(random.Random(i)) for i in range(200)], 300, tmp_path / "other_tok")
    pack_token_shards([domain_doc(random.Random(i)) for i in range(200)], other, tmp_path / "other", seq_len=64)
    with pytest.raises(ValueError, match="another tokenizer"):
        pretrain(PretrainConfig(seq_len=64, max_steps=1), tmp_path / "other", tmp_path / "out",
                 init_model_dir=model_dir, log_fn=lambda *_: None)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("lora_r", [0, 8])
def test_dapt_from_a_pretrained_dir_learns_the_domain_and_saves_its_tokenizer(open_model, dapt_full, lora_r):
    root, model_dir = open_model
    out = root / f"dapt_r{lora_r}"
    if lora_r == 0:
        summary = dapt_full
    else:  # through the torchrun entry point (`python -m training.pretrain RUN.json`), as the asset launches it
        run_file = write_run_file(root / f"run_r{lora_r}.json", _dapt_config(lora_r), data_dir=root / "domain",
                                  out_dir=out, init_model_dir=model_dir, tokenizer_dir=model_dir,
                                  replay_data_dir=root / "general", replay_ratio=0.2)
        summary = _run_entry_point(run_file)[-1]["result"]
    assert summary["config"]["init_model_dir"] == str(model_dir) and summary["config"]["lora_r"] == lora_r
    if lora_r:  # only the adapters train: a small fraction of the model
        assert summary["config"]["trainable_parameters"] < 0.2 * summary["n_params"]

    # It learned the domain: held-out domain documents score better than under the start model.
    before = evaluate_loss(model_dir, root / "domain_val", n_batches=3, batch_size=4, seq_len=64)["loss"]
    after = evaluate_loss(out, root / "domain_val", n_batches=3, batch_size=4, seq_len=64)["loss"]
    assert after < before - 0.5  # nats per token

    # The output is a plain HF dir with the start model's tokenizer and chat template (lm-eval and TRL load it).
    assert not (out / "adapter_config.json").exists() and (out / "model.safetensors").exists()
    tok, start_tok = AutoTokenizer.from_pretrained(out), AutoTokenizer.from_pretrained(model_dir)
    assert tok.get_vocab() == start_tok.get_vocab() and tok.chat_template == start_tok.chat_template
    chat = [{"role": "user", "content": "Why does the pump stall?"}]
    assert tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True).endswith("<|im_start|>assistant\n")
    model = AutoModelForCausalLM.from_pretrained(out)
    assert type(model) is LlamaForCausalLM and model.config.num_key_value_heads == 2
    assert model.generation_config.eos_token_id == 2  # the start model's stop token is kept


def test_lora_merged_save_gives_the_adapter_models_outputs(open_model, tmp_path):
    root, model_dir = open_model
    model = apply_lora(AutoModelForCausalLM.from_pretrained(model_dir), LoraSettings(r=4, alpha=8))
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    batch = torch.randint(3, model.config.vocab_size, (4, 33), generator=torch.Generator().manual_seed(0))
    for _ in range(3):  # B starts at zero: a few steps make the adapters do something
        model(input_ids=batch, labels=batch).loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    with torch.no_grad():
        adapted = model(input_ids=batch).logits
        base = model.get_base_model()
        with model.disable_adapter():
            untouched = model(input_ids=batch).logits
    assert not torch.allclose(adapted, untouched, atol=1e-4)  # the adapters changed the function
    save_model_dir(merge_lora(model), AutoTokenizer.from_pretrained(model_dir), tmp_path / "merged")
    assert not (tmp_path / "merged" / "adapter_config.json").exists()
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    assert type(reloaded) is type(base)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids=batch).logits, adapted, atol=1e-4, rtol=1e-4)


def test_lora_dapt_resumes_from_a_checkpoint_to_the_same_weights(open_model, tmp_path):
    root, model_dir = open_model
    config = replace(_dapt_config(8), max_steps=10, checkpoint_every=5, log_every=5)
    pretrain(config, root / "domain", tmp_path / "a", init_model_dir=model_dir, checkpoint_dir=tmp_path / "ck_a",
             log_fn=lambda *_: None)
    # An interrupted run: only its step-5 checkpoint exists.
    shutil.copytree(tmp_path / "ck_a" / "step_00000005", tmp_path / "ck_b" / "step_00000005")
    resumed = pretrain(config, root / "domain", tmp_path / "b", init_model_dir=model_dir,
                       checkpoint_dir=tmp_path / "ck_b", log_fn=lambda *_: None)
    assert resumed.config["resumed_from_step"] == 5
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys() and not any("lora" in k for k in a)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5)


def test_dapt_lr_sweep_picks_the_rate_with_the_best_held_out_domain_loss(open_model, tmp_path):
    root, model_dir = open_model
    config = replace(_dapt_config(0), max_steps=15, log_every=15)
    sweep = sweep_dapt_lr(config, [1e-6, 3e-3], root / "domain", root / "domain_val", tmp_path, model_dir,
                          general_val_dir=root / "general", max_general_loss_increase=10.0, n_batches=2)
    assert sweep["best_lr"] == 3e-3  # 1e-6 barely moves in 15 steps
    slow, fast = sweep["points"]
    assert fast["val_loss"] < slow["val_loss"] and fast["general_loss_increase"] > slow["general_loss_increase"]
    # A forgetting budget no run can meet is an error, not a silent pick.
    with pytest.raises(ValueError, match="forgetting budget"):
        sweep_dapt_lr(config, [3e-3], root / "domain", root / "domain_val", tmp_path / "strict", model_dir,
                      general_val_dir=root / "general", max_general_loss_increase=-10.0, n_batches=2)


def _chat_data(path: Path, n: int) -> tuple[Path, Path]:
    rng = random.Random(5)
    sft_file, dpo_file = path / "sft.jsonl", path / "prefs.jsonl"
    with open(sft_file, "w") as s_f, open(dpo_file, "w") as d_f:
        for i in range(n):
            eq, cause = rng.choice(EQUIPMENT), rng.choice(CAUSES)
            q, a = f"Why does the {eq} stall?", f"Worn {cause}. Replace the {cause}."
            s_f.write(json.dumps({"messages": [{"role": "user", "content": q},
                                               {"role": "assistant", "content": a}]}) + "\n")
            # Every fourth prompt is long: max_prompt_length must cut it, keeping the question at its end.
            prompt = (general_doc(rng) * 6 + " " + q) if i % 4 == 0 else q
            d_f.write(json.dumps({"prompt": prompt, "chosen": a, "rejected": "We talked about the weather."}) + "\n")
    return sft_file, dpo_file


def test_sft_then_dpo_with_lora_on_a_chat_template_without_generation_markers(open_model, dapt_full, tmp_path):
    start = Path(dapt_full["model_dir"])
    sft_file, dpo_file = _chat_data(tmp_path, 32)
    sft_m = sft(start, sft_file, tmp_path / "sft", eval_jsonl=sft_file, config=SFTRunConfig(
        num_train_epochs=4, learning_rate=2e-2, per_device_train_batch_size=8, max_length=96, logging_steps=2,
        lora_r=8, lora_alpha=16, num_threads=1), log_fn=lambda *_: None)
    assert sft_m["loss_on"] == "last_assistant_turn"  # no {% generation %} markers: the answer is the completion
    assert sft_m["loss_curve"][-1][1] < sft_m["loss_curve"][0][1] - 0.5  # nats per answer token
    assert sft_m["eval_loss"] < sft_m["loss_curve"][0][1]  # the validation score an lr sweep compares
    assert sft_m["trainable_parameters"] < 0.2 * sum(p.numel() for p in
                                                     AutoModelForCausalLM.from_pretrained(start).parameters())

    dpo_m = dpo(tmp_path / "sft", dpo_file, tmp_path / "dpo", eval_jsonl=dpo_file, config=DPORunConfig(
        num_train_epochs=3, learning_rate=5e-3, per_device_train_batch_size=8, max_length=128, max_prompt_length=80,
        logging_steps=2, lora_r=8, lora_alpha=16, num_threads=1), log_fn=lambda *_: None)
    assert dpo_m["prompts_truncated"] == 8  # the eight long prompts, cut to fit
    assert dpo_m["rewards_accuracies"] >= 0.75 and dpo_m["rewards_margins"] > 0
    assert dpo_m["eval_rewards_accuracies"] >= 0.75

    start_tok = AutoTokenizer.from_pretrained(start)
    for name in ("sft", "dpo"):
        out = tmp_path / name
        assert not (out / "adapter_config.json").exists()
        tok, model = AutoTokenizer.from_pretrained(out), AutoModelForCausalLM.from_pretrained(out)
        assert tok.chat_template == start_tok.chat_template
        assert tok.convert_tokens_to_ids("<|im_end|>") in model.generation_config.eos_token_id
        ids = tok.apply_chat_template([{"role": "user", "content": "Why does the fan stall?"}],
                                      add_generation_prompt=True, return_tensors="pt", return_dict=True)
        out_ids = model.generate(**ids, max_new_tokens=12, do_sample=False)
        assert out_ids.shape[1] > ids["input_ids"].shape[1]


@pytest.mark.skipif(not os.environ.get("MODELWORKS_OPEN_MODEL_TESTS"),
                    reason="opt-in: MODELWORKS_OPEN_MODEL_TESTS=1 runs the real SmolLM2-135M (1-2 min on idle cores)")
def test_real_smollm2_dapt_with_lora_then_sft_saves_loadable_dirs(tmp_path):
    from training.open_model import ensure_hf_model

    model_dir = ensure_hf_model("smollm2", Path(os.environ.get("MODELWORKS_OPEN_MODEL_DIR", "/tmp/mw_models/smollm2")))
    tok = AutoTokenizer.from_pretrained(model_dir)
    rng = random.Random(0)
    pack_token_shards([domain_doc(rng) for _ in range(100)], tok, tmp_path / "domain", seq_len=64)
    config = PretrainConfig(seq_len=64, micro_batch_size=2, max_steps=3, lr=5e-4, warmup_steps=1, log_every=1,
                            num_threads=2, lora_r=8)
    run_file = write_run_file(tmp_path / "run.json", config, data_dir=tmp_path / "domain", out_dir=tmp_path / "dapt",
                              init_model_dir=model_dir)
    lines = _run_entry_point(run_file)
    assert lines[-1]["result"]["final_loss"] < 10
    sft_file, _ = _chat_data(tmp_path, 8)
    m = sft(tmp_path / "dapt", sft_file, tmp_path / "sft", SFTRunConfig(
        max_steps=2, per_device_train_batch_size=4, max_length=64, lora_r=8, num_threads=2), log_fn=lambda *_: None)
    assert m["loss_on"] == "last_assistant_turn"
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "sft")
    assert loaded.config.vocab_size == 49152
    assert AutoTokenizer.from_pretrained(tmp_path / "sft").chat_template == tok.chat_template
