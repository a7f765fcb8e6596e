"""Multi-GPU training under torchrun: DistributedDataParallel with NCCL on GPUs, gloo on CPUs.

Every rank builds the same model from the same seed and sees the same global batch of a step; it
keeps its rows ``rank::world_size`` (so the combined batch equals a single process's batch), DDP
averages the gradients, and the pruner computes identical masks from identical weights on every
rank. Only rank 0 writes checkpoints and outputs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, rows: torch.Tensor, dim: int = 0) -> torch.Tensor:
        """This rank's slices ``rank::world_size`` of a global batch along ``dim`` (the batch
        dimension: rows of images and sentence pairs, the stream columns of the LM)."""
        if not self.enabled:
            return rows
        n = rows.shape[dim]
        if n % self.world_size:
            raise ValueError(
                f"global batch of {n} does not split over {self.world_size} processes: make "
                "train.batch_size a multiple of the process count (resources.nodes x resources.gpu)"
            )
        return rows[(slice(None),) * dim + (slice(self.rank, None, self.world_size),)]

    def gather(self, part: torch.Tensor, dim: int = 0) -> torch.Tensor:
        """The global tensor whose :meth:`shard` on every rank gave ``part`` (a collective: every
        rank calls it). Used to keep state that spans the global batch, such as the LM's hidden
        state, identical on all ranks, so that rank 0's checkpoint holds all of it."""
        if not self.enabled:
            return part
        parts = [torch.empty_like(part) for _ in range(self.world_size)]
        dist.all_gather(parts, part.contiguous())
        # global index i * world_size + r is local index i of rank r
        return torch.stack(parts, dim=dim + 1).flatten(dim, dim + 1)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def init_from_env(device: torch.device) -> tuple[DistContext, torch.device]:
    """Join the process group torchrun describes in the environment (no-op without one)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(), device
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank, world, local), device


def launch(nproc: int, job_path, env: dict | None = None) -> None:
    """Train the job described in ``job_path`` on ``nproc`` local processes with torchrun
    (each runs :mod:`gradprune.training.worker`)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={nproc}", "-m", "gradprune.training.worker", str(job_path)]
    subprocess.run(cmd, check=True, env={**os.environ, **(env or {})})
