"""Deterministic per-rank batches from memory-mapped token shards, with an optional replay mix (DAPT).

The *global* batch of each optimizer step is drawn from (seed, step) alone, then cut into
`grad_accum * world_size` micro-batches; rank r takes micro-batches r, r + W, r + 2W, ... So a run
on 2 ranks sees exactly the samples of a 1-rank run with twice the gradient accumulation, and a
resumed run continues with the very batches the interrupted one would have drawn: the loader's
whole position is the step counter, which is saved in every checkpoint.
"""

from __future__ import annotations

import os

import torch

from training.packing import PackedTokenDataset


class GlobalBatchSampler:
    def __init__(
        self,
        data_dir: str | os.PathLike,
        seq_len: int,
        micro_batch_size: int,
        grad_accum_steps: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        replay_data_dir: str | os.PathLike | None = None,
        replay_ratio: float = 0.0,
    ):
        self.data = PackedTokenDataset(data_dir, seq_len)
        self.replay = PackedTokenDataset(replay_data_dir, seq_len) if replay_data_dir and replay_ratio > 0 else None
        self.replay_ratio = replay_ratio if self.replay is not None else 0.0
        self.micro_batch_size = micro_batch_size
        self.grad_accum_steps = grad_accum_steps
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.step = 0  # next optimizer step to draw (0-based)
        self.last_replay_masks: list[torch.Tensor] = []

    @property
    def global_batch_size(self) -> int:
        return self.micro_batch_size * self.grad_accum_steps * self.world_size

    def _global_ids(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        # One generator per (seed, step): the batch is a pure function of them, never of history.
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        n = self.global_batch_size
        ids = torch.randint(len(self.data), (n,), generator=g)
        from_replay = torch.zeros(n, dtype=torch.bool)
        if self.replay is not None:
            from_replay = torch.rand(n, generator=g) < self.replay_ratio
            ids = torch.where(from_replay, torch.randint(len(self.replay), (n,), generator=g), ids)
        return ids, from_replay

    def next_micro_batches(self) -> list[torch.Tensor]:
        """This rank's `grad_accum_steps` micro-batches (each (micro_batch, seq_len + 1)) for the next step."""
        ids, from_replay = self._global_ids(self.step)
        self.step += 1
        b = self.micro_batch_size
        out, masks = [], []
        for a in range(self.grad_accum_steps):
            chunk = a * self.world_size + self.rank
            sl = slice(chunk * b, (chunk + 1) * b)
            out.append(torch.stack([(self.replay if r else self.data)[int(i)]
                                    for i, r in zip(ids[sl].tolist(), from_replay[sl].tolist())]))
            masks.append(from_replay[sl].clone())
        self.last_replay_masks = masks  # which rows of each micro-batch came from the replay data
        return out

    def state_dict(self) -> dict:
        return {"step": self.step, "seed": self.seed, "global_batch_size": self.global_batch_size,
                "replay_ratio": self.replay_ratio}

    def load_state_dict(self, state: dict) -> None:
        if state["seed"] != self.seed or state["global_batch_size"] != self.global_batch_size:
            raise ValueError(f"checkpointed loader {state} does not match this run's seed/global batch")
        self.step = int(state["step"])
