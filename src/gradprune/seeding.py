"""Every random stream of a run, derived from the run's seed in one place.

A run's randomness is a pure function of its seed (and, for dropout, of the process's rank), so a
resumed run draws exactly what an uninterrupted one draws. Each stream below is seeded from (seed, position in
the stream); its constants live only here. They are those of the first released runs and must not
change: a new constant changes every run's numbers (``tests/test_seeding.py`` pins them).

Who draws from which stream:

- :func:`seed_everything`: Python's, NumPy's and torch's global generators, seeded with the seed
  itself before the model is built (``gradprune.runner``): the initial weights, identical on every
  process of a multi-GPU run.
- :func:`seed_rank`, once the model is built: what the global generators draw during training
  (dropout masks). Process (rank) 0 keeps drawing from the stream :func:`seed_everything` started,
  so a one-process run draws exactly what it drew before per-rank streams existed; every other
  rank reseeds its generators with :func:`rank_stream_seed` (rank, step), so no two processes
  draw the same dropout masks for their rows. Every rank's generator state is checkpointed
  (``gradprune.training.loop``). (Before this stream, every rank drew rank 0's masks.)
- :func:`epoch_order_seed`: the shuffled order of an epoch's training examples
  (``gradprune.tasks.base.epoch_permutation``: vision, ImageNet, translation).
- :func:`bucket_order_seed`: the order of an epoch's length-bucketed batches (translation).
- :func:`augment_seed`: the flips and shifts of a small-image training batch (vision).
- :func:`image_draw_seed`: the random crop, flip and colour of one ImageNet training image.
- :func:`eval_subset_seed`: which validation images of each class the ImageNet training curve
  scores (fixed: the same images for every run; ``gradprune.tasks.imagenet.stratified_subset``).

Not derived from the run's seed, on purpose: the pruner's sampled bracket (a fixed seed, as the
selection is exact whatever the sample; ``gradprune.pruning.selection``) and sentencepiece training
(seed 0: one prepared dataset serves every run; ``gradprune.data.translation``).
"""

from __future__ import annotations

import random

import numpy as np
import torch

# A prime larger than any number of epochs or steps of a run: (seed, epoch) and (seed, step) pairs
# map to distinct generator seeds within a stream.
_PER_SEED = 1_000_003
# The bucket order of epoch e is seeded 7 after the example order of e, as first released (so it
# shares its seed with the example order of epoch e + 7, which draws a permutation of another length).
_BUCKET_OFFSET = 7
_AUGMENT_PER_SEED = 7_919
# Rank streams: (seed, rank, step) -> a generator seed, distinct for ranks below 2**16 and steps
# below _PER_SEED (the step is that of a resume whose checkpoint holds no state for this rank).
_RANK_STREAM_BASE = 2**40
_RANKS = 2**16
_EVAL_SUBSET = 104_729


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (every rank gets the same weights)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rank_stream_seed(seed: int, rank: int, step: int = 0) -> int:
    """Generator seed of rank ``rank`` (>= 1) from step ``step`` on: the model's build (0), or a
    resume whose checkpoint has no state for this rank (it was written by fewer processes)."""
    if not 0 < rank < _RANKS:
        raise ValueError(f"rank streams are for ranks 1..{_RANKS - 1}, got {rank}")
    return _RANK_STREAM_BASE + (seed * _PER_SEED + step) * _RANKS + rank


def seed_rank(seed: int, rank: int, step: int = 0) -> None:
    """Give process ``rank`` its own global generators once the model is built (rank 0 keeps the
    run's stream: one process draws what it always drew)."""
    if rank == 0:
        return
    stream = rank_stream_seed(seed, rank, step)
    random.seed(stream)
    np.random.seed(stream % 2**32)
    torch.manual_seed(stream)


def generator(stream_seed: int) -> torch.Generator:
    """A private CPU generator: drawing from it never moves the global generators."""
    return torch.Generator().manual_seed(stream_seed)


def epoch_order_seed(seed: int, epoch: int) -> int:
    return seed * _PER_SEED + epoch


def bucket_order_seed(seed: int, epoch: int) -> int:
    return seed * _PER_SEED + epoch + _BUCKET_OFFSET


def augment_seed(seed: int, step: int) -> int:
    return seed * _AUGMENT_PER_SEED + step


def image_draw_seed(seed: int, step: int, batch_size: int, row: int) -> int:
    """Seed of the augmentation of row ``row`` of step ``step``'s global batch: tied to the
    image's position in the stream, not to the process or loader worker that reads it."""
    return (seed * _PER_SEED + step) * batch_size + row


def eval_subset_seed(label: int) -> int:
    """Seed of the choice of class ``label``'s curve images (-1: which classes get one more)."""
    return _EVAL_SUBSET + label
