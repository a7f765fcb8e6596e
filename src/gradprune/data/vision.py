"""Prepared small-image datasets (Fashion-MNIST, CIFAR-10): one safetensors file per dataset with
``{split}_images`` (uint8) and ``{split}_labels`` (int64) of train and test, as
:class:`gradprune.tasks.vision.VisionTask` reads them."""

from __future__ import annotations

from safetensors.torch import save_file

from gradprune.atomic import atomic_path


def prepare_fashion_mnist(raw_dir, out_path) -> None:
    """Decode the four idx.gz files into one safetensors file of uint8 images and int64 labels."""
    from gradprune.data.fashion_mnist import load_fashion_mnist

    _save_splits(load_fashion_mnist, raw_dir, out_path)


def prepare_cifar10(raw_dir, out_path) -> None:
    """Read the binary batches inside the archive into one safetensors file (uint8, int64)."""
    from gradprune.data.cifar10 import load_cifar10

    _save_splits(load_cifar10, raw_dir, out_path)


def _save_splits(load, raw_dir, out_path) -> None:
    """Write the train and test splits ``load`` reads from ``raw_dir`` (layout in the module docstring)."""
    tensors = {}
    for split in ("train", "test"):
        # Sizes are not checked here: the download step verified every file's sha256, and the
        # test suite serves smaller synthetic files under another registry.
        images, labels = load(raw_dir, split, check_size=False)
        tensors[f"{split}_images"] = images.contiguous()
        tensors[f"{split}_labels"] = labels.contiguous()
    with atomic_path(out_path) as tmp:
        save_file(tensors, str(tmp))
