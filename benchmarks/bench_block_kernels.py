"""Which CPU kernel to run block-sparse matrices with: dense against torch CSR, torch BSR and
scipy's bsr_matrix, on the mini LM's matrix shapes, at one sparsity, per block size and batch.

The matrices are the 256-unit LM's (LSTM gates 1024 x 256, softmax 10000 x 256), masked in square
blocks by block magnitude (``GradualPruner(block=...)`` on random weights, one-shot), times a
dense (in, batch) right-hand side: what ``gradprune.footprint.execution.Product`` computes.
Timing: gradprune.footprint.latency.time_calls (warm-up, interleaved rounds in shuffled order,
one thread); each kernel's ratio to dense is the median over rounds of the per-round ratios.
scipy converts the input to numpy on every call, as a model calling it would.

    .venv/bin/python benchmarks/bench_block_kernels.py                # about 1-2 minutes
    .venv/bin/python benchmarks/bench_block_kernels.py --sparsity 0.8 --rounds 30
"""

from __future__ import annotations

import argparse
import functools
import warnings

import numpy as np
import torch
from torch import nn

from gradprune.footprint.latency import summary, time_calls
from gradprune.pruning import GradualPruner
from gradprune.schedule import CubicSchedule

SHAPES = {"lstm 1024x256": (1024, 256), "softmax 10000x256": (10000, 256)}


def masked(shape, block, sparsity, seed=0):
    torch.manual_seed(seed)
    layer = nn.Linear(shape[1], shape[0], bias=False)
    pruner = GradualPruner(layer, CubicSchedule(0.0, sparsity, begin_step=0, frequency=1,
                                                n_updates=0), block=block)
    pruner.prune_to(sparsity)
    return layer.weight.detach().clone()


def _times(a):
    return lambda x: a @ x


def kernels(w: torch.Tensor, block: int):
    warnings.simplefilter("ignore", UserWarning)  # "sparse BSR/CSR support is in beta"
    out = {"dense": _times(w), "torch csr": _times(w.to_sparse_csr())}
    if block > 1:
        out["torch bsr"] = _times(w.to_sparse_bsr((block, block)))
        try:
            import scipy.sparse as sp

            sb = sp.bsr_matrix(w.numpy(), blocksize=(block, block))
            out["scipy bsr"] = lambda x: torch.from_numpy(sb @ x.numpy())
        except ImportError:
            pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--blocks", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--min-time", type=float, default=0.01)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, one thread, sparsity {args.sparsity}, "
          f"{args.rounds} interleaved rounds; time / dense time (median, quartiles), <1 = faster")
    for name, shape in SHAPES.items():
        for block in args.blocks:
            w = masked(shape, (block, block), args.sparsity)
            gen = torch.Generator().manual_seed(1)
            for batch in args.batches:
                x = torch.randn(shape[1], batch, generator=gen)
                calls = {k: functools.partial(f, x) for k, f in kernels(w, block).items()}
                ref = calls["dense"]()
                for k, fn in calls.items():
                    assert np.allclose(fn().numpy(), ref.numpy(), atol=1e-4), k
                raw = time_calls(calls, args.rounds, args.min_time)
                dense = raw["dense"]["samples"]
                parts = [f"dense {1e6 * summary(dense)['median']:7.1f} us"]
                for k in calls:
                    if k == "dense":
                        continue
                    r = summary([s / d for s, d in zip(raw[k]["samples"], dense)])
                    parts.append(f"{k} {r['median']:.2f}x [{r['q25']:.2f}-{r['q75']:.2f}]")
                print(f"{name:18s} block {block:2d} batch {batch:2d}: " + "; ".join(parts),
                      flush=True)


if __name__ == "__main__":
    main()
