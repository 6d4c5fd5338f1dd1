"""Multi-process training under ``torchrun`` (DistributedDataParallel).

The global batch and every hyperparameter stay those of one process: each of ``W`` ranks takes
its slice of the global batch, and draws noise, t and levels from a rank-offset seed. Only rank 0
writes checkpoints and logs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = [
    "DistInfo",
    "init_distributed",
    "shutdown_distributed",
    "barrier",
    "any_rank_max",
    "gather_sums",
    "on_main",
]


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_name: str) -> DistInfo:
    """Join the process group ``torchrun`` describes in the environment (no-op when absent)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    initialized_here = False
    if not dist.is_initialized():
        # Leave NVLink multicast (NVLS) off: NCCL's NVLS algorithms fail to start on some
        # multi-GPU hosts (and gain nothing at these sizes). A user's own setting wins.
        os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
        use_cuda = device_name != "cpu" and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(local)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        initialized_here = True
    return DistInfo(rank, world, local, initialized_here)


def shutdown_distributed(info: DistInfo) -> None:
    if info.enabled and info.initialized_here and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op in one process)."""
    if info.enabled:
        dist.barrier()


def any_rank_max(info: DistInfo, value: torch.Tensor) -> torch.Tensor:
    """The maximum of a scalar tensor over ranks (``value`` itself in one process)."""
    if not info.enabled:
        return value
    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.MAX)
    return out


def gather_sums(info: DistInfo, sums: dict[str, tuple[float, int]]) -> dict[str, tuple[float, int]]:
    """Merge ``{name: (sum, count)}`` over ranks (keys may differ between ranks)."""
    if not info.enabled:
        return sums
    parts: list = [None] * info.world_size
    dist.all_gather_object(parts, sums)
    merged: dict[str, tuple[float, int]] = {}
    for part in parts:
        for k, (s, c) in part.items():
            s0, c0 = merged.get(k, (0.0, 0))
            merged[k] = (s0 + s, c0 + c)
    return merged


def on_main(info: DistInfo, fn):
    """Run ``fn()`` on rank 0 alone and return its result there (``None`` elsewhere); an
    exception it raises is raised on every rank, so that no rank waits for a failed one."""
    if not info.enabled:
        return fn()
    result, error = None, None
    if info.is_main:
        try:
            result = fn()
        except Exception as e:  # sent to the other ranks, then raised everywhere
            error = e
    box = [error]
    dist.broadcast_object_list(box, src=0)
    if box[0] is not None:
        raise error if info.is_main else box[0]
    return result
