"""Snakemake entry point: gradual pruning to one target (or dense / small-dense training), or the
copy of a twin run's training (gradprune.config.twins)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from gradprune import runner
from gradprune.config import Run, experiment_resources, run_settings
from gradprune.reuse import train_or_copy_twin
from gradprune.workflow import logged_to

sm = snakemake  # noqa: F821
with logged_to(sm.log[0]):
    run = Run.from_dict(sm.params.run)
    # params.settings: the part Snakemake tracks (reruns); the job runs with the full settings
    settings = run_settings(sm.config, run)
    res = experiment_resources(sm.config, run.experiment, run.size)
    runner.configure_torch(sm.threads, settings["deterministic"])
    train_or_copy_twin(settings, run, dict(sm.input), dict(sm.output), sm.threads, res["gpu"],
                       res["nodes"], sm.resources.get("nodes"))
