"""Snakemake entry point: metric against NNZ per experiment (PNG and PDF)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from gradprune.reporting.api import write_experiment_figures
from gradprune.workflow import logged_to

sm = snakemake  # noqa: F821
with logged_to(sm.log[0]):
    write_experiment_figures(sm.input, Path(sm.output[0]).parent, sm.params.compare_with_paper,
                             nnz_tolerance=sm.params.nnz_tolerance)
