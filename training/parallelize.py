"""Process-group setup and parallelization of a plain model: DDP or FSDP2, optional torch.compile.

The model is built without knowing how it will be distributed (TorchTitan's split); `parallelize`
is applied afterwards and is the only place that knows about DDP, `fully_shard` or compile.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist
from torch import nn

Parallelism = Literal["ddp", "fsdp"]


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or ("RANK" in os.environ and "WORLD_SIZE" in os.environ)


def init_distributed(backend: str | None = None) -> DistEnv:
    """Join the process group torchrun set up (RANK/WORLD_SIZE/MASTER_ADDR...), or run as a single process.

    backend None picks NCCL when CUDA is available, else gloo. A single process (no torchrun, or
    WORLD_SIZE=1) never creates a process group, so the in-process API has no distributed cost.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        backend = backend or ("nccl" if cuda else "gloo")
        dist.init_process_group(backend=backend, device_id=device if backend == "nccl" else None)
    return DistEnv(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def destroy_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def parallelize(model: nn.Module, env: DistEnv, parallelism: Parallelism = "ddp", compile: bool = False) -> nn.Module:
    """Return the module to train: `model` itself on one process, else wrapped in DDP or sharded with FSDP2.

    FSDP2 shards each decoder layer separately (so only one layer's full weights exist at a time),
    then the root (embeddings, final norm, head). fully_shard mutates `model` in place; DDP wraps it.
    Either way `model` keeps its class and can be saved from its (gathered) state dict.
    """
    if compile:
        # Per-layer compile, as TorchTitan does: repeated identical blocks reuse one compiled graph.
        for layer in _decoder_layers(model):
            layer.compile()
    if not env.distributed:
        return model
    if parallelism == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for layer in _decoder_layers(model):
            fully_shard(layer)
        fully_shard(model)
        return model
    if parallelism == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [env.device.index] if env.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)
    raise ValueError(f"unknown parallelism {parallelism!r}; choose 'ddp' or 'fsdp'")


def _decoder_layers(model: nn.Module) -> list[nn.Module]:
    # Hugging Face causal LMs keep their blocks at model.model.layers (Llama, Mistral, Qwen, ...).
    inner = getattr(model, "model", model)
    return list(getattr(inner, "layers", []))


def all_reduce_mean(value: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Mean of a (small) tensor over ranks; the identity on one process."""
    if env.distributed:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= env.world_size
    return value


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def no_grad_sync(module: nn.Module):
    """Context for micro-batches before the last of an accumulation step: skip the gradient all-reduce."""
    import contextlib

    if hasattr(module, "no_sync"):  # DDP
        return module.no_sync()
    if hasattr(module, "set_requires_gradient_sync"):  # FSDP2

        @contextlib.contextmanager
        def fsdp_no_sync():
            module.set_requires_gradient_sync(False)
            try:
                yield
            finally:
                module.set_requires_gradient_sync(True)

        return fsdp_no_sync()
    return contextlib.nullcontext()
