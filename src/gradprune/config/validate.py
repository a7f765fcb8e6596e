"""Validation: the schema, then what a schema cannot say.

:func:`validate_config` fills in the schema's defaults and then checks the cross-field rules
(family, dataset, model and sizes agree; pruning ends before training; per-size recipes are valid
experiments). Errors name the key, the value and what is allowed.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

from gradprune.config.compose import deep_merge, read_config_file
from gradprune.config.schema import ConfigError, load_schema, schema_errors
from gradprune.config.sizes import experiment_for_size, model_sizes, prunable_sizes

# Which datasets and models each family has, and what a model's size means. Kept free of torch:
# the workflow validates the config every time Snakemake starts (every job start on SLURM).
FAMILY_DATASETS = {
    "vision": ("fashion-mnist", "cifar-10", "imagenet"),
    "lm": ("ptb", "wikitext-2"),
    "translation": ("multi30k", "wmt16"),
}
FAMILY_MODELS = {"vision": ("mobilenet_v1", "inception_v3"), "lm": ("lstm_lm",), "translation": ("gnmt",)}
SIZE_MEANING = {
    "mobilenet_v1": "a width multiplier > 0 (e.g. 1.0, 0.75)",
    "inception_v3": "1.0 (InceptionV3 has no width multiplier)",
    "lstm_lm": "a number of LSTM units (an integer >= 1) or small/medium/large",
    "gnmt": "a number of LSTM units (an integer >= 1)",
}


def validate_config(config: dict) -> dict:
    """Validate ``config`` (a copy is returned with defaults filled) or raise ConfigError."""
    config = resolve_extends(copy.deepcopy(config))
    schema = load_schema()
    schema_errors(config, schema)
    experiment_schema = {**schema["$defs"]["experiment"], "$defs": schema["$defs"]}
    for name, exp in config["experiments"].items():
        _check_experiment(name, exp)
        for size in model_sizes(exp):
            merged = experiment_for_size(exp, size)
            key = f"experiments.{name}"
            if merged is not exp:
                key += f".recipes.{size}"
                schema_errors(merged, experiment_schema, prefix=key)
            _check_training(key, merged, pruned=size in prunable_sizes(exp))
        _check_n_m(f"experiments.{name}", exp)
    for name, listed in config.get("structure_comparisons", {}).items():
        unknown = [e for e in listed if e not in config["experiments"]]
        if unknown:
            raise ConfigError(f"structure_comparisons.{name}: no experiment {unknown[0]!r} in this "
                              f"config (experiments: {', '.join(config['experiments'])})")
    return config


def _check_n_m(key: str, exp: dict) -> None:
    """An N:M mask holds at most 1 - N/M sparsity: a higher target cannot be reached."""
    n_m = exp["pruning"].get("n_m")
    if not n_m:
        return
    cap = 1.0 - n_m[0] / n_m[1]
    if n_m[0] >= n_m[1]:
        raise ConfigError(f"{key}.pruning.n_m: N must be below M, got {n_m}")
    rows = [exp["large"], *exp["extra_models"]]
    too_high = [s for row in rows for s in row["sparsities"] if s > cap + 1e-12]
    if too_high:
        raise ConfigError(f"{key}: sparsities {too_high} are above what an {n_m[0]}:{n_m[1]} mask "
                          f"holds ({cap:g}); list sparsities up to {cap:g} or drop pruning.n_m")


def resolve_extends(config: dict) -> dict:
    """Experiments with ``extends: <name>`` become that experiment deep-merged with their own keys
    (a variant states only what differs, e.g. a block shape). Chains resolve in order; a cycle or
    an unknown name is a ConfigError naming the key."""
    experiments = config.get("experiments")
    if not isinstance(experiments, dict):
        return config

    def resolved(name: str, seen: tuple[str, ...]) -> dict:
        exp = experiments[name]
        if not isinstance(exp, dict) or "extends" not in exp:
            return exp
        parent = exp["extends"]
        if parent not in experiments:
            raise ConfigError(f"experiments.{name}.extends: no experiment {parent!r} in this "
                              f"config (experiments: {', '.join(experiments)})")
        if parent in seen:
            raise ConfigError(f"experiments.{name}.extends: a cycle ({' -> '.join(seen + (parent,))})")
        own = {k: v for k, v in exp.items() if k != "extends"}
        return deep_merge(resolved(parent, seen + (parent,)), own)

    config["experiments"] = {name: resolved(name, (name,)) for name in experiments}
    return config


def load_config(path: str | Path) -> dict:
    """A preset file, validated (the ``gradprune.cli`` entry point; no overlays)."""
    return validate_config(read_config_file(path))


def _valid_size(model: str, size) -> bool:
    if isinstance(size, bool):
        return False
    if model == "lstm_lm" and size in ("small", "medium", "large"):
        return True
    if isinstance(size, str):
        try:
            size = float(size)
        except ValueError:
            return False
    if not isinstance(size, (int, float)) or not math.isfinite(size) or size <= 0:
        return False
    if model == "mobilenet_v1":
        return True
    if model == "inception_v3":
        return float(size) == 1.0
    return float(size).is_integer()


# Datasets held in memory and augmented by gradprune.tasks.vision.VisionTask (`augment`).
AUGMENTED_DATASETS = ("fashion-mnist", "cifar-10")


def _check_experiment(name: str, exp: dict) -> None:
    key = f"experiments.{name}"
    family = exp["family"]
    if "augment" in exp and exp["dataset"] not in AUGMENTED_DATASETS:
        raise ConfigError(
            f"{key}.augment: only the in-memory image datasets ({', '.join(AUGMENTED_DATASETS)}) "
            f"take an augment section, not {exp['dataset']!r} (ImageNet has TF-slim's "
            "preprocessing): remove it"
        )
    if exp["dataset"] not in FAMILY_DATASETS[family]:
        raise ConfigError(
            f"{key}.dataset: {exp['dataset']!r} is not a dataset of family {family!r}; "
            f"allowed: {', '.join(FAMILY_DATASETS[family])}"
        )
    if exp["model"] not in FAMILY_MODELS[family]:
        raise ConfigError(
            f"{key}.model: {exp['model']!r} is not a model of family {family!r}; "
            f"allowed: {', '.join(FAMILY_MODELS[family])}"
        )
    sized = [("large.size", exp["large"]["size"])]
    sized += [(f"extra_models.{i}.size", m["size"]) for i, m in enumerate(exp["extra_models"])]
    sized += [(f"small_dense.{i}", s) for i, s in enumerate(exp["small_dense"])]
    for where, size in sized:
        if not _valid_size(exp["model"], size):
            raise ConfigError(
                f"{key}.{where}: {size!r} is not a size of {exp['model']}; "
                f"a size is {SIZE_MEANING[exp['model']]}"
            )
    sizes = model_sizes(exp)
    for size in exp["recipes"]:
        if str(size) not in sizes:
            raise ConfigError(
                f"{key}.recipes.{size}: no model of size {size} in this experiment; "
                f"its sizes: {', '.join(sizes)}"
            )


def _check_training(key: str, exp: dict, pruned: bool) -> None:
    """Cross-field rules of one (per-size) training recipe; ``pruned``: the size is pruned."""
    pr, tr = exp["pruning"], exp["train"]
    total = tr["total_steps"]
    end = pr["begin_step"] + pr["n_updates"] * pr["frequency"]
    if pruned and end >= total:
        raise ConfigError(
            f"{key}.pruning: pruning ends at step {end} (begin_step + n_updates * frequency) "
            f"but training has only {total} steps (train.total_steps); the paper lets the model "
            "recover after the last mask update: raise total_steps or prune earlier"
        )
    if pr.get("continuation_lr") and not pr["from_dense_checkpoint"]:
        raise ConfigError(
            f"{key}.pruning: continuation_lr sets the learning rate of runs that continue the "
            "dense checkpoint, but from_dense_checkpoint is false: drop one"
        )
    warmup = tr["lr_schedule"]["warmup_steps"]
    if warmup >= total:
        raise ConfigError(
            f"{key}.train.lr_schedule.warmup_steps: {warmup} is not below train.total_steps "
            f"({total}); allowed: 0 <= warmup_steps < total_steps"
        )
