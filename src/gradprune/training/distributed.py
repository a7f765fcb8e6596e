"""Data-parallel training under torchrun: DistributedDataParallel with NCCL on GPUs, gloo on CPUs.

Every rank builds the same model from the same seed and sees the same global batch of a step; it
keeps its slices ``rank::world_size`` of it (so the combined batch equals a single process's batch),
DDP averages the gradients, and the pruner computes identical masks from identical weights on every
rank (checked after every mask update: :func:`check_masks_agree`). Once the model is built each
rank draws its own dropout masks (``gradprune.seeding.seed_rank``), so with dropout a run on W
processes is another draw of the same training, not one process's result to float rounding. Only
rank 0 writes checkpoints and outputs; they hold every rank's generator state.

Launch. One node: ``torchrun --standalone --nproc-per-node=K`` (:func:`launch`). Several nodes
(inside a SLURM allocation, :func:`launch_nodes`): ``srun`` starts one torchrun per node, and the
torchruns meet through torchrun's c10d rendezvous on the node that runs the job script (the first
node of the allocation), at ``MASTER_ADDR:MASTER_PORT`` when those are set in the job's
environment, else at this node's host name and a port that is free on it. The workers then open
the NCCL / gloo process group among themselves.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

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

    def gather_object(self, obj) -> list:
        """``obj`` of every rank, in rank order (a collective; ``[obj]`` for one process)."""
        if not self.enabled:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


# Columns of the 2-D view of a mask whose row and column counts fingerprint it.
_FINGERPRINT_COLUMNS = 4096


def masks_fingerprint(masks: dict[str, torch.Tensor]) -> torch.Tensor:
    """``(len(masks), 3)`` int64 on the masks' device: per mask its count of kept entries and its
    kept entries' row and column index sums over a 2-D view of ``_FINGERPRINT_COLUMNS`` columns.
    Moving a kept entry changes its row or its column, hence a sum; the cost is two reductions
    per mask, no copy (a full comparison would ship every mask to every rank)."""
    rows = []
    for mask in masks.values():
        flat = mask.reshape(-1)
        n_full = flat.numel() // _FINGERPRINT_COLUMNS * _FINGERPRINT_COLUMNS
        grid = flat[:n_full].view(-1, _FINGERPRINT_COLUMNS)
        tail = flat[n_full:]
        row_counts = torch.cat([grid.sum(1, dtype=torch.int64), tail.sum(0, dtype=torch.int64)[None]])
        col_counts = grid.sum(0, dtype=torch.int64)
        col_counts[: tail.numel()] += tail.to(torch.int64)
        rows.append(torch.stack([row_counts.sum(), _position_sum(row_counts),
                                 _position_sum(col_counts)]))
    if not rows:
        return torch.zeros(0, 3, dtype=torch.int64)
    return torch.stack(rows)


def _position_sum(counts: torch.Tensor) -> torch.Tensor:
    """sum_i (i + 1) * counts[i], exact in int64 for every tensor a model holds."""
    return (counts * torch.arange(1, counts.numel() + 1, device=counts.device)).sum()


def check_masks_agree(masks: dict[str, torch.Tensor], ctx: DistContext, step: int) -> None:
    """Raise on every rank when the pruning masks of the ranks differ (a collective, called after
    each mask update): DDP keeps the weights equal, so differing masks mean a bug or a corrupted
    rank, and training on would silently average differently pruned models."""
    if not ctx.enabled:
        return
    mine = masks_fingerprint(masks).cpu()
    every = ctx.gather_object(mine)
    names = list(masks)
    for rank, theirs in enumerate(every):
        if not torch.equal(theirs, every[0]):
            bad = [names[i] for i in range(len(names)) if not torch.equal(theirs[i], every[0][i])]
            raise RuntimeError(
                f"pruning masks differ across processes after the mask update at step {step}: "
                f"rank {rank} disagrees with rank 0 on {', '.join(bad)} (kept counts "
                f"{[int(every[0][names.index(b), 0]) for b in bad]} on rank 0, "
                f"{[int(theirs[names.index(b), 0]) for b in bad]} on rank {rank}). The ranks' "
                "weights diverged: stop, and report it (a run that trains on averages differently "
                "pruned models)"
            )


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


def worker_command(job_path, nproc_per_node: int, nnodes: int = 1, rdzv_endpoint: str | None = None,
                   rdzv_id: str | None = None) -> list[str]:
    """The torchrun command line of one node's launcher (each worker runs
    :mod:`gradprune.worker` on ``job_path``)."""
    cmd = [sys.executable, "-m", "torch.distributed.run"]
    if nnodes == 1:
        cmd.append("--standalone")
    else:
        cmd += [f"--nnodes={nnodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}",
                f"--rdzv-id={rdzv_id}"]
    return cmd + [f"--nproc-per-node={nproc_per_node}", "-m", "gradprune.worker",
                  str(job_path)]


def srun_command(launchers: int, slurm_nodes: int, cpus_per_launcher: int, job_id: str) -> list[str]:
    """``srun`` that starts ``launchers`` tasks on ``slurm_nodes`` nodes of job ``job_id`` (one per
    node when they are equal). Everything is explicit: the SLURM executor plugin strips the job's
    SLURM_* variables except its id, so srun cannot read the allocation's shape from them."""
    return ["srun", f"--jobid={job_id}", f"--nodes={slurm_nodes}", f"--ntasks={launchers}",
            f"--cpus-per-task={cpus_per_launcher}", "--kill-on-bad-exit=1", "--export=ALL"]


def worker_env() -> dict:
    """The launcher's environment with this gradprune's ``src/`` first on PYTHONPATH: the workers
    import the package the launcher runs, whether or not the software environment installs it."""
    src = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": src + (os.pathsep + path if path else "")}


def launch(nproc: int, job_path, env: dict | None = None) -> None:
    """Train the job described in ``job_path`` on ``nproc`` processes of this machine."""
    subprocess.run(worker_command(job_path, nproc), check=True, env={**worker_env(), **(env or {})})


def launch_nodes(nodes: int, nproc_per_node: int, job_path, cpus_per_node: int,
                 slurm_nodes: int | None = None) -> None:
    """Train the job described in ``job_path`` on ``nodes`` launchers of ``nproc_per_node``
    processes each, started by ``srun`` inside this SLURM job. ``slurm_nodes``: the nodes the job
    was given, when that differs from ``nodes`` (a one-node test cluster runs the launchers side
    by side: the same rendezvous and process group, without the network between nodes)."""
    job_id = os.environ.get("SLURM_JOB_ID")
    if not job_id:
        raise RuntimeError(
            f"resources.nodes is {nodes}: a job on several nodes starts one launcher per node with "
            "srun inside its SLURM allocation, but this job runs outside SLURM (no SLURM_JOB_ID). "
            "Run the workflow with --profile profiles/slurm, or set resources.nodes to 1"
        )
    host = os.environ.get("MASTER_ADDR") or socket.gethostname()
    port = os.environ.get("MASTER_PORT") or str(_free_port())
    cmd = srun_command(nodes, slurm_nodes or nodes, cpus_per_node, job_id) + worker_command(
        job_path, nproc_per_node, nodes, f"{host}:{port}", f"gradprune-{job_id}")
    print("launching:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=worker_env())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]
