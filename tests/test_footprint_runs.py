"""The per-run drivers on the `lstm_lm` family, in process: footprint.json (int8 perplexity through
the LM task's own evaluate) and latency.json (one step of the recurrent loop)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from gradprune.config import Run, run_settings, validate_config
from gradprune.footprint.formats import FORMATS
from gradprune.footprint.latency import latency
from gradprune.footprint.storage import footprint, prunable_tensors
from gradprune.runner import new_state
from gradprune.training.checkpoint import export_weights

EXP = "lstm-ptb"
CONFIG = {
    "preset": "test", "seeds": [0], "device": "cpu",
    "footprint": {"latency_batches": [1, 3], "latency_rounds": 2, "latency_min_time_s": 0.001},
    "experiments": {EXP: {
        "family": "lm", "dataset": "ptb", "model": "lstm_lm",
        "model_args": {"dropout": 0.0},
        "large": {"size": 12, "sparsities": [0.0, 0.8]},
        "train": {"total_steps": 10, "batch_size": 2, "bptt": 5, "eval_batch_size": 4,
                  "optimizer": {"name": "sgd", "lr": 1.0}},
        "pruning": {"begin_step": 2, "frequency": 2, "n_updates": 2},
    }},
}


@pytest.fixture
def lm_run(tmp_path):
    """A pruned 12-unit LSTM LM on a 30-word synthetic corpus, exported as training would."""
    gen = torch.Generator().manual_seed(0)
    vocab = [f"w{i}" for i in range(30)]
    streams = {s: torch.randint(0, 30, (n,), generator=gen) for s, n in
               (("train", 400), ("valid", 60), ("test", 60))}
    corpus = tmp_path / "corpus.safetensors"
    save_file(streams, str(corpus), metadata={"vocab": "\n".join(vocab)})
    config = validate_config(CONFIG)
    run = Run(EXP, "lstm_lm", "12", "0.8", 0, "large-sparse")
    data = {"prepared": str(corpus)}
    settings = run_settings(config, run)
    built = new_state(settings, run, data, with_pruner=False)
    encoded = prunable_tensors(config["experiments"][EXP], built.model)
    masks = {}
    with torch.no_grad():
        for name in encoded:
            p = built.model.get_parameter(name)
            masks[name] = torch.rand(p.shape, generator=gen) > 0.8
            p.mul_(masks[name])
    weights = tmp_path / "model.safetensors"
    export_weights(built.model, masks, weights, {"run": run.dir})
    metrics = built.task.evaluate(built.model, split="test")
    nnz = sum(p.numel() for p in built.model.parameters()) - sum(
        int((~m).sum()) for m in masks.values())
    metrics_json = tmp_path / "metrics.json"
    metrics_json.write_text(json.dumps({
        "experiment": EXP, "model": "lstm_lm", "size": 12, "role": "large-sparse",
        "target_sparsity": 0.8, "seed": 0, "nnz": nnz, "params": nnz, "task_metric":
        "test_perplexity", "metrics": metrics}))
    return config, settings, run, data, weights, metrics_json, encoded


def test_lm_footprint_scores_int8_weights_with_the_lm_task(lm_run, tmp_path):
    config, settings, run, data, weights, metrics_json, encoded = lm_run
    fp = footprint(settings, run, data, weights, metrics_json, tmp_path / "footprint.json",
                   config["experiments"][EXP]["pruning"])
    assert json.loads((tmp_path / "footprint.json").read_text()) == fp
    assert set(fp["formats"]) == set(FORMATS)
    assert sorted(fp["pruned_tensors"]) == sorted(encoded)
    assert {"embedding.weight", "decoder.weight", "rnn.0.weight_ih_l0"} <= set(encoded)
    exact = json.loads(metrics_json.read_text())["metrics"]
    int8 = fp["int8"]["metrics"]
    assert fp["formats"]["bitmask"]["metrics"] == exact
    assert fp["formats"]["bitmask-int8"]["metrics"] == int8
    # int8 weights change the perplexity, but only a little
    assert int8["test_perplexity"] != exact["test_perplexity"]
    assert int8["test_perplexity"] == pytest.approx(exact["test_perplexity"], rel=0.05)
    assert not list(tmp_path.glob(".footprint-*"))  # the format files are gone


def test_lm_latency_times_one_recurrent_step_dense_and_sparse(lm_run, tmp_path):
    config, settings, run, data, weights, metrics_json, _ = lm_run
    out = latency(settings, run, data, weights, metrics_json, tmp_path / "latency.json",
                  config["footprint"], config["experiments"][EXP]["pruning"])
    assert out["call"].startswith("one step of the recurrent loop")
    assert out["threads"] == 1 and out["rounds"] == 2
    assert {(t["mode"], t["batch"]) for t in out["timings"]} == {
        (m, b) for m in ("dense", "sparse") for b in (1, 3)}
    assert all(t["min_s"] <= t["median_s"] <= t["max_s"] for t in out["timings"])
    assert [s["batch"] for s in out["speedup"]] == [1, 3]
