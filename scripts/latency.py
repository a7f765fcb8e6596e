"""Snakemake entry point: a run's CPU inference latency, dense and sparse, on one thread."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from gradprune.config import Run, run_settings
from gradprune.footprint.latency import latency
from gradprune.workflow import logged_to

sm = snakemake  # noqa: F821
with logged_to(sm.log[0]):
    run = Run.from_dict(sm.params.run)
    # params.settings: the part Snakemake tracks (reruns); the job runs with the full settings
    latency(run_settings(sm.config, run), run, dict(sm.input),
            Path(sm.input.weights), Path(sm.input.metrics), Path(sm.output.latency),
            sm.params.measurement, sm.params.pruning)
