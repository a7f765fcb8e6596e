"""One paper-preset training step in float32, with TF32 matmuls (``precision.matmul: high``) and
under bf16 autocast (``precision.autocast``).

    python benchmarks/bench_precision.py --device cuda --precisions fp32,tf32,bf16
    python benchmarks/bench_precision.py --device cuda --cudnn-benchmark
    python benchmarks/bench_precision.py --device cpu --small --precisions fp32   # a smoke run

Each step is the workflow's own (:func:`gradprune.training.loop.train_steps`: forward and
backward, grad-norm clip, SGD with momentum, ``GradualPruner`` holding 90% masks with the optimizer
attached) on a fixed random batch of the paper preset's shape: Zaremba-large (10k words, 2 x 1500
units, batch 20, BPTT 35, clip 10) and GNMT-1024 (36,548 pieces, 4 layers, batch 128, sentences of
``--length`` pieces, clip 5). Rounds of ``--steps`` steps alternate between the precisions so
that drift in the machine's load hits both; the table prints median milliseconds per step, the
ratio, and whether every pruned weight is still exactly zero after the bf16 steps.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from gradprune.config import validate_config
from gradprune.models import prune_include
from gradprune.models.gnmt import gnmt
from gradprune.models.lstm_lm import lstm_lm
from gradprune.pruning import GradualPruner
from gradprune.schedule import CubicSchedule
from gradprune.tasks.base import Task
from gradprune.tasks.lm import model_hparams
from gradprune.training.loop import TrainState, train_steps
from gradprune.training.optim import build_optimizer

# name -> (precision.autocast, precision.matmul) as the config sets them (cuDNN at its defaults)
PRECISIONS = {"fp32": (None, "highest"), "tf32": (None, "high"), "bf16": ("bf16", "highest")}


class FixedBatch(Task):
    """The same random batch at every step (a step's cost does not depend on the tokens)."""

    def __init__(self, model_name: str, batch: tuple, device) -> None:
        super().__init__({}, {}, device, 0)
        self.model_name, self.fixed = model_name, batch

    def build_model(self, size):
        raise NotImplementedError

    def evaluate(self, model, split="test", limit=None):
        return {}

    def train_loss(self, model, step):
        if self.model_name == "lstm_lm":
            x, y = self.fixed
            logits, _ = model(x)
            return F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1)) * x.size(0)
        return model.loss(*self.fixed)


def setups(args) -> list[tuple[str, str, callable, tuple, float]]:
    """(label, model name, builder, batch, clip) of each benchmarked model."""
    g = torch.Generator().manual_seed(0)
    if args.small:
        lm_vocab, lm_units, nmt_vocab, nmt_units, batch, length = 500, 64, 500, 64, 8, 10
    else:
        lm_vocab, lm_units, nmt_vocab, nmt_units, batch, length = 10_000, 1500, 36_548, 1024, 128, args.length
    lm_args = {**model_hparams("large"), "hidden": lm_units}
    lm_batch = tuple(torch.randint(lm_vocab, (35, 20), generator=g) for _ in range(2))
    src = torch.randint(4, nmt_vocab, (batch, length), generator=g)
    tgt_in = torch.randint(4, nmt_vocab, (batch, length + 1), generator=g)
    tgt_out = torch.randint(4, nmt_vocab, (batch, length + 1), generator=g)
    nmt_batch = (src, torch.full((batch,), length), tgt_in, tgt_out)
    return [
        (f"Zaremba-large LM ({lm_units} units, bs 20, bptt 35)", "lstm_lm",
         lambda: lstm_lm(vocab_size=lm_vocab, **lm_args), lm_batch, 10.0),
        (f"GNMT-{nmt_units} (4 layers, bs {batch}, {length} pieces)", "gnmt",
         lambda: gnmt(size=nmt_units, vocab_size=nmt_vocab, num_layers=4), nmt_batch, 5.0),
    ]


def train_config(clip: float) -> dict:
    """A ``train`` section as a job receives it (validated, the schema's defaults filled in): SGD
    with momentum, no decay, logs and curves never (the loop's steps only)."""
    exp = {"family": "lm", "dataset": "ptb", "model": "lstm_lm", "large": {"size": 8, "sparsities": [0.0]},
           "pruning": {"begin_step": 1, "frequency": 1, "n_updates": 1},
           "train": {"total_steps": 2 * 10**6, "batch_size": 20, "grad_clip_norm": clip,
                     "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
                     "log_every": 10**9, "eval_every": 10**9, "checkpoint_every": 10**9}}
    return validate_config({"preset": "bench", "experiments": {"bench": exp}})["experiments"]["bench"]["train"]


def bench(label, name, build, batch, clip, args) -> None:
    device = torch.device(args.device)
    cfg = train_config(clip)
    states, times = {}, {}
    for precision in args.precisions:
        torch.manual_seed(0)
        model = build().to(device)
        opt = build_optimizer(model, cfg["optimizer"])
        pruner = GradualPruner(model, CubicSchedule(0.0, 0.9, 0, 1, 0), include=prune_include(name),
                               optimizer=opt)
        pruner.prune_to(0.9)
        task = FixedBatch(name, tuple(t.to(device) for t in batch), device)
        # far past the schedule's end: no mask update, the masks are only kept
        states[precision] = TrainState(model, opt, pruner, task, step=10**6)
        times[precision] = []
    for round_ in range(args.warmup + args.rounds):
        for precision, state in states.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            autocast, matmul = PRECISIONS[precision]
            torch.set_float32_matmul_precision(matmul)
            t0 = time.perf_counter()
            train_steps(state, cfg, state.step + args.steps, autocast=autocast)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if round_ >= args.warmup:
                times[precision].append((time.perf_counter() - t0) / args.steps)
    medians = {p: statistics.median(t) * 1000 for p, t in times.items()}
    exact = all(not bool(dict(s.model.named_parameters())[n].detach()[~m].any())
                for s in states.values() for n, m in s.pruner.masks().items())
    cells = [f"{medians[p]:.1f} ms" for p in args.precisions]
    ratios = [f"{medians[p] / medians['fp32']:.3f}" if {"fp32", p} <= set(medians) else "-"
              for p in ("tf32", "bf16")]
    print(f"| {label} | {' | '.join(cells)} | {' | '.join(ratios)} | {'yes' if exact else 'NO'} |",
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--precisions", default="fp32,bf16", type=lambda s: s.split(","))
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5, help="steps per round")
    ap.add_argument("--length", type=int, default=30, help="GNMT sentence length in pieces")
    ap.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark")
    ap.add_argument("--small", action="store_true", help="tiny models (a smoke run on a CPU)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    unknown = set(args.precisions) - set(PRECISIONS)
    if unknown:
        ap.error(f"--precisions: unknown {sorted(unknown)}; known: {', '.join(PRECISIONS)}")
    torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    print(f"device {args.device}, torch {torch.__version__}, cudnn.benchmark "
          f"{args.cudnn_benchmark}, {args.rounds} rounds of {args.steps} steps")
    print(f"| model | {' | '.join(args.precisions)} | tf32/fp32 | bf16/fp32 | pruned zeros exact |")
    print("| --- |" + " --- |" * (len(args.precisions) + 3))
    for setup in setups(args):
        bench(*setup, args)


if __name__ == "__main__":
    main()
