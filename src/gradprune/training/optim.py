"""Optimizers and learning-rate schedules from config.

The learning rate is a pure function of the step (no scheduler object with hidden state), so a run
resumed from a checkpoint follows exactly the same schedule, and reports can redraw it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn


def build_optimizer(model: nn.Module, cfg: dict) -> torch.optim.Optimizer:
    name = cfg["name"]
    params = model.parameters()
    wd = cfg.get("weight_decay", 0.0)
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=cfg["lr"], momentum=cfg.get("momentum", 0.0), weight_decay=wd,
            nesterov=cfg.get("nesterov", False),
        )
    if name == "adam":
        return torch.optim.Adam(params, lr=cfg["lr"], weight_decay=wd, eps=cfg.get("eps", 1e-8))
    if name == "adamw":
        return torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=wd, eps=cfg.get("eps", 1e-8))
    if name == "rmsprop":
        # The TF-slim ImageNet recipe of InceptionV3/MobileNet: decay 0.9, momentum 0.9, eps 1.0.
        return torch.optim.RMSprop(
            params, lr=cfg["lr"], alpha=0.9, momentum=cfg.get("momentum", 0.9),
            eps=cfg.get("eps", 1.0), weight_decay=wd,
        )
    raise ValueError(f"unknown optimizer {name!r}; choose sgd, adam, adamw or rmsprop")


def lr_at(step: int, base_lr: float, sched: dict, total_steps: int) -> float:
    """Learning rate used for optimizer step ``step`` (0-based)."""
    name = sched.get("name", "constant")
    warmup = sched.get("warmup_steps", 0)
    if warmup and step < warmup:
        return base_lr * (step + 1) / warmup
    min_lr = sched.get("min_lr", 0.0)
    if name == "constant":
        return base_lr
    if name == "cosine":
        progress = (step - warmup) / max(1, total_steps - warmup)
        return min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))
    start, every, decay = sched.get("decay_start", 0), sched.get("decay_every", 1000), sched.get("decay", 0.1)
    if name in ("step", "exponential"):
        # step: lr * decay^k after k whole intervals past decay_start (Zaremba's per-epoch decay
        # with decay_every = steps per epoch); exponential: the same, continuously.
        if step < start:
            return base_lr
        k = (step - start) / every
        k = math.floor(k) + 1 if name == "step" else k
        return max(min_lr, base_lr * decay**k)
    raise ValueError(f"unknown lr schedule {name!r}; choose constant, cosine, step or exponential")


def run_lr(train_cfg: dict, continuation: dict | None = None,
           t0: int = 0) -> Callable[[int], float]:
    """The learning rate of each optimizer step of a run: ``step -> lr``.

    ``continuation`` (``pruning.continuation_lr``, given for the runs that continue the dense
    checkpoint from step ``t0``: every sparsity and the dense row) changes the schedule after
    t0: the initial rate is multiplied by ``scale``, and with ``restart`` the schedule starts
    again at t0 and spans the remaining ``total_steps - t0`` steps (warmup and decay steps count
    from t0). Zhu & Gupta prune MobileNet this way: the dense model's schedule with a 10x
    smaller initial rate (``{scale: 0.1, restart: true}``). ``min_lr`` stays a floor, unscaled.
    Without ``continuation`` the rate is :func:`lr_at` of the step, as for every other run.
    """
    opt, total = train_cfg["optimizer"], train_cfg["total_steps"]
    sched = train_cfg.get("lr_schedule", {"name": "constant"})
    base = opt["lr"]
    if not continuation:
        return lambda step: lr_at(step, base, sched, total)
    scaled = base * continuation.get("scale", 1.0)
    if continuation.get("restart", False):
        return lambda step: lr_at(step - t0, scaled, sched, total - t0)
    return lambda step: lr_at(step, scaled, sched, total)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
