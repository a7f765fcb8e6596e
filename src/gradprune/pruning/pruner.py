"""The pruner's state machine: when masks are updated, how they are kept, and its checkpoint state."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from gradprune.pruning.groups import PruneGroup, select_prune_groups, unwrap
from gradprune.pruning.selection import magnitude_keep_mask
from gradprune.pruning.structure import (
    Structure,
    block_keep,
    block_scores,
    expand_blocks,
    nm_scores,
    structures_for,
)
from gradprune.schedule import CubicSchedule

STATE_VERSION = 1


@dataclass
class MaskUpdate:
    """One row of the pruning log: what the schedule asked and what the masks hold."""

    step: int
    group: str
    tensor: str
    target: float
    realized: float
    numel: int
    nnz: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class _GroupState:
    group: PruneGroup
    schedule: CubicSchedule
    params: list[nn.Parameter]
    structures: list[Structure]
    masks: list[torch.Tensor] | None = None  # same dtype/device as the params; 1 keep, 0 pruned
    nnz: list[int] = field(default_factory=list)  # kept weights per mask
    hooks: list = field(default_factory=list)


class GradualPruner:
    """Per-layer magnitude masks following a :class:`CubicSchedule`.

    Call :meth:`step` after every optimizer step. On the schedule's pruning steps the masks are
    recomputed from the weights' magnitudes (exactly ``round(s_t * numel)`` zeros per group,
    ties broken by position, already-pruned weights ranked first so masks only grow); on every
    step the masks are re-applied in place, which also undoes what momentum, Adam or weight decay
    would have moved. Gradients of pruned weights are zeroed by tensor hooks (before they are
    accumulated, so also before DistributedDataParallel averages them).

    ``block``, ``block_pooling``, ``block_map``, ``n_m``: structured masks (blocks of 2-D
    kernels or N:M groups, :mod:`gradprune.pruning.structure`); the default ``[1, 1]`` blocks
    are single weights, today's masks bit for bit.

    ``optimizer``: when given, every mask update also zeroes the optimizer's per-weight state
    (momentum, Adam moments, ...) at the pruned positions. With zero gradient and zero state no
    elementwise optimizer (SGD with momentum/Nesterov/weight decay, Adam, AdamW, RMSprop,
    Adagrad) can move a pruned weight, so the per-step re-application is skipped: that halves the
    pruner's per-step cost, which is memory traffic over every pruned weight.
    """

    def __init__(
        self,
        model: nn.Module,
        schedule: CubicSchedule,
        include: Iterable[str] | None = None,
        exclude: Iterable[str] | None = None,
        sparsity_overrides: Mapping[str, float] | None = None,
        lstm_grouping: str = "layer",
        optimizer: torch.optim.Optimizer | None = None,
        block: tuple[int, int] | list[int] = (1, 1),
        block_pooling: str = "avg",
        block_map: Mapping[str, list[int]] | None = None,
        n_m: tuple[int, int] | list[int] | None = None,
    ) -> None:
        self.model = unwrap(model)
        self.optimizer = optimizer
        self.schedule = schedule
        self.lstm_grouping = lstm_grouping
        params = dict(self.model.named_parameters())
        selected = select_prune_groups(self.model, include, exclude, sparsity_overrides,
                                       lstm_grouping)
        names = [t for group in selected for t in group.tensors]
        structures = dict(zip(names, structures_for(
            names, [params[t].shape for t in names], block, block_pooling, block_map, n_m)))
        self._groups = []
        for group in selected:
            sched = schedule
            if group.final_sparsity is not None:
                sched = schedule.with_final_sparsity(group.final_sparsity)
            self._groups.append(_GroupState(group, sched, [params[t] for t in group.tensors],
                                            [structures[t] for t in group.tensors]))
        self.history: list[MaskUpdate] = []
        self.last_update_step: int | None = None

    # -- what is pruned ---------------------------------------------------------------------
    @property
    def groups(self) -> list[PruneGroup]:
        return [g.group for g in self._groups]

    @property
    def tensor_names(self) -> list[str]:
        return [t for g in self._groups for t in g.group.tensors]

    def masks(self) -> dict[str, torch.Tensor]:
        """Boolean masks (True = kept) of the tensors pruned so far."""
        out = {}
        for g in self._groups:
            if g.masks is not None:
                for name, mask in zip(g.group.tensors, g.masks):
                    out[name] = mask.bool()
        return out

    # -- training-loop API --------------------------------------------------------------------
    def _due_update(self, step: int) -> int | None:
        """The most recent pruning step <= ``step`` whose update has not been made, if any.

        Normally ``step`` itself (the loop calls :meth:`step` every step); a loop that skipped a
        pruning step (gradient accumulation, a resume between steps) catches up here.
        """
        sched = self.schedule
        if step < sched.begin_step:
            return None
        k = min((step - sched.begin_step) // sched.frequency, sched.n_updates)
        due = sched.begin_step + k * sched.frequency
        if self.last_update_step is not None and self.last_update_step >= due:
            return None
        return due

    def step(self, step: int) -> bool:
        """Call after optimizer step ``step`` (0-based). Returns True if the masks changed."""
        updated = False
        if self._due_update(step) is not None:
            self.update_masks(step)
            updated = True
        elif self.optimizer is None:
            self.apply_masks()
        return updated

    @torch.no_grad()
    def apply_masks(self) -> None:
        """Zero the pruned weights in place (keeps cuDNN's flattened LSTM weights valid)."""
        for g in self._groups:
            if g.masks is not None:
                for p, m in zip(g.params, g.masks):
                    p.mul_(m)

    @torch.no_grad()
    def update_masks(self, step: int, target: float | None = None) -> None:
        """Recompute every group's mask for the schedule's target at ``step`` (or ``target``)."""
        for g in self._groups:
            s = g.schedule(step) if target is None else target
            self._update_group(g, s, step)
        self.last_update_step = step
        self.apply_masks()

    def prune_to(self, sparsity: float) -> None:
        """One-shot pruning of every selected group to ``sparsity`` (tools, tests, NNZ checks)."""
        if not 0.0 <= sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
        self.update_masks(step=-1, target=sparsity)

    def _update_group(self, g: _GroupState, target: float, step: int) -> None:
        params = g.params
        total = sum(p.numel() for p in params)
        where = f"{g.group.name} at step {step}"
        if all(s.unstructured for s in g.structures):
            already = 0 if g.masks is None else total - sum(g.nnz)
            keep, k = magnitude_keep_mask(params, target, g.masks, already, where=where)
            masks = []
            offset = 0
            for p in params:
                masks.append(keep[offset : offset + p.numel()].view_as(p).to(dtype=p.dtype))
                offset += p.numel()
            exact = len(params) == 1
        else:
            masks = _structured_masks(g, target, where)
            exact = False
        nnzs = []
        for name, p, m in zip(g.group.tensors, params, masks):
            nnz = total - k if exact else int(torch.count_nonzero(m))
            nnzs.append(nnz)
            self.history.append(
                MaskUpdate(
                    step, g.group.name, name, float(target), 1.0 - nnz / p.numel(), p.numel(), nnz
                )
            )
        g.masks = masks
        g.nnz = nnzs
        self._mask_optimizer_state(g)
        if not g.hooks:
            self._register_grad_hooks(g)

    @torch.no_grad()
    def _mask_optimizer_state(self, g: _GroupState) -> None:
        """Zero the attached optimizer's per-weight state at the pruned positions."""
        if self.optimizer is None:
            return
        for p, m in zip(g.params, g.masks):
            for value in self.optimizer.state.get(p, {}).values():
                if torch.is_tensor(value) and value.shape == p.shape:
                    value.mul_(m)

    def _register_grad_hooks(self, g: _GroupState) -> None:
        for i, p in enumerate(g.params):
            g.hooks.append(p.register_hook(functools.partial(_mask_grad, g, i)))

    def remove(self) -> None:
        """Detach the gradient hooks (the weights stay as they are)."""
        for g in self._groups:
            for h in g.hooks:
                h.remove()
            g.hooks.clear()

    # -- reporting ------------------------------------------------------------------------------
    def sparsity_report(self) -> dict[str, float]:
        """Realized sparsity of every selected tensor (0 for tensors not yet pruned)."""
        out = {}
        for g in self._groups:
            for i, name in enumerate(g.group.tensors):
                if g.masks is None:
                    out[name] = 0.0
                else:
                    out[name] = 1.0 - g.nnz[i] / g.masks[i].numel()
        return out

    def history_rows(self) -> list[dict]:
        return [u.as_dict() for u in self.history]

    # -- checkpointing -----------------------------------------------------------------------
    def _layout(self) -> list[dict]:
        out = []
        for g in self._groups:
            entry = {
                "name": g.group.name,
                "tensors": list(g.group.tensors),
                "final_sparsity": g.schedule.final_sparsity,
            }
            # Only structured groups name their structure: checkpoints of unstructured runs
            # written before structures existed keep loading.
            if not all(s.unstructured for s in g.structures):
                entry["structure"] = [s.as_dict() for s in g.structures]
            out.append(entry)
        return out

    def state_dict(self) -> dict:
        return {
            "version": STATE_VERSION,
            "schedule": self.schedule.to_dict(),
            "lstm_grouping": self.lstm_grouping,
            "groups": self._layout(),
            "last_update_step": self.last_update_step,
            "masks": {k: v.cpu() for k, v in self.masks().items()},
            "history": self.history_rows(),
        }

    def load_state_dict(self, state: Mapping) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(
                f"pruner state version {state.get('version')!r} is not {STATE_VERSION}: "
                "the checkpoint was written by another gradprune version"
            )
        if state["schedule"] != self.schedule.to_dict():
            raise ValueError(
                f"checkpoint was written with schedule {state['schedule']}, this run uses "
                f"{self.schedule.to_dict()}: resume with the same config or start afresh"
            )
        if state.get("lstm_grouping", self.lstm_grouping) != self.lstm_grouping:
            raise ValueError(
                f"checkpoint was written with lstm_grouping={state['lstm_grouping']!r}, this run "
                f"uses {self.lstm_grouping!r}: resume with the same config or start afresh"
            )
        if "groups" in state and list(state["groups"]) != self._layout():
            raise ValueError(
                "checkpoint prunes other tensors or per-tensor sparsities or mask structures than "
                f"this run (checkpoint: {state['groups']}; this run: {self._layout()}): check "
                "include, exclude, sparsity_overrides, block, block_map and n_m"
            )
        masks = state["masks"]
        unknown = set(masks) - set(self.tensor_names)
        if unknown:
            raise ValueError(
                f"checkpoint masks name tensors this pruner does not prune: {sorted(unknown)}"
            )
        # Validate everything before changing anything.
        for g in self._groups:
            present = [t in masks for t in g.group.tensors]
            if any(present) and not all(present):
                raise ValueError(f"checkpoint holds masks for only part of group {g.group.name}")
            for name, p in zip(g.group.tensors, g.params):
                if name in masks and tuple(masks[name].shape) != tuple(p.shape):
                    raise ValueError(
                        f"mask for {name} has shape {tuple(masks[name].shape)}, the weight "
                        f"{tuple(p.shape)}: the checkpoint is of another model size"
                    )
        for g in self._groups:
            if g.group.tensors[0] not in masks:
                g.masks = None
                continue
            g.masks = [
                masks[name].to(device=p.device).bool().to(dtype=p.dtype)
                for name, p in zip(g.group.tensors, g.params)
            ]
            g.nnz = [int(torch.count_nonzero(m)) for m in g.masks]
            if not g.hooks:
                self._register_grad_hooks(g)
        self.last_update_step = state["last_update_step"]
        self.history = [MaskUpdate(**row) for row in state["history"]]
        self.apply_masks()
        for g in self._groups:
            if g.masks is not None:
                self._mask_optimizer_state(g)


@torch.no_grad()
def _structured_masks(g: _GroupState, target: float, where: str) -> list[torch.Tensor]:
    """The group's new masks when some tensor has blocks or N:M groups: its units (tiles, or
    single weights among the N:M candidates) ranked under one threshold by
    :func:`magnitude_keep_mask`, exactly ``round(target * n_units)`` pruned."""
    old = g.masks
    if old is not None:  # pruned weights exactly 0 before they are scored
        for p, m in zip(g.params, old):
            p.mul_(m)
    scores, old_units = [], []
    for i, (p, s) in enumerate(zip(g.params, g.structures)):
        if s.n_m is not None:
            cap = 1.0 - s.n_m[0] / s.n_m[1]
            if target > cap + 1e-12:
                raise ValueError(
                    f"{where}: sparsity {target} is above what an {s.n_m[0]}:{s.n_m[1]} mask "
                    f"can hold ({cap}); set the final sparsity to at most {cap}")
            scores.append(nm_scores(p, s.n_m, None if old is None else old[i]))
            if old is not None:
                old_units.append(old[i].to(scores[-1].dtype))
        else:
            scores.append(block_scores(p, s))
            if old is not None:
                old_units.append(block_keep(old[i], s.block).to(scores[-1].dtype))
    already = 0 if old is None else sum(int(u.numel() - torch.count_nonzero(u)) for u in old_units)
    keep, _ = magnitude_keep_mask(scores, target, old_units or None, already, where=where)
    masks, offset = [], 0
    for p, s, sc in zip(g.params, g.structures, scores):
        units = keep[offset : offset + sc.numel()].view_as(sc)
        offset += sc.numel()
        mask = units if s.n_m is not None else expand_blocks(units, p.shape, s.block)
        masks.append(mask.to(dtype=p.dtype))
    return masks


def _mask_grad(g: _GroupState, i: int, grad: torch.Tensor) -> torch.Tensor:
    # The mask is looked up at call time: later updates replace it.
    if g.masks is None:
        return grad
    return grad * g.masks[i]
