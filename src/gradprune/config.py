"""Presets: loading, validation against the workflow's JSON schema, and the plan of runs.

The schema lives in ``workflow/schemas/config.schema.yaml`` (one home for it: Snakemake's
``validate`` reads the same file). Validation here fills in defaults the way
``snakemake.utils.validate(..., set_default=True)`` does, so the package and the workflow see the
same config.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = PROJECT_ROOT / "workflow" / "schemas" / "config.schema.yaml"
RESULTS = "results"


class ConfigError(ValueError):
    """A preset that cannot be used; the message names the key and what is allowed."""


def _with_defaults(validator_class):
    # The jsonschema documentation's recipe: fill "default" values while validating.
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def load_schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def validate_config(config: dict) -> dict:
    """Validate ``config`` (a copy is returned with defaults filled) or raise ConfigError."""
    config = copy.deepcopy(config)
    schema = load_schema()
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    # Two passes: defaults filled in the first can themselves hold defaults (nested objects).
    for _ in range(2):
        errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
        if errors:
            lines = []
            for err in errors[:10]:
                where = ".".join(str(p) for p in err.absolute_path) or "<top level>"
                lines.append(f"  {where}: {err.message}")
            raise ConfigError("invalid configuration:\n" + "\n".join(lines))
    _check_semantics(config)
    return config


def _check_semantics(config: dict) -> None:
    """Rules a JSON schema cannot say."""
    for name, exp in config["experiments"].items():
        pr, tr = exp["pruning"], exp["train"]
        end = pr["begin_step"] + pr["n_updates"] * pr["frequency"]
        if end >= tr["total_steps"]:
            raise ConfigError(
                f"experiments.{name}: pruning ends at step {end} (begin_step + n_updates * "
                f"frequency) but training has only {tr['total_steps']} steps; the paper lets the "
                "model recover after the last mask update: raise total_steps or prune earlier"
            )
        if pr.get("continuation_lr") and not pr["from_dense_checkpoint"]:
            raise ConfigError(
                f"experiments.{name}.pruning: continuation_lr sets the learning rate of runs that "
                "continue the dense checkpoint, but from_dense_checkpoint is false: drop one"
            )
        if exp["family"] == "vision" and exp["dataset"] in ("ptb", "wikitext-2", "multi30k", "wmt16"):
            raise ConfigError(f"experiments.{name}: dataset {exp['dataset']} is not a vision dataset")


def load_config(path: str | Path) -> dict:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, got {type(raw).__name__}")
    return validate_config(raw)


def config_hash(obj) -> str:
    """Stable short hash of a JSON-serialisable object (key order does not matter)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


# -- the plan of runs ----------------------------------------------------------------------------


def fmt_num(x) -> str:
    """Sizes as they appear in paths: 1.0 -> '1.0', 0.75 -> '0.75', 1500 -> '1500', 'large'."""
    if isinstance(x, (str, int)) and not isinstance(x, bool):
        return str(x)
    return repr(float(x))


def fmt_sparsity(s) -> str:
    """Sparsities in paths are always floats: 0 -> '0.0', 0.875 -> '0.875'."""
    return repr(float(s))


@dataclass(frozen=True)
class Run:
    """One trained model: a row of a table."""

    experiment: str
    model: str
    size: str  # as in paths: width multiplier, units or small/medium/large
    sparsity: str  # as in paths
    seed: int
    role: str  # dense | large-sparse | small-dense

    @property
    def dir(self) -> str:
        return (
            f"{RESULTS}/{self.experiment}/{self.model}-{self.size}/"
            f"sparsity-{self.sparsity}/seed-{self.seed}"
        )

    @property
    def metrics(self) -> str:
        return f"{self.dir}/metrics.json"

    @property
    def continues_from_dense(self) -> bool:
        return self.role != "small-dense"


def plan_runs(config: dict) -> list[Run]:
    """Every run the preset asks for, in a stable order."""
    runs: list[Run] = []
    for name, exp in config["experiments"].items():
        rows = [(exp["large"]["size"], exp["large"]["sparsities"], True)]
        rows += [(m["size"], m["sparsities"], False) for m in exp.get("extra_models", [])]
        for seed in config["seeds"]:
            for size, sparsities, is_large in rows:
                for s in sparsities:
                    role = "dense" if float(s) == 0.0 else "large-sparse"
                    runs.append(Run(name, exp["model"], fmt_num(size), fmt_sparsity(s), seed, role))
            for size in exp.get("small_dense", []):
                runs.append(Run(name, exp["model"], fmt_num(size), "0.0", seed, "small-dense"))
    # A small-dense size equal to a dense large row would be the same run twice.
    unique = list(dict.fromkeys(runs))
    return unique


def find_run(config: dict, experiment: str, model: str, size: str, sparsity: str, seed: int) -> Run:
    for run in plan_runs(config):
        if (run.experiment, run.model, run.size, run.sparsity, run.seed) == (
            experiment, model, size, sparsity, int(seed)
        ):
            return run
    raise ConfigError(
        f"no run {experiment}/{model}-{size}/sparsity-{sparsity}/seed-{seed} in this preset"
    )


def size_value(size: str):
    """Path string back to the builder's argument: '0.75' -> 0.75, '1500' -> 1500, 'large'."""
    try:
        value = float(size)
    except ValueError:
        return size
    return int(value) if value.is_integer() and "." not in size else value


def pretrain_dir(run: Run) -> str:
    """Where the large dense model trained up to t0 lives (shared by all its sparsities)."""
    return f"{RESULTS}/{run.experiment}/{run.model}-{run.size}/pretrain/seed-{run.seed}"
