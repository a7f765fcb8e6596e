"""gradprune: a reproduction pipeline for Zhu & Gupta (2017), 'To prune, or not to prune'.

The public names are imported lazily: the workflow imports ``gradprune.config`` when Snakemake
parses the Snakefile (on every job start, SLURM jobs included), which should not pay for torch.
"""

import importlib

# The one home of the version (pyproject.toml reads it); CHANGELOG.md says what each changed.
__version__ = "0.2.0"

_EXPORTS = {
    "CubicSchedule": "gradprune.schedule",
    "GradualPruner": "gradprune.pruning.pruner",
    "default_prune_groups": "gradprune.pruning.groups",
    "select_prune_groups": "gradprune.pruning.groups",
    "NNZCount": "gradprune.counting",
    "count_nnz": "gradprune.counting",
    "count_nonzero": "gradprune.counting",
}

__all__ = [
    "CubicSchedule", "GradualPruner", "NNZCount", "count_nnz", "count_nonzero",
    "default_prune_groups", "select_prune_groups",
]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'gradprune' has no attribute {name!r}")
