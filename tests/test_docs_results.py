"""Results committed under docs/results/ stay true to the code and presets that produced them.

docs/results/ptb-small-dense/metrics.json is the paper preset's PTB small dense row (Zaremba small,
13 epochs, through the workflow on a CPU): the reference point that the LM recipe is right.
The other folders hold the runs and tables the README's results quote (RESULT_SETS): the README
must quote them, and they must have been trained with the recipe the preset gives today.
"""

from __future__ import annotations

import csv
import json
import re

import pytest
from tests.workflow_helpers import ROOT, load_preset

from gradprune.config import (
    OPERATIONAL_KEYS,
    Run,
    compose_config,
    evaluation_config,
    resolve_run,
    run_settings,
    validate_config,
    without_keys,
)

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
    expected = json.loads(json.dumps(evaluation_config(run_settings(config, run), run)))
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


def run_of(label: str) -> tuple[float, float]:
    """(size, sparsity) of a README row label: "256 units, 75%", "73 units", "width 1.0, 90%"."""
    size = re.match(r"\D*(\d+(?:\.\d+)?)", label).group(1)
    percent = re.search(r"(\d+)%", label)
    return float(size), int(percent.group(1)) / 100 if percent else 0.0


def read_csv(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


# docs/results/<folder>: (the overlays composed with config.yaml that trained it, its experiment,
# the first header cell of the README table quoting it, the seeds, the steps of every run)
RESULT_SETS = {
    "lstm-ptb-mini": ((), "lstm-ptb", "2-layer LSTM LM, PTB (1000 steps", (0, 1), 1000),
    "lstm-ptb-3-epochs": (("presets/mini-lm-3-epochs.yaml",), "lstm-ptb",
                          "2-layer LSTM LM, PTB, 3 epochs", (0,), 3981),
    "mobilenet-fmnist-mini": ((), "mobilenet-fmnist", "MobileNetV1, Fashion-MNIST (2800 steps",
                              (0, 1), 2800),
}


@pytest.mark.parametrize("name", RESULT_SETS)
def test_committed_runs_were_trained_with_the_presets_recipe_today(name):
    """Every committed run recorded exactly the settings that config.yaml (with the set's overlays)
    gives it today: a change of the recipe makes the result stale, and this test says so."""
    overlays, experiment, _, seeds, steps = RESULT_SETS[name]
    config = validate_config(compose_config([ROOT / o for o in overlays], {}, [ROOT / "config.yaml"]))
    exp = config["experiments"][experiment]
    paths = sorted((ROOT / "docs/results" / name).rglob("metrics.json"))
    # every run the preset lists, for every seed
    assert len(paths) == (len(exp["large"]["sparsities"]) + len(exp["small_dense"])) * len(seeds)
    for path in paths:
        metrics = json.loads(path.read_text())
        recorded = metrics["provenance"]["config"]
        ident = recorded["run"]
        run = resolve_run(config, ident["experiment"], ident["model"], ident["size"],
                          ident["sparsity"], ident["seed"])
        # what evaluate records today; the operational keys that older runs also recorded
        # (checkpoint, log and curve intervals) change no reported number
        expected = json.loads(json.dumps(evaluation_config(run_settings(config, run), run)))
        assert without_keys(recorded, OPERATIONAL_KEYS) == expected, path
        assert metrics["train"]["steps"] == steps
        assert not metrics["provenance"]["dirty"]


@pytest.mark.parametrize("name", RESULT_SETS)
def test_readme_quotes_the_committed_results(name):
    """The README's table holds the committed table's numbers (mean ± sd over the seeds), the
    table holds the mean of the committed runs, and a verdict column quotes the headline's."""
    _, experiment, title, seeds, _ = RESULT_SETS[name]
    folder = ROOT / "docs/results" / name
    table = {(float(r["size"]), float(r["sparsity"])): r for r in read_csv(folder / f"tables/{experiment}.csv")}
    pairs = {float(p["ls_sparsity"]): p for p in read_csv(folder / f"tables/{experiment}_headline.csv")}
    runs = [json.loads(p.read_text()) for p in folder.rglob("metrics.json")]
    metric = runs[0]["task_metric"]
    rows = readme_table(title)
    assert len(rows) == len(pairs) + 1  # the dense row, then one row per sparsity
    quoted = set()
    for row in rows:
        for label, cell in ((row[0], row[2]), (row[3], row[5])):
            if not label:
                continue
            key = run_of(label)
            entry = table[key]
            mean, std = float(entry[metric]), entry[f"{metric}_std"]
            expected = f"{mean:.2f}" if len(seeds) == 1 else f"{mean:.2f} ± {float(std):.2f}"
            assert cell == expected, (label, cell, expected)
            of_run = [r for r in runs if (float(r["size"]), float(r["target_sparsity"])) == key]
            assert sorted(r["seed"] for r in of_run) == list(seeds)
            values = [r["metrics"][metric] for r in of_run]
            assert mean == pytest.approx(sum(values) / len(values), abs=1e-9)
            quoted.add(key)
        if len(row) > 6 and row[3]:  # a verdict column (two or more seeds), on a paired row
            pair = pairs[run_of(row[0])[1]]
            assert pair["matched"] == "True"
            verdict = pair["verdict"]
            if verdict.endswith("wins"):
                verdict += f" (by {abs(float(pair['difference'])):.2f}; spread {float(pair['spread']):.2f})"
            assert row[6] == verdict, (row[0], row[6], verdict)
    assert quoted == set(table)  # every run of the table is quoted


@pytest.mark.parametrize("path", sorted((ROOT / "docs/results").rglob("metrics.json")))
def test_committed_results_carry_their_provenance(path):
    prov = json.loads(path.read_text())["provenance"]
    assert len(prov["commit"]) == 40 and prov["versions"]["torch"] == "2.14.1"
