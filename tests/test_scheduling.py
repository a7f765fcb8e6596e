"""The order jobs run in on a few cores (rule priorities, threads), read from Snakemake's own dry
run of the default preset: data steps, then pretrains, then trains, then everything else; and no
job of the mini asks for two threads, which on 2 cores waits until both are free at once (the
translation data step did, and started 42 minutes into the default run)."""

from __future__ import annotations

import pytest
from tests.workflow_helpers import planned_job_blocks, repo_copy, run_snakemake

PRIORITY = {"download": 3, "prepare_fashion_mnist": 3, "prepare_lm": 3, "prepare_translation": 3,
            "pretrain": 2, "train": 1}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return repo_copy(tmp_path_factory.mktemp("repo"))


def test_the_default_run_starts_data_then_pretrains_then_trains_and_scores_last(repo):
    proc = run_snakemake(repo, "-n", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = planned_job_blocks(proc)
    rules = {job["rule"] for job in jobs}
    assert set(PRIORITY) <= rules and {"evaluate", "footprint", "latency", "run_figures"} <= rules
    assert {(job["rule"], job["priority"]) for job in jobs} == {
        (rule, PRIORITY.get(rule, 0)) for rule in rules}
    assert {job["threads"] for job in jobs} == {1}


def test_wmt16_s_data_step_keeps_its_second_thread(repo):
    proc = run_snakemake(repo, "resources/prepared/wmt16/spm.model", "-n", "--cores", "4",
                         "--configfile", "presets/paper.yaml", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (job,) = [j for j in planned_job_blocks(proc) if j["rule"] == "prepare_translation"]
    assert (job["rule"], job["wildcards"], job["threads"], job["priority"]) == (
        "prepare_translation", {"dataset": "wmt16"}, 2, 3)


def test_each_translation_data_step_asks_for_its_own_resources_and_an_unknown_one_is_refused():
    """What the prepare rule reads per dataset (written out by hand here): Multi30k one thread and
    a few GB, WMT16 two threads and 24 GB; a dataset without an entry fails naming the table."""
    from gradprune.workflow import translation_prepare_resources

    assert translation_prepare_resources("multi30k") == {"threads": 1, "mem_mb": 3000, "runtime": 20}
    assert translation_prepare_resources("wmt16") == {"threads": 2, "mem_mb": 24000, "runtime": 240}
    with pytest.raises(ValueError, match="TRANSLATION_PREPARE_RESOURCES"):
        translation_prepare_resources("iwslt17")
