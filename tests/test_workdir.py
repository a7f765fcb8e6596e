"""A dry run with ``--directory`` leaves no folder behind (gradprune.workdir); Snakemake creates
the folder before it reads the Snakefile, for a dry run too."""

from __future__ import annotations

import time

import pytest
from tests.workflow_helpers import repo_copy, run_snakemake

from gradprune.workdir import created_folders, remove_created

# The README's overlay command (Results: the LM at 3 epochs), planned only.
README_COMMAND = ("results/tables/lstm-ptb.csv", "--configfile", "presets/mini-lm-3-epochs.yaml",
                  "--directory", "runs/lm-3-epochs")


def test_a_folder_made_after_the_start_is_removed_with_the_parents_made_for_it(tmp_path):
    start = time.time() - 1
    (tmp_path / "runs" / "old").mkdir(parents=True)  # a sibling: runs/ holds more than the chain
    (tmp_path / "runs" / "a" / "b").mkdir(parents=True)
    chain = created_folders(tmp_path / "runs" / "a" / "b", since=start)
    assert chain == [tmp_path / "runs/a/b", tmp_path / "runs/a"]  # not runs/, which holds old/
    (tmp_path / "runs/a/b/.snakemake/locks").mkdir(parents=True)
    assert remove_created(chain)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["old"]


def test_a_folder_that_existed_before_or_holds_results_is_kept(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    assert created_folders(old, since=time.time() + 60) == []  # changed before the start
    (old / "results").mkdir()
    assert created_folders(old, since=0) == []  # not empty
    new = tmp_path / "new"
    (new / ".snakemake").mkdir(parents=True)
    (new / "results").mkdir()
    assert not remove_created([new]) and (new / "results").is_dir()


@pytest.mark.slow
def test_dry_runs_with_directory_create_no_folder_and_real_runs_keep_theirs(tmp_path):
    repo = repo_copy(tmp_path / "repo")
    proc = run_snakemake(repo, "-n", *README_COMMAND)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "lstm-ptb" in proc.stdout  # it planned the runs
    assert not (repo / "runs").exists()
    # a config refused before any job: nothing ran either
    proc = run_snakemake(repo, "-n", "--directory", "runs/bad", "--config", "seeds=oops")
    assert proc.returncode != 0 and "gradprune:" in proc.stderr
    assert not (repo / "runs").exists()
    # a folder that existed before the dry run stays
    (repo / "runs/kept").mkdir(parents=True)
    time.sleep(1.5)  # the process start is known to a second (gradprune.workdir._process_start)
    proc = run_snakemake(repo, "-n", "--directory", "runs/kept")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (repo / "runs/kept").is_dir()
    # a run that writes something keeps its folder
    proc = run_snakemake(repo, "--cores", "1", "results/config.yaml", "--directory", "runs/real")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (repo / "runs/real/results/config.yaml").is_file()
