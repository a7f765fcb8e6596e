"""Fashion-MNIST readers: idx(.gz) files -> uint8 images (N, 28, 28) and int64 labels.

The idx format is parsed with numpy rather than torchvision's read_image_file/read_label_file:
those need decompressed files on disk and fail with bare asserts, whereas here the .gz files are
read in place and every mismatch (magic number, shape, byte count, split size) names the file.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from gradprune.data.errors import FormatError

IMAGES_MAGIC = 2051  # 0x00000803: unsigned byte, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned byte, 1 dimension
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
SPLIT_SIZES = {"train": 60_000, "test": 10_000}
NUM_CLASSES = 10
CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def _read_idx(path: str | Path, magic: int, ndim: int) -> np.ndarray:
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise FormatError(f"{path}: cannot read idx file: {e}") from e
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise FormatError(f"{path}: {len(raw)} bytes is too short for an idx header")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise FormatError(f"{path}: magic number {found}, expected {magic} (wrong file type?)")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise FormatError(
            f"{path}: header announces shape {dims} ({expected} bytes) "
            f"but holds {len(raw) - header} bytes of data"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def read_idx_images(path: str | Path) -> torch.Tensor:
    """uint8 tensor (N, rows, cols) from an idx3 image file (.gz or plain)."""
    return torch.from_numpy(_read_idx(path, IMAGES_MAGIC, 3).copy())


def read_idx_labels(path: str | Path) -> torch.Tensor:
    """int64 tensor (N,) from an idx1 label file (.gz or plain)."""
    return torch.from_numpy(_read_idx(path, LABELS_MAGIC, 1).astype(np.int64))


def load_fashion_mnist(
    root: str | Path, split: str = "train", check_size: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 (N, 28, 28), labels int64 (N,)) of a split ('train' or 'test') in root.

    `check_size` also requires the published split sizes (60,000 / 10,000); turn it off for
    synthetic fixtures.
    """
    if split not in SPLIT_FILES:
        raise ValueError(f"unknown Fashion-MNIST split {split!r}; known: {sorted(SPLIT_FILES)}")
    images_file, labels_file = (Path(root) / f for f in SPLIT_FILES[split])
    images, labels = read_idx_images(images_file), read_idx_labels(labels_file)
    if images.shape[1:] != (28, 28):
        raise FormatError(f"{images_file}: images are {tuple(images.shape[1:])}, expected 28x28")
    if len(images) != len(labels):
        raise FormatError(
            f"{images_file} holds {len(images)} images but {labels_file} {len(labels)} labels"
        )
    if check_size and len(images) != SPLIT_SIZES[split]:
        raise FormatError(
            f"{images_file}: {len(images)} images, expected {SPLIT_SIZES[split]} for {split}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise FormatError(f"{labels_file}: labels outside 0..{NUM_CLASSES - 1}")
    return images, labels


class FashionMNIST(Dataset):
    """In-memory Fashion-MNIST split; items are (transform(image uint8 28x28), label int)."""

    def __init__(
        self, root: str | Path, split: str = "train", transform=None, check_size: bool = True
    ):
        self.images, self.labels = load_fashion_mnist(root, split, check_size)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])
