"""CIFAR-10 reader: the binary version's archive -> uint8 images (N, 3, 32, 32) and int64 labels.

The registry holds ``cifar-10-binary.tar.gz`` itself (size and sha256 as tensorflow_datasets'
``url_checksums/cifar10.txt`` publishes them); the batches are read inside it without extracting.
The binary version rather than torchvision's ``CIFAR10`` (the python pickles): torchvision
downloads on its own and checks only an MD5, and a fixed-size binary record needs no unpickling of
downloaded data. A record is one label byte then 3,072 pixel bytes, the red, green and blue planes
of a 32x32 image in row-major order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gradprune.data.archives import read_tar_members
from gradprune.data.errors import FormatError

ARCHIVE = "cifar-10-binary.tar.gz"
SPLIT_MEMBERS = {
    "train": tuple(f"cifar-10-batches-bin/data_batch_{i}.bin" for i in range(1, 6)),
    "test": ("cifar-10-batches-bin/test_batch.bin",),
}
SPLIT_SIZES = {"train": 50_000, "test": 10_000}
RECORD_BYTES = 1 + 3 * 32 * 32
NUM_CLASSES = 10


def load_cifar10(root: str | Path, split: str = "train", check_size: bool = True):
    """(images uint8 (N, 3, 32, 32), labels int64 (N,)) of ``split`` from root/cifar-10-binary.tar.gz."""
    if split not in SPLIT_MEMBERS:
        raise ValueError(f"unknown CIFAR-10 split {split!r}; known: {sorted(SPLIT_MEMBERS)}")
    path = Path(root) / ARCHIVE
    members = list(SPLIT_MEMBERS[split])
    data = read_tar_members(path, members)
    records = []
    for name in members:
        raw = np.frombuffer(data[name], dtype=np.uint8)
        if raw.size % RECORD_BYTES:
            raise FormatError(f"{path}:{name}: {raw.size} bytes is not a whole number of "
                              f"{RECORD_BYTES}-byte records")
        records.append(raw.reshape(-1, RECORD_BYTES))
    table = np.concatenate(records)
    labels = torch.from_numpy(table[:, 0].astype(np.int64))
    images = torch.from_numpy(table[:, 1:].reshape(-1, 3, 32, 32).copy())
    if check_size and len(labels) != SPLIT_SIZES[split]:
        raise FormatError(f"{path}: {len(labels)} {split} images, expected {SPLIT_SIZES[split]}")
    if int(labels.max()) >= NUM_CLASSES:
        raise FormatError(f"{path}: label {int(labels.max())} out of range 0-9")
    return images, labels
