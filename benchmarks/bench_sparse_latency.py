"""Where sparse (torch.sparse_csr) inference beats dense on this CPU, for the `mini` model shapes.

Untrained models of the `mini` preset's large sizes (config.yaml) get random masks at each
sparsity on the weights the paper prunes; latency does not depend on the trained values, only on
the shapes and the number of non-zeros (a trained model's masks are not uniform across rows, which
moves the numbers a little). The calls and the timing are the workflow's own
(gradprune.footprint.latency): interleaved rounds, one thread, speedup = median of per-round
dense/sparse ratios. Prints the speedup per sparsity and the crossover sparsity per batch.

    .venv/bin/python benchmarks/bench_sparse_latency.py            # about 2-4 minutes, 2-core CPU
    .venv/bin/python benchmarks/bench_sparse_latency.py --family lm --rounds 30
"""

from __future__ import annotations

import argparse
import math

import torch

from gradprune.footprint.frontier import crossover
from gradprune.footprint.latency import inference_calls, measure
from gradprune.models import build_model, prune_include
from gradprune.pruning import select_prune_groups

# family -> (model, builder arguments): the mini preset's large models
MODELS = {
    "vision": ("mobilenet_v1", {"width": 1.0, "num_classes": 10, "in_channels": 1,
                                "small_input": True}),
    "lm": ("lstm_lm", {"size": "small", "vocab_size": 10000, "hidden": 256}),
    "translation": ("gnmt", {"size": 128, "vocab_size": 3000, "num_layers": 2}),
}


class _Images:  # what inference_calls reads of a vision task: the test images' shape
    imagenet = None
    test_images = torch.zeros(1, 28, 28, dtype=torch.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--family", choices=sorted(MODELS), action="append")
    ap.add_argument("--sparsities", type=float, nargs="+", default=[0.0, 0.5, 0.75, 0.9, 0.95])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--min-time", type=float, default=0.01)
    args = ap.parse_args()
    torch.set_num_threads(1)
    for family in args.family or list(MODELS):
        name, kwargs = MODELS[family]
        speedups: dict[int, list[float]] = {b: [] for b in args.batches}
        for s in args.sparsities:
            torch.manual_seed(0)
            model = build_model(name, **kwargs).eval()
            encoded = [t for g in select_prune_groups(model, prune_include(name))
                       for t in g.tensors]
            with torch.no_grad():
                for t in encoded:
                    p = model.get_parameter(t)
                    p.mul_(torch.rand_like(p) >= s)
            calls = inference_calls(family, _Images(), model, encoded, args.batches, 20)
            result = measure(calls, args.rounds, args.min_time)
            ms = {(t["mode"], t["batch"]): 1e3 * t["median_s"] for t in result["timings"]}
            for sp in result["speedup"]:
                speedups[sp["batch"]].append(sp["median"])
                print(f"{family:12s} {name:13s} sparsity {s:5.3f} batch {sp['batch']:3d}: "
                      f"dense {ms[('dense', sp['batch'])]:8.3f} ms  sparse "
                      f"{ms[('sparse', sp['batch'])]:8.3f} ms  speedup {sp['median']:5.2f}x "
                      f"[{sp['q25']:.2f}, {sp['q75']:.2f}]", flush=True)
        for b, values in speedups.items():
            x, note = crossover(args.sparsities, values)
            print(f"{family:12s} batch {b:3d}: crossover sparsity "
                  f"{'n/a' if math.isnan(x) else f'{x:.3f}'} ({note})", flush=True)


if __name__ == "__main__":
    main()
