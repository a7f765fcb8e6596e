"""Snakemake entry point: a run's bytes in every storage format and its int8 metric."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from gradprune import runner
from gradprune.config import Run, run_settings
from gradprune.footprint.storage import footprint
from gradprune.workflow import logged_to

sm = snakemake  # noqa: F821
with logged_to(sm.log[0]):
    run = Run.from_dict(sm.params.run)
    # params.settings: the part Snakemake tracks (reruns); the job runs with the full settings
    settings = run_settings(sm.config, run)
    runner.configure_torch(sm.threads, settings["deterministic"])
    footprint(settings, run, dict(sm.input), Path(sm.input.weights), Path(sm.input.metrics),
              Path(sm.output.footprint), sm.params.pruning)
