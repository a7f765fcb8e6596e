"""Presets: how the config is composed, validated, and turned into the plan of runs.

One module per concern, each importable without torch (the workflow reads them every time
Snakemake starts, every job start on SLURM included):

- :mod:`~gradprune.config.schema`: the JSON schema (the only home of defaults), ``ConfigError``;
- :mod:`~gradprune.config.compose`: presets, overlays and ``--config`` pairs composed into one
  config (``compose_config``), read and written as YAML;
- :mod:`~gradprune.config.validate`: the schema's defaults filled in, then the cross-field rules a
  schema cannot say (``validate_config``);
- :mod:`~gradprune.config.sizes`: sizes as paths write them; per-size recipes;
- :mod:`~gradprune.config.plan`: the plan of runs (``Run``, ``plan_runs``, ``resolve_run``);
- :mod:`~gradprune.config.settings`: the settings of one run (``run_settings``) and which of them
  can change its weights or its metrics (the params of its jobs), ``config_hash``;
- :mod:`~gradprune.config.identity`: the config a run's checkpoints and ``metrics.json`` record;
- :mod:`~gradprune.config.resources`: the resources of a run's jobs;
- :mod:`~gradprune.config.twins`: runs two experiments share (``twin_run``, ``pretrain_home``,
  ``train_job_resources``).

The names below are re-exported, so ``from gradprune.config import X`` keeps working.
"""

from gradprune.config.compose import (
    DEFAULT_PRESET,
    compose_config,
    deep_merge,
    read_config_file,
    typed_overrides,
    write_config,
)
from gradprune.config.identity import (
    evaluation_config,
    run_config,
    schedule_for,
    training_config,
)
from gradprune.config.plan import Run, experiment_of, only_experiments, plan_runs, resolve_run
from gradprune.config.resources import experiment_resources, training_job_resources
from gradprune.config.schema import PROJECT_ROOT, SCHEMA_PATH, ConfigError, load_schema
from gradprune.config.settings import (
    MASK_KEYS,
    OPERATIONAL_KEYS,
    SCORING_KEYS,
    SPEED_KEYS,
    config_hash,
    evaluation_settings,
    run_settings,
    speed_defaults,
    training_settings,
    without_keys,
)
from gradprune.config.sizes import (
    experiment_for_size,
    fmt_num,
    fmt_sparsity,
    model_sizes,
    prunable_sizes,
    size_value,
)
from gradprune.config.twins import pretrain_home, train_job_resources, twin_run
from gradprune.config.validate import (
    FAMILY_DATASETS,
    FAMILY_MODELS,
    SIZE_MEANING,
    load_config,
    validate_config,
)

__all__ = [
    "DEFAULT_PRESET", "FAMILY_DATASETS", "FAMILY_MODELS", "MASK_KEYS", "OPERATIONAL_KEYS",
    "PROJECT_ROOT", "SCHEMA_PATH", "SCORING_KEYS", "SIZE_MEANING", "SPEED_KEYS", "ConfigError",
    "Run", "compose_config", "config_hash", "deep_merge", "evaluation_config",
    "evaluation_settings", "experiment_for_size", "experiment_of", "experiment_resources",
    "fmt_num", "fmt_sparsity", "load_config", "load_schema", "model_sizes", "only_experiments",
    "plan_runs", "pretrain_home", "prunable_sizes", "read_config_file", "resolve_run",
    "run_config", "run_settings", "schedule_for", "size_value", "speed_defaults",
    "train_job_resources", "training_config", "training_job_resources", "training_settings",
    "twin_run", "typed_overrides", "validate_config", "without_keys", "write_config",
]
