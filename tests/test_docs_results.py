"""Results committed under docs/results/ stay true to the code and presets that produced them.

docs/results/ptb-small-dense/metrics.json is the paper preset's PTB small dense row (Zaremba small,
13 epochs, through the workflow on a CPU): the reference point that the LM recipe is right.
"""

from __future__ import annotations

import json

import pytest
from tests.workflow_helpers import ROOT, load_preset

from gradprune.config import Run, resolve_run, run_settings, validate_config
from gradprune.runner import run_config

PTB_SMALL = ROOT / "docs/results/ptb-small-dense/metrics.json"
TF_PTB_WORD_LM_SMALL = 115.91  # tensorflow/models tutorials/rnn/ptb, SmallConfig, test perplexity


def test_ptb_small_dense_reproduces_the_reference_recipe_within_3_percent():
    metrics = json.loads(PTB_SMALL.read_text())
    ppl = metrics["metrics"]["test_perplexity"]
    assert abs(ppl - TF_PTB_WORD_LM_SMALL) / TF_PTB_WORD_LM_SMALL <= 0.03, ppl
    assert metrics["train"]["steps"] == 13 * 2323  # 13 epochs of BPTT-20 windows, to the end


def test_ptb_small_dense_was_trained_with_the_paper_presets_recipe():
    """The committed run's settings are those the paper preset gives this run today: a change of
    the small recipe makes this result stale, and this test says so."""
    metrics = json.loads(PTB_SMALL.read_text())
    config = validate_config(load_preset("paper"))
    run = resolve_run(config, "lstm-ptb", "lstm_lm", "200", "0.0", 0)
    assert run == Run("lstm-ptb", "lstm_lm", "200", "0.0", 0, "small-dense")
    recorded = metrics["provenance"]["config"]
    expected = json.loads(json.dumps(run_config(run_settings(config, run), run)))
    assert recorded["model_args"] == expected["model_args"]
    for key in ("total_steps", "batch_size", "bptt", "optimizer", "lr_schedule", "grad_clip_norm",
                "eval_batch_size"):
        assert recorded["train"][key] == expected["train"][key], key
    assert {k: v for k, v in recorded["run"].items() if k != "in_preset"} == run.identity
    assert metrics["provenance"]["preset"] == "paper"
    assert not metrics["provenance"]["dirty"]


@pytest.mark.parametrize("path", sorted((ROOT / "docs/results").glob("*/metrics.json")))
def test_committed_results_carry_their_provenance(path):
    prov = json.loads(path.read_text())["provenance"]
    assert len(prov["commit"]) == 40 and prov["versions"]["torch"] == "2.14.1"
