"""The workflow through a real (single-node, local) SLURM cluster: profiles/slurm with
snakemake-executor-plugin-slurm, started by tools/local_slurm.sh (root only; skipped where the
script says SLURM cannot run, exit code 3).

a. the `test` preset runs through `--profile profiles/slurm`; its jobs are COMPLETED in sacct and
   its results equal, bit for bit, those of a local run of the same config;
b. a failing job is reported as a failure (Snakemake exits non-zero, sacct says FAILED);
c. a job cancelled with `scancel` is reported as a failure (squeue status mode: in sacct mode
   plugin 2.8.0 waits forever on `CANCELLED by 0`, see tools/README.md);
d. an LM experiment with `resources.nodes: 2` trains through `srun` + torchrun (one launcher per
   "node", c10d rendezvous, gloo) and ends with the weights of one process on the combined batch;
e. a training job requeued by SLURM (`scontrol requeue`, what preemption does) resumes from its
   checkpoint and ends bitwise equal to an uninterrupted run.

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
import torch
import yaml
from safetensors.torch import load_file
from tests.fixtures.data_formats import registry_for, write_fashion_mnist
from tests.fixtures.faults import fault_env, fired
from tests.fixtures.http_server import LoopbackServer
from tests.workflow_helpers import ROOT, SNAKEFILE, load_preset, write_registry

pytestmark = pytest.mark.slurm

SCRIPT = ROOT / "tools" / "local_slurm.sh"
PROFILE = ROOT / "profiles" / "slurm"
# Flags every SLURM run of these tests adds to the profile: first status check after 1 s (the
# profile waits 10 s), a failing job fails the run at once (the profile retries twice).
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
@pytest.fixture(scope="module", autouse=True)
def real_scontrol():
    """This module talks to a real SLURM: take tests/conftest.py's scontrol stand-in off PATH."""
    stand_in = str(Path(__file__).resolve().parent / "fixtures" / "no_slurm")
    saved = os.environ["PATH"]
    os.environ["PATH"] = os.pathsep.join(p for p in saved.split(os.pathsep) if p != stand_in)
    yield
    os.environ["PATH"] = saved


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
    # The SLURM run builds the runs and their tables (the footprint and latency jobs, which would
    # only add SLURM jobs of the same kind, are the vision and footprint tests' job).
    slurm = _snakemake(
        tmp_path / "slurm",
        *METRICS,
        "results/tables/mobilenet-fmnist.csv",
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
    local_rules = {"download", "experiment_tables", "summary_tables", "experiment_figure",
                   "run_figures"}
    assert not local_rules & set(rules), rules
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


# ------------------------------------------------------------------------ several nodes, requeue
LM_SPARSE = "results/lstm-ptb/lstm_lm-12/sparsity-0.5/seed-0"


def _lm_config(registry_tsv: Path, resources: dict, **train) -> dict:
    """A tiny LM experiment (dropout 0: DDP and one process draw no different dropout masks)."""
    return {
        "preset": "test", "seeds": [0], "device": "cpu",
        "data": {"registry": str(registry_tsv), "mirror": None, "offline": False},
        "experiments": {"lstm-ptb": {
            "family": "lm", "dataset": "ptb", "model": "lstm_lm",
            "model_args": {"dropout": 0.0, "num_layers": 2},
            "large": {"size": 12, "sparsities": [0.0, 0.5]},
            "train": {"total_steps": 10, "batch_size": 4, "bptt": 7, "train_subset": 200,
                      "eval_batch_size": 50, "optimizer": {"name": "sgd", "lr": 0.5, "momentum": 0.9},
                      "grad_clip_norm": 5.0, "log_every": 2, "eval_every": 1000,
                      "checkpoint_every": 4, **train},
            "pruning": {"begin_step": 4, "frequency": 2, "n_updates": 2},
            "resources": {"threads": 1, "mem_mb": 1000, "runtime": 10, **resources},
        }},
    }


@pytest.fixture(scope="module")
def ptb_registry(tmp_path_factory):
    """A synthetic PTB (three text files) on a loopback server and the registry that points at it."""
    tmp = tmp_path_factory.mktemp("ptb")
    gen = __import__("random").Random(0)
    files = {}
    for split, n in (("train", 60), ("valid", 10), ("test", 10)):
        lines = (" ".join(f"w{gen.randrange(25)}" for _ in range(gen.randrange(3, 12)))
                 for _ in range(n))
        files[f"ptb.{split}.txt"] = ("\n".join(lines) + "\n").encode()
    server = LoopbackServer().start()
    try:
        server.files = {f"/ptb/{name}": content for name, content in files.items()}
        registry = registry_for("ptb", files, f"{server.url}/ptb")
        yield write_registry(tmp / "registry.tsv", registry.entries("ptb"))
    finally:
        server.stop()


def _steps(job_id: str) -> list[dict]:
    out = subprocess.run(["sacct", "-n", "-P", "-j", job_id, "-o", "JobID,NNodes,NTasks,State"],
                         check=False, capture_output=True, text=True, timeout=60)
    return [dict(zip(("id", "nodes", "tasks", "state"), line.split("|")))
            for line in out.stdout.splitlines() if line.strip()]


def _single_process(work: Path, config: dict) -> dict:
    """The pretrain and train jobs of LM_SPARSE as one process, in this process, on the data the
    SLURM run prepared; returns the exported weights (masks included)."""
    from gradprune import runner
    from gradprune.config import resolve_run, run_settings, validate_config

    config = validate_config(config)
    dense, pruned = (resolve_run(config, "lstm-ptb", "lstm_lm", "12", s, 0) for s in ("0.0", "0.5"))
    files = {"prepared": str(work / "resources/prepared/ptb/corpus.safetensors")}
    out = work.parent / "single"
    runner.configure_torch(1, True)
    runner.pretrain(run_settings(config, dense), dense, files, out / "t0.pt", out)
    runner.train(run_settings(config, pruned), pruned, files, out / "run", out / "t0.pt")
    return load_file(str(out / "run" / "model.safetensors"))


@pytest.mark.slow
def test_lm_on_two_nodes_through_slurm_equals_one_process(slurm_env, ptb_registry, tmp_path):
    """`resources.nodes: 2` through profiles/slurm: the pretrain and train jobs are submitted with
    `mpi` and 2 tasks, and their script starts one torchrun per task with srun, which meet through
    the c10d rendezvous and train with gloo. This cluster has one node, so `--set-resources` gives
    the jobs 1 SLURM node and the 2 launchers run side by side on it: the test shows the
    submission, the srun launch, the rendezvous and the process group across launchers, not the
    network between machines (README: the cluster-side requirements)."""
    config = _lm_config(ptb_registry, {"nodes": 2})
    work = tmp_path / "slurm"
    start = _sacct_start()
    run = _snakemake(work, f"{LM_SPARSE}/model.safetensors", "--profile", str(PROFILE), *FAST,
                     "--set-resources", "pretrain:nodes=1", "train:nodes=1",
                     env=slurm_env, limit=480, config=config)
    try:
        assert run.wait() == 0, f"SLURM run failed:\n{run.output[-5000:]}"
    finally:
        if run.proc.poll() is None:
            run.kill()
    rows = _sacct_final(run.run_id, start, expect=3)
    trainers = [r for r in rows if _rule(r) in ("pretrain", "train")]
    assert len(trainers) == 2 and {r["state"] for r in rows} == {"COMPLETED"}, rows
    for job in trainers:  # one srun step of 2 tasks: the launchers
        launches = [s for s in _steps(job["id"]) if s["id"] == f"{job['id']}.0"]
        assert launches and launches[0]["tasks"] == "2", _steps(job["id"])
    log = (work / LM_SPARSE / "train.log").read_text()
    assert "launching: srun" in log and "--nnodes=2" in log and "--rdzv-backend=c10d" in log, log
    summary = json.loads((work / LM_SPARSE / "train_summary.json").read_text())
    assert summary["processes"] == 2, summary

    got, want = load_file(str(work / LM_SPARSE / "model.safetensors")), _single_process(work, config)
    assert got.keys() == want.keys() and any(k.startswith("__mask__.") for k in got)
    for name in got:
        if name.startswith("__mask__."):
            assert torch.equal(got[name], want[name]), name
        else:
            torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-5,
                                       msg=lambda m, name=name: f"{name}: {m}")


def _squeue(job_id: str) -> str:
    out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], check=False,
                         capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


@pytest.mark.slow
def test_requeued_training_job_resumes_and_equals_an_uninterrupted_run(
    slurm_env, ptb_registry, tmp_path
):
    """`scontrol requeue` (what preemption with PreemptMode=REQUEUE does) stops the train job
    once it wrote a checkpoint; SLURM runs the same job again, which resumes from the checkpoint.
    SLURM holds a requeued job for AuthInfo's cred_expire (120 s by default) before it may start
    again; the test releases it at once (`scontrol update StartTime=now`)."""
    # The train job (steps 100-400) holds at step 250, after its checkpoint of step 200, until
    # SLURM kills it: the requeue never races the job's end, however fast or loaded the machine.
    config = _lm_config(ptb_registry, {}, total_steps=400, checkpoint_every=100, log_every=100)
    config["experiments"]["lstm-ptb"]["pruning"] = {"begin_step": 100, "frequency": 50, "n_updates": 4}
    work = tmp_path / "slurm"
    env = fault_env([{"at": "train_step", "step": 250, "pause": 400}], tmp_path / "faults",
                    base=slurm_env)
    run = _snakemake(work, f"{LM_SPARSE}/model.safetensors", "--profile", str(PROFILE), *FAST,
                     env=env, limit=600, config=config)
    ckpt = work / LM_SPARSE / "checkpoint.pt"
    try:
        job = None
        deadline = time.monotonic() + 480
        while job is None and time.monotonic() < deadline and run.proc.poll() is None:
            if run.run_id and fired(env)[0]:
                q = subprocess.run(["squeue", "-h", "-t", "RUNNING", "--name", run.run_id,
                                    "-o", "%i %k"], check=False, capture_output=True, text=True,
                                   timeout=30)
                job = next((line.split()[0] for line in q.stdout.splitlines()
                            if "rule_train_" in line), None)
            if job is None:
                time.sleep(0.2)
        assert job, f"the train job never reached step 250:\n{run.output[-3000:]}"
        assert ckpt.exists()
        subprocess.run(["scontrol", "requeue", job], check=True, timeout=30)
        deadline = time.monotonic() + 120
        while _squeue(job) != "PENDING" and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _squeue(job) == "PENDING", _squeue(job)
        subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True,
                       timeout=30)
        assert run.wait() == 0, f"SLURM run failed:\n{run.output[-5000:]}"
    finally:
        if run.proc.poll() is None:
            run.kill()
    history = subprocess.run(["sacct", "-D", "-X", "-n", "-P", "-j", job, "-o", "JobID,State"],
                             check=False, capture_output=True, text=True, timeout=60).stdout
    assert [line.split("|")[1] for line in history.split()] == ["REQUEUED", "COMPLETED"], history
    log = (work / LM_SPARSE / "train.log").read_text()
    resumed = [int(m) for m in re.findall(r"resuming \S+checkpoint\.pt at step (\d+)", log)]
    assert resumed and resumed[-1] >= 200 and resumed[-1] % 100 == 0, log[-3000:]
    assert not ckpt.exists()  # removed once the run finished

    got, want = load_file(str(work / LM_SPARSE / "model.safetensors")), _single_process(work, config)
    assert got.keys() == want.keys()
    for name in got:
        assert got[name].numpy().tobytes() == want[name].numpy().tobytes(), name
