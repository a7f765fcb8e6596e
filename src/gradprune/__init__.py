"""gradprune: a reproduction pipeline for Zhu & Gupta (2017), 'To prune, or not to prune'."""

from gradprune.counting import NNZCount, count_nnz, count_nonzero
from gradprune.pruning import GradualPruner, default_prune_groups, select_prune_groups
from gradprune.schedule import CubicSchedule

__version__ = "0.1.0"

__all__ = [
    "CubicSchedule",
    "GradualPruner",
    "NNZCount",
    "count_nnz",
    "count_nonzero",
    "default_prune_groups",
    "select_prune_groups",
]
