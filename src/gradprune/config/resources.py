"""Where a run trains: the resources of its jobs (threads, memory, time, GPUs, nodes).

Resources are not part of a run's settings: a finished run is not retrained on another cluster
shape (results agree across process counts to float rounding, not bitwise:
:mod:`gradprune.training.distributed`).
"""

from __future__ import annotations

from gradprune.config.sizes import experiment_for_size


def experiment_resources(config: dict, experiment: str, size: str) -> dict:
    """threads, mem_mb, runtime, gpu, nodes of the jobs of one size of an experiment (schema
    defaults)."""
    return experiment_for_size(config["experiments"][experiment], size)["resources"]


def training_job_resources(resources: dict) -> dict:
    """The Snakemake resources a training job (pretrain, train) adds to threads, mem_mb and
    runtime, as snakemake-executor-plugin-slurm reads them; None leaves one out.

    One node: ``gpu`` (``--gpus``), as every job. Several nodes: ``nodes`` and one task per node
    (``tasks``), ``gres: gpu:G`` for G GPUs on *each* node (``gpu`` would be the job's total),
    ``tasks_per_gpu: 0`` (else the plugin turns ``tasks`` into ``--ntasks-per-gpu``), and ``mpi``,
    which makes the plugin run the job script once, on the first node, without wrapping it in
    srun: the script starts the per-node launchers with its own srun."""
    nodes, gpu = resources.get("nodes", 1), resources.get("gpu", 0)
    if nodes == 1:
        return {"gpu": gpu, "nodes": None, "tasks": None, "mpi": None, "gres": None,
                "tasks_per_gpu": None}
    return {"gpu": None, "nodes": nodes, "tasks": nodes, "mpi": "srun",
            "gres": f"gpu:{gpu}" if gpu else None, "tasks_per_gpu": 0 if gpu else None}
