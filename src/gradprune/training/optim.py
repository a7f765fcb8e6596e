"""Optimizers and learning-rate schedules from config.

The learning rate is a pure function of the step (no scheduler object with hidden state), so a run
resumed from a checkpoint follows exactly the same schedule, and reports can redraw it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn


def decayed_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(decayed, not decayed) parameters, as TF-slim regularises them: the kernels of
    convolutions and fully-connected layers (and of LSTMs and embeddings, the connections of the
    other families) carry weight decay; biases, batch-norm scales and shifts, and depthwise
    kernels do not (``mobilenet_v1_arg_scope``'s ``regularize_depthwise=False``)."""
    decayed, plain = [], []
    for module in model.modules():
        for param in module.parameters(recurse=False):
            depthwise = isinstance(module, nn.Conv2d) and module.groups > 1 \
                and module.groups == module.in_channels
            is_kernel = param.dim() > 1 and not isinstance(module, nn.modules.batchnorm._NormBase)
            (decayed if is_kernel and not depthwise else plain).append(param)
    return decayed, plain


def kernels(model: nn.Module, name: str) -> dict:
    """How the optimizer's update runs: on a GPU one fused kernel for all parameters (SGD, Adam,
    AdamW; RMSprop has none in PyTorch: one multi-tensor ``foreach`` launch per operation);
    elsewhere PyTorch's default, so CPU runs keep their numbers bit for bit. (Fused and foreach
    updates are elementwise and deterministic; they differ from the per-parameter loop by float
    rounding only.)"""
    if not all(p.is_cuda for p in model.parameters()):
        return {}
    return {"fused": True} if name in ("sgd", "adam", "adamw") else {"foreach": True}


def build_optimizer(model: nn.Module, cfg: dict) -> torch.optim.Optimizer:
    name = cfg["name"]
    wd = cfg["weight_decay"]
    params = model.parameters()
    if wd:
        decayed, plain = decayed_parameters(model)
        params = [{"params": decayed, "weight_decay": wd}, {"params": plain, "weight_decay": 0.0}]
    fast = kernels(model, name)
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=wd, nesterov=cfg["nesterov"],
            **fast,
        )
    if name == "adam":
        return torch.optim.Adam(params, lr=cfg["lr"], weight_decay=wd, eps=cfg["eps"], **fast)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=wd, eps=cfg["eps"], **fast)
    if name == "rmsprop":
        # Decay 0.9 as the TF-slim ImageNet recipe of InceptionV3/MobileNet; its momentum 0.9 and
        # eps 1.0 are set by the paper preset (the schema's defaults are 0 and 1e-8).
        return torch.optim.RMSprop(
            params, lr=cfg["lr"], alpha=0.9, momentum=cfg["momentum"], eps=cfg["eps"],
            weight_decay=wd, **fast,
        )
    raise ValueError(f"unknown optimizer {name!r}; choose sgd, adam, adamw or rmsprop")


def lr_at(step: int, base_lr: float, sched: dict, total_steps: int) -> float:
    """Learning rate used for optimizer step ``step`` (0-based)."""
    name = sched["name"]
    warmup = sched["warmup_steps"]
    if warmup and step < warmup:
        return base_lr * (step + 1) / warmup
    min_lr = sched["min_lr"]
    if name == "constant":
        return base_lr
    if name == "cosine":
        progress = (step - warmup) / max(1, total_steps - warmup)
        return min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))
    start, every, decay = sched["decay_start"], sched["decay_every"], sched["decay"]
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
    sched = train_cfg["lr_schedule"]
    base = opt["lr"]
    if not continuation:
        return lambda step: lr_at(step, base, sched, total)
    scaled = base * continuation["scale"]
    if continuation["restart"]:
        return lambda step: lr_at(step - t0, scaled, sched, total - t0)
    return lambda step: lr_at(step, scaled, sched, total)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
