"""Training throughput: Modelworks' pretraining loop vs `transformers.Trainer`, side by side on CPU.

Same LlamaForCausalLM (the `demo` preset), same packed token shards, same micro-batch and context,
AdamW with the same hyperparameters, gradient clipping, warmup + cosine schedule, one process each,
the same torch thread count. The two run alternately (`--rounds` times each) in this one process, so
machine noise hits both; each side's best round counts. tokens/s = micro_batch * seq_len * steps /
seconds, timed from the end of step `--warmup` to the end of the last step (setup and the first,
slower steps excluded on both sides).

    python benchmarks/training_throughput.py            # last line: RESULT speedup_vs_hf_trainer=<x>
"""

from __future__ import annotations

import argparse
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

from training.packing import PackedTokenDataset, pack_token_shards  # noqa: E402
from training.presets import llama_config  # noqa: E402
from training.pretrain import PretrainConfig, pretrain  # noqa: E402
from training.tokenizer import train_bpe_tokenizer  # noqa: E402

WORDS = ("pump motor valve compressor fan gearbox overheats vibrates leaks stalls bearing seal impeller winding "
         "coupling filter worn cracked loose clogged misaligned replace check the because is and again").split()


def make_data(root: Path, seq_len: int, vocab_size: int) -> None:
    rng = random.Random(0)
    docs = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(30, 300))) for _ in range(4000)]
    tok = train_bpe_tokenizer(docs, vocab_size=vocab_size, out_dir=root / "tokenizer")
    pack_token_shards(docs, tok, root / "tokens", seq_len=seq_len)


def modelworks_tokens_per_s(root: Path, args) -> float:
    times: dict[int, float] = {}
    config = PretrainConfig(preset=args.preset, seq_len=args.seq_len, micro_batch_size=args.micro_batch,
                            max_steps=args.steps, lr=3e-3, warmup_steps=2, log_every=1, seed=0)
    pretrain(config, root / "tokens", root / "mw_out", tokenizer_dir=root / "tokenizer",
             log_fn=lambda step, m: times.__setitem__(step, m["elapsed_s"]))
    return (args.steps - args.warmup) * args.micro_batch * args.seq_len / (times[args.steps] - times[args.warmup])


class _Blocks(torch.utils.data.Dataset):
    """The same packed blocks, as Trainer wants them: inputs = labels (the model shifts them itself)."""

    def __init__(self, data: PackedTokenDataset):
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict:
        block = self.data[i][:-1]
        return {"input_ids": block, "labels": block}


def hf_trainer_tokens_per_s(root: Path, args) -> float:
    from transformers import AutoTokenizer, LlamaForCausalLM, Trainer, TrainerCallback, TrainingArguments

    tok = AutoTokenizer.from_pretrained(root / "tokenizer")
    torch.manual_seed(0)
    model = LlamaForCausalLM(llama_config(args.preset, vocab_size=len(tok), max_position_embeddings=args.seq_len,
                                          bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                          pad_token_id=tok.pad_token_id))
    times: dict[int, float] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, _args, state, control, **kwargs):
            times[state.global_step] = time.perf_counter()

    targs = TrainingArguments(
        output_dir=str(root / "hf_out"), per_device_train_batch_size=args.micro_batch, max_steps=args.steps,
        learning_rate=3e-3, weight_decay=0.1, adam_beta1=0.9, adam_beta2=0.95, max_grad_norm=1.0,
        lr_scheduler_type="cosine", warmup_steps=2, logging_steps=args.steps, save_strategy="no", report_to=[],
        use_cpu=True, dataloader_num_workers=0, seed=0, disable_tqdm=True)
    Trainer(model=model, args=targs, train_dataset=_Blocks(PackedTokenDataset(root / "tokens", args.seq_len)),
            callbacks=[Clock()]).train()
    return (args.steps - args.warmup) * args.micro_batch * args.seq_len / (times[args.steps] - times[args.warmup])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--micro-batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--vocab-size", type=int, default=2048)
    args = ap.parse_args()
    print(f"preset={args.preset} seq_len={args.seq_len} micro_batch={args.micro_batch} steps={args.steps} "
          f"(timed after step {args.warmup}) torch_threads={torch.get_num_threads()} torch={torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_data(root, args.seq_len, args.vocab_size)
        ours, hf = [], []
        for r in range(args.rounds):
            ours.append(modelworks_tokens_per_s(root, args))
            hf.append(hf_trainer_tokens_per_s(root, args))
            print(f"round {r + 1}: modelworks {ours[-1]:,.0f} tokens/s   transformers.Trainer {hf[-1]:,.0f} tokens/s",
                  flush=True)
    print(f"best: modelworks {max(ours):,.0f} tokens/s   transformers.Trainer {max(hf):,.0f} tokens/s")
    print(f"RESULT speedup_vs_hf_trainer={max(ours) / max(hf):.2f}")


if __name__ == "__main__":
    main()
