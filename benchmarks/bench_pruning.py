"""Per-step cost of gradual pruning: dense vs. GradualPruner vs. torch.nn.utils.prune.

    python benchmarks/bench_pruning.py                 # defaults: about 1-2 minutes on 2 CPU cores
    python benchmarks/bench_pruning.py --rounds 20 --threads 4
    python benchmarks/bench_pruning.py --device cuda --batch 128 --image-size 224   # a GPU

Steps of the three variants are interleaved (A B C A B C ...) so that drift in the machine's load
hits them alike; the table prints medians and the ratios to the dense step. The last table times one
full mask update of the 66M-parameter Zaremba-large LSTM LM (targets: benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from gradprune.models import build_model, prune_include
from gradprune.pruning import GradualPruner, select_prune_groups
from gradprune.schedule import CubicSchedule

VARIANTS = ("dense", "ours", "ours+opt", "torch.prune")


def targets_of(model: nn.Module, name: str) -> list[tuple[nn.Module, str]]:
    """(module, parameter) pairs the paper prunes in this model, for torch.nn.utils.prune too."""
    modules = dict(model.named_modules())
    groups = select_prune_groups(model, include=prune_include(name))
    return [(modules[t.rpartition(".")[0]], t.rpartition(".")[2]) for g in groups for t in g.tensors]


def ours(model, name, sparsity, optimizer=None):
    """Our pruner with masks already at ``sparsity``; optimizer attached or not."""
    schedule = CubicSchedule(0.0, sparsity, 0, 1, 0)
    pruner = GradualPruner(model, schedule, include=prune_include(name), optimizer=optimizer)
    pruner.prune_to(sparsity)
    return pruner


def torch_pruned(model, targets, sparsity):
    for module, name in targets:
        torch_prune.l1_unstructured(module, name, amount=sparsity)


def _to(batch, device):
    return tuple(x.to(device) for x in batch) if isinstance(batch, tuple) else batch.to(device)


def _sync(device) -> None:
    """Wait for queued CUDA kernels, so a step's time is its own."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(name, model_kwargs, make_batch, loss_fn, args, clip=None, label=""):
    """Interleaved per-step times (seconds) of dense / ours (re-masking every step) / ours with
    the optimizer attached (no re-mask) / torch.nn.utils.prune."""
    variants = {}
    for key in VARIANTS:
        torch.manual_seed(0)
        model = build_model(name, **model_kwargs).to(args.device)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9 if args.momentum else 0.0)
        pruner = None
        if key == "ours":
            pruner = ours(model, name, args.sparsity)
        elif key == "ours+opt":
            pruner = ours(model, name, args.sparsity, optimizer=opt)
        elif key == "torch.prune":
            torch_pruned(model, targets_of(model, name), args.sparsity)
        variants[key] = (model, opt, pruner)
    batch = _to(make_batch(), args.device)
    times = {k: [] for k in variants}
    step_index = 10**6  # far past the schedule's end: masks are only re-applied

    def one_step(model, opt, pruner):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_fn(model, batch).backward()
        if clip:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        if pruner is not None:
            pruner.step(step_index)
        _sync(args.device)
        return time.perf_counter() - t0

    for r in range(args.warmup + args.rounds):
        for key, (model, opt, pruner) in variants.items():
            dt = one_step(model, opt, pruner)
            if r >= args.warmup:
                times[key].append(dt)
        print(f"  {label} round {r + 1}/{args.warmup + args.rounds}", end="\r", flush=True)
    print(" " * 60, end="\r")
    return {k: statistics.median(v) for k, v in times.items()}


def bench_lstm(args):
    vocab, bptt, batch = 10_000, 35, 20

    def make_batch():
        g = torch.Generator().manual_seed(0)
        return torch.randint(vocab, (bptt + 1, batch), generator=g)

    def loss_fn(model, data):
        logits, _ = model(data[:-1])
        return nn.functional.cross_entropy(logits.reshape(-1, vocab), data[1:].reshape(-1))

    return time_steps(
        "lstm_lm", {"size": "medium", "vocab_size": vocab}, make_batch, loss_fn, args, clip=5.0,
        label="Zaremba-medium",
    )


def bench_mobilenet(args):
    def make_batch():
        g = torch.Generator().manual_seed(0)
        n, size = args.batch, args.image_size
        return torch.randn(n, 3, size, size, generator=g), torch.randint(10, (n,), generator=g)

    def loss_fn(model, data):
        return nn.functional.cross_entropy(model(data[0]), data[1])

    return time_steps(
        "mobilenet_v1", {"width": 1.0, "num_classes": 10}, make_batch, loss_fn, args,
        label="MobileNetV1",
    )


def bench_update(args):
    """One full mask update of Zaremba-large (66M parameters, every weight, LSTM per layer)."""
    torch.manual_seed(0)
    model = build_model("lstm_lm", size="large", vocab_size=10_000).to(args.device)
    n = sum(p.numel() for p in model.parameters())
    schedule = CubicSchedule(0.0, 0.9, begin_step=0, frequency=1, n_updates=args.updates)
    pruner = GradualPruner(model, schedule, include=prune_include("lstm_lm"))
    times = []
    for step in range(args.updates + 1):
        with torch.no_grad():  # what an optimizer step does: move every weight a little
            for p in model.parameters():
                p.add_(torch.randn_like(p), alpha=1e-3)
        _sync(args.device)
        t0 = time.perf_counter()
        pruner.update_masks(step)
        _sync(args.device)
        times.append(time.perf_counter() - t0)
    return n, times


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=10, help="timed rounds per model (default 10)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default 2)")
    ap.add_argument("--sparsity", type=float, default=0.9, help="sparsity of the pruned variants")
    ap.add_argument("--updates", type=int, default=4, help="mask updates of Zaremba-large to time")
    ap.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)"
    )
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--batch", type=int, default=32, help="MobileNet batch (default 32)")
    ap.add_argument("--image-size", type=int, default=64, help="MobileNet input side (default 64)")
    ap.add_argument("--no-momentum", dest="momentum", action="store_false", help="plain SGD")
    ap.add_argument(
        "--only",
        choices=["lstm", "mobilenet", "update"],
        action="append",
        help="run only these parts (repeatable)",
    )
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    parts = args.only or ["lstm", "mobilenet", "update"]
    print(
        f"torch {torch.__version__} on {args.device}, {torch.get_num_threads()} threads, sparsity {args.sparsity}, "
        f"{args.rounds} rounds after {args.warmup} warm-up"
    )
    rows = []
    if "lstm" in parts:
        rows.append(("Zaremba-medium LSTM LM (650, bs 20, bptt 35)", bench_lstm(args)))
    if "mobilenet" in parts:
        shape = f"{args.batch}x3x{args.image_size}x{args.image_size}"
        rows.append((f"MobileNetV1 (10 classes, {shape})", bench_mobilenet(args)))
    if rows:
        print(f"\n{'model':46s}" + "".join(f"{k:>13s}" for k in VARIANTS)
              + "".join(f"{k + '/dense':>19s}" for k in VARIANTS[1:]))
        for name, t in rows:
            print(f"{name:46s}" + "".join(f"{t[k] * 1e3:11.1f}ms" for k in VARIANTS)
                  + "".join(f"{t[k] / t['dense']:19.3f}" for k in VARIANTS[1:]))
        print("targets: ours+opt/dense <= 1.03 (what the workflow uses: the optimizer is attached)")
    if "update" in parts:
        n, times = bench_update(args)
        later = times[1:] or times
        print(
            f"\nZaremba-large ({n / 1e6:.1f}M parameters) full mask update: first {times[0]:.2f} s, "
            f"then median {statistics.median(later):.2f} s (min {min(later):.2f}, max {max(later):.2f}) "
            f"over {len(later)} updates; target <= 1.5 s"
        )


if __name__ == "__main__":
    main()
