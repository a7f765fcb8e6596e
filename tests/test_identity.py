"""Which keys restart a run (issue 22, item 2).

A key that cannot change the trained weights is in no checkpoint identity and in no training job's
params: changing it resumes a run's checkpoint and Snakemake retrains nothing. Operational keys
(how often a run logs, checkpoints and scores its curve) rerun nothing at all; scoring keys (how
metrics.json scores the weights) rerun the jobs that score. Every other key restarts the run.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from tests.fixtures.data_formats import write_fashion_mnist
from tests.test_resume import GNMT, LM, _small_test_preset, _words, _write_multi30k
from tests.workflow_helpers import load_preset, planned_jobs, run_snakemake

from gradprune import runner
from gradprune.config import (
    OPERATIONAL_KEYS,
    SCORING_KEYS,
    Run,
    evaluation_config,
    load_schema,
    resolve_run,
    run_settings,
    training_config,
    training_settings,
    validate_config,
)
from gradprune.data.lm import prepare_lm_corpus
from gradprune.data.vision import prepare_fashion_mnist
from gradprune.tasks.lm import LanguageModelTask
from gradprune.tasks.translation import TranslationTask
from gradprune.tasks.vision import ImageClassificationTask
from gradprune.training.checkpoint import identity_mismatch, load_checkpoint, run_identity

# The keys of `train` and `translation` that can change the trained weights, written out here
# (the oracle): the schema's other keys must be operational or scoring keys, and a new schema key
# makes test_every_key_of_train_and_translation_is_classified fail until it is classified.
WEIGHT_KEYS = {
    "train": {"total_steps", "batch_size", "train_subset", "optimizer", "lr_schedule",
              "grad_clip_norm", "label_smoothing", "bptt"},
    "translation": {"source_lang", "target_lang", "vocab_size", "spm_model_type", "loss",
                    "spm_input_sentence_size", "max_train_len"},
}


def test_every_key_of_train_and_translation_is_classified():
    defs = load_schema()["$defs"]
    for section in ("train", "translation"):
        schema_keys = set(defs[section]["properties"])
        untracked = {k.split(".", 1)[1] for k in OPERATIONAL_KEYS + SCORING_KEYS
                     if k.startswith(f"{section}.")}
        assert not untracked & WEIGHT_KEYS[section], section
        assert schema_keys == untracked | WEIGHT_KEYS[section], (
            section, schema_keys ^ (untracked | WEIGHT_KEYS[section]))


def _translation_preset() -> dict:
    return validate_config({"preset": "test", "seeds": [0], "device": "cpu",
                            "experiments": {"gnmt-tiny": GNMT}})


TRANSLATION_RUN = Run("gnmt-tiny", "gnmt", "16", "0.5", 0, "large-sparse")
VISION_RUN = Run("mobilenet-fmnist", "mobilenet_v1", "1.0", "0.75", 0, "large-sparse")


def _changed(config: dict, experiment: str, key: str, value) -> dict:
    config = json.loads(json.dumps(config))
    section, leaf = key.split(".")
    config["experiments"][experiment][section][leaf] = value
    return validate_config(config)


# a value different from the preset's for every untracked key
NEW_VALUES = {"train.checkpoint_every": 7, "train.log_every": 9, "train.eval_every": 11,
              "train.eval_curve_examples": 13, "translation.curve_examples": 3,
              "train.eval_batch_size": 5, "translation.decode": "greedy",
              "translation.beam_size": 4, "translation.length_penalty": 0.6,
              "translation.max_decode_len": 20, "translation.test_sets": ["test_2017_flickr"],
              "translation.test_limit": 2}


@pytest.mark.parametrize("key", OPERATIONAL_KEYS + SCORING_KEYS)
def test_untracked_keys_leave_the_identity_and_the_training_params(key):
    translation = key.startswith("translation.")
    config = _translation_preset() if translation else validate_config(load_preset("mini"))
    experiment, run = ("gnmt-tiny", TRANSLATION_RUN) if translation else ("mobilenet-fmnist",
                                                                         VISION_RUN)
    changed = _changed(config, experiment, key, NEW_VALUES[key])
    before, after = run_settings(config, run), run_settings(changed, run)
    assert before != after  # the key reaches the job...
    section, leaf = key.split(".")
    assert after["experiment"][section][leaf] == NEW_VALUES[key]
    # ...but neither the training params nor the checkpoint identity
    assert training_settings(before) == training_settings(after)
    assert training_config(before, run) == training_config(after, run)
    assert identity_mismatch(run_identity(training_config(before, run), None),
                             run_identity(training_config(after, run), None)) == []
    # metrics.json records the scoring keys, not the operational ones
    same_record = evaluation_config(before, run) == evaluation_config(after, run)
    assert same_record == (key in OPERATIONAL_KEYS)


@pytest.mark.parametrize("key, value", [
    ("train.total_steps", 4000), ("train.batch_size", 32), ("train.train_subset", 1000),
    ("train.grad_clip_norm", 1.0), ("train.label_smoothing", 0.1),
    ("model_args.dropout", 0.2), ("pruning.begin_step", 600),
])
def test_result_keys_restart_the_run(key, value):
    config = validate_config(load_preset("mini"))
    changed = _changed(config, "mobilenet-fmnist", key, value)
    before = run_identity(training_config(run_settings(config, VISION_RUN), VISION_RUN), None)
    after = run_identity(training_config(run_settings(changed, VISION_RUN), VISION_RUN), None)
    [difference] = [d for d in identity_mismatch(before, after) if d.startswith(f"{key}:")]
    assert difference.endswith(f"-> {value!r}")


def test_checkpoints_that_recorded_the_operational_keys_still_resume():
    """A checkpoint written before these keys left the identity records them in its config."""
    config = validate_config(load_preset("mini"))
    settings = run_settings(config, VISION_RUN)
    old = run_identity(runner.run_config(settings, VISION_RUN), None)  # the former identity
    assert old["config"]["train"]["checkpoint_every"] == 400
    current = run_identity(training_config(settings, VISION_RUN), None)
    assert identity_mismatch(old, current) == []
    faster = run_identity(training_config(run_settings(
        _changed(config, "mobilenet-fmnist", "train.batch_size", 32), VISION_RUN), VISION_RUN), None)
    assert identity_mismatch(old, faster) == ["train.batch_size: 64 -> 32"]


# -- in process: a run resumed with other operational and scoring keys ends where it would have -----


class _Preempted(BaseException):
    pass


def _interrupted_then_resumed(monkeypatch, task_cls, settings, resumed, run, data, out, stop):
    """Train ``run`` with ``settings`` until step ``stop`` (a kill there), then run it again
    with ``resumed``; returns the step of the checkpoint it resumed."""
    original = task_cls.train_loss

    def train_loss(self, model, step):
        if step == stop:
            raise _Preempted
        return original(self, model, step)

    monkeypatch.setattr(task_cls, "train_loss", train_loss)
    with pytest.raises(_Preempted):
        runner.train(settings, run, data, out, None)
    monkeypatch.setattr(task_cls, "train_loss", original)
    assert (out / "checkpoint.pt").exists()
    at = load_checkpoint(out / "checkpoint.pt")["step"]
    runner.train(resumed, run, data, out, None)
    return at


def _vision_case(tmp: Path):
    write_fashion_mnist(tmp / "raw", n_train=160, n_test=24)
    prepare_fashion_mnist(tmp / "raw", tmp / "data.safetensors")
    config = _small_test_preset()
    config["experiments"]["mobilenet-fmnist"]["train"].update(
        total_steps=12, checkpoint_every=3, log_every=2, eval_every=5, eval_curve_examples=20)
    config = validate_config(config)
    run = resolve_run(config, "mobilenet-fmnist", "mobilenet_v1", "0.125", "0.0", 0)
    changes = {"train": {"checkpoint_every": 4, "log_every": 3, "eval_every": 2,
                         "eval_curve_examples": 10, "eval_batch_size": 7}}
    return ImageClassificationTask, config, run, {"prepared": tmp / "data.safetensors"}, changes, 8


def _lm_case(tmp: Path):
    gen = torch.Generator().manual_seed(0)
    (tmp / "raw").mkdir(parents=True)
    for split, lines in (("train", 300), ("valid", 40), ("test", 40)):
        (tmp / "raw" / f"ptb.{split}.txt").write_text(_words(gen, lines, [f"w{i}" for i in range(40)]))
    prepare_lm_corpus("ptb", tmp / "raw", tmp / "corpus.safetensors")
    config = validate_config({"preset": "test", "seeds": [0], "device": "cpu",
                              "experiments": {"lstm-ptb": LM}})  # dropout 0.3: draws every step
    run = resolve_run(config, "lstm-ptb", "lstm_lm", "8", "0.0", 0)
    changes = {"train": {"checkpoint_every": 5, "log_every": 4, "eval_every": 2,
                         "eval_curve_examples": 50, "eval_batch_size": 3}}
    return LanguageModelTask, config, run, {"prepared": tmp / "corpus.safetensors"}, changes, 7


def _translation_case(tmp: Path, monkeypatch):
    from gradprune.data.translation import prepare

    _write_multi30k(tmp / "raw", monkeypatch)
    prepare(tmp / "raw", tmp / "prepared", "multi30k", None, vocab_size=100)
    data = {"prepared": tmp / "prepared" / "data.safetensors", "spm": tmp / "prepared" / "spm.model",
            "text": tmp / "prepared" / "text.json"}
    config = _translation_preset()  # dropout 0.1
    run = resolve_run(config, "gnmt-tiny", "gnmt", "8", "0.0", 0)
    changes = {"train": {"checkpoint_every": 3, "log_every": 3, "eval_every": 2,
                         "eval_curve_examples": 4, "eval_batch_size": 5},
               "translation": {"curve_examples": 5, "beam_size": 3, "max_decode_len": 9,
                               "test_limit": 4, "length_penalty": 0.5}}
    return TranslationTask, config, run, data, changes, 5


def _with(settings: dict, changes: dict) -> dict:
    settings = json.loads(json.dumps(settings))
    for section, values in changes.items():
        settings["experiment"][section].update(values)
    return settings


def _eval_header(folder: Path) -> list[str]:
    with open(folder / "eval.csv", newline="") as f:
        return next(csv.reader(f))


@pytest.mark.slow
@pytest.mark.parametrize("family", ["vision", "lm", "translation"])
def test_run_resumed_with_other_operational_and_scoring_keys_ends_where_it_would_have(
        family, tmp_path, monkeypatch):
    """The oracle is the same run trained straight through with the first settings: a resume
    with every untracked key changed must not restart (no .stale) and must end with the same
    weights, byte for byte, and the same masks (the evaluation at other steps and on another
    number of examples draws nothing from the training streams)."""
    torch.set_num_threads(1)
    if family == "translation":
        task_cls, config, run, data, changes, stop = _translation_case(tmp_path, monkeypatch)
    else:
        task_cls, config, run, data, changes, stop = {"vision": _vision_case, "lm": _lm_case}[
            family](tmp_path)
    settings = run_settings(config, run)
    resumed = _with(settings, changes)
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    runner.train(settings, run, data, straight, None)
    at = _interrupted_then_resumed(monkeypatch, task_cls, settings, resumed, run, data,
                                   interrupted, stop)
    assert 0 < at < stop
    assert not (interrupted / "checkpoint.pt.stale").exists()
    assert (straight / "model.safetensors").read_bytes() == \
        (interrupted / "model.safetensors").read_bytes()
    assert (straight / "prune_log.csv").read_bytes() == (interrupted / "prune_log.csv").read_bytes()
    # the log follows the new interval from the resume on
    with open(interrupted / "train_log.csv", newline="") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    every, total = changes["train"]["log_every"], run_total(config, run)
    assert [s for s in steps if s >= at] == [s for s in range(at, total)
                                             if (s + 1) % every == 0 or s + 1 == total]
    # curve points scored on another number of examples are not labelled with the new number
    header = _eval_header(interrupted)
    sizes = {int(c.rsplit("_first", 1)[1]) for c in header[1:]}
    assert len(sizes) == 2, header


def run_total(config, run) -> int:
    return config["experiments"][run.experiment]["train"]["total_steps"]


def test_result_key_change_moves_the_checkpoint_aside(tmp_path, monkeypatch):
    task_cls, config, run, data, _, stop = _vision_case(tmp_path)
    settings = run_settings(config, run)
    faster = _with(settings, {"train": {"optimizer": {**settings["experiment"]["train"]["optimizer"],
                                                       "lr": 0.01}}})
    _interrupted_then_resumed(monkeypatch, task_cls, settings, faster, run, data, tmp_path / "r",
                              stop)
    assert (tmp_path / "r" / "checkpoint.pt.stale").exists()
    clean = tmp_path / "clean"
    runner.train(faster, run, data, clean, None)
    assert (clean / "model.safetensors").read_bytes() == \
        (tmp_path / "r" / "model.safetensors").read_bytes()


# -- Snakemake: a finished run is not retrained for an operational or scoring key ----------------


@pytest.fixture(scope="module")
def pipeline(finished_test_run):
    return finished_test_run


def _dry_run(work: Path, preset_args, overlay: str):
    path = work / "identity-overlay.yaml"
    path.write_text(overlay)
    try:
        proc = run_snakemake(work, "-n", *preset_args, path.name)
    finally:
        path.unlink()
    assert proc.returncode == 0, proc.stderr[-3000:]
    return planned_jobs(proc)


TRAIN_KEYS = {"train.checkpoint_every": 5, "train.log_every": 3, "train.eval_every": 4,
              "train.eval_curve_examples": 17}


@pytest.mark.slow
def test_finished_runs_are_not_rerun_for_operational_keys_and_rescored_for_scoring_keys(pipeline):
    work, preset_args, _ = pipeline
    for key, value in TRAIN_KEYS.items():
        leaf = key.split(".")[1]
        jobs = _dry_run(work, preset_args,
                        f"experiments: {{mobilenet-fmnist: {{train: {{{leaf}: {value}}}}}}}\n")
        # only results/config.yaml, the record of the composed config, is rewritten
        assert set(jobs) <= {"effective_config", "all"}, (key, jobs)
    jobs = _dry_run(work, preset_args,
                    "experiments: {mobilenet-fmnist: {train: {eval_batch_size: 32}}}\n")
    n_runs = 4  # the test preset: dense, 50%, 75% and the small-dense run
    assert jobs["evaluate"] == n_runs and jobs["footprint"] == n_runs, jobs
    assert not {"train", "pretrain"} & set(jobs), jobs
    jobs = _dry_run(work, preset_args,
                    "experiments: {mobilenet-fmnist: {train: {optimizer: {lr: 0.04}}}}\n")
    assert jobs["pretrain"] == 1 and jobs["train"] == n_runs, jobs
