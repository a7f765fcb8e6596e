"""Diagnose the mini's vision recipe: short training runs through the package's own task, model,
optimizer and loop, with train and test accuracy over the run.

    python benchmarks/vision_probe.py --steps 700 --width 1.0
    python benchmarks/vision_probe.py --steps 700 --set train.optimizer.lr=0.1 --set model_args.small_input=true
    python benchmarks/vision_probe.py --steps 700 --variant aug=batch_offset_pad_mean

The experiment is the mini's ``mobilenet-fmnist`` as a job receives it (config.yaml composed and
validated), with ``--set key=value`` overrides (dotted keys under the experiment, YAML values) and
``--variant`` swaps that reproduce what the package no longer does or never did, for comparison
(they exist only here, so the package keeps one behaviour). What the config expresses is set with
``--set``: output stride 8 or 16 (the records' ``arch=os8_nodil`` / ``arch=os16_nodil``) is
``--set model_args.output_stride=8``, flips only (``aug=flip``) ``--set augment.shift=0``, no
augmentation (``aug=none``) also ``--set augment.hflip=false``, ``small_input``
``--set model_args.small_input=true``. Every ``--eval-every`` steps it prints the mean training loss of the
window, top-1 on the first 2,000 training images (no augmentation, eval mode) and top-1 on the whole
test set. ``--json`` appends one line per run with the settings and the curve. Data: the prepared
Fashion-MNIST (``resources/prepared/fashion-mnist/data.safetensors``; run
``snakemake --cores 1 resources/prepared/fashion-mnist/data.safetensors`` first).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from gradprune import seeding
from gradprune.config import (
    Run,
    compose_config,
    deep_merge,
    only_experiments,
    run_settings,
    validate_config,
)
from gradprune.runner import configure_torch, new_state
from gradprune.tasks.vision import top1_top5
from gradprune.training.loop import train_steps

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = "mobilenet-fmnist"
PREPARED = ROOT / "resources" / "prepared" / "fashion-mnist" / "data.safetensors"


def _augment_batch_offset(pad_value):
    """The augmentation before issue 21: one (dx, dy) shift for the whole batch, padded with the
    mean intensity (as it was: 0 after standardisation) or black (``"background"``). It receives
    [0, 1] images, as ``VisionTask._augment`` does now (Fashion-MNIST: one channel)."""

    def augment(self, x, step):
        gen = seeding.generator(seeding.augment_seed(self.seed, step))
        flip = torch.rand(x.shape[0], generator=gen) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1).to(x.device), x.flip(-1), x)
        dx, dy = torch.randint(-2, 3, (2,), generator=gen).tolist()
        value = 0.0 if pad_value == "background" else float(self.mean.flatten()[0])
        padded = F.pad(x, (2, 2, 2, 2), value=value)
        h, w = x.shape[-2:]
        return padded[..., 2 + dy: 2 + dy + h, 2 + dx: 2 + dx + w]

    return augment


def _restride(rule):
    """Change the strides of the built MobileNet in place (no weight changes shape)."""

    def apply(model):
        convs = [model.features[0][0]] + [b.depthwise[0] for b in list(model.features)[1:]]
        current = 1
        for i, conv in enumerate(convs):
            stride = rule(i, current, conv.stride[0])
            conv.stride = (stride, stride)
            current *= stride

    return apply


def _tf_slim_init(model):
    """TF-slim's mobilenet_v1_arg_scope: truncated normal of stddev 0.09 for every kernel."""
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.trunc_normal_(m.weight, 0.0, 0.09, -0.18, 0.18)


MODEL_VARIANTS = {
    "init=tf_slim": _tf_slim_init,
    # the stem at full resolution (28 -> 28), the other strides as TF-slim's
    "arch=stem1": _restride(lambda i, cur, s: 1 if i == 0 else s),
}

VARIANTS = {
    "aug=batch_offset_pad_mean": ("_augment", _augment_batch_offset("mean")),
    "aug=batch_offset_pad_background": ("_augment", _augment_batch_offset("background")),
}


def experiment_config(overrides: list[str]) -> dict:
    config = compose_config([], {}, [ROOT / "config.yaml"])
    exp_update: dict = {}
    for item in overrides:
        key, value = item.split("=", 1)
        node = exp_update
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value)
    config = only_experiments(config, [EXPERIMENT])
    config["experiments"][EXPERIMENT] = deep_merge(config["experiments"][EXPERIMENT], exp_update)
    return validate_config(config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=700)
    parser.add_argument("--eval-every", type=int, default=175)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--variant", action="append", default=[],
                        choices=sorted(VARIANTS) + sorted(MODEL_VARIANTS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--label", default="")
    args = parser.parse_args()

    config = experiment_config(args.set)
    exp = config["experiments"][EXPERIMENT]
    # the whole schedule of a run of --steps steps (cosine to the end of the probe)
    exp["train"]["total_steps"] = args.steps
    exp["train"]["checkpoint_every"] = 10**9
    exp["train"]["eval_every"] = 10**9
    exp["train"]["log_every"] = args.eval_every
    run = Run(EXPERIMENT, exp["model"], repr(args.width), "0.0", args.seed, "small-dense")
    settings = run_settings(config, run)
    configure_torch(args.threads, settings["deterministic"])
    state = new_state(settings, run, {"prepared": PREPARED}, with_pruner=False)
    task = state.task
    for name in args.variant:
        if name in MODEL_VARIANTS:
            MODEL_VARIANTS[name](state.model)
            continue
        attr, fn = VARIANTS[name]
        setattr(task, attr, fn.__get__(task))
    train_x, train_y = task.train_images[:2000], task.train_labels[:2000]

    def train_batches():
        for s in range(0, 2000, 500):
            yield task._normalise(train_x[s: s + 500]), train_y[s: s + 500]

    print(f"{EXPERIMENT} width {args.width} seed {args.seed} steps {args.steps} "
          f"set {args.set} variants {args.variant}", flush=True)
    curve = []
    t0 = time.perf_counter()
    while state.step < args.steps:
        end = min(args.steps, state.step + args.eval_every)
        train_steps(state, settings["experiment"]["train"], end, desc="probe")
        loss = state.logs.train[-1]["loss"]
        train_top1 = top1_top5(state.model, train_batches(), task.device)["top1"]
        test_top1 = task.evaluate(state.model, split="test")["top1"]
        row = {"step": state.step, "loss": round(loss, 4), "train_top1": round(train_top1, 2),
               "test_top1": round(test_top1, 2), "elapsed_s": round(time.perf_counter() - t0, 1)}
        curve.append(row)
        print(json.dumps(row), flush=True)
    # Batch-norm statistics: the test accuracy with the running averages (above) against the same
    # weights with statistics re-estimated over 100 unaugmented training batches (precise BN).
    precise = copy.deepcopy(state.model)
    for m in precise.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average
    precise.train()
    with torch.no_grad():
        for s in range(100):
            rows = slice(s * 64, (s + 1) * 64)
            precise(task._normalise(task.train_images[rows]))
    precise_bn = task.evaluate(precise, split="test")["top1"]
    print(json.dumps({"precise_bn_test_top1": round(precise_bn, 2)}), flush=True)
    if args.json:
        with open(args.json, "a") as fh:
            fh.write(json.dumps({"label": args.label, "width": args.width, "seed": args.seed,
                                 "steps": args.steps, "set": args.set, "variant": args.variant,
                                 "curve": curve, "precise_bn_test_top1": precise_bn}) + "\n")


if __name__ == "__main__":
    main()
