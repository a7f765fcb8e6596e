"""A dry run with ``--directory`` leaves no folder behind (gradprune.workdir); Snakemake creates
the folder before it reads the Snakefile, for a dry run too."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from tests.workflow_helpers import SHARED_MIRROR, repo_copy, require_mirror, run_snakemake

from gradprune.workdir import (
    anchor_env_mirror,
    created_folders,
    invocation_directory,
    remove_created,
)

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


def test_the_folder_a_command_was_typed_in_is_found_from_inside_its_directory(tmp_path, monkeypatch):
    """Snakemake has changed into --directory: the shell's $PWD when it leads there, else the
    parent a relative --directory leads from; without --directory, the folder itself."""
    workdir = tmp_path / "repo/runs/x"
    workdir.mkdir(parents=True)
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("PWD", "/somewhere/else")  # a parent process's, not the shell's here
    assert invocation_directory(SimpleNamespace(overwrite_workdir=None)) == workdir.resolve()
    assert invocation_directory(SimpleNamespace(overwrite_workdir=Path("runs/x"))) == (
        tmp_path / "repo").resolve()
    # "..": many folders lead there, so only a $PWD that does is believed
    (tmp_path / "other").mkdir()
    monkeypatch.setenv("PWD", str(tmp_path / "other"))
    assert invocation_directory(SimpleNamespace(overwrite_workdir=Path("../repo/runs/x"))) == (
        tmp_path / "other").resolve()
    monkeypatch.delenv("PWD")
    assert invocation_directory(SimpleNamespace(overwrite_workdir=Path("../repo/runs/x"))) == (
        workdir.resolve())
    assert invocation_directory(SimpleNamespace(overwrite_workdir=workdir)) == workdir.resolve()


def test_a_relative_env_mirror_is_anchored_where_the_command_was_typed(tmp_path, monkeypatch):
    monkeypatch.delenv("GRADPRUNE_DATA_MIRROR", raising=False)
    assert anchor_env_mirror(tmp_path) is None
    for kept in ("https://example.org/mirror", "file:///data/mirror", "/data/mirror"):
        monkeypatch.setenv("GRADPRUNE_DATA_MIRROR", kept)
        assert anchor_env_mirror(tmp_path) == kept == os.environ["GRADPRUNE_DATA_MIRROR"]
    monkeypatch.setenv("GRADPRUNE_DATA_MIRROR", "../shared/data/mirror")
    expected = str(tmp_path / "../shared/data/mirror")
    assert anchor_env_mirror(tmp_path) == expected == os.environ["GRADPRUNE_DATA_MIRROR"]


@pytest.mark.slow
def test_a_download_with_directory_reads_a_relative_mirror_from_where_it_was_typed(tmp_path):
    """As the README types it: GRADPRUNE_DATA_MIRROR relative to the repository root, the job in
    --directory runs/...; offline, so only the mirror can give the file (its sha256 checked here)."""
    source = require_mirror(SHARED_MIRROR / "fashion-mnist/t10k-labels-idx1-ubyte.gz")
    repo = repo_copy(tmp_path / "repo")
    target = "resources/data/fashion-mnist/t10k-labels-idx1-ubyte.gz"
    proc = run_snakemake(repo, "--cores", "1", target, "--directory", "runs/x", "--config",
                         "data={offline: true}",
                         env={"GRADPRUNE_DATA_MIRROR": os.path.relpath(SHARED_MIRROR, repo)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    fetched = repo / "runs/x" / target
    assert hashlib.sha256(fetched.read_bytes()).hexdigest() == hashlib.sha256(
        source.read_bytes()).hexdigest() == (
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5")  # MANIFEST.tsv
