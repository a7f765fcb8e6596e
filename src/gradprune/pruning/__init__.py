"""Gradual magnitude pruning (Zhu & Gupta 2017) that keeps models plain.

Why our own pruner rather than ``torch.nn.utils.prune``: that module renames ``weight`` to
``weight_orig`` + ``weight_mask`` and recomputes their product in a forward pre-hook (overhead on
every forward, state_dicts that do not load into plain models, LSTM weights that stop being
Parameters and break cuDNN's flattened weights), and its ``amount`` is a fraction of the weights
that remain. Here weights stay ``nn.Parameter``s in place; masks are applied in place
(``weight.mul_(mask)``) after every optimizer step and to every gradient, so pruned weights are
exactly zero under any optimizer, and ``model.state_dict()`` is a plain state dict.

Modules: :mod:`~gradprune.pruning.groups` (which tensors are pruned, under which shared
thresholds), :mod:`~gradprune.pruning.selection` (how the k smallest magnitudes are selected) and
:mod:`~gradprune.pruning.pruner` (when masks change, how they are kept, checkpoint state).

Usage::

    pruner = GradualPruner(model, CubicSchedule(0.0, 0.9, begin_step=2000, frequency=100,
                                                 n_updates=50))
    for step, batch in enumerate(batches):
        loss(model, batch).backward()
        optimizer.step()
        pruner.step(step)          # after every optimizer step
"""

from gradprune.pruning.groups import PruneGroup, default_prune_groups, select_prune_groups, unwrap
from gradprune.pruning.pruner import GradualPruner, MaskUpdate
from gradprune.pruning.selection import kth_smallest, n_to_prune

__all__ = [
    "GradualPruner", "MaskUpdate", "PruneGroup", "default_prune_groups", "kth_smallest",
    "n_to_prune", "select_prune_groups", "unwrap",
]
