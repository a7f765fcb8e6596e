"""The interface every family implements."""

from __future__ import annotations

import abc

import torch
from torch import nn

from gradprune import seeding
from gradprune.training.distributed import DistContext


class Task(abc.ABC):
    #: metric names evaluate() returns; the first is the headline metric of tables
    metric_names: tuple[str, ...] = ()
    #: metric evaluated periodically during training for the curves (eval.csv)
    curve_metric: str = ""
    #: whether train_loss keeps only this rank's rows of a global batch (multi-GPU DDP)
    supports_sharding: bool = False

    def __init__(self, experiment: dict, data_files: dict, device, seed: int,
                 dist: DistContext | None = None) -> None:
        self.experiment = experiment
        self.data_files = data_files
        self.device = torch.device(device)
        self.seed = seed
        self.dist = dist or DistContext()  # this process's place under torchrun, if any

    @abc.abstractmethod
    def build_model(self, size) -> nn.Module:
        """A freshly initialised model of this size (seeded by the caller)."""

    @abc.abstractmethod
    def train_loss(self, model: nn.Module, step: int) -> torch.Tensor:
        """Loss of the batch of optimizer step ``step`` (model already in train mode)."""

    @abc.abstractmethod
    def evaluate(self, model: nn.Module, split: str = "test", limit: int | None = None) -> dict:
        """Metrics on ``split`` ("valid" or "test"); ``limit`` examples for quick curves."""

    def curve_size(self, limit: int) -> int:
        """How many held-out units ``evaluate(split="valid", limit=limit)`` scores (tokens for a
        language model, examples otherwise): the ``N`` in eval.csv's column names
        (:mod:`gradprune.curves`). Tasks with a ``curve_metric`` must say."""
        raise NotImplementedError(f"{type(self).__name__} has a curve_metric but no curve_size")

    @property
    def steps_per_epoch(self) -> int:
        return 0

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of epoch ``epoch``: a pure function of (seed, epoch), for resumption."""
    return torch.randperm(n, generator=seeding.generator(seeding.epoch_order_seed(seed, epoch)))
