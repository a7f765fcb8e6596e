"""Snakemake entry point: an experiment's footprint, latency and budget-frontier tables/figures."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from gradprune.footprint.report import write_experiment_report
from gradprune.workflow import logged_to

sm = snakemake  # noqa: F821
with logged_to(sm.log[0]):
    results = Path(sm.output.footprint_csv).parents[1]  # results/tables/<file>
    write_experiment_report(sm.wildcards.experiment, sm.input.metrics, sm.input.footprint,
                            sm.input.latency, results, sm.params.slack)
