# The config (composed, validated once) and the small input functions every rule uses. No rules.
import sys
from pathlib import Path

from snakemake.utils import validate

# The package lives in src/; scripts find it the same way (envs need not install it).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from gradprune.workdir import (  # noqa: E402
    anchor_env_mirror,
    discard_if_nothing_ran,
    invocation_directory,
)

# Snakemake creates the --directory folder before reading this file: a dry run removes it again.
discard_if_nothing_ran(workflow)
# A relative $GRADPRUNE_DATA_MIRROR names a folder from where the command was typed, not from
# the --directory the jobs run in.
anchor_env_mirror(invocation_directory(workflow))

from gradprune.config import (  # noqa: E402
    ConfigError,
    compose_config,
    evaluation_settings,
    experiment_of,
    experiment_resources,
    plan_runs,
    pretrain_home,
    resolve_run,
    run_settings,
    train_job_resources,
    training_job_resources,
    training_settings,
    twin_run,
    validate_config,
)
from gradprune.layout import WILDCARDS  # noqa: E402
from gradprune.workflow import (
    data_inputs,
    imagenet_problem,
    report_targets,
    twin_inputs,
)  # noqa: E402


def refuse(err):
    """Stop before any job starts with one line (no traceback): a config or target problem."""
    sys.exit(f"gradprune: {err}")


# A preset given with --configfile is the whole config (not merged into config.yaml); files
# without a `preset:` key are overlays; nested --config values are read as YAML.
try:
    _composed = compose_config(
        workflow.overwrite_configfiles,
        dict(workflow.config_settings.config),
        [Path("config.yaml"), Path(workflow.basedir) / "config.yaml"],
    )
except ConfigError as err:
    refuse(err)
config.clear()
config.update(_composed)
try:
    # Rules a schema cannot say (family/dataset/model/sizes agree, recipes, schedules).
    config.update(validate_config(config))
except ConfigError as err:
    refuse(err)
validate(config, schema="../schemas/config.schema.yaml")

RUNS = plan_runs(config)

# Scheduling (rule priorities). On a few cores the run's length is set by how the long jobs
# pack. Without priorities Snakemake prefers jobs with large input files, which left the
# translation family's trainings (small inputs, the longest jobs) for last and one core idle for
# minutes at the end of the default run. So: downloads and prepare steps first (every chain
# starts from them; a priority does not reach a job's inputs), then each pretrain (it unlocks a
# chain of trains), then the trains, then the short scoring and report jobs, which fill the
# cores while the last trains finish.
DATA_PRIORITY = 3
PRETRAIN_PRIORITY = 2
TRAIN_PRIORITY = 1


wildcard_constraints:
    **WILDCARDS,


onstart:
    # A dry run still plans ImageNet rows without the data; a real run refuses before any job.
    problem = imagenet_problem(config)
    if problem and any(
        j.rule.name == "check_imagenet" for j in workflow.dag.needrun_jobs()
    ):
        refuse(problem)


def the_run(wildcards):
    """The run a job's folder names (a listed run, or a sparsity/seed the preset lacks)."""
    try:
        return resolve_run(
            config,
            wildcards.experiment,
            wildcards.model,
            wildcards.size,
            wildcards.sparsity,
            wildcards.seed,
        )
    except ConfigError as err:
        refuse(err)


def pretrain_run(wildcards):
    """The dense run of a prunable size, whose training up to t0 the pretrain job does."""
    try:
        return resolve_run(
            config,
            wildcards.experiment,
            wildcards.model,
            wildcards.size,
            "0.0",
            wildcards.seed,
        )
    except ConfigError as err:
        refuse(err)


def trains_with(run):
    """The params of a training job: the run's settings that can change its weights (a change
    retrains). The job reads its full settings, operational keys included, from the config.
    """
    return training_settings(run_settings(config, run))


def scores_with(run):
    """The params of a job that scores a run's weights: the settings that can change its metrics
    (a change rescores, never retrains)."""
    return evaluation_settings(run_settings(config, run))


def exp_of(wildcards):
    try:
        return experiment_of(config, wildcards.experiment)
    except ConfigError as err:
        refuse(err)


def train_inputs(wildcards):
    """The data (and the dense checkpoint at t0) a run trains from; for a run an earlier
    experiment trains the same way (gradprune.config.twins), that run's outputs to copy.
    """
    run = the_run(wildcards)
    twin = twin_run(config, run)
    if twin is not None:
        return twin_inputs(twin.dir)
    inputs = data_inputs(exp_of(wildcards))
    settings = run_settings(config, run)["experiment"]
    if run.continues_from_dense and settings["pruning"]["from_dense_checkpoint"]:
        inputs["init_checkpoint"] = f"{pretrain_home(config, run)}/checkpoint_t0.pt"
    return inputs


def pretrain_inputs(wildcards):
    return data_inputs(exp_of(wildcards))


def resource(key):
    return lambda wc: experiment_resources(config, wc.experiment, wc.size)[key]


def train_resource(key):
    """A resource of a train job: its experiment's, one core and no GPU for a twin's copy."""
    return lambda wc: train_job_resources(config, the_run(wc))[key]


def train_job_resource(key):
    """train_resource, turned into the resources of a job on one node or several."""

    def get(wc):
        return training_job_resources(train_job_resources(config, the_run(wc)))[key]

    return get


def job_resource(key):
    """A resource of a training job on one node or several (training_job_resources)."""
    return lambda wc: training_job_resources(
        experiment_resources(config, wc.experiment, wc.size)
    )[key]


def all_targets():
    return [run.metrics for run in RUNS] + report_targets(config)
