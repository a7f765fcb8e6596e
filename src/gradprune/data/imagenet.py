"""ILSVRC2012 (ImageNet) from local folders: it cannot be downloaded, so we check it early.

The check writes an index (``resources/prepared/imagenet/index.json``: the root, and per split
the sorted class folders and each class's sorted file names) that every ImageNet job reads, so
that no job rescans the 1.28M training files. Labels are positions in the sorted class list and
images are in (class, file name) order, as torchvision's ImageFolder orders them.

Expected layout (the one torchvision's ImageFolder and the PyTorch ImageNet example use):
``<root>/train/<wnid>/*.JPEG`` and ``<root>/val/<wnid>/*.JPEG`` (the validation images sorted
into class folders, e.g. with the well-known ``valprep.sh``), 1000 classes each.
"""

from __future__ import annotations

import json
from pathlib import Path

from gradprune.atomic import write_bytes
from gradprune.data.errors import DataError

IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}
NUM_CLASSES = 1000
SPLIT_SIZES = {"train": 1_281_167, "val": 50_000}


class ImageNetLayoutError(DataError):
    pass


def index_imagenet(root: str | Path, expected_classes: int = NUM_CLASSES, check_sizes: bool = True) -> dict:
    """Check the folder layout and count images per split; raise ImageNetLayoutError on problems."""
    root = Path(root) if root else None
    how = (
        "Set data.imagenet in the preset to the folder holding ILSVRC2012 train/ and val/ with one "
        "sub-folder per class (wnid); ImageNet must be obtained from image-net.org by hand."
    )
    if root is None or not root.is_dir():
        raise ImageNetLayoutError(f"ImageNet folder {root} does not exist. {how}")
    index = {"root": str(root.resolve()), "splits": {}}
    for split in ("train", "val"):
        folder = root / split
        if not folder.is_dir():
            raise ImageNetLayoutError(f"{folder} is missing. {how}")
        classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
        if len(classes) != expected_classes:
            raise ImageNetLayoutError(
                f"{folder} has {len(classes)} class folders, expected {expected_classes}. {how}"
            )
        files = {
            c: sorted(f.name for f in (folder / c).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            for c in classes
        }
        empty = [c for c, names in files.items() if not names]
        if empty:
            raise ImageNetLayoutError(f"{folder}: class folders without images: {empty[:5]}. {how}")
        total = sum(len(names) for names in files.values())
        if check_sizes and total != SPLIT_SIZES[split]:
            raise ImageNetLayoutError(
                f"{folder} holds {total} images, ILSVRC2012 {split} has {SPLIT_SIZES[split]}. {how}"
            )
        index["splits"][split] = {"classes": classes, "images": total,
                                  "files": [files[c] for c in classes]}
    if index["splits"]["train"]["classes"] != index["splits"]["val"]["classes"]:
        raise ImageNetLayoutError(f"train/ and val/ of {root} name different classes. {how}")
    return index


def write_index(root, out_path, expected_classes: int = NUM_CLASSES, check_sizes: bool = True) -> None:
    index = index_imagenet(root, expected_classes, check_sizes)
    write_bytes(out_path, json.dumps(index, separators=(",", ":")).encode("utf-8"))


def read_split(index: dict, split: str) -> tuple[list[str], list[int]]:
    """(paths, labels) of one split of an index written by :func:`write_index`, in ImageFolder's
    order; an index of an older layout (no file lists) is refused with the fix."""
    entry = index["splits"][split]
    if "files" not in entry:
        raise ImageNetLayoutError(
            "the ImageNet index predates its file lists; delete resources/prepared/imagenet/"
            "index.json and rerun so the check_imagenet rule writes it again")
    root = Path(index["root"]) / split
    paths, labels = [], []
    for label, (wnid, names) in enumerate(zip(entry["classes"], entry["files"])):
        paths += [str(root / wnid / name) for name in names]
        labels += [label] * len(names)
    return paths, labels
