"""Choose a learning rate on validation data: short runs per candidate, scored on held-out documents, never on test.

DAPT: each candidate continues `init_model_dir` for the same steps; the score is the next-token loss on
held-out *domain* documents (documents, not blocks, are split, so no validation text was trained on),
among the candidates whose loss on held-out *general* text rose by at most `max_general_loss_increase`
nats (ln 1.1 = perplexity +10%, the forgetting budget). SFT / DPO: `sweep_lr` with a function that trains
with `eval_jsonl` = the validation split and returns its `eval_loss` (see training.posttrain).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from training.pretrain import PretrainConfig, evaluate_loss, pretrain


@dataclass
class SweepPoint:
    lr: float
    val_loss: float
    general_loss_increase: float | None = None
    eligible: bool = True
    detail: dict[str, Any] | None = None


def sweep_lr(lrs: list[float], train_and_score: Callable[[float], SweepPoint]) -> dict[str, Any]:
    """Run `train_and_score(lr)` for each candidate; the best eligible point has the lowest validation loss."""
    points = [train_and_score(lr) for lr in lrs]
    eligible = [p for p in points if p.eligible and math.isfinite(p.val_loss)]
    if not eligible:
        raise ValueError("no learning rate kept general-text loss within the forgetting budget; try smaller ones")
    best = min(eligible, key=lambda p: p.val_loss)
    return {"best_lr": best.lr, "points": [asdict(p) for p in points]}


def sweep_dapt_lr(
    config: PretrainConfig,
    lrs: list[float],
    data_dir: str | os.PathLike,
    val_data_dir: str | os.PathLike,
    out_root: str | os.PathLike,
    init_model_dir: str | os.PathLike,
    general_val_dir: str | os.PathLike | None = None,
    replay_data_dir: str | os.PathLike | None = None,
    replay_ratio: float = 0.0,
    max_general_loss_increase: float = math.log(1.1),
    n_batches: int = 8,
    batch_size: int = 4,
) -> dict[str, Any]:
    """DAPT learning rate by held-out domain loss, within a general-text forgetting budget (see module doc)."""
    seq_len = config.seq_len

    def loss(model_dir: Path | str, data: str | os.PathLike) -> float:
        return evaluate_loss(model_dir, data, n_batches=n_batches, batch_size=batch_size, seq_len=seq_len)["loss"]

    general_before = loss(init_model_dir, general_val_dir) if general_val_dir else None

    def run(lr: float) -> SweepPoint:
        out = Path(out_root) / f"lr_{lr:g}"
        result = pretrain(replace(config, lr=lr), data_dir, out, init_model_dir=init_model_dir,
                          replay_data_dir=replay_data_dir, replay_ratio=replay_ratio, log_fn=lambda *_: None)
        increase = loss(out, general_val_dir) - general_before if general_val_dir else None
        return SweepPoint(lr=lr, val_loss=loss(out, val_data_dir), general_loss_increase=increase,
                          eligible=increase is None or increase <= max_general_loss_increase,
                          detail={"model_dir": str(out), "train_loss": result.final_loss,
                                  "tokens_per_s": result.tokens_per_s})

    return sweep_lr(lrs, run)
