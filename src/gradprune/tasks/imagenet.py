"""ImageNet classification for the paper preset: TF-slim's Inception preprocessing
(:mod:`gradprune.tasks.inception_preprocessing`), loader workers from the job's threads, uint8
batches finished on the device, and batches that are a pure function of (seed, step).

The images are listed once by the check_imagenet rule (:mod:`gradprune.data.imagenet`); every
job reads that index instead of rescanning the folders.

Decoding: ``torchvision.io.decode_image`` (libjpeg-turbo) in the loader workers. We chose it
over NVIDIA DALI (not on PyPI, and its random operators draw from per-pipeline generators: tying
each draw to the image's position in the stream would mean feeding every parameter in from
Python), over nvjpeg on the device (``decode_jpeg(device="cuda")``: it shares the GPU with the
training step, and ILSVRC2012's few PNG and CMYK files would need a CPU path anyway) and over
pre-resized shards (a second copy of the dataset, and TF-slim crops the full-resolution image). Each worker decodes,
crops, resizes and flips; its uint8 output is a quarter of float32's bytes through shared memory
and over PCIe; the colour distortion and the scaling to [-1, 1] run on the whole batch on the
device. ``benchmarks/bench_imagenet_loader.py`` measures images/s per worker against the
earlier PIL + float32 path.

Each image's crop, flip and colour are drawn from a generator seeded by its position in the
stream (:func:`gradprune.seeding.image_draw_seed`), so a resumed run, another worker count or
another number of ranks sees exactly the same augmented batch.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision.io import read_file

from gradprune import seeding
from gradprune.data.imagenet import read_split
from gradprune.tasks import inception_preprocessing as prep
from gradprune.tasks.base import epoch_permutation
from gradprune.tasks.vision import ImageClassificationTask


def image_size(model: str) -> int:
    """Input side of the model as TF-slim trains and evaluates it: InceptionV3 299, others 224."""
    return 299 if model == "inception_v3" else 224


def loader_workers(threads: int) -> int:
    """DataLoader workers of a job with ``threads`` CPU threads (per process under torchrun): all
    but one, which the training process keeps to drive the device; none with one thread."""
    return max(0, int(threads) - 1)


def stratified_subset(labels: list[int], n: int) -> list[int]:
    """Indices of ``n`` images, as equal a number per class as ``n`` allows (the classes that get
    one more are drawn), each class's chosen at random from its images in index order, so the
    subset is fixed (one seed for every run: curves of different runs score the same images) and
    independent of the order the files were listed in. Sorted, so loading follows the index."""
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    classes = sorted(by_class)
    if n >= len(labels):
        return list(range(len(labels)))
    per_class, extra = divmod(n, len(classes))
    bonus = torch.randperm(len(classes), generator=seeding.generator(seeding.eval_subset_seed(-1)))
    bonus = set(bonus[:extra].tolist())
    chosen: list[int] = []
    for position, label in enumerate(classes):
        members = by_class[label]
        k = min(len(members), per_class + (position in bonus))
        order = torch.randperm(len(members), generator=seeding.generator(seeding.eval_subset_seed(label)))
        chosen += [members[j] for j in order[:k].tolist()]
    return sorted(chosen)


class _TrainImages(Dataset):
    """Items looked up as (index, draw): the worker's part of TF-slim's training preprocessing,
    every random number from a generator seeded by ``draw``."""

    def __init__(self, paths: list[str], labels: list[int], size: int) -> None:
        self.paths, self.labels, self.size = paths, labels, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key):
        index, draw = key
        image, colour = prep.train_image(read_file(self.paths[index]), self.size,
                                         seeding.generator(draw))
        return image, self.labels[index], colour


class _EvalImages(Dataset):
    def __init__(self, paths: list[str], labels: list[int], size: int) -> None:
        self.paths, self.labels, self.size = paths, labels, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index):
        return prep.eval_image(read_file(self.paths[index]), self.size), self.labels[index]


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
    def __init__(self, experiment, data_files, device, seed, dist=None):
        super().__init__(experiment, data_files, device, seed, dist)
        index = json.loads(Path(data_files["prepared"]).read_text())
        self.size = image_size(experiment["model"])
        self.train = _TrainImages(*read_split(index, "train"), self.size)
        self.val = _EvalImages(*read_split(index, "val"), self.size)
        self.classes = index["splits"]["train"]["classes"]
        # The job's CPU share reaches the task as torch's thread count: every entry point (the
        # rules' scripts, the CLI, each torchrun worker with threads // processes) calls
        # runner.configure_torch(threads) before the task is built. Batches do not depend on it.
        self.workers = loader_workers(torch.get_num_threads())
        self._iterator, self._next_step = None, None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return 3

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train) // self.batch_size

    def _loader(self, data, **kwargs) -> DataLoader:
        return DataLoader(data, num_workers=self.workers, pin_memory=self.device.type == "cuda",
                          persistent_workers=False, **kwargs)

    def batch(self, step):
        if self._iterator is None or step != self._next_step:
            sampler = _StepBatches(len(self.train), self.batch_size, self.seed, step,
                                   self.dist.rank, self.dist.world_size)
            self._iterator = iter(self._loader(self.train, batch_sampler=sampler))
        images, labels, colour = next(self._iterator)
        self._next_step = step + 1
        images = images.to(self.device, non_blocking=True)
        return (prep.model_input(images, colour.to(self.device, non_blocking=True)),
                labels.to(self.device, non_blocking=True))

    def curve_size(self, limit: int) -> int:
        return min(limit, len(self.val))

    def eval_batches(self, limit):
        data = self.val if limit is None else Subset(self.val, stratified_subset(self.val.labels, limit))
        for images, labels in self._loader(data, batch_size=self.eval_batch_size):
            yield prep.model_input(images.to(self.device, non_blocking=True)), labels
