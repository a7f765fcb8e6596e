"""Snakemake entry point: one experiment's tables (CSV, Markdown, LaTeX) from its runs' metrics."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from gradprune.config import Run
from gradprune.reporting.api import write_experiment_tables
from gradprune.workflow import logged_to

sm = snakemake  # noqa: F821
with logged_to(sm.log[0]):
    write_experiment_tables(sm.input, Path(sm.output[0]).parent, sm.wildcards.experiment,
                            sm.params.compare_with_paper,
                            planned=[Run.from_dict(r) for r in sm.params.planned],
                            nnz_tolerance=sm.params.nnz_tolerance)
