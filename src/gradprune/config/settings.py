"""The settings of one run: what its jobs receive, and what makes Snakemake rerun them.

:func:`run_settings` is everything that determines how a run trains and scores, and nothing else:
not the other runs of the preset (adding a sparsity, a seed or another experiment, or retuning
another size's recipe, reruns nothing else), not the prose, not where it trains (``resources``).
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
             "exclude", "sparsity_overrides")
# Top-level GPU speed options. A run's settings carry one only when it differs from the schema's
# defaults (float32, PyTorch's cuDNN defaults), so runs trained before the option existed keep
# their identity (rule params, config hash) until the option is changed for them.
SPEED_KEYS = ("precision", "cudnn")


def config_hash(obj) -> str:
    """Stable short hash of a JSON-serialisable object (key order does not matter)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def run_settings(config: dict, run) -> dict:
    """Everything that determines how ``run`` (a :class:`~gradprune.config.plan.Run`) trains and
    scores, and nothing else.

    It is what a training job receives (as a Snakemake param, so that Snakemake reruns a run
    exactly when its own settings change: adding a sparsity, a seed or another experiment, or
    retuning another size's recipe, reruns nothing else) and what its checkpoints are tied to.
    """
    exp = experiment_for_size(config["experiments"][run.experiment], run.size)
    settings = {k: copy.deepcopy(v) for k, v in exp.items() if k not in _NOT_SETTINGS}
    if run.role == "small-dense":
        settings.pop("pruning")
    elif float(run.sparsity) == 0.0:
        settings["pruning"] = {k: v for k, v in settings["pruning"].items() if k not in MASK_KEYS}
    out = {"device": config["device"], "deterministic": config["deterministic"],
           "experiment": settings}
    for key, default in speed_defaults().items():
        value = deep_merge(default, config.get(key) or {})
        if value != default:
            out[key] = value
    return out


@functools.lru_cache(maxsize=1)
def _speed_defaults() -> str:
    props = load_schema()["properties"]
    return json.dumps({key: {k: v["default"] for k, v in props[key]["properties"].items()}
                       for key in SPEED_KEYS})


def speed_defaults() -> dict:
    """``{"precision": {...}, "cudnn": {...}}`` as the schema's defaults say."""
    return json.loads(_speed_defaults())
