"""Counting non-zero parameters (NNZ) the way the paper does.

Every parameter counts (biases, normalisation, embeddings), and a dense model's NNZ is its parameter
count: a weight is "zero" only when a mask prunes it, not when it happens to be 0.0 (biases often
start at exactly zero). Pass the pruner's masks to count pruned weights out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class NNZCount:
    total: int
    dense_total: int
    per_tensor: dict[str, tuple[int, int]]  # name -> (nnz, numel)

    @property
    def sparsity(self) -> float:
        """Fraction of all parameters that are pruned (whole model, not only pruned layers)."""
        return 1.0 - self.total / self.dense_total if self.dense_total else 0.0

    @property
    def millions(self) -> float:
        return self.total / 1e6


def count_nnz(model: nn.Module, masks: Mapping[str, torch.Tensor] | None = None) -> NNZCount:
    """NNZ of ``model`` in total and per parameter tensor; ``masks``: name -> bool (True = kept)."""
    from gradprune.pruning import unwrap

    masks = dict(masks or {})
    per_tensor: dict[str, tuple[int, int]] = {}
    seen: set[int] = set()
    for name, p in unwrap(model).named_parameters():
        if id(p) in seen:  # tied weights count once
            continue
        seen.add(id(p))
        numel = p.numel()
        nnz = int(masks.pop(name).sum()) if name in masks else numel
        per_tensor[name] = (nnz, numel)
    if masks:
        raise KeyError(f"masks name parameters the model does not have: {sorted(masks)}")
    total = sum(n for n, _ in per_tensor.values())
    dense = sum(n for _, n in per_tensor.values())
    return NNZCount(total, dense, per_tensor)


def masks_sparsity(masks: Mapping[str, torch.Tensor]) -> float:
    """Fraction pruned over the masked tensors only (what the schedule targets); 0 without masks."""
    numel = sum(m.numel() for m in masks.values())
    return 1.0 - sum(int(m.sum()) for m in masks.values()) / numel if numel else 0.0


def count_nonzero(model: nn.Module) -> int:
    """Literal count of non-zero values (a check that pruned weights really are zero)."""
    return sum(int(torch.count_nonzero(p.detach())) for p in model.parameters())
