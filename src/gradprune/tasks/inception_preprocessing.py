"""TF-slim's Inception preprocessing, which the paper's InceptionV3 and MobileNetV1 were trained
with (``research/slim/preprocessing/inception_preprocessing.py``, ``fast_mode=True``, the
default of ``train_image_classifier.py`` and ``eval_image_classifier.py``), in torch.

Training (``preprocess_for_train``): ``distorted_bounding_box_crop`` (TF's
``sample_distorted_bounding_box`` with the whole image as the box: ``min_object_covered`` 0.1,
aspect ratio w/h in [0.75, 1.33], area in [0.05, 1.0] of the image, 100 attempts, else the whole
image), a bilinear resize to ``size`` x ``size``, a random left-right flip, the colour distortion
(brightness +-32/255 then saturation x[0.5, 1.5], clipped to [0, 1]) and the scaling to [-1, 1].
Evaluation (``preprocess_for_eval``): ``central_crop(0.875)``, the bilinear resize, [-1, 1].

TF1's ``resize_bilinear(align_corners=False)`` maps output pixel ``i`` to input ``i * in / out``
(no half-pixel centres). torch, torchvision and PIL all use half-pixel centres, so
:func:`resize_bilinear` is written here; it is a gather and two ``torch.lerp`` per axis.

Where each part runs (:mod:`gradprune.tasks.imagenet`): the loader workers decode the file
(``torchvision.io.decode_image``: libjpeg-turbo for JPEG, also PNG, greyscale and CMYK files,
which ILSVRC2012 holds a few of), crop, resize, flip, and round to uint8, so a batch crosses
shared memory and PCIe in a quarter of float32's bytes; the device then applies the colour
distortion and the scaling to the whole batch (:func:`model_input`). The rounding to uint8 before
the colour distortion (at most 0.5/255) is our one deviation from TF-slim, which keeps float32.

Every random number of an image comes from one generator seeded by the image's position in the
stream (:func:`gradprune.seeding.image_draw_seed`), drawn in a fixed order: the crop attempts,
then the flip, the brightness delta and the saturation factor.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.io import ImageReadMode, decode_image

AREA_RANGE = (0.05, 1.0)
ASPECT_RATIO_RANGE = (0.75, 1.33)
MIN_OBJECT_COVERED = 0.1
MAX_ATTEMPTS = 100
CENTRAL_FRACTION = 0.875
BRIGHTNESS_MAX_DELTA = 32.0 / 255.0
SATURATION_RANGE = (0.5, 1.5)


def decode(data: torch.Tensor) -> torch.Tensor:
    """(H, W, 3) uint8 RGB of an encoded image (the bytes of a file as a uint8 tensor)."""
    return decode_image(data, mode=ImageReadMode.RGB).permute(1, 2, 0)


def _uniform_float(gen: torch.Generator) -> float:
    return float(torch.rand((), generator=gen))


def _uniform_int(n: int, gen: torch.Generator) -> int:
    """TF's ``SimplePhilox::Uniform(n)``: an integer in [0, n)."""
    return int(torch.randint(n, (), generator=gen))


def _random_crop(width: int, height: int, aspect: np.float32,
                 gen: torch.Generator) -> tuple[int, int, int, int] | None:
    """TF's ``GenerateRandomCrop`` (sample_distorted_bounding_box_op.cc) in its float32
    arithmetic: (y, x, h, w), or None where the constraints cannot be met."""
    f32 = np.float32
    min_area = f32(AREA_RANGE[0]) * f32(width) * f32(height)
    max_area = f32(AREA_RANGE[1]) * f32(width) * f32(height)
    h = int(np.rint(np.sqrt(min_area / aspect)))
    max_h = int(np.rint(np.sqrt(max_area / aspect)))
    if np.rint(f32(max_h) * aspect) > width:
        max_h = int((width + 0.5 - 0.0000001) / aspect)
        if np.rint(f32(max_h) * aspect) > width:
            max_h -= 1
    max_h = min(max_h, height)
    h = min(h, max_h)
    if h < max_h:
        h += _uniform_int(max_h - h + 1, gen)
    w = int(np.rint(f32(h) * aspect))
    area = f32(w * h)
    if area < min_area:
        h += 1
        w = int(np.rint(f32(h) * aspect))
        area = f32(w * h)
    if area > max_area:
        h -= 1
        w = int(np.rint(f32(h) * aspect))
        area = f32(w * h)
    if area < min_area or area > max_area or w > width or h > height or w <= 0 or h <= 0:
        return None
    y = _uniform_int(height - h, gen) if h < height else 0
    x = _uniform_int(width - w, gen) if w < width else 0
    return y, x, h, w


def sample_distorted_box(height: int, width: int, gen: torch.Generator) -> tuple[int, int, int, int]:
    """(y, x, h, w) of ``distorted_bounding_box_crop`` with the whole image as the object box
    (TF-slim's default without ImageNet's bounding boxes): the crop must cover at least
    ``MIN_OBJECT_COVERED`` of the image, so crops under 10% of it are drawn again."""
    lo, hi = (np.float32(v) for v in ASPECT_RATIO_RANGE)
    image_area = float(height * width)
    for _ in range(MAX_ATTEMPTS):
        aspect = np.float32(_uniform_float(gen)) * (hi - lo) + lo
        box = _random_crop(width, height, aspect, gen)
        if box is None:
            continue
        covered = float(box[2] * box[3]) / image_area
        if box[2] * box[3] >= 1 and covered >= MIN_OBJECT_COVERED:
            return box
    return 0, 0, height, width


def central_crop_box(height: int, width: int, fraction: float = CENTRAL_FRACTION) -> tuple[int, int, int, int]:
    """(y, x, h, w) of TF's ``central_crop``: offsets ``n // int(1 / ((1 - fraction) / 2))``."""
    divisor = int(1 / ((1 - fraction) / 2.0))
    y, x = height // divisor, width // divisor
    return y, x, height - 2 * y, width - 2 * x


def _axis(n_in: int, n_out: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    scale = np.float32(n_in) / np.float32(n_out)  # TF: in_size / static_cast<float>(out_size)
    src = torch.arange(n_out, dtype=torch.float32, device=device) * float(scale)
    floor = src.floor()
    lower = floor.long().clamp(min=0)
    upper = src.ceil().long().clamp(max=n_in - 1)
    return lower, upper, src - floor


def resize_bilinear(image: torch.Tensor, height: int, width: int, flip: bool = False) -> torch.Tensor:
    """TF1's ``resize_bilinear(align_corners=False)`` of an (H, W, C) image: float32 (h, w, C);
    ``flip``: mirrored left-right in the same pass (the column table reversed)."""
    rows_lo, rows_hi, row_w = _axis(image.shape[0], height, image.device)
    cols_lo, cols_hi, col_w = _axis(image.shape[1], width, image.device)
    if flip:
        cols_lo, cols_hi, col_w = cols_lo.flip(0), cols_hi.flip(0), col_w.flip(0)
    top = image.index_select(0, rows_lo).float()
    bottom = image.index_select(0, rows_hi).float()
    rows = torch.lerp(top, bottom, row_w.view(-1, 1, 1))
    left, right = rows.index_select(1, cols_lo), rows.index_select(1, cols_hi)
    return torch.lerp(left, right, col_w.view(1, -1, 1))


def _to_uint8_chw(image: torch.Tensor) -> torch.Tensor:
    # bilinear weights keep values in [0, 255]: round half up, then the cast truncates
    return image.add_(0.5).to(torch.uint8).permute(2, 0, 1).contiguous()


def train_image(data: torch.Tensor, size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The worker's part of training preprocessing: (uint8 (3, size, size) cropped, resized and
    flipped image, float32 [brightness delta, saturation factor] for :func:`model_input`)."""
    image = decode(data)
    y, x, h, w = sample_distorted_box(image.shape[0], image.shape[1], gen)
    flip = _uniform_float(gen) < 0.5
    out = resize_bilinear(image[y : y + h, x : x + w], size, size, flip=flip)
    delta = (_uniform_float(gen) * 2.0 - 1.0) * BRIGHTNESS_MAX_DELTA
    lo, hi = SATURATION_RANGE
    factor = lo + _uniform_float(gen) * (hi - lo)
    return _to_uint8_chw(out), torch.tensor([delta, factor], dtype=torch.float32)


def eval_image(data: torch.Tensor, size: int) -> torch.Tensor:
    """The worker's part of evaluation preprocessing: uint8 (3, size, size), central crop and
    resize."""
    image = decode(data)
    y, x, h, w = central_crop_box(image.shape[0], image.shape[1])
    return _to_uint8_chw(resize_bilinear(image[y : y + h, x : x + w], size, size))


def adjust_saturation(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """TF's ``adjust_saturation`` of (N, 3, H, W) float images, one factor per image: in HSV, s
    becomes clip(s * factor, 0, 1) with h and v kept, which moves every channel along
    ``v - (v - c) * s_new / s`` (pixels with max <= 0 have s = 0 in TF and become (v, v, v))."""
    v = images.amax(dim=1, keepdim=True)
    s = torch.where(v > 0, (v - images.amin(dim=1, keepdim=True)) / v.clamp(min=1e-30),
                    torch.zeros_like(v))
    s_new = (s * factor.view(-1, 1, 1, 1)).clamp(0.0, 1.0)
    ratio = torch.where(s > 0, s_new / s.clamp(min=1e-30), torch.zeros_like(s))
    return v - (v - images) * ratio


def model_input(images: torch.Tensor, colour: torch.Tensor | None = None) -> torch.Tensor:
    """The device's part: uint8 (N, 3, H, W) -> float32 in [-1, 1]; with ``colour`` (N, 2) of
    :func:`train_image`, the colour distortion first (``distort_color``, fast mode, ordering 0:
    brightness, then saturation, then the clip to [0, 1])."""
    x = images.float().div_(255.0)
    if colour is not None:
        colour = colour.to(x.device)
        x = adjust_saturation(x + colour[:, 0].view(-1, 1, 1, 1), colour[:, 1]).clamp_(0.0, 1.0)
    return x.sub_(0.5).mul_(2.0)
