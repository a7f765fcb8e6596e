"""Fault injection (issue #12): nothing lost, nothing stale, nothing half-written.

- A checkpoint save crashed (an exception) or killed (SIGKILL) at every stage of the write leaves
  the previous checkpoint valid, and the next run resumes it.
- A full disk during a save (an ENOSPC injected into the writer, and a real one on a tiny tmpfs
  when this machine lets an unprivileged user namespace mount one) keeps the previous checkpoint
  and names the error, the path and the filesystem.
- Written files follow the umask; exported weights are the same bytes every time.
- The test preset through Snakemake, its jobs killed with SIGKILL at seeded random steps of
  pretraining and pruning, during evaluation and in the middle of a checkpoint save, ends with
  the same files as an uninterrupted run; a config changed between the kill and the rerun gives
  the result of a clean run with the new config. $GRADPRUNE_FAULT_SEED picks other kill points.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tests.fixtures.data_formats import registry_for, write_fashion_mnist
from tests.fixtures.faults import fault_env, fired, tiny_train_state
from tests.fixtures.http_server import LoopbackServer
from tests.workflow_helpers import load_preset, snakemake, write_registry

from gradprune import atomic
from gradprune.atomic import DiskFullError
from gradprune.data.vision import prepare_fashion_mnist
from gradprune.training.checkpoint import (
    export_weights,
    load_checkpoint,
    save_checkpoint,
)
from gradprune.training.loop import resume_if_possible

# Every point at which a checkpoint save can be interrupted, in order ("payload": written, its
# digest not yet in the header; "renamed": the new checkpoint is committed).
SAVE_STAGES = ("opened", "write", "payload", "written", "synced", "renamed")


def _saves(path: Path) -> tuple[dict, dict]:
    """A training state already saved at ``path`` (step 4), and the next one (step 8)."""
    old, new = tiny_train_state(), tiny_train_state()
    old.step, new.step = 4, 8
    with torch.no_grad():
        new.model.weight.add_(1.0)
    extra = torch.arange(5000.0)  # several blocks of torch.save output
    old, new = {**old.state_dict(), "extra": extra}, {**new.state_dict(), "extra": -extra}
    save_checkpoint(old, path)
    return old, new


def _assert_holds(path: Path, state: dict) -> None:
    loaded = load_checkpoint(path)  # raises CorruptCheckpointError when it is not valid
    assert loaded["step"] == state["step"]
    assert torch.equal(loaded["model"]["weight"], state["model"]["weight"])
    assert torch.equal(loaded["extra"], state["extra"])


class _Crash(Exception):
    pass


@pytest.mark.parametrize("stage", SAVE_STAGES)
def test_save_crashed_at_any_stage_keeps_a_valid_checkpoint(tmp_path, monkeypatch, stage):
    path = tmp_path / "checkpoint.pt"
    old, new = _saves(path)

    def crash(at, _):
        if at == stage:
            raise _Crash(at)

    monkeypatch.setattr(atomic, "fault_hook", crash)
    with pytest.raises(_Crash):
        save_checkpoint(new, path)
    _assert_holds(path, new if stage == "renamed" else old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no temporary file


@pytest.mark.parametrize("stage", SAVE_STAGES)
def test_save_killed_at_any_stage_is_resumed_from_the_previous_checkpoint(tmp_path, stage):
    path = tmp_path / "checkpoint.pt"
    old, new = _saves(path)
    pid = os.fork()
    if pid == 0:  # the writer: SIGKILLed at the stage, so nothing of it cleans up
        atomic.fault_hook = lambda at, _: at == stage and os.kill(os.getpid(), signal.SIGKILL)
        try:
            save_checkpoint(new, path)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    committed = stage == "renamed"
    _assert_holds(path, new if committed else old)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "checkpoint.pt"]
    assert len(leftovers) == (0 if committed else 1)
    state = tiny_train_state()  # what a rerun of the job does: resume, and clear the killed save's file
    assert resume_if_possible(state, path)
    assert state.step == (new if committed else old)["step"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_full_disk_during_a_save_keeps_the_checkpoint_and_names_disk_and_path(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    old, new = _saves(path)
    writes = []

    def disk_fills(at, _):  # the disk fills after a few blocks of torch.save's output
        if at == "write":
            writes.append(at)
            if len(writes) > 3:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic, "fault_hook", disk_fills)
    with pytest.raises(DiskFullError) as err:
        save_checkpoint(new, path)
    message = str(err.value)
    assert err.value.errno == errno.ENOSPC
    assert f"No space left on device while writing {path}" in message
    assert f"mounted at {atomic.filesystem_of(tmp_path)}" in message and "bytes free" in message
    assert "enforce fail" not in message
    _assert_holds(path, old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


# A real full disk: a 256 KiB tmpfs in a private mount namespace. It vanishes with the namespace,
# so the script checks inside it and prints what it saw.
_TMPFS_SCRIPT = """
import json, os, sys, torch
from pathlib import Path
from gradprune.atomic import DiskFullError
from gradprune.data.vision import prepare_fashion_mnist
from gradprune.data.fetch import fetch
from gradprune.data.registry import Registry, Entry
from gradprune.training.checkpoint import load_checkpoint, save_checkpoint
root, mirror = Path(sys.argv[1]), Path(sys.argv[2])
out = {}
path = root / "run" / "checkpoint.pt"
save_checkpoint({"step": 4, "w": torch.zeros(1000)}, path)
try:
    save_checkpoint({"step": 8, "w": torch.zeros(200_000)}, path)
except DiskFullError as err:
    out["save"] = str(err)
out["kept_step"] = load_checkpoint(path)["step"]
out["run_files"] = sorted(os.listdir(path.parent))
big = mirror / "toy" / "big.bin"
entry = Entry("toy", "big.bin", big.stat().st_size, sys.argv[3], "http://127.0.0.1:9/big.bin")
try:
    fetch("toy", "big.bin", root / "data", mirror=str(mirror), offline=True,
          registry=Registry([entry]))
except DiskFullError as err:
    out["fetch"] = str(err)
out["data_files"] = sorted(os.listdir(root / "data"))
print(json.dumps(out))
"""


def _can_mount_tmpfs() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k t /mnt"],
                           capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="no unprivileged user namespace to mount a tmpfs")
def test_real_full_disk_on_a_tmpfs(tmp_path):
    import hashlib

    mount, mirror = tmp_path / "small-disk", tmp_path / "mirror"
    mount.mkdir()
    (mirror / "toy").mkdir(parents=True)
    big = os.urandom(400_000)
    (mirror / "toy" / "big.bin").write_bytes(big)
    script = tmp_path / "fill.py"
    script.write_text(_TMPFS_SCRIPT)
    cmd = (f"mount -t tmpfs -o size=256k small-disk {mount} && exec {sys.executable} {script} "
           f"{mount} {mirror} {hashlib.sha256(big).hexdigest()}")
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", cmd], capture_output=True, text=True,
                          timeout=120, env=fault_env([], tmp_path / "faults"), check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.splitlines()[-1])
    for what, path in (("save", mount / "run" / "checkpoint.pt"), ("fetch", mount / "data" / "big.bin")):
        assert (f"[Errno 28] No space left on device while writing {path}: the "
                f"filesystem mounted at {mount} has ") in seen[what], seen[what]
    assert seen["kept_step"] == 4 and seen["run_files"] == ["checkpoint.pt"]
    assert seen["data_files"] == []


def test_files_follow_the_umask(tmp_path):
    model = torch.nn.Linear(3, 2)
    raw = tmp_path.parent / f"{tmp_path.name}-raw"
    write_fashion_mnist(raw, n_train=4, n_test=2)
    previous = os.umask(0o027)
    try:
        save_checkpoint({"step": 1}, tmp_path / "checkpoint.pt")
        export_weights(model, {}, tmp_path / "model.safetensors", {"run": "r", "step": 1})
        with atomic.atomic_dir(tmp_path / "extracted") as folder:
            (folder / "x").write_text("x")
        prepare_fashion_mnist(raw, tmp_path / "data.safetensors")  # save_file alone gives 0600
        os.umask(0o022)
        save_checkpoint({"step": 1}, tmp_path / "checkpoint_t0.pt")
    finally:
        os.umask(previous)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {"checkpoint.pt": 0o640, "model.safetensors": 0o640, "extracted": 0o750,
                     "data.safetensors": 0o640, "checkpoint_t0.pt": 0o644}


def test_exported_weights_are_the_same_bytes_every_time(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    masks = {"0.weight": torch.rand(3, 4) > 0.5}
    meta = {"run": "results/x", "step": 12, "seed": 0, "role": "large-sparse", "target": 0.5}
    blobs = set()
    for i in range(8):  # safetensors writes a metadata map in a per-call hash order
        export_weights(model, masks, tmp_path / f"{i}.safetensors", meta)
        blobs.add((tmp_path / f"{i}.safetensors").read_bytes())
    assert len(blobs) == 1


# -- the test preset through Snakemake ---------------------------------------------------------------

EXP = "mobilenet-fmnist"
RUN = f"results/{EXP}/mobilenet_v1-0.25/sparsity-0.75/seed-0"
PRETRAIN = f"results/{EXP}/mobilenet_v1-0.25/pretrain/seed-0"
TARGET = f"{RUN}/metrics.json"
BYTE_EQUAL = ("model.safetensors", "train_log.csv", "eval.csv", "prune_log.csv")
# clock readings, and the config files' paths (each run has a work folder of its own)
CLOCK = {"train": ("wall_time_s", "started"), "provenance": ("started", "finished", "sources")}
SEED = int(os.environ.get("GRADPRUNE_FAULT_SEED", "12"))


def _run_workflow(work: Path, config: dict, env: dict, *args: str):
    """The one place this module runs Snakemake (the helper's signature is about to change)."""
    return snakemake(work, config, *args, env=env)


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    """The test preset (checkpoints every 2 steps: pretraining writes one too) on synthetic data
    from a loopback server, and one uninterrupted run of the 0.75 target for reference."""
    tmp = tmp_path_factory.mktemp("faults")
    fixture = tmp / "fixture-files"
    write_fashion_mnist(fixture, n_train=160, n_test=48)
    files = {p.name: p.read_bytes() for p in fixture.iterdir()}
    server = LoopbackServer().start()
    server.files = {f"/fmnist/{name}": content for name, content in files.items()}
    try:
        registry = registry_for("fashion-mnist", files, f"{server.url}/fmnist")
        config = load_preset("test")
        config["data"] = {"registry": str(write_registry(tmp / "registry.tsv",
                                                         registry.entries("fashion-mnist")))}
        config["experiments"][EXP]["train"]["checkpoint_every"] = 2
        # a width-0.25 large model (cheap; the preset's own is 1.0)
        config["experiments"][EXP].update(large={"size": 0.25, "sparsities": [0.0, 0.5, 0.75]},
                                          small_dense=[0.125])
        reference = tmp / "reference"
        proc = _run_workflow(reference, config, fault_env([], tmp / "no-faults"), TARGET)
        assert proc.returncode == 0, proc.stderr[-5000:]
        yield tmp, config, reference
    finally:
        server.stop()


def _workdir(tmp: Path, reference: Path, name: str) -> Path:
    """A new working folder with the reference's downloaded and prepared data: the runs below
    differ from it only from pretraining on (and CPU time is short)."""
    shutil.copytree(reference / "resources", tmp / name / "resources")
    return tmp / name


def _assert_same_results(a: Path, b: Path, evaluated: bool = True) -> None:
    """The run's files (and the dense checkpoint at t0) equal byte for byte, or but for clock
    readings (metrics.json, train_summary.json; checkpoint_t0.pt: tensors and logs compared)."""
    for name in BYTE_EQUAL:
        assert (a / RUN / name).read_bytes() == (b / RUN / name).read_bytes(), name
    parts = [("train_summary.json", {"": CLOCK["train"]})]
    if evaluated:
        parts.append(("metrics.json", CLOCK))
    for name, clock in parts:
        docs = [json.loads((w / RUN / name).read_text()) for w in (a, b)]
        for doc in docs:
            for part, keys in clock.items():
                for key in keys:
                    (doc[part] if part else doc).pop(key)
        assert docs[0] == docs[1], name
    inits = [load_checkpoint(w / PRETRAIN / "checkpoint_t0.pt") for w in (a, b)]
    for state in inits:
        state["logs"].pop("wall_time_s")
    assert _same(inits[0], inits[1])
    for w in (a, b):  # the runs cleaned up after themselves
        assert not list((w / RUN).glob("*checkpoint*")) and not list((w / RUN).glob(".*"))


def _same(a, b) -> bool:
    """Equal, tensors included (bitwise), in nested dicts and lists."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _random_faults(rng: random.Random, config: dict) -> list[dict]:
    exp = config["experiments"][EXP]
    t0, total = exp["pruning"]["begin_step"], exp["train"]["total_steps"]
    return [
        {"at": "train_step", "step": rng.randrange(0, t0)},  # pretraining
        {"at": "train_step", "step": rng.randrange(t0 + 2, total)},  # pruning, after a checkpoint
        # in the middle of the first checkpoint save of pretraining or of pruning
        {"at": "atomic", "name": "checkpoint.pt", "stage": rng.choice(SAVE_STAGES),
         "run": rng.choice(["pretrain", "sparsity-0.75"])},
        {"at": "evaluate", "split": "test"},  # the evaluate job
    ]


@pytest.mark.slow
def test_killed_everywhere_then_rerun_equals_an_uninterrupted_run(workflow):
    tmp, config, reference = workflow
    faults = _random_faults(random.Random(SEED), config)
    env = fault_env(faults, tmp / "kills")
    work = _workdir(tmp, reference, "killed")
    # Snakemake restarts each killed job (as a rerun would: its outputs removed, its folder kept).
    proc = _run_workflow(work, config, env, TARGET, "--retries", str(len(faults)))
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert fired(env) == [True] * len(faults), faults
    assert proc.stderr.count("Trying to restart job") == len(faults), proc.stderr[-5000:]
    logs = "".join(p.read_text() for p in (work / "results").rglob("*.log"))
    assert "resuming" in logs and "CorruptCheckpointError" not in logs
    _assert_same_results(reference, work)


@pytest.mark.slow
def test_lr_changed_between_kill_and_rerun_equals_a_clean_run_with_the_new_lr(workflow):
    """Killed while training with lr 0.02, rerun with the preset's lr: the reference's result."""
    tmp, config, reference = workflow
    before = json.loads(json.dumps(config))
    before["experiments"][EXP]["train"]["optimizer"]["lr"] = 0.02
    work = _workdir(tmp, reference, "lr-changed")
    weights = f"{RUN}/model.safetensors"
    env = fault_env([{"at": "train_step", "step": 9}], tmp / "lr-kill")  # checkpoint at step 8
    assert _run_workflow(work, before, env, weights).returncode != 0 and fired(env) == [True]
    assert load_checkpoint(work / RUN / "checkpoint.pt")["step"] == 8

    proc = _run_workflow(work, config, env, weights)
    assert proc.returncode == 0, proc.stderr[-5000:]
    log = (work / RUN / "train.log").read_text()
    assert "not resuming" in log and "train.optimizer.lr: 0.02 -> 0.05" in log
    assert "continued from init checkpoint sha256" in log  # pretraining was redone too
    assert "resuming" not in log.replace("not resuming", "")
    (work / RUN / "checkpoint.pt.stale").unlink()
    _assert_same_results(reference, work, evaluated=False)
