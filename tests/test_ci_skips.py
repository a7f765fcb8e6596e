"""tests/ci_skips.py: under CI=true a skip fails, but for the cuda and ci_may_skip tests."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.workflow_helpers import ROOT

SUITE = '''
import pytest

def test_skipped_in_the_body():
    pytest.skip("no mirror here")

@pytest.mark.skipif(True, reason="no SLURM here")
def test_skipped_by_a_mark():
    pass

@pytest.fixture
def missing():
    pytest.skip("no reference files")

def test_skipped_by_a_fixture(missing):
    pass

@pytest.mark.cuda
def test_needs_a_gpu():
    pytest.skip("no CUDA device")

@pytest.mark.ci_may_skip("this CPU has no AVX-512")
def test_hardware():
    pytest.skip("no bf16 LSTM on this CPU")

@pytest.mark.xfail(strict=True, reason="known")
def test_expected_failure():
    assert False

def test_runs():
    pass
'''


def _run(tmp_path, ci: str | None):
    (tmp_path / "test_suite.py").write_text(SUITE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.ci_skips", "-n", "0",
                           "-p", "no:cacheprovider", "-rA", "-o", "addopts=", "-q",
                           "test_suite.py"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    outcomes, skipped = {}, set()
    for line in proc.stdout.splitlines():
        word, _, rest = line.partition(" test_suite.py::")
        if rest:
            outcomes[rest.split(" ")[0]] = word
        elif line.startswith("SKIPPED [1] test_suite.py:"):
            skipped.add(line.split(": ", 1)[1])
    return proc, outcomes, skipped


def test_under_ci_every_skip_fails_but_gpu_and_hardware_skips(tmp_path):
    proc, outcomes, skipped = _run(tmp_path, "true")
    assert proc.returncode == 1
    assert outcomes == {"test_skipped_in_the_body": "FAILED", "test_skipped_by_a_mark": "ERROR",
                        "test_skipped_by_a_fixture": "ERROR", "test_expected_failure": "XFAIL",
                        "test_runs": "PASSED"}, proc.stdout
    assert skipped == {"no CUDA device", "no bf16 LSTM on this CPU"}, proc.stdout
    assert "skipped under CI=true, where every test must run: no mirror here" in proc.stdout


def test_outside_ci_skips_are_skips(tmp_path):
    for ci in (None, "false"):
        proc, outcomes, skipped = _run(tmp_path, ci)
        assert proc.returncode == 0, proc.stdout
        assert outcomes == {"test_expected_failure": "XFAIL", "test_runs": "PASSED"}
        assert skipped == {"no mirror here", "no SLURM here", "no reference files",
                           "no CUDA device", "no bf16 LSTM on this CPU"}, proc.stdout
