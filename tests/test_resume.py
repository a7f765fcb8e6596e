"""Preemption safety of training runs (CPU).

A run killed midway and started again ends byte for byte where an uninterrupted run ends: for the
vision, LM and translation families, each pruned and continued from the dense checkpoint at t0 as
every pruned run of the workflow is. A checkpoint written for another config or another init
checkpoint is never resumed; a corrupt or foreign checkpoint is refused, never used.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from tests.fixtures.data_formats import write_fashion_mnist
from tests.fixtures.faults import fault_env, fired, tiny_train_state
from tests.workflow_helpers import load_preset

from gradprune import runner
from gradprune.atomic import write_bytes
from gradprune.config import Run, run_settings, training_config, validate_config
from gradprune.data.lm import prepare_lm_corpus
from gradprune.data.vision import prepare_fashion_mnist
from gradprune.tasks.lm import LanguageModelTask
from gradprune.tasks.translation import TranslationTask
from gradprune.training import checkpoint as ckpt_mod
from gradprune.training.checkpoint import (
    CorruptCheckpointError,
    identity_mismatch,
    load_checkpoint,
    run_identity,
    save_checkpoint,
)
from gradprune.training.loop import resume_if_possible

OUTPUTS = {"model.safetensors", "train_log.csv", "eval.csv", "prune_log.csv", "train_summary.json"}
CLOCK = ("started", "wall_time_s")  # the only bytes of a run's outputs that may differ


def assert_same_outputs(a: Path, b: Path, extra: set[str] = frozenset()) -> None:
    """Two finished run folders hold the outputs and nothing else (no checkpoint, no temporary
    file), equal byte for byte but for train_summary.json's clock readings."""
    assert {p.name for p in a.iterdir()} == OUTPUTS
    assert {p.name for p in b.iterdir()} == OUTPUTS | extra
    for name in sorted(OUTPUTS - {"train_summary.json"}):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    sa, sb = (json.loads((d / "train_summary.json").read_text()) for d in (a, b))
    assert {k: v for k, v in sa.items() if k not in CLOCK} == {k: v for k, v in sb.items() if k not in CLOCK}


def _pretrain(config: dict, run: Run, data: dict, folder: Path) -> Path:
    dense = Run(run.experiment, run.model, run.size, "0.0", run.seed, "dense")
    runner.pretrain(run_settings(config, dense), dense, data, folder / "checkpoint_t0.pt", folder)
    return folder / "checkpoint_t0.pt"


class _Preempted(BaseException):
    """Stops runner.train at a step: the files on disk are those a kill -9 there leaves."""


def _train_preempted(monkeypatch, task_cls, config, run, data, out, init, at_steps) -> None:
    original = task_cls.train_loss
    for stop in at_steps:
        def train_loss(self, model, step, stop=stop):
            if step == stop:
                raise _Preempted
            return original(self, model, step)

        monkeypatch.setattr(task_cls, "train_loss", train_loss)
        with pytest.raises(_Preempted):
            runner.train(run_settings(config, run), run, data, out, init)
        assert (out / "checkpoint.pt").exists() and not (out / "model.safetensors").exists()
    monkeypatch.setattr(task_cls, "train_loss", original)
    runner.train(run_settings(config, run), run, data, out, init)


# -- vision, through the command line, killed with SIGKILL ------------------------------------------

VISION_RUN = Run("mobilenet-fmnist", "mobilenet_v1", "0.25", "0.75", 0, "large-sparse")


def _small_test_preset() -> dict:
    """The test preset with a width-0.25 large model (a quarter of its width: cheap resumes)."""
    config = load_preset("test")
    config["experiments"]["mobilenet-fmnist"].update(
        large={"size": 0.25, "sparsities": [0.0, 0.5, 0.75]}, small_dense=[0.125])
    return config


@pytest.fixture(scope="module")
def vision(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    write_fashion_mnist(tmp / "raw", n_train=160, n_test=32)
    prepared = tmp / "data.safetensors"
    prepare_fashion_mnist(tmp / "raw", prepared)
    config = _small_test_preset()
    exp = config["experiments"]["mobilenet-fmnist"]
    exp["train"].update(total_steps=18, checkpoint_every=3, log_every=2, eval_every=5)
    exp["pruning"].update(begin_step=4, frequency=3, n_updates=4)
    config = validate_config(config)
    init = _pretrain(config, VISION_RUN, {"prepared": prepared}, tmp / "pretrain")
    return tmp, config, prepared, init


def _cli(config: dict, prepared, init, run_dir: Path, env=None, check=True):
    cfg = run_dir.parents[4] / "config.yaml"  # beside results/
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [sys.executable, "-m", "gradprune.cli", "train", "--config", str(cfg), "--run-dir",
           str(run_dir), "--data", f"prepared={prepared}", "--init", str(init)]
    proc = subprocess.run(cmd, env=env or fault_env([], run_dir.parents[4] / "faults"),
                          capture_output=True, text=True, timeout=300, check=False)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_pruned_run_from_init_killed_twice_ends_as_uninterrupted(vision, tmp_path):
    _, config, prepared, init = vision
    straight, killed = tmp_path / "a" / VISION_RUN.dir, tmp_path / "b" / VISION_RUN.dir
    _cli(config, prepared, init, straight)
    # Killed mid-window (checkpoints every 3 steps): steps 6-7 and 12 are taken twice.
    env = fault_env([{"at": "train_step", "step": 8}, {"at": "train_step", "step": 13}],
                    tmp_path / "faults")
    for resumable_at in (6, 12):
        proc = _cli(config, prepared, init, killed, env=env, check=False)
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
        assert load_checkpoint(killed / "checkpoint.pt")["step"] == resumable_at
    assert fired(env) == [True, True]
    proc = _cli(config, prepared, init, killed, env=env)
    assert f"resuming {killed / 'checkpoint.pt'} at step 12" in proc.stdout
    assert_same_outputs(straight, killed)


@pytest.mark.slow
def test_changed_lr_restarts_from_init_and_equals_a_clean_run(vision, tmp_path):
    _, config, prepared, init = vision
    changed = yaml.safe_load(yaml.safe_dump(config))
    changed["experiments"]["mobilenet-fmnist"]["train"]["optimizer"]["lr"] = 0.02
    clean, killed = tmp_path / "clean" / VISION_RUN.dir, tmp_path / "killed" / VISION_RUN.dir
    _cli(changed, prepared, init, clean)
    env = fault_env([{"at": "train_step", "step": 11}], tmp_path / "faults")
    assert _cli(config, prepared, init, killed, env=env, check=False).returncode == -signal.SIGKILL
    old = load_checkpoint(killed / "checkpoint.pt")
    assert old["step"] == 9

    proc = _cli(changed, prepared, init, killed)
    assert "resuming" not in proc.stdout
    new_hash = _vision_identity(changed, init)["config_hash"]
    message = proc.stderr[proc.stderr.index("not resuming"):].splitlines()[0]
    assert old["identity"]["config_hash"] in message and new_hash in message
    assert "train.optimizer.lr: 0.05 -> 0.02" in message and "checkpoint.pt.stale" in message
    assert_same_outputs(clean, killed, extra={"checkpoint.pt.stale"})
    assert load_checkpoint(killed / "checkpoint.pt.stale")["step"] == 9


# -- the LM and translation, in process (interrupted by an exception at a step) ---------------------

LM = {
    "description": "a tiny Zaremba LSTM LM on a synthetic corpus",
    "family": "lm", "dataset": "ptb", "model": "lstm_lm", "model_args": {"dropout": 0.3},
    "large": {"size": 16, "sparsities": [0.0, 0.75]}, "small_dense": [8],
    "train": {"total_steps": 16, "batch_size": 4, "bptt": 7, "eval_batch_size": 10,
              "optimizer": {"name": "sgd", "lr": 1.0}, "grad_clip_norm": 5.0, "log_every": 3,
              "eval_every": 5, "checkpoint_every": 3},
    "pruning": {"begin_step": 4, "frequency": 2, "n_updates": 4},
    "resources": {"threads": 1, "mem_mb": 1000, "runtime": 10},
}


def _words(gen: torch.Generator, lines: int, vocab: list[str]) -> str:
    lengths = torch.randint(3, 12, (lines,), generator=gen).tolist()
    picks = (torch.randint(0, len(vocab), (k,), generator=gen).tolist() for k in lengths)
    return "".join(" ".join(vocab[i] for i in words) + "\n" for words in picks)


def _vocab(gen: torch.Generator, n: int) -> list[str]:
    """n random lowercase words of 2 to 7 letters."""
    return ["".join(chr(97 + c) for c in torch.randint(0, 26, (k,), generator=gen).tolist())
            for k in torch.randint(2, 8, (n,), generator=gen).tolist()]


def test_lm_with_its_pruner_resumes_byte_for_byte(tmp_path, monkeypatch):
    gen = torch.Generator().manual_seed(0)
    raw = tmp_path / "raw"
    raw.mkdir()
    for split, lines in (("train", 300), ("valid", 40), ("test", 40)):
        (raw / f"ptb.{split}.txt").write_text(_words(gen, lines, [f"w{i}" for i in range(40)]))
    prepared = tmp_path / "corpus.safetensors"
    prepare_lm_corpus("ptb", raw, prepared)
    config = validate_config({"preset": "test", "seeds": [0], "device": "cpu",
                              "experiments": {"lstm-ptb": LM}})
    run = Run("lstm-ptb", "lstm_lm", "16", "0.75", 0, "large-sparse")
    data = {"prepared": prepared}
    init = _pretrain(config, run, data, tmp_path / "pretrain")
    runner.train(run_settings(config, run), run, data, tmp_path / "a", init)
    # Across the pruning window (updates at steps 4, 6, 8, 10) and mid-window of the checkpoints.
    _train_preempted(monkeypatch, LanguageModelTask, config, run, data, tmp_path / "b", init, (7, 11))
    assert_same_outputs(tmp_path / "a", tmp_path / "b")
    # the curve: the end of pretraining (step 3), every 5th step and the last one
    rows = (tmp_path / "a" / "eval.csv").read_text().splitlines()[1:]
    assert [int(row.split(",")[0]) for row in rows] == [3, 4, 9, 14, 15]


MULTI30K_LINES = {"train": 200, "val": 20, "test_2016_flickr": 16}


def _write_multi30k(root: Path, monkeypatch) -> None:
    """Synthetic Multi30k files, of sizes the reader is told to expect."""
    from gradprune.data import parallel_text

    gen = torch.Generator().manual_seed(1)
    folder = root / "multi30k"
    folder.mkdir(parents=True)
    vocab = {"en": _vocab(gen, 80), "de": _vocab(gen, 80)}
    for split, lines in MULTI30K_LINES.items():
        monkeypatch.setitem(parallel_text.MULTI30K_SIZES, split, lines)
        for lang in ("en", "de"):
            text = _words(gen, lines, vocab[lang])
            (folder / f"{split}.{lang}.gz").write_bytes(gzip.compress(text.encode()))


GNMT = {
    "description": "a tiny GNMT on synthetic parallel text",
    "family": "translation", "dataset": "multi30k", "model": "gnmt",
    "model_args": {"num_layers": 2, "dropout": 0.1},
    "large": {"size": 16, "sparsities": [0.0, 0.5]}, "small_dense": [8],
    "train": {"total_steps": 9, "batch_size": 8, "eval_batch_size": 16,
              "optimizer": {"name": "adam", "lr": 0.003}, "log_every": 2, "eval_every": 4,
              "checkpoint_every": 2},
    "pruning": {"begin_step": 2, "frequency": 2, "n_updates": 3},
    "translation": {"vocab_size": 100, "beam_size": 2, "max_decode_len": 12, "curve_examples": 6,
                    "test_limit": 8},
    "resources": {"threads": 1, "mem_mb": 1000, "runtime": 10},
}


def test_translation_resumes_byte_for_byte(tmp_path, monkeypatch):
    from gradprune.data.translation import prepare

    _write_multi30k(tmp_path / "raw", monkeypatch)
    out = tmp_path / "prepared"
    prepare(tmp_path / "raw", out, "multi30k", None, vocab_size=100)
    data = {"prepared": out / "data.safetensors", "spm": out / "spm.model", "text": out / "text.json"}
    config = validate_config({"preset": "test", "seeds": [0], "device": "cpu",
                              "experiments": {"gnmt-tiny": GNMT}})
    run = Run("gnmt-tiny", "gnmt", "16", "0.5", 0, "large-sparse")
    init = _pretrain(config, run, data, tmp_path / "pretrain")
    runner.train(run_settings(config, run), run, data, tmp_path / "a", init)
    _train_preempted(monkeypatch, TranslationTask, config, run, data, tmp_path / "b", init, (5,))
    assert_same_outputs(tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "a" / "eval.csv").read_text().splitlines()[0].startswith("step,bleu")


# -- which checkpoint may be resumed ---------------------------------------------------------------


def _identity(lr=0.05, init=None, **resources):
    config = _small_test_preset()
    exp = config["experiments"]["mobilenet-fmnist"]
    exp["train"]["optimizer"]["lr"] = lr
    exp["resources"].update(resources)
    return _vision_identity(config, init)


def _vision_identity(config: dict, init=None) -> dict:
    """The identity a checkpoint of VISION_RUN under ``config`` records."""
    settings = run_settings(validate_config(config), VISION_RUN)
    return run_identity(training_config(settings, VISION_RUN), init)


def test_identity_names_what_changed_and_ignores_what_cannot_change_numbers(tmp_path):
    base = _identity()
    assert identity_mismatch(base, _identity()) == []
    # the job's time and memory limits, and the other runs of the preset, change no number
    # (gradprune.config.run_settings leaves them out)
    assert identity_mismatch(base, _identity(runtime=600, mem_mb=9000)) == []
    reworded = _small_test_preset()
    reworded["experiments"]["mobilenet-fmnist"]["description"] = "another wording"
    assert identity_mismatch(base, _vision_identity(reworded)) == []
    other_runs = _small_test_preset()
    other_runs["experiments"]["mobilenet-fmnist"]["large"]["sparsities"].append(0.9)
    assert identity_mismatch(base, _vision_identity(other_runs)) == []
    assert identity_mismatch(base, _identity(lr=0.1)) == ["train.optimizer.lr: 0.05 -> 0.1"]
    # the job's threads are not part of the run either (Snakemake scales them to --cores)
    assert identity_mismatch(base, _identity(threads=2)) == []
    init = tmp_path / "checkpoint_t0.pt"
    save_checkpoint({"step": 3}, init)
    [difference] = identity_mismatch(base, _identity(init=init))
    assert difference.startswith("continued from init checkpoint sha256 None, now ")
    assert identity_mismatch(None, base) == [
        "the checkpoint records no run identity (written by an older gradprune)"]


def test_checkpoint_of_another_init_is_moved_aside_not_resumed(tmp_path, caplog):
    ckpt = tmp_path / "checkpoint.pt"
    inits = []
    for step in (3, 4):
        inits.append(tmp_path / f"init-{step}.pt")
        save_checkpoint({"step": step}, inits[-1])
    first = tiny_train_state(_identity(init=inits[0]))
    first.step = 7
    save_checkpoint(first.state_dict(), ckpt)
    write_bytes(tmp_path / f".{ckpt.name}.0badf00d.tmp", b"half a save")  # a killed save's leftover
    assert resume_if_possible(tiny_train_state(), ckpt, _identity(init=inits[0]))  # the same run resumes
    with caplog.at_level(logging.WARNING):
        assert not resume_if_possible(tiny_train_state(), ckpt, _identity(init=inits[1]))
    assert not ckpt.exists() and load_checkpoint(tmp_path / "checkpoint.pt.stale")["step"] == 7
    assert "continued from init checkpoint sha256" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint.pt.stale", "init-3.pt", "init-4.pt"]


# -- refused checkpoints ---------------------------------------------------------------------------


def test_corrupt_checkpoint_is_reported_not_used(vision, tmp_path):
    _, config, prepared, init = vision
    run_dir = tmp_path / VISION_RUN.dir
    run_dir.mkdir(parents=True)
    ckpt = run_dir / "checkpoint.pt"
    save_checkpoint({"step": 3, "model": {"w": torch.ones(4)}}, ckpt)
    data = bytearray(ckpt.read_bytes())
    data[len(data) // 2] ^= 0xFF
    ckpt.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError, match=r"is corrupt \(sha256 .*Delete"):
        runner.train(run_settings(config, VISION_RUN), VISION_RUN, {"prepared": prepared}, run_dir,
                     init)
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint.pt"]  # kept for inspection


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_pickle_with_code_is_not_a_checkpoint_of_ours(tmp_path):
    buf = io.BytesIO()
    torch.save({"step": 1, "x": _Payload()}, buf)
    payload = buf.getvalue()
    digest = ckpt_mod.hashlib.sha256(payload).hexdigest().encode()
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(ckpt_mod.MAGIC + digest + b"\n" + payload)  # a valid header, even
    with pytest.raises(CorruptCheckpointError) as err:
        load_checkpoint(path)
    assert "is not a checkpoint this project wrote" in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__  # no torch advice
    assert "weights_only" not in str(err.value)
    # A bare pickle (no header) is refused before anything is unpickled.
    path.write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(CorruptCheckpointError, match="is not a checkpoint this project wrote"):
        load_checkpoint(path)


def test_checkpoint_of_an_older_gradprune_still_loads_with_its_digest_file(tmp_path):
    path = tmp_path / "checkpoint_t0.pt"
    torch.save({"step": 5}, path)  # gradprune <= 0.1: plain torch.save plus a .sha256 file
    sidecar = tmp_path / "checkpoint_t0.pt.sha256"
    sidecar.write_text(ckpt_mod.hashlib.sha256(path.read_bytes()).hexdigest())
    assert load_checkpoint(path) == {"step": 5}
    sidecar.write_text("0" * 64)
    with pytest.raises(CorruptCheckpointError, match="is corrupt"):
        load_checkpoint(path)
    sidecar.unlink()
    with pytest.raises(CorruptCheckpointError, match="not a checkpoint this project wrote"):
        load_checkpoint(path)
