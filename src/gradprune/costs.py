"""What a preset costs before it is launched (``gradprune plan``): per job and per paper table,
the training steps, examples (images, tokens or sentence pairs), FLOPs per step, throughput on a
GPU kind and GPU-hours; jobs whose estimated time exceeds their ``resources.runtime`` are flagged.

FLOPs per step come from :class:`torch.utils.flop_counter.FlopCounterMode` on the real model
(forward and backward of the training loss), built on the meta device with two examples and
scaled to the batch: every model's FLOPs are linear in the batch. One correction: torch's counter
ignores ``groups`` in the backward of a convolution (it counts a depthwise convolution's input
and weight gradients as dense ones, 9x MobileNet's forward instead of 2x), so
:func:`count_flops` counts each gradient a convolution computes at its forward's FLOPs, which is
exact for any ``groups``. GNMT's FLOPs depend on sentence length: they are counted at ``length``
pieces per side (attention grows with the square of it).

Throughputs come from ``throughputs.yaml`` beside this module (each figure with its source) and
from ``benchmarks/results/device_<kind>.json`` (``benchmarks/device_check.py``), which takes
precedence. Only training steps are counted; the periodic curve evaluations, the final test
scoring and GNMT's beam search are not (each under 1% of a vision or LM job's steps).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import torch
import torch.nn.functional as F
import yaml
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

from gradprune.config import (
    experiment_for_size,
    fmt_num,
    plan_runs,
    pretrain_home,
    size_value,
    twin_run,
)

THROUGHPUTS = Path(__file__).with_name("throughputs.yaml")
DEVICE_RESULTS = Path("benchmarks/results")
#: pieces per side of a WMT16 sentence pair for GNMT's FLOPs (choice: the mean of TF NMT's
#: newstest BPE data is in the mid-20s; `--length` changes it)
DEFAULT_LENGTH = 25
#: inputs of the small datasets (channels, side); ImageNet's side is the model's (299 / 224)
_IMAGE = {"fashion-mnist": (1, 28), "cifar-10": (3, 32)}
_CLASSES = {"fashion-mnist": 10, "cifar-10": 10, "imagenet": 1000}
_LM_VOCAB = {"ptb": 10_000, "wikitext-2": 33_278}


def _conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation,
                         transposed, _output_padding, _groups, output_mask, out_shape=None) -> int:
    # the input gradient and the weight gradient each take the forward's multiply-adds
    forward = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def count_flops(fn) -> int:
    """FLOPs of ``fn()`` (matmuls and convolutions, 2 per multiply-add), with the grouped
    convolution backward counted exactly."""
    mapping = {torch.ops.aten.convolution_backward: _conv_backward_flops}
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        fn()
    return counter.get_total_flops()


@dataclass(frozen=True)
class StepCost:
    flops: int  # per optimizer step (forward + backward of the whole batch)
    examples: int  # per step
    unit: str  # images | tokens | sentence pairs


def _vision_loss(exp: dict, size) -> callable:
    from gradprune.models import build_model
    from gradprune.tasks.imagenet import image_size

    args = dict(exp["model_args"])
    classes = _CLASSES[exp["dataset"]]
    if exp["dataset"] == "imagenet":
        channels, side = 3, image_size(exp["model"])
    else:
        channels, side = _IMAGE[exp["dataset"]]
    if exp["model"] == "inception_v3":
        model = build_model("inception_v3", num_classes=classes, **args)
    else:
        model = build_model(exp["model"], width=float(size), num_classes=classes,
                            in_channels=channels, **args)
    x, y = torch.randn(2, channels, side, side), torch.randint(classes, (2,))

    def loss():
        out = model(x)
        if isinstance(out, tuple):
            return F.cross_entropy(out[0], y) + 0.4 * F.cross_entropy(out[1], y)
        return F.cross_entropy(out, y)

    return model, loss


def step_cost(exp: dict, size, length: int = DEFAULT_LENGTH) -> StepCost:
    """FLOPs and examples of one training step of ``exp`` (validated, recipe of ``size``
    applied) at model size ``size``."""
    return _step_cost(json.dumps(exp, sort_keys=True, default=str), str(size), length)


@functools.cache
def _step_cost(exp_json: str, size: str, length: int) -> StepCost:
    exp = json.loads(exp_json)
    batch = exp["train"]["batch_size"]
    with torch.device("meta"):
        if exp["family"] == "vision":
            model, loss = _vision_loss(exp, size_value(size))
            per, unit, count = 2, "images", batch
        elif exp["family"] == "lm":
            from gradprune.models.lstm_lm import lstm_lm
            from gradprune.tasks.lm import model_hparams

            vocab, bptt = _LM_VOCAB[exp["dataset"]], exp["train"]["bptt"]
            model = lstm_lm(vocab_size=vocab, **model_hparams(size_value(size), exp["model_args"]))
            x, y = torch.randint(vocab, (bptt, 2)), torch.randint(vocab, (bptt, 2))

            def loss():
                logits, _ = model(x)
                return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

            per, unit, count = 2 * bptt, "tokens", batch * bptt
        elif exp["family"] == "translation":
            from gradprune.models import build_model

            vocab = exp["translation"]["vocab_size"]
            model = build_model(exp["model"], size=int(size_value(size)), vocab_size=vocab,
                                pad_id=0, **dict(exp["model_args"]))
            src = torch.randint(4, vocab, (2, length))
            tgt_in, tgt_out = (torch.randint(4, vocab, (2, length + 1)) for _ in range(2))
            lengths = torch.full((2,), length, dtype=torch.long, device="cpu")

            def loss():
                return model.loss(src, lengths, tgt_in, tgt_out)

            per, unit, count = 2, "sentence pairs", batch
            unpacked = _unpacked_encoder()
        else:
            raise ValueError(f"unknown family {exp['family']!r}")
        model.train()
        with unpacked if exp["family"] == "translation" else contextlib.nullcontext():
            flops = count_flops(lambda: loss().backward())
    return StepCost(flops=flops * count // per, examples=count, unit=unit)


def _unpacked_encoder():
    """GNMT's encoder packs its padded batch, which meta tensors cannot (the lengths are data).
    Every counted sentence has the full length, so packing is the identity: the LSTMs run the
    same matmuls on the plain tensor."""
    from gradprune.models import gnmt

    stack = contextlib.ExitStack()
    stack.enter_context(mock.patch.object(gnmt, "pack_padded_sequence", lambda x, *a, **k: x))
    stack.enter_context(mock.patch.object(gnmt, "pad_packed_sequence", lambda x, **k: (x, None)))
    return stack


# -- throughputs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Throughput:
    examples_per_s: float
    source: str  # "measured: ..." or "estimate: ..."


def load_throughputs(path: Path = THROUGHPUTS, device_results: Path | None = DEVICE_RESULTS) -> dict:
    """The committed table, with the figures of ``device_results/device_*.json`` first."""
    table = yaml.safe_load(Path(path).read_text())
    measured = []
    if device_results is not None and Path(device_results).is_dir():
        for file in sorted(Path(device_results).glob("device_*.json")):
            result = json.loads(file.read_text())
            if result.get("dry_run"):
                continue
            for step in result["steps"]:
                measured.append({**step, "gpu": result["kind"],
                                 "source": f"{file} ({result['device']}, torch {result['torch']}, "
                                           f"{result['date']})"})
    table["measured"] = measured + list(table.get("measured") or [])
    return table


def _same_size(a, b) -> bool:
    return fmt_num(size_value(str(a))) == fmt_num(size_value(str(b)))


def throughput(table: dict, gpu: str, model: str, size, precision: str,
               flops_per_example: float, flops_of=None) -> Throughput:
    """Examples per second of one GPU of kind ``gpu``: a measured figure, or an estimate from the
    utilisation of a measured model (``flops_of(model, size)``: its FLOPs per example) or the
    table's stated utilisation."""
    if gpu not in table["gpus"]:
        raise ValueError(f"unknown GPU kind {gpu!r}; the throughput table has {', '.join(table['gpus'])}")
    if precision not in table["gpus"][gpu]["peak_tflops"]:
        raise ValueError(f"unknown precision {precision!r}; known: fp32, tf32, bf16")
    measured = table["measured"]
    for m in measured:
        if m["gpu"] == gpu and m["model"] == model and _same_size(m["size"], size) \
                and m["precision"] == precision:
            return Throughput(m["examples_per_s"], f"measured: {m['source']}")
    if precision == "bf16":
        fp32 = throughput(table, gpu, model, size, "fp32", flops_per_example, flops_of)
        return Throughput(fp32.examples_per_s, f"{fp32.source}; no bf16 measurement: fp32's throughput")
    larger = [m for m in measured if m["model"] == model and m["precision"] == precision
              and float(size_value(str(m["size"]))) > float(size_value(str(size)))
              and (m["gpu"] == gpu or flops_of is not None)]
    if larger:  # a smaller model is not slower per example: the larger measured size's rate
        m = min(larger, key=lambda m: float(size_value(str(m["size"]))))
        ref = throughput(table, gpu, model, m["size"], precision,
                         flops_of(model, m["size"]) if flops_of else flops_per_example, flops_of)
        return Throughput(ref.examples_per_s,
                          f"estimate: {model} {fmt_num(size_value(str(m['size'])))}'s examples/s "
                          f"(a smaller model, conservative; {ref.source})")
    peak = table["gpus"][gpu]["peak_tflops"][precision] * 1e12
    rule = table["estimates"].get(model, {})
    like = rule.get("like", model)
    candidates = [m for m in measured if m["model"] == model and m["precision"] == precision
                  and _same_size(m["size"], size)]
    candidates += [m for m in measured if m["model"] == like and m["precision"] == precision]
    for m in candidates:
        if flops_of is None:
            break
        other_peak = table["gpus"][m["gpu"]]["peak_tflops"][precision] * 1e12
        util = m["examples_per_s"] * flops_of(m["model"], m["size"]) / other_peak
        what = f"{m['model']} {fmt_num(size_value(str(m['size'])))} on {m['gpu']}"
        return Throughput(util * peak / flops_per_example,
                          f"estimate: FLOPs at the utilisation of {what} ({util:.1%} of "
                          f"{precision} peak; {m['source']})")
    if "utilisation" not in rule:
        raise ValueError(f"no throughput for {model} on {gpu} and no utilisation to estimate it "
                         f"from: add one to {THROUGHPUTS}")
    util = rule["utilisation"]
    return Throughput(util * peak / flops_per_example,
                      f"estimate: FLOPs at {util:.0%} of the {gpu} {precision} peak ({rule['why']})")


# -- the jobs of a preset ----------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    experiment: str
    step: str  # pretrain | train
    run: str  # the run folder (pretrain: the dense run whose t0 it trains)
    model: str
    size: str
    steps: int
    gpus: int  # GPUs of the job (per node x nodes; 0 = CPU)
    runtime_min: int


def training_jobs(config: dict) -> list[Job]:
    """Every pretrain and train job the workflow plans for ``config`` that trains, with its
    steps: a run that copies its twin's training and a pretrain folder shared with an earlier
    experiment (gradprune.config.twins) cost nothing here."""
    jobs, pretrained = [], set()
    for run in plan_runs(config):
        if twin_run(config, run) is not None:
            continue
        exp = experiment_for_size(config["experiments"][run.experiment], run.size)
        res, total = exp["resources"], exp["train"]["total_steps"]
        gpus = res["gpu"] * res["nodes"]
        continues = run.continues_from_dense and exp["pruning"]["from_dense_checkpoint"]
        t0 = exp["pruning"]["begin_step"] if continues else 0
        home = pretrain_home(config, run) if continues else None
        if continues and home not in pretrained:
            pretrained.add(home)
            jobs.append(Job(run.experiment, "pretrain", home, run.model, run.size, t0,
                            gpus, res["runtime"]))
        jobs.append(Job(run.experiment, "train", run.dir, run.model, run.size, total - t0, gpus,
                        res["runtime"]))
    return jobs


def paper_tables() -> dict[str, str]:
    """experiment -> "Table N" of the paper (from the paper's reference numbers)."""
    from gradprune.reporting.reference import reference_path

    with open(reference_path(), newline="") as fh:
        return {row["experiment"]: f"Table {row['table']}" for row in csv.DictReader(fh)}


def run_precision(config: dict) -> str:
    return "bf16" if (config.get("precision") or {}).get("autocast") == "bf16" else "fp32"


@dataclass(frozen=True)
class JobCost:
    job: Job
    table: str
    cost: StepCost
    rate: Throughput
    hours: float  # wall-clock, on the job's GPUs (throughput assumed linear in GPUs)
    gpu_hours: float

    @property
    def over_runtime(self) -> bool:
        return self.hours * 60 > self.job.runtime_min


def plan_costs(config: dict, gpu: str, precision: str | None = None, length: int = DEFAULT_LENGTH,
               table: dict | None = None) -> list[JobCost]:
    table = table if table is not None else load_throughputs()
    precision = precision or run_precision(config)
    tables = paper_tables()
    out = []
    for job in training_jobs(config):
        exp = experiment_for_size(config["experiments"][job.experiment], job.size)
        cost = step_cost(exp, job.size, length)

        rate = throughput(table, gpu, job.model, job.size, precision, cost.flops / cost.examples,
                          lambda model, size: _reference_flops(model, size, config, length))
        if exp["dataset"] == "imagenet":
            rate = loader_bound(rate, table, exp, max(1, job.gpus))
        n = max(1, job.gpus)
        seconds = job.steps * cost.examples / (rate.examples_per_s * n)
        out.append(JobCost(job, tables.get(job.experiment, job.experiment), cost, rate,
                           seconds / 3600, seconds / 3600 * n))
    return out


def loader_bound(rate: Throughput, table: dict, exp: dict, processes: int) -> Throughput:
    """An ImageNet job's examples/s per GPU: no more than its loader workers decode (the job's
    threads per node are shared by its processes)."""
    from gradprune.tasks.imagenet import image_size, loader_workers

    loader = table["loader"]
    per_worker = loader["images_per_s_per_worker"][image_size(exp["model"])]
    res = exp["resources"]
    workers = loader_workers(res["threads"] * res["nodes"] // processes)
    feed = workers * per_worker
    if feed >= rate.examples_per_s:
        return rate
    return Throughput(feed, f"loader-bound: {workers} workers x {per_worker} images/s "
                            f"(resources.threads {res['threads']}; {loader['source']}); the step alone: "
                            f"{rate.examples_per_s:,.0f}/s ({rate.source})")


def _reference_flops(model: str, size, config: dict, length: int) -> float:
    """FLOPs per example of ``model`` at ``size`` in the first experiment of ``config`` that
    trains it (for a utilisation measured on another model)."""
    for exp in config["experiments"].values():
        if exp["model"] == model:
            case = experiment_for_size(exp, fmt_num(size_value(str(size))))
            c = step_cost(case, fmt_num(size_value(str(size))), length)
            return c.flops / c.examples
    raise ValueError(f"the preset trains no {model}: cannot use its measured utilisation")


# -- printing ----------------------------------------------------------------------------------


def _si(x: float) -> str:
    for factor, suffix in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= factor:
            return f"{x / factor:.3g}{suffix}"
    return f"{x:.3g}"


def totals(costs: list[JobCost]) -> dict[str, dict]:
    """Per table: jobs, GPU-hours, FLOPs, and the jobs over their runtime."""
    out: dict[str, dict] = {}
    for c in costs:
        t = out.setdefault(c.table, {"jobs": 0, "gpu_hours": 0.0, "flops": 0.0, "over_runtime": 0})
        t["jobs"] += 1
        t["gpu_hours"] += c.gpu_hours
        t["flops"] += c.job.steps * c.cost.flops
        t["over_runtime"] += c.over_runtime
    return out


def format_plan(costs: list[JobCost], gpu: str, precision: str) -> str:
    lines = [f"# Cost plan on {gpu}, {precision}: training steps only (throughput linear in a job's GPUs)", "",
             ("| table | job | run | steps | examples | FLOPs/step | examples/s per GPU | GPUs | hours | "
              "GPU-hours | runtime (h) | over runtime |"),
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    sources: dict[str, int] = {}
    for c in costs:
        ref = sources.setdefault(c.rate.source, len(sources) + 1)
        lines.append(
            f"| {c.table} | {c.job.step} | {c.job.run} | {c.job.steps:,} | "
            f"{_si(c.job.steps * c.cost.examples)} {c.cost.unit} | {_si(c.cost.flops)} | "
            f"{c.rate.examples_per_s:,.0f} [{ref}] | {max(1, c.job.gpus)} | {c.hours:,.1f} | "
            f"{c.gpu_hours:,.1f} | {c.job.runtime_min / 60:,.1f} | "
            f"{'**yes**' if c.over_runtime else 'no'} |")
    lines += ["", "| table | jobs | FLOPs | GPU-hours | jobs over their runtime |",
              "| --- | ---: | ---: | ---: | ---: |"]
    tot = totals(costs)
    for name, t in sorted(tot.items()):
        lines.append(f"| {name} | {t['jobs']} | {_si(t['flops'])} | {t['gpu_hours']:,.0f} | "
                     f"{t['over_runtime']} |")
    lines.append(f"| all | {sum(t['jobs'] for t in tot.values())} | "
                 f"{_si(sum(t['flops'] for t in tot.values()))} | "
                 f"{sum(t['gpu_hours'] for t in tot.values()):,.0f} | "
                 f"{sum(t['over_runtime'] for t in tot.values())} |")
    lines += ["", "Throughput sources:"] + [f"[{i}] {s}" for s, i in sources.items()]
    over = [c for c in costs if c.over_runtime]
    if over:
        lines += ["", (f"{len(over)} job(s) would run longer than their resources.runtime: raise "
                       "runtime (minutes), add GPUs (resources.gpu / nodes), or let SLURM requeue "
                       "them from their checkpoints (profiles/slurm: retries).")]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``gradprune plan``."""
    parser.add_argument("--configfile", nargs="+", default=[], metavar="FILE",
                        help="a preset and overlays, as given to snakemake (default: config.yaml)")
    parser.add_argument("--config", nargs="+", default=[], metavar="KEY=VALUE",
                        help="overrides, as snakemake's --config (values read as YAML)")
    parser.add_argument("--gpu", default="H100", help="GPU kind of the throughput table (H100, H200, A100)")
    parser.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default=None,
                        help="default: the preset's (precision.autocast bf16, else fp32)")
    parser.add_argument("--length", type=int, default=DEFAULT_LENGTH,
                        help="pieces per side of a translation sentence pair for GNMT's FLOPs")


def run(args: argparse.Namespace) -> str:
    """``gradprune plan``: the composed, validated config's cost plan as Markdown."""
    from gradprune.config import compose_config, validate_config

    overrides = dict(item.split("=", 1) for item in args.config)
    config = validate_config(compose_config(args.configfile, overrides, ["config.yaml"]))
    precision = args.precision or run_precision(config)
    return format_plan(plan_costs(config, args.gpu, precision, args.length), args.gpu, precision)
