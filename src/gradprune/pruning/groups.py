"""Which tensors are pruned: the prunable kernels of a model, grouped under shared thresholds.

A group is the set of tensors ranked together under one threshold: one plain kernel, or one
recurrent layer's input and recurrent weights. Include/exclude patterns and per-group final
sparsities choose and shape the groups a pruner manages.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from torch import nn

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


@dataclass
class PruneGroup:
    """Tensors ranked together under one threshold (one LSTM layer, or one plain kernel)."""

    name: str
    tensors: list[str]
    final_sparsity: float | None = None  # per-group override of the schedule's s_f


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
