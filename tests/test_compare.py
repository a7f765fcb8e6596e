"""`gradprune compare`: a user's runs against committed ones, on hand-written metrics.json files.

The committed side is a two-seed LM experiment whose one pair (256 units at 90% against 30 units)
large-sparse wins by the rule: per-seed gains 290 - 236 = 54 and 300 - 238 = 62, mean 58, spread
max(sd(236, 238), sd(290, 300)) = max(1.414, 7.071) = 7.071 < 58.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradprune.cli import main

EXP = "lstm-ptb"
HASH = "752df529b2fbdf30"
CPU = {"capability": "AVX2", "cpu_model": "AMD EPYC", "threads": 1, "interop_threads": 1,
       "parallel_backend": "OpenMP", "torch_build": "2.14.1+cu130", "onednn": "v3.12.0",
       "onednn_enabled": True, "blas": "mkl", "blas_version": "Math Kernel Library Version 2024.2",
       "float32_matmul_precision": "highest", "env": {}}
# (size, sparsity, role, nnz) of the experiment's two configurations
LS = (256, 0.9, "large-sparse", 630_954)
SD = (30, 0.0, "small-dense", 624_880)
COMMITTED = {(LS, 0): 236.0, (LS, 1): 238.0, (SD, 0): 290.0, (SD, 1): 300.0}


def metrics(cfg, seed, value, config_hash=HASH, cpu=CPU, host="vm", commit="ab230f8" * 6):
    size, sparsity, role, nnz = cfg
    prov = {"config_hash": config_hash, "commit": commit, "device": "cpu (x86_64, 1 threads)",
            "host": host, "versions": {"torch": "2.14.1", "numpy": "2.4.6"}}
    if cpu is not None:
        prov["cpu"] = cpu
    return {"experiment": EXP, "family": "lm", "task_metric": "test_perplexity",
            "model": "lstm_lm", "size": size, "role": role, "target_sparsity": sparsity,
            "seed": seed, "nnz": nnz, "params": 6_183_224 if size == 256 else nnz,
            "metrics": {"test_perplexity": value, "val_perplexity": value + 5},
            "provenance": prov}


def write(root: Path, data: dict, with_experiment_folder: bool) -> Path:
    run = f"lstm_lm-{data['size']}/sparsity-{data['target_sparsity']}/seed-{data['seed']}"
    path = root / (f"{EXP}/{run}" if with_experiment_folder else run) / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def committed(tmp_path):
    """The committed folder laid out as docs/results/<name>/ (no experiment folder)."""
    root = tmp_path / "docs/results/lstm-ptb-mini"
    for (cfg, seed), value in COMMITTED.items():
        write(root, metrics(cfg, seed, value, cpu=None if seed else CPU), False)
    return root


def compare(tmp_path, committed, *yours: dict, capsys):
    """Run the command on ``yours`` (laid out as results/<experiment>/...); (status, stdout)."""
    root = tmp_path / "results"
    for data in yours:
        write(root, data, True)
    status = main(["compare", str(committed), "--yours", str(root)])
    return status, capsys.readouterr().out


def test_a_reproduced_run_shows_both_values_the_difference_and_the_machine(
        tmp_path, committed, capsys):
    other_cpu = {**CPU, "capability": "AVX512", "threads": 2, "env": {"MKL_CBWR": "AVX2"}}
    status, out = compare(tmp_path, committed, metrics(SD, 0, 290.25, cpu=other_cpu, host="laptop"),
                          metrics(SD, 1, 299.5, cpu=CPU), capsys=capsys)
    assert status == 0, out
    seed0 = out.split("lstm-ptb lstm_lm-30 sparsity-0.0 seed-0")[1].split("lstm-ptb lstm_lm")[0]
    assert "yours 290.25  committed 290.0  difference +0.25 (+0.0862 %)" in seed0  # 0.25 / 290
    assert f"config hash: equal ({HASH})" in seed0
    assert "cpu.capability: AVX512 vs AVX2" in seed0 and "cpu.threads: 2 vs 1" in seed0
    assert "cpu.env: MKL_CBWR=AVX2 vs (none)" in seed0 and "host: laptop vs vm" in seed0
    assert "cpu.blas" not in seed0  # equal fields are not listed
    # the committed seed-1 run predates the cpu block: said once, not per field
    seed1 = out.split("lstm-ptb lstm_lm-30 sparsity-0.0 seed-1")[1]
    assert "difference -0.5 (-0.1667 %)" in seed1  # 299.5 - 300, of 300
    assert "cpu: {" not in seed1 and "cpu.capability" not in seed1
    assert "cpu: recorded vs (not recorded)" in seed1
    # the verdict with both small-dense values replaced: gains 290.25 - 236 and 299.5 - 238,
    # mean (54.25 + 61.5) / 2 = 57.875
    assert ("lstm_lm 256 at 90% vs lstm_lm 30: large-sparse wins -> large-sparse wins "
            "(unchanged; gain +58 -> +57.88; 2 of the pair's runs yours)") in out
    assert "2 run(s) in both, 2 committed only, 0 yours only" in out
    assert out.rstrip().endswith("OK: every config hash matches and every verdict is unchanged.")


def test_a_verdict_flip_fails_and_says_which(tmp_path, committed, capsys):
    # the 30-unit model's seed 0 at 237.5: gains 1.5 and 62, mean 31.75; its seeds now spread
    # sd(237.5, 300) = 44.19 > 31.75: not separated
    status, out = compare(tmp_path, committed, metrics(SD, 0, 237.5), capsys=capsys)
    assert status == 1
    assert "difference -52.5" in out
    assert ("FAIL: verdict changed: lstm-ptb: lstm_lm 256 at 90% vs lstm_lm 30: "
            "large-sparse wins -> not separated") in out
    assert "config mismatch" not in out and "OK:" not in out


def test_a_config_mismatch_fails_even_when_the_numbers_agree(tmp_path, committed, capsys):
    status, out = compare(tmp_path, committed, metrics(LS, 0, 236.0, config_hash="0123456789abcdef"),
                          capsys=capsys)
    assert status == 1
    assert "difference +0 (+0.0000 %)" in out
    assert "DIFFERENT (yours 0123456789abcdef, committed 752df529b2fbdf30)" in out
    assert "FAIL: config mismatch: lstm-ptb lstm_lm-256 sparsity-0.9 seed-0" in out
    assert "verdict changed" not in out


def test_runs_only_on_one_side_are_listed_and_do_not_fail(tmp_path, committed, capsys):
    status, out = compare(tmp_path, committed, metrics(LS, 3, 240.0), capsys=capsys)
    assert status == 0
    assert "0 run(s) in both, 4 committed only, 1 yours only" in out
    assert "yours only (not committed): lstm-ptb lstm_lm-256 sparsity-0.9 seed-3" in out
    assert "gain +58 -> +58; 0 of the pair's runs yours" in out


def test_folders_that_cannot_be_compared_say_why(tmp_path, committed, capsys):
    assert main(["compare", str(committed), "--yours", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: no such folder of results" in capsys.readouterr().err
    twice = tmp_path / "twice"
    write(twice, metrics(LS, 0, 236.0), True)
    write(twice / "copy", metrics(LS, 0, 236.0), True)
    assert main(["compare", str(committed), "--yours", str(twice)]) == 2
    assert "are the same run (lstm-ptb lstm_lm-256 sparsity-0.9 seed-0)" in capsys.readouterr().err


def test_the_readme_command_runs_on_the_committed_runs(capsys, monkeypatch):
    """The README's `gradprune compare` line, run from the repository root with the committed
    folder as "yours" too: every run in both, no difference, every verdict unchanged."""
    import re
    import shlex

    from tests.workflow_helpers import ROOT

    lines = re.findall(r"^\.venv/bin/gradprune (compare [^#\n]*)", (ROOT / "README.md").read_text(),
                       re.MULTILINE)
    assert len(lines) == 1
    args = shlex.split(lines[0])
    monkeypatch.chdir(ROOT)
    assert main([*args, "--yours", args[1]]) == 0
    out = capsys.readouterr().out
    assert "10 run(s) in both, 0 committed only, 0 yours only" in out
    assert out.count("difference +0 (+0.0000 %)") == 10
    assert out.count("large-sparse wins -> large-sparse wins (unchanged") == 2
