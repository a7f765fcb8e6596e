"""Structured masks: blocks (as the authors' ``model_pruning`` has them) and N:M groups.

Unstructured masks rank single weights. A *block* structure ranks tiles of a 2-D kernel instead,
as google-research ``model_pruning`` does with ``block_height``/``block_width``,
``block_pooling_function`` (AVG or MAX of |w| per block) and a per-layer ``block_dims_map``: the
kernel is cut into ``[h, w]`` tiles, each tile is scored by the mean (``avg``) or the largest
(``max``) magnitude of its weights, and exactly ``round(s * n_blocks)`` tiles of the group are
pruned, ties by position (tensor order, then row-major tile order), already-pruned tiles ranked
first so masks only grow. Blocks are in PyTorch's layout: rows are output features, columns input
features (TensorFlow's kernels are the transpose, so TF's ``[h, w]`` is our ``[w, h]``).

Edge rule: when a dimension is not a multiple of the block, the last tile of that row or column is
the part that remains (a ragged tile). It counts as one block, scored over the weights it has
(what TF's ``SAME``-padded average pooling does; the max is unaffected by padding). Convolution
kernels and other tensors that are not 2-D keep ``[1, 1]`` blocks, as in the authors' code.

*N:M* (e.g. 2:4, what ``torch.sparse.to_sparse_semi_structured`` runs on Ampere-class GPUs):
every run of M consecutive weights along a row keeps at least N. Gradually: at a target s the
``round(s * numel)`` smallest weights are pruned among each group's M - N smallest (ties by
position), so each group loses at most M - N weights and at ``s = 1 - N/M`` exactly M - N: the
pattern the semi-structured kernels need. (Greedy pruning in ascending magnitude under a cap of M - N
per group takes each group's smallest weights in order, so this is that greedy rule.)
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

POOLINGS = ("avg", "max")


@dataclass(frozen=True)
class Structure:
    """How one tensor's mask is shaped: ``block`` tiles (``(1, 1)``: single weights) or ``n_m``."""

    block: tuple[int, int] = (1, 1)
    pooling: str = "avg"
    n_m: tuple[int, int] | None = None

    @property
    def unstructured(self) -> bool:
        return self.block == (1, 1) and self.n_m is None

    def as_dict(self) -> dict:
        if self.n_m is not None:
            return {"n_m": list(self.n_m)}
        return {"block": list(self.block), "pooling": self.pooling}


def structures_for(names: Sequence[str], shapes: Sequence[torch.Size], block=(1, 1),
                   pooling: str = "avg", block_map: Mapping[str, Sequence[int]] | None = None,
                   n_m: Sequence[int] | None = None) -> list[Structure]:
    """The :class:`Structure` of each named tensor: ``block_map`` (fnmatch pattern -> block)
    first, else ``block`` for 2-D tensors and ``[1, 1]`` for the others; ``n_m`` for every 2-D
    tensor. Raises ValueError naming the tensor and the fix for a structure that cannot apply."""
    if pooling not in POOLINGS:
        raise ValueError(f"block pooling must be one of {POOLINGS}, got {pooling!r}")
    block = _block(block, "block")
    block_map = {p: _block(b, f"block_map[{p!r}]") for p, b in (block_map or {}).items()}
    if n_m is not None:
        n, m = (int(v) for v in n_m)
        if not 1 <= n < m:
            raise ValueError(f"n_m must be [N, M] with 1 <= N < M, got {list(n_m)}")
        if block != (1, 1) or block_map:
            raise ValueError("n_m and block masks exclude each other: set one of them")
    for pattern in block_map:
        if not any(fnmatch.fnmatchcase(t, pattern) for t in names):
            raise ValueError(f"block_map pattern {pattern!r} matches no pruned weight "
                             f"({', '.join(names)})")
    out = []
    for name, shape in zip(names, shapes):
        hits = [b for p, b in block_map.items() if fnmatch.fnmatchcase(name, p)]
        if len(set(hits)) > 1:
            raise ValueError(f"conflicting block_map entries {sorted(set(hits))} for {name}")
        if n_m is not None:
            if len(shape) != 2 or shape[1] % m:
                raise ValueError(
                    f"{name} {tuple(shape)}: an {n}:{m} mask needs a 2-D weight whose rows divide "
                    f"into groups of {m}; exclude it from pruning or drop n_m")
            out.append(Structure(n_m=(n, m)))
            continue
        tile = hits[0] if hits else (block if len(shape) == 2 else (1, 1))
        if tile != (1, 1) and len(shape) != 2:
            raise ValueError(f"{name} {tuple(shape)}: block masks apply to 2-D weights only "
                             "(convolution kernels keep [1, 1] blocks, as in the authors' code)")
        out.append(Structure(block=tile, pooling=pooling))
    return out


def _block(value, key: str) -> tuple[int, int]:
    if len(value) != 2 or any(int(v) != v or v < 1 for v in value):
        raise ValueError(f"{key} must be [height, width] of positive integers, got {list(value)}")
    return int(value[0]), int(value[1])


def grid(shape: torch.Size, block: tuple[int, int]) -> tuple[int, int]:
    """(block rows, block columns) of a 2-D tensor, ragged edge tiles included."""
    return math.ceil(shape[0] / block[0]), math.ceil(shape[1] / block[1])


def _tiles(t: torch.Tensor, block: tuple[int, int]) -> torch.Tensor:
    """``t`` zero-padded to whole tiles, viewed as [block rows, h, block columns, w]."""
    (h, w), (r, c) = block, grid(t.shape, block)
    padded = torch.nn.functional.pad(t, (0, c * w - t.shape[1], 0, r * h - t.shape[0]))
    return padded.view(r, h, c, w)


def block_scores(weight: torch.Tensor, s: Structure) -> torch.Tensor:
    """One score per tile: the mean (over the weights the tile has) or max of |w|."""
    tiles = _tiles(weight.detach().abs(), s.block)
    if s.pooling == "max":
        return tiles.amax(dim=(1, 3))
    counts = _tiles(torch.ones_like(weight, dtype=weight.dtype), s.block).sum(dim=(1, 3))
    return tiles.sum(dim=(1, 3)) / counts


def block_keep(mask: torch.Tensor, block: tuple[int, int]) -> torch.Tensor:
    """The tile mask of a weight mask: a tile is kept when any of its weights is."""
    return _tiles(mask, block).amax(dim=(1, 3))


def expand_blocks(tile_mask: torch.Tensor, shape: torch.Size, block: tuple[int, int]) -> torch.Tensor:
    """A tile mask as a mask of the weight's ``shape`` (ragged edge tiles cut off)."""
    full = tile_mask.repeat_interleave(block[0], 0).repeat_interleave(block[1], 1)
    return full[: shape[0], : shape[1]].contiguous()


def nm_scores(weight: torch.Tensor, n_m: tuple[int, int],
              old: torch.Tensor | None = None) -> torch.Tensor:
    """|w| where a weight is among its group's M - N smallest (ties by position, the weights the
    ``old`` mask pruned first), +inf elsewhere: ranking these prunes by the capped greedy rule
    (module docstring), and a pruned weight always stays a candidate, so masks only grow."""
    n, m = n_m
    mag = weight.detach().abs().reshape(weight.shape[0], -1, m)
    key = mag if old is None else torch.where(old.reshape_as(mag) == 0, -1.0, mag)
    order = key.sort(dim=-1, stable=True).indices
    rank = torch.empty_like(order).scatter_(-1, order, torch.arange(m).expand_as(order))
    scores = torch.where(rank < m - n, mag, torch.full_like(mag, math.inf))
    return scores.view_as(weight)


def satisfies_n_m(mask: torch.Tensor, n_m: tuple[int, int]) -> bool:
    """Every run of M along a row keeps at most N (the semi-structured kernels' pattern)."""
    n, m = n_m
    return bool((mask.reshape(mask.shape[0], -1, m).count_nonzero(dim=-1) <= n).all())
