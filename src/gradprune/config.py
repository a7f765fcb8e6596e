"""Presets: how the config is composed, validated, and turned into the plan of runs.

Composition (what ``snakemake`` sees, :func:`compose_config`). A *preset* is a YAML file with a
top-level ``preset:`` key (``config.yaml`` = ``mini``, ``presets/paper.yaml``, ``presets/test.yaml``)
and is a whole config. A file given with ``--configfile`` that has a ``preset:`` key replaces the
default preset; files without one are *overlays*, deep-merged in order on top of the preset (or of
the default). ``--config key=value`` pairs come last; their nested values are read as YAML, so
``--config seeds='[0, 1]'`` gives a list of integers. (Snakemake alone would merge every file into
``config.yaml`` and pass nested ``--config`` values as strings: the workflow composes the config
itself, in :func:`compose_config`, and records what it was made of under ``sources``.)

Validation. The schema lives in ``workflow/schemas/config.schema.yaml`` (one home for it:
Snakemake's ``validate`` reads the same file). :func:`validate_config` fills in defaults the way
``snakemake.utils.validate(..., set_default=True)`` does and then checks what a schema cannot say
(family, dataset, model and sizes agree; pruning ends before training; per-size recipes). Errors
name the key, the value and what is allowed.

Per-size recipes. ``experiments.<name>.recipes.<size>`` overrides ``model_args``, ``train``,
``pruning`` or ``resources`` for the runs of that size (dense, pruned and small-dense alike),
deep-merged onto the experiment: the paper trains each LSTM size with its own Zaremba recipe.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import jsonschema
import yaml

from gradprune.layout import PRETRAIN_DIR, RUN_DIR, RUN_FIGURE_DIR

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = PROJECT_ROOT / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT_PRESET = "config.yaml"


class ConfigError(ValueError):
    """A preset that cannot be used; the message names the key and what is allowed."""


# -- composition -----------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (PyYAML silently keeps the
    last one, so a preset with two blocks of one experiment would lose the first)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_config_file(path: str | Path) -> dict:
    """A YAML mapping from ``path``; ConfigError naming the file when it cannot be used."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, got {type(raw).__name__}")
    return raw


def deep_merge(base: dict, update: dict) -> dict:
    """``base`` updated by ``update``: mappings merge key by key, anything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def typed_overrides(value):
    """``--config`` values with their nested strings read as YAML (Snakemake leaves them strings:
    ``seeds='[0, 1]'`` arrives as ``['0', '1']``, ``data='{offline: true}'`` as ``{'offline': 'true'}``)."""
    if isinstance(value, dict):
        return {k: typed_overrides(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed_overrides(v) for v in value]
    if isinstance(value, str):
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value
    return value


def compose_config(cli_files=(), cli_overrides: dict | None = None, default_candidates=()) -> dict:
    """The config a run of the workflow uses (see the module docstring for the rules).

    ``cli_files``: the ``--configfile`` paths in order; ``cli_overrides``: the ``--config`` pairs as
    Snakemake parsed them; ``default_candidates``: where to look for the default preset when no
    preset file is given (the first that exists is used).
    """
    files = [(Path(p), read_config_file(p)) for p in cli_files]
    presets = [path for path, content in files if "preset" in content]
    if len(presets) > 1:
        raise ConfigError(
            f"two presets given ({presets[0]} and {presets[1]}): give one preset file (a file with a "
            "`preset:` key) and any number of overlays (files without one)"
        )
    if presets:
        base_path = presets[0]
        config = dict(files[[p for p, _ in files].index(base_path)][1])
    else:
        found = [Path(c) for c in default_candidates if Path(c).exists()]
        if not found:
            where = ", ".join(str(c) for c in default_candidates) or "(nowhere)"
            raise ConfigError(
                f"no preset: {DEFAULT_PRESET} was not found in {where} and no --configfile names a "
                "preset (a file with a `preset:` key, e.g. presets/test.yaml)"
            )
        base_path, config = found[0], read_config_file(found[0])
    sources = [str(base_path)]
    for path, content in files:
        if path != base_path:
            config = deep_merge(config, content)
            sources.append(f"overlay {path}")
    if cli_overrides:
        overrides = typed_overrides(dict(cli_overrides))
        config = deep_merge(config, overrides)
        sources += [f"--config {k}={json.dumps(v)}" for k, v in overrides.items()]
    config["sources"] = sources
    return config


def load_config(path: str | Path) -> dict:
    """A preset file, validated (the ``gradprune.cli`` entry point; no overlays)."""
    return validate_config(read_config_file(path))


# -- validation ------------------------------------------------------------------------------------


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


def _schema_errors(instance: dict, schema: dict, prefix: str = "") -> None:
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    # Two passes: defaults filled in the first can themselves hold defaults (nested objects).
    for _ in range(2):
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        if errors:
            lines = []
            for err in errors[:10]:
                where = ".".join([prefix] * bool(prefix) + [str(p) for p in err.absolute_path])
                lines.append(f"  {where or '<top level>'}: {err.message}")
            raise ConfigError("invalid configuration:\n" + "\n".join(lines))


def validate_config(config: dict) -> dict:
    """Validate ``config`` (a copy is returned with defaults filled) or raise ConfigError."""
    config = copy.deepcopy(config)
    schema = load_schema()
    _schema_errors(config, schema)
    experiment_schema = {**schema["$defs"]["experiment"], "$defs": schema["$defs"]}
    for name, exp in config["experiments"].items():
        _check_experiment(name, exp)
        for size in model_sizes(exp):
            merged = experiment_for_size(exp, size)
            key = f"experiments.{name}"
            if merged is not exp:
                key += f".recipes.{size}"
                _schema_errors(merged, experiment_schema, prefix=key)
            _check_training(key, merged, pruned=size in prunable_sizes(exp))
    return config


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


def _check_experiment(name: str, exp: dict) -> None:
    key = f"experiments.{name}"
    family = exp["family"]
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


def config_hash(obj) -> str:
    """Stable short hash of a JSON-serialisable object (key order does not matter)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


# -- sizes, recipes and the settings of one run ---------------------------------------------------


def fmt_num(x) -> str:
    """Sizes as they appear in paths: 1.0 -> '1.0', 0.75 -> '0.75', 1500 -> '1500', 'large'."""
    if isinstance(x, (str, int)) and not isinstance(x, bool):
        return str(x)
    return repr(float(x))


def fmt_sparsity(s) -> str:
    """Sparsities in paths are always floats: 0 -> '0.0', 0.875 -> '0.875'."""
    return repr(float(s))


def size_value(size: str):
    """Path string back to the builder's argument: '0.75' -> 0.75, '1500' -> 1500, 'large'."""
    try:
        value = float(size)
    except ValueError:
        return size
    return int(value) if value.is_integer() and "." not in size else value


def model_sizes(exp: dict) -> list[str]:
    """Every size of an experiment as in paths: the large one, extra models, small-dense ones."""
    sizes = [exp["large"]["size"], *(m["size"] for m in exp.get("extra_models", []))]
    sizes += list(exp.get("small_dense", []))
    return list(dict.fromkeys(fmt_num(s) for s in sizes))


def prunable_sizes(exp: dict) -> list[str]:
    """Sizes trained densely to t0 and then pruned: the large model and the extra models."""
    return [fmt_num(s) for s in [exp["large"]["size"], *(m["size"] for m in exp.get("extra_models", []))]]


# Keys of an experiment that list its runs or describe it, rather than say how one run trains.
# `resources` (threads, memory, GPUs, nodes) say where a run trains, not what it computes: a
# finished run is not retrained on another cluster shape. (Results agree across process counts to
# float rounding, not bitwise: see gradprune.training.distributed.)
_NOT_SETTINGS = ("description", "fair_comparison", "large", "small_dense", "extra_models", "recipes",
                 "resources")
# Pruning keys that only shape masks: a run without a pruner does not depend on them.
MASK_KEYS = ("initial_sparsity", "frequency", "n_updates", "exponent", "lstm_grouping", "include",
             "exclude", "sparsity_overrides")


def experiment_for_size(exp: dict, size) -> dict:
    """The experiment as the runs of ``size`` train it: its recipe (if any) deep-merged on top."""
    recipes = exp.get("recipes") or {}
    recipe = recipes.get(fmt_num(size))
    if recipe is None:  # YAML keys may be numbers
        recipe = next((r for k, r in recipes.items() if fmt_num(k) == fmt_num(size)), None)
    return deep_merge(exp, recipe) if recipe else exp


def experiment_resources(config: dict, experiment: str, size: str) -> dict:
    """threads, mem_mb, runtime, gpu, nodes of the jobs of one size of an experiment (schema
    defaults)."""
    return experiment_for_size(config["experiments"][experiment], size)["resources"]


def training_job_resources(resources: dict) -> dict:
    """The Snakemake resources a training job (pretrain, train) adds to threads, mem_mb and
    runtime, as snakemake-executor-plugin-slurm reads them; None leaves one out.

    One node: ``gpu`` (``--gpus``), as every job. Several nodes: ``nodes`` and one task per node
    (``tasks``), ``gres: gpu:G`` for G GPUs on *each* node (``gpu`` would be the job's total),
    ``tasks_per_gpu: 0`` (else the plugin turns ``tasks`` into ``--ntasks-per-gpu``), and ``mpi``,
    which makes the plugin run the job script once, on the first node, without wrapping it in
    srun: the script starts the per-node launchers with its own srun."""
    nodes, gpu = resources.get("nodes", 1), resources.get("gpu", 0)
    if nodes == 1:
        return {"gpu": gpu, "nodes": None, "tasks": None, "mpi": None, "gres": None,
                "tasks_per_gpu": None}
    return {"gpu": None, "nodes": nodes, "tasks": nodes, "mpi": "srun",
            "gres": f"gpu:{gpu}" if gpu else None, "tasks_per_gpu": 0 if gpu else None}


def run_settings(config: dict, run: Run) -> dict:
    """Everything that determines how ``run`` trains and scores, and nothing else.

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


# Top-level GPU speed options. A run's settings carry one only when it differs from the schema's
# defaults (float32, PyTorch's cuDNN defaults), so runs trained before the option existed keep
# their identity (rule params, config hash) until the option is changed for them.
SPEED_KEYS = ("precision", "cudnn")


@functools.lru_cache(maxsize=1)
def _speed_defaults() -> str:
    props = load_schema()["properties"]
    return json.dumps({key: {k: v["default"] for k, v in props[key]["properties"].items()}
                       for key in SPEED_KEYS})


def speed_defaults() -> dict:
    """``{"precision": {...}, "cudnn": {...}}`` as the schema's defaults say."""
    return json.loads(_speed_defaults())


# -- the plan of runs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One trained model: a row of a table. Its folder fully names it."""

    experiment: str
    model: str
    size: str  # as in paths: width multiplier, units or small/medium/large
    sparsity: str  # as in paths
    seed: int
    role: str  # dense | large-sparse | small-dense
    in_preset: bool = True  # False: named by its file only (a sparsity or seed the preset lacks)

    @property
    def wildcards(self) -> dict:
        return {"experiment": self.experiment, "model": self.model, "size": self.size,
                "sparsity": self.sparsity, "seed": self.seed}

    @property
    def dir(self) -> str:
        return RUN_DIR.format(**self.wildcards)

    @property
    def metrics(self) -> str:
        return f"{self.dir}/metrics.json"

    @property
    def pretrain_dir(self) -> str:
        """Where this size's dense model trained up to t0 lives (shared by all its sparsities)."""
        return PRETRAIN_DIR.format(**self.wildcards)

    @property
    def figure_dir(self) -> str:
        return RUN_FIGURE_DIR.format(**self.wildcards)

    @property
    def continues_from_dense(self) -> bool:
        return self.role != "small-dense"

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def identity(self) -> dict:
        """What the run is, without whether the preset lists it: naming a run by its file and
        listing it later must not retrain it (train jobs get this as their param)."""
        return {k: v for k, v in asdict(self).items() if k != "in_preset"}

    @classmethod
    def from_dict(cls, d: dict) -> Run:
        return cls(**{**d, "seed": int(d["seed"])})


def plan_runs(config: dict) -> list[Run]:
    """Every run the preset asks for, in a stable order."""
    runs: list[Run] = []
    for name, exp in config["experiments"].items():
        rows = [(exp["large"]["size"], exp["large"]["sparsities"])]
        rows += [(m["size"], m["sparsities"]) for m in exp.get("extra_models", [])]
        for seed in config["seeds"]:
            for size, sparsities in rows:
                for s in sparsities:
                    role = "dense" if float(s) == 0.0 else "large-sparse"
                    runs.append(Run(name, exp["model"], fmt_num(size), fmt_sparsity(s), seed, role))
            for size in exp.get("small_dense", []):
                runs.append(Run(name, exp["model"], fmt_num(size), "0.0", seed, "small-dense"))
    # A small-dense size equal to a dense large row would be the same run twice.
    return list(dict.fromkeys(runs))


def experiment_of(config: dict, name: str, where: str = "") -> dict:
    """The experiment ``name`` of the preset, or a ConfigError listing the ones it has."""
    exps = config["experiments"]
    if name not in exps:
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}preset {config.get('preset', '?')} has no experiment {name!r}; "
                          f"it has: {', '.join(exps)}")
    return exps[name]


def resolve_run(config: dict, experiment: str, model: str, size: str, sparsity: str, seed) -> Run:
    """The run a folder names: a planned run, or a sparsity or seed the preset does not list
    (``in_preset=False``: same schedule and training as the listed ones). Anything else, a size,
    model or experiment the preset does not have, is a ConfigError of one line that lists what the
    preset has."""
    seed = int(seed)
    where = RUN_DIR.format(experiment=experiment, model=model, size=size, sparsity=sparsity, seed=seed)
    for run in plan_runs(config):
        if run.wildcards == {"experiment": experiment, "model": model, "size": size,
                             "sparsity": sparsity, "seed": seed}:
            return run
    exp = experiment_of(config, experiment, where)
    if model != exp["model"]:
        raise ConfigError(f"{where}: experiment {experiment} trains {exp['model']}, not {model!r}")
    if size not in model_sizes(exp):
        raise ConfigError(f"{where}: experiment {experiment} has no {model} of size {size!r}; "
                          f"its sizes: {', '.join(model_sizes(exp))}")
    try:
        value = float(sparsity)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < 1.0 or fmt_sparsity(value) != sparsity:
        raise ConfigError(f"{where}: sparsity {sparsity!r} is not a fraction in [0, 1) written as "
                          f"Python writes floats (e.g. 0.8, 0.0)")
    if size in prunable_sizes(exp):
        role = "dense" if value == 0.0 else "large-sparse"
    elif value == 0.0:
        role = "small-dense"
    else:
        raise ConfigError(f"{where}: {model}-{size} is a small-dense model of {experiment} (trained "
                          f"dense only); the sizes it prunes: {', '.join(prunable_sizes(exp))}")
    return Run(experiment, model, size, sparsity, seed, role, in_preset=False)


def write_config(config: dict, path: str | Path) -> None:
    """The composed config as YAML, keys in the preset's order (``results/config.yaml``)."""
    header = "# The config this workflow ran with, as composed from `sources` and validated.\n"
    Path(path).write_text(header + yaml.safe_dump(config, sort_keys=False))
