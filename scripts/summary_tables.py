"""Snakemake entry point: runs.csv and the headline tables of every experiment."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from gradprune.reporting.api import write_summary_tables
from gradprune.workflow import logged_to

sm = snakemake  # noqa: F821
with logged_to(sm.log[0]):
    write_summary_tables(sm.input, Path(sm.output.runs).parent,
                         nnz_tolerance=sm.params.nnz_tolerance)
