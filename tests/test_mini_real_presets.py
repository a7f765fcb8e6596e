"""The real `mini` preset (config.yaml) for the language model, translation and vision, run as a user
runs it: from the root of a copy of the repository, on the real data served by the mirror through
GRADPRUNE_DATA_MIRROR, with the real experiment, model and run names. Only the step counts (and
the number of test sentences translated) are shrunk, by an overlay file given with
``--configfile``, which Snakemake composes with config.yaml exactly as for any user's overlay.
The LM and translation build their whole tables; vision trains three of its nine runs (the dense
and 90 % width-1.0 models and the width-0.25 one: a width-1.0 step costs 0.3 s of CPU and every
model is scored on the 10,000 test images), enough to show that each kind of run learns.

The other real-data workflow tests build their config in Python and run with ``-d``; this one
catches what those stand-ins cannot: a preset whose names, sizes or recipe the code does not
accept, and an overlay merged in the wrong way (one that replaces a whole section instead of
the keys it names), and a model that does not learn from the real data. About 6 minutes
of CPU on 2 cores (the vision runs: about 2)."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pytest
import yaml
from tests.workflow_helpers import ROOT, SHARED_MIRROR, repo_copy, require_mirror, run_snakemake

from gradprune.config import OPERATIONAL_KEYS
from gradprune.training.checkpoint import import_weights

pytestmark = pytest.mark.slow

FAMILIES = {"lstm-ptb": "test_perplexity", "gnmt-multi30k": "bleu", "mobilenet-fmnist": "top1"}
TABLES = ("lstm-ptb", "gnmt-multi30k")  # experiments whose whole table is built
VISION_RUNS = [(1.0, 0.0), (1.0, 0.9), (0.25, 0.0)]  # (size, sparsity) of the vision runs trained

# The bounds a short run of the mini's recipe must clear on the real data, set from measurements
# of the overlay's runs below with a wide margin (CPU training is deterministic, so seed 0 gives
# the same numbers on every run of one commit; the margin is for recipe changes). Retune them
# when the recipe changes: rerun this module's overlay with --config seeds='[0, 1, 2]'.
#
# Vision: top-1 on the 10,000 Fashion-MNIST test images (chance: 10 %) after 60 steps, for the
# dense models. Measured at commit 8a174a3 (the issue-21 recipe), seed 0: width 1.0 66.24, width
# 0.25 60.18 (at 42499af: 64.9 and 46.0). Labels out of step with their images give about 10.
VISION_MIN_TOP1 = 40.0
# The 90 % model of the 60-step overlay (pruned from step 20, before the dense model learned
# much, to 90 % by step 45) is judged by its training loss: at 8a174a3 its last logged loss is
# 1.32 (uniform guess ln 10 = 2.30) while its test top-1 is 11.96, an eval-mode gap of this tiny
# schedule only (the full recipe's 90 % model reaches 88.01; docs/results/mobilenet-fmnist-mini).
VISION_PRUNED_MIN_LOSS_BELOW_UNIFORM = 0.5
# LM: test perplexity after 8 steps (uniform guess over PTB's 10k words: 10,000). Measured at
# commit 42499af, seed 0: 1435-1795 over the five runs.
LM_MAX_TEST_PPL = 2500.0
# Translation: eight steps do not reach a positive BLEU (measured 0.00-0.04, chrF 0.0-4.4), so
# BLEU is only bounded by its range; what the recipe guarantees is that the loss falls: the
# dense 128-unit model's last logged training loss (nats per token) below the uniform guess
# ln(3000) = 8.01 by at least this much. Measured at commit 42499af, seed 0: 1.22 below
# (6.78); every run's loss falls from its first logged value (by 0.05 to 1.19).
GNMT_MIN_LOSS_BELOW_UNIFORM = 0.5

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
        "mobilenet-fmnist": {
            "train": {"total_steps": 60, "lr_schedule": {"warmup_steps": 10}, "log_every": 5,
                      "eval_every": 30, "eval_curve_examples": 500, "checkpoint_every": 30},
            "pruning": {"begin_step": 20, "frequency": 5, "n_updates": 4},
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


def trained_runs(experiment: str) -> list[tuple[str, float]]:
    return VISION_RUNS if experiment == "mobilenet-fmnist" else expected_runs(experiment)


def run_dir(repo: Path, experiment: str, size, sparsity: float) -> Path:
    model = MINI["experiments"][experiment]["model"]
    return repo / "results" / experiment / f"{model}-{size}" / f"sparsity-{sparsity}" / "seed-0"


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    mirror = require_mirror(SHARED_MIRROR)
    for dataset in ("ptb", "multi30k", "fashion-mnist"):
        require_mirror(mirror / dataset)
    repo = repo_copy(tmp_path_factory.mktemp("mini-real"))
    (repo / "shrink.yaml").write_text(yaml.safe_dump(OVERLAY, sort_keys=False))
    targets = [f"results/tables/{experiment}.csv" for experiment in TABLES]
    targets += [str((run_dir(repo, "mobilenet-fmnist", size, s) / "metrics.json").relative_to(repo))
                for size, s in VISION_RUNS]
    proc = run_snakemake(repo, "--cores", "2", *targets, "--configfile", "shrink.yaml",
                         timeout=2400, env={"GRADPRUNE_DATA_MIRROR": str(mirror),
                                            "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-5000:]
    return repo


@pytest.mark.parametrize("experiment", FAMILIES)
def test_every_run_of_the_preset_ran_under_its_real_name(repo, experiment):
    for size, sparsity in trained_runs(experiment):
        metrics = json.loads((run_dir(repo, experiment, size, sparsity) / "metrics.json").read_text())
        assert (metrics["experiment"], metrics["model"], metrics["size"]) == (
            experiment, MINI["experiments"][experiment]["model"], size)
        assert metrics["provenance"]["preset"] == "mini"
        assert metrics["provenance"]["sources"] == ["config.yaml", f"overlay {repo / 'shrink.yaml'}"]
        assert metrics["train"]["steps"] == OVERLAY["experiments"][experiment]["train"]["total_steps"]
        assert math.isfinite(metrics["metrics"][FAMILIES[experiment]])


@pytest.mark.parametrize("experiment", FAMILIES)
def test_the_overlay_changes_only_the_keys_it_names(repo, experiment):
    """Each run records the mini's recipe with the overlay's keys replaced, nothing else lost."""
    mini = MINI["experiments"][experiment]
    overlay = OVERLAY["experiments"][experiment]
    size, sparsity = next((size, s) for size, s in trained_runs(experiment) if s > 0)
    recorded = json.loads((run_dir(repo, experiment, size, sparsity) / "metrics.json").read_text())
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
    if experiment == "mobilenet-fmnist":
        assert recorded["train"]["optimizer"]["name"] == "sgd"
        assert recorded["train"]["lr_schedule"]["name"] == "cosine"
    elif experiment == "lstm-ptb":
        assert (recorded["train"]["bptt"], recorded["train"]["eval_batch_size"]) == (35, 10)
        assert recorded["train"]["lr_schedule"]["decay"] == 0.6
        assert recorded["model_args"] == {"dropout": 0.0, "init_scale": 0.1}
    else:
        assert recorded["translation"]["loss"] == "mean_per_token"
        assert recorded["translation"]["vocab_size"] == 3000
        assert recorded["train"]["lr_schedule"]["name"] == "cosine"


def threshold_groups(masks: dict) -> dict[str, list[str]]:
    """The test's own statement of which tensors share a threshold: an LSTM layer's input and
    recurrent kernels (``weight_ih_l<k>`` and ``weight_hh_l<k>``, or a cell's ``weight_ih`` and
    ``weight_hh``), every other kernel on its own."""
    groups: dict[str, list[str]] = {}
    for name in masks:
        key = re.sub(r"weight_(ih|hh)(_l\d+(_reverse)?)?$", r"recurrent\2", name)
        groups.setdefault(key, []).append(name)
    return groups


@pytest.mark.parametrize("experiment", FAMILIES)
def test_sparse_weights_hold_the_targets_exact_counts(repo, experiment):
    """Every threshold group holds exactly floor(s * numel + 0.5) zeros of its mask (the README's
    round(s * numel), half up), and the exported weights are zero where the mask is."""
    for size, sparsity in trained_runs(experiment):
        folder = run_dir(repo, experiment, size, sparsity)
        state, masks = import_weights(folder / "model.safetensors")
        metrics = json.loads((folder / "metrics.json").read_text())
        if experiment != "mobilenet-fmnist":  # no batch norm: every exported tensor is counted
            assert sum(int(t.count_nonzero()) for t in state.values()) == metrics["nnz"]
        if sparsity == 0.0:
            assert metrics["nnz"] == metrics["params"] and not masks
            continue
        groups = threshold_groups(masks)
        assert len(groups) < len(masks) if experiment != "mobilenet-fmnist" else len(groups) == len(masks)
        for group, names in groups.items():
            numel = sum(masks[n].numel() for n in names)
            pruned = sum(int((~masks[n]).sum()) for n in names)
            assert pruned == math.floor(sparsity * numel + 0.5), (group, pruned, numel)
        for name, mask in masks.items():  # masked weights are zero in the exported tensors
            assert not state[name][~mask].any(), name
        # NNZ: the dense count less the masked weights (the README's convention)
        assert metrics["nnz"] == metrics["params"] - sum(int((~m).sum()) for m in masks.values())


def expected_lr(train: dict, t: int) -> float:
    """The test's own statement of the mini's schedules: cosine after a linear warm-up, or a
    step decay (lr * decay^k after k whole intervals from decay_start, the first at it)."""
    base, sched, total = train["optimizer"]["lr"], train["lr_schedule"], train["total_steps"]
    warmup = sched.get("warmup_steps", 0)
    if t < warmup:
        return base * (t + 1) / warmup
    if sched["name"] == "cosine":
        return 0.5 * base * (1 + math.cos(math.pi * (t - warmup) / (total - warmup)))
    assert sched["name"] == "step", sched
    if t < sched["decay_start"]:
        return base
    return base * sched["decay"] ** ((t - sched["decay_start"]) // sched["decay_every"] + 1)


@pytest.mark.parametrize("experiment", FAMILIES)
def test_every_logged_step_ran_at_the_recipes_learning_rate(repo, experiment):
    train = merged(MINI["experiments"][experiment]["train"], OVERLAY["experiments"][experiment]["train"])
    assert "continuation_lr" not in MINI["experiments"][experiment].get("pruning", {})
    for size, sparsity in trained_runs(experiment):
        log = read_csv(run_dir(repo, experiment, size, sparsity) / "train_log.csv")
        assert [int(r["step"]) for r in log] == list(
            range(train["log_every"] - 1, train["total_steps"], train["log_every"]))
        for row in log:
            step = int(row["step"])
            assert float(row["lr"]) == pytest.approx(expected_lr(train, step), rel=1e-9), step


@pytest.mark.parametrize("experiment", TABLES)
def test_tables_pair_each_sparsity_with_its_matched_small_dense_model(repo, experiment):
    rows = read_csv(repo / "results" / "tables" / f"{experiment}.csv")
    assert len(rows) == len(expected_runs(experiment))
    pairs = read_csv(repo / "results" / "tables" / f"{experiment}_headline.csv")
    sparse = [s for s in MINI["experiments"][experiment]["large"]["sparsities"] if s > 0]
    assert sorted(float(p["ls_sparsity"]) for p in pairs) == sorted(sparse)
    for pair in pairs:
        assert pair["matched"] == "True"
        assert pair["n_paired_seeds"] == "1" and pair["paired_seeds"] == "0"
        tolerance = float(pair["nnz_tolerance"])
        assert float(pair["ls_nnz_millions"]) <= (1 + tolerance) * float(pair["sd_nnz_millions"])
        assert pair["verdict"] == "one seed"  # the rule gives no verdict on one seed


def test_language_model_learned_from_the_real_corpus(repo):
    """Eight steps of the real recipe beat the uniform guess over PTB's 10k words by far, for
    every run (LM_MAX_TEST_PPL: how it was measured)."""
    for size, sparsity in trained_runs("lstm-ptb"):
        metrics = json.loads((run_dir(repo, "lstm-ptb", size, sparsity) / "metrics.json").read_text())
        ppl = metrics["metrics"]["test_perplexity"]
        assert 1 < ppl < LM_MAX_TEST_PPL, (size, sparsity, ppl)
        assert metrics["metrics"]["val_perplexity"] < LM_MAX_TEST_PPL


def test_translation_learned_from_the_real_corpus(repo):
    vocab = MINI["experiments"]["gnmt-multi30k"]["translation"]["vocab_size"]
    for size, sparsity in trained_runs("gnmt-multi30k"):
        folder = run_dir(repo, "gnmt-multi30k", size, sparsity)
        scores = json.loads((folder / "metrics.json").read_text())["metrics"]
        assert 0 <= scores["bleu"] <= 100 and 0 <= scores["chrf"] <= 100, scores
        losses = [float(r["loss"]) for r in read_csv(folder / "train_log.csv")]
        assert losses[-1] < losses[0], (size, sparsity, losses)
        if (size, sparsity) == (MINI["experiments"]["gnmt-multi30k"]["large"]["size"], 0.0):
            assert losses[-1] < math.log(vocab) - GNMT_MIN_LOSS_BELOW_UNIFORM, losses


@pytest.mark.parametrize("size, sparsity", VISION_RUNS)
def test_vision_learned_from_the_real_images(repo, size, sparsity):
    """Sixty steps of the real recipe beat chance (10 %) on the whole test set by far for the
    dense and the small model, and bring the pruned model's training loss well below the uniform
    guess (VISION_MIN_TOP1, VISION_PRUNED_MIN_LOSS_BELOW_UNIFORM: how they were measured)."""
    folder = run_dir(repo, "mobilenet-fmnist", size, sparsity)
    metrics = json.loads((folder / "metrics.json").read_text())
    if sparsity == 0.0:
        assert metrics["metrics"]["top1"] >= VISION_MIN_TOP1, metrics["metrics"]
        return
    with (folder / "train_log.csv").open(newline="") as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f)]
    assert losses[-1] < math.log(10) - VISION_PRUNED_MIN_LOSS_BELOW_UNIFORM, losses
    assert metrics["pruned_tensors_sparsity"] == pytest.approx(sparsity, abs=1e-3)  # it was pruned
