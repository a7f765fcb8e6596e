"""Two experiments that share runs, through Snakemake on the real PTB: a tiny LM experiment and a
block-sparse one that extends it (the shape of the mini's lstm-ptb-block4). The block experiment
copies the small-dense run and continues from the other experiment's dense model at t0
(gradprune.config.twins); the oracle is the same block experiment run alone, which trains
everything itself: on CPU (deterministic) the shared results must equal it bit for bit."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from tests.workflow_helpers import SHARED_MIRROR, require_mirror, snakemake

pytestmark = pytest.mark.slow

BASE = {
    "description": "tiny LM on real PTB",
    "family": "lm",
    "dataset": "ptb",
    "model": "lstm_lm",
    "model_args": {"dropout": 0.0},
    "large": {"size": 24, "sparsities": [0.0, 0.5]},
    "small_dense": [8],
    "train": {
        "total_steps": 12, "batch_size": 4, "bptt": 10, "eval_batch_size": 400,
        "train_subset": 300, "optimizer": {"name": "sgd", "lr": 1.0},
        "lr_schedule": {"name": "constant"}, "grad_clip_norm": 5.0,
        "log_every": 2, "eval_every": 6, "checkpoint_every": 4,
    },
    "pruning": {"begin_step": 3, "frequency": 2, "n_updates": 3},
    "resources": {"threads": 1, "mem_mb": 1000, "runtime": 10},
}
BLOCK = {"large": {"size": 24, "sparsities": [0.5]}, "small_dense": [8],
         "pruning": {"block": [2, 2]}}
RUN = "results/lm-block2/lstm_lm-{size}/sparsity-{s}/seed-0"
TARGETS = [f"{RUN.format(size=24, s='0.5')}/metrics.json", f"{RUN.format(size=8, s='0.0')}/metrics.json"]


def _config(experiments: dict) -> dict:
    return {"preset": "test", "seeds": [0], "device": "cpu",
            "data": {"mirror": str(SHARED_MIRROR), "offline": True}, "experiments": experiments}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    require_mirror(SHARED_MIRROR / "ptb")
    shared = tmp_path_factory.mktemp("shared")
    proc = snakemake(shared, _config({"lm": BASE, "lm-block2": {"extends": "lm", **BLOCK}}),
                     *TARGETS, env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-5000:]
    alone_exp = copy.deepcopy(BASE)
    alone_exp.update(copy.deepcopy(BLOCK))
    alone_exp["pruning"] = {**BASE["pruning"], **BLOCK["pruning"]}
    alone = tmp_path_factory.mktemp("alone")
    proc = snakemake(alone, _config({"lm-block2": alone_exp}), *TARGETS, env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-5000:]
    return shared, alone


def test_the_shared_experiment_trains_neither_the_small_dense_run_nor_the_dense_start(runs):
    shared, alone = runs
    assert (shared / "results/lm/lstm_lm-8/sparsity-0.0/seed-0/model.safetensors").exists()
    assert (shared / "results/lm/lstm_lm-24/pretrain/seed-0/checkpoint_t0.pt").exists()
    assert not (shared / "results/lm-block2/lstm_lm-24/pretrain").exists()
    assert (alone / "results/lm-block2/lstm_lm-24/pretrain/seed-0/checkpoint_t0.pt").exists()
    copied = shared / RUN.format(size=8, s="0.0")
    assert "step/s" not in (copied / "train.log").read_text()  # no progress bar: nothing trained
    with safe_open(str(copied / "model.safetensors"), framework="pt") as f:
        meta = json.loads(f.metadata()["meta"])
    assert meta["run"] == RUN.format(size=8, s="0.0")
    assert meta["same_training_as"] == "results/lm/lstm_lm-8/sparsity-0.0/seed-0"
    metrics = json.loads((copied / "metrics.json").read_text())
    assert (metrics["experiment"], metrics["role"]) == ("lm-block2", "small-dense")
    assert metrics["train"]["same_training_as"] == "results/lm/lstm_lm-8/sparsity-0.0/seed-0"


@pytest.mark.parametrize("size, s", [(8, "0.0"), (24, "0.5")])
def test_shared_runs_equal_the_experiment_trained_alone_bit_for_bit(runs, size, s):
    shared, alone = runs
    a = load_file(str(shared / RUN.format(size=size, s=s) / "model.safetensors"))
    b = load_file(str(alone / RUN.format(size=size, s=s) / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ma, mb = (json.loads((root / RUN.format(size=size, s=s) / "metrics.json").read_text())
              for root in (shared, alone))
    assert ma["metrics"] == mb["metrics"] and ma["nnz"] == mb["nnz"]
    if s != "0.0":  # really block-pruned: 2x2 tiles of the LSTM kernels are all zero or all kept
        kernel = a["__mask__.rnn.0.weight_hh_l0"].bool()
        tiles = kernel.reshape(kernel.shape[0] // 2, 2, kernel.shape[1] // 2, 2).sum(dim=(1, 3))
        assert set(tiles.unique().tolist()) <= {0, 4} and (tiles == 0).any()
