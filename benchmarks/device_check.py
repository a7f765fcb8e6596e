"""The device check of issue 22: what the paper preset's models and input pipeline do on one GPU,
written to ``benchmarks/results/device_<kind>.json``, which ``gradprune plan`` reads.

    python benchmarks/device_check.py                                  # about 5-7 minutes on an H100
    python benchmarks/device_check.py --ptb-raw resources/data/ptb --budget-s 840   # + PTB medium
    python benchmarks/device_check.py --dry-run --out /tmp/device.json  # tiny, on the CPU, seconds

1. A training step (forward, backward, the preset's gradient clip and optimizer) of every paper
   model at the preset's batch: InceptionV3 (128 x 299 px), MobileNetV1 1.0 (128 x 224 px), the
   Zaremba LSTMs of 1500, 650 and 200 units (batch 20 x BPTT 35 / 35 / 20), GNMT 1024 x 4 (128
   pairs of ``--length`` pieces), each in fp32 (PyTorch's defaults: cuDNN convolutions in TF32,
   matmuls in float32), tf32 (TF32 matmuls too) and bf16 (autocast): examples/s and peak memory.
2. The ImageNet loader (:class:`gradprune.tasks.imagenet.ImageNetTask`: workers from the CPU
   count, uint8 batches finished on the device) over a synthetic folder of ImageNet-sized JPEGs:
   images/s delivered to the device at 224 and 299 px, and per worker.
3. If ``--ptb-raw`` names the PTB text files and the budget still allows it after 1-2: the
   paper preset's PTB medium dense run on its full recipe (39 epochs) through the workflow's own
   ``runner.train`` and ``runner.evaluate``; test perplexity against TF ``ptb_word_lm``'s 82.07 and
   the paper's 83.37.

Each measurement stops the script from starting another once ``--budget-s`` is spent (the
results so far are written); one that fails is recorded with its error. ``--dry-run`` runs every
part end to end on the CPU with tiny models (every model in fp32, every precision on MobileNet),
a tiny folder and a tiny corpus (tests run it), and marks its file ``dry_run`` so that the plan
ignores it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.fixtures
from tests.fixtures.imagenet_folder import make_imagenet_folder

from gradprune import runner
from gradprune.atomic import write_bytes
from gradprune.config import (
    experiment_for_size,
    read_config_file,
    resolve_run,
    run_settings,
    validate_config,
)
from gradprune.models import build_model
from gradprune.models.lstm_lm import lstm_lm
from gradprune.tasks.lm import model_hparams
from gradprune.training.optim import build_optimizer

PRECISIONS = ("fp32", "tf32", "bf16")
PAPER = Path(__file__).resolve().parents[1] / "presets" / "paper.yaml"
REFERENCE_PPL = {"tf_ptb_word_lm": 82.07, "paper": 83.37}


def kind_of(device_name: str) -> str:
    """The throughput table's GPU kind of a CUDA device name ("NVIDIA H100 80GB HBM3" -> H100)."""
    for kind in ("H200", "H100", "A100", "L40S", "L4", "V100"):
        if kind in device_name:
            return kind
    return device_name.replace(" ", "_")


@contextlib.contextmanager
def precision(name: str, device: torch.device):
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = name == "tf32"
    torch.backends.cudnn.allow_tf32 = True  # PyTorch's default in every case
    try:
        if name == "bf16":
            with torch.autocast(device.type, dtype=torch.bfloat16):
                yield
        else:
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def paper_config(dry_run: bool) -> dict:
    config = read_config_file(PAPER)
    if dry_run:  # PTB medium's recipe on an 8-unit LSTM for 4 steps (step 3)
        lm = config["experiments"]["lstm-ptb"]
        recipe = {**lm["recipes"][650], "train": {**lm["recipes"][650]["train"]}}
        recipe["train"].update(total_steps=4, eval_every=2, checkpoint_every=2, log_every=1,
                               bptt=5, lr_schedule={"decay_start": 2, "decay_every": 1})
        recipe["pruning"] = {"begin_step": 1, "frequency": 1, "n_updates": 1}
        lm["recipes"][8], lm["small_dense"] = recipe, [*lm["small_dense"], 8]
        lm["train"]["eval_curve_examples"] = 50
    return validate_config(config)


def cases(config: dict, dry_run: bool, length: int) -> list[dict]:
    """(label, model, size, builder, batch maker, loss, examples per step, unit, experiment)."""
    exps = config["experiments"]
    out = []
    for name, size, side in (("inceptionv3-imagenet", "1.0", 299), ("mobilenet-imagenet", "1.0", 224)):
        exp = experiment_for_size(exps[name], size)
        batch = exp["train"]["batch_size"]
        model, classes, width = exp["model"], 1000, 1.0
        if dry_run:
            batch, side, classes, width = 2, (75 if model == "inception_v3" else 32), 10, 0.25
        # the auxiliary head needs the 17x17 grid of a 299 px input: off in the dry run
        args = {**exp["model_args"], **({"aux_logits": False} if dry_run and model == "inception_v3" else {})}

        def build(model=model, classes=classes, width=width, args=args):
            if model == "inception_v3":
                return build_model(model, num_classes=classes, **args)
            return build_model(model, width=width, num_classes=classes, in_channels=3, **args)

        def make(batch=batch, side=side, classes=classes):
            return torch.randn(batch, 3, side, side), torch.randint(classes, (batch,))

        def loss(m, x, y, smoothing=exp["train"]["label_smoothing"]):
            out = m(x)
            if isinstance(out, tuple):
                return (F.cross_entropy(out[0], y, label_smoothing=smoothing)
                        + 0.4 * F.cross_entropy(out[1], y, label_smoothing=smoothing))
            return F.cross_entropy(out, y, label_smoothing=smoothing)

        out.append({"label": f"{model} {size}", "model": model, "size": size, "build": build,
                    "make": make, "loss": loss, "examples": batch, "unit": "images", "exp": exp})
    for size in ("1500", "650", "200"):
        exp = experiment_for_size(exps["lstm-ptb"], size)
        batch, bptt, vocab, hidden = exp["train"]["batch_size"], exp["train"]["bptt"], 10_000, int(size)
        if dry_run:
            batch, bptt, vocab, hidden = 2, 5, 50, 8

        def build(vocab=vocab, hidden=hidden, size=size, args=exp["model_args"]):
            return lstm_lm(vocab_size=vocab, **{**model_hparams(int(size), args), "hidden": hidden})

        def make(batch=batch, bptt=bptt, vocab=vocab):
            return torch.randint(vocab, (bptt, batch)), torch.randint(vocab, (bptt, batch))

        def loss(m, x, y):
            logits, _ = m(x)  # Zaremba's loss: summed over the window, averaged over the batch
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)) * x.shape[0]

        out.append({"label": f"lstm_lm {size}", "model": "lstm_lm", "size": size, "build": build,
                    "make": make, "loss": loss, "examples": batch * bptt, "unit": "tokens", "exp": exp})
    exp = experiment_for_size(exps["gnmt-wmt16-ende"], "1024")
    batch, vocab, units, n = exp["train"]["batch_size"], exp["translation"]["vocab_size"], 1024, length
    if dry_run:
        batch, vocab, units, n = 2, 50, 16, 5

    def build_gnmt(vocab=vocab, units=units, args=exp["model_args"]):
        return build_model("gnmt", size=units, vocab_size=vocab, pad_id=0, **args)

    def make_gnmt(batch=batch, vocab=vocab, n=n):
        return (torch.randint(4, vocab, (batch, n)), torch.full((batch,), n),
                torch.randint(4, vocab, (batch, n + 1)), torch.randint(4, vocab, (batch, n + 1)))

    def loss_gnmt(m, *batch):
        return m.loss(*batch, form="sum_per_sentence")

    out.append({"label": "gnmt 1024", "model": "gnmt", "size": "1024", "build": build_gnmt,
                "make": make_gnmt, "loss": loss_gnmt, "examples": batch, "unit": "sentence pairs",
                "exp": exp})
    return out


def time_step(case: dict, prec: str, device: torch.device, steps: int, min_time_s: float,
              warmup: int = 2) -> dict:
    if "model_instance" not in case:  # one model per case, its optimizer new per precision
        torch.manual_seed(0)
        case["model_instance"] = case["build"]().to(device).train()
    model = case["model_instance"]
    optimizer = build_optimizer(model, case["exp"]["train"]["optimizer"])
    clip = case["exp"]["train"]["grad_clip_norm"]
    batch = [t.to(device) for t in case["make"]()]
    if case["model"] == "gnmt":  # source lengths stay on the CPU, as the translation task's
        batch[1] = batch[1].cpu()

    def step():
        optimizer.zero_grad(set_to_none=True)
        with precision(prec, device):
            loss = case["loss"](model, *batch)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):  # cuDNN plans, the allocator
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    n, t0 = 0, time.perf_counter()
    while n < steps or time.perf_counter() - t0 < min_time_s:
        step()
        n += 1
        if n >= 200:
            break
    sync()
    seconds = (time.perf_counter() - t0) / n
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {"model": case["model"], "size": case["size"], "precision": prec,
            "batch": case["examples"], "unit": case["unit"], "steps": n,
            "ms_per_step": round(seconds * 1e3, 3), "examples_per_s": round(case["examples"] / seconds, 1),
            "peak_memory_gb": round(peak, 2) if peak is not None else None}


def loader_rate(config: dict, device: torch.device, dry_run: bool, folder: Path) -> list[dict]:
    from gradprune.data.imagenet import write_index
    from gradprune.tasks.imagenet import ImageNetTask

    classes, per_class = (2, 4) if dry_run else (4, 96)
    make_imagenet_folder(folder / "in", classes=classes, train_per_class=per_class, val_per_class=1)
    write_index(folder / "in", folder / "index.json", expected_classes=classes, check_sizes=False)
    threads = 2 if dry_run else (os.cpu_count() or 2)
    out = []
    for name in ("mobilenet-imagenet", "inceptionv3-imagenet"):
        exp = experiment_for_size(config["experiments"][name], "1.0")
        batch = 4 if dry_run else exp["train"]["batch_size"]
        exp = {**exp, "train": {**exp["train"], "batch_size": batch}}
        torch.set_num_threads(threads)  # the job's threads: loader workers = threads - 1
        task = ImageNetTask(exp, {"prepared": folder / "index.json"}, device, seed=0)
        task.batch(0)  # starts the workers
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        steps = 2 if dry_run else 8
        sync()
        t0 = time.perf_counter()
        for s in range(1, steps + 1):
            x, _ = task.batch(s)
        sync()
        rate = steps * batch / (time.perf_counter() - t0)
        out.append({"model": exp["model"], "side": task.size, "batch": batch, "workers": task.workers,
                    "images_per_s": round(rate, 1),
                    "images_per_s_per_worker": round(rate / max(1, task.workers), 1),
                    "images": classes * per_class, "shape": list(x.shape)})
        task._iterator = None  # let the workers go
    return out


def ptb_medium(config: dict, raw: Path, device: torch.device, work: Path, threads: int,
               size: str = "650") -> dict:
    from gradprune.data.lm import prepare_lm_corpus

    prepared = work / "ptb" / "data.safetensors"
    prepare_lm_corpus("ptb", raw, prepared)
    run = resolve_run(config, "lstm-ptb", "lstm_lm", size, "0.0", 0)
    settings = run_settings(config, run)
    settings["device"] = device.type
    runner.configure_torch(threads, settings["deterministic"])
    out = work / "run"
    t0 = time.perf_counter()
    runner.train(settings, run, {"prepared": prepared}, out, None)
    result = runner.evaluate(settings, run, {"prepared": prepared}, out / "model.safetensors",
                             out / "train_summary.json", out / "metrics.json")
    return {"run": run.dir, "steps": result["train"]["steps"], "metrics": result["metrics"],
            "wall_s": round(time.perf_counter() - t0, 1), "references": REFERENCE_PPL}


def _tiny_ptb(folder: Path) -> Path:
    words = [f"w{i}" for i in range(30)]
    g = torch.Generator().manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    for split, lines in (("train", 80), ("valid", 12), ("test", 12)):
        text = "\n".join(" ".join(words[int(i)] for i in torch.randint(30, (12,), generator=g))
                         for _ in range(lines))
        (folder / f"ptb.{split}.txt").write_text(text + "\n")
    return folder


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="tiny models on the CPU (seconds)")
    parser.add_argument("--out", default=None, help="default: benchmarks/results/device_<kind>.json")
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="start no measurement after this many seconds (default 7 minutes)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement (at least)")
    parser.add_argument("--min-time-s", type=float, default=2.0, help="timed seconds per measurement (at least)")
    parser.add_argument("--length", type=int, default=25, help="GNMT pieces per side")
    parser.add_argument("--ptb-raw", default=None, help="folder with ptb.{train,valid,test}.txt: run PTB medium")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.dry_run:
        device, name = torch.device("cpu"), platform.processor() or "cpu"
        args.steps, args.min_time_s = 1, 0.0
    else:
        if not torch.cuda.is_available():
            parser.error("no CUDA device: run on a GPU machine, or use --dry-run")
        device, name = torch.device("cuda"), torch.cuda.get_device_name(0)
    kind = "dry-run" if args.dry_run else kind_of(name)
    out_path = Path(args.out or Path(__file__).resolve().parent / "results" / f"device_{kind}.json")
    result = {"device": name, "kind": kind, "dry_run": args.dry_run, "torch": torch.__version__,
              "cuda": torch.version.cuda, "date": datetime.now(UTC).strftime("%Y-%m-%d"),
              "budget_s": args.budget_s, "steps": [], "errors": [], "loader": [], "ptb_medium": None}

    def left() -> float:
        return args.budget_s - (time.perf_counter() - started)

    def save() -> None:
        result["elapsed_s"] = round(time.perf_counter() - started, 1)
        write_bytes(out_path, (json.dumps(result, indent=1) + "\n").encode())

    config = paper_config(args.dry_run)
    for case in cases(config, args.dry_run, args.length):
        for prec in PRECISIONS:
            if args.dry_run and prec != "fp32" and case["model"] != "mobilenet_v1":
                continue  # the dry run takes every precision's path once, on the quickest model
            if left() <= 0:
                result["errors"].append(f"{case['label']} {prec}: not run, budget spent")
                continue
            try:
                entry = time_step(case, prec, device, args.steps, args.min_time_s,
                                  warmup=1 if args.dry_run else 2)
                result["steps"].append(entry)
                print(f"{case['label']:>18} {prec}: {entry['examples_per_s']:,.0f} {case['unit']}/s, "
                      f"{entry['ms_per_step']} ms, peak {entry['peak_memory_gb']} GB", flush=True)
            except (RuntimeError, NotImplementedError) as err:  # e.g. no bf16 LSTM on this CPU
                result["errors"].append(f"{case['label']} {prec}: {str(err).splitlines()[0]}")
                print(result["errors"][-1], flush=True)
            save()
        case.pop("model_instance", None)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    with tempfile.TemporaryDirectory() as tmp:
        if left() > 0:
            try:
                result["loader"] = loader_rate(config, device, args.dry_run, Path(tmp))
                print(json.dumps(result["loader"]), flush=True)
            except (RuntimeError, OSError) as err:
                result["errors"].append(f"loader: {err}")
            save()
        raw = _tiny_ptb(Path(tmp) / "ptb_raw") if args.dry_run and not args.ptb_raw else args.ptb_raw
        if raw is None:
            result["ptb_medium"] = {"skipped": "no --ptb-raw given"}
        else:
            medium = next((s for s in result["steps"] if s["model"] == "lstm_lm" and s["size"] == "650"
                           and s["precision"] == "fp32"), None)
            total = experiment_for_size(config["experiments"]["lstm-ptb"], "650")["train"]["total_steps"]
            # the PTB medium step measured above, with 20% for evaluation and logging
            need = (medium["ms_per_step"] / 1e3 * total * 1.2 + 60) if medium else math.inf
            if args.dry_run or need <= left():
                result["ptb_medium"] = ptb_medium(
                    config, Path(raw), device, Path(tmp), 2 if args.dry_run else (os.cpu_count() or 2),
                    "8" if args.dry_run else "650")
                print(json.dumps(result["ptb_medium"]), flush=True)
            else:
                result["ptb_medium"] = {"skipped": f"needs about {need:.0f} s, {left():.0f} s left"}
    save()
    print(f"wrote {out_path}")
    return result


if __name__ == "__main__":
    main()
