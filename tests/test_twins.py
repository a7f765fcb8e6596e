"""Runs two experiments share (gradprune.config.twins) and the copy a twin's train job writes
(gradprune.reuse). The expectations are written out by hand from the presets' text."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tests.workflow_helpers import load_preset

from gradprune import costs, runner
from gradprune.config import (
    Run,
    plan_runs,
    pretrain_home,
    train_job_resources,
    twin_run,
    validate_config,
)
from gradprune.reuse import reuse_training, train_or_copy_twin, twin_files
from gradprune.workflow import twin_inputs

LM_30 = "results/lstm-ptb/lstm_lm-30/sparsity-0.0/seed-{seed}"
LM_PRETRAIN = "results/lstm-ptb/lstm_lm-256/pretrain/seed-{seed}"
BLOCKS = ("lstm-ptb-block4", "lstm-ptb-block16")


def _mini(edit=None) -> dict:
    raw = load_preset("mini")
    if edit:
        edit(raw)
    return validate_config(raw)


def _twins(config) -> dict[str, str]:
    return {r.dir: t.dir for r in plan_runs(config) if (t := twin_run(config, r)) is not None}


def _homes(config) -> dict[str, str]:
    return {r.dir: pretrain_home(config, r) for r in plan_runs(config) if r.continues_from_dense}


def test_the_block_experiments_share_lstm_ptb_s_small_dense_run_and_its_dense_start():
    config = _mini()
    assert _twins(config) == {f"results/{b}/lstm_lm-30/sparsity-0.0/seed-0": LM_30.format(seed=0)
                              for b in BLOCKS}
    homes = _homes(config)
    for block in BLOCKS:  # pruned in blocks: trained, from lstm-ptb's dense model at t0
        assert homes[f"results/{block}/lstm_lm-256/sparsity-0.9/seed-0"] == LM_PRETRAIN.format(seed=0)
    others = {run: home for run, home in homes.items() if not run.startswith("results/lstm-ptb-")}
    assert others == {run: run.rsplit("/sparsity-", 1)[0] + "/pretrain/seed-0" for run in others}
    assert len(others) == 5 + 3 + 3  # the pruned and dense rows of vision, lstm-ptb, gnmt


def test_twins_are_per_seed():
    config = _mini(lambda raw: raw.update(seeds=[0, 1]))
    twins = _twins(config)
    assert twins[f"results/{BLOCKS[0]}/lstm_lm-30/sparsity-0.0/seed-1"] == LM_30.format(seed=1)
    assert len(twins) == 4


@pytest.mark.parametrize("change", [
    {"train": {"total_steps": 900}},
    {"model_args": {"dropout": 0.1}},
    {"pruning": {"begin_step": 200}},  # t0 moves: the dense start differs; small-dense does not
])
def test_a_setting_that_changes_the_training_ends_the_sharing(change):
    def edit(raw):
        raw["experiments"]["lstm-ptb-block4"].update(copy.deepcopy(change))

    config = _mini(edit)
    mine = "results/lstm-ptb-block4/lstm_lm-30/sparsity-0.0/seed-0"
    shares_small = "pruning" in change  # a small-dense run has no pruning settings
    assert (mine in _twins(config)) == shares_small
    assert _homes(config)["results/lstm-ptb-block4/lstm_lm-256/sparsity-0.9/seed-0"] == (
        "results/lstm-ptb-block4/lstm_lm-256/pretrain/seed-0")
    # the other block experiment still shares both
    assert _homes(config)["results/lstm-ptb-block16/lstm_lm-256/sparsity-0.9/seed-0"] == (
        LM_PRETRAIN.format(seed=0))


def test_the_experiment_listed_first_trains_and_the_later_ones_copy():
    def edit(raw):
        exps = raw["experiments"]
        raw["experiments"] = {"lstm-ptb-block4": exps.pop("lstm-ptb-block4"), **exps}

    config = _mini(edit)
    twins = _twins(config)
    first = "results/lstm-ptb-block4/lstm_lm-30/sparsity-0.0/seed-0"
    assert twins[LM_30.format(seed=0)] == first
    assert twins["results/lstm-ptb-block16/lstm_lm-30/sparsity-0.0/seed-0"] == first
    # block4 does not prune the dense 256-unit model itself, so its pretrain folder is built for
    # its 90% run: lstm-ptb (listed after it) continues from it
    assert _homes(config)["results/lstm-ptb/lstm_lm-256/sparsity-0.75/seed-0"] == (
        "results/lstm-ptb-block4/lstm_lm-256/pretrain/seed-0")


def test_a_pretrain_folder_is_shared_only_with_an_experiment_that_builds_it():
    def edit(raw):  # lstm-ptb prunes from scratch: no pretrain folder of its own
        raw["experiments"]["lstm-ptb"]["pruning"]["from_dense_checkpoint"] = False
        for block in BLOCKS:
            raw["experiments"][block]["pruning"]["from_dense_checkpoint"] = True

    config = _mini(edit)
    homes = _homes(config)
    block4 = "results/lstm-ptb-block4/lstm_lm-256/pretrain/seed-0"
    assert homes["results/lstm-ptb-block4/lstm_lm-256/sparsity-0.9/seed-0"] == block4
    assert homes["results/lstm-ptb-block16/lstm_lm-256/sparsity-0.9/seed-0"] == block4
    pretrains = sorted(j.run for j in costs.training_jobs(config) if j.step == "pretrain")
    assert pretrains == ["results/gnmt-multi30k/gnmt-128/pretrain/seed-0", block4,
                         "results/mobilenet-fmnist/mobilenet_v1-1.0/pretrain/seed-0"]


def _twin_folder(tmp_path):
    twin = tmp_path / "results/base/m-8/sparsity-0.0/seed-0"
    twin.mkdir(parents=True)
    weights = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.tensor([0.5, -1.0])}
    tensors = {**weights, "__mask__.w": torch.tensor([[1, 0, 1], [0, 1, 1]], dtype=torch.uint8)}
    save_file(tensors, str(twin / "model.safetensors"),
              metadata={"meta": json.dumps({"run": str(twin), "step": 14})})
    (twin / "train_log.csv").write_text("step,loss\n1,2.5\n")
    (twin / "eval.csv").write_text("step,ppl\n7,900.0\n")
    (twin / "prune_log.csv").write_text("step,sparsity\n")
    (twin / "train_summary.json").write_text(json.dumps({"steps": 14, "wall_time_s": 3.2}))
    return twin, tensors


def test_the_copy_keeps_the_tensors_and_names_the_run_it_was_trained_as(tmp_path):
    twin, tensors = _twin_folder(tmp_path)
    mine = tmp_path / "results/other/m-8/sparsity-0.0/seed-0"
    mine.mkdir(parents=True)
    inputs = {name: str(tmp_path / path) for name, path in twin_inputs(
        "results/base/m-8/sparsity-0.0/seed-0").items()}
    files = twin_files({**inputs, "prepared": "ignored"})
    outputs = {"weights": mine / "model.safetensors", "train_log": mine / "train_log.csv",
               "eval_log": mine / "eval.csv", "prune_log": mine / "prune_log.csv",
               "summary": mine / "train_summary.json"}
    reuse_training(files, outputs, str(mine))
    copied = load_file(str(mine / "model.safetensors"))
    assert copied.keys() == tensors.keys()
    assert all(torch.equal(copied[k], tensors[k]) and copied[k].dtype == tensors[k].dtype
               for k in tensors)
    with safe_open(str(mine / "model.safetensors"), framework="pt") as f:
        meta = json.loads(f.metadata()["meta"])
    assert meta == {"run": str(mine), "step": 14, "same_training_as": str(twin)}
    assert json.loads((mine / "train_summary.json").read_text()) == {
        "steps": 14, "wall_time_s": 3.2, "same_training_as": str(twin)}
    for name in ("train_log.csv", "eval.csv", "prune_log.csv"):
        assert (mine / name).read_bytes() == (twin / name).read_bytes()


def test_a_train_job_without_twin_inputs_trains_and_one_with_part_of_them_is_refused():
    assert twin_files({"prepared": "resources/prepared/ptb/corpus.safetensors"}) is None
    partial = twin_inputs("results/base/m-8/sparsity-0.0/seed-0")
    partial.pop("twin_eval_log")
    with pytest.raises(ValueError, match="missing inputs twin_eval_log"):
        twin_files(partial)


def test_a_train_job_copies_its_twin_or_trains_never_both(tmp_path, monkeypatch):
    """The train job's dispatch: with twin inputs it copies them and trains nothing; without, it
    trains into the weights' folder, from the init checkpoint when the job has one."""
    calls = []
    monkeypatch.setattr(runner, "train_job", lambda *args: calls.append(args))
    _, tensors = _twin_folder(tmp_path)
    mine = tmp_path / "results/other/m-8/sparsity-0.0/seed-0"
    mine.mkdir(parents=True)
    outputs = {"weights": str(mine / "model.safetensors"), "train_log": str(mine / "train_log.csv"),
               "eval_log": str(mine / "eval.csv"), "prune_log": str(mine / "prune_log.csv"),
               "summary": str(mine / "train_summary.json")}
    inputs = {name: str(tmp_path / path) for name, path in twin_inputs(
        "results/base/m-8/sparsity-0.0/seed-0").items()}
    run = Run("lstm-ptb", "lstm_lm", "8", "0.0", 0, "small-dense")
    train_or_copy_twin({"s": 1}, run, {**inputs, "prepared": "p"}, outputs, 2, 0)
    assert calls == []
    assert load_file(outputs["weights"]).keys() == tensors.keys()
    train_or_copy_twin({"s": 1}, run, {"prepared": "p"}, outputs, 2, 0)
    train_or_copy_twin({"s": 1}, run, {"prepared": "p", "init_checkpoint": "t0.safetensors"},
                       outputs, 3, 1, 2, 4)
    assert calls == [({"s": 1}, run, {"prepared": "p"}, mine, None, 2, 0, 1, None),
                     ({"s": 1}, run, {"prepared": "p", "init_checkpoint": "t0.safetensors"}, mine,
                      Path("t0.safetensors"), 3, 1, 2, 4)]


def test_a_run_of_the_first_experiment_has_no_twin():
    config = _mini()
    first = next(iter(config["experiments"]))
    assert all(twin_run(config, r) is None for r in plan_runs(config) if r.experiment == first)
    lone = Run("lstm-ptb", "lstm_lm", "30", "0.0", 0, "small-dense")
    assert twin_run(config, lone) is None


def test_a_twin_s_train_job_asks_for_one_core_and_no_gpu():
    def edit(raw):
        raw["experiments"]["lstm-ptb"]["resources"] = {"threads": 8, "mem_mb": 9000, "runtime": 600,
                                                       "gpu": 2, "nodes": 2}

    config = _mini(edit)
    copy_job = train_job_resources(config, Run("lstm-ptb-block4", "lstm_lm", "30", "0.0", 0,
                                               "small-dense"))
    assert {k: copy_job[k] for k in ("threads", "mem_mb", "runtime", "gpu", "nodes")} == {
        "threads": 1, "mem_mb": 9000, "runtime": 10, "gpu": 0, "nodes": 1}
    for run in (Run("lstm-ptb-block4", "lstm_lm", "256", "0.9", 0, "large-sparse"),
                Run("lstm-ptb", "lstm_lm", "30", "0.0", 0, "small-dense")):
        trains = train_job_resources(config, run)
        assert {k: trains[k] for k in ("threads", "mem_mb", "runtime", "gpu", "nodes")} == {
            "threads": 8, "mem_mb": 9000, "runtime": 600, "gpu": 2, "nodes": 2}
