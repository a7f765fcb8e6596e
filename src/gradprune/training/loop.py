"""The training loop that prunes, logs and checkpoints.

One loop serves the dense phase (steps 0..t0), the continuation to each target sparsity
(t0..total) and the small-dense models (0..total). A run writes a checkpoint every
``checkpoint_every`` steps; started again on the same folder it resumes from it, so a preempted or
killed job loses at most that many steps and ends bitwise where an uninterrupted run ends (CPU).
It resumes only a checkpoint written for the same run (same config, same init checkpoint): any
other is moved aside and the run starts afresh, never mixing two configs in one result.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from gradprune import seeding
from gradprune.atomic import remove_leftovers
from gradprune.counting import masks_sparsity
from gradprune.curves import CURVE_SIZE
from gradprune.pruning import GradualPruner
from gradprune.training.checkpoint import identity_mismatch, load_checkpoint, save_checkpoint
from gradprune.training.distributed import check_masks_agree
from gradprune.training.optim import run_lr, set_lr

log = logging.getLogger(__name__)


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    # Generator states must be CPU byte tensors; a checkpoint loaded with map_location="cuda"
    # carries them on the GPU.
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


@dataclass
class Logs:
    """Rows of train_log.csv and eval.csv, kept in the checkpoint so a resumed run has them all."""

    train: list[dict] = field(default_factory=list)
    eval: list[dict] = field(default_factory=list)
    wall_time_s: float = 0.0
    # Loss summed over the steps since the last train_log row (a checkpoint can fall mid-window).
    loss_sum: float = 0.0
    loss_count: int = 0

    def state_dict(self) -> dict:
        return {"train": self.train, "eval": self.eval, "wall_time_s": self.wall_time_s,
                "loss_sum": self.loss_sum, "loss_count": self.loss_count}

    @classmethod
    def from_state(cls, state: dict) -> Logs:
        return cls(list(state["train"]), list(state["eval"]), float(state["wall_time_s"]),
                   float(state.get("loss_sum", 0.0)), int(state.get("loss_count", 0)))


@dataclass
class TrainState:
    """Everything a run needs to continue: the object a checkpoint holds."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    pruner: GradualPruner | None
    task: object
    step: int = 0  # next optimizer step to take
    logs: Logs = field(default_factory=Logs)
    forward_model: torch.nn.Module | None = None  # the DDP wrapper under torchrun
    identity: dict | None = None  # checkpoint.run_identity, saved with every checkpoint

    @property
    def is_main(self) -> bool:
        return self.task.dist.is_main

    def state_dict(self, rank_rngs: list[dict] | None = None) -> dict:
        """The checkpoint's content; ``rank_rngs``: every rank's generator state, in rank order
        (:meth:`checkpoint_state` gathers them; absent: this process's only)."""
        rngs = rank_rngs or [rng_state()]
        out = {
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "pruner": self.pruner.state_dict() if self.pruner else None,
            "task": self.task.state_dict(),
            "rng": rngs[0],
            "logs": self.logs.state_dict(),
            "identity": self.identity,
        }
        if len(rngs) > 1:
            out["rng_ranks"] = rngs
        return out

    def checkpoint_state(self) -> dict | None:
        """:meth:`state_dict` with every rank's generator state, on rank 0 (None elsewhere). A
        collective: every rank calls it (each draws its own dropout masks: gradprune.seeding)."""
        rngs = self.task.dist.gather_object(rng_state())
        return self.state_dict(rngs) if self.is_main else None

    def load(self, state: dict, with_pruner: bool = True) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if with_pruner and self.pruner is not None and state.get("pruner") is not None:
            self.pruner.load_state_dict(state["pruner"])
        self.task.load_state_dict(state["task"])
        self.step = int(state["step"])
        rngs, rank = state.get("rng_ranks") or [state["rng"]], self.task.dist.rank
        if rank < len(rngs):
            set_rng_state(rngs[rank])
        else:  # written by fewer processes: this rank starts a stream of its own from here
            seeding.seed_rank(self.task.seed, rank, self.step)
        self.logs = Logs.from_state(state["logs"])


class _LossWindow:
    """The training loss summed on the device since the last train_log row, so that a step does
    not wait for the device to report its loss. It is read (a host sync) only where every rank
    stops anyway: log steps, mask updates, checkpoints and the last step; a non-finite loss is
    reported there, naming the first step it appeared at. The float64 sum of the float32 losses
    is, addition for addition, the Python float sum it replaces (train_log.csv is unchanged)."""

    def __init__(self, logs: Logs, device, desc: str) -> None:
        self.logs, self.desc = logs, desc
        self.total = torch.tensor(logs.loss_sum, dtype=torch.float64, device=device)
        self.pending: list[tuple[int, float, torch.Tensor]] = []  # since the last read

    def add(self, loss: torch.Tensor, step: int, lr: float) -> None:
        self.total += loss
        self.pending.append((step, lr, loss))
        self.logs.loss_count += 1

    def read(self) -> None:
        """Copy the sum into ``logs.loss_sum``; FloatingPointError if a loss was not finite."""
        total = float(self.total)
        if not math.isfinite(total):
            for step, lr, loss in self.pending:
                value = float(loss)
                if not math.isfinite(value):
                    raise FloatingPointError(
                        f"{self.desc}: loss is {value} at step {step} (lr {lr:g}); the run "
                        "diverged. Lower the learning rate or enable train.grad_clip_norm."
                    )
            raise FloatingPointError(f"{self.desc}: the training loss summed since the last log "
                                     f"row overflowed ({total}); the run diverged.")
        self.pending.clear()
        self.logs.loss_sum = total

    def restart(self) -> None:
        self.logs.loss_sum, self.logs.loss_count = 0.0, 0
        self.total.zero_()


def train_steps(
    state: TrainState,
    train_cfg: dict,
    end_step: int,
    checkpoint_path: Path | None = None,
    desc: str = "train",
    stop_after: int | None = None,
    lr_of: Callable[[int], float] | None = None,
    autocast: str | None = None,
) -> None:
    """Train from ``state.step`` up to ``end_step`` (exclusive).

    ``stop_after``: stop (after checkpointing) once this many steps were taken in this call; used
    by tests to simulate preemption. ``lr_of``: step -> learning rate (default: the schedule of
    ``train_cfg``; :func:`gradprune.training.optim.run_lr`). ``autocast``: ``"bf16"`` computes the
    forward pass (and so the backward) under ``torch.autocast`` in bfloat16; parameters, their
    gradients, the optimizer and the masks stay float32, and the masks are applied to the float32
    weights after every step, so pruned weights stay exactly zero.
    """
    if autocast not in (None, "bf16"):
        raise ValueError(f"precision.autocast: {autocast!r} is not supported; use bf16 or null")
    lr_of = lr_of or run_lr(train_cfg)
    clip = train_cfg["grad_clip_norm"]
    log_every, eval_every = train_cfg["log_every"], train_cfg["eval_every"]
    ckpt_every = train_cfg["checkpoint_every"]
    model, task, pruner = state.model, state.task, state.pruner
    forward = state.forward_model or model
    model.train()
    taken = 0
    t_last = time.perf_counter()
    bar = tqdm(total=end_step, initial=state.step, desc=desc, unit="step", mininterval=5, leave=False)
    logs = state.logs
    window = _LossWindow(logs, task.device, desc)
    while state.step < end_step:
        step = state.step
        lr = lr_of(step)
        set_lr(state.optimizer, lr)
        with torch.autocast(task.device.type, dtype=torch.bfloat16, enabled=autocast == "bf16"):
            loss = task.train_loss(forward, step)
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        state.optimizer.step()
        window.add(loss.detach(), step, lr)
        if pruner is not None:
            if pruner.schedule.is_update_step(step):
                window.read()  # never prune the weights of a diverged run
            if pruner.step(step):
                check_masks_agree(pruner.masks(), task.dist, step)
        state.step = step + 1
        taken += 1
        bar.update(1)
        if state.step % log_every == 0 or state.step == end_step:
            window.read()
            target = pruner.schedule(step) if pruner is not None else 0.0
            realized = masks_sparsity(pruner.masks()) if pruner is not None else 0.0
            mean_loss = logs.loss_sum / logs.loss_count
            logs.train.append(
                {"step": step, "epoch": step / max(1, task.steps_per_epoch), "loss": mean_loss,
                 "lr": lr, "target_sparsity": target, "model_sparsity": realized}
            )
            bar.set_postfix(loss=f"{mean_loss:.3f}", lr=f"{lr:.3g}")
            window.restart()
        if task.curve_metric and state.is_main and (state.step % eval_every == 0 or state.step == end_step):
            limit = train_cfg["eval_curve_examples"]
            metrics = task.evaluate(model, split="valid", limit=limit)
            model.train()
            state.logs.eval.append({"step": step, CURVE_SIZE: task.curve_size(limit), **metrics})
        now = time.perf_counter()
        state.logs.wall_time_s += now - t_last
        t_last = now
        interrupted = stop_after is not None and taken >= stop_after
        if checkpoint_path is not None and state.step < end_step and (
            state.step % ckpt_every == 0 or interrupted
        ):
            window.read()
            payload = state.checkpoint_state()
            if state.is_main:
                save_checkpoint(payload, checkpoint_path)
            task.dist.barrier()
        if interrupted:
            window.read()
            break
    bar.close()


def resume_if_possible(state: TrainState, checkpoint_path: Path, identity: dict | None = None) -> bool:
    """Load the run's own checkpoint when one exists (a rerun after preemption).

    ``identity`` (checkpoint.run_identity) is saved with every later checkpoint; a checkpoint of
    another identity (the config or the init checkpoint changed since it was written) is not
    loaded: it is moved to ``<name>.stale`` and the run starts afresh. Returns True if resumed.
    """
    checkpoint_path = Path(checkpoint_path)
    state.identity = identity
    if state.is_main:
        remove_leftovers(checkpoint_path)  # the temporary file of a save that was killed
    if not checkpoint_path.exists():
        return False
    saved = load_checkpoint(checkpoint_path, map_location=state.task.device)
    differences = identity_mismatch(saved.get("identity"), identity) if identity else []
    if differences:
        state.task.dist.barrier()  # every rank has read it before it moves
        stale = checkpoint_path.with_name(checkpoint_path.name + ".stale")
        if state.is_main:
            os.replace(checkpoint_path, stale)
            log.warning(
                "not resuming %s: it was written for another run (config hash %s, this run %s; %s). "
                "Starting afresh; the old checkpoint was moved to %s.",
                checkpoint_path, (saved.get("identity") or {}).get("config_hash"),
                identity["config_hash"], "; ".join(differences), stale.name,
            )
        return False
    state.load(saved)
    if state.is_main:
        print(f"resuming {checkpoint_path} at step {state.step}", flush=True)
    return True
