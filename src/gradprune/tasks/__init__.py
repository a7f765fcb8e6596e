"""Tasks: what a family trains on and how it is scored (vision, lm, translation).

A task turns prepared data files into batches for a given step and evaluates a model. Batches are a
pure function of (seed, step), so a run resumed at step t sees exactly the batches it would have
seen; state that must carry across steps (an LSTM's hidden state) is in ``state_dict()``.
"""

from __future__ import annotations

from gradprune.tasks.base import Task


def build_task(experiment: dict, data_files: dict, device, seed: int, dist=None) -> Task:
    """The task of ``experiment``'s family (and dataset); ``dist``: the process's
    :class:`~gradprune.training.distributed.DistContext` under torchrun."""
    family = experiment["family"]
    if family == "vision" and experiment["dataset"] == "imagenet":
        from gradprune.tasks.imagenet import ImageNetTask

        return ImageNetTask(experiment, data_files, device, seed, dist)
    if family == "vision":
        from gradprune.tasks.vision import VisionTask

        return VisionTask(experiment, data_files, device, seed, dist)
    if family == "lm":
        from gradprune.tasks.lm import LanguageModelTask

        return LanguageModelTask(experiment, data_files, device, seed, dist)
    if family == "translation":
        from gradprune.tasks.translation import TranslationTask

        return TranslationTask(experiment, data_files, device, seed, dist)
    raise ValueError(f"unknown family {family!r}; known: vision, lm, translation")


__all__ = ["Task", "build_task"]
