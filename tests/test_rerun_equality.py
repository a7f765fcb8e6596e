"""Two runs of the same commit and preset on the same machine give the same results (the README's
claim that CPU training is deterministic): one small large-sparse LSTM on the real PTB, trained
twice in separate folders by separate processes (dense pretraining to t0, gradual pruning,
evaluation, as the workflow does), must agree on metrics.json (but for timestamps, wall times and
the host), on every tensor of the t0 checkpoint and of the exported weights, and byte for byte on
the logs and the weights' data. The safetensors header is compared as JSON: safetensors writes its
``__metadata__`` map in a per-process hash order, so two equal files can differ in header bytes."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file
from tests.workflow_helpers import ROOT, SHARED_MIRROR, load_preset, require_mirror

from gradprune.config import only_experiments, validate_config
from gradprune.data.fetch import fetch_all
from gradprune.data.lm import prepare_lm_corpus
from gradprune.training.checkpoint import load_checkpoint

# about 40 s of CPU: two runs, each evaluated on PTB's whole test and validation streams
pytestmark = pytest.mark.slow

RUN = "results/lstm-ptb/lstm_lm-16/sparsity-0.5/seed-0"
# What may differ between two honest runs: when and where they ran, and how long they took.
VOLATILE = {"started", "finished", "host", "wall_time_s"}

# One process = one run, as a workflow job: pretrain to t0, continue with pruning, evaluate.
DRIVER = """
import json, sys
from pathlib import Path
from gradprune import runner
from gradprune.config import load_config, resolve_run, run_settings

config_path, prepared, root = sys.argv[1:]
config = load_config(config_path)
run = resolve_run(config, "lstm-ptb", "lstm_lm", "16", "0.5", 0)
settings = run_settings(config, run)  # what the workflow hands a job as params.settings
runner.configure_torch(1, settings["deterministic"])
data = {"prepared": prepared}
root = Path(root)
t0 = root / "pretrain" / "checkpoint_t0.pt"
runner.pretrain(settings, run, data, t0, root / "pretrain")
out = root / run.dir
runner.train(settings, run, data, out, t0)
runner.evaluate(settings, run, data, out / "model.safetensors", out / "train_summary.json",
                out / "metrics.json", {"preset": config["preset"], "sources": []})
"""


def _config() -> dict:
    """The mini preset's lstm-ptb experiment, shrunk to seconds: 16 units, 24 steps."""
    config = only_experiments(load_preset("mini"), ["lstm-ptb"])
    exp = config["experiments"]["lstm-ptb"]
    config.update(device="cpu", seeds=[0])
    exp.update(large={"size": 16, "sparsities": [0.5]}, small_dense=[])
    exp["train"].update(total_steps=24, batch_size=8, eval_batch_size=100, log_every=4,
                        eval_every=8, eval_curve_examples=500, checkpoint_every=8,
                        lr_schedule={"name": "step", "decay": 0.6, "decay_start": 16,
                                     "decay_every": 4})
    exp["pruning"].update(begin_step=4, frequency=4, n_updates=3)
    return validate_config(config)


def _strip(obj):
    """``obj`` without the volatile keys, at any depth."""
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _safetensors_parts(path) -> tuple[dict, bytes]:
    """(header as JSON, data bytes) of a safetensors file: 8-byte header length, header, data."""
    blob = path.read_bytes()
    n = struct.unpack("<Q", blob[:8])[0]
    return json.loads(blob[8 : 8 + n]), blob[8 + n :]


def _assert_same(a, b, where="checkpoint"):
    """Every tensor equal bit for bit, every other value equal, volatile keys skipped."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype, where
        assert torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            if k not in VOLATILE:
                _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    require_mirror(SHARED_MIRROR / "ptb")  # skipped without the mirror, but fails under CI=true
    tmp = tmp_path_factory.mktemp("rerun")
    fetch_all("ptb", tmp / "raw", mirror=SHARED_MIRROR, offline=True)
    prepared = tmp / "corpus.safetensors"
    prepare_lm_corpus("ptb", tmp / "raw", prepared)
    cfg = tmp / "config.yaml"
    cfg.write_text(yaml.safe_dump(_config(), sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    roots = [tmp / "first", tmp / "second"]
    for root in roots:
        proc = subprocess.run([sys.executable, "-c", DRIVER, str(cfg), str(prepared), str(root)],
                              capture_output=True, text=True, timeout=300, env=env, check=False)
        assert proc.returncode == 0, proc.stderr[-3000:]
    return roots


def test_metrics_json_equal_but_for_time_and_host(two_runs):
    a, b = (json.loads((r / RUN / "metrics.json").read_text()) for r in two_runs)
    assert a["train"]["steps"] == 24 and a["metrics"]["test_perplexity"] > 0
    assert _strip(a) == _strip(b)


def test_every_tensor_and_file_equal(two_runs):
    first, second = two_runs
    for name in ("train_log.csv", "eval.csv", "prune_log.csv"):
        assert (first / RUN / name).read_bytes() == (second / RUN / name).read_bytes(), name
    (ha, da), (hb, db) = (_safetensors_parts(r / RUN / "model.safetensors") for r in two_runs)
    assert ha == hb and da == db
    wa, wb = (load_file(str(r / RUN / "model.safetensors")) for r in two_runs)
    _assert_same(wa, wb, "model.safetensors")
    # the dense state at t0 (weights, optimizer, RNG, data position): torch.save bytes hold the
    # logs' wall time, so the tensors and values are compared instead
    ca, cb = (load_checkpoint(r / "pretrain" / "checkpoint_t0.pt") for r in two_runs)
    _assert_same(ca, cb)
    sa, sb = (json.loads((r / RUN / "train_summary.json").read_text()) for r in two_runs)
    assert _strip(sa) == _strip(sb)
