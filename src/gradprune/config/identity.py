"""The identity of a run: the config its checkpoints and its ``metrics.json`` record and hash.

A checkpoint records :func:`training_config` (what can change the trained weights); a run resumes
only a checkpoint of its own training config (``gradprune.training.loop.resume_if_possible``).
``metrics.json`` records :func:`evaluation_config` (also the keys that change what it reports).
Both hold the run's pruning schedule in full (reports redraw it).
"""

from __future__ import annotations

from gradprune.config.settings import SPEED_KEYS, evaluation_settings, training_settings
from gradprune.schedule import CubicSchedule


def schedule_for(exp: dict, sparsity: float) -> CubicSchedule:
    """The cubic schedule that prunes an experiment's model to ``sparsity``."""
    pr = exp["pruning"]
    return CubicSchedule(
        initial_sparsity=min(pr["initial_sparsity"], sparsity), final_sparsity=sparsity,
        begin_step=pr["begin_step"], frequency=pr["frequency"], n_updates=pr["n_updates"],
        exponent=pr["exponent"],
    )


def run_config(settings: dict, run) -> dict:
    """The run's identity and ``settings`` as one flat mapping (the hashed form), with the pruning
    schedule it follows in full."""
    exp = settings["experiment"]
    cfg = {"experiment": run.experiment, "run": run.identity, "device": settings["device"],
           "deterministic": settings["deterministic"], **exp,
           **{k: settings[k] for k in SPEED_KEYS if k in settings}}
    if "pruning" in exp and float(run.sparsity) > 0.0:
        cfg["pruning"] = {**exp["pruning"], **schedule_for(exp, float(run.sparsity)).to_dict()}
    return cfg


def training_config(settings: dict, run) -> dict:
    """What a run's checkpoints are tied to: :func:`run_config` of its training settings."""
    return run_config(training_settings(settings), run)


def evaluation_config(settings: dict, run) -> dict:
    """What ``metrics.json`` records as the run's config: :func:`run_config` of its evaluation
    settings (the training settings and the scoring keys)."""
    return run_config(evaluation_settings(settings), run)
