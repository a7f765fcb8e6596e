"""Preemption safety: a training job killed with SIGKILL midway and started again ends bitwise
where an uninterrupted run ends (CPU), and a corrupt checkpoint is refused, never used."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from safetensors.torch import load_file
from tests.fixtures.data_formats import write_fashion_mnist
from tests.workflow_helpers import ROOT, load_preset

from gradprune.config import validate_config
from gradprune.data.vision import prepare_fashion_mnist
from gradprune.training.checkpoint import CorruptCheckpointError, load_checkpoint, save_checkpoint

RUN = "results/mobilenet-fmnist/mobilenet_v1-1.0/sparsity-0.75/seed-0"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    write_fashion_mnist(tmp / "raw", n_train=160, n_test=32)
    prepared = tmp / "data.safetensors"
    prepare_fashion_mnist(tmp / "raw", prepared)
    config = load_preset("test")
    exp = config["experiments"]["mobilenet-fmnist"]
    exp["train"].update(total_steps=40, checkpoint_every=3, log_every=2, eval_every=20)
    exp["pruning"].update(begin_step=4, frequency=3, n_updates=6)
    validate_config(config)
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return tmp, path, prepared


def _train_cmd(config, prepared, run_dir):
    return [sys.executable, "-m", "gradprune.cli", "train", "--config", str(config),
            "--run-dir", str(run_dir), "--data", f"prepared={prepared}"]


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def test_kill_9_midway_then_rerun_equals_uninterrupted(setup):
    tmp, config, prepared = setup
    straight, killed = tmp / "a" / RUN, tmp / "b" / RUN
    subprocess.run(_train_cmd(config, prepared, straight), check=True, env=_env(), timeout=300,
                   capture_output=True)

    proc = subprocess.Popen(_train_cmd(config, prepared, killed), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = killed / "checkpoint.pt"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if ckpt.with_name("checkpoint.pt.sha256").exists():
            step = load_checkpoint(ckpt)["step"]
            if step >= 9:  # past the first mask updates, well before the end (40)
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (killed / "model.safetensors").exists()
    resumed_from = load_checkpoint(ckpt)["step"]
    assert 0 < resumed_from < 40

    subprocess.run(_train_cmd(config, prepared, killed), check=True, env=_env(), timeout=300,
                   capture_output=True)
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(killed / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    for log in ("train_log.csv", "prune_log.csv"):
        assert (straight / log).read_text() == (killed / log).read_text()
    assert not ckpt.exists(), "a finished run removes its checkpoint"


def test_corrupt_checkpoint_is_reported_not_used(setup, tmp_path):
    _, config, prepared = setup
    run_dir = tmp_path / RUN
    run_dir.mkdir(parents=True)
    ckpt = run_dir / "checkpoint.pt"
    save_checkpoint({"step": 3, "model": {"w": torch.ones(4)}}, ckpt)
    assert load_checkpoint(ckpt)["step"] == 3
    data = bytearray(ckpt.read_bytes())
    data[len(data) // 2] ^= 0xFF
    ckpt.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError, match="corrupt.*Delete"):
        load_checkpoint(ckpt)
    proc = subprocess.run(_train_cmd(config, prepared, run_dir), check=False, env=_env(), timeout=300,
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "CorruptCheckpointError" in proc.stderr
    assert not (run_dir / "model.safetensors").exists()


def test_checkpoint_without_digest_is_incomplete(tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    save_checkpoint({"step": 1}, ckpt)
    ckpt.with_name("checkpoint.pt.sha256").unlink()
    with pytest.raises(CorruptCheckpointError, match="not written completely"):
        load_checkpoint(ckpt)
