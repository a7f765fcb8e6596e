"""Every `snakemake` command of the README, run as typed from the root of a copy of the repository
where the `test` preset ran to the end, and the jobs each one plans.

The test preset is the mini's vision experiment in miniature with the mini's run names, so the
README's commands for the default preset apply to it unchanged; the test only appends the preset
and its data overlay (``--configfile presets/test.yaml test-data.yaml``) to commands that do not
name a preset of their own, and ``-n`` (plan, do not run) where the command would train. A command
added to the README without an expectation here fails the test: documented commands cannot rot.
"""

from __future__ import annotations

import re
import shlex
from collections import Counter
from pathlib import Path

import pytest
from tests.workflow_helpers import (
    ROOT,
    load_preset,
    planned_job_blocks,
    planned_jobs,
    planned_runs,
    repo_copy,
    run_snakemake,
)

from gradprune.config import plan_runs, run_settings, validate_config
from gradprune.training.checkpoint import import_weights

pytestmark = pytest.mark.slow

RUN = "results/mobilenet-fmnist/mobilenet_v1-1.0/sparsity-{s}/seed-{seed}"

# command (as in the README, without `.venv/bin/` and environment assignments) -> what it plans
# on the finished test-preset run: {rule: jobs}, or a callable checking the dry run.
NOTHING: dict = {}
EXPECTED = {
    "snakemake --cores all": NOTHING,
    "snakemake -n --configfile presets/paper.yaml": "paper",
    "snakemake --cores all --configfile presets/paper.yaml --config data='{imagenet: /data/ILSVRC2012}'":
        "paper+imagenet",
    "snakemake --cores all --config seeds='[0, 1]'": "seed-1",
    "snakemake --cores 1 results/config.yaml --configfile presets/paper.yaml": "config",
    f"snakemake --cores all {RUN.format(s='0.75', seed=0)}/metrics.json": NOTHING,
    f"snakemake --cores all {RUN.format(s='0.75', seed=0)}/metrics.json --forcerun train":
        {"train": 1, "evaluate": 1},
    f"snakemake --cores all {RUN.format(s='0.8', seed=0)}/metrics.json": {"train": 1, "evaluate": 1},
    "snakemake --cores all results/mobilenet-fmnist/mobilenet_v1-0.25/sparsity-0.0/seed-3/metrics.json":
        {"train": 1, "evaluate": 1},
    # a new --config changes the composed config: only results/config.yaml is rewritten
    "snakemake --cores all --config data='{offline: true}'": {"effective_config": 1},
    "snakemake --profile profiles/slurm --configfile presets/paper.yaml": "paper+slurm",
    "snakemake --profile profiles/slurm --configfile presets/paper.yaml --config experiments='{gnmt-"
    "wmt16-ende: {resources: {nodes: 2, gpu: 4}}, gnmt-wmt16-deen: {resources: {nodes: 2, gpu: 4}}}'"
    " precision='{autocast: bf16}'": "paper+slurm+gnmt-2x4+bf16",
    "snakemake --report report.html": "report",
    # one experiment's report: its landing section is built already, then reported alone
    "snakemake --cores all results/report/mobilenet-fmnist.rst": NOTHING,
    "snakemake --report mobilenet-fmnist.html results/report/mobilenet-fmnist.rst": "report",
}


def readme_commands() -> list[str]:
    """The snakemake commands of the README's code blocks, as a user types them."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", text, re.DOTALL):
        for line in block.splitlines():
            line = line.split("  #", 1)[0].strip()
            if "snakemake" not in line or line.startswith("#"):
                continue
            line = line.split("&&")[-1].strip()  # the quick start installs first
            words = [w for w in shlex.split(line) if not re.match(r"^[A-Z_]+=", w)]
            if words and words[0].endswith("snakemake"):
                words[0] = "snakemake"
                commands.append(shlex.join(words))
    return commands


def test_every_readme_command_has_an_expectation():
    commands = readme_commands()
    assert len(commands) >= 10
    canonical = {shlex.join(shlex.split(c)) for c in EXPECTED}
    assert set(commands) == canonical, (
        f"README commands without expectation: {set(commands) - canonical}; "
        f"expectations of commands no longer in the README: {canonical - set(commands)}")


# The README's longer runs (Results), quoted in prose as "Run as `snakemake ...`": each is planned
# as typed, from the root of a fresh copy; what each must plan, written out by hand: its run
# folders (every run of the experiment, every seed the command names) and the runtime (minutes)
# that its overlay gives the pretrain and train jobs, instead of the mini's.
LSTM = "results/lstm-ptb/lstm_lm-{}/sparsity-{}/seed-{}"
VISION = "results/mobilenet-fmnist/mobilenet_v1-{}/sparsity-{}/seed-{}"
OVERLAY_COMMANDS = {
    "presets/mini-lm-3-epochs.yaml": (
        {LSTM.format(u, s, seed) for u, s in (("256", "0.0"), ("256", "0.75"), ("256", "0.9"),
                                               ("73", "0.0"), ("30", "0.0")) for seed in (0, 1)},
        "240"),
    "presets/mini-vision-6-epochs.yaml": (
        {VISION.format(w, s, seed) for w, s in (("1.0", "0.0"), ("1.0", "0.5"), ("1.0", "0.75"),
                                                 ("1.0", "0.9"), ("1.0", "0.95"), ("0.75", "0.0"),
                                                 ("0.5", "0.0"), ("0.35", "0.0"), ("0.25", "0.0"))
         for seed in (0, 1, 2)},
        "180"),
}


def readme_overlay_commands() -> dict[str, str]:
    """{overlay: command} of the README's "Run as `snakemake ...`" sentences."""
    text = re.sub(r"\s+", " ", (ROOT / "README.md").read_text())
    commands = re.findall(r"Run as `(snakemake [^`]+)`", text)
    return {next(w for w in shlex.split(c) if w.startswith("presets/")): c for c in commands}


def test_every_overlay_command_of_the_readme_has_an_expectation():
    assert set(readme_overlay_commands()) == set(OVERLAY_COMMANDS)


@pytest.mark.parametrize("overlay", list(OVERLAY_COMMANDS))
def test_readme_overlay_command_plans_every_run_of_every_seed_with_the_overlays_runtime(
        tmp_path, overlay):
    runs, runtime = OVERLAY_COMMANDS[overlay]
    repo = repo_copy(tmp_path / "repo")
    proc = run_snakemake(repo, "-n", *shlex.split(readme_overlay_commands()[overlay])[1:])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert planned_runs(proc) == runs
    jobs = planned_jobs(proc)
    assert jobs["train"] == len(runs) and jobs["pretrain"] == len({r.rsplit("/", 1)[1] for r in runs})
    trainers = [j for j in planned_job_blocks(proc) if j["rule"] in ("pretrain", "train")]
    assert {j["resources"]["runtime"] for j in trainers} == {runtime}


def _own_preset(words) -> bool:
    return "--configfile" in words


def _dry_run(repo, preset_args, command: str, env: dict | None = None):
    words = shlex.split(command)[1:]
    if "--report" in words:
        return run_snakemake(repo, *words, *preset_args)
    if not _own_preset(words):
        words += list(preset_args)
    if "-n" not in words:
        words.insert(0, "-n")
    return run_snakemake(repo, *words, env=env)


def _paper_runs():
    return plan_runs(validate_config(load_preset("paper")))


def _check_paper_plan(proc, jobs, overrides: list[str]) -> None:
    """The paper preset's plan: one train/evaluate/footprint/latency job per run it lists, one
    pretrain job per large model and seed; then each override of the command in effect."""
    runs = _paper_runs()
    for rule in ("train", "evaluate", "footprint", "latency"):
        assert jobs[rule] == len(runs), (rule, jobs[rule], len(runs))
    large = {(r.experiment, r.model, r.size, r.seed) for r in runs if r.role != "small-dense"}
    assert jobs["pretrain"] == len(large)
    trainers = [j for j in planned_job_blocks(proc) if j["rule"] in ("pretrain", "train")]
    assert len(trainers) == jobs["pretrain"] + jobs["train"]
    gnmt = [j for j in trainers if j["wildcards"]["experiment"].startswith("gnmt-wmt16-")]
    others = [j for j in trainers if j not in gnmt]
    assert gnmt and others
    # --profile profiles/slurm: its default resources (the partition from the environment)
    assert all((j["resources"].get("slurm_partition") == "gpu") == ("slurm" in overrides)
               for j in trainers)
    if "gnmt-2x4" in overrides:  # two nodes of four GPUs for both GNMT experiments, only them
        assert all((j["resources"]["nodes"], j["resources"]["gres"]) == ("2", "gpu:4")
                   for j in gnmt), gnmt[0]
    assert not any(j["resources"].get("nodes") == "2" for j in
                   (trainers if "gnmt-2x4" not in overrides else others))


def _composed(tmp_path, command: str) -> dict:
    """results/config.yaml as the command's --configfile/--config compose it (in a fresh copy)."""
    import yaml

    words = shlex.split(command)[1:]
    args = words[words.index("--configfile"):]
    repo = repo_copy(tmp_path / "compose")
    proc = run_snakemake(repo, "--cores", "1", "results/config.yaml", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return yaml.safe_load((repo / "results/config.yaml").read_text())


def test_the_bf16_and_gnmt_overrides_reach_every_jobs_settings(tmp_path):
    """precision='{autocast: bf16}' is in the settings every training job receives
    (gradprune.config.run_settings), the GNMT resources only in the GNMT experiments'."""
    command = next(c for c, e in EXPECTED.items() if e == "paper+slurm+gnmt-2x4+bf16")
    config = _composed(tmp_path, command)
    runs = plan_runs(config)
    assert len(runs) == len(_paper_runs())
    for run in runs:
        settings = run_settings(config, run)
        assert settings["precision"]["autocast"] == "bf16", run
        resources = config["experiments"][run.experiment]["resources"]
        assert ((resources["nodes"], resources["gpu"]) == (2, 4)) == run.experiment.startswith(
            "gnmt-wmt16-"), (run.experiment, resources)


def test_the_imagenet_override_is_the_folder_the_imagenet_check_reads(tmp_path):
    """With data.imagenet set, the ImageNet check runs on that folder (here missing, so it
    fails naming it); without it, the run refuses before any job, saying how to set it."""
    command = next(c for c, e in EXPECTED.items() if e == "paper+imagenet")
    words = shlex.split(command)[1:]
    args = words[words.index("--configfile"):]
    repo = repo_copy(tmp_path / "imagenet")
    target = "resources/prepared/imagenet/index.json"
    proc = run_snakemake(repo, "--cores", "1", target, *args)
    assert proc.returncode != 0
    log = (repo / "logs/prepare/imagenet.log").read_text()
    assert "/data/ILSVRC2012" in log and "does not exist" in log, log[-2000:]
    unset = run_snakemake(repo, "--cores", "1", target, "--configfile", "presets/paper.yaml")
    assert unset.returncode != 0 and "data.imagenet is not set" in unset.stderr


@pytest.mark.parametrize("command", list(EXPECTED))
def test_readme_command_plans_what_it_says(finished_test_run, command):
    repo, preset_args, _ = finished_test_run
    expected = EXPECTED[command]
    if expected == "config":  # writes a file only: run it for real
        proc = run_snakemake(repo, *shlex.split(command)[1:])
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "preset: paper" in (repo / "results/config.yaml").read_text()
        return
    proc = _dry_run(repo, preset_args, command, env={"SLURM_PARTITION": "gpu"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = planned_jobs(proc)
    if isinstance(expected, str) and expected.startswith("paper"):
        _check_paper_plan(proc, jobs, expected.split("+")[1:])
    elif expected == "seed-1":
        assert planned_runs(proc) == {RUN.format(s=s, seed=1) for s in ("0.0", "0.5", "0.75")} | {
            "results/mobilenet-fmnist/mobilenet_v1-0.25/sparsity-0.0/seed-1"}
        assert jobs["pretrain"] == 1 and jobs["experiment_tables"] == 1 and jobs["summary_tables"] == 1
        assert jobs["experiment_figure"] == 1
    elif expected == "report":
        html = next(w for w in shlex.split(command) if w.endswith(".html"))
        assert (repo / html).stat().st_size > 10_000
    else:
        jobs.pop("all", None)
        assert jobs == Counter(expected), proc.stdout[-3000:]


def _edit(path: Path, old: str, new: str) -> str:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))
    return text


def test_adding_a_sparsity_plans_the_new_run_and_the_tables_and_figures_that_include_it(finished_test_run):
    repo, preset_args, _ = finished_test_run
    preset = repo / "presets/test.yaml"
    saved = _edit(preset, "sparsities: [0.0, 0.5, 0.75]", "sparsities: [0.0, 0.5, 0.75, 0.9]")
    try:
        proc = run_snakemake(repo, "-n", *preset_args)
    finally:
        preset.write_text(saved)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert planned_runs(proc) == {RUN.format(s="0.9", seed=0)}
    assert planned_jobs(proc) == Counter({
        "train": 1, "evaluate": 1, "run_figures": 1, "experiment_tables": 1, "summary_tables": 1,
        "experiment_figure": 1, "experiment_landing": 1, "effective_config": 1, "all": 1,
        # the new run's storage and latency, and the experiment's footprint tables that list it
        "footprint": 1, "latency": 1, "footprint_report": 1})


def test_a_config_change_reruns_only_the_runs_whose_settings_changed(finished_test_run):
    repo, preset_args, _ = finished_test_run
    preset = repo / "presets/test.yaml"
    # a recipe for the small-dense width: its run alone retrains
    saved = _edit(preset, "    resources: {threads: 1",
                  "    recipes: {0.25: {train: {optimizer: {lr: 0.02}}}}\n    resources: {threads: 1")
    try:
        recipe = run_snakemake(repo, "-n", *preset_args)
    finally:
        preset.write_text(saved)
    assert recipe.returncode == 0, recipe.stderr[-3000:]
    assert planned_runs(recipe) == {"results/mobilenet-fmnist/mobilenet_v1-0.25/sparsity-0.0/seed-0"}
    # the pruning schedule: the pruned runs retrain, not the dense and small-dense ones
    saved = _edit(preset, "frequency: 2, n_updates: 3", "frequency: 1, n_updates: 3")
    try:
        schedule = run_snakemake(repo, "-n", *preset_args)
    finally:
        preset.write_text(saved)
    assert planned_runs(schedule) == {RUN.format(s=s, seed=0) for s in ("0.5", "0.75")}
    assert planned_jobs(schedule)["pretrain"] == 0
    # where data comes from, the preset's name and descriptions: nothing retrains
    saved = _edit(preset, "preset: test", "preset: renamed\ndata: {mirror: /elsewhere}")
    try:
        moved = run_snakemake(repo, "-n", *preset_args)
    finally:
        preset.write_text(saved)
    assert moved.returncode == 0, moved.stderr[-3000:]
    assert planned_runs(moved) == set() and planned_jobs(moved)["download"] == 0


@pytest.mark.parametrize("target, message", [
    ("results/mobilenet-fmnist/mobilenet_v1-0.3/sparsity-0.0/seed-0/metrics.json",
     ("gradprune: results/mobilenet-fmnist/mobilenet_v1-0.3/sparsity-0.0/seed-0: experiment "
     "mobilenet-fmnist has no mobilenet_v1 of size '0.3'; its sizes: 1.0, 0.25")),
    ("results/lstm-ptb/lstm_lm-256/sparsity-0.0/seed-0/metrics.json",
     "gradprune: preset test has no experiment 'lstm-ptb'; it has: mobilenet-fmnist"),
])
def test_a_name_the_preset_does_not_have_fails_in_one_line(finished_test_run, target, message):
    repo, preset_args, _ = finished_test_run
    proc = run_snakemake(repo, "-n", target, *preset_args)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and "Exception" not in proc.stderr


def test_a_sparsity_named_by_its_file_trains_like_the_listed_ones(finished_test_run):
    """Runs last: it builds a run the other tests expect to be missing, then removes it."""
    import json
    import shutil

    repo, preset_args, _ = finished_test_run
    target = RUN.format(s="0.8", seed=0)
    try:
        proc = run_snakemake(repo, "--cores", "2", f"{target}/metrics.json", *preset_args)
        assert proc.returncode == 0, proc.stderr[-3000:]
        metrics = json.loads((repo / target / "metrics.json").read_text())
        listed = json.loads((repo / RUN.format(s="0.75", seed=0) / "metrics.json").read_text())
        assert metrics["in_preset"] is False and listed["in_preset"] is True
        assert metrics["role"] == "large-sparse"
        masks = import_weights(repo / target / "model.safetensors")[1]
        assert masks and all(int((~m).sum()) == round(0.8 * m.numel()) for m in masks.values())
        assert metrics["train"]["resumed_from_dense_t0"] is True
        schedule, listed_schedule = (m["provenance"]["config"]["pruning"] for m in (metrics, listed))
        assert {k: v for k, v in schedule.items() if k != "final_sparsity"} == \
            {k: v for k, v in listed_schedule.items() if k != "final_sparsity"}
        assert metrics["provenance"]["config"]["train"] == listed["provenance"]["config"]["train"]
    finally:
        shutil.rmtree(repo / target, ignore_errors=True)
