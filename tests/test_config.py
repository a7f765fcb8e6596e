"""Presets: how the config is composed (as Snakemake really passes it), validated with clear
errors, turned into runs and per-run settings; and dry runs of the real presets from a copy of the
repository root."""

from __future__ import annotations

import re

import pytest
import yaml
from tests.workflow_helpers import (
    ROOT,
    load_preset,
    planned_jobs,
    planned_runs,
    repo_copy,
    run_snakemake,
)

from gradprune.config import (
    ConfigError,
    Run,
    compose_config,
    load_config,
    only_experiments,
    plan_runs,
    read_config_file,
    resolve_run,
    run_settings,
    typed_overrides,
    validate_config,
)

PAPER = ROOT / "presets" / "paper.yaml"
TEST = ROOT / "presets" / "test.yaml"
MINI = ROOT / "config.yaml"


@pytest.mark.parametrize("name", ["mini", "paper", "test"])
def test_every_preset_validates(name):
    config = validate_config(load_preset(name))
    assert config["preset"] == name
    assert plan_runs(config)


# -- composition ---------------------------------------------------------------------------------


def test_a_preset_on_the_command_line_replaces_the_default():
    config = compose_config([PAPER], {}, [MINI])
    assert config["preset"] == "paper"
    assert set(config["experiments"]) == set(read_config_file(PAPER)["experiments"])
    # nothing of the mini leaks in (its lstm-ptb sets dropout 0.0 / init 0.1)
    assert config["experiments"]["lstm-ptb"]["model_args"] == {"dropout": 0.65, "init_scale": 0.04}
    assert config["sources"] == [str(PAPER)]
    test = compose_config([TEST], {}, [MINI])
    assert set(test["experiments"]) == {"mobilenet-fmnist"}
    assert "warmup_steps" not in test["experiments"]["mobilenet-fmnist"]["train"]["lr_schedule"]


def test_overlays_merge_onto_the_preset_in_order(tmp_path):
    first = tmp_path / "first.yaml"
    first.write_text("seeds: [0, 1]\nexperiments:\n  mobilenet-fmnist:\n    train: {total_steps: 20}\n")
    second = tmp_path / "second.yaml"
    second.write_text("experiments:\n  mobilenet-fmnist:\n    train: {total_steps: 30, batch_size: 8}\n")
    config = compose_config([TEST, first, second], {}, [MINI])
    train = config["experiments"]["mobilenet-fmnist"]["train"]
    assert (train["total_steps"], train["batch_size"], train["eval_batch_size"]) == (30, 8, 64)
    assert config["seeds"] == [0, 1]
    assert config["sources"] == [str(TEST), f"overlay {first}", f"overlay {second}"]
    # an overlay alone applies to the default preset
    alone = compose_config([first], {}, [tmp_path / "missing.yaml", MINI])
    assert alone["preset"] == "mini" and alone["seeds"] == [0, 1]
    assert alone["experiments"]["mobilenet-fmnist"]["train"]["total_steps"] == 20
    assert alone["sources"][0] == str(MINI)


def test_two_presets_or_no_preset_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="two presets given"):
        compose_config([TEST, PAPER], {}, [MINI])
    with pytest.raises(ConfigError, match="no preset: config.yaml was not found"):
        compose_config([], {}, [tmp_path / "config.yaml"])


def test_command_line_values_are_read_as_yaml():
    # What snakemake.cli.parse_config gives for --config seeds='[0, 1]' data='{offline: true}'
    # mirror=/data/m (nested values arrive as strings).
    raw = {"seeds": ["0", "1"], "data": {"offline": "true", "mirror": "/data/m"}, "device": "cpu"}
    assert typed_overrides(raw) == {"seeds": [0, 1], "data": {"offline": True, "mirror": "/data/m"},
                                    "device": "cpu"}
    config = validate_config(compose_config([TEST], raw, []))
    assert config["seeds"] == [0, 1] and config["data"]["offline"] is True
    assert config["data"]["registry"] is None  # the rest of `data` keeps its defaults
    assert config["sources"][1:] == ['--config seeds=[0, 1]', ('--config data={"offline": true, '
                                     '"mirror": "/data/m"}'), '--config device="cpu"']


def test_unreadable_config_file_is_reported(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("preset: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    twice = tmp_path / "twice.yaml"
    twice.write_text("preset: x\nexperiments:\n  a: {family: vision}\n  a: {family: lm}\n")
    with pytest.raises(ConfigError, match="key 'a' appears twice in one mapping"):
        compose_config([twice], {}, [MINI])
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        compose_config([scalar], {}, [MINI])


# -- validation ----------------------------------------------------------------------------------


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


def _exp(config):
    return config["experiments"]["mobilenet-fmnist"]


@pytest.mark.parametrize("change, message", [
    (lambda e: e.update(family="lm"),
     (r"experiments\.mobilenet-fmnist\.dataset: 'fashion-mnist' is not a dataset of family 'lm'; "
     r"allowed: ptb, wikitext-2")),
    (lambda e: e.update(model="lstm_lm"),
     (r"experiments\.mobilenet-fmnist\.model: 'lstm_lm' is not a model of family 'vision'; "
     r"allowed: mobilenet_v1, inception_v3")),
    (lambda e: e.update(small_dense=["abc"]),
     (r"experiments\.mobilenet-fmnist\.small_dense\.0: 'abc' is not a size of mobilenet_v1; "
     r"a size is a width multiplier > 0")),
    (lambda e: e["large"].update(size=-1),
     r"experiments\.mobilenet-fmnist\.large\.size: -1 is not a size of mobilenet_v1"),
    (lambda e: e["train"].update(lr_schedule={"name": "cosine", "warmup_steps": 50}),
     (r"experiments\.mobilenet-fmnist\.train\.lr_schedule\.warmup_steps: 50 is not below "
     r"train\.total_steps \(12\)")),
    (lambda e: e["pruning"].update(n_updates=50),
     r"experiments\.mobilenet-fmnist\.pruning: pruning ends at step 103"),
    (lambda e: e.update(recipes={"0.3": {"train": {"total_steps": 20}}}),
     (r"experiments\.mobilenet-fmnist\.recipes\.0\.3: no model of size 0\.3 in this experiment; "
     r"its sizes: 1\.0, 0\.25")),
    (lambda e: e.update(recipes={"0.25": {"train": {"totl_steps": 20}}}),
     r"experiments\.mobilenet-fmnist\.recipes\.0\.25\.train: .*'totl_steps' was unexpected"),
])
def test_cross_field_errors_name_the_key_the_value_and_what_is_allowed(change, message):
    config = load_preset("test")
    change(_exp(config))
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


@pytest.mark.parametrize("pruning, warmup, refused", [
    ({"frequency": 3, "n_updates": 3}, 0, "pruning ends at step 12"),   # the last step's index + 1
    ({"frequency": 2, "n_updates": 4}, 0, None),                        # ends at 11 < 12
    ({}, 12, "warmup_steps: 12 is not below"),
    ({}, 11, None),
])
def test_pruning_and_warmup_must_end_before_training_does_at_the_boundary(pruning, warmup,
                                                                         refused):
    """The test preset trains 12 steps; its pruning begins at step 3."""
    config = load_preset("test")
    _exp(config)["pruning"].update(pruning)
    _exp(config)["train"]["lr_schedule"]["warmup_steps"] = warmup
    if refused is None:
        validate_config(config)
    else:
        with pytest.raises(ConfigError, match=refused):
            validate_config(config)


def test_inception_has_no_width_and_lstm_sizes_are_units_or_names():
    config = validate_config(load_preset("paper"))
    config["experiments"]["inceptionv3-imagenet"]["large"]["size"] = 0.5
    with pytest.raises(ConfigError, match="InceptionV3 has no width multiplier"):
        validate_config(config)
    config = validate_config(load_preset("paper"))
    config["experiments"]["lstm-ptb"]["small_dense"] = ["medium", 200, 650.5]
    with pytest.raises(ConfigError, match=r"small_dense\.2: 650\.5 is not a size of lstm_lm"):
        validate_config(config)


# -- runs and their settings ---------------------------------------------------------------------


def test_plan_pairs_every_sparsity_with_small_dense_models_and_seeds():
    config = validate_config(load_preset("mini"))
    config["seeds"] = [0, 1]
    runs = [r for r in plan_runs(config) if r.experiment == "mobilenet-fmnist"]
    large = {(r.sparsity, r.seed) for r in runs if r.size == "1.0"}
    assert large == {(s, seed) for s in ("0.0", "0.5", "0.75", "0.9", "0.95") for seed in (0, 1)}
    small = {r.size for r in runs if r.role == "small-dense"}
    assert small == {"0.75", "0.5", "0.35", "0.25"}
    assert runs[0].metrics == "results/mobilenet-fmnist/mobilenet_v1-1.0/sparsity-0.0/seed-0/metrics.json"


def test_paper_lstm_sizes_train_with_their_own_zaremba_recipe():
    config = validate_config(load_preset("paper"))

    def settings(size, sparsity="0.0", role="small-dense"):
        return run_settings(config, resolve_run(config, "lstm-ptb", "lstm_lm", size, sparsity, 0))["experiment"]

    large, medium, small = settings("1500", "0.9"), settings("650", "0.9"), settings("200")
    assert (large["model_args"], medium["model_args"], small["model_args"]) == (
        {"dropout": 0.65, "init_scale": 0.04}, {"dropout": 0.5, "init_scale": 0.05},
        {"dropout": 0.0, "init_scale": 0.1})
    epoch35, epoch20 = (929_589 // 20 - 1) // 35, (929_589 // 20 - 1) // 20
    assert (epoch35, epoch20) == (1327, 2323)
    for exp, bptt, epochs, clip, decay, decay_epoch in (
        (large, 35, 55, 10.0, 1 / 1.15, 14), (medium, 35, 39, 5.0, 0.8, 6), (small, 20, 13, 5.0, 0.5, 4)
    ):
        tr = exp["train"]
        per_epoch = (929_589 // 20 - 1) // bptt
        assert (tr["bptt"], tr["total_steps"], tr["grad_clip_norm"]) == (bptt, epochs * per_epoch, clip)
        assert tr["lr_schedule"]["decay"] == pytest.approx(decay)
        assert tr["lr_schedule"]["decay_start"] == decay_epoch * per_epoch
        assert tr["lr_schedule"]["decay_every"] == per_epoch
        assert tr["optimizer"]["lr"] == 1.0 and tr["batch_size"] == 20
    # the medium window is its own and ends before training does
    assert medium["pruning"]["begin_step"] == 3981
    assert "pruning" not in small  # a small-dense run does not depend on the pruning schedule
    # the medium dense row trains with the medium recipe, from scratch
    assert settings("650") == {k: v for k, v in medium.items() if k != "pruning"}


def test_run_settings_hold_only_what_determines_the_run():
    config = validate_config(load_preset("mini"))
    run = resolve_run(config, "mobilenet-fmnist", "mobilenet_v1", "1.0", "0.9", 0)
    before = run_settings(config, run)
    grown = validate_config(load_preset("mini"))
    grown["experiments"]["mobilenet-fmnist"]["large"]["sparsities"].append(0.8)
    grown["experiments"]["mobilenet-fmnist"]["small_dense"].append(0.35)
    grown["experiments"]["mobilenet-fmnist"]["description"] = "another text"
    grown["seeds"] = [0, 1]
    grown["data"]["mirror"] = "/elsewhere"
    grown["preset"] = "renamed"
    assert run_settings(grown, run) == before
    dense = resolve_run(config, "mobilenet-fmnist", "mobilenet_v1", "1.0", "0.0", 0)
    rescheduled = validate_config(load_preset("mini"))
    rescheduled["experiments"]["mobilenet-fmnist"]["pruning"]["frequency"] = 25
    assert run_settings(rescheduled, dense) == run_settings(config, dense)
    assert run_settings(rescheduled, run) != before


def test_runs_named_by_folder():
    config = validate_config(load_preset("mini"))
    listed = resolve_run(config, "mobilenet-fmnist", "mobilenet_v1", "1.0", "0.9", "0")
    assert listed.in_preset and listed.role == "large-sparse"
    new_sparsity = resolve_run(config, "mobilenet-fmnist", "mobilenet_v1", "1.0", "0.8", 0)
    assert new_sparsity == Run("mobilenet-fmnist", "mobilenet_v1", "1.0", "0.8", 0, "large-sparse",
                               in_preset=False)
    new_seed = resolve_run(config, "mobilenet-fmnist", "mobilenet_v1", "0.25", "0.0", 3)
    assert new_seed.role == "small-dense" and not new_seed.in_preset
    assert Run.from_dict(new_seed.to_dict()) == new_seed
    for args, message in [
        (("nope", "mobilenet_v1", "1.0", "0.5", 0),
         ("preset mini has no experiment 'nope'; it has: mobilenet-fmnist, lstm-ptb, "
          "lstm-ptb-block4, lstm-ptb-block16, gnmt-multi30k")),
        (("mobilenet-fmnist", "lstm_lm", "1.0", "0.5", 0), "trains mobilenet_v1, not 'lstm_lm'"),
        (("mobilenet-fmnist", "mobilenet_v1", "0.3", "0.5", 0),
         "has no mobilenet_v1 of size '0.3'; its sizes: 1.0, 0.75, 0.5, 0.35, 0.25"),
        (("mobilenet-fmnist", "mobilenet_v1", "0.5", "0.8", 0),
         "small-dense model of mobilenet-fmnist (trained dense only); the sizes it prunes: 1.0"),
        (("mobilenet-fmnist", "mobilenet_v1", "1.0", "0.80", 0), "sparsity '0.80' is not a fraction"),
        (("mobilenet-fmnist", "mobilenet_v1", "1.0", "1.0", 0), "sparsity '1.0' is not a fraction"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            resolve_run(config, *args)


# -- the real presets through Snakemake, from a copy of the repository root -----------------------


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return repo_copy(tmp_path_factory.mktemp("repo"))


def _experiments_planned(proc) -> set[str]:
    return {run.split("/")[1] for run in planned_runs(proc)}


@pytest.mark.parametrize("name", ["paper", "test"])
def test_a_preset_plans_only_its_own_experiments(repo, name):
    proc = run_snakemake(repo, "-n", "--configfile", f"presets/{name}.yaml", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _experiments_planned(proc) == set(read_config_file(ROOT / f"presets/{name}.yaml")["experiments"])
    assert "is extended by additional config" not in proc.stdout + proc.stderr


def test_the_default_preset_plans_the_mini(repo):
    proc = run_snakemake(repo, "-n", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _experiments_planned(proc) == {"mobilenet-fmnist", "lstm-ptb", "lstm-ptb-block4",
                                          "lstm-ptb-block16", "gnmt-multi30k"}


def test_the_composed_config_equals_the_preset_after_schema_defaults(repo):
    """What the workflow's jobs derive their settings from (results/config.yaml) is the preset file
    and nothing else, key by key, for the paper preset as a user gives it."""
    proc = run_snakemake(repo, "--cores", "1", "results/config.yaml", "--configfile",
                         "presets/paper.yaml", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = yaml.safe_load((repo / "results/config.yaml").read_text())
    assert written.pop("sources") == [str((repo / "presets/paper.yaml").resolve())]
    expected = validate_config(read_config_file(PAPER))
    assert written == expected
    for run in plan_runs(written):  # every job's settings follow from it alone
        assert run_settings(written, run) == run_settings(expected, run)


def test_paper_preset_dry_run_lists_every_row(repo):
    """Every run of the paper preset is planned; how long planning takes is measured by
    benchmarks/bench_plan.py (a time limit here would fail on a loaded machine)."""
    proc = run_snakemake(repo, "-n", "--quiet", "rules", "--configfile", "presets/paper.yaml",
                         timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    n_runs = len(plan_runs(validate_config(load_preset("paper"))))
    jobs = planned_jobs(proc)
    assert jobs["train"] == n_runs and jobs["evaluate"] == n_runs


def test_paper_preset_plans_the_wmt16_archives_as_downloads(repo):
    proc = run_snakemake(repo, "-n", "resources/prepared/wmt16/data.safetensors", "--configfile",
                         "presets/paper.yaml", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    for archive in ("training-parallel-europarl-v7.tgz", "training-parallel-commoncrawl.tgz",
                    "training-parallel-nc-v11.tgz", "wmt19-dev.tgz"):
        assert f"resources/data/wmt16/{archive}" in out, archive
    assert "resources/data/wmt14/newstest2014-deen-src.en.sgm" in out


@pytest.mark.parametrize("override, message", [
    ("experiments={mobilenet-fmnist: {family: audio}}", "'audio' is not one of"),
    ("experiments={mobilenet-fmnist: {family: lm}}",
     "'fashion-mnist' is not a dataset of family 'lm'"),
    ("experiments={mobilenet-fmnist: {small_dense: [abc]}}", "'abc' is not a size of mobilenet_v1"),
])
def test_config_error_stops_snakemake_in_one_line_before_any_job(repo, override, message):
    proc = run_snakemake(repo, "--cores", "1", "--configfile", "presets/test.yaml", "--config",
                         override, timeout=300)
    assert proc.returncode != 0
    assert "gradprune: " in proc.stderr and "experiments.mobilenet-fmnist" in proc.stderr and message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (repo / "resources").exists() and not (repo / "results/mobilenet-fmnist").exists()


def test_imagenet_unset_is_refused_before_any_job_but_a_dry_run_plans_it(repo):
    dry = run_snakemake(repo, "-n", "--quiet", "rules", "--configfile", "presets/paper.yaml",
                        timeout=300)
    assert dry.returncode == 0 and planned_jobs(dry)["check_imagenet"] == 1
    proc = run_snakemake(repo, "--cores", "1", "results/tables/headline.csv", "--configfile",
                         "presets/paper.yaml", timeout=300)
    assert proc.returncode != 0
    assert "gradprune: data.imagenet is not set but experiments inceptionv3-imagenet, " \
           "mobilenet-imagenet train on ImageNet" in proc.stderr
    assert not (repo / "resources").exists()  # no download started


# -- experiment variants (extends) and mask structures --------------------------------------------


def test_an_experiment_that_extends_another_is_it_with_its_own_keys():
    config = validate_config(load_preset("mini"))
    base, block = config["experiments"]["lstm-ptb"], config["experiments"]["lstm-ptb-block4"]
    assert block["pruning"] == {**base["pruning"], "block": [4, 4]}
    assert block["train"] == base["train"] and block["model_args"] == base["model_args"]
    assert block["large"] == {"size": 256, "sparsities": [0.9]} and block["small_dense"] == [30]
    assert "extends" not in block
    runs = [r for r in plan_runs(config) if r.experiment == "lstm-ptb-block16"]
    assert sorted((r.size, r.sparsity, r.role) for r in runs) == [
        ("256", "0.9", "large-sparse"), ("30", "0.0", "small-dense")]


def test_extends_errors_name_the_key():
    config = load_preset("mini")
    config["experiments"]["a"] = {"extends": "missing"}
    with pytest.raises(ConfigError, match=r"experiments\.a\.extends: no experiment 'missing'"):
        validate_config(config)
    config = load_preset("mini")
    config["experiments"]["a"] = {"extends": "b"}
    config["experiments"]["b"] = {"extends": "a"}
    with pytest.raises(ConfigError, match="a cycle"):
        validate_config(config)


def test_structure_keys_at_their_defaults_leave_a_runs_settings_unchanged():
    """Runs trained before block masks existed keep their settings (and so their identity);
    a block shape is part of a pruned run's settings, not of its dense or small-dense runs."""
    config = validate_config(load_preset("mini"))
    run = next(r for r in plan_runs(config) if r.experiment == "lstm-ptb" and r.sparsity == "0.9")
    pruning = run_settings(config, run)["experiment"]["pruning"]
    assert not {"block", "block_pooling", "block_map", "n_m"} & set(pruning)
    block = next(r for r in plan_runs(config)
                 if r.experiment == "lstm-ptb-block4" and r.role == "large-sparse")
    assert run_settings(config, block)["experiment"]["pruning"]["block"] == [4, 4]
    assert run_settings(config, block)["experiment"]["pruning"]["block_pooling"] == "avg"
    small = next(r for r in plan_runs(config)
                 if r.experiment == "lstm-ptb-block4" and r.role == "small-dense")
    twin = next(r for r in plan_runs(config)
                if r.experiment == "lstm-ptb" and r.size == "30")
    assert run_settings(config, small) == run_settings(config, twin)


def test_a_bad_block_is_refused_by_the_schema():
    config = load_preset("mini")
    config["experiments"]["lstm-ptb"]["pruning"]["block"] = [4]
    with pytest.raises(ConfigError, match="block"):
        validate_config(config)


def test_an_n_m_mask_refuses_sparsities_it_cannot_hold():
    config = load_preset("mini")
    for variant in ("lstm-ptb-block4", "lstm-ptb-block16"):  # blocks and N:M exclude each other
        del config["experiments"][variant]
    config.pop("structure_comparisons")
    config["experiments"]["lstm-ptb"]["pruning"]["n_m"] = [2, 4]
    with pytest.raises(ConfigError, match=r"sparsities \[0.75, 0.9\] are above what an 2:4 mask"):
        validate_config(config)
    config["experiments"]["lstm-ptb"]["large"]["sparsities"] = [0.0, 0.5]
    validate_config(config)


def test_a_structure_comparison_of_a_missing_experiment_is_refused():
    config = load_preset("mini")
    del config["experiments"]["lstm-ptb-block4"]
    with pytest.raises(ConfigError, match="structure_comparisons.lstm-ptb-blocks: no experiment "
                                          "'lstm-ptb-block4'"):
        validate_config(config)


def test_one_experiment_of_the_mini_keeps_only_the_comparisons_it_can_hold():
    """What a probe or benchmark of one experiment composes: the real mini preset, cut to the
    named experiments; a structure comparison stays only while all of its experiments do."""
    mini = load_preset("mini")
    blocks = mini["structure_comparisons"]["lstm-ptb-blocks"]
    alone = validate_config(only_experiments(mini, ["mobilenet-fmnist"]))
    assert list(alone["experiments"]) == ["mobilenet-fmnist"]
    assert alone["structure_comparisons"] == {}
    assert alone["experiments"]["mobilenet-fmnist"]["train"]["total_steps"] == (
        mini["experiments"]["mobilenet-fmnist"]["train"]["total_steps"])
    lm = validate_config(only_experiments(mini, blocks))
    assert lm["structure_comparisons"] == {"lstm-ptb-blocks": blocks}
    assert "lstm-ptb-blocks" in mini["structure_comparisons"]  # the preset itself is left whole
    with pytest.raises(ConfigError, match="has no experiment 'lstm-ptb-block8'; it has: "):
        only_experiments(mini, ["lstm-ptb", "lstm-ptb-block8"])
