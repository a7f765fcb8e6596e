"""Where the mini's MobileNet training step and its evaluation spend their time on this CPU.

    python benchmarks/bench_vision_step.py                # about a minute on one core
    python benchmarks/bench_vision_step.py --rounds 30 --widths 1.0 0.25

For every width of the mini's vision experiment (config.yaml's model and model_args, batch 64 of
1x28x28 as Fashion-MNIST), the phases of one training step are timed on their own, interleaved
across widths so that load drift hits them alike: forward, backward, the optimizer step (SGD with
Nesterov momentum and weight decay, as the mini), and an evaluation forward of 500 images. It
prints medians, each width's ratio to width 1.0, and the operators that take most of width 1.0's
and the smallest width's step (torch.profiler, self CPU time). Data are random tensors: reading
the prepared in-memory split is not part of the step's cost.

``--layouts`` first times the step as the package runs it against the step before issue 21, in
the same rounds: **before** (NCHW tensors, PyTorch's depthwise weight gradient everywhere),
**channels_last** only, and **now** (channels_last, as ``ImageClassificationTask.build_model``
builds it, plus ``mobilenet._TinyMapDepthwise`` on maps of at most 4 positions), with each one's
ratio to before.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from gradprune.config import compose_config, validate_config
from gradprune.models import build_model, mobilenet
from gradprune.training.optim import build_optimizer

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("forward", "backward", "optimizer", "eval_500")


def mini_vision() -> dict:
    """The mini's vision experiment as a job receives it: composed and validated (defaults filled)."""
    config = validate_config(compose_config([], {}, [ROOT / "config.yaml"]))
    return next(e for e in config["experiments"].values() if e["family"] == "vision")


def make(exp: dict, width: float, channels_last: bool = True):
    model = build_model(exp["model"], width=width, num_classes=10, in_channels=1, **exp["model_args"])
    if channels_last:  # as ImageClassificationTask.build_model
        model = model.to(memory_format=torch.channels_last)
    return model, build_optimizer(model, exp["train"]["optimizer"])


LAYOUTS = {  # name: (channels_last, positions up to which the tiny-map weight gradient is used)
    "before": (False, 0),
    "channels_last": (True, 0),
    "now": (True, mobilenet._TINY_MAP_POSITIONS),
}


def compare_layouts(exp: dict, widths, rounds: int, x, y, x_eval) -> None:
    """Median training step (forward, backward, optimizer) and eval forward per layout, interleaved
    across layouts and widths, with the ratio to the step before issue 21."""
    runs = {(name, w): make(exp, w, LAYOUTS[name][0]) for name in LAYOUTS for w in widths}
    samples = {key: {"step": [], "eval_500": []} for key in runs}
    for r in range(rounds + 2):  # two warm-up rounds
        for key, (model, optimizer) in runs.items():
            mobilenet._TINY_MAP_POSITIONS = LAYOUTS[key[0]][1]
            t = timed_step(model, optimizer, x, y, x_eval)
            if r >= 2:
                samples[key]["step"].append(t["forward"] + t["backward"] + t["optimizer"])
                samples[key]["eval_500"].append(t["eval_500"])
    mobilenet._TINY_MAP_POSITIONS = LAYOUTS["now"][1]
    print(f"layouts, medians of {rounds} interleaved rounds (ms; ratio to before)")
    print("| width | " + " | ".join(f"{n} step | {n} eval_500" for n in LAYOUTS) + " |")
    print("| ---: |" + " ---: | ---: |" * len(LAYOUTS))
    for w in widths:
        base = {k: statistics.median(v) for k, v in samples[("before", w)].items()}
        cells = []
        for name in LAYOUTS:
            m = {k: statistics.median(v) for k, v in samples[(name, w)].items()}
            cells += [f"{m[k] * 1e3:.1f} ({m[k] / base[k]:.2f})" for k in ("step", "eval_500")]
        print(f"| {w} | " + " | ".join(cells) + " |")
    print()


def timed_step(model, optimizer, x, y, x_eval) -> dict[str, float]:
    times = {}
    model.train()
    t0 = time.perf_counter()
    loss = F.cross_entropy(model(x), y)
    t1 = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    t2 = time.perf_counter()
    optimizer.step()
    t3 = time.perf_counter()
    model.eval()
    with torch.no_grad():
        model(x_eval)
    t4 = time.perf_counter()
    times.update(forward=t1 - t0, backward=t2 - t1, optimizer=t3 - t2, eval_500=t4 - t3)
    return times


def top_ops(model, optimizer, x, y, n: int = 8) -> str:
    model.train()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=n)


def main() -> None:
    exp = mini_vision()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", type=float, nargs="+",
                        default=[exp["large"]["size"], *exp["small_dense"]])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=exp["resources"]["threads"])
    parser.add_argument("--batch", type=int, default=exp["train"]["batch_size"])
    parser.add_argument("--layouts", action="store_true",
                        help="first compare the step with the step before issue 21 (see above)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 1, 28, 28)
    y = torch.randint(0, 10, (args.batch,))
    x_eval = torch.randn(exp["train"]["eval_batch_size"], 1, 28, 28)
    if args.layouts:
        compare_layouts(exp, args.widths, args.rounds, x, y, x_eval)
    models = {w: make(exp, w) for w in args.widths}
    for model, optimizer in models.values():  # warm-up: allocator, oneDNN primitives
        for _ in range(3):
            timed_step(model, optimizer, x, y, x_eval)
    samples = {w: {p: [] for p in PHASES} for w in args.widths}
    for _ in range(args.rounds):
        for w, (model, optimizer) in models.items():
            for phase, t in timed_step(model, optimizer, x, y, x_eval).items():
                samples[w][phase].append(t)
    medians = {w: {p: statistics.median(v) * 1e3 for p, v in s.items()} for w, s in samples.items()}
    base = medians[args.widths[0]]
    print(f"{exp['model']} {exp['model_args']}, batch {args.batch} of 1x28x28, {args.threads} "
          f"thread(s), torch {torch.__version__}; medians of {args.rounds} interleaved rounds (ms)")
    print("| width | params | " + " | ".join(PHASES) + " | train step | step / width "
          f"{args.widths[0]} |")
    print("| --- | ---: |" + " ---: |" * (len(PHASES) + 2))
    for w, m in medians.items():
        step = m["forward"] + m["backward"] + m["optimizer"]
        base_step = base["forward"] + base["backward"] + base["optimizer"]
        params = sum(p.numel() for p in models[w][0].parameters())
        print(f"| {w} | {params / 1e6:.2f}M | " + " | ".join(f"{m[p]:.1f}" for p in PHASES)
              + f" | {step:.1f} | {step / base_step:.2f} |")
    for w in (args.widths[0], args.widths[-1]):
        print(f"\nwidth {w}: operators by self CPU time over 3 training steps")
        print(top_ops(*models[w], x, y))


if __name__ == "__main__":
    main()
