"""A tiny language-model preset end to end through Snakemake on the real PTB (served from the
shared mirror beside the repository): download, prepare, dense pretraining to t0, gradual pruning
to two sparsities, the dense and small-dense rows, evaluation, tables. About a minute on 2 cores."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tests.workflow_helpers import SHARED_MIRROR, require_mirror

from gradprune.training.checkpoint import import_weights

ROOT = Path(__file__).resolve().parents[1]
MIRROR = SHARED_MIRROR

pytestmark = pytest.mark.slow

SPARSITIES = (0.5, 0.8)
TINY = {
    "preset": "test",
    "seeds": [0],
    "device": "cpu",
    "data": {"mirror": str(MIRROR), "offline": True},
    "experiments": {
        "lstm-ptb": {
            "description": "Zaremba LSTM LM on real PTB, tiny (24 units, 14 steps)",
            "family": "lm",
            "dataset": "ptb",
            "model": "lstm_lm",
            "model_args": {"dropout": 0.1},
            "large": {"size": 24, "sparsities": [0.0, *SPARSITIES]},
            "small_dense": [8],
            "train": {
                "total_steps": 14,
                "batch_size": 4,
                "bptt": 10,
                "eval_batch_size": 400,  # short sequential passes keep evaluation fast
                "train_subset": 300,  # 300 tokens: 7 windows per epoch, so the run crosses epochs
                "optimizer": {"name": "sgd", "lr": 1.0},
                "lr_schedule": {"name": "step", "decay": 0.5, "decay_start": 10, "decay_every": 2},
                "grad_clip_norm": 5.0,
                "log_every": 2,
                "eval_every": 7,
                "checkpoint_every": 4,
            },
            "pruning": {"begin_step": 3, "frequency": 2, "n_updates": 3},
            "resources": {"threads": 1, "mem_mb": 1000, "runtime": 10},
        }
    },
}


# every run's metrics and the tables (the figures are the reporting tests' business)
TARGETS = [f"results/lstm-ptb/lstm_lm-{size}/sparsity-{s}/seed-0/metrics.json"
           for size, s in [(24, 0.0), (24, 0.5), (24, 0.8), (8, 0.0)]] + [
    "results/tables/runs.csv", "results/tables/lstm-ptb.csv"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    require_mirror(MIRROR / "ptb")
    work = tmp_path_factory.mktemp("lm-workflow")
    cfg = work / "tiny-lm.yaml"
    cfg.write_text(yaml.safe_dump(TINY, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if k != "GRADPRUNE_DATA_MIRROR"}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(work),
         "--configfile", str(cfg), "--cores", "2", *TARGETS],
        check=False, capture_output=True, text=True, timeout=600, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    return work


def _metrics(work, size, sparsity):
    run = work / f"results/lstm-ptb/lstm_lm-{size}/sparsity-{sparsity}/seed-0"
    return run, json.loads((run / "metrics.json").read_text())


def test_prepared_ptb_has_the_standard_counts(workdir):
    from gradprune.data.lm import load_lm_corpus

    streams, vocab = load_lm_corpus(workdir / "resources/prepared/ptb/corpus.safetensors")
    assert len(vocab) == 10_000
    assert {k: v.numel() for k, v in streams.items()} == {
        "train": 929_589, "valid": 73_760, "test": 82_430}


@pytest.mark.parametrize("size,sparsity,role", [
    (24, 0.0, "dense"), (24, 0.5, "large-sparse"), (24, 0.8, "large-sparse"), (8, 0.0, "small-dense"),
])
def test_metrics_have_finite_perplexities_and_consistent_nnz(workdir, size, sparsity, role):
    run, m = _metrics(workdir, size, sparsity)
    assert (m["family"], m["dataset"], m["task_metric"], m["role"]) == (
        "lm", "ptb", "test_perplexity", role)
    for key in ("test_perplexity", "val_perplexity"):
        assert math.isfinite(m["metrics"][key]) and 1.0 < m["metrics"][key] < 20_000
    # NNZ: every parameter counts; the pruned tensors (embedding, LSTM and softmax weights) reach
    # the target, the biases stay dense
    h, vocab = size, 10_000
    params = 2 * vocab * h + 2 * (8 * h * h + 8 * h) + vocab
    prunable = 2 * vocab * h + 2 * 8 * h * h
    assert m["params"] == params
    assert m["nnz"] == pytest.approx(params - sparsity * prunable, abs=0.001 * prunable)
    assert m["pruned_tensors_sparsity"] == pytest.approx(sparsity, abs=1e-3)
    state, masks = import_weights(run / "model.safetensors")
    if sparsity:
        assert set(masks) == {"embedding.weight", "decoder.weight", "rnn.0.weight_ih_l0",
                              "rnn.0.weight_hh_l0", "rnn.1.weight_ih_l0", "rnn.1.weight_hh_l0"}
        zeros = sum(int((state[k] == 0).sum()) for k in masks)
        assert zeros >= round(sparsity * prunable) - 1
        assert m["nnz"] == params - sum(int((~mk).sum()) for mk in masks.values())
    else:
        assert masks == {} and m["nnz"] == params
    assert m["train"]["steps"] == 14
    curves = (run / "eval.csv").read_text().splitlines()
    # the curve scores the first 2000 validation tokens (eval_curve_examples), and says so
    assert curves[0] == "step,val_perplexity_first2000"
    assert curves[-1].startswith("13,")  # last row at the final step


def test_tables_list_the_lm_rows(workdir):
    table = (workdir / "results/tables/lstm-ptb.csv").read_text()
    assert "test_perplexity" in table or "Perplexity" in table
    headline = (workdir / "results/tables/headline.csv").read_text()
    assert "lstm-ptb" in headline
