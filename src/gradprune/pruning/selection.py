"""How the k smallest magnitudes are selected: exact counts and the k-th smallest score.

The masks hold exactly ``round(s * numel)`` zeros per group (:func:`n_to_prune`); the threshold is
the exact k-th smallest score (:func:`kth_smallest`), found quickly on large tensors.
"""

from __future__ import annotations

import math

import torch


def n_to_prune(sparsity: float, numel: int) -> int:
    """round(sparsity * numel), half up; the exact number of zeros a mask update produces."""
    return math.floor(sparsity * numel + 0.5)


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
    return select_kth(scores, k)[0]


def select_kth(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, int]:
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


def magnitude_keep_mask(params: list[torch.Tensor], target: float, old: list[torch.Tensor] | None,
                        already: int, where: str = "the group") -> tuple[torch.Tensor, int]:
    """(flat keep-mask, k) of one group: the ``k = round(target * numel)`` weights of smallest
    magnitude pruned (ties broken by position), and never fewer than the ``already`` pruned by
    the ``old`` masks, which stay pruned. The weights are multiplied by ``old`` in place first.
    ``where`` names the group in errors."""
    total = sum(p.numel() for p in params)
    device = params[0].device
    score_dtype = (
        torch.float64 if any(p.dtype == torch.float64 for p in params) else torch.float32
    )
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
            f"NaN in the weights of {where}: training diverged before "
            "pruning; lower the learning rate or check the data"
        )
    # Never un-prune: a lower target than what is already pruned (prune_to, then a schedule
    # that starts lower) keeps the existing masks.
    k = max(n_to_prune(target, total), already)
    # The new keep-masks (1 keep, 0 pruned), one buffer in the weights' dtype.
    same = all(p.dtype == params[0].dtype for p in params)
    keep = torch.empty(total, dtype=params[0].dtype if same else torch.float32, device=device)
    if k == 0:
        keep.fill_(1)
    else:
        threshold, n_le = select_kth(flat, k)
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
    return keep, k
