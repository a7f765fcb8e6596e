"""Gradual magnitude pruning (Zhu & Gupta 2017) that keeps models plain.

Why our own pruner rather than ``torch.nn.utils.prune``: that module renames ``weight`` to
``weight_orig`` + ``weight_mask`` and recomputes their product in a forward pre-hook (overhead on
every forward, state_dicts that do not load into plain models, LSTM weights that stop being
Parameters and break cuDNN's flattened weights), and its ``amount`` is a fraction of the weights
that remain. Here weights stay ``nn.Parameter``s in place; masks are applied in place
(``weight.mul_(mask)``) after every optimizer step and to every gradient, so pruned weights are
exactly zero under any optimizer, and ``model.state_dict()`` is a plain state dict.

Usage::

    pruner = GradualPruner(model, CubicSchedule(0.0, 0.9, begin_step=2000, frequency=100,
                                                 n_updates=50))
    for step, batch in enumerate(batches):
        loss(model, batch).backward()
        optimizer.step()
        pruner.step(step)          # after every optimizer step
"""

from __future__ import annotations

import fnmatch
import functools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from gradprune.schedule import CubicSchedule

STATE_VERSION = 1

# Modules whose ``weight`` is a kernel the paper prunes. Biases and normalisation parameters never.
_KERNEL_MODULES = (
    nn.Linear,
    nn.Bilinear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Embedding,
)
_RNN_MODULES = (nn.LSTM, nn.GRU, nn.RNN)
_RNN_CELLS = (nn.LSTMCell, nn.GRUCell, nn.RNNCell)
_RNN_WEIGHT = re.compile(r"^weight_(ih|hh)_l(\d+)(_reverse)?$")


def n_to_prune(sparsity: float, numel: int) -> int:
    """round(sparsity * numel), half up; the exact number of zeros a mask update produces."""
    return math.floor(sparsity * numel + 0.5)


@dataclass
class PruneGroup:
    """Tensors ranked together under one threshold (one LSTM layer, or one plain kernel)."""

    name: str
    tensors: list[str]
    final_sparsity: float | None = None  # per-group override of the schedule's s_f


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


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DistributedDataParallel / DataParallel wrappers."""
    while isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    return model


def default_prune_groups(model: nn.Module, lstm_grouping: str = "layer") -> list[PruneGroup]:
    """Every kernel the paper would prune, in a deterministic order (module registration order).

    ``lstm_grouping="layer"``: the input and recurrent weights of one RNN layer (and direction)
    share one threshold, as the authors' TensorFlow code masks the concatenated kernel [W_x; W_h].
    ``"tensor"``: each weight matrix on its own.
    """
    if lstm_grouping not in ("layer", "tensor"):
        raise ValueError(f"lstm_grouping must be 'layer' or 'tensor', got {lstm_grouping!r}")
    model = unwrap(model)
    # named_parameters() lists a tied (shared) Parameter once, under its first name; only names
    # from this dict are used, so a weight tied between two modules is pruned once.
    params = dict(model.named_parameters())
    groups: list[PruneGroup] = []
    for mod_name, module in model.named_modules():
        prefix = f"{mod_name}." if mod_name else ""
        if isinstance(module, _KERNEL_MODULES):
            if prefix + "weight" in params:
                groups.append(PruneGroup(prefix + "weight", [prefix + "weight"]))
        elif isinstance(module, _RNN_CELLS):
            names = [n for n in (prefix + "weight_ih", prefix + "weight_hh") if n in params]
            if names:
                groups.extend(_rnn_groups(prefix + "cell", names, lstm_grouping))
        elif isinstance(module, _RNN_MODULES):
            layers: dict[str, list[str]] = {}
            for pname, _ in module.named_parameters(recurse=False):
                match = _RNN_WEIGHT.match(pname)
                if match and prefix + pname in params:
                    key = f"l{match.group(2)}{match.group(3) or ''}"
                    layers.setdefault(key, []).append(prefix + pname)
            for key, names in layers.items():
                groups.extend(_rnn_groups(prefix + key, names, lstm_grouping))
    return groups


def _rnn_groups(name: str, tensors: list[str], lstm_grouping: str) -> list[PruneGroup]:
    if lstm_grouping == "layer":
        return [PruneGroup(name, tensors)]
    return [PruneGroup(t, [t]) for t in tensors]


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def select_prune_groups(
    model: nn.Module,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    sparsity_overrides: Mapping[str, float] | None = None,
    lstm_grouping: str = "layer",
) -> list[PruneGroup]:
    """The groups to prune after include/exclude patterns (fnmatch on parameter names).

    A group is kept when any of its tensors matches ``include`` (default: all) and none matches
    ``exclude``. ``sparsity_overrides`` maps a pattern to the final sparsity of the groups it
    matches. Patterns that match nothing are errors: a typo must not silently prune everything.
    """
    candidates = default_prune_groups(model, lstm_grouping)
    all_names = [t for g in candidates for t in g.tensors]
    include = list(include) if include else None
    exclude = list(exclude or [])
    overrides = dict(sparsity_overrides or {})
    for label, patterns in (
        ("include", include or []),
        ("exclude", exclude),
        ("override", overrides),
    ):
        for pattern in patterns:
            if not any(fnmatch.fnmatchcase(n, pattern) for n in all_names):
                raise ValueError(
                    f"{label} pattern {pattern!r} matches no prunable weight. Prunable weights "
                    f"(biases and normalisation parameters never are): {', '.join(all_names)}"
                )
    chosen = []
    for group in candidates:
        if include is not None and not any(_matches(t, include) for t in group.tensors):
            continue
        if any(_matches(t, exclude) for t in group.tensors):
            continue
        hits = {s for p, s in overrides.items() if any(_matches(t, [p]) for t in group.tensors)}
        if len(hits) > 1:
            raise ValueError(
                f"conflicting sparsity overrides {sorted(hits)} for group {group.name}"
            )
        if hits:
            value = hits.pop()
            if not 0.0 <= value < 1.0:
                raise ValueError(
                    f"sparsity override for {group.name} must be in [0, 1), got {value}"
                )
            group.final_sparsity = value
        chosen.append(group)
    if not chosen:
        raise ValueError("no weight selected for pruning: check the include/exclude patterns")
    return chosen


# Selection of the k-th smallest score. ``torch.kthvalue`` copies and partially sorts the whole
# tensor (about 0.3-0.8 s for an 18M-weight LSTM layer on a 2-core CPU). For large tensors the
# value is bracketed first from a fixed-seed random sample, the scores below the bracket are only
# counted, and kthvalue runs on the narrow band inside it. The result is the exact k-th smallest
# value either way (the sample only decides how much work is done), and a bracket that misses
# falls back to the full kthvalue.
_SAMPLE_MIN_NUMEL = 1 << 20
_SAMPLE_SIZE = 1 << 16
_SAMPLE_SEED = 0x5EED


def kth_smallest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The exact k-th smallest (1-based) element of the 1-D tensor ``scores``, as a 0-d tensor."""
    return _select(scores, k)[0]


def _select(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, int]:
    """(k-th smallest element, number of elements <= it) of the 1-D tensor ``scores``."""
    n = scores.numel()
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    if n >= _SAMPLE_MIN_NUMEL:
        # A private generator: mask updates must not move the training run's global RNG.
        gen = torch.Generator(device=scores.device).manual_seed(_SAMPLE_SEED)
        idx = torch.randint(n, (_SAMPLE_SIZE,), generator=gen, device=scores.device)
        sample = scores.index_select(0, idx).sort().values
        q = k / n
        # 6 standard deviations of the sample quantile on each side, plus a little slack.
        half = 6.0 * math.sqrt(q * (1.0 - q) / _SAMPLE_SIZE) + 2.0 / _SAMPLE_SIZE
        lo_rank = math.floor((q - half) * _SAMPLE_SIZE)
        hi_rank = math.ceil((q + half) * _SAMPLE_SIZE)
        lo = sample[lo_rank] if lo_rank >= 0 else None
        hi = sample[hi_rank] if hi_rank < _SAMPLE_SIZE else None
        if lo is not None or hi is not None:
            if lo is None:
                below = 0
                in_band = scores <= hi
            else:
                in_band = scores >= lo
                below = n - int(torch.count_nonzero(in_band))
                if hi is not None:
                    in_band &= scores <= hi
            band = scores[in_band]
            if below < k <= below + band.numel():
                value = torch.kthvalue(band, k - below).values
                return value, below + int(torch.count_nonzero(band <= value))
        # The bracket missed (very unlikely): the full selection is exact anyway.
    value = torch.kthvalue(scores, k).values
    return value, int(torch.count_nonzero(scores <= value))


@dataclass
class _GroupState:
    group: PruneGroup
    schedule: CubicSchedule
    params: list[nn.Parameter]
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
    ) -> None:
        self.model = unwrap(model)
        self.optimizer = optimizer
        self.schedule = schedule
        self.lstm_grouping = lstm_grouping
        params = dict(self.model.named_parameters())
        self._groups = []
        for group in select_prune_groups(
            self.model, include, exclude, sparsity_overrides, lstm_grouping
        ):
            sched = schedule
            if group.final_sparsity is not None:
                sched = schedule.with_final_sparsity(group.final_sparsity)
            self._groups.append(_GroupState(group, sched, [params[t] for t in group.tensors]))
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
        device = params[0].device
        score_dtype = (
            torch.float64 if any(p.dtype == torch.float64 for p in params) else torch.float32
        )
        old = g.masks
        if old is not None:
            # Pruned weights become exactly 0, so their score 0 ranks below every live weight
            # but a live weight that is exactly 0.0 (handled below): masks only grow.
            for p, m in zip(params, old):
                p.mul_(m)
        # Scores |w| written straight into one buffer (no per-tensor copies, no cat).
        flat = torch.empty(total, dtype=score_dtype, device=device)
        offset = 0
        for p in params:
            flat[offset : offset + p.numel()].copy_(p.detach().reshape(-1)).abs_()
            offset += p.numel()
        if torch.isnan(flat.sum()):
            raise FloatingPointError(
                f"NaN in the weights of {g.group.name} at step {step}: training diverged before "
                "pruning; lower the learning rate or check the data"
            )
        already = 0 if old is None else total - sum(g.nnz)
        # Never un-prune: a lower target than what is already pruned (prune_to, then a schedule
        # that starts lower) keeps the existing masks.
        k = max(n_to_prune(target, total), already)
        # The new keep-masks (1 keep, 0 pruned), one buffer in the weights' dtype.
        same = all(p.dtype == params[0].dtype for p in params)
        keep = torch.empty(total, dtype=params[0].dtype if same else torch.float32, device=device)
        if k == 0:
            keep.fill_(1)
        else:
            threshold, n_le = _select(flat, k)
            if old is not None and float(threshold) == 0.0:
                # The pruned weights tie with live zeros: keep the old pruned ones pruned, then
                # prune the first live zeros by position.
                offset = 0
                for m in old:
                    keep[offset : offset + m.numel()].copy_(m.reshape(-1))
                    offset += m.numel()
                live_zeros = torch.nonzero((flat == 0) & (keep != 0)).flatten()
                keep[live_zeros[: k - already]] = 0
            else:
                torch.gt(flat, threshold, out=keep)  # prunes the n_le >= k scores <= threshold
                if n_le > k:  # ties at the threshold: prune the first positions, deterministic
                    ties = torch.nonzero(flat == threshold).flatten()
                    keep[ties[k - n_le :]] = 1
        del flat
        masks, nnzs = [], []
        offset = 0
        for name, p in zip(g.group.tensors, params):
            m = keep[offset : offset + p.numel()].view_as(p).to(dtype=p.dtype)
            offset += p.numel()
            nnz = total - k if len(params) == 1 else int(torch.count_nonzero(m))
            masks.append(m)
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
        return [
            {
                "name": g.group.name,
                "tensors": list(g.group.tensors),
                "final_sparsity": g.schedule.final_sparsity,
            }
            for g in self._groups
        ]

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
                "checkpoint prunes other tensors or per-tensor sparsities than this run "
                f"(checkpoint: {state['groups']}; this run: {self._layout()}): check include, "
                "exclude and sparsity_overrides"
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


def _mask_grad(g: _GroupState, i: int, grad: torch.Tensor) -> torch.Tensor:
    # The mask is looked up at call time: later updates replace it.
    if g.masks is None:
        return grad
    return grad * g.masks[i]
