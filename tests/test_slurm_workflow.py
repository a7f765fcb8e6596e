"""The workflow through a real (single-node, local) SLURM cluster: profiles/slurm with
snakemake-executor-plugin-slurm, started by tools/local_slurm.sh (root only; skipped where the
script says SLURM cannot run, exit code 3).

a. the `test` preset runs through `--profile profiles/slurm`; its jobs are COMPLETED in sacct and
   its results equal, bit for bit, those of a local run of the same config;
b. a failing job is reported as a failure (Snakemake exits non-zero, sacct says FAILED);
c. a job cancelled with `scancel` is reported as a failure (squeue status mode: in sacct mode
   plugin 2.8.0 waits forever on `CANCELLED by 0`, see tools/README.md).

Every subprocess is bounded (`timeout -k 10` plus a Python-side timeout that kills the process
group), and the SLURM jobs of a run that did not end are cancelled by their run ID.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file
from tests.fixtures.data_formats import registry_for, write_fashion_mnist
from tests.fixtures.http_server import LoopbackServer
from tests.workflow_helpers import ROOT, SNAKEFILE, load_preset, write_registry

pytestmark = pytest.mark.slurm

SCRIPT = ROOT / "tools" / "local_slurm.sh"
PROFILE = ROOT / "profiles" / "slurm"
# Flags every SLURM run of these tests adds to the profile: first status check after 1 s (the
# profile waits 10 s), a failing job fails the run at once (the profile retries once).
FAST = ("--slurm-init-seconds-before-status-checks", "1", "--retries", "0")
RUN_ID = re.compile(r"SLURM run ID: (\S+)")
# the runs of the test preset: mobilenet_v1-1.0 at three sparsities and small-dense 0.25
METRICS = tuple(
    f"results/mobilenet-fmnist/mobilenet_v1-{size}/sparsity-{s}/seed-0/metrics.json"
    for size, s in (("1.0", "0.0"), ("1.0", "0.5"), ("1.0", "0.75"), ("0.25", "0.0"))
)


# ------------------------------------------------------------------------------------- helpers
def _local_slurm(command: str, timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["timeout", "-k", "10", str(timeout), str(SCRIPT), command],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout + 30,
    )


def _sacct_start() -> str:
    """A --starttime that covers everything submitted from now on (a minute of clock slack)."""
    return (dt.datetime.now() - dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")


def _run_id(text: str) -> str | None:
    m = RUN_ID.search(text)
    return m.group(1) if m else None


def _cancel_run(run_id: str | None) -> None:
    """scancel every job of one Snakemake run (the plugin names them by the run ID)."""
    if run_id:
        subprocess.run(["scancel", "--name", run_id], check=False, capture_output=True, timeout=30)


class Run:
    """One snakemake process in its own session; output in a file so it can be watched."""

    def __init__(self, cmd: list[str], workdir: Path, env: dict, limit: int, cwd: Path):
        workdir.mkdir(parents=True, exist_ok=True)
        self.limit = limit
        self.log = workdir.parent / f"{workdir.name}.snakemake.log"
        self._fh = self.log.open("w")
        # `timeout` signals its whole process group (snakemake and its local jobs); the
        # Python-side timeout below is the second line of defence.
        self.proc = subprocess.Popen(
            ["timeout", "-k", "10", str(limit), *cmd],
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        self.returncode: int | None = None

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def run_id(self) -> str | None:
        return _run_id(self.output)

    def wait(self, timeout: float | None = None) -> int:
        """Wait (at most ``timeout`` s, default the run's limit + 20 s); on timeout kill the
        process group, cancel the run's SLURM jobs and fail the test."""
        try:
            self.returncode = self.proc.wait(
                timeout=self.limit + 20 if timeout is None else timeout
            )
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(
                f"snakemake did not finish within {timeout or self.limit + 20} s (killed; its SLURM "
                f"jobs cancelled); output:\n{self.output[-5000:]}"
            )
        finally:
            self._fh.close()
        return self.returncode

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        _cancel_run(self.run_id)


def _snakemake(
    workdir: Path,
    *args: str,
    env: dict,
    limit: int,
    snakefile: Path = SNAKEFILE,
    config: dict | None = None,
    cwd: Path | None = None,
) -> Run:
    """Start snakemake like tests.workflow_helpers.snakemake (same python, real Snakefile unless
    ``snakefile`` is given), without waiting."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "-d", str(workdir)]
    if config is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        cfg = workdir / "test-config.yaml"
        cfg.write_text(yaml.safe_dump(config, sort_keys=False))
        cmd += ["--configfile", str(cfg)]
    return Run([*cmd, "--cores", "2", *args], workdir, env, limit, cwd or workdir.parent)


def _sacct(run_id: str, start: str) -> list[dict]:
    out = subprocess.run(
        [
            "sacct",
            "-n",
            "-X",
            "-P",
            "-o",
            "JobID,JobName,State,Comment",
            "--starttime",
            start,
            "--name",
            run_id,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    rows = [line.split("|", 3) for line in out.stdout.splitlines() if line.strip()]
    return [dict(zip(("id", "name", "state", "comment"), r)) for r in rows]


def _sacct_final(
    run_id: str, start: str, expect: int | None = None, within: float = 30
) -> list[dict]:
    """sacct rows of a run once all are in a final state (slurmdbd may lag behind the job end)."""
    deadline = time.monotonic() + within
    while True:
        rows = _sacct(run_id, start)
        done = rows and all(
            r["state"].split()[0] not in ("PENDING", "RUNNING", "COMPLETING") for r in rows
        )
        if done and (expect is None or len(rows) >= expect) or time.monotonic() > deadline:
            return rows
        time.sleep(1)


def _rule(row: dict) -> str:
    m = re.match(r"rule_(.+?)(?:_wildcards_.*)?$", row["comment"])
    return m.group(1) if m else row["comment"]


def _standalone(tmp_path: Path, body: str) -> Path:
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(textwrap.dedent(body))
    return snakefile


# ------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def slurm_env():
    """A running local SLURM cluster; the environment (partition, account) to submit with.
    Started (and stopped afterwards) only if it was not already up."""
    if not SCRIPT.exists():
        pytest.skip(f"{SCRIPT} missing")
    already_up = _local_slurm("status", 60).returncode == 0
    started = False
    try:
        if not already_up:
            for command, limit in (("install", 600), ("start", 300)):
                proc = _local_slurm(command, limit)
                if proc.returncode == 3:
                    pytest.skip(
                        proc.stderr.strip().splitlines()[-1]
                        if proc.stderr.strip()
                        else f"local_slurm.sh {command}: SLURM cannot run here"
                    )
                started = started or command == "start"
                assert proc.returncode == 0, (
                    f"tools/local_slurm.sh {command} failed (rc={proc.returncode}):\n"
                    f"{proc.stdout}\n{proc.stderr}"
                )
        env_out = _local_slurm("env", 30)
        assert env_out.returncode == 0, env_out.stderr
        env = {k: v for k, v in os.environ.items() if k != "GRADPRUNE_DATA_MIRROR"}
        env.update(line.split("=", 1) for line in env_out.stdout.splitlines() if "=" in line)
        yield env
    finally:
        if started or (not already_up and _local_slurm("status", 60).returncode == 0):
            stop = _local_slurm("stop", 120)
            assert stop.returncode == 0, f"tools/local_slurm.sh stop failed:\n{stop.stderr}"


@pytest.fixture(scope="module")
def fmnist_registry(tmp_path_factory):
    """Synthetic Fashion-MNIST on a loopback server and the registry TSV that points at it."""
    tmp = tmp_path_factory.mktemp("fmnist")
    files_dir = tmp / "fixture-files"
    write_fashion_mnist(files_dir, n_train=160, n_test=48)
    files = {p.name: p.read_bytes() for p in files_dir.iterdir()}
    server = LoopbackServer().start()
    try:
        server.files = {f"/fmnist/{name}": content for name, content in files.items()}
        registry = registry_for("fashion-mnist", files, f"{server.url}/fmnist")
        yield write_registry(tmp / "registry.tsv", registry.entries("fashion-mnist"))
    finally:
        server.stop()


def _test_config(registry_tsv: Path, **overrides) -> dict:
    config = load_preset("test")
    config["data"] = {"registry": str(registry_tsv), "mirror": None, "offline": False}
    config.update(overrides)
    return config


# ------------------------------------------------------------------------------------- tests
def test_test_preset_through_slurm_profile_equals_local_run(slurm_env, fmnist_registry, tmp_path):
    config = _test_config(fmnist_registry)
    start = _sacct_start()
    t0 = time.monotonic()
    # Both runs at once: the SLURM jobs wait in the queue and for the status checks most of the time.
    slurm = _snakemake(
        tmp_path / "slurm",
        "--profile",
        str(PROFILE),
        *FAST,
        env=slurm_env,
        limit=480,
        config=config,
    )
    # The local run builds only what is compared (the report rules are the vision test's job).
    local_env = {k: v for k, v in slurm_env.items() if not k.startswith(("SLURM_", "SBATCH_"))}
    local = _snakemake(tmp_path / "local", *METRICS, env=local_env, limit=420, config=config)
    try:
        assert local.wait() == 0, f"local run failed:\n{local.output[-5000:]}"
        assert slurm.wait() == 0, f"SLURM run failed:\n{slurm.output[-5000:]}"
    finally:
        for run in (slurm, local):
            if run.proc.poll() is None:
                run.kill()
    print(f"SLURM + local runs of the test preset: {time.monotonic() - t0:.0f} s")

    # The training rules went through SLURM, and all those jobs completed.
    run_id = slurm.run_id
    assert run_id, slurm.output[-3000:]
    metrics = sorted(
        p.relative_to(tmp_path / "slurm")
        for p in (tmp_path / "slurm/results").rglob("metrics.json")
    )
    assert len(metrics) == 4, metrics  # 1.0 at sparsities 0, 0.5, 0.75 + small dense 0.25
    rows = _sacct_final(run_id, start, expect=2 * len(metrics))
    assert rows and {r["state"] for r in rows} == {"COMPLETED"}, rows
    rules = [_rule(r) for r in rows]
    assert rules.count("train") == len(metrics) and rules.count("evaluate") == len(metrics), rules
    assert "pretrain" in rules and "prepare_fashion_mnist" in rules, rules
    # Local rules (download, tables, figures) ran on the submit host, not as SLURM jobs.
    assert not {"download", "experiment_tables", "summary_tables", "experiment_figure", "run_figures"} & set(rules), rules
    assert (tmp_path / "slurm/results/tables/mobilenet-fmnist.csv").stat().st_size > 0

    # Same results as the local run, bit for bit (CPU, deterministic).
    assert metrics == sorted(
        p.relative_to(tmp_path / "local")
        for p in (tmp_path / "local/results").rglob("metrics.json")
    )
    for rel in metrics:
        got = json.loads((tmp_path / "slurm" / rel).read_text())
        want = json.loads((tmp_path / "local" / rel).read_text())
        assert got["metrics"] == want["metrics"], rel
        assert got["nnz"] == want["nnz"], rel
        weights = rel.parent / "model.safetensors"
        a, b = (
            load_file(str(tmp_path / "slurm" / weights)),
            load_file(str(tmp_path / "local" / weights)),
        )
        assert a.keys() == b.keys(), weights
        for name in a:
            assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, (
                weights,
                name,
            )
            assert a[name].numpy().tobytes() == b[name].numpy().tobytes(), (weights, name)


FAILING = """
import sys

rule all:
    input:
        "out/done.txt",

rule doomed:
    output:
        "out/done.txt",
    params:
        python=lambda wildcards: sys.executable,  # evaluated by the snakemake inside the job
    shell:
        "echo 'job python: {params.python}' >&2; echo 'failing on purpose' >&2; exit 1"
"""


def test_failing_job_is_reported_as_failure(slurm_env, tmp_path):
    snakefile = _standalone(tmp_path, FAILING)
    start = _sacct_start()
    run = _snakemake(
        tmp_path / "work",
        "--workflow-profile",
        "none",
        "--profile",
        str(PROFILE),
        *FAST,
        env=slurm_env,
        limit=150,
        snakefile=snakefile,
    )
    rc = run.wait()
    out = run.output
    assert rc != 0, out[-3000:]
    assert "SLURM status is: 'FAILED'" in out, out[-3000:]
    assert "Error in rule doomed" in out, out[-3000:]
    assert "failing on purpose" in out, out[-3000:]  # show-failed-logs shows the job's log
    assert f"job python: {sys.executable}" in out, out[-3000:]  # the job ran in this venv
    assert not (tmp_path / "work/out/done.txt").exists()
    rows = _sacct_final(run.run_id, start, expect=1)
    assert [(_rule(r), r["state"]) for r in rows] == [("doomed", "FAILED")], rows


SLEEPING = """
rule all:
    input:
        "out/slept.txt",

rule sleeper:
    output:
        "out/slept.txt",
    shell:
        "sleep 120; touch {output}"
"""


def test_cancelled_job_is_reported_as_failure(slurm_env, tmp_path):
    snakefile = _standalone(tmp_path, SLEEPING)
    run = _snakemake(
        tmp_path / "work",
        "--workflow-profile",
        "none",
        "--profile",
        str(PROFILE),
        *FAST,
        "--slurm-status-command",
        "squeue",
        env=slurm_env,
        limit=180,
        snakefile=snakefile,
    )
    try:
        job = None
        deadline = time.monotonic() + 90
        while job is None and time.monotonic() < deadline and run.proc.poll() is None:
            if run.run_id:
                q = subprocess.run(
                    ["squeue", "-h", "-t", "RUNNING", "--name", run.run_id, "-o", "%i %k"],
                    check=False,
                    capture_output=True,
                    text=True,
                    timeout=30,
                )
                job = next(
                    (line.split()[0] for line in q.stdout.splitlines() if "rule_sleeper" in line),
                    None,
                )
            if job is None:
                time.sleep(0.5)
        assert job, (
            f"the sleeper job never ran (snakemake rc={run.proc.poll()}):\n{run.output[-3000:]}"
        )
        cancelled_at = time.monotonic()
        subprocess.run(["scancel", job], check=True, timeout=30)
        rc = run.wait(timeout=90)  # fails the test (and kills everything) if it hangs
    finally:
        if run.proc.poll() is None:
            run.kill()
    out = run.output
    print(f"cancellation reported after {time.monotonic() - cancelled_at:.0f} s")
    assert rc != 0, out[-3000:]
    assert "SLURM status is: 'CANCELLED'" in out, out[-3000:]
    assert "Error in rule sleeper" in out, out[-3000:]
    assert not (tmp_path / "work/out/slept.txt").exists()
