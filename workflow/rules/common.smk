# Config validation and the small input functions every rule uses. No rules here.
import sys
from pathlib import Path

from snakemake.utils import validate

# The package lives in src/; scripts find it the same way (envs need not install it).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from gradprune.config import find_run, plan_runs, pretrain_dir, validate_config  # noqa: E402
from gradprune.workflow import (  # noqa: E402
    data_inputs,
    experiment_resources,
    job_config,
    report_targets,
)


validate(config, schema="../schemas/config.schema.yaml")
# Rules a schema cannot state (pruning must end before training does, ImageNet path set, ...).
config.update(validate_config(config))

RUNS = plan_runs(config)


wildcard_constraints:
    experiment=r"[a-z0-9][a-z0-9-]*",
    model=r"[a-z0-9_]+",
    size=r"[0-9A-Za-z.]+",
    sparsity=r"[0-9]+\.[0-9]+",
    seed=r"[0-9]+",


def the_run(wildcards):
    return find_run(
        config,
        wildcards.experiment,
        wildcards.model,
        wildcards.size,
        wildcards.sparsity,
        int(wildcards.seed),
    )


def exp_of(wildcards):
    return config["experiments"][wildcards.experiment]


def train_inputs(wildcards):
    run = the_run(wildcards)
    exp = exp_of(wildcards)
    inputs = data_inputs(exp)
    if run.continues_from_dense and exp["pruning"]["from_dense_checkpoint"]:
        inputs["init_checkpoint"] = f"{pretrain_dir(run)}/checkpoint_t0.pt"
    return inputs


def pretrain_inputs(wildcards):
    return data_inputs(exp_of(wildcards))


def resource(key):
    return lambda wildcards: experiment_resources(exp_of(wildcards))[key]


def all_targets():
    return [run.metrics for run in RUNS] + report_targets(config)
