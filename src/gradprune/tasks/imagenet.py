"""ImageNet batches for the paper preset: torchvision's ImageFolder, standard Inception-style
augmentation, worker processes, and batches that are still a pure function of (seed, step).

Each sample's random crop and flip are drawn from a generator seeded by its position in the
stream, so a resumed run (or another worker count) sees exactly the same augmented batch.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import datasets, transforms

from gradprune import seeding
from gradprune.tasks.base import epoch_permutation

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


class ImageNetData:
    def __init__(self, index_file, experiment, seed, device):
        index = json.loads(Path(index_file).read_text())
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
        self.batch_size = experiment["train"]["batch_size"]
        self.eval_batch_size = experiment["train"].get("eval_batch_size", 256)
        self.workers = experiment.get("resources", {}).get("threads", 2)
        self.seed, self.device = seed, torch.device(device)
        self._iterator, self._next_step = None, None

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train) // self.batch_size

    def batch(self, step, dist):
        if self._iterator is None or step != self._next_step:
            sampler = _StepBatches(len(self.train), self.batch_size, self.seed, step,
                                   dist.rank, dist.world_size)
            loader = DataLoader(self.train, batch_sampler=sampler, num_workers=self.workers,
                                pin_memory=self.device.type == "cuda", persistent_workers=False)
            self._iterator = iter(loader)
        x, y = next(self._iterator)
        self._next_step = step + 1
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    @torch.no_grad()
    def evaluate(self, model, limit=None):
        data = self.val if limit is None else torch.utils.data.Subset(self.val, range(min(limit, len(self.val))))
        loader = DataLoader(data, batch_size=self.eval_batch_size, num_workers=self.workers)
        was_training = model.training
        model.eval()
        correct1 = correct5 = n = 0
        for x, y in loader:
            logits = model(x.to(self.device))
            y = y.to(self.device)
            top = logits.topk(5, dim=1).indices
            correct1 += int((top[:, 0] == y).sum())
            correct5 += int((top == y[:, None]).any(dim=1).sum())
            n += len(y)
        model.train(was_training)
        return {"top1": 100.0 * correct1 / n, "top5": 100.0 * correct5 / n}
