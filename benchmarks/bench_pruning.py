"""Per-step cost of gradual pruning: dense vs. GradualPruner vs. torch.nn.utils.prune.

    python benchmarks/bench_pruning.py                 # defaults: about 1-2 minutes on 2 CPU cores
    python benchmarks/bench_pruning.py --rounds 20 --threads 4

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

from gradprune.pruning import GradualPruner
from gradprune.schedule import CubicSchedule


class LSTMLM(nn.Module):
    """Zaremba et al. (2014) LM: embedding, 2-layer LSTM, untied softmax."""

    def __init__(
        self, vocab: int = 10_000, hidden: int = 650, layers: int = 2, dropout: float = 0.5
    ):
        super().__init__()
        self.embedding = nn.Embedding(vocab, hidden)
        self.lstm = nn.LSTM(hidden, hidden, layers, dropout=dropout)
        self.drop = nn.Dropout(dropout)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, x):
        out, _ = self.lstm(self.drop(self.embedding(x)))
        return self.decoder(self.drop(out))


def conv_bn(cin, cout, stride, groups=1, kernel=3):
    return [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


class MobileNetV1(nn.Module):
    """Howard et al. (2017), width 1.0; a minimal inline copy for timing only."""

    CFG = [  # noqa: RUF012
        (64, 1),
        (128, 2),
        (128, 1),
        (256, 2),
        (256, 1),
        (512, 2),
        (512, 1),
        (512, 1),
        (512, 1),
        (512, 1),
        (512, 1),
        (1024, 2),
        (1024, 1),
    ]

    def __init__(self, num_classes: int = 10):
        super().__init__()
        layers, cin = conv_bn(3, 32, 2), 32
        for cout, stride in self.CFG:
            layers += conv_bn(cin, cin, stride, groups=cin)  # depthwise 3x3
            layers += conv_bn(cin, cout, 1, kernel=1)  # pointwise 1x1
            cin = cout
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x))


# The tensors both pruners prune: the paper's choice for each model.
def lstm_targets(model: LSTMLM) -> list[tuple[nn.Module, str]]:
    out = [(model.embedding, "weight"), (model.decoder, "weight")]
    out += [(model.lstm, n) for n, _ in model.lstm.named_parameters() if n.startswith("weight_")]
    return out


def mobilenet_targets(model: MobileNetV1) -> list[tuple[nn.Module, str]]:
    out = [
        (m, "weight")
        for m in model.modules()
        if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)
    ]
    return out + [(model.classifier, "weight")]


def ours(model, targets, sparsity):
    names = {id(m): n for n, m in model.named_modules()}
    include = [f"{names[id(m)]}.{p}" if names[id(m)] else p for m, p in targets]
    pruner = GradualPruner(model, CubicSchedule(0.0, sparsity, 0, 1, 0), include=include)
    pruner.prune_to(sparsity)
    return pruner


def torch_pruned(model, targets, sparsity):
    for module, name in targets:
        torch_prune.l1_unstructured(module, name, amount=sparsity)


def time_steps(make_model, targets_of, make_batch, loss_fn, args, clip=None, label=""):
    """Interleaved per-step times (seconds) of dense / ours / torch.nn.utils.prune."""
    variants = {}
    for key in ("dense", "ours", "torch.prune"):
        torch.manual_seed(0)
        model = make_model()
        pruner = None
        if key == "ours":
            pruner = ours(model, targets_of(model), args.sparsity)
        elif key == "torch.prune":
            torch_pruned(model, targets_of(model), args.sparsity)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9 if args.momentum else 0.0)
        variants[key] = (model, opt, pruner)
    batch = make_batch()
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
        logits = model(data[:-1])
        return nn.functional.cross_entropy(logits.reshape(-1, vocab), data[1:].reshape(-1))

    return time_steps(
        lambda: LSTMLM(vocab, 650),
        lstm_targets,
        make_batch,
        loss_fn,
        args,
        clip=5.0,
        label="Zaremba-medium",
    )


def bench_mobilenet(args):
    def make_batch():
        g = torch.Generator().manual_seed(0)
        return torch.randn(32, 3, 64, 64, generator=g), torch.randint(10, (32,), generator=g)

    def loss_fn(model, data):
        return nn.functional.cross_entropy(model(data[0]), data[1])

    return time_steps(
        MobileNetV1, mobilenet_targets, make_batch, loss_fn, args, label="MobileNetV1"
    )


def bench_update(args):
    """One full mask update of Zaremba-large (66M parameters, every weight, LSTM per layer)."""
    torch.manual_seed(0)
    model = LSTMLM(10_000, 1500, dropout=0.65)
    n = sum(p.numel() for p in model.parameters())
    schedule = CubicSchedule(0.0, 0.9, begin_step=0, frequency=1, n_updates=args.updates)
    pruner = GradualPruner(model, schedule)
    times = []
    for step in range(args.updates + 1):
        with torch.no_grad():  # what an optimizer step does: move every weight a little
            for p in model.parameters():
                p.add_(torch.randn_like(p), alpha=1e-3)
        t0 = time.perf_counter()
        pruner.update_masks(step)
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
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, sparsity {args.sparsity}, "
        f"{args.rounds} rounds after {args.warmup} warm-up"
    )
    rows = []
    if "lstm" in parts:
        rows.append(("Zaremba-medium LSTM LM (650, bs 20, bptt 35)", bench_lstm(args)))
    if "mobilenet" in parts:
        rows.append(("MobileNetV1 (10 classes, 32x3x64x64)", bench_mobilenet(args)))
    if rows:
        print(
            f"\n{'model':46s} {'dense':>9s} {'ours':>9s} {'torch.prune':>12s} {'ours/dense':>11s} "
            f"{'prune/dense':>12s}"
        )
        for name, t in rows:
            print(
                f"{name:46s} {t['dense'] * 1e3:7.1f}ms {t['ours'] * 1e3:7.1f}ms "
                f"{t['torch.prune'] * 1e3:10.1f}ms {t['ours'] / t['dense']:11.3f} "
                f"{t['torch.prune'] / t['dense']:12.3f}"
            )
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
