"""Presets: schema validation with clear errors, the plan of runs, and dry runs of every preset."""

from __future__ import annotations

import re
import time

import pytest
from tests.workflow_helpers import load_preset, snakemake

from gradprune.config import ConfigError, load_config, plan_runs, validate_config


@pytest.mark.parametrize("name", ["mini", "paper", "test"])
def test_every_preset_validates(name):
    config = validate_config(load_preset(name))
    assert config["preset"] == name
    assert plan_runs(config)


def test_unknown_key_is_rejected_with_its_name():
    config = load_preset("test")
    config["experiments"]["mobilenet-fmnist"]["train"]["totl_steps"] = 5
    with pytest.raises(ConfigError, match=r"experiments\.mobilenet-fmnist\.train.*'totl_steps' was unexpected"):
        validate_config(config)


def test_bad_value_names_the_allowed_values():
    config = load_preset("test")
    config["experiments"]["mobilenet-fmnist"]["model"] = "resnet50"
    with pytest.raises(ConfigError, match=r"model: 'resnet50' is not one of \['mobilenet_v1'"):
        validate_config(config)


def test_pruning_must_end_before_training_does():
    config = load_preset("test")
    config["experiments"]["mobilenet-fmnist"]["pruning"]["n_updates"] = 50
    with pytest.raises(ConfigError, match="pruning ends at step"):
        validate_config(config)


def test_unreadable_config_file_is_reported(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("preset: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_plan_pairs_every_sparsity_with_small_dense_models_and_seeds():
    config = validate_config(load_preset("mini"))
    config["seeds"] = [0, 1]
    runs = [r for r in plan_runs(config) if r.experiment == "mobilenet-fmnist"]
    large = {(r.sparsity, r.seed) for r in runs if r.size == "1.0"}
    assert large == {(s, seed) for s in ("0.0", "0.5", "0.75", "0.9", "0.95") for seed in (0, 1)}
    small = {(r.size, r.role) for r in runs if r.role == "small-dense"}
    assert small == {("0.75", "small-dense"), ("0.5", "small-dense"), ("0.25", "small-dense")}
    assert runs[0].metrics.startswith("results/mobilenet-fmnist/mobilenet_v1-1.0/sparsity-0.0/seed-0/")


def test_paper_preset_dry_run_lists_every_row_quickly(tmp_path):
    config = load_preset("paper")
    start = time.time()
    proc = snakemake(tmp_path, config, "-n", "--quiet", "rules", timeout=300)
    elapsed = time.time() - start
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout + proc.stderr, re.MULTILINE))
    n_runs = len(plan_runs(validate_config(config)))
    assert int(counts["train"]) == n_runs and int(counts["evaluate"]) == n_runs
    assert elapsed < 120, f"dry run took {elapsed:.0f} s"


def test_paper_preset_plans_the_wmt16_archives_as_downloads(tmp_path):
    proc = snakemake(tmp_path, load_preset("paper"), "-n", "resources/prepared/wmt16/data.safetensors",
                     timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    for archive in ("training-parallel-europarl-v7.tgz", "training-parallel-commoncrawl.tgz",
                    "training-parallel-nc-v11.tgz", "wmt19-dev.tgz"):
        assert f"resources/data/wmt16/{archive}" in out, archive
    assert "resources/data/wmt14/newstest2014-deen-src.en.sgm" in out


def test_config_error_stops_snakemake_before_any_job(tmp_path):
    config = load_preset("test")
    config["experiments"]["mobilenet-fmnist"]["family"] = "audio"
    proc = snakemake(tmp_path, config, "-n")
    assert proc.returncode != 0
    assert "'audio' is not one of" in proc.stdout + proc.stderr
