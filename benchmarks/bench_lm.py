"""Training throughput of the LM family: our training step against a plain PyTorch loop.

    python benchmarks/bench_lm.py                      # medium LSTM (650 units), 1 thread, CPU
    python benchmarks/bench_lm.py --rounds 12 --steps 3 --threads 2 --device cuda

Three variants train the Zaremba medium model (batch 20, BPTT 35, SGD lr 1.0, clip 5) on the same
PTB batches (the real corpus when the mirror is found, else random tokens of a 10k vocabulary):

- ``plain``: a hand-written PyTorch loop (carried hidden state, forward, loss, backward, clip,
  SGD step), no pruning, no framework;
- ``gradprune``: ``gradprune.training.loop.train_steps`` driving ``LanguageModelTask.train_loss``,
  the optimizer and the learning-rate schedule, without a pruner;
- ``gradprune+prune``: the same with a ``GradualPruner`` (optimizer attached, as the runner builds
  it) at 90% sparsity, timed between mask updates; the cost of one mask update is timed apart and
  reported amortised over ``--frequency`` steps.

Rounds are interleaved (A B C A B C ...), so drift in the machine's load hits the variants alike;
the table prints median tokens per second and the ratio to ``plain`` (targets: >= 0.95 without
pruning, >= 0.92 with pruning).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from gradprune.config import deep_merge, only_experiments, read_config_file, validate_config
from gradprune.data.lm import prepare_lm_corpus
from gradprune.models import prune_include
from gradprune.models.lstm_lm import detach_hidden
from gradprune.pruning import GradualPruner
from gradprune.schedule import CubicSchedule
from gradprune.tasks.lm import LanguageModelTask
from gradprune.training.loop import TrainState, train_steps
from gradprune.training.optim import build_optimizer

MIRROR = Path(os.environ.get("GRADPRUNE_DATA_MIRROR")
              or Path(__file__).resolve().parents[2] / "shared" / "data" / "mirror")


def corpus_file(tmp: Path) -> tuple[Path, str]:
    out = tmp / "corpus.safetensors"
    if (MIRROR / "ptb").is_dir():
        prepare_lm_corpus("ptb", MIRROR / "ptb", out)
        return out, "PTB"
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(0)
    streams = {s: torch.randint(0, 10_000, (n,), generator=gen)
               for s, n in (("train", 100_000), ("valid", 2_000), ("test", 2_000))}
    save_file(streams, str(out), metadata={"vocab": "\n".join(f"w{i}" for i in range(10_000))})
    return out, "random tokens"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="medium")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=2, help="optimizer steps per variant per round")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--frequency", type=int, default=100, help="steps between mask updates")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))

    tmp = Path(tempfile.mkdtemp())
    path, source = corpus_file(tmp)
    # The mini preset's PTB experiment with Zaremba's medium recipe, validated (defaults filled).
    config = read_config_file(Path(__file__).resolve().parents[1] / "config.yaml")
    train = {"total_steps": 10**6, "batch_size": 20, "bptt": 35, "eval_batch_size": 10,
             "optimizer": {"name": "sgd", "lr": 1.0}, "lr_schedule": {"name": "constant"},
             "grad_clip_norm": 5.0, "log_every": 20, "eval_every": 10**9, "checkpoint_every": 10**9}
    config = only_experiments(config, ["lstm-ptb"])
    config["experiments"]["lstm-ptb"] = deep_merge(config["experiments"]["lstm-ptb"], {"train": train})
    exp = validate_config(config)["experiments"]["lstm-ptb"]
    exp["model_args"] = {}  # the size's own dropout and init scale (Zaremba's medium)
    train_cfg = exp["train"]
    task = LanguageModelTask(exp, {"prepared": path}, device, seed=0)

    def model():
        torch.manual_seed(0)
        return task.build_model(args.size).to(device).train()

    # gradprune, dense and pruned: the loop's own state objects (each with its own task, so each
    # carries its own hidden state)
    states = {}
    for name in ("gradprune", "gradprune+prune"):
        t = LanguageModelTask(exp, {"prepared": path}, device, seed=0)
        # train_steps scores the validation curve whenever it reaches its end_step, i.e. at the end
        # of every timed round here (once per run in real use): evaluation, not training, so off
        t.curve_metric = ""
        m = model()
        opt = build_optimizer(m, train_cfg["optimizer"])
        pruner = None
        if name == "gradprune+prune":
            sched = CubicSchedule(initial_sparsity=0.0, final_sparsity=args.sparsity, begin_step=0,
                                  frequency=args.frequency, n_updates=10**5)
            pruner = GradualPruner(m, sched, include=prune_include("lstm_lm"), optimizer=opt)
        states[name] = TrainState(m, opt, pruner, t)

    plain_model = model()
    plain_opt = torch.optim.SGD(plain_model.parameters(), lr=1.0)
    plain = {"step": 0, "hidden": None}

    def plain_steps(k: int) -> None:
        for _ in range(k):
            s = plain["step"]
            x, y = task.batch(s)
            hidden = plain_model.init_hidden(20) if s % task.steps_per_epoch == 0 else plain["hidden"]
            logits, hidden = plain_model(x, hidden)
            plain["hidden"] = detach_hidden(hidden)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1)) * x.size(0)
            plain_opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(plain_model.parameters(), 5.0)
            plain_opt.step()
            float(loss.detach())  # the loop reads the loss every step too
            plain["step"] = s + 1

    def gp_steps(name: str, k: int) -> None:
        st = states[name]
        train_steps(st, train_cfg, st.step + k, None, desc=name)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    variants = {"plain": plain_steps, "gradprune": lambda k: gp_steps("gradprune", k),
                "gradprune+prune": lambda k: gp_steps("gradprune+prune", k)}
    # warm-up: one step each (the pruner's first mask update happens at step 0, here)
    for fn in variants.values():
        fn(1)
    sync()
    times: dict[str, list[float]] = {n: [] for n in variants}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            sync()
            t0 = time.perf_counter()
            fn(args.steps)
            sync()
            times[name].append(time.perf_counter() - t0)

    pr = states["gradprune+prune"].pruner
    sync()
    t0 = time.perf_counter()
    pr.update_masks(states["gradprune+prune"].step)
    sync()
    update_s = time.perf_counter() - t0

    tokens = args.steps * 20 * 35
    tps = {n: tokens / statistics.median(v) for n, v in times.items()}
    print(f"LM training throughput: {args.size} LSTM, batch 20 x BPTT 35, {source}, device {device}"
          f", {args.threads} thread(s), {args.rounds} interleaved rounds of {args.steps} steps")
    print(f"{'variant':<26}{'tokens/s':>12}{'s/step':>10}{'ratio':>8}")
    for n in variants:
        print(f"{n:<26}{tps[n]:>12.0f}{tokens / tps[n] / args.steps:>10.3f}{tps[n] / tps['plain']:>8.3f}")
    step_s = tokens / tps["gradprune+prune"] / args.steps
    amort = step_s + update_s / args.frequency
    print(f"{'gradprune+prune amortised':<26}{20 * 35 / amort:>12.0f}{amort:>10.3f}"
          f"{20 * 35 / amort / tps['plain']:>8.3f}   (one mask update: {update_s:.3f} s every "
          f"{args.frequency} steps)")
    print(f"ratio without pruning: {tps['gradprune'] / tps['plain']:.3f} (target >= 0.95); "
          f"with pruning: {tps['gradprune+prune'] / tps['plain']:.3f}, amortised "
          f"{20 * 35 / amort / tps['plain']:.3f} (target >= 0.92)")


if __name__ == "__main__":
    main()
