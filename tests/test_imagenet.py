"""ImageNet cannot be downloaded: its folders are checked early, and its batches (tiny synthetic
ImageFolder here) are a pure function of (seed, step), also when split over DDP ranks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from tests.workflow_helpers import validated_experiment

from gradprune.data.imagenet import ImageNetLayoutError, index_imagenet, write_index
from gradprune.tasks import build_task
from gradprune.tasks.imagenet import ImageNetTask
from gradprune.training.distributed import DistContext

CLASSES = ["n01", "n02", "n03"]


def _folder(root, per_class=4):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in CLASSES:
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / c / f"{c}_{i}.JPEG", format="PNG")
    return root


def test_missing_or_wrong_layout_names_the_problem_and_the_fix(tmp_path):
    with pytest.raises(ImageNetLayoutError, match="does not exist.*data.imagenet"):
        index_imagenet(tmp_path / "nowhere")
    with pytest.raises(ImageNetLayoutError, match="ImageNet folder None"):
        index_imagenet(None)
    root = _folder(tmp_path / "in")
    with pytest.raises(ImageNetLayoutError, match="has 3 class folders, expected 1000"):
        index_imagenet(root)
    with pytest.raises(ImageNetLayoutError, match="holds 12 images, ILSVRC2012 train has 1281167"):
        index_imagenet(root, expected_classes=3)
    (root / "val" / "n03").rename(root / "val" / "n04")
    with pytest.raises(ImageNetLayoutError, match="name different classes"):
        index_imagenet(root, expected_classes=3, check_sizes=False)


def test_batches_are_a_function_of_the_step_and_shard_over_ranks(tmp_path):
    root = _folder(tmp_path / "in")
    write_index(root, tmp_path / "index.json", expected_classes=3, check_sizes=False)
    assert json.loads((tmp_path / "index.json").read_text())["splits"]["train"]["images"] == 12
    exp = validated_experiment("paper", "mobilenet-imagenet", train={"batch_size": 4})

    def task(dist=None):
        task = ImageNetTask(exp, {"prepared": tmp_path / "index.json"}, "cpu", seed=0, dist=dist)
        task.workers = 0  # load in this process: quicker here, the same batches
        return task

    data = task()
    assert data.steps_per_epoch == 3 and data.num_classes == 3
    assert isinstance(build_task(exp, {"prepared": tmp_path / "index.json"}, "cpu", 0), ImageNetTask)
    x2, y2 = data.batch(2)
    assert x2.shape == (4, 3, 224, 224)
    # Asked again out of order (a resumed run), the same step gives the same batch.
    xa, ya = task().batch(2)
    assert torch.equal(x2, xa) and torch.equal(y2, ya)
    # Two ranks together hold exactly the single-process batch.
    halves = [task(DistContext(r, 2, r)).batch(2) for r in range(2)]
    assert torch.equal(torch.cat([halves[0][0][0:1], halves[1][0][0:1]]), x2[0:2])
    assert sorted(torch.cat([h[1] for h in halves]).tolist()) == sorted(y2.tolist())
    metrics = data.evaluate(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                                torch.nn.Linear(3, 5)), limit=6)
    assert set(metrics) == {"top1", "top5"} and metrics["top5"] >= metrics["top1"]
