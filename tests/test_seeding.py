"""The random streams of a run (gradprune.seeding): each keeps the generator seed it had before
the streams were gathered in one module, so every run's numbers stay bitwise what they were."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from gradprune import seeding
from gradprune.tasks.base import epoch_permutation

# The generator seeds as the tasks computed them before gradprune.seeding (tasks/base.py,
# tasks/translation.py, tasks/vision.py, tasks/imagenet.py): changing one changes published runs.
FIRST_RELEASED = {
    "epoch_order_seed": lambda seed, i: seed * 1_000_003 + i,
    "bucket_order_seed": lambda seed, i: seed * 1_000_003 + i + 7,
    "augment_seed": lambda seed, i: seed * 7_919 + i,
}


@pytest.mark.parametrize("stream", sorted(FIRST_RELEASED))
@pytest.mark.parametrize("seed", [0, 1, 7, 123_456])
def test_streams_keep_their_first_released_seeds(stream, seed):
    for index in (0, 1, 5, 999, 250_000):
        assert getattr(seeding, stream)(seed, index) == FIRST_RELEASED[stream](seed, index)


@pytest.mark.parametrize("seed", [0, 3])
def test_imagenet_draws_keep_their_first_released_seeds(seed):
    batch_size = 32
    for step in (0, 1, 40_000):
        for row in (0, 5, 31):
            assert seeding.image_draw_seed(seed, step, batch_size, row) == (
                (seed * 1_000_003 + step) * batch_size + row
            )


def test_epoch_permutation_draws_from_the_epoch_order_stream():
    old = torch.randperm(50, generator=torch.Generator().manual_seed(2 * 1_000_003 + 4))
    assert torch.equal(epoch_permutation(50, seed=2, epoch=4), old)
    assert not torch.equal(epoch_permutation(50, seed=2, epoch=5), old)


def test_private_generators_leave_the_global_ones_alone():
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    torch.rand(5, generator=seeding.generator(seeding.augment_seed(0, 3)))
    assert torch.equal(torch.rand(3), expected)


def test_seed_everything_seeds_python_numpy_and_torch():
    seeding.seed_everything(5)
    first = (random.random(), np.random.rand(), torch.rand(1))
    random.random(), np.random.rand(), torch.rand(1)
    seeding.seed_everything(5)
    again = (random.random(), np.random.rand(), torch.rand(1))
    assert first[:2] == again[:2] and torch.equal(first[2], again[2])
    seeding.seed_everything(6)
    assert torch.rand(1) != first[2]
