"""What sbatch is asked for a training job on one node or several: the submit line of
snakemake-executor-plugin-slurm built from gradprune.config.training_job_resources (no cluster)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from snakemake_executor_plugin_slurm.submit_string import get_submit_command
from snakemake_executor_plugin_slurm.utils import set_gres_string

from gradprune.config import training_job_resources

PARAMS = {"run_uuid": "run", "slurm_logfile": "log", "comment_str": "rule_train", "account": "",
          "partition": "", "workdir": "/w"}


class Resources(dict):
    __getattr__ = dict.__getitem__


def sbatch(resources: dict) -> list[str]:
    """The sbatch flags of a train job with these experiment resources (None values dropped, as
    Snakemake drops them)."""
    res = {"threads": resources["threads"], "mem_mb": 8000, "runtime": 60}
    res.update({k: v for k, v in training_job_resources(resources).items() if v is not None})
    job = SimpleNamespace(resources=Resources(res), threads=resources["threads"])
    return (get_submit_command(job, PARAMS) + set_gres_string(job)).split()


@pytest.mark.parametrize("gpu", [0, 4])
def test_several_nodes_get_one_task_per_node_and_gpus_on_each(gpu):
    flags = sbatch({"threads": 8, "gpu": gpu, "nodes": 2})
    assert "--nodes=2" in flags and "--ntasks=2" in flags and "--cpus-per-task=8" in flags
    assert not [f for f in flags if f.startswith(("--ntasks-per-gpu", "--gpus"))], flags
    assert ("--gres=gpu:4" in flags) == bool(gpu), flags
    assert training_job_resources({"gpu": gpu, "nodes": 2})["mpi"]  # the script runs its own srun


def test_one_node_keeps_the_job_total_of_gpus():
    flags = sbatch({"threads": 8, "gpu": 4, "nodes": 1})
    assert "--gpus=4" in flags and not [f for f in flags if f.startswith(("--nodes", "--gres"))]
    assert training_job_resources({"gpu": 4, "nodes": 1})["mpi"] is None
