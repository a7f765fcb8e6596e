"""The plan of runs: every trained model a preset asks for (:class:`Run`), and the run a folder
names."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from gradprune.config.schema import ConfigError
from gradprune.config.sizes import fmt_num, fmt_sparsity, model_sizes, prunable_sizes
from gradprune.layout import PRETRAIN_DIR, RUN_DIR, RUN_FIGURE_DIR


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


def only_experiments(config: dict, names) -> dict:
    """``config`` with the experiments ``names`` alone (for a probe or a benchmark of one), and
    the structure comparisons whose experiments all remain: one that names a dropped experiment
    would fail validation. An unknown name is the ConfigError of :func:`experiment_of`."""
    kept = {name: experiment_of(config, name) for name in names}
    comparisons = {name: members for name, members in config.get("structure_comparisons", {}).items()
                   if set(members) <= set(kept)}
    return {**config, "experiments": kept, "structure_comparisons": comparisons}


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
