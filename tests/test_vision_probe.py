"""benchmarks/vision_probe.py composes the mini's vision experiment as a job receives it, with
the probe's overrides, whatever else config.yaml holds (docs/vision-diagnosis.md depends on it)."""

from __future__ import annotations

import importlib.util

import yaml
from tests.workflow_helpers import ROOT

SCRIPT = ROOT / "benchmarks/vision_probe.py"


def load_probe():
    spec = importlib.util.spec_from_file_location("vision_probe", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_probe_composes_the_vision_experiment_with_its_overrides():
    probe = load_probe()
    config = probe.experiment_config(["train.optimizer.lr=0.1", "augment.shift=2"])
    assert list(config["experiments"]) == ["mobilenet-fmnist"]
    exp = config["experiments"]["mobilenet-fmnist"]
    # the oracle: config.yaml as written, read here with yaml alone
    written = yaml.safe_load((ROOT / "config.yaml").read_text())["experiments"]["mobilenet-fmnist"]
    assert exp["train"]["optimizer"]["lr"] == 0.1 and exp["augment"]["shift"] == 2
    assert exp["train"]["optimizer"]["momentum"] == written["train"]["optimizer"]["momentum"]
    assert exp["train"]["total_steps"] == written["train"]["total_steps"]
    assert exp["model_args"]["output_stride"] == written["model_args"]["output_stride"]
    assert exp["augment"]["hflip"] == written["augment"]["hflip"]
