"""Results committed under docs/results/ stay true to the code and presets that produced them.

docs/results/ptb-small-dense/metrics.json is the paper preset's PTB small dense row (Zaremba small,
13 epochs, through the workflow on a CPU): the reference point that the LM recipe is right.
docs/results/lstm-ptb-3-epochs/ holds the runs of the mini's LM at 3 epochs (the overlay
presets/mini-lm-3-epochs.yaml) and their tables: the README's numbers for it are read from here.
"""

from __future__ import annotations

import csv
import json
import re

import pytest
from tests.workflow_helpers import ROOT, load_preset

from gradprune.config import Run, compose_config, resolve_run, run_settings, validate_config
from gradprune.runner import run_config

PTB_SMALL = ROOT / "docs/results/ptb-small-dense/metrics.json"
LM_3_EPOCHS = ROOT / "docs/results/lstm-ptb-3-epochs"
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


def readme_table(title: str) -> list[list[str]]:
    """The body rows (cells) of the README table whose first header cell starts with ``title``."""
    lines = (ROOT / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {title}"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def run_of(label: str) -> tuple[str, str]:
    """(size, sparsity) folder names of a README row label: "256 units, 75%", "73 units"."""
    size = re.match(r"\D*(\d+(?:\.\d+)?)", label).group(1)
    percent = re.search(r"(\d+)%", label)
    return size, str(int(percent.group(1)) / 100) if percent else "0.0"


def test_lm_3_epochs_was_trained_with_the_overlay_on_the_current_mini():
    """Every committed run recorded exactly the settings that config.yaml composed with the overlay
    gives it today: a change of either makes the result stale, and this test says so."""
    config = validate_config(compose_config([ROOT / "presets/mini-lm-3-epochs.yaml"], {},
                                            [ROOT / "config.yaml"]))
    paths = sorted(LM_3_EPOCHS.rglob("metrics.json"))
    assert len(paths) == 5  # the mini's LM runs: 256 units at 0/75/90%, 73 and 30 units
    for path in paths:
        metrics = json.loads(path.read_text())
        recorded = metrics["provenance"]["config"]
        ident = recorded["run"]
        run = resolve_run(config, ident["experiment"], ident["model"], ident["size"],
                          ident["sparsity"], ident["seed"])
        assert recorded == json.loads(json.dumps(run_config(run_settings(config, run), run))), path
        assert metrics["train"]["steps"] == 3981
        assert not metrics["provenance"]["dirty"]


def test_readme_quotes_the_lm_3_epochs_results():
    rows = readme_table("2-layer LSTM LM, PTB, 3 epochs")
    assert len(rows) == 3
    quoted = 0
    for row in rows:
        for label, ppl in ((row[0], row[2]), (row[3], row[5])):
            if not label:
                continue
            size, sparsity = run_of(label)
            path = LM_3_EPOCHS / f"lstm_lm-{size}/sparsity-{sparsity}/seed-0/metrics.json"
            measured = json.loads(path.read_text())["metrics"]["test_perplexity"]
            assert ppl == f"{measured:.2f}", (label, ppl, measured)
            quoted += 1
    assert quoted == 5
    with (LM_3_EPOCHS / "tables/lstm-ptb_headline.csv").open(newline="") as f:
        pairs = list(csv.DictReader(f))
    assert [p["matched"] for p in pairs] == ["True", "True"]
    assert {p["ahead"] for p in pairs} == {"large-sparse"}  # what the README's prose says


@pytest.mark.parametrize("path", sorted((ROOT / "docs/results").rglob("metrics.json")))
def test_committed_results_carry_their_provenance(path):
    prov = json.loads(path.read_text())["provenance"]
    assert len(prov["commit"]) == 40 and prov["versions"]["torch"] == "2.14.1"
