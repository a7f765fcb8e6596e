"""Image classification: MobileNetV1 / InceptionV3 on Fashion-MNIST, CIFAR-10 or ImageNet.

:class:`ImageClassificationTask` holds what every image dataset shares (the models, the loss, the
top-1/top-5 evaluation); :class:`VisionTask` serves the small datasets, held in memory as uint8
tensors (prepared once by the workflow) and batched by index, which on a 2-core CPU is several
times faster than a DataLoader with per-image transforms. ImageNet has its own task
(:class:`gradprune.tasks.imagenet.ImageNetTask`).
"""

from __future__ import annotations

import abc
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from gradprune import seeding
from gradprune.models import build_model
from gradprune.tasks.base import Task, epoch_permutation

# Per-channel statistics of the training sets (computed once; standard values).
_STATS = {
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar-10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}
_NUM_CLASSES = {"fashion-mnist": 10, "cifar-10": 10}


@torch.no_grad()
def top1_top5(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], device) -> dict:
    """Top-1 and top-5 accuracy (%) of ``model`` (put in eval mode meanwhile) over ``batches``."""
    was_training = model.training
    model.eval()
    correct1 = correct5 = n = 0
    for x, y in batches:
        logits = model(x.to(device))
        y = y.to(device)
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        correct1 += int((top[:, 0] == y).sum())
        correct5 += int((top == y[:, None]).any(dim=1).sum())
        n += len(y)
    model.train(was_training)
    return {"top1": 100.0 * correct1 / n, "top5": 100.0 * correct5 / n}


class ImageClassificationTask(Task):
    """What every image dataset shares; a dataset gives its batches and its evaluation batches."""

    metric_names = ("top1", "top5")
    curve_metric = "top1"
    supports_sharding = True

    def __init__(self, experiment, data_files, device, seed, dist=None):
        super().__init__(experiment, data_files, device, seed, dist)
        self.dataset = experiment["dataset"]
        self.batch_size = experiment["train"]["batch_size"]
        self.eval_batch_size = experiment["train"]["eval_batch_size"]

    @property
    @abc.abstractmethod
    def num_classes(self) -> int: ...

    @property
    @abc.abstractmethod
    def in_channels(self) -> int: ...

    @abc.abstractmethod
    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The global batch of ``step``, this rank's rows of it under DDP."""

    @abc.abstractmethod
    def eval_batches(self, limit: int | None) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        """(images, labels) batches of the first ``limit`` test images (all when None)."""

    def build_model(self, size) -> nn.Module:
        """The model in ``channels_last`` memory layout: oneDNN's convolutions (and cuDNN's under
        autocast) run faster on NHWC tensors; the MobileNet step of the mini takes 0.5x its NCHW
        time on CPU (``benchmarks/bench_vision_step.py``). Parameters keep their shapes and names;
        exported weights are written contiguous (``export_weights``)."""
        args = dict(self.experiment["model_args"])
        if self.experiment["model"] == "inception_v3":  # no width multiplier: size is 1.0
            model = build_model("inception_v3", num_classes=self.num_classes, **args)
        else:
            model = build_model(
                self.experiment["model"], width=float(size), num_classes=self.num_classes,
                in_channels=self.in_channels, **args,
            )
        return model.to(memory_format=torch.channels_last)

    def train_loss(self, model, step):
        x, y = self.batch(step)
        out = model(x)
        smoothing = self.experiment["train"]["label_smoothing"]
        if isinstance(out, tuple):  # InceptionV3 in training: (logits, aux_logits), aux weight 0.4
            logits, aux = out
            return F.cross_entropy(logits, y, label_smoothing=smoothing) + 0.4 * F.cross_entropy(
                aux, y, label_smoothing=smoothing
            )
        return F.cross_entropy(out, y, label_smoothing=smoothing)

    @abc.abstractmethod
    def curve_size(self, limit: int) -> int: ...

    def evaluate(self, model, split="test", limit=None):
        # Fashion-MNIST and CIFAR-10 have no validation split; ImageNet's val is its test set.
        if split not in ("test", "valid"):
            raise ValueError(f"unknown split {split!r}")
        return top1_top5(model, self.eval_batches(limit), self.device)


class VisionTask(ImageClassificationTask):
    """Fashion-MNIST and CIFAR-10, in memory."""

    def __init__(self, experiment, data_files, device, seed, dist=None):
        super().__init__(experiment, data_files, device, seed, dist)
        tensors = load_file(str(data_files["prepared"]))
        subset = experiment["train"]["train_subset"]
        self.train_images = tensors["train_images"][:subset]
        self.train_labels = tensors["train_labels"][:subset]
        self.test_images = tensors["test_images"]
        self.test_labels = tensors["test_labels"]
        mean, std = _STATS[self.dataset]
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)

    @property
    def num_classes(self) -> int:
        return _NUM_CLASSES[self.dataset]

    @property
    def in_channels(self) -> int:
        return self.train_images.shape[1] if self.train_images.dim() == 4 else 1

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_labels) // self.batch_size  # drop the last partial batch

    @staticmethod
    def _unit(images: torch.Tensor) -> torch.Tensor:
        """uint8 images -> float in [0, 1], NCHW."""
        x = images.float().div_(255.0)
        return x.unsqueeze(1) if x.dim() == 3 else x

    def _standardise(self, x: torch.Tensor) -> torch.Tensor:
        x = ((x - self.mean) / self.std).to(self.device)
        return x.contiguous(memory_format=torch.channels_last)

    def _normalise(self, images: torch.Tensor) -> torch.Tensor:
        return self._standardise(self._unit(images))

    def _augment(self, x: torch.Tensor, step: int) -> torch.Tensor:
        """The experiment's ``augment``: random horizontal flips (``hflip``) and translations of up
        to ``shift`` pixels, each image its own, on [0, 1] images before standardisation, so the
        uncovered border is black (0), the background of Fashion-MNIST and the padding of
        torchvision's ``RandomCrop`` on CIFAR-10. (Until issue 21 one shift served the whole batch
        and the border was the mean intensity.) Drawn from a generator seeded by the step, so a
        resumed run sees the same augmentation; the flips are drawn first whether or not they are
        applied, so turning shifts on or off keeps each step's flips."""
        gen = seeding.generator(seeding.augment_seed(self.seed, step))
        n, s = x.shape[0], self.experiment["augment"]["shift"]
        flip = torch.rand(n, generator=gen) < 0.5
        if self.experiment["augment"]["hflip"]:
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        if s == 0:
            return x
        offsets = torch.randint(0, 2 * s + 1, (2, n), generator=gen)  # top-left of each crop
        h, w = x.shape[-2:]
        padded = F.pad(x, (s, s, s, s))
        rows = (offsets[0].view(n, 1) + torch.arange(h)).view(n, 1, h, 1)
        cols = (offsets[1].view(n, 1) + torch.arange(w)).view(n, 1, 1, w)
        return padded[torch.arange(n).view(n, 1, 1, 1), torch.arange(x.shape[1]).view(1, -1, 1, 1),
                      rows, cols]

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, i = divmod(step, self.steps_per_epoch)
        order = epoch_permutation(len(self.train_labels), self.seed, epoch)
        idx = order[i * self.batch_size : (i + 1) * self.batch_size]
        x = self._standardise(self._augment(self._unit(self.train_images[idx]), step))
        return self.dist.shard(x), self.dist.shard(self.train_labels[idx].to(self.device))

    def curve_size(self, limit: int) -> int:
        return min(limit, len(self.test_labels))

    def eval_batches(self, limit):
        images, labels = self.test_images[:limit], self.test_labels[:limit]
        for start in range(0, len(labels), self.eval_batch_size):
            yield (self._normalise(images[start : start + self.eval_batch_size]),
                   labels[start : start + self.eval_batch_size])
