"""The ImageNet input pipeline: TF-slim's Inception preprocessing checked against values worked
out independently (hand-computed crop boxes, a numpy resize, Python's colorsys), the index read
instead of rescanning, the stratified curve subset, loader workers from the job's threads, and
draws tied to the image's position in the stream."""

from __future__ import annotations

import colorsys
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from tests.fixtures.imagenet_folder import make_imagenet_folder
from tests.workflow_helpers import validated_experiment
from torchvision import datasets
from torchvision.io import read_file

from gradprune import runner, seeding
from gradprune.data.imagenet import ImageNetLayoutError, read_split, write_index
from gradprune.tasks import inception_preprocessing as prep
from gradprune.tasks.imagenet import ImageNetTask, loader_workers, stratified_subset


def _png(pixels: np.ndarray) -> torch.Tensor:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")  # lossless: decoded pixels are these
    return torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)


def _tf_legacy_resize(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TF1 resize_bilinear(align_corners=False) in float64, pixel by pixel: input coordinate
    out * in / out, corners floor and min(ceil, n - 1)."""
    in_h, in_w = image.shape[:2]
    out = np.empty((out_h, out_w, image.shape[2]))
    img = image.astype(np.float64)
    for i in range(out_h):
        y = i * in_h / out_h
        y0, y1, fy = int(np.floor(y)), min(int(np.ceil(y)), in_h - 1), y - np.floor(y)
        for j in range(out_w):
            x = j * in_w / out_w
            x0, x1, fx = int(np.floor(x)), min(int(np.ceil(x)), in_w - 1), x - np.floor(x)
            top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
            bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
            out[i, j] = top * (1 - fy) + bottom * fy
    return out


def test_central_crop_boxes_are_tf_central_crop_0875():
    # TF: offset = n // int(1 / ((1 - 0.875) / 2)) = n // 16, size = n - 2 * offset
    assert prep.central_crop_box(375, 500) == (23, 31, 329, 438)
    assert prep.central_crop_box(500, 333) == (31, 20, 438, 293)
    assert prep.central_crop_box(32, 32) == (2, 2, 28, 28)
    assert prep.central_crop_box(15, 15) == (0, 0, 15, 15)


def test_eval_transform_known_answer_halving():
    # A 32x32 image: central crop rows/cols 2..29 (28 px); TF's legacy resize 28 -> 14 samples
    # input pixel 2i exactly (coordinate i * 28 / 14, weight 0), so the output is crop[::2, ::2].
    pixels = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    out = prep.eval_image(_png(pixels), 14)
    expected = torch.from_numpy(pixels[2:30:2, 2:30:2].copy()).permute(2, 0, 1)
    assert out.dtype == torch.uint8 and torch.equal(out, expected)
    scaled = prep.model_input(out[None])[0]
    assert torch.allclose(scaled, expected.float() / 255 * 2 - 1, atol=1e-6)


@pytest.mark.parametrize("height,width,size", [(375, 500, 299), (333, 500, 224), (20, 30, 299)])
def test_eval_transform_equals_tf_slim_worked_out_in_numpy(height, width, size):
    pixels = np.random.default_rng(height).integers(0, 256, (height, width, 3), dtype=np.uint8)
    y, x = height // 16, width // 16  # the central_crop(0.875) box, by hand
    crop = pixels[y : height - y, x : width - x]
    oracle = _tf_legacy_resize(crop, size, size) / 255.0 * 2 - 1  # TF-slim's float output
    ours = prep.model_input(prep.eval_image(_png(pixels), size)[None])[0].permute(1, 2, 0).double().numpy()
    err = np.abs(ours - oracle)
    # our one deviation: the resized image is rounded to uint8 (at most 0.5/255, x2 in [-1, 1]);
    # 0.02/255 more for TF's float32 coordinates (i * float(in / out)) against the exact ones here
    assert err.max() <= 1.04 / 255
    assert err.mean() < 0.6 / 255
    # a half-pixel-centred resize (torch, PIL) differs by far more on this noise image
    pil = np.asarray(Image.fromarray(crop).resize((size, size), Image.BILINEAR), dtype=np.float64)
    assert np.abs(pil / 255 * 2 - 1 - oracle).mean() > 10 / 255


def test_distorted_box_follows_tf_constraints_and_its_generator():
    boxes = [prep.sample_distorted_box(375, 500, seeding.generator(s)) for s in range(400)]
    for y, x, h, w in boxes:
        assert 0 <= y and 0 <= x and y + h <= 375 and x + w <= 500
        # min_object_covered 0.1 of the whole image; area_range up to 1.0
        assert 0.1 <= h * w / (375 * 500) <= 1.0
        # w = round(h * aspect) with aspect in [0.75, 1.33]
        assert 0.75 * h - 0.5 <= w <= 1.33 * h + 0.5
        # TF's Uniform(n) is in [0, n): an offset never reaches its last position
        assert (h == 375 or y < 375 - h) and (w == 500 or x < 500 - w)
    areas = [h * w / (375 * 500) for _, _, h, w in boxes]
    assert min(areas) < 0.15 and max(areas) > 0.9  # the range is covered
    again = prep.sample_distorted_box(375, 500, seeding.generator(7))
    assert again == boxes[7]
    # an image too thin for any allowed aspect ratio falls back to the whole image
    assert prep.sample_distorted_box(1, 40, seeding.generator(0)) == (0, 0, 1, 40)


def test_saturation_equals_hsv_round_trip_of_colorsys():
    rng = np.random.default_rng(3)
    images = rng.uniform(0.0, 1.2, (2, 3, 5, 7))  # brightness can push values above 1
    factors = np.array([0.6, 1.45])
    ours = prep.adjust_saturation(torch.tensor(images, dtype=torch.float32),
                                  torch.tensor(factors, dtype=torch.float32)).numpy()
    for n in range(2):
        for i in range(5):
            for j in range(7):
                h, s, v = colorsys.rgb_to_hsv(*images[n, :, i, j])
                expected = colorsys.hsv_to_rgb(h, min(1.0, max(0.0, s * factors[n])), v)
                assert np.allclose(ours[n, :, i, j], expected, atol=1e-5)
    # TF: a pixel whose max is <= 0 has s = 0 and becomes (v, v, v)
    dark = torch.tensor([[-0.2, -0.05, -0.1]]).view(1, 3, 1, 1)
    assert torch.allclose(prep.adjust_saturation(dark, torch.tensor([1.5])).flatten(),
                          torch.full((3,), -0.05))


def test_model_input_scales_to_minus_one_one_after_brightness_and_clip():
    images = torch.tensor([0, 128, 255], dtype=torch.uint8).view(1, 3, 1, 1)
    plain = prep.model_input(images).flatten()
    assert torch.allclose(plain, torch.tensor([-1.0, 128 / 255 * 2 - 1, 1.0]), atol=1e-6)
    # brightness +0.1, saturation x1: (0.1, 128/255 + 0.1, 1.0 clipped) -> [-1, 1]
    bright = prep.model_input(images, torch.tensor([[0.1, 1.0]])).flatten()
    assert torch.allclose(bright, torch.tensor([0.1, 128 / 255 + 0.1, 1.0]) * 2 - 1, atol=1e-6)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet")
    make_imagenet_folder(root / "in", classes=3, train_per_class=4, val_per_class=3)
    write_index(root / "in", root / "index.json", expected_classes=3, check_sizes=False)
    return root


def test_index_lists_every_file_in_image_folder_order(folder):
    index = json.loads((folder / "index.json").read_text())
    for split in ("train", "val"):
        paths, labels = read_split(index, split)
        samples = datasets.ImageFolder(str(folder / "in" / split)).samples
        assert [(str(p), y) for p, y in samples] == list(zip(paths, labels))
    old = {"root": index["root"], "splits": {"val": {"classes": ["a"], "images": 1}}}
    with pytest.raises(ImageNetLayoutError, match="delete resources/prepared/imagenet/index.json"):
        read_split(old, "val")


def test_curve_subset_is_stratified_fixed_and_not_the_first_files():
    labels = [c for c in range(4) for _ in range(50)]  # ImageNet's val: 50 per class, sorted
    chosen = stratified_subset(labels, 8)
    assert [labels[i] for i in chosen] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert chosen == stratified_subset(labels, 8) and chosen != list(range(8))
    counts = np.bincount([labels[i] for i in stratified_subset(labels, 10)], minlength=4)
    assert sorted(counts.tolist()) == [2, 2, 3, 3]
    assert stratified_subset(labels, 500) == list(range(200))
    # a class's choice depends on its own images only, not on how many the classes before hold
    fewer = [0] * 30 + labels[50:]
    offsets = [[i - labels.index(3) for i in chosen if labels[i] == 3],
               [i - fewer.index(3) for i in stratified_subset(fewer, 8) if fewer[i] == 3]]
    assert offsets[0] == offsets[1]


def _task(folder, **train):
    exp = validated_experiment("paper", "mobilenet-imagenet", train={"batch_size": 4, **train})
    return ImageNetTask(exp, {"prepared": folder / "index.json"}, "cpu", seed=0)


def test_loader_workers_come_from_the_jobs_threads(folder):
    assert [loader_workers(n) for n in (1, 2, 8)] == [0, 1, 7]
    before = torch.get_num_threads()
    try:
        runner.configure_torch(5, deterministic=True)  # what every entry point calls first
        assert _task(folder).workers == 4
        runner.configure_torch(1, deterministic=True)
        assert _task(folder).workers == 0
    finally:
        torch.set_num_threads(before)


def test_draws_follow_the_images_position_not_the_worker(folder):
    inline = _task(folder)
    inline.workers = 0
    pooled = _task(folder)
    pooled.workers = 2
    x, y = inline.batch(1)
    xp, yp = pooled.batch(1)
    assert torch.equal(x, xp) and torch.equal(y, yp)
    # row k of step 1 is the image the epoch's permutation puts there, drawn with its own seed
    paths, labels = read_split(json.loads((folder / "index.json").read_text()), "train")
    order = torch.randperm(12, generator=seeding.generator(seeding.epoch_order_seed(0, 0)))
    for k in range(4):
        j = int(order[4 + k])
        image, colour = prep.train_image(read_file(paths[j]), 224,
                                         seeding.generator(seeding.image_draw_seed(0, 1, 4, k)))
        assert labels[j] == int(y[k])
        assert torch.allclose(x[k], prep.model_input(image[None], colour[None])[0])
    assert x.shape == (4, 3, 224, 224) and x.min() >= -1 and x.max() <= 1


def test_training_curve_scores_the_stratified_subset(folder):
    task = _task(folder, eval_batch_size=2)
    task.workers = 0
    seen = torch.cat([y for _, y in task.eval_batches(3)])
    assert sorted(seen.tolist()) == [0, 1, 2]  # one per class, not the first three (class 0)
    assert task.curve_size(3) == 3 and task.curve_size(100) == 9


def test_latency_input_shape_of_an_imagenet_task(folder):
    from gradprune.footprint.latency import vision_input_shape

    assert vision_input_shape(_task(folder)) == (3, 224, 224)
