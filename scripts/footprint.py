"""Snakemake entry point: a run's bytes in every storage format and its int8 metric."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from gradprune import runner
from gradprune.config import Run
from gradprune.footprint.storage import footprint
from gradprune.workflow import logged_to

sm = snakemake  # noqa: F821
with logged_to(sm.log[0]):
    run, settings = Run.from_dict(sm.params.run), sm.params.settings
    runner.configure_torch(sm.threads, settings["deterministic"])
    footprint(settings, run, dict(sm.input), Path(sm.input.weights), Path(sm.input.metrics),
              Path(sm.output.footprint), sm.params.pruning)
