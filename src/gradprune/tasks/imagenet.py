"""ImageNet classification for the paper preset: torchvision's ImageFolder, standard
Inception-style augmentation, worker processes, and batches that are still a pure function of
(seed, step). The folder is checked and indexed by the prepare step (:mod:`gradprune.data.imagenet`).

Each sample's random crop and flip are drawn from a generator seeded by its position in the
stream, so a resumed run (or another worker count) sees exactly the same augmented batch.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision import datasets, transforms

from gradprune import seeding
from gradprune.tasks.base import epoch_permutation
from gradprune.tasks.vision import ImageClassificationTask

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def image_size(model: str) -> tuple[int, int]:
    """(crop, resize-before-centre-crop) of the model: InceptionV3 299/342, others 224/256."""
    return (299, 342) if model == "inception_v3" else (224, 256)


class _SeededFolder(Dataset):
    """ImageFolder whose items are looked up as (index, draw) with the augmentation seeded by draw."""

    def __init__(self, root, transform):
        self.folder = datasets.ImageFolder(root)
        self.transform = transform

    def __len__(self):
        return len(self.folder)

    def __getitem__(self, key):
        index, draw = key
        image, label = self.folder[index]
        torch.manual_seed(draw)  # torchvision's random transforms draw from the global generator
        return self.transform(image), label


class _StepBatches:
    """Batch sampler from ``start`` on: the indices of step s come from the epoch's permutation."""

    def __init__(self, n, batch_size, seed, start, rank=0, world_size=1):
        self.n, self.batch_size, self.seed, self.start = n, batch_size, seed, start
        self.rank, self.world_size = rank, world_size
        self.steps_per_epoch = n // batch_size

    def __iter__(self):
        step, epoch, order = self.start, None, None
        while True:
            e, i = divmod(step, self.steps_per_epoch)
            if e != epoch:
                epoch, order = e, epoch_permutation(self.n, self.seed, e)
            idx = order[i * self.batch_size : (i + 1) * self.batch_size].tolist()
            # Under DDP each rank loads only its rows; draws stay tied to the global position.
            draws = [(j, seeding.image_draw_seed(self.seed, step, self.batch_size, k))
                     for k, j in enumerate(idx)]
            yield draws[self.rank :: self.world_size]
            step += 1


class ImageNetTask(ImageClassificationTask):
    #: DataLoader worker processes. A run's settings hold no resources (they do not change its
    #: results: batches are the same for any worker count), so resources.threads never reached
    #: this task; 2 is the number it always used.
    workers = 2

    def __init__(self, experiment, data_files, device, seed, dist=None):
        super().__init__(experiment, data_files, device, seed, dist)
        index = json.loads(Path(data_files["prepared"]).read_text())
        root = index["root"]
        crop, resize = image_size(experiment["model"])
        normalize = transforms.Normalize(MEAN, STD)
        self.train = _SeededFolder(f"{root}/train", transforms.Compose([
            transforms.RandomResizedCrop(crop), transforms.RandomHorizontalFlip(),
            transforms.ToTensor(), normalize,
        ]))
        self.val = datasets.ImageFolder(f"{root}/val", transforms.Compose([
            transforms.Resize(resize), transforms.CenterCrop(crop), transforms.ToTensor(), normalize,
        ]))
        self._iterator, self._next_step = None, None

    @property
    def num_classes(self) -> int:
        return len(self.train.folder.classes)

    @property
    def in_channels(self) -> int:
        return 3

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train) // self.batch_size

    def batch(self, step):
        if self._iterator is None or step != self._next_step:
            sampler = _StepBatches(len(self.train), self.batch_size, self.seed, step,
                                   self.dist.rank, self.dist.world_size)
            loader = DataLoader(self.train, batch_sampler=sampler, num_workers=self.workers,
                                pin_memory=self.device.type == "cuda", persistent_workers=False)
            self._iterator = iter(loader)
        x, y = next(self._iterator)
        self._next_step = step + 1
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def curve_size(self, limit: int) -> int:
        return min(limit, len(self.val))

    def eval_batches(self, limit):
        data = self.val if limit is None else Subset(self.val, range(min(limit, len(self.val))))
        return DataLoader(data, batch_size=self.eval_batch_size, num_workers=self.workers)
