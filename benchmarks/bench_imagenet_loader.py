"""Images per second of one ImageNet loader worker: the earlier path against the current one.

    python benchmarks/bench_imagenet_loader.py                     # about a minute, one core
    python benchmarks/bench_imagenet_loader.py --images 48 --rounds 7 --size 299

Over a synthetic ILSVRC2012-like folder of JPEGs of ImageNet's sizes (``tests/fixtures/
imagenet_folder.py``: mostly 500x375 and 375x500, 70-140 KB each), one process, one thread (what
a DataLoader worker runs), batches of ``--batch`` images, rounds interleaved (before, after,
before, ...) so that changes in the machine's load hit both:

- **before** (the loader up to this change): PIL decode, torchvision ``RandomResizedCrop`` and
  flip, ``ToTensor`` and ``Normalize``, float32 batches collated in the worker;
- **after** (:mod:`gradprune.tasks.inception_preprocessing`): ``torchvision.io`` decode
  (libjpeg-turbo), TF-slim's distorted-box crop, TF1's bilinear resize, flip, uint8 batches;
  the colour distortion and scaling then run on the device (timed apart: ``device part``, here on
  the CPU, where a GPU does it in well under a millisecond per batch).

It prints the median images/s per worker of each, the ratio after/before (the headline: measured
within one run), and the bytes per batch each ships to the training process.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from torchvision import transforms
from torchvision.io import read_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.fixtures
from tests.fixtures.imagenet_folder import make_imagenet_folder

from gradprune import seeding
from gradprune.tasks import inception_preprocessing as prep


def before_batch(files: list[bytes], size: int, step: int) -> torch.Tensor:
    transform = transforms.Compose([
        transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
        transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ])
    out = []
    for k, data in enumerate(files):
        torch.manual_seed(seeding.image_draw_seed(0, step, len(files), k))
        out.append(transform(Image.open(io.BytesIO(data)).convert("RGB")))
    return torch.stack(out)


def after_batch(files: list[torch.Tensor], size: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    images, colours = zip(*(prep.train_image(data, size, seeding.generator(
        seeding.image_draw_seed(0, step, len(files), k))) for k, data in enumerate(files)))
    return torch.stack(images), torch.stack(colours)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=32, help="images in the synthetic folder")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=224, help="224 (MobileNet) or 299 (InceptionV3)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        per_class = -(-args.images // 4)
        make_imagenet_folder(Path(tmp), classes=4, train_per_class=per_class, val_per_class=0,
                             oddities=False)
        paths = sorted(Path(tmp, "train").rglob("*.JPEG"))[: args.images]
        raw = [p.read_bytes() for p in paths]
        tensors = [read_file(str(p)) for p in paths]
    kb = statistics.mean(len(r) for r in raw) / 1024
    batches = [list(range(i, min(i + args.batch, len(raw)))) for i in range(0, len(raw), args.batch)]
    times = {"before": [], "after": [], "device part": []}
    shipped = {}
    for r in range(args.rounds + 1):  # round 0 warms up
        for name in ("before", "after"):
            t0, n = time.perf_counter(), 0
            for b, idx in enumerate(batches):
                if name == "before":
                    x = before_batch([raw[i] for i in idx], args.size, b)
                    shipped[name] = x.nbytes / len(idx) * args.batch
                else:
                    x, colour = after_batch([tensors[i] for i in idx], args.size, b)
                    shipped[name] = (x.nbytes + colour.nbytes) / len(idx) * args.batch
                    t1 = time.perf_counter()
                    prep.model_input(x, colour)
                    if r:
                        times["device part"].append(len(idx) / (time.perf_counter() - t1))
                    t0 += time.perf_counter() - t1  # the device part is not the worker's
                n += len(idx)
            if r:
                times[name].append(n / (time.perf_counter() - t0))
    print(f"{len(raw)} JPEGs, mean {kb:.0f} KB, output {args.size} px, batch {args.batch}, "
          f"{args.rounds} interleaved rounds, torch {torch.__version__}, one thread")
    print("| path | images/s per worker (median) | min | max | MB shipped per batch |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in ("before", "after"):
        v = times[name]
        print(f"| {name} | {statistics.median(v):.1f} | {min(v):.1f} | {max(v):.1f} | "
              f"{shipped[name] / 1e6:.1f} |")
    ratios = [a / b for a, b in zip(times["after"], times["before"])]
    print(f"after/before per round: median {statistics.median(ratios):.2f} "
          f"(min {min(ratios):.2f}, max {max(ratios):.2f})")
    print(f"device part on this CPU (colour distortion and scaling of the uint8 batch): "
          f"{statistics.median(times['device part']):.0f} images/s")


if __name__ == "__main__":
    main()
