"""CIFAR-10: the binary batches read inside the registered archive, and a tiny experiment on it
end to end through Snakemake (downloads from a loopback server standing in for Toronto's)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tests.fixtures.data_formats import registry_for, tgz_bytes
from tests.fixtures.http_server import LoopbackServer
from tests.workflow_helpers import snakemake, write_registry

from gradprune.data.cifar10 import ARCHIVE, RECORD_BYTES, SPLIT_MEMBERS, load_cifar10
from gradprune.data.errors import FormatError
from gradprune.data.registry import default_registry


def _records(n: int, seed: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    pixels = rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8)
    return np.concatenate([labels[:, None], pixels], axis=1).tobytes(), labels, pixels


def _archive(per_batch: int = 8, n_test: int = 6, extra: dict | None = None):
    members, expect = {}, {"train": ([], []), "test": ([], [])}
    for split, names in SPLIT_MEMBERS.items():
        for i, name in enumerate(names):
            data, labels, pixels = _records(per_batch if split == "train" else n_test, hash(name) % 97 + i)
            members[name] = data
            expect[split][0].append(labels)
            expect[split][1].append(pixels)
    members.update(extra or {})
    return tgz_bytes({"cifar-10-batches-bin/readme.html": b"<html/>", **members}), expect


def test_batches_are_read_as_label_then_rgb_planes(tmp_path):
    blob, expect = _archive()
    (tmp_path / ARCHIVE).write_bytes(blob)
    images, labels = load_cifar10(tmp_path, "train", check_size=False)
    assert images.shape == (40, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.tolist() == np.concatenate(expect["train"][0]).tolist()
    pixels = np.concatenate(expect["train"][1])
    # record 9 (second batch), green plane, row 5, column 7: byte 1024 + 5 * 32 + 7 of the pixels
    assert int(images[9, 1, 5, 7]) == int(pixels[9, 1024 + 5 * 32 + 7])
    test_images, _ = load_cifar10(tmp_path, "test", check_size=False)
    assert test_images.shape == (6, 3, 32, 32)
    with pytest.raises(FormatError, match="40 train images, expected 50000"):
        load_cifar10(tmp_path, "train")


def test_truncated_batch_and_missing_member_are_named(tmp_path):
    blob, _ = _archive(extra={SPLIT_MEMBERS["test"][0]: b"\x01" * (RECORD_BYTES + 5)})
    (tmp_path / ARCHIVE).write_bytes(blob)
    with pytest.raises(FormatError, match="test_batch.bin: 3078 bytes is not a whole number"):
        load_cifar10(tmp_path, "test", check_size=False)
    (tmp_path / ARCHIVE).write_bytes(tgz_bytes({"cifar-10-batches-bin/data_batch_1.bin": b""}))
    with pytest.raises(KeyError, match="data_batch_2.bin.*registered archive"):
        load_cifar10(tmp_path, "train")


def test_registry_holds_the_published_archive():
    e = default_registry().get("cifar-10", ARCHIVE)
    assert e.url == "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    assert (e.bytes, e.sha256[:8]) == (170052171, "c4a38c50")


EXPERIMENT = {
    "description": "tiny MobileNet on synthetic CIFAR-10",
    "family": "vision", "dataset": "cifar-10", "model": "mobilenet_v1",
    "model_args": {"small_input": True},
    "large": {"size": 0.25, "sparsities": [0.0, 0.5]},
    "small_dense": [],
    "train": {"total_steps": 6, "batch_size": 8, "eval_batch_size": 16,
              "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
              "log_every": 2, "eval_every": 3, "checkpoint_every": 2},
    "pruning": {"begin_step": 2, "frequency": 1, "n_updates": 2},
    "resources": {"threads": 1, "mem_mb": 1000, "runtime": 10},
}


@pytest.mark.slow
def test_tiny_cifar10_experiment_through_the_workflow(tmp_path):
    blob, _ = _archive()
    server = LoopbackServer().start()
    try:
        server.files = {f"/kriz/{ARCHIVE}": blob}
        registry = registry_for("cifar-10", {ARCHIVE: blob}, f"{server.url}/kriz")
        tsv = write_registry(tmp_path / "registry.tsv", registry.entries("cifar-10"))
        config = {"preset": "test", "seeds": [0], "device": "cpu",
                  "data": {"registry": str(tsv), "mirror": None, "offline": False},
                  "experiments": {"mobilenet-cifar": EXPERIMENT}}
        proc = snakemake(tmp_path / "work", config, "results/tables/mobilenet-cifar.csv")
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr[-4000:]
    run = tmp_path / "work/results/mobilenet-cifar/mobilenet_v1-0.25/sparsity-0.5/seed-0"
    m = json.loads((run / "metrics.json").read_text())
    assert m["provenance"]["config"]["dataset"] == "cifar-10"
    assert m["pruned_tensors_sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert 0.0 <= m["metrics"]["top1"] <= 100.0
