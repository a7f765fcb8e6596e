"""Top-1/top-5 accuracy, the one evaluation every image dataset (small ones and ImageNet) uses."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradprune.tasks.vision import top1_top5


def test_top1_top5_counts_hits_among_the_five_largest_logits():
    # Logits rank the classes 0 > 1 > ... > 6 for every example.
    model = nn.Linear(1, 7, bias=True)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(torch.arange(7, 0, -1, dtype=torch.float32))
    model.train()
    x = torch.zeros(6, 1)
    labels = torch.tensor([0, 1, 4, 5, 6, 0])  # top-1: 2 of 6; top-5 (classes 0-4): 4 of 6
    batches = [(x[:4], labels[:4]), (x[4:], labels[4:])]
    assert top1_top5(model, batches, "cpu") == {"top1": 100.0 * 2 / 6, "top5": 100.0 * 4 / 6}
    assert model.training  # the model's mode is given back


def test_fewer_than_five_classes_count_every_class_in_top5():
    model = nn.Linear(1, 3)
    assert top1_top5(model, [(torch.zeros(4, 1), torch.tensor([0, 1, 2, 2]))], "cpu")["top5"] == 100.0


def _encoded_label_task(tmp_path, **changes):
    """A VisionTask on 40 images, image i a constant gray of 20 x its label; and the labels."""
    from safetensors.torch import save_file
    from tests.workflow_helpers import validated_experiment

    from gradprune.tasks.vision import VisionTask

    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (40,), generator=gen)
    images = (labels * 20).to(torch.uint8)[:, None, None].expand(40, 28, 28).contiguous()
    path = tmp_path / "data.safetensors"
    save_file({"train_images": images, "train_labels": labels, "test_images": images[:8].clone(),
               "test_labels": labels[:8].clone()}, str(path))
    exp = validated_experiment("test", "mobilenet-fmnist", **changes)
    return VisionTask(exp, {"prepared": path}, "cpu", seed=3), labels


def test_training_batches_pair_each_image_with_its_own_label(tmp_path):
    """Image i of a synthetic set is a constant gray of 20 x its label (the 2-pixel shifts and
    flips keep the centre): every batch's labels are those its images encode, and an epoch
    visits every example once, in a seeded order."""
    task, labels = _encoded_label_task(tmp_path, train={"batch_size": 8, "train_subset": None})
    assert task.steps_per_epoch == 5
    seen = []
    for step in range(10):  # two epochs
        x, y = task.batch(step)
        gray = (x[:, 0, 14, 14] * 0.3530 + 0.2860) * 255  # undo the normalisation
        assert torch.equal((gray / 20).round().long(), y), step
        seen.append(y)
    first, second = torch.cat(seen[:5]), torch.cat(seen[5:])
    assert sorted(first.tolist()) == sorted(labels.tolist()) == sorted(second.tolist())
    assert not torch.equal(first, second)  # each epoch its own order


class _FixedLogits(nn.Module):
    """Class 0 at logit ln 9 and nine classes at 0 for every image: p0 = 1/2, the others 1/18;
    with ``aux``, InceptionV3's training output (logits, auxiliary logits = the same)."""

    def __init__(self, aux=False):
        super().__init__()
        self.aux = aux

    def forward(self, x):
        logits = torch.zeros(x.shape[0], 10)
        logits[:, 0] = math.log(9)
        return (logits, logits) if self.aux else logits


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_the_training_loss_is_the_label_smoothed_cross_entropy(tmp_path, smoothing):
    """By hand: -(1 - s) log p_y - (s / 10) sum_c log p_c, averaged over the batch; InceptionV3's
    auxiliary head adds 0.4 times the same."""
    task, _ = _encoded_label_task(tmp_path, train={"batch_size": 8, "train_subset": None,
                                                    "label_smoothing": smoothing})
    y = task.batch(2)[1]
    log_p = [math.log(1 / 2)] + [math.log(1 / 18)] * 9
    each = [-(1 - smoothing) * log_p[c] - smoothing / 10 * sum(log_p) for c in y.tolist()]
    expected = sum(each) / len(each)
    assert float(task.train_loss(_FixedLogits(), 2)) == pytest.approx(expected, rel=1e-6)
    assert float(task.train_loss(_FixedLogits(aux=True), 2)) == pytest.approx(1.4 * expected,
                                                                                rel=1e-6)


def _impulse_task(tmp_path, augment):
    """A VisionTask on 16 black images, image i white at pixel (i, 27 - i) only."""
    from safetensors.torch import save_file
    from tests.workflow_helpers import validated_experiment

    from gradprune.tasks.vision import VisionTask

    images = torch.zeros(16, 28, 28, dtype=torch.uint8)
    for i in range(16):
        images[i, i, 27 - i] = 255
    labels = torch.arange(16) % 10
    path = tmp_path / "impulses.safetensors"
    save_file({"train_images": images, "train_labels": labels, "test_images": images[:4].clone(),
               "test_labels": labels[:4].clone()}, str(path))
    exp = validated_experiment("test", "mobilenet-fmnist", augment=augment,
                               train={"batch_size": 16, "train_subset": None})
    return VisionTask(exp, {"prepared": path}, "cpu", seed=5), images


def _white_pixels(x):
    unit = x[:, 0] * 0.3530 + 0.2860  # undo the standardisation
    return [tuple(torch.nonzero(img > 0.5).flatten().tolist()) for img in unit], unit


@pytest.mark.parametrize("shift", [0, 2, 3])
def test_augmentation_shifts_each_image_on_its_own_over_a_black_border(tmp_path, shift):
    """Each image moves by its own offsets, at most ``shift`` pixels, and what the shift uncovers
    is black (0), not the mean intensity; with shift 0 images are only flipped."""
    task, _ = _impulse_task(tmp_path, {"hflip": False, "shift": shift})
    offsets = set()
    for step in range(6):
        x, _ = task.batch(step)
        whites, unit = _white_pixels(x)
        for img, white in zip(unit, whites, strict=True):
            # one white pixel (or none when shifted off the edge); every other pixel black
            assert len(white) in (0, 2)
            assert int((img > 0.5).sum()) == len(white) // 2
            assert torch.all(img[img <= 0.5].abs() < 1e-6)
        # the source pixel of each row of the batch is known from its index: recover the offsets
        in_batch = set()
        for row, i in enumerate(_batch_indices(task, step).tolist()):
            if whites[row]:
                dy, dx = whites[row][0] - i, whites[row][1] - (27 - i)
                assert max(abs(dy), abs(dx)) <= shift
                in_batch.add((dy, dx))
        if shift:
            assert len(in_batch) >= 2, step  # the images of one batch move differently
        offsets |= in_batch
    assert offsets == {(0, 0)} if shift == 0 else len(offsets) > 6


def _batch_indices(task, step):
    from gradprune.tasks.base import epoch_permutation

    epoch, i = divmod(step, task.steps_per_epoch)
    order = epoch_permutation(len(task.train_labels), task.seed, epoch)
    return order[i * task.batch_size: (i + 1) * task.batch_size]


def test_hflip_mirrors_about_half_the_images_and_can_be_turned_off(tmp_path):
    flipped_total = 0
    for hflip in (True, False):
        task, _ = _impulse_task(tmp_path, {"hflip": hflip, "shift": 0})
        for step in range(8):
            whites, _ = _white_pixels(task.batch(step)[0])
            for row, i in enumerate(_batch_indices(task, step).tolist()):
                assert whites[row][0] == i  # rows never move
                mirrored = whites[row][1] == i  # column 27 - i flipped to i
                if not hflip:
                    assert not mirrored or i == 27 - i
                flipped_total += mirrored and hflip
    assert 40 <= flipped_total <= 88  # of 128 images, binomial(128, 1/2) within 4 sd
