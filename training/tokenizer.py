"""Train a byte-level BPE tokenizer and save it as an offline-loadable Hugging Face tokenizer."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from training.config import TokenizerSettings
from training.packing import batched

BOS_TOKEN = "<|bos|>"
EOS_TOKEN = "<|eos|>"
PAD_TOKEN = "<|pad|>"
USER_TOKEN = "<|user|>"
ASSISTANT_TOKEN = "<|assistant|>"
END_TOKEN = "<|end|>"
SPECIAL_TOKENS = [BOS_TOKEN, EOS_TOKEN, PAD_TOKEN, USER_TOKEN, ASSISTANT_TOKEN, END_TOKEN]

# Every turn renders as "<|role|>\n{content}<|end|>\n"; a system message is rendered as a user turn
# because the format has no system role. The `{% generation %}` markers let TRL's SFTTrainer compute
# assistant-only loss (`return_assistant_tokens_mask`); `<|end|>` sits inside them so the model is
# trained to stop. The trailing "\n" stays outside so a prompt rendered with add_generation_prompt is
# a token prefix of prompt + answer (DPO relies on that to split prompt from completion).
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ '<|assistant|>\n' }}{% generation %}{{ message['content'] }}{{ '<|end|>' }}{% endgeneration %}{{ '\n' }}"
    "{%- else -%}"
    "{{ '<|user|>\n' + message['content'] + '<|end|>\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|assistant|>\n' }}{%- endif -%}"
)


def train_bpe_tokenizer(
    texts: Iterable[str], vocab_size: int, out_dir: str | os.PathLike,
    min_frequency: int = TokenizerSettings.min_frequency,
) -> PreTrainedTokenizerFast:
    """Train byte-level BPE on `texts` and save it (tokenizer.json + config + chat template) to `out_dir`."""
    tokenizer = Tokenizer(models.BPE())
    # GPT-2 style byte-level: every byte is representable, so there is never an unknown token.
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,  # ids 0..5, in this order
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # tokenizers' trainer takes an iterator of batches; batching avoids per-string FFI overhead.
    tokenizer.train_from_iterator(batched(texts, 1000), trainer=trainer)

    hf_tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[USER_TOKEN, ASSISTANT_TOKEN, END_TOKEN],
        model_max_length=1_000_000,
        padding_side="right",
    )
    hf_tokenizer.chat_template = CHAT_TEMPLATE

    # Atomic publish: save beside the target, then rename, so a killed run never leaves half a tokenizer.
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    hf_tokenizer.save_pretrained(tmp_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp_dir, out_dir)
    return PreTrainedTokenizerFast.from_pretrained(out_dir)
