"""Snakemake entry point: a run's bytes in every storage format and its int8 metric."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from gradprune import runner
from gradprune.footprint.storage import footprint
from gradprune.workflow import logged_to, run_from_wildcards

sm = snakemake  # noqa: F821
with logged_to(sm.log[0]):
    config = sm.params.config
    run = run_from_wildcards(sm.wildcards, sm.params.role)
    runner.configure_torch(sm.threads, config["deterministic"])
    footprint(config, run, dict(sm.input), Path(sm.input.weights), Path(sm.input.metrics),
              Path(sm.output.footprint))
