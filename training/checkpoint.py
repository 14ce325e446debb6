"""Distributed checkpoints (torch.distributed.checkpoint): save every N steps, keep the latest k, resume.

Layout: `<root>/step_00000040/` holds the DCP shards of model + optimizer, `trainer_state.json`
(step, data-loader position, loss curve so far) and, written last by rank 0 once every rank's
shards are on disk, the marker `COMPLETE`. Only a directory with the marker is a checkpoint; a
run killed mid-save leaves a directory without it, which resume ignores and the next save removes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from training.parallelize import DistEnv, barrier

MARKER = "COMPLETE"
TRAINER_STATE = "trainer_state.json"
_STEP_DIR = re.compile(r"^step_(\d{8})$")


class Checkpointer:
    """Saves and restores (model, optimizer, trainer state) for every rank; the trainer only says when."""

    def __init__(self, root: str | os.PathLike, env: DistEnv, every_steps: int, keep_latest: int = 2):
        if keep_latest < 1:
            raise ValueError("keep_latest must be >= 1")
        self.root = Path(root)
        self.env = env
        self.every_steps = every_steps
        self.keep_latest = keep_latest

    # --- discovery -------------------------------------------------------------------------------

    def _step_dirs(self) -> list[tuple[int, Path]]:
        if not self.root.exists():
            return []
        found = [(int(m.group(1)), p) for p in self.root.iterdir() if (m := _STEP_DIR.match(p.name))]
        return sorted(found)

    def valid_steps(self) -> list[int]:
        return [s for s, p in self._step_dirs() if (p / MARKER).exists()]

    def latest_step(self) -> int | None:
        steps = self.valid_steps()
        return steps[-1] if steps else None

    def step_dir(self, step: int) -> Path:
        return self.root / f"step_{step:08d}"

    # --- save / load -----------------------------------------------------------------------------

    def should_save(self, step: int, max_steps: int) -> bool:
        return step == max_steps or (self.every_steps > 0 and step % self.every_steps == 0)

    def save(self, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer, trainer_state: dict) -> Path:
        """Collective: every rank calls it. Returns the checkpoint directory once it is valid."""
        path = self.step_dir(step)
        if self.env.is_main:
            shutil.rmtree(path, ignore_errors=True)  # a half-written attempt at this step from a killed run
            path.mkdir(parents=True, exist_ok=True)
        barrier(self.env)
        model_sd, optim_sd = get_state_dict(model, optimizer)
        with _single_process_quiet():
            dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(path))
        barrier(self.env)  # every rank's shards are written before the marker says so
        if self.env.is_main:
            _write_atomic(path / TRAINER_STATE, json.dumps({"step": step, **trainer_state}))
            _write_atomic(path / MARKER, "")
            self._prune()
        barrier(self.env)
        return path

    def load_latest(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any] | None:
        """Collective: restore the latest valid checkpoint into model and optimizer; its trainer state or None."""
        step = self.latest_step()
        # Every rank must agree on the step even if a marker appears between their directory scans.
        if self.env.distributed:
            t = torch.tensor([-1 if step is None else step], dtype=torch.long)
            torch.distributed.broadcast(t, src=0)
            step = None if int(t) < 0 else int(t)
        if step is None:
            return None
        path = self.step_dir(step)
        model_sd, optim_sd = get_state_dict(model, optimizer)
        state = {"model": model_sd, "optim": optim_sd}
        with _single_process_quiet():
            dcp.load(state, checkpoint_id=str(path))
        set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
        return json.loads((path / TRAINER_STATE).read_text())

    def _prune(self) -> None:
        # Invalid directories (no marker) are older failed saves; drop them, and all but the latest k valid ones.
        dirs = self._step_dirs()
        valid = [s for s, p in dirs if (p / MARKER).exists()]
        keep = set(valid[-self.keep_latest:])
        for s, p in dirs:
            if s not in keep:
                # The marker goes first, so a reader never takes a half-deleted directory for valid.
                (p / MARKER).unlink(missing_ok=True)
                shutil.rmtree(p, ignore_errors=True)


@contextlib.contextmanager
def _single_process_quiet():
    # DCP warns that it "assumes" a single process when there is no process group; here that is the intent.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled", category=UserWarning)
        yield


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def run_fingerprint(*parts: Any) -> str:
    """A short stable id of what a run computes (config, data index, init model), naming its checkpoint dir.

    A retried or restarted run with the same inputs finds the same directory and resumes; a run whose
    config or data changed gets a fresh one and starts over.
    """
    h = hashlib.sha256()
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def file_signature(path: str | os.PathLike | None) -> dict | None:
    """Cheap identity of a file or directory's files (names, sizes, mtimes) for `run_fingerprint`."""
    if path is None:
        return None
    p = Path(path)
    if not p.exists():
        return None
    files = [p] if p.is_file() else sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
    return {f.name: [f.stat().st_size, f.stat().st_mtime_ns] for f in files}
