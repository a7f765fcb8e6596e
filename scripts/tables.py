"""Snakemake entry point: every table (CSV, Markdown, LaTeX) from the runs' metrics.json."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from gradprune.config import plan_runs
from gradprune.reporting.api import write_tables
from gradprune.workflow import logged_to

sm = snakemake  # noqa: F821
with logged_to(sm.log[0]):
    write_tables(sm.input, Path(sm.output.runs).parent, sm.params.compare_with_paper,
                 planned=plan_runs(sm.config), nnz_tolerance=sm.params.nnz_tolerance)
