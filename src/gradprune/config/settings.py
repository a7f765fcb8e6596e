"""The settings of one run: what its jobs receive, and which of them make a job rerun.

:func:`run_settings` is everything a run's jobs read, and nothing else: not the other runs of the
preset (adding a sparsity, a seed or another experiment, or retuning another size's recipe, reruns
nothing else), not the prose, not where it trains (``resources``). Its keys fall in three kinds,
by what a change of the key can change (DEVELOPERS.md, "What a change of a key reruns"):

- the trained weights: every key not listed below. They make up :func:`training_settings`, the
  Snakemake params of the training jobs (pretrain, train) and the identity of their checkpoints
  (``gradprune.config.identity``): a change restarts the run and Snakemake retrains it.
- a reported metric only (:data:`SCORING_KEYS`: how ``metrics.json`` scores the weights). With
  the training settings they make up :func:`evaluation_settings`, the params of the jobs that
  score (evaluate, footprint, latency): a change rescores, never retrains.
- neither (:data:`OPERATIONAL_KEYS`: how often a run logs, checkpoints and scores its training
  curve, and how much of the held-out split the curve scores). They are in no job's params and
  in no identity: a change reaches a job the next time it starts (a resumed run logs and
  checkpoints at the new interval from then on) and reruns nothing.

A job receives its full settings by reading them from the composed config (``run_settings`` of
``snakemake.config``): Snakemake reruns a job when its params change (``--rerun-triggers`` of
Snakemake 9 includes ``params`` by default), so the params hold only the part that may rerun it.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json

from gradprune.config.compose import deep_merge
from gradprune.config.schema import load_schema
from gradprune.config.sizes import experiment_for_size

# Keys of an experiment that list its runs or describe it, rather than say how one run trains.
# `resources` (threads, memory, GPUs, nodes) say where a run trains, not what it computes: a
# finished run is not retrained on another cluster shape. (Results agree across process counts to
# float rounding, not bitwise: see gradprune.training.distributed.)
_NOT_SETTINGS = ("description", "fair_comparison", "large", "small_dense", "extra_models", "recipes",
                 "resources")
# Pruning keys that only shape masks: a run without a pruner does not depend on them.
MASK_KEYS = ("initial_sparsity", "frequency", "n_updates", "exponent", "lstm_grouping", "include",
             "exclude", "sparsity_overrides", "block", "block_pooling", "block_map", "n_m")
# Mask-structure keys at their defaults (single weights) are left out of a run's settings, so runs
# trained before structures existed keep their identity (rule params, config hash).
STRUCTURE_DEFAULTS = {"block": [1, 1], "block_pooling": "avg", "block_map": {}, "n_m": None}
# Top-level GPU speed options. A run's settings carry one only when it differs from the schema's
# defaults (float32, PyTorch's cuDNN defaults), so runs trained before the option existed keep
# their identity (rule params, config hash) until the option is changed for them.
SPEED_KEYS = ("precision", "cudnn")
# Keys of an experiment (dotted paths) that change no trained weight. Scoring keys change what
# metrics.json reports: the LM's eval_batch_size cuts the test stream into that many columns, each
# starting from a zero state; translation decodes with these settings on these test sets. (They
# also apply to the training curve from the next curve point on.) Operational keys change neither
# the weights nor metrics.json: every curve point records how many held-out examples it scored
# (gradprune.curves), so a curve whose size changed mid-run stays truthful.
SCORING_KEYS = ("train.eval_batch_size", "translation.decode", "translation.beam_size",
                "translation.length_penalty", "translation.max_decode_len", "translation.test_sets",
                "translation.test_limit")
OPERATIONAL_KEYS = ("train.checkpoint_every", "train.log_every", "train.eval_every",
                    "train.eval_curve_examples", "translation.curve_examples")


def config_hash(obj) -> str:
    """Stable short hash of a JSON-serialisable object (key order does not matter)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def run_settings(config: dict, run) -> dict:
    """Everything ``run`` (a :class:`~gradprune.config.plan.Run`) is trained and scored with, and
    nothing else: what its jobs receive. Which part of it a job's params and a checkpoint's
    identity hold: :func:`training_settings`, :func:`evaluation_settings`."""
    exp = experiment_for_size(config["experiments"][run.experiment], run.size)
    settings = {k: copy.deepcopy(v) for k, v in exp.items() if k not in _NOT_SETTINGS}
    if run.role == "small-dense":
        settings.pop("pruning")
    elif float(run.sparsity) == 0.0:
        settings["pruning"] = {k: v for k, v in settings["pruning"].items() if k not in MASK_KEYS}
    if "pruning" in settings:
        settings["pruning"] = _without_default_structure(settings["pruning"])
    out = {"device": config["device"], "deterministic": config["deterministic"],
           "experiment": settings}
    for key, default in speed_defaults().items():
        value = deep_merge(default, config.get(key) or {})
        if value != default:
            out[key] = value
    return out


def _without_default_structure(pruning: dict) -> dict:
    out = {k: v for k, v in pruning.items() if k == "block_pooling"
           or k not in STRUCTURE_DEFAULTS or v != STRUCTURE_DEFAULTS[k]}
    if "block" not in out and "block_map" not in out:
        out.pop("block_pooling", None)  # pools nothing with single weights
    return out


@functools.lru_cache(maxsize=1)
def _speed_defaults() -> str:
    props = load_schema()["properties"]
    return json.dumps({key: {k: v["default"] for k, v in props[key]["properties"].items()}
                       for key in SPEED_KEYS})


def speed_defaults() -> dict:
    """``{"precision": {...}, "cudnn": {...}}`` as the schema's defaults say."""
    return json.loads(_speed_defaults())


def without_keys(mapping: dict, keys) -> dict:
    """A copy of ``mapping`` without the dotted ``keys`` (``"train.log_every"``) it holds."""
    out = copy.deepcopy(mapping)
    for key in keys:
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return out


def training_settings(settings: dict) -> dict:
    """The part of a run's settings (:func:`run_settings`) that can change its trained weights:
    the params of its training jobs; its checkpoints' identity is built from it."""
    return {**settings,
            "experiment": without_keys(settings["experiment"], SCORING_KEYS + OPERATIONAL_KEYS)}


def evaluation_settings(settings: dict) -> dict:
    """The part of a run's settings that can change what ``metrics.json`` reports: the training
    settings and the scoring keys (the params of evaluate, footprint and latency jobs)."""
    return {**settings, "experiment": without_keys(settings["experiment"], OPERATIONAL_KEYS)}
