"""Snakemake entry point: a run's CPU inference latency, dense and sparse, on one thread."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from gradprune.footprint.latency import latency
from gradprune.workflow import logged_to, run_from_wildcards

sm = snakemake  # noqa: F821
with logged_to(sm.log[0]):
    run = run_from_wildcards(sm.wildcards, sm.params.role)
    latency(sm.params.config, run, dict(sm.input), Path(sm.input.weights),
            Path(sm.input.metrics), Path(sm.output.latency), sm.params.settings)
