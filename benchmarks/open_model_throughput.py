"""Open-model training cost on this machine: SmolLM2-135M full fine-tuning vs LoRA, DAPT / SFT / DPO.

Sizes the `smollm` profile from measurements, not guesses. Three parts, each side by side in one process
so machine noise hits every variant alike:

  step      tokens/s of one training step (forward + backward + clip + AdamW) at seq_len 256 and 512, full
            vs LoRA, alternating `--rounds` times; each variant's best round counts. Same step as
            training/pretrain.py (next_token_loss, its AdamW parameter groups).
  dapt      a short DAPT run (training.pretrain.pretrain, the torchrun entry point's function) full vs LoRA
            on generated domain pages with general replay; reports held-out domain loss (learning) and
            loss on held-out general English text (forgetting: the Debian license texts and generated
            general pages), before and after. Learning rates come from --full-lrs / --lora-lrs: more
            than one value makes this the validation lr sweep (validation = held-out domain documents).
  post      SFT and DPO steps/s through training.posttrain.sft / dpo, full vs LoRA, at the profile's
            max_length and batch size.

    python benchmarks/open_model_throughput.py --parts step            # ~5 min on 2 cores
    python benchmarks/open_model_throughput.py --parts dapt,post       # ~15 min on 2 cores

Last line: RESULT lora_vs_full_tokens_per_s_256=<x> ...
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from training.lora import LoraSettings, apply_lora, trainable_parameters  # noqa: E402
from training.open_model import ensure_hf_model  # noqa: E402
from training.pretrain import _param_groups, next_token_loss  # noqa: E402


def step_throughput(model_dir: Path, seq_lens: list[int], tokens_per_step: int, lora_r: int, rounds: int,
                    steps: int) -> dict[str, float]:
    from transformers import AutoModelForCausalLM

    variants = {}
    for kind in ("full", "lora"):
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        if kind == "lora":
            model = apply_lora(model, LoraSettings(r=lora_r))
        model.train()
        opt = torch.optim.AdamW(_param_groups(model, 0.1), lr=1e-5, betas=(0.9, 0.95))
        variants[kind] = (model, opt)
        print(f"{kind}: trainable {trainable_parameters(model):,} params", flush=True)
    vocab = variants["full"][0].config.vocab_size
    gen = torch.Generator().manual_seed(0)
    best: dict[str, float] = {}
    for r in range(rounds):
        for seq_len in seq_lens:
            micro = max(1, tokens_per_step // seq_len)
            for kind, (model, opt) in variants.items():
                batch = torch.randint(3, vocab, (micro, seq_len + 1), generator=gen)

                def one_step():
                    loss = next_token_loss(model, batch)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    opt.step()
                    opt.zero_grad(set_to_none=True)

                one_step()  # warm-up: allocator, optimizer state
                t0, c0 = time.perf_counter(), time.process_time()
                for _ in range(steps):
                    one_step()
                tokens = steps * micro * seq_len
                tps = tokens / (time.perf_counter() - t0)
                # tokens per CPU-second of this process x threads: what the step would reach on idle cores. On a
                # shared machine wall-clock tokens/s mostly measures the neighbours; CPU time much less so.
                idle_tps = tokens / max(time.process_time() - c0, 1e-9) * torch.get_num_threads()
                key = f"{kind}_{seq_len}"
                best[key] = max(best.get(key, 0.0), tps)
                best[f"{key}_idle_estimate"] = max(best.get(f"{key}_idle_estimate", 0.0), idle_tps)
                print(f"round {r} {key}: {tps:.1f} tokens/s wall, {idle_tps:.1f} tokens/s idle-core estimate "
                      f"(micro_batch {micro})", flush=True)
    return best


def _domain_and_general_docs(seed: int) -> tuple[list[str], list[str], list[str], list[str]]:
    from curation.demo.facts import build_fact_base
    from curation.demo.text import general_page, render_fact

    rng = random.Random(seed)
    facts = build_fact_base(0)
    # Documents are the unit of the split: validation documents are never trained on.
    domain = [" ".join(render_fact(f, rng) for f in rng.sample(facts.train, 4)) for _ in range(400)]
    general = [" ".join(general_page(rng)[2]) for _ in range(300)]
    return domain[:360], domain[360:], general[:260], general[260:]


def _license_texts() -> list[str]:
    folder = Path("/usr/share/common-licenses")
    return [p.read_text(errors="ignore") for p in sorted(folder.glob("*")) if p.is_file()][:8]


def dapt_compare(model_dir: Path, work: Path, seq_len: int, micro: int, steps: int, lora_r: int,
                 full_lrs: list[float], lora_lrs: list[float], replay_ratio: float) -> dict:
    from transformers import AutoTokenizer

    from training.packing import pack_token_shards
    from training.pretrain import PretrainConfig, evaluate_loss, pretrain

    tok = AutoTokenizer.from_pretrained(model_dir)
    d_train, d_val, g_train, g_val = _domain_and_general_docs(0)
    pack_token_shards(d_train, tok, work / "domain", seq_len)
    pack_token_shards(d_val, tok, work / "domain_val", seq_len)
    pack_token_shards(g_train, tok, work / "general", seq_len)
    pack_token_shards(g_val + _license_texts(), tok, work / "general_val", seq_len)

    def score(m: Path) -> dict[str, float]:
        dom = evaluate_loss(m, work / "domain_val", n_batches=4, batch_size=4, seq_len=seq_len)["loss"]
        gen = evaluate_loss(m, work / "general_val", n_batches=4, batch_size=4, seq_len=seq_len)["loss"]
        return {"domain_val_loss": round(dom, 4), "general_val_ppl": round(math.exp(gen), 3)}

    out = {"untouched": score(model_dir)}
    print("untouched", out["untouched"], flush=True)
    runs = [("full", lr, 0) for lr in full_lrs] + [("lora", lr, lora_r) for lr in lora_lrs]
    for kind, lr, r in runs:
        config = PretrainConfig(seq_len=seq_len, micro_batch_size=micro, max_steps=steps, lr=lr,
                                warmup_steps=max(1, steps // 10), schedule="wsd", log_every=max(1, steps // 4),
                                num_threads=torch.get_num_threads(), lora_r=r, deterministic=False)
        res = pretrain(config, work / "domain", work / f"dapt_{kind}_{lr}", init_model_dir=model_dir,
                       replay_data_dir=work / "general", replay_ratio=replay_ratio, log_fn=lambda *_: None)
        s = score(work / f"dapt_{kind}_{lr}")
        out[f"{kind}_lr{lr}"] = {**s, "tokens_per_s": round(res.tokens_per_s, 1), "wall_s": round(res.wall_time_s, 1),
                                 "tokens": res.tokens_seen}
        print(f"{kind} lr={lr}", out[f"{kind}_lr{lr}"], flush=True)
    return out


def post_compare(model_dir: Path, work: Path, max_length: int, batch: int, steps: int, lora_r: int) -> dict:
    from curation.demo.facts import build_fact_base
    from training.posttrain import DPORunConfig, SFTRunConfig, dpo, sft

    facts = build_fact_base(0).train
    rng = random.Random(1)
    with open(work / "sft.jsonl", "w") as s_f, open(work / "dpo.jsonl", "w") as d_f:
        for f in facts * 2:
            q = f"The {f.equipment} {f.symptom}. What is the likely cause and how do I fix it?"
            a = f"The likely cause is {f.cause}. To fix it, {f.fix}."
            wrong = rng.choice(facts)
            s_f.write(json.dumps({"messages": [{"role": "user", "content": q},
                                               {"role": "assistant", "content": a}]}) + "\n")
            d_f.write(json.dumps({"prompt": q, "chosen": a,
                                  "rejected": f"The likely cause is {wrong.cause}. To fix it, {wrong.fix}."}) + "\n")
    out = {}
    for kind, r in (("full", 0), ("lora", lora_r)):
        m = sft(model_dir, work / "sft.jsonl", work / f"sft_{kind}",
                SFTRunConfig(max_steps=steps, per_device_train_batch_size=batch, max_length=max_length,
                             learning_rate=1e-5 if r == 0 else 2e-4, lora_r=r, logging_steps=1), log_fn=lambda *_: None)
        out[f"sft_{kind}_steps_per_s"] = round(m["steps_per_s"], 4)
        n_tokens = max((h.get("num_tokens", 0) for h in m["log_history"]), default=0)
        out[f"sft_{kind}_tokens_per_s"] = round(n_tokens / m["runtime_s"], 1)  # padded chat tokens through the model
        m = dpo(model_dir, work / "dpo.jsonl", work / f"dpo_{kind}",
                DPORunConfig(max_steps=steps, per_device_train_batch_size=batch, max_length=max_length,
                             max_prompt_length=max_length // 2, learning_rate=1e-6 if r == 0 else 2e-5, lora_r=r,
                             logging_steps=1), log_fn=lambda *_: None)
        out[f"dpo_{kind}_steps_per_s"] = round(m["steps_per_s"], 4)
        print(kind, out, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="step", help="comma list of: step, dapt, post")
    ap.add_argument("--model-dir", default="/tmp/mw_models/smollm2")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2, help="timed steps per variant and round (part step)")
    ap.add_argument("--tokens-per-step", type=int, default=1024)
    ap.add_argument("--dapt-steps", type=int, default=20)
    ap.add_argument("--dapt-seq-len", type=int, default=256)
    ap.add_argument("--dapt-micro", type=int, default=4)
    ap.add_argument("--full-lrs", default="5e-5")
    ap.add_argument("--lora-lrs", default="5e-4")
    ap.add_argument("--replay-ratio", type=float, default=0.2)
    ap.add_argument("--post-steps", type=int, default=4)
    ap.add_argument("--post-batch", type=int, default=8)
    ap.add_argument("--post-max-length", type=int, default=256)
    ap.add_argument("--json-out")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model_dir = ensure_hf_model("smollm2", Path(a.model_dir))
    parts = set(a.parts.split(","))
    results: dict = {"threads": a.threads, "lora_r": a.lora_r}
    with tempfile.TemporaryDirectory(prefix="open-model-bench-") as tmp:
        if "step" in parts:
            results["step"] = step_throughput(model_dir, [256, 512], a.tokens_per_step, a.lora_r, a.rounds, a.steps)
        if "dapt" in parts:
            results["dapt"] = dapt_compare(model_dir, Path(tmp), a.dapt_seq_len, a.dapt_micro, a.dapt_steps, a.lora_r,
                                           [float(x) for x in a.full_lrs.split(",")],
                                           [float(x) for x in a.lora_lrs.split(",")], a.replay_ratio)
        if "post" in parts:
            results["post"] = post_compare(model_dir, Path(tmp), a.post_max_length, a.post_batch, a.post_steps,
                                           a.lora_r)
    print(json.dumps(results, indent=1))
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(results, indent=1))
    fields = []
    if "step" in results:
        s = results["step"]
        fields += [f"lora_vs_full_tokens_per_s_{n}={s[f'lora_{n}'] / s[f'full_{n}']:.2f}" for n in (256, 512)]
        fields += [f"full_{n}={s[f'full_{n}']:.0f}tok/s" for n in (256, 512)]
    if "post" in results:
        p = results["post"]
        fields += [f"{k}={v}" for k, v in p.items()]
    print("RESULT " + " ".join(fields))


if __name__ == "__main__":
    main()
