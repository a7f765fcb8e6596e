"""CPU inference latency of one run, dense and sparse execution, on one thread.

Measurement (built for a shared, noisy machine): every (mode, batch) call is warmed up, then timed
over ``inner`` back-to-back calls so that one sample lasts at least ``min_time_s`` (timer resolution
and call overhead amortised). ``rounds`` rounds follow; each round times every call once, in a
freshly shuffled order (interleaving: a slow phase of the machine hits all calls alike, not one).
Garbage collection is off while timing (as ``timeit``). Reported per call: the median time of one
inference call over the rounds and the spread (quartiles, min, max). The sparse speedup is the
median over rounds of the per-round ratio dense / sparse at the same batch: the two were timed
within the same round, so the ratio cancels most of the machine's drift.

``latency.json``::

    {"experiment", "model", "size", "role", "target_sparsity", "seed", "nnz",
     "threads": 1, "torch": "2.x", "call": "...", "rounds": 15, "min_time_s": 0.01,
     "load_average": {"before": [...], "after": [...]},
     "timings": [{"mode": "dense", "batch": 1, "inner": 40, "median_s", "q25_s", "q75_s",
                  "min_s", "max_s", "samples_s": [...]}, ...],
     "speedup": [{"batch": 1, "median", "q25", "q75"}, ...],      # dense over CSR ("sparse")
     # block-pruned experiments only: the bsr mode's timings above, and
     "speedup_bsr": [...], "blocks": {"<tensor>": [h, w]},
     "sweep": {"sparsities": [...], "speedup": [{"mode", "sparsity", "batch", "median", ...}]}}

``sweep`` (LM large-sparse runs): the run's own trained weights re-pruned one-shot by the
experiment's own rule (single weights or its blocks) to each of ``footprint.sweep_sparsities``.
A trained model holds its own sparsity's zeros, so its pruned positions are first refilled with
tiny seeded values (below a thousandth of the smallest kept magnitude): at a sweep sparsity above
the run's own, these go first and the mask is the trained one grown by magnitude; below it, the
trained mask stays and the extra kept weights (or tiles) fall at random among the pruned ones.
Each point is then
timed sparse (CSR, and BSR for block runs) against the dense step in the same interleaved
rounds: where sparse execution of
this structure starts to pay, on this model's shapes, at a finer grid than the trained sparsities
(the speedup depends on the pattern of the mask, not on how well the weights were trained).
"""

from __future__ import annotations

import gc
import json
import math
import os
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch

from gradprune.footprint.execution import (
    BSR_MODE,
    MODES,
    GNMTStep,
    LMStep,
    sparse_vision_model,
)

CALLS = {
    "vision": "the model on one batch of images",
    "lm": "one step of the recurrent loop (embedding, every LSTM layer, softmax layer)",
    "translation": "the encoder over one batch of sources of source_length tokens plus one "
                   "decoder step",
}


def time_calls(calls: Mapping[str, Callable[[], object]], rounds: int, min_time_s: float,
               seed: int = 0) -> dict[str, dict]:
    """Per call: ``inner`` and ``samples`` (seconds per call, one per round); see the module doc."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    inner = {}
    for key, fn in calls.items():
        fn()  # warm-up: allocations, lazy initialisation, caches
        t0 = time.perf_counter()
        fn()
        once = time.perf_counter() - t0
        inner[key] = max(1, math.ceil(min_time_s / max(once, 1e-7)))
    samples: dict[str, list[float]] = {k: [] for k in calls}
    order = list(calls)
    rng = random.Random(seed)
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for _ in range(rounds):
            rng.shuffle(order)
            for key in order:
                fn, n = calls[key], inner[key]
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                samples[key].append((time.perf_counter() - t0) / n)
    finally:
        if was_enabled:
            gc.enable()
    return {k: {"inner": inner[k], "samples": samples[k]} for k in calls}


def summary(samples: list[float]) -> dict:
    a = np.asarray(samples, dtype=float)
    q25, med, q75 = np.percentile(a, [25, 50, 75])
    return {"median": float(med), "q25": float(q25), "q75": float(q75),
            "min": float(a.min()), "max": float(a.max())}


def inference_calls(family: str, task, model: torch.nn.Module, encoded: list[str],
                    batches: list[int], source_length: int, seed: int = 0,
                    blocks: dict | None = None
                    ) -> dict[tuple[str, int], Callable[[], object]]:
    """(mode, batch) -> a zero-argument call running one inference (see ``execution``);
    ``blocks``: tensor -> block shape; with a square block other than [1, 1] the recurrent
    families also run the ``bsr`` mode."""
    gen = torch.Generator().manual_seed(seed)
    model = model.cpu().eval()
    calls = {}
    for mode in modes_for(family, blocks):
        if family == "vision":
            net = model if mode == "dense" else sparse_vision_model(model, encoded)
            shape = vision_input_shape(task)
            for b in batches:
                x = torch.randn(b, *shape, generator=gen)
                calls[(mode, b)] = _no_grad(lambda net=net, x=x: net(x))
        elif family == "lm":
            step = LMStep(model, encoded, mode, blocks)
            for b in batches:
                tokens = torch.randint(0, model.vocab_size, (b,), generator=gen)
                shape = (model.num_layers, b, model.hidden_size)
                hidden = (torch.randn(shape, generator=gen), torch.randn(shape, generator=gen))
                calls[(mode, b)] = _no_grad(lambda s=step, t=tokens, h=hidden: s(t, h))
        elif family == "translation":
            from gradprune.data.translation import BOS

            step = GNMTStep(model, encoded, mode, BOS, blocks)
            for b in batches:
                src = torch.randint(BOS + 1, model.vocab_size, (b, source_length), generator=gen)
                calls[(mode, b)] = _no_grad(lambda s=step, x=src: s(x))
        else:
            raise ValueError(f"unknown family {family!r}; known: {', '.join(CALLS)}")
    return calls


def modes_for(family: str, blocks: dict | None) -> tuple[str, ...]:
    """The execution modes of a run: dense and CSR, and BSR for square blocks (LM, GNMT)."""
    square = any(b[0] == b[1] != 1 for b in (blocks or {}).values())
    return MODES + ((BSR_MODE,) if square and family in ("lm", "translation") else ())


def vision_input_shape(task) -> tuple[int, int, int]:
    """(channels, height, width) of the task's images as the model sees them."""
    if task.experiment["dataset"] == "imagenet":
        from gradprune.tasks.imagenet import image_size

        side = image_size(task.experiment["model"])
        return (3, side, side)
    images = task.test_images
    return tuple(images.shape[1:]) if images.dim() == 4 else (1, *images.shape[1:])


def _no_grad(fn):
    def call():
        with torch.inference_mode():
            return fn()
    return call


def measure(calls: Mapping[tuple[str, int], Callable], rounds: int, min_time_s: float,
            seed: int = 0) -> dict:
    """``timings`` and ``speedup`` entries of latency.json for these calls."""
    keys = {f"{mode}:{b}": (mode, b) for mode, b in calls}
    raw = time_calls({k: calls[v] for k, v in keys.items()}, rounds, min_time_s, seed)
    timings = []
    for key, (mode, b) in keys.items():
        stats = summary(raw[key]["samples"])
        timings.append({"mode": mode, "batch": b, "inner": raw[key]["inner"],
                        **{f"{k}_s": v for k, v in stats.items()},
                        "samples_s": raw[key]["samples"]})
    out = {"timings": timings}
    for mode, key in (("sparse", "speedup"), (BSR_MODE, "speedup_bsr")):
        speedup = []
        for b in sorted({b for _, b in calls}):
            if f"dense:{b}" in raw and f"{mode}:{b}" in raw:
                ratios = [d / s for d, s in zip(raw[f"dense:{b}"]["samples"],
                                                raw[f"{mode}:{b}"]["samples"])]
                stats = summary(ratios)
                speedup.append({"batch": b, **{k: stats[k] for k in ("median", "q25", "q75")}})
        if speedup or mode == "sparse":
            out[key] = speedup
    return out


def sweep(exp: dict, model: torch.nn.Module, encoded: list[str], blocks: dict, cfg: dict,
          seed: int) -> dict:
    """``sweep`` of latency.json (module docstring): the LM step of ``model`` re-pruned to each
    sweep sparsity, sparse against dense, in the same rounds."""
    import copy

    from gradprune.runner import make_pruner

    gen = torch.Generator().manual_seed(seed)
    calls = {}
    inputs = {}
    for b in cfg["latency_batches"]:
        shape = (model.num_layers, b, model.hidden_size)
        inputs[b] = (torch.randint(0, model.vocab_size, (b,), generator=gen),
                     (torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)))
    dense = LMStep(model, encoded, "dense")
    for b, (tokens, hidden) in inputs.items():
        calls[f"dense:{b}"] = _no_grad(lambda s=dense, t=tokens, h=hidden: s(t, h))
    modes = modes_for("lm", blocks)[1:]
    refilled = copy.deepcopy(model)
    with torch.no_grad():
        for name in encoded:
            w = refilled.get_parameter(name)
            zero = w == 0
            if zero.any() and not zero.all():
                tiny = float(w[~zero].abs().min()) * 1e-3
                w[zero] = tiny * (0.5 + torch.rand(int(zero.sum()), generator=gen))
    for s in cfg["sweep_sparsities"]:
        pruned = copy.deepcopy(refilled)
        pruner = make_pruner(exp, pruned, s)
        pruner.prune_to(s)
        pruner.remove()
        for mode in modes:
            step = LMStep(pruned, encoded, mode, blocks)
            for b, (tokens, hidden) in inputs.items():
                calls[f"{mode}@{s}:{b}"] = _no_grad(lambda st=step, t=tokens, h=hidden: st(t, h))
    raw = time_calls(calls, cfg["latency_rounds"], cfg["latency_min_time_s"], seed)
    speedup = []
    for mode in modes:
        for s in cfg["sweep_sparsities"]:
            for b in inputs:
                ratios = [d / x for d, x in zip(raw[f"dense:{b}"]["samples"],
                                                raw[f"{mode}@{s}:{b}"]["samples"])]
                stats = summary(ratios)
                speedup.append({"mode": mode, "sparsity": s, "batch": b,
                                **{k: stats[k] for k in ("median", "q25", "q75")}})
    return {"sparsities": list(cfg["sweep_sparsities"]), "speedup": speedup}


def latency(settings: dict, run, data_files: dict, weights: Path, metrics_json: Path,
            out_json: Path, cfg: dict, pruning: dict) -> dict:
    """What the ``latency`` rule runs: ``latency.json`` of one run (see the module docstring);
    ``settings``: the run's (gradprune.config.run_settings); ``cfg``: the config's ``footprint``
    section; ``pruning``: the experiment's pruning section for this size (which tensors are
    sparse-executable)."""
    from gradprune.footprint.storage import prunable_tensors, tensor_blocks
    from gradprune.runner import new_state
    from gradprune.training.checkpoint import import_weights

    exp = {**settings["experiment"], "pruning": pruning}
    torch.set_num_threads(1)
    metrics = json.loads(Path(metrics_json).read_text())
    state, _ = import_weights(weights)
    built = new_state({**settings, "device": "cpu"}, run, data_files, with_pruner=False)
    built.model.load_state_dict(state)
    encoded = prunable_tensors(exp, built.model)
    blocks = tensor_blocks(exp, built.model, encoded)
    calls = inference_calls(exp["family"], built.task, built.model, encoded,
                            cfg["latency_batches"], cfg["source_length"], seed=run.seed,
                            blocks=blocks)
    before = os.getloadavg()
    result = measure(calls, cfg["latency_rounds"], cfg["latency_min_time_s"], seed=run.seed)
    if blocks:
        result["blocks"] = {n: list(b) for n, b in blocks.items()}
    if exp["family"] == "lm" and metrics["role"] == "large-sparse" and cfg["sweep_sparsities"]:
        result["sweep"] = sweep(exp, built.model, encoded, blocks, cfg, run.seed)
    result = {
        **{k: metrics[k] for k in ("experiment", "model", "size", "role", "target_sparsity",
                                   "seed", "nnz")},
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "call": CALLS[exp["family"]],
        "source_length": cfg["source_length"] if exp["family"] == "translation" else None,
        "rounds": cfg["latency_rounds"], "min_time_s": cfg["latency_min_time_s"],
        "load_average": {"before": list(before), "after": list(os.getloadavg())},
        **result,
    }
    Path(out_json).write_text(json.dumps(result, indent=2))
    return result
