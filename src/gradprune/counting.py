"""Counting non-zero parameters (NNZ) the way the paper does.

The counting convention (the one home of it): NNZ counts the **connections** of a model, i.e.
the connection matrices and their biases: convolution and fully-connected kernels and biases,
LSTM weights and biases, embedding matrices (and any other parameter of a module that is not a
normalisation layer). Batch-norm and other normalisation parameters (the scale and shift of
``BatchNorm``, ``LayerNorm``, ``GroupNorm``, ...; :data:`NORMALIZATION_MODULES`) are not
connections and are not counted. This is what reproduces the paper's NNZ: MobileNetV1's 4.21M
(TF-slim's network with batch norm's centre and scale) and InceptionV3's 27.1M.

A dense model's NNZ is its connection count: a weight is "zero" only when a mask prunes it, not
when it happens to be 0.0 (biases often start at exactly zero). Pass the pruner's masks to count
pruned weights out. Tied weights count once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

# Modules whose own parameters are normalisation parameters (not counted).
NORMALIZATION_MODULES: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
    nn.LayerNorm, nn.GroupNorm, nn.RMSNorm,
)


@dataclass(frozen=True)
class NNZCount:
    total: int
    dense_total: int
    per_tensor: dict[str, tuple[int, int]]  # counted tensors: name -> (nnz, numel)
    not_counted: dict[str, int]  # normalisation parameters: name -> numel

    @property
    def sparsity(self) -> float:
        """Fraction of all counted parameters that are pruned (whole model, not only pruned layers)."""
        return 1.0 - self.total / self.dense_total if self.dense_total else 0.0

    @property
    def millions(self) -> float:
        return self.total / 1e6


def normalization_parameters(model: nn.Module) -> set[str]:
    """Names of the parameters that belong to normalisation layers."""
    from gradprune.pruning import unwrap

    names = set()
    for mod_name, module in unwrap(model).named_modules():
        if isinstance(module, NORMALIZATION_MODULES):
            prefix = f"{mod_name}." if mod_name else ""
            names.update(prefix + n for n, _ in module.named_parameters(recurse=False))
    return names


def count_nnz(model: nn.Module, masks: Mapping[str, torch.Tensor] | None = None) -> NNZCount:
    """NNZ of ``model`` in total and per counted tensor; ``masks``: name -> bool (True = kept)."""
    from gradprune.pruning import unwrap

    masks = dict(masks or {})
    norm = normalization_parameters(model)
    per_tensor: dict[str, tuple[int, int]] = {}
    not_counted: dict[str, int] = {}
    seen: set[int] = set()
    for name, p in unwrap(model).named_parameters():
        if id(p) in seen:  # tied weights count once
            continue
        seen.add(id(p))
        if name in norm:
            not_counted[name] = p.numel()
            continue
        numel = p.numel()
        nnz = int(masks.pop(name).sum()) if name in masks else numel
        per_tensor[name] = (nnz, numel)
    if masks:
        raise KeyError(
            f"masks name parameters that are not counted connections of the model: {sorted(masks)}"
        )
    total = sum(n for n, _ in per_tensor.values())
    dense = sum(n for _, n in per_tensor.values())
    return NNZCount(total, dense, per_tensor, not_counted)


def masks_sparsity(masks: Mapping[str, torch.Tensor]) -> float:
    """Fraction pruned over the masked tensors only (what the schedule targets); 0 without masks."""
    numel = sum(m.numel() for m in masks.values())
    return 1.0 - sum(int(m.sum()) for m in masks.values()) / numel if numel else 0.0


def count_nonzero(model: nn.Module) -> int:
    """Literal count of non-zero values (a check that pruned weights really are zero)."""
    return sum(int(torch.count_nonzero(p.detach())) for p in model.parameters())
