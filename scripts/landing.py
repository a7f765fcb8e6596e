"""Snakemake entry point: one experiment's section of the report's landing page."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from gradprune.reporting.api import write_landing
from gradprune.workflow import logged_to

sm = snakemake  # noqa: F821
with logged_to(sm.log[0]):
    write_landing(sm.input.headline, sm.input.figure, sm.wildcards.experiment, sm.output[0])
