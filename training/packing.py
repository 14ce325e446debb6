"""Tokenize documents into flat binary token shards and memory-map them as next-token blocks."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

INDEX_FILE = "index.json"

# Pretrained tokenizers whose eos is a chat end-of-turn token (SmolLM2's <|im_end|>) were pretrained with
# a separate document separator; continued pretraining must separate documents the way pretraining did.
DOCUMENT_SEPARATORS = ("<|endoftext|>", "<|end_of_text|>", "</s>")


def document_separator_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The token put between packed documents: a known end-of-text token when the vocabulary has one, else eos."""
    # Only added (special) tokens count: a BPE vocabulary learned on HTML may hold "</s>" as ordinary text.
    added = tokenizer.get_added_vocab()
    for token in DOCUMENT_SEPARATORS:
        if token in added:
            return int(added[token])
    if tokenizer.eos_token_id is None:
        raise ValueError("tokenizer has no eos_token; documents could not be separated")
    return int(tokenizer.eos_token_id)


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """A hash of the vocabulary (token -> id): token shards are only readable by a model with the same one."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode()).hexdigest()[:16]


def check_tokenizer_matches(data_dir: str | os.PathLike, tokenizer: PreTrainedTokenizerBase) -> None:
    """Raise a clear error when `data_dir` was packed with another tokenizer than the one about to train on it."""
    index = read_index(data_dir)
    packed = index.get("tokenizer_fingerprint")
    if packed is None:  # shards packed before fingerprints existed: the vocabulary size is all we can compare
        if index.get("vocab_size") not in (None, len(tokenizer)):
            raise ValueError(f"{data_dir} was packed with a {index['vocab_size']}-token vocabulary, the model's "
                             f"tokenizer has {len(tokenizer)}: repack the shards with the model's tokenizer")
        return
    if packed != tokenizer_fingerprint(tokenizer):
        raise ValueError(f"{data_dir} was packed with another tokenizer (fingerprint {packed}, this one "
                         f"{tokenizer_fingerprint(tokenizer)}): repack the shards with the model's own tokenizer")


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    # Write beside, then rename: a reader never sees a half-written shard under its final name.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def batched(texts: Iterable[str], batch_size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def pack_token_shards(
    texts: Iterable[str],
    tokenizer: PreTrainedTokenizerBase,
    out_dir: str | os.PathLike,
    seq_len: int,
    shard_tokens: int = 50_000_000,
    batch_size: int = 1000,
) -> dict:
    """Tokenize `texts` with `tokenizer` (the model's own), end each document with its separator, and write
    `shard_XXXXX.bin` files plus `index.json`.

    The separator is `document_separator_id(tokenizer)`: eos for Modelworks' own tokenizer, `<|endoftext|>`
    for a pretrained one such as SmolLM2's (whose eos `<|im_end|>` ends chat turns, not documents).

    Each shard is a flat array of token ids (uint16 when the vocabulary fits, else uint32); documents
    are concatenated with no padding, so a training block may span a document boundary (GPT-style).
    `index.json` is written last and is what makes the directory valid. Returns the index.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / INDEX_FILE).unlink(missing_ok=True)  # the old index must not describe new shards
    vocab_size = len(tokenizer)
    dtype = np.uint16 if vocab_size <= 65536 else np.uint32
    eos_id = document_separator_id(tokenizer)

    shards: list[dict] = []
    buffer: list[np.ndarray] = []
    buffered = 0
    n_documents = 0

    def flush(tokens: np.ndarray) -> None:
        name = f"shard_{len(shards):05d}.bin"
        _atomic_write_bytes(out / name, tokens.tobytes())
        shards.append({"file": name, "n_tokens": int(tokens.size)})

    for batch in batched(texts, batch_size):
        # add_special_tokens=False: document separation is our EOS, not whatever the post-processor adds.
        ids = tokenizer(batch, add_special_tokens=False)["input_ids"]
        for doc in ids:
            buffer.append(np.asarray(doc + [eos_id], dtype=dtype))
            buffered += len(doc) + 1
        n_documents += len(ids)
        while buffered >= shard_tokens:
            flat = np.concatenate(buffer)
            flush(flat[:shard_tokens])
            rest = flat[shard_tokens:]
            buffer, buffered = [rest], int(rest.size)
    if buffered:
        flush(np.concatenate(buffer))

    # Remove shards left over from an earlier, larger packing into the same directory.
    keep = {s["file"] for s in shards}
    for stale in out.glob("shard_*.bin"):
        if stale.name not in keep:
            stale.unlink()

    index = {
        "dtype": np.dtype(dtype).name,
        "seq_len": seq_len,
        "vocab_size": vocab_size,
        "eos_token_id": eos_id,  # the document separator (see document_separator_id)
        "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer),
        "n_documents": n_documents,
        "n_tokens": int(sum(s["n_tokens"] for s in shards)),
        "shards": shards,
    }
    _atomic_write_bytes(out / INDEX_FILE, json.dumps(index, indent=2).encode())
    return index


def read_index(data_dir: str | os.PathLike) -> dict:
    return json.loads((Path(data_dir) / INDEX_FILE).read_text())


class PackedTokenDataset(torch.utils.data.Dataset):
    """Memory-mapped token shards cut into non-overlapping blocks of `seq_len + 1` tokens.

    Block i holds inputs tokens[0:seq_len] and next-token targets tokens[1:seq_len+1]. Blocks never
    straddle shards, so the tail of each shard (< seq_len + 1 tokens) is unused.
    """

    def __init__(self, data_dir: str | os.PathLike, seq_len: int):
        self.data_dir = Path(data_dir)
        self.index = read_index(self.data_dir)
        self.seq_len = seq_len
        dtype = np.dtype(self.index["dtype"])
        self.shards = [
            np.memmap(self.data_dir / s["file"], dtype=dtype, mode="r")
            for s in self.index["shards"]
            if s["n_tokens"] > 0
        ]
        block = seq_len + 1
        # Cumulative block counts map a global block id to (shard, offset) with one searchsorted.
        counts = np.array([len(m) // block for m in self.shards], dtype=np.int64)
        self._cum = np.concatenate([[0], np.cumsum(counts)])
        if self._cum[-1] == 0:
            raise ValueError(f"{data_dir}: fewer than seq_len + 1 = {block} tokens in every shard")

    def __len__(self) -> int:
        return int(self._cum[-1])

    def __getitem__(self, i: int) -> torch.Tensor:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        shard = int(np.searchsorted(self._cum, i, side="right") - 1)
        start = (i - int(self._cum[shard])) * (self.seq_len + 1)
        block = self.shards[shard][start : start + self.seq_len + 1]
        return torch.from_numpy(block.astype(np.int64))

    def sample_batch(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """A (batch_size, seq_len + 1) batch of random blocks; the same generator state gives the same batch."""
        ids = torch.randint(len(self), (batch_size,), generator=generator).tolist()
        return torch.stack([self[i] for i in ids])
