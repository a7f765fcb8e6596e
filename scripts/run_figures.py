"""Snakemake entry point: one run's schedule, training-curve and learning-rate figures."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from gradprune.reporting.api import write_run_figures
from gradprune.workflow import logged_to

sm = snakemake  # noqa: F821
with logged_to(sm.log[0]):
    write_run_figures(sm.input.metrics, sm.input.train_log, sm.input.prune_log,
                      Path(sm.output[0]).parent, eval_csv=sm.input.eval_log)
