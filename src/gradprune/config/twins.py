"""Runs that two experiments share: the same training, computed once.

An experiment that ``extends`` another often repeats some of its runs exactly: the block-sparse
LM experiments (``lstm-ptb-block4``, ``lstm-ptb-block16``) train the same 30-unit small-dense model
as ``lstm-ptb`` and the same dense 256-unit model up to t0, with every setting that can change the
weights equal. Training them again costs a quarter of those experiments' CPU time and yields the
same tensors bit for bit on CPU (deterministic). So:

- a run whose training settings (:func:`~gradprune.config.settings.training_settings`) equal those
  of the same model, size, sparsity and seed planned by an experiment listed earlier in the preset
  is that run's *twin*: its train job copies the twin's outputs (``gradprune.reuse``) instead of
  training, and scores, measures and reports the copy as its own experiment's run;
- a pruned run continues from the pretrain folder of the earliest experiment whose dense run of
  that size and seed trains the same way and whose plan has that folder built anyway.

Only the training is shared: each experiment keeps its own run folders, metrics and tables.
Nothing here applies across presets or to runs whose settings differ in anything, the pruning
structure included.
"""

from __future__ import annotations

from gradprune.config.plan import Run, plan_runs
from gradprune.config.resources import experiment_resources
from gradprune.config.settings import run_settings, training_settings

#: what the train job of a twin needs to copy files: one core, no GPU, one node, minutes (its
#: memory stays the experiment's: it holds the weights)
COPY_JOB = {"threads": 1, "gpu": 0, "nodes": 1, "runtime": 10}


def _key(run: Run) -> tuple:
    return (run.experiment, run.model, run.size, run.sparsity, run.seed)


def _earlier_experiments(config: dict, experiment: str) -> list[str]:
    names = list(config["experiments"])
    return names[: names.index(experiment)] if experiment in names else []


def _starts_from_t0(config: dict, run: Run) -> bool:
    return run_settings(config, run)["experiment"]["pruning"]["from_dense_checkpoint"]


def twin_run(config: dict, run: Run) -> Run | None:
    """The planned run of an earlier experiment whose training is ``run``'s, or None."""
    earlier = _earlier_experiments(config, run.experiment)
    if not earlier:
        return None
    planned = {_key(r): r for r in plan_runs(config) if r.experiment in earlier}
    mine = None
    for name in earlier:
        other = planned.get((name, run.model, run.size, run.sparsity, run.seed))
        if other is None or other.role != run.role:
            continue
        mine = mine or training_settings(run_settings(config, run))
        if training_settings(run_settings(config, other)) == mine:
            return other
    return None


def pretrain_home(config: dict, run: Run) -> str:
    """The pretrain folder ``run`` (a dense or pruned run) continues from: its own experiment's,
    or that of the earliest experiment whose dense run of this size and seed trains the same way
    and which prunes this size and seed itself (so the folder is built anyway)."""
    dense = Run(run.experiment, run.model, run.size, "0.0", run.seed, "dense", run.in_preset)
    earlier = _earlier_experiments(config, run.experiment)
    if not earlier:
        return dense.pretrain_dir
    builds = {(r.experiment, r.model, r.size, r.seed) for r in plan_runs(config)
              if r.experiment in earlier and r.continues_from_dense and _starts_from_t0(config, r)}
    mine = training_settings(run_settings(config, dense))
    for name in earlier:
        if (name, run.model, run.size, run.seed) not in builds:
            continue
        other = Run(name, run.model, run.size, "0.0", run.seed, "dense")
        if training_settings(run_settings(config, other)) == mine:
            return other.pretrain_dir
    return dense.pretrain_dir


def train_job_resources(config: dict, run: Run) -> dict:
    """The resources of ``run``'s train job: its experiment's, or a copy job's for a twin (a
    cluster then queues no GPU job to copy files)."""
    res = experiment_resources(config, run.experiment, run.size)
    return {**res, **COPY_JOB} if twin_run(config, run) is not None else res
