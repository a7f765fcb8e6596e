"""The real `mini` preset (config.yaml) for the language model and translation, run as a user runs
it: from the root of a copy of the repository, on the real data served by the mirror through
GRADPRUNE_DATA_MIRROR, with the real experiment, model and run names. Only the step counts (and
the number of test sentences translated) are shrunk, by an overlay file given with
``--configfile``, which Snakemake composes with config.yaml exactly as for any user's overlay.

The other real-data workflow tests build their config in Python and run with ``-d``; this one
catches what those stand-ins cannot: a preset whose names, sizes or recipe the code does not
accept, and an overlay merged in the wrong way (one that replaces a whole section instead of
the keys it names). About 4 minutes of CPU on 2 cores."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml
from tests.workflow_helpers import ROOT, SHARED_MIRROR, repo_copy, require_mirror, run_snakemake

from gradprune.config import OPERATIONAL_KEYS
from gradprune.training.checkpoint import import_weights

pytestmark = pytest.mark.slow

FAMILIES = {"lstm-ptb": "test_perplexity", "gnmt-multi30k": "bleu"}

# Step counts only: every other key of the mini's experiments must survive the merge.
OVERLAY = {
    "experiments": {
        "lstm-ptb": {
            "train": {"total_steps": 8, "lr_schedule": {"decay_start": 6, "decay_every": 1},
                      "log_every": 2, "eval_every": 4, "eval_curve_examples": 500,
                      "checkpoint_every": 4},
            "pruning": {"begin_step": 2, "frequency": 1, "n_updates": 3},
        },
        "gnmt-multi30k": {
            "train": {"total_steps": 8, "lr_schedule": {"warmup_steps": 2}, "log_every": 2,
                      "eval_every": 4, "checkpoint_every": 4},
            "pruning": {"begin_step": 2, "frequency": 1, "n_updates": 3},
            "translation": {"test_limit": 40, "curve_examples": 10},
        },
    }
}

MINI = yaml.safe_load((ROOT / "config.yaml").read_text())


def merged(base: dict, changes: dict) -> dict:
    """The test's own statement of an overlay's meaning: nested keys replace keys, not sections."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = merged(base[key], value) if isinstance(value, dict) and isinstance(
            base.get(key), dict) else value
    return out


def expected_runs(experiment: str) -> list[tuple[str, float]]:
    """(size, sparsity) of every run the mini lists for ``experiment``, read from config.yaml."""
    exp = MINI["experiments"][experiment]
    return [(exp["large"]["size"], s) for s in exp["large"]["sparsities"]] + [
        (size, 0.0) for size in exp["small_dense"]]


def run_dir(repo: Path, experiment: str, size, sparsity: float) -> Path:
    model = MINI["experiments"][experiment]["model"]
    return repo / "results" / experiment / f"{model}-{size}" / f"sparsity-{sparsity}" / "seed-0"


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    mirror = require_mirror(SHARED_MIRROR)
    for dataset in ("ptb", "multi30k"):
        require_mirror(mirror / dataset)
    repo = repo_copy(tmp_path_factory.mktemp("mini-real"))
    (repo / "shrink.yaml").write_text(yaml.safe_dump(OVERLAY, sort_keys=False))
    targets = [f"results/tables/{experiment}.csv" for experiment in FAMILIES]
    proc = run_snakemake(repo, "--cores", "2", *targets, "--configfile", "shrink.yaml",
                         timeout=1500, env={"GRADPRUNE_DATA_MIRROR": str(mirror),
                                            "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-5000:]
    return repo


@pytest.mark.parametrize("experiment", FAMILIES)
def test_every_run_of_the_preset_ran_under_its_real_name(repo, experiment):
    for size, sparsity in expected_runs(experiment):
        metrics = json.loads((run_dir(repo, experiment, size, sparsity) / "metrics.json").read_text())
        assert (metrics["experiment"], metrics["model"], metrics["size"]) == (
            experiment, MINI["experiments"][experiment]["model"], size)
        assert metrics["provenance"]["preset"] == "mini"
        assert metrics["provenance"]["sources"] == ["config.yaml", f"overlay {repo / 'shrink.yaml'}"]
        assert metrics["train"]["steps"] == 8
        value = metrics["metrics"][FAMILIES[experiment]]
        assert math.isfinite(value) and value >= 0


@pytest.mark.parametrize("experiment", FAMILIES)
def test_the_overlay_changes_only_the_keys_it_names(repo, experiment):
    """Each run records the mini's recipe with the overlay's keys replaced, nothing else lost."""
    mini = MINI["experiments"][experiment]
    overlay = OVERLAY["experiments"][experiment]
    size = mini["large"]["size"]
    recorded = json.loads((run_dir(repo, experiment, size, 0.75) / "metrics.json").read_text())
    recorded = recorded["provenance"]["config"]

    def leaves(tree: dict, prefix=()):
        for key, value in tree.items():
            if isinstance(value, dict):
                yield from leaves(value, (*prefix, key))
            else:
                yield (*prefix, key), value

    checked = 0
    for section in ("model_args", "train", "pruning", "translation"):
        if section not in mini:
            continue
        for path, value in leaves(merged(mini[section], overlay.get(section, {}))):
            if ".".join((section, *path)) in OPERATIONAL_KEYS:
                continue  # change no reported number: metrics.json does not record them
            got = recorded[section]
            for key in path:
                got = got[key]
            assert got == value, f"{section}.{'.'.join(path)}: recorded {got!r}, composed {value!r}"
            checked += 1
    assert checked >= 15  # the whole recipe but its operational keys, not a few keys
    # spot checks of keys the overlay does not name: the mini's recipe, not a default
    if experiment == "lstm-ptb":
        assert (recorded["train"]["bptt"], recorded["train"]["eval_batch_size"]) == (35, 10)
        assert recorded["train"]["lr_schedule"]["decay"] == 0.6
        assert recorded["model_args"] == {"dropout": 0.0, "init_scale": 0.1}
    else:
        assert recorded["translation"]["loss"] == "mean_per_token"
        assert recorded["translation"]["vocab_size"] == 3000
        assert recorded["train"]["lr_schedule"]["name"] == "cosine"


@pytest.mark.parametrize("experiment", FAMILIES)
def test_sparse_weights_hold_the_targets_sparsity(repo, experiment):
    size = MINI["experiments"][experiment]["large"]["size"]
    for sparsity in MINI["experiments"][experiment]["large"]["sparsities"]:
        folder = run_dir(repo, experiment, size, sparsity)
        state, masks = import_weights(folder / "model.safetensors")
        metrics = json.loads((folder / "metrics.json").read_text())
        assert sum(int(t.count_nonzero()) for t in state.values()) == metrics["nnz"]
        if sparsity == 0.0:
            assert metrics["nnz"] == metrics["params"]
            continue
        pruned = sum(int((~m).sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())
        assert pruned == pytest.approx(sparsity, abs=1e-3)
        for name, mask in masks.items():  # masked weights are zero in the exported tensors
            assert not state[name][~mask].any(), name


@pytest.mark.parametrize("experiment", FAMILIES)
def test_tables_pair_each_sparsity_with_its_matched_small_dense_model(repo, experiment):
    rows = read_csv(repo / "results" / "tables" / f"{experiment}.csv")
    assert len(rows) == len(expected_runs(experiment))
    pairs = read_csv(repo / "results" / "tables" / f"{experiment}_headline.csv")
    sparse = [s for s in MINI["experiments"][experiment]["large"]["sparsities"] if s > 0]
    assert sorted(float(p["ls_sparsity"]) for p in pairs) == sorted(sparse)
    for pair in pairs:
        assert pair["matched"] == "True"
        tolerance = float(pair["nnz_tolerance"])
        assert float(pair["ls_nnz_millions"]) <= (1 + tolerance) * float(pair["sd_nnz_millions"])
        assert pair["verdict"] == "one seed"  # the rule gives no verdict on one seed


def test_language_model_learned_from_the_real_corpus(repo):
    """Eight steps of the real recipe beat the uniform guess over PTB's 10k words by far."""
    size = MINI["experiments"]["lstm-ptb"]["large"]["size"]
    metrics = json.loads((run_dir(repo, "lstm-ptb", size, 0.0) / "metrics.json").read_text())
    assert metrics["metrics"]["test_perplexity"] < 5000
